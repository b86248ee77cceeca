"""What this Linux machine can check of Windows support: no POSIX-only module or signal on the import
path of the CLI, build and serve, and the portable locks doing their job between processes."""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from pathlib import Path

import pytest

import civictwin
from civictwin.locking import LockHeld, exclusive

SOURCE = Path(civictwin.__file__).parent
POSIX_ONLY_MODULES = {"fcntl", "termios", "pwd", "grp", "resource", "posix"}
POSIX_ONLY_SIGNALS = {"SIGHUP", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGQUIT", "SIGALRM", "SIGCHLD"}


def test_no_posix_only_module_is_imported() -> None:
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [
                f"{path.relative_to(SOURCE)}: {n}" for n in names if n.split(".")[0] in POSIX_ONLY_MODULES
            ]
    assert found == []


def test_posix_only_signals_are_only_looked_up_with_a_fallback() -> None:
    """``signal.SIGHUP`` does not exist on Windows: code must use ``getattr(signal, "SIGHUP", None)``."""
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in POSIX_ONLY_SIGNALS:
                found.append(f"{path.relative_to(SOURCE)}:{node.lineno}: signal.{node.attr}")
    assert found == []


def test_a_lock_held_by_another_process_is_refused_then_granted(tmp_path: Path) -> None:
    lock = tmp_path / "twin.duckdb.building.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from civictwin.locking import exclusive\n"
         "with exclusive(Path(sys.argv[1]), wait=False):\n    print('held', flush=True); time.sleep(3)\n",
         str(lock)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(LockHeld), exclusive(lock, wait=False):
        pass
    waited = time.monotonic()
    with exclusive(lock, wait=True):  # blocks until the other process lets go (it holds it for 3 s)
        assert time.monotonic() - waited > 1.0
    assert holder.wait(timeout=30) == 0
