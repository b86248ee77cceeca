"""Mesoscopic runs route with customizable contraction hierarchies (CCH); micro runs keep A*.

On the 3×3 grid (200 m blocks, Main Street ``101_*`` through the middle row) a meso run routed by
CCH must still see what the network and the scenario's edits forbid: a permanent closure, a timed
works closure (a SUMO rerouter changing permissions mid-run) and a modal filter (a node's turns
removed). The expected routes are the ones ``test_sumo_run.py`` checks for micro runs.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd

from civictwin.engines.registry import intervention_catalog
from civictwin.engines.traffic.edits import apply_interventions
from civictwin.engines.traffic.engine import TrafficEngine
from civictwin.engines.traffic.network import SumoNetwork, build_sumo_network
from civictwin.engines.traffic.outputs import OutputFiles
from civictwin.engines.traffic.params import TrafficParams
from civictwin.engines.traffic.run import CarTrip, SimOptions, run_sumo, sumo_options
from civictwin.scenarios.spec import parse_scenario

Grid = tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]
CATALOG = intervention_catalog([TrafficEngine()])
CRS = "EPSG:32635"
MAIN = ["101_0", "-101_0", "101_1", "-101_1"]
MESO = SimOptions(end_s=1800, mesoscopic=True)


def network(grid: Grid, workdir: Path, *interventions: dict[str, Any]) -> SumoNetwork:
    edges, nodes = grid
    scenario = parse_scenario(
        {"name": "plan", "interventions": list(interventions)}, CATALOG, origin="plan.toml"
    )
    modified = apply_interventions(edges, scenario, crs=CRS)
    return build_sumo_network(modified.edges, nodes, workdir, additionals=modified.additionals)


def west_to_east(n: int, start_s: float = 0.0) -> list[CarTrip]:
    """Northbound in the west column to northbound in the east column: shortest along Main Street."""
    return [CarTrip(f"t{i:02d}", "200_0", "202_1", start_s + 10.0 * i) for i in range(n)]


def vehicles_on(result: Any, edge_ids: list[str]) -> int:
    return int(result.edges.set_index("edge_id").loc[edge_ids, "vehicles"].sum())


def test_meso_runs_route_with_cch_and_micro_runs_with_astar(grid: Grid, tmp_path: Path) -> None:
    net = network(grid, tmp_path / "net")
    files = OutputFiles()
    micro = sumo_options(net, TrafficParams().sim_options(), seed=1, files=files, n_trips=10)
    meso = sumo_options(net, TrafficParams(mesoscopic=True).sim_options(), seed=1, files=files, n_trips=10)
    assert micro["routing-algorithm"] == "astar" and "mesosim" not in micro
    assert meso["routing-algorithm"] == "CCH" and meso["mesosim"] == "true"
    # everything else a meso run writes is what a micro run writes, plus the meso model's own options
    assert {k: v for k, v in meso.items() if k != "routing-algorithm" and not k.startswith("meso")} == {
        k: v for k, v in micro.items() if k != "routing-algorithm"
    }
    assert (meso["device.rerouting.period"], meso["device.rerouting.adaptation-interval"]) == ("60", "10")


def test_the_generated_meso_config_names_cch(grid: Grid, tmp_path: Path) -> None:
    result = run_sumo(
        network(grid, tmp_path / "net"), west_to_east(3), seed=1, workdir=tmp_path / "run", options=MESO
    )
    config = ET.parse(tmp_path / "run" / "run.sumocfg").getroot()
    assert [e.get("value") for e in config.iter("routing-algorithm")] == ["CCH"]
    assert result.trips["arrived"].all() and vehicles_on(result, ["101_0", "101_1"]) == 6


def test_cch_respects_a_permanent_closure(grid: Grid, tmp_path: Path) -> None:
    closed = network(
        grid, tmp_path / "net", {"type": "close_streets", "streets": ["Main Street"], "modes": ["car"]}
    )
    result = run_sumo(closed, west_to_east(10), seed=1, workdir=tmp_path / "run", options=MESO)
    assert vehicles_on(result, MAIN) == 0 and result.trips["arrived"].all() and result.teleports == 0
    assert (result.trips["route_length_m"] > 590).all()  # the detour over another row


def test_cch_respects_a_works_closure_only_inside_its_window(grid: Grid, tmp_path: Path) -> None:
    works = {"type": "works_closure", "streets": ["Main Street"], "begin_s": 0, "end_s": 400}
    net = network(grid, tmp_path / "net", works)
    during = run_sumo(net, west_to_east(10), seed=1, workdir=tmp_path / "during", options=MESO)
    assert vehicles_on(during, MAIN) == 0 and during.trips["arrived"].all()
    after = run_sumo(net, west_to_east(10, start_s=600), seed=1, workdir=tmp_path / "after", options=MESO)
    assert vehicles_on(after, ["101_0", "101_1"]) == 20


def test_cch_respects_a_modal_filter(grid: Grid, tmp_path: Path, lonlat: Callable[..., Any]) -> None:
    trips = [CarTrip("through", "101_0", "101_1", 0.0)]
    filtered = network(grid, tmp_path / "f", {"type": "modal_filter", "at": lonlat(200, 200), "radius_m": 10})
    plan = run_sumo(filtered, trips, seed=1, workdir=tmp_path / "rf", options=MESO)
    assert plan.trips["arrived"].all()
    assert plan.trips["route_length_m"].iloc[0] > 1000  # round the blocks back to node 5 from the east
