"""Runs the viewer's own JavaScript tests (``web/test``, Node's built-in test runner) under pytest.

They cover the pure parts of the viewer — palettes and class breaks, number and name formatting, KPI
display and the difference between any two scenarios — and need Node.js only (no npm packages).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[3] / "web"


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_viewer_javascript_unit_tests() -> None:
    result = subprocess.run(
        ["node", "--test", "test/"], cwd=WEB, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
    passed = next(line for line in result.stdout.splitlines() if line.startswith("# pass "))
    assert int(passed.split()[-1]) >= 7
