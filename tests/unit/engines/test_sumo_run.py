"""SUMO runs on the 3×3 grid: closures really stop cars, seeds reproduce, quality limits fail loudly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest

from civictwin.engines.registry import intervention_catalog
from civictwin.engines.traffic.edits import apply_interventions
from civictwin.engines.traffic.engine import TrafficEngine
from civictwin.engines.traffic.network import SumoNetwork, build_sumo_network
from civictwin.engines.traffic.outputs import EDGE_COLUMNS, TRIP_COLUMNS, OutputFiles
from civictwin.engines.traffic.run import CarTrip, SimOptions, run_sumo, sumo_options
from civictwin.errors import EngineError
from civictwin.scenarios.spec import parse_scenario

CATALOG = intervention_catalog([TrafficEngine()])

CRS = "EPSG:32635"
Grid = tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]
MAIN = ["101_0", "-101_0", "101_1", "-101_1"]
OPTIONS = SimOptions(end_s=1800)


def network(
    grid: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame], workdir: Path, *interventions: dict[str, Any]
) -> SumoNetwork:
    edges, nodes = grid
    scenario = parse_scenario(
        {"name": "plan", "interventions": list(interventions)}, CATALOG, origin="plan.toml"
    )
    modified = apply_interventions(edges, scenario, crs=CRS)
    return build_sumo_network(modified.edges, nodes, workdir, additionals=modified.additionals)


def west_to_east(n: int = 30, start_s: float = 0.0) -> list[CarTrip]:
    """Trips from the west column (northbound into node 4) to the east column (north from node 6).

    The shortest route is along Main Street (4 → 5 → 6).
    """
    return [CarTrip(f"t{i:02d}", "200_0", "202_1", start_s + 10.0 * i) for i in range(n)]


def vehicles_on(result: Any, edge_ids: list[str]) -> int:
    return int(result.edges.set_index("edge_id").loc[edge_ids, "vehicles"].sum())


def test_baseline_uses_main_street_and_outputs_are_tidy(grid: Grid, tmp_path: Path) -> None:
    result = run_sumo(
        network(grid, tmp_path / "net"), west_to_east(), seed=1, workdir=tmp_path / "run", options=OPTIONS
    )
    assert list(result.edges.columns) == EDGE_COLUMNS and list(result.trips.columns) == TRIP_COLUMNS
    assert len(result.edges) == 24 and len(result.trips) == 30
    assert result.trips["arrived"].all() and result.unfinished == 0 and result.teleports == 0
    assert result.inserted == result.loaded == 30
    assert vehicles_on(result, ["101_0", "101_1"]) == 60  # every trip drives both Main Street segments
    assert vehicles_on(result, ["200_0"]) == 30 and vehicles_on(result, ["100_0", "-100_0"]) == 0
    assert (result.trips["CO2_g"] > 0).any() and result.edges["CO2_g"].sum() > 0
    used = result.edges[result.edges["vehicles"] > 0]
    assert used["noise_dB"].between(30, 90).all() and used["speed_ms"].gt(0).all()
    assert result.edges.loc[result.edges["vehicles"] == 0, "noise_dB"].isna().all()
    assert result.sumo_version.startswith("Eclipse SUMO sumo") and result.wall_s > 0


def test_closure_stops_cars_on_closed_edges(grid: Grid, tmp_path: Path) -> None:
    closed = network(
        grid, tmp_path / "net", {"type": "close_streets", "streets": ["Main Street"], "modes": ["car"]}
    )
    result = run_sumo(closed, west_to_east(), seed=1, workdir=tmp_path / "run", options=OPTIONS)
    assert vehicles_on(result, MAIN) == 0
    assert result.trips["arrived"].all() and result.teleports == 0
    assert (result.trips["route_length_m"] > 590).all()  # the detour over another row


def test_works_closure_applies_only_inside_its_window(grid: Grid, tmp_path: Path) -> None:
    works = {"type": "works_closure", "streets": ["Main Street"], "begin_s": 0, "end_s": 400}
    net = network(grid, tmp_path / "net", works)
    during = run_sumo(net, west_to_east(10), seed=1, workdir=tmp_path / "during", options=OPTIONS)
    assert vehicles_on(during, MAIN) == 0 and during.trips["arrived"].all()
    after = run_sumo(net, west_to_east(10, start_s=600), seed=1, workdir=tmp_path / "after", options=OPTIONS)
    assert vehicles_on(after, ["101_0", "101_1"]) == 20


def test_modal_filter_forces_the_long_way_round(
    grid: Grid, tmp_path: Path, lonlat: Callable[..., Any]
) -> None:
    trips = [CarTrip("through", "101_0", "101_1", 0.0)]
    base = run_sumo(network(grid, tmp_path / "b"), trips, seed=1, workdir=tmp_path / "rb", options=OPTIONS)
    filtered = network(grid, tmp_path / "f", {"type": "modal_filter", "at": lonlat(200, 200), "radius_m": 10})
    plan = run_sumo(filtered, trips, seed=1, workdir=tmp_path / "rf", options=OPTIONS)
    assert base.trips["route_length_m"].iloc[0] < 420  # straight through node 5
    assert plan.trips["arrived"].all()
    assert (
        plan.trips["route_length_m"].iloc[0] > 1000
    )  # U-turn and round the blocks back to node 5 from the east


def test_same_seed_same_results_other_seed_differs(grid: Grid, tmp_path: Path) -> None:
    net = network(grid, tmp_path / "net")
    runs = [
        run_sumo(net, west_to_east(), seed=s, workdir=tmp_path / f"r{i}", options=OPTIONS)
        for i, s in enumerate((7, 7, 8))
    ]
    pd.testing.assert_frame_equal(runs[0].edges, runs[1].edges)
    pd.testing.assert_frame_equal(runs[0].trips, runs[1].trips)
    assert not runs[0].trips["duration_s"].equals(runs[2].trips["duration_s"])


def test_too_many_unfinished_trips_fail_loudly(grid: Grid, tmp_path: Path) -> None:
    net = network(grid, tmp_path / "net")
    with pytest.raises(EngineError) as info:
        run_sumo(net, west_to_east(), seed=1, workdir=tmp_path / "run", options=SimOptions(end_s=120))
    message = info.value.user_message()
    assert message.startswith("quality check (seed 1, outputs in ")
    assert "trips did not arrive by 120 s, more than the allowed 5%" in message


def test_mesoscopic_run(grid: Grid, tmp_path: Path) -> None:
    options = SimOptions(end_s=1800, mesoscopic=True)
    result = run_sumo(
        network(grid, tmp_path / "net"), west_to_east(10), seed=1, workdir=tmp_path / "run", options=options
    )
    assert result.trips["arrived"].all() and vehicles_on(result, ["101_0"]) == 10


def test_trips_on_unknown_edges_are_refused(grid: Grid, tmp_path: Path) -> None:
    net = network(grid, tmp_path / "net")
    with pytest.raises(EngineError, match=r"trips: trips use edge\(s\) 999_0 that the SUMO network lacks"):
        run_sumo(net, [CarTrip("x", "999_0", "101_0", 0)], seed=1, workdir=tmp_path / "run", options=OPTIONS)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fleet_mix": {"HBEFA4/PC_BEV": 0.5}}, "fleet_mix: shares must sum to 1"),
        ({"max_teleport_share": 2.0}, "max_teleport_share: must be a share in"),
        ({"end_s": 0}, "end_s: must be positive"),
        ({"rerouting_adaptation_s": 0}, r"rerouting_adaptation_s: must be in \(0, 180\] seconds"),
    ],
)
def test_bad_options(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(EngineError, match=message):
        SimOptions(**{"end_s": 60, **kwargs})


def test_sumo_failure_names_the_step_and_quotes_sumo(grid: Grid, tmp_path: Path) -> None:
    net = network(grid, tmp_path / "net")
    options = SimOptions(end_s=600, fleet_mix={"HBEFA4/no_such_class": 1.0})
    with pytest.raises(EngineError) as info:
        run_sumo(net, west_to_east(2), seed=3, workdir=tmp_path / "run", options=options)
    message = info.value.user_message()
    assert message.startswith("simulating (seed 3): sumo failed (exit 1): Error:")
    assert "no_such_class" in message


PERFECT = SimOptions(end_s=1800, speed_deviation=0, driver_imperfection=0)


def test_merged_network_gives_the_unmerged_results_per_twin_edge(blocks: Grid, tmp_path: Path) -> None:
    """Trips starting and ending on twin edges inside merged SUMO edges count where they did before.

    In ``blocks`` Main Street's ``101_0``+``101_1`` (and ``101_2``+``101_3``, and the reverse pairs) are
    one SUMO edge each: ``101_1`` starts 100 m into its SUMO edge, ``-101_1`` ends 100 m into its own.
    """
    edges, nodes = blocks
    trips = [CarTrip(f"w{i}", "200_0", "204_1", 10.0 * i) for i in range(8)]  # along Main Street
    trips += [CarTrip("u", "101_1", "-101_1", 5.0), CarTrip("v", "-101_2", "101_2", 25.0)]
    trips += [CarTrip("x", "101_0", "101_0", 45.0), CarTrip("y", "-100_2", "102_1", 65.0)]
    runs = {}
    for merge in (True, False):
        net = build_sumo_network(edges, nodes, tmp_path / f"net_{merge}", merge_chains=merge)
        runs[merge] = run_sumo(net, trips, seed=1, workdir=tmp_path / f"run_{merge}", options=PERFECT)
    merged, single = runs[True], runs[False]
    assert merged.trips["arrived"].all() and single.trips["arrived"].all()
    pd.testing.assert_series_equal(merged.edges["vehicles"], single.edges["vehicles"])
    pd.testing.assert_series_equal(merged.edges["entered"], single.edges["entered"])
    # the same routes: the unmerged network adds the few decimetres of its straight junctions' lanes
    lengths = merged.trips["route_length_m"] - single.trips["route_length_m"]
    assert lengths.between(-1.0, 0.05).all() and (lengths < -0.1).any()
    assert (merged.trips["duration_s"] - single.trips["duration_s"]).abs().max() <= 1.0
    for column in ("sampled_s", "distance_m", "CO2_g"):
        assert merged.edges[column].sum() == pytest.approx(single.edges[column].sum(), rel=0.01)


def test_a_run_ends_with_its_last_vehicle_and_reports_the_full_period(grid: Grid, tmp_path: Path) -> None:
    net = network(grid, tmp_path / "net")
    trips = west_to_east(10)
    early = run_sumo(net, trips, seed=2, workdir=tmp_path / "early", options=OPTIONS)
    late = run_sumo(
        net, trips, seed=2, workdir=tmp_path / "late", options=SimOptions(end_s=1800, stop_when_done=False)
    )
    written = pd.read_csv(tmp_path / "early" / "edges.traffic.csv", sep=";")["interval_end"].iloc[0]
    assert written < 400 and pd.read_csv(tmp_path / "late" / "edges.traffic.csv", sep=";")[
        "interval_end"
    ].iloc[0] == pytest.approx(1800)
    pd.testing.assert_frame_equal(early.trips, late.trips)
    same = [c for c in EDGE_COLUMNS if c not in ("density", "noise_dB")]
    pd.testing.assert_frame_equal(early.edges[same], late.edges[same])
    # SUMO writes two decimals: density and noise rescaled from the shorter interval agree to rounding
    assert (early.edges["density"] - late.edges["density"]).abs().max() <= 0.01
    assert (early.edges["noise_dB"] - late.edges["noise_dB"]).abs().max() <= 0.01


def test_run_options_refresh_edge_speeds_every_10_s_over_180_s(grid: Grid, tmp_path: Path) -> None:
    net = network(grid, tmp_path / "net")
    options = sumo_options(net, OPTIONS, seed=1, files=OutputFiles(), n_trips=99)
    assert options["device.rerouting.adaptation-interval"] == "10"
    assert options["device.rerouting.adaptation-steps"] == "18"
    assert "end" not in options and options["max-depart-delay"] == "1800"
    assert options["max-num-teleports"] == "4"  # 5% of 99 trips, rounded down
    fixed = sumo_options(
        net,
        SimOptions(end_s=900, rerouting_adaptation_s=1, stop_when_done=False),
        seed=1,
        files=OutputFiles(),
        n_trips=99,
    )
    assert fixed["end"] == "900" and "max-num-teleports" not in fixed
    assert (fixed["device.rerouting.adaptation-interval"], fixed["device.rerouting.adaptation-steps"]) == (
        "1",
        "180",
    )
