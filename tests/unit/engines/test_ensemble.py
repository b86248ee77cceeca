"""The generic ensemble's checks on what an engine returns: every declared table complete, unique
keys and KPI names, an EngineResult at all; each failure one line naming engine, scenario and seed,
with nothing of the failed seed left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from plugin import PLUGINS

from civictwin.engines.base import TwinContext
from civictwin.engines.ensemble import run_ensemble, seed_list
from civictwin.errors import EngineError, ScenarioError
from civictwin.runs import read_seed, seed_dir
from civictwin.scenarios.spec import Scenario


@pytest.fixture
def broken(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(PLUGINS))
    from civictwin_toy.broken import BrokenEngine

    return BrokenEngine


def run(tmp_path: Path, engine: Any) -> Any:
    return run_ensemble(
        TwinContext(tmp_path),
        [Scenario.baseline_scenario()],
        [engine],
        comparison_id="c",
        seeds=[1],
        workers=1,
    )


@pytest.mark.parametrize(
    ("flaw", "problem"),
    [
        ("not-a-result", "run() returned dict, not an EngineResult"),
        ("no-table", "the result lacks the declared table 'things'"),
        ("no-column", "table 'things' lacks column(s) size"),
        ("repeated-keys", "table 'things' repeats keys (thing)"),
        ("repeated-kpi", "KPI names repeat (size_m, size_m)"),
    ],
)
def test_a_result_other_than_declared_is_one_line(
    tmp_path: Path, broken: Any, flaw: str, problem: str
) -> None:
    with pytest.raises(EngineError) as failed:
        run(tmp_path, broken(flaw))
    assert failed.value.user_message() == f"engine 'broken', scenario 'baseline', seed 1: {problem}"
    folder = seed_dir(tmp_path / "runs" / "c", "broken", "baseline", 1)
    assert not folder.parent.exists() or list(folder.parent.iterdir()) == []


def test_a_correct_result_is_saved_with_its_own_geometry(tmp_path: Path, broken: Any) -> None:
    ensemble = run(tmp_path, broken("none"))
    saved = read_seed(seed_dir(ensemble.directory, "broken", "baseline", 1))
    assert saved is not None and saved.kpi("size_m") == 1.0 and saved.tables == ["things"]
    assert saved.table("things")["size"].tolist() == [1.0, 2.0]
    assert ensemble.parameters == {"broken": {"flaw": "none"}}


def test_a_failing_prepare_names_engine_and_scenario(tmp_path: Path, broken: Any) -> None:
    with pytest.raises(EngineError) as failed:
        run(tmp_path, broken("prepare-fails"))
    assert failed.value.user_message() == (
        "engine 'broken' failed to prepare scenario 'baseline': KeyError: 'no such column'"
    )


def test_seeds_and_names() -> None:
    assert seed_list(3) == (1, 2, 3) and seed_list([4, 2, 4]) == (4, 2)
    with pytest.raises(ScenarioError, match="at least 1"):
        seed_list(0)
    with pytest.raises(ScenarioError, match="scenario names must differ"):
        run_ensemble(
            TwinContext(Path(".")), [Scenario.baseline_scenario()] * 2, [], comparison_id="x", seeds=[1]
        )


EXIT_PROGRAM = """
import gc, sys
from civictwin.engines.ensemble import init_seed_process
if sys.argv[2] == "worker":
    init_seed_process(None)
gc.disable()
class Held:
    def __del__(self, write=open, marker=sys.argv[1]):
        write(marker, "w").write("collected")
held = Held()
held.itself = held
del held
"""


@pytest.mark.parametrize(("process", "collected"), [("plain", True), ("worker", False)])
def test_a_seed_worker_leaves_its_heap_to_the_system_at_exit(
    tmp_path: Path, process: str, collected: bool
) -> None:
    """The pool's shutdown waits for each worker to exit; a worker skips the interpreter's last cyclic
    collection (a reference cycle's __del__ never runs in it), which a plain process still does."""
    marker = tmp_path / "collected"
    subprocess.run([sys.executable, "-c", EXIT_PROGRAM, str(marker), process], check=True)
    assert marker.exists() is collected
