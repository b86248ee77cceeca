"""The scenario pipeline on a real SUMO run of a tiny grid: determinism, mode shift after a closure,
ensembles in processes, atomic seed results and resuming."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from traffic_tiny_twin import CLOSURE, PARAMS, tiny_inputs

from civictwin.engines.traffic.demand import DemandParams
from civictwin.engines.traffic.pipeline import (
    COMPLETE,
    SEEDS_DIR,
    Ensemble,
    PipelineParams,
    complete_run,
    prepare_scenario,
    run_and_save,
    run_ensemble,
    run_prepared,
    run_scenario,
    seed_dir,
)
from civictwin.errors import EngineError, ScenarioError
from civictwin.locking import exclusive
from civictwin.scenarios.spec import Scenario


def test_same_seed_gives_identical_results_and_a_closure_shifts_mode(tmp_path: Path) -> None:
    inputs = tiny_inputs(tmp_path)
    base = prepare_scenario(inputs, Scenario.baseline_scenario(), tmp_path / "net_base", PARAMS)
    first = run_prepared(base, 3, tmp_path / "a", PARAMS)
    again = run_scenario(inputs, Scenario.baseline_scenario(), 3, tmp_path / "b", PARAMS)
    assert first.kpis == again.kpis
    assert first.edges.equals(again.edges)
    # demand: (500+300+300+100) residents x 0.27 trips x scale 2
    assert first.kpis["person_trips"] == pytest.approx(1200 * 0.27 * 2)
    assert sum(first.modal_split.values()) == pytest.approx(1.0)
    assert first.kpis["trips"] > 50 and first.kpis["finished_share"] == 1.0
    assert len(first.car_share_by_iteration) == 2

    plan = prepare_scenario(inputs, CLOSURE, tmp_path / "net_plan", PARAMS)
    closed = run_prepared(plan, 3, tmp_path / "c", PARAMS)
    main = set(inputs.edges.loc[inputs.edges["name"] == "Main Street", "edge_id"])
    on_main = closed.edges[closed.edges["edge_id"].isin(main)]
    assert len(on_main) == len(main) and (on_main["flow"] == 0).all()
    assert first.edges[first.edges["edge_id"].isin(main)]["flow"].sum() > 0
    # free-flow car times already rise without Main Street: fewer people choose the car
    assert plan.free_flow.car_min.sum() > base.free_flow.car_min.sum()
    assert closed.modal_split["car"] < first.modal_split["car"]


def test_a_failed_seed_leaves_nothing_behind(tmp_path: Path) -> None:
    inputs = tiny_inputs(tmp_path)
    strict = PipelineParams(
        iterations=1,
        demand_window_s=600,
        clearance_s=0,
        max_unfinished_share=0.0,
        demand=DemandParams(scale=2.0, distance="crowfly"),
    )
    prepared = prepare_scenario(inputs, Scenario.baseline_scenario(), tmp_path / "net", strict)
    final = seed_dir(tmp_path / "cmp", "baseline", 1)
    with pytest.raises(EngineError):
        run_and_save(prepared, 1, final, strict)
    assert not final.exists()
    assert list(final.parent.iterdir()) == []  # the staging folder is gone too


def test_ensemble_runs_in_processes_and_resumes(tmp_path: Path) -> None:
    inputs = tiny_inputs(tmp_path)
    params = PipelineParams(iterations=1, demand=DemandParams(scale=1.0, distance="crowfly"))
    messages: list[str] = []

    def run() -> Ensemble:
        """The same two-scenario, two-seed ensemble; a second call resumes the first."""
        return run_ensemble(
            inputs,
            [Scenario.baseline_scenario(), CLOSURE],
            comparison_id="t1",
            seeds=2,
            workers=2,
            params=params,
            progress=lambda m, done, total: messages.append(m),
        )

    ensemble = run()
    assert ensemble.comparison_dir == tmp_path / "runs" / "t1"
    assert [r.seed for r in ensemble.runs["close_main"]] == [1, 2]
    assert ensemble.resumed == []
    for name in ("baseline", "close_main"):
        for seed in (1, 2):
            directory = seed_dir(ensemble.comparison_dir, name, seed)
            assert (directory / COMPLETE).is_file() and (directory / "run.json").is_file()
    # seeds differ, so runs differ
    assert ensemble.runs["baseline"][0].kpis != ensemble.runs["baseline"][1].kpis

    # an interrupted seed: its folder exists but was never marked complete
    broken = seed_dir(ensemble.comparison_dir, "close_main", 2)
    (broken / COMPLETE).unlink()
    assert complete_run(broken, ensemble.prepared["close_main"].fingerprint) is None
    stale = broken.with_name(".seed_2.partial-killed")  # staging folder of a run killed mid-way
    stale.mkdir()
    again = run()
    assert sorted(again.resumed) == [("baseline", 1), ("baseline", 2), ("close_main", 1)]
    assert "3 seed run(s) already complete, 1 to run" in messages
    assert again.runs["close_main"][1].kpis == ensemble.runs["close_main"][1].kpis  # same seed, same numbers
    assert (broken / COMPLETE).is_file()
    assert not stale.exists()

    # other parameters: nothing is reused
    other = run_ensemble(
        inputs,
        [Scenario.baseline_scenario()],
        comparison_id="t1",
        seeds=[1],
        workers=1,
        params=params.model_copy(update={"demand": DemandParams(scale=0.5, distance="crowfly")}),
    )
    assert other.resumed == []
    assert other.runs["baseline"][0].kpis["person_trips"] == pytest.approx(
        0.5 * ensemble.runs["baseline"][0].kpis["person_trips"]
    )
    assert np.isfinite(other.runs["baseline"][0].kpis["mean_travel_time_s"])


def test_a_second_run_of_the_same_comparison_is_refused(tmp_path: Path) -> None:
    inputs = tiny_inputs(tmp_path)
    directory = tmp_path / "runs" / "busy"
    with exclusive(directory / ".lock", wait=False), pytest.raises(ScenarioError) as refused:  # the other run
        run_ensemble(
            inputs, [Scenario.baseline_scenario()], comparison_id="busy", seeds=[1], workers=1, params=PARAMS
        )
    assert refused.value.user_message() == (
        f"{directory}: comparison 'busy' is already running in another process; wait for it to finish "
        "or give this one another --id"
    )
    assert not (directory / SEEDS_DIR).exists() and not (directory / "networks").exists()  # nothing touched


INTERRUPTED_ENSEMBLE = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from traffic_tiny_twin import PARAMS, tiny_inputs
from civictwin.engines.traffic.pipeline import run_ensemble
from civictwin.scenarios.spec import Scenario
inputs = tiny_inputs(Path(sys.argv[1]))
run_ensemble(inputs, [Scenario.baseline_scenario()], comparison_id="c", seeds=[1], workers=1, params=PARAMS)
print("seed 1 complete", flush=True)
try:  # seed 1 is resumed: one worker runs seed 2 while the other waits idle
    run_ensemble(inputs, [Scenario.baseline_scenario()], comparison_id="c", seeds=[1, 2], workers=2, params=PARAMS)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def test_ctrl_c_stops_the_ensemble_cleanly(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the whole process group) mid-run: no traceback from the workers, the running
    seed leaves neither a result nor a staging folder, and the completed seed stays complete."""
    process = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_ENSEMBLE, str(tmp_path), str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    seeds = tmp_path / "runs" / "c" / SEEDS_DIR / "baseline"
    deadline = time.monotonic() + 120
    while (
        not list(seeds.glob(".seed_2.partial-*")) and process.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert (process.returncode, out.splitlines()) == (130, ["seed 1 complete", "interrupted"]), err
    assert "Traceback" not in err
    assert sorted(p.name for p in seeds.iterdir()) == ["seed_1"]
    assert (seeds / "seed_1" / COMPLETE).is_file()
