"""Locate the SUMO binaries shipped in the ``eclipse-sumo`` wheel and run them with clear errors.

The wheel does not set ``SUMO_HOME``; SUMO's tools and the emission/noise models need it, and PROJ
needs ``PROJ_LIB`` pointing at SUMO's own data. Every binary runs as a subprocess that dies with the
process that started it (a killed seed leaves no SUMO running); a failure raises
:class:`~civictwin.errors.EngineError` quoting SUMO's own error lines and naming the step.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from civictwin.errors import EngineError

_ERROR_LINES = 6


@dataclass(frozen=True)
class BinaryRun:
    """A finished SUMO process: its output and how long it ran (seconds, wall clock)."""

    stdout: str
    stderr: str
    wall_s: float


@cache
def sumo_home() -> Path:
    """SUMO's installation folder, from the ``eclipse-sumo`` wheel (or ``SUMO_HOME`` if set)."""
    saved = {key: os.environ.get(key) for key in _SUMO_SETS}
    try:
        import sumo
    except ImportError:
        configured = os.environ.get("SUMO_HOME")
        if configured and Path(configured, "bin").is_dir():
            return Path(configured)
        raise EngineError("SUMO is not installed: pip install eclipse-sumo", field="sumo") from None
    finally:
        _restore(saved)
    return Path(sumo.SUMO_HOME)


_SUMO_SETS = ("PROJ_LIB", "PROJ_DATA", "SUMO_HOME")
"""Variables importing the wheel's ``sumo`` package sets for the whole process: its PROJ data then
breaks pyproj and rasterio (another PROJ's ``proj.db``), so they are put back; SUMO's processes get
them through :func:`sumo_env` only."""


def _restore(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def sumo_env() -> dict[str, str]:
    """The process environment with ``SUMO_HOME`` and ``PROJ_LIB`` set for SUMO."""
    home = sumo_home()
    return {**os.environ, "SUMO_HOME": str(home), "PROJ_LIB": str(home / "data" / "proj")}


def binary(name: str) -> Path:
    """The path of a SUMO binary (``sumo``, ``netconvert``, ...)."""
    path = sumo_home() / "bin" / name
    if not path.is_file():
        raise EngineError(f"SUMO binary '{name}' not found in {path.parent}", field="sumo")
    return path


def run_binary(
    name: str, args: Sequence[str | Path], *, step: str, cwd: Path, timeout_s: float | None = None
) -> BinaryRun:
    """Run a SUMO binary; a non-zero exit raises EngineError ``<step>: <name> failed: <SUMO's message>``."""
    command = tied_to_caller([str(binary(name)), *map(str, args)])
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=cwd, env=sumo_env(), capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise EngineError(f"{name} did not finish within {timeout_s:g} s", field=step) from None
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise EngineError(f"{name} failed (exit {done.returncode}): {sumo_message(done.stderr)}", field=step)
    return BinaryRun(done.stdout, done.stderr, wall)


def tied_to_caller(command: list[str]) -> list[str]:
    """``command`` started so that the kernel kills it when the thread that started it dies.

    On Linux, through util-linux's ``setpriv --pdeathsig KILL`` (an exec, so no Python code runs
    between fork and exec, which would be unsafe in a process with threads such as a Dask worker):
    a seed's process killed mid-run (a lost cluster worker, a pool torn down after Ctrl+C) takes its
    SUMO with it instead of leaving it to run to its end. Elsewhere, or without ``setpriv``, the
    command is returned as it is.
    """
    setpriv = shutil.which("setpriv") if sys.platform == "linux" else None
    return command if setpriv is None else [setpriv, "--pdeathsig", "KILL", "--", *command]


def sumo_message(stderr: str) -> str:
    """SUMO's own error lines, joined on one line (warnings dropped when there are errors)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error")]
    chosen = (errors or lines)[-_ERROR_LINES:]
    return " | ".join(chosen) if chosen else "no message"


@cache
def sumo_version() -> str:
    """The SUMO version string, e.g. ``Eclipse SUMO sumo 1.28.0``."""
    out = run_binary("sumo", ["--version"], step="sumo version", cwd=Path.cwd())
    return out.stdout.splitlines()[0].strip() if out.stdout else "unknown"
