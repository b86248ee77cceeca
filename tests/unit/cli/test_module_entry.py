"""``python -m civictwin`` and ``python -m civictwin.entry`` run the command line, as the console script does."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["civictwin", "civictwin.entry"])
def test_the_module_runs_the_command_line(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, "scenario", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout and "scenario" in done.stdout


@pytest.mark.parametrize(
    ("argv", "problem"),
    [(["no-such-command"], "No such command 'no-such-command'."), (["build", "--no-such-option"],
     "No such option: --no-such-option")],
)  # fmt: skip
def test_a_usage_error_is_a_usage_error_not_an_internal_one(argv: list[str], problem: str) -> None:
    """Typer carries its own copy of click: its usage errors exit 2 with the usage line and the problem
    (they were reported as internal errors with exit 3)."""
    done = subprocess.run(
        [sys.executable, "-m", "civictwin", *argv], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stderr.strip().endswith(f"Error: {problem}")
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr
