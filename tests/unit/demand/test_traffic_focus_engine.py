"""A focus area in the traffic engine: the tiny twin's whole city run mesoscopically, zone ``ne``
re-simulated microscopically on the traffic that entered it, its KPIs named ``focus_*``.

Checked independently: the number of focus visits equals the number of vehicles of the city run whose
route (SUMO's vehroute output of the last round) uses an edge of the area, the area's edges are those
crossing zone ``ne``'s square, and the report says which model each group of KPIs comes from.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from traffic_tiny_twin import PARAMS, tiny_inputs

from civictwin.engines.traffic.focus import focus_edges, simulation_levels
from civictwin.engines.traffic.kpis import FOCUS_KPI_UNITS, as_kpis
from civictwin.engines.traffic.outputs import OutputFiles
from civictwin.engines.traffic.prepare import prepare_scenario
from civictwin.engines.traffic.simulate import simulate_seed
from civictwin.errors import EngineError
from civictwin.scenarios.spec import Scenario

FOCUS = PARAMS.model_copy(update={"mesoscopic": True, "focus_zones": ("ne",)})


def _visits(routes: Path, area: frozenset[str]) -> int:
    """Vehicles whose route uses an edge of ``area`` at least once (cut into one route per visit)."""
    visits = 0
    for vehicle in ET.parse(routes).getroot().iter("vehicle"):
        route = vehicle.find("route")
        inside = [edge in area for edge in (route.get("edges", "") if route is not None else "").split()]
        visits += sum(1 for i, here in enumerate(inside) if here and (i == 0 or not inside[i - 1]))
    return visits


def test_the_focus_zone_is_simulated_micro_on_the_city_runs_traffic(tmp_path: Path) -> None:
    inputs = tiny_inputs(tmp_path)
    prepared = prepare_scenario(inputs, Scenario.baseline_scenario(), tmp_path / "net", FOCUS)
    outcome = simulate_seed(prepared, 2, tmp_path / "seed")
    ne = inputs.zones.set_index("zone_id").geometry["ne"]
    area = focus_edges(prepared.network, prepared.edges, ne)
    crossing = set(prepared.edges.loc[prepared.edges.geometry.intersects(ne), "edge_id"])
    carried = prepared.network.chains.set_index("edge_id")["sumo_edge"].astype(str).to_dict()
    assert area == {carried.get(e, e) for e in crossing if e in prepared.network.edge_ids}
    routes = tmp_path / "seed" / f"iteration_{FOCUS.iterations - 1}" / OutputFiles().routes
    assert outcome.kpis["focus_trips"] == _visits(routes, area) > 0
    assert outcome.kpis["focus_unfinished"] == 0
    assert 0 < outcome.kpis["focus_mean_travel_time_s"] < outcome.kpis["mean_travel_time_s"] * 3
    labels = {k.name: k.label for k in as_kpis(outcome.kpis)}
    assert set(FOCUS_KPI_UNITS) <= set(labels)
    assert labels["focus_total_delay_h"] == "Focus area (microscopic): total car delay inside it"
    assert simulation_levels(FOCUS) == (
        "City-wide KPIs from SUMO's mesoscopic model; focus_* KPIs from a microscopic run of zone(s) ne "
        "on the city run's traffic entering them."
    )


def test_a_focus_zone_the_twin_lacks_is_named(tmp_path: Path) -> None:
    inputs = tiny_inputs(tmp_path)
    params = FOCUS.model_copy(update={"focus_zones": ("ne", "harbour")})
    prepared = prepare_scenario(inputs, Scenario.baseline_scenario(), tmp_path / "net", params)
    with pytest.raises(
        EngineError, match=r"focus_zones: zone\(s\) harbour are not analysis zones of the twin"
    ):
        simulate_seed(prepared, 2, tmp_path / "seed")


def test_without_focus_zones_there_are_no_focus_kpis() -> None:
    assert simulation_levels(PARAMS) == "City-wide KPIs from SUMO's microscopic model."
    assert not set(FOCUS_KPI_UNITS) & {k.name for k in as_kpis({"trips": 1.0, "person_trips": 2.0})}
