"""The traffic engine on a real SUMO run of a tiny grid: determinism, mode shift after a closure, and
the engine in the generic ensemble (processes, atomic seeds, resuming, Ctrl-C, one run at a time)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from traffic_tiny_twin import CATALOG, CLOSURE, PARAMS, tiny_inputs

from civictwin.compare import compare_ensemble
from civictwin.engines.base import TwinContext
from civictwin.engines.ensemble import Ensemble, run_ensemble
from civictwin.engines.traffic.demand import DemandParams
from civictwin.engines.traffic.engine import TrafficEngine
from civictwin.engines.traffic.params import TrafficParams
from civictwin.engines.traffic.prepare import prepare_scenario
from civictwin.engines.traffic.simulate import run_scenario, simulate_seed
from civictwin.errors import QualityCheckFailed, ScenarioError
from civictwin.locking import exclusive
from civictwin.runs import COMPLETE, SEEDS_DIR, read_seed, seed_dir
from civictwin.scenarios.spec import Scenario, parse_scenario


def test_same_seed_gives_identical_results_and_a_closure_shifts_mode(tmp_path: Path) -> None:
    inputs = tiny_inputs(tmp_path)
    base = prepare_scenario(inputs, Scenario.baseline_scenario(), tmp_path / "net_base", PARAMS)
    first = simulate_seed(base, 3, tmp_path / "a")
    again = run_scenario(inputs, Scenario.baseline_scenario(), 3, tmp_path / "b", PARAMS)
    assert first.kpis == again.kpis
    assert first.edges.equals(again.edges) and first.zones.equals(again.zones)
    # demand: (500+300+300+100) residents x 0.27 trips x scale 2
    assert first.kpis["person_trips"] == pytest.approx(1200 * 0.27 * 2)
    assert sum(first.modal_split.values()) == pytest.approx(1.0)
    assert first.kpis["trips"] > 50 and first.kpis["finished_share"] == 1.0
    assert len(first.car_share_by_iteration) == 2
    # every zone's vehicle-km: the flows on the edges placed in it times their lengths
    placed = base.placement.merge(first.edges, on="edge_id")
    by_zone = (placed["flow"] * placed["length_m"] / 1000).groupby(placed["zone_id"]).sum()
    zones = first.zones.set_index("zone_id")
    assert zones.loc[by_zone.index, "vehicle_km"].to_numpy() == pytest.approx(by_zone.to_numpy())

    plan = prepare_scenario(inputs, CLOSURE, tmp_path / "net_plan", PARAMS)
    closed = simulate_seed(plan, 3, tmp_path / "c")
    main = set(inputs.edges.loc[inputs.edges["name"] == "Main Street", "edge_id"])
    on_main = closed.edges[closed.edges["edge_id"].isin(main)]
    assert len(on_main) == len(main) and (on_main["flow"] == 0).all()
    assert first.edges[first.edges["edge_id"].isin(main)]["flow"].sum() > 0
    # free-flow car times already rise without Main Street: fewer people choose the car
    assert plan.free_flow.car_min.sum() > base.free_flow.car_min.sum()
    assert closed.modal_split["car"] < first.modal_split["car"]


def test_a_seed_that_fails_the_quality_check_is_kept_and_a_failed_baseline_stops_the_comparison(
    tmp_path: Path,
) -> None:
    """No trip may be left unfinished, and the run ends with the demand window: SUMO's run fails the
    quality check. The seed is saved as a failed seed with SUMO's outputs (reused on a rerun, not
    simulated again), and a comparison against that baseline stops with one line."""
    strict = TrafficParams(
        iterations=1,
        demand_window_s=600,
        clearance_s=0,
        max_unfinished_share=0.0,
        demand=DemandParams(scale=2.0, distance="crowfly"),
    )
    engine = TrafficEngine(inputs=tiny_inputs(tmp_path), params=strict)

    def run() -> Ensemble:
        return run_ensemble(
            TwinContext(tmp_path), [Scenario.baseline_scenario(), CLOSURE], [engine], comparison_id="f",
            seeds=[1], workers=1,
        )  # fmt: skip

    first = run()
    failed = first.runs["traffic"]["baseline"][0]
    unfinished = re.fullmatch(
        r"([\d,]+) of ([\d,]+) trips did not arrive by 600 s, more than the allowed 0%: lengthen end_s or "
        r"check the demand",
        failed.failure,
    )
    assert unfinished is not None, failed.failure
    assert 0 < int(unfinished[1].replace(",", "")) <= int(unfinished[2].replace(",", ""))
    assert (failed.kpis, failed.tables) == ([], [])
    folder = seed_dir(tmp_path / "runs" / "f", "traffic", "baseline", 1)
    assert (folder / COMPLETE).is_file()
    assert (folder / "work" / "iteration_0" / "statistics.xml").is_file()  # SUMO's outputs, to see why
    saved = (folder / "run.json").read_bytes()
    again = run()
    assert again.computed == () and (folder / "run.json").read_bytes() == saved
    with pytest.raises(QualityCheckFailed) as stopped:
        compare_ensemble(again)
    assert stopped.value.user_message() == (
        "the baseline 'baseline' could not be evaluated: the simulation failed the quality check in 1 of 1 "
        f"runs (engine 'traffic', seed 1: {failed.failure}), so no plan can be compared with it"
    )


def test_a_plan_that_jams_the_tiny_grid_is_a_finding_not_an_error(tmp_path: Path) -> None:
    """Twelve times the demand on the 4 × 4 grid: many of its trips are still queueing when the run
    ends (a real SUMO run failing the quality check), while the baseline's all arrive. The plan is
    not evaluated, with SUMO's numbers in its finding; the baseline's KPIs are still reported."""
    params = TrafficParams(
        iterations=1, demand_window_s=600, demand=DemandParams(scale=20.0, distance="crowfly")
    )
    flood = parse_scenario(
        {"name": "flood", "interventions": [{"type": "scale_demand", "factor": 12}]},
        CATALOG,
        origin="flood.toml",
    )
    engine = TrafficEngine(inputs=tiny_inputs(tmp_path), params=params)
    result = run_ensemble(
        TwinContext(tmp_path), [Scenario.baseline_scenario(), flood], [engine], comparison_id="flood",
        seeds=[1], workers=2,
    )  # fmt: skip
    record = compare_ensemble(result).record
    assert record.plans == [] and [f.scenario for f in record.not_evaluated] == ["flood"]
    reason = record.not_evaluated[0].failures[0].reason
    jam = re.fullmatch(
        r"([\d,]+) of ([\d,]+) trips did not arrive by (\d+) s, more than the allowed 5%: .*", reason
    )
    assert jam is not None, reason
    assert int(jam[1].replace(",", "")) > 0.05 * int(jam[2].replace(",", ""))
    assert record.summary == [
        "'flood' could not be evaluated: the simulation failed the quality check in 1 of 1 runs (seed 1: "
        f"{reason}); under this model the plan leaves the simulated network gridlocked or its trips "
        "unfinished, and its indicators are not reported."
    ]
    baseline = record.kpi("finished_share", "baseline")
    assert (baseline.mean, baseline.n) == (1.0, 1)


def test_the_engine_in_the_ensemble_resumes_only_what_is_missing(tmp_path: Path) -> None:
    params = TrafficParams(iterations=1, demand=DemandParams(scale=1.0, distance="crowfly"))
    engine = TrafficEngine(inputs=tiny_inputs(tmp_path), params=params)
    messages: list[str] = []

    def run() -> Ensemble:
        """The same two-scenario, two-seed ensemble; a second call resumes the first."""
        return run_ensemble(
            TwinContext(tmp_path),
            [Scenario.baseline_scenario(), CLOSURE],
            [engine],
            comparison_id="t1",
            seeds=2,
            workers=2,
            progress=lambda m, done, total: messages.append(m),
        )

    ensemble = run()
    assert ensemble.directory == tmp_path / "runs" / "t1"
    runs = ensemble.runs["traffic"]
    assert [r.seed for r in runs["close_main"]] == [1, 2]
    assert (ensemble.resumed, len(ensemble.computed)) == ((), 4)
    for name in ("baseline", "close_main"):
        for seed in (1, 2):
            directory = seed_dir(ensemble.directory, "traffic", name, seed)
            assert sorted(p.name for p in directory.iterdir() if p.is_file()) == [
                "bus_lines.parquet", "complete", "counts.parquet", "edges.parquet", "run.json", "zones.parquet",
            ]  # fmt: skip
    assert runs["baseline"][0].kpi("co2_kg") != runs["baseline"][1].kpi("co2_kg")  # seeds differ
    assert runs["baseline"][0].details["iterations"] == 1
    assert runs["close_main"][0].details["changed_edges"] == 6  # Main Street's three ways, both directions
    assert runs["baseline"][0].table("zones")["zone_id"].tolist() == ["sw", "se", "nw", "ne"]

    # an interrupted seed: its folder exists but was never marked complete
    broken = seed_dir(ensemble.directory, "traffic", "close_main", 2)
    (broken / COMPLETE).unlink()
    assert read_seed(broken) is None
    stale = broken.with_name(".seed_2.partial-killed")  # staging folder of a run killed mid-way
    stale.mkdir()
    again = run()
    assert sorted(again.resumed) == [
        ("traffic", "baseline", 1),
        ("traffic", "baseline", 2),
        ("traffic", "close_main", 1),
    ]
    assert again.computed == (("traffic", "close_main", 2),)  # only the missing seed ran again
    assert "3 seed run(s) already complete, 1 to run" in messages
    assert "preparing 'baseline' for traffic" not in messages[len(messages) // 2 :]  # nothing left to prepare
    rerun = again.runs["traffic"]["close_main"][1]
    assert rerun.kpis == ensemble.runs["traffic"]["close_main"][1].kpis  # same seed, same numbers
    assert (broken / COMPLETE).is_file() and not stale.exists()

    # other parameters: nothing is reused
    halved = params.model_copy(update={"demand": DemandParams(scale=0.5, distance="crowfly")})
    other = run_ensemble(
        TwinContext(tmp_path),
        [Scenario.baseline_scenario()],
        [TrafficEngine(inputs=tiny_inputs(tmp_path), params=halved)],
        comparison_id="t1",
        seeds=[1],
        workers=1,
    )
    assert other.resumed == ()
    assert other.runs["traffic"]["baseline"][0].kpi("person_trips") == pytest.approx(
        0.5 * runs["baseline"][0].kpi("person_trips")
    )
    assert np.isfinite(other.runs["traffic"]["baseline"][0].kpi("mean_travel_time_s"))


def test_a_second_run_of_the_same_comparison_is_refused(tmp_path: Path) -> None:
    engine = TrafficEngine(inputs=tiny_inputs(tmp_path), params=PARAMS)
    directory = tmp_path / "runs" / "busy"
    with exclusive(directory / ".lock", wait=False), pytest.raises(ScenarioError) as refused:  # the other run
        run_ensemble(
            TwinContext(tmp_path),
            [Scenario.baseline_scenario()],
            [engine],
            comparison_id="busy",
            seeds=[1],
            workers=1,
        )
    assert refused.value.user_message() == (
        f"{directory}: comparison 'busy' is already running in another process; wait for it to finish "
        "or give this one another --id"
    )
    assert not (directory / SEEDS_DIR).exists() and not (directory / "work").exists()  # nothing touched


INTERRUPTED_ENSEMBLE = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from traffic_tiny_twin import PARAMS, tiny_inputs
from civictwin.engines.base import TwinContext
from civictwin.engines.ensemble import run_ensemble
from civictwin.engines.traffic.engine import TrafficEngine
from civictwin.scenarios.spec import Scenario
twin = TwinContext(Path(sys.argv[1]))
engine = TrafficEngine(inputs=tiny_inputs(twin.twin_dir), params=PARAMS)
run_ensemble(twin, [Scenario.baseline_scenario()], [engine], comparison_id="c", seeds=[1], workers=1)
print("seed 1 complete", flush=True)
try:  # seed 1 is resumed: one worker runs seed 2 while the other waits idle
    run_ensemble(twin, [Scenario.baseline_scenario()], [engine], comparison_id="c", seeds=[1, 2], workers=2)
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
    seeds = tmp_path / "runs" / "c" / SEEDS_DIR / "traffic" / "baseline"
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
