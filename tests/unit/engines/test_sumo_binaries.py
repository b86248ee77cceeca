"""Locating SUMO from the eclipse-sumo wheel and turning its failures into one-line errors."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from civictwin.engines.traffic.sumo import binary, run_binary, sumo_env, sumo_home, sumo_message, sumo_version
from civictwin.errors import EngineError


def test_sumo_home_comes_from_the_wheel() -> None:
    spec = importlib.util.find_spec("sumo")  # not imported here: importing it sets PROJ_LIB process-wide
    assert spec is not None and spec.submodule_search_locations
    assert sumo_home() == Path(spec.submodule_search_locations[0])
    assert binary("netconvert").is_file() and binary("sumo").is_file()
    env = sumo_env()
    assert env["SUMO_HOME"] == str(sumo_home())
    assert Path(env["PROJ_LIB"]) == sumo_home() / "data" / "proj" and Path(env["PROJ_LIB"]).is_dir()


def test_finding_sumo_leaves_this_process_s_proj_alone() -> None:
    """The wheel's ``sumo`` package sets PROJ_LIB/PROJ_DATA on import; pyproj and rasterio in this
    process must keep their own PROJ (another proj.db breaks every CRS lookup)."""
    code = (
        "import os; from civictwin.engines.traffic.sumo import sumo_home; sumo_home.cache_clear(); sumo_home(); "
        "print(os.environ.get('PROJ_LIB'), os.environ.get('PROJ_DATA'))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PROJ_LIB", "PROJ_DATA")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "None"]


def test_version() -> None:
    assert sumo_version().startswith("Eclipse SUMO sumo 1.")


def test_unknown_binary() -> None:
    with pytest.raises(EngineError, match="SUMO binary 'sumo-teleporter' not found"):
        binary("sumo-teleporter")


def test_failure_quotes_sumo_and_names_the_step(tmp_path: Path) -> None:
    with pytest.raises(EngineError) as info:
        run_binary("sumo", ["--net-file", "missing.net.xml"], step="simulating (seed 4)", cwd=tmp_path)
    line = info.value.user_message()
    assert line.startswith("simulating (seed 4): sumo failed (exit 1): Error: ")
    assert "missing.net.xml" in line and "\n" not in line


def test_message_keeps_errors_and_drops_warnings() -> None:
    stderr = "Warning: slow\nError: first\n\nWarning: more\nError: second\nQuitting (on error).\n"
    assert sumo_message(stderr) == "Error: first | Error: second"
    assert sumo_message("Warning: only this\n") == "Warning: only this"
    assert sumo_message("") == "no message"


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped is dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _orphan_after_killing_its_parent(tied: bool) -> int:
    """Start a child process that starts ``sleep 60`` (tied or not), SIGKILL the child; the sleep's pid."""
    code = (
        "import subprocess, sys\n"
        "from civictwin.engines.traffic.sumo import tied_to_caller\n"
        f"command = ['sleep', '60']\ncommand = tied_to_caller(command) if {tied} else command\n"
        "process = subprocess.Popen(command)\nprint(process.pid, flush=True)\nprocess.wait()\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    # Kill the parent only once the child runs `sleep`: setpriv sets the parent-death signal before it
    # execs the command, and a parent killed before that moment would not be noticed (a window of
    # microseconds at a SUMO's start, which the test must not hit).
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}/comm").read_text().strip() != "sleep" and time.monotonic() < deadline:
        time.sleep(0.01)
    parent.kill()
    parent.wait()
    return pid


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_a_binary_dies_with_the_process_that_started_it() -> None:
    pid = _orphan_after_killing_its_parent(tied=True)
    deadline = time.monotonic() + 5
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(pid)
    # without it, the orphan would have run on (the control that makes the test mean something)
    untied = _orphan_after_killing_its_parent(tied=False)
    time.sleep(0.3)
    assert _running(untied)
    os.kill(untied, 9)
