"""Locating SUMO from the eclipse-sumo wheel and turning its failures into one-line errors."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
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
