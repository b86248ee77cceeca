"""Scenario preparation without simulating: demand interventions, transit frequency, chains, parameters."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer
from traffic_tiny_twin import CATALOG, CLOSURE, PARAMS, tiny_inputs

from civictwin.engines.traffic.demand import DemandError, zone_edges
from civictwin.engines.traffic.modechoice import (
    ModeChoiceParams,
    car_times,
    level_of_service,
    transit_access,
)
from civictwin.engines.traffic.params import load_params
from civictwin.engines.traffic.prepare import prepare_scenario
from civictwin.errors import ConfigError, ScenarioError
from civictwin.scenarios.library import copy_builtin_scenarios, resolve_chain
from civictwin.scenarios.spec import Scenario, parse_scenario

TO_WGS84 = Transformer.from_crs("EPSG:32635", "EPSG:4326", always_xy=True)
MAIN = {"102_0", "-102_0", "102_1", "-102_1", "102_2", "-102_2"}


def scenario(name: str, *interventions: dict[str, object], baseline: str = "baseline") -> Scenario:
    data = {"name": name, "baseline": baseline, "interventions": list(interventions)}
    return parse_scenario(data, CATALOG, origin=f"{name}.toml")


def test_growth_and_event_layers(tmp_path: Path) -> None:
    inputs = tiny_inputs(tmp_path)
    base = prepare_scenario(inputs, Scenario.baseline_scenario(), tmp_path / "a", PARAMS)
    # an event of 200 trips to the north-east zone, on Col 2 Avenue ((400, 500) m from the grid origin)
    lon, lat = TO_WGS84.transform(385_400.0, 6_671_500.0)
    plan = scenario(
        "event",
        {"type": "scale_demand", "factor": 1.5},
        {
            "type": "scale_demand",
            "at": [lon, lat],
            "extra_trips": 200,
            "begin_s": 600,
            "end_s": 1200,
            "radius_m": 50,
            "direction": "to",
        },
    )
    prepared = prepare_scenario(inputs, plan, tmp_path / "b", PARAMS)
    assert len(prepared.layers) == 2
    grown, event = prepared.layers
    assert grown.od.total == pytest.approx(1.5 * base.layers[0].od.total)
    assert event.od.total == pytest.approx(200.0)
    assert event.od.trips[:, 3].sum() == pytest.approx(200.0)  # all into 'ne'
    assert (event.begin_s, event.end_s, event.prefix) == (600, 1200, "e0x")
    # event car trips end on the car edges within 50 m of the point: both directions of Col 2 Avenue
    assert event.edges_by_zone["ne"] == ["-202_2", "202_2"]
    assert len(base.layers[0].edges_by_zone["ne"]) == 8
    assert prepared.person_trips.total == pytest.approx(grown.od.total + 200.0)
    with pytest.raises(DemandError, match="lies in no zone"):
        far = scenario("far", {"type": "scale_demand", "at": [25.5, 60.5], "extra_trips": 5})
        prepare_scenario(inputs, far, tmp_path / "c", PARAMS)


def test_transit_frequency_changes_waits_at_the_route_stops(tmp_path: Path) -> None:
    import geopandas as gpd
    from shapely.geometry import Point

    inputs = tiny_inputs(tmp_path)
    stops = gpd.GeoDataFrame(
        {"feed": ["f", "f"], "stop_id": ["s1", "s2"]},
        geometry=[Point(385_100, 6_671_100), Point(385_500, 6_671_500)],
        crs=inputs.crs,
    )
    frequency = pd.DataFrame(
        {"feed": ["f", "f"], "stop_id": ["s1", "s2"], "hour": [8, 8], "departures": [6, 6]}
    )
    # s1 is served by route 4 (3 trips) and 7 (1 trip); s2 only by route 7
    routes = pd.DataFrame(
        {
            "feed": ["f", "f", "f"],
            "stop_id": ["s1", "s1", "s2"],
            "route_id": ["r4", "r7", "r7"],
            "route_short_name": ["4", "7", "7"],
            "trips": [3, 1, 2],
        }
    )
    inputs = inputs.__class__(
        **{**inputs.__dict__, "stops": stops, "stop_frequency": frequency, "stop_routes": routes}
    )
    params = PARAMS.model_copy(update={"mode_choice": ModeChoiceParams(pt_access_max_m=300)})
    base = prepare_scenario(inputs, Scenario.baseline_scenario(), tmp_path / "a", params)
    doubled = prepare_scenario(
        inputs,
        scenario("more4", {"type": "transit_frequency", "route": "4", "factor": 2}),
        tmp_path / "b",
        params,
    )
    # zone sw uses s1: 6 departures -> 6 x (1 + (2-1) x 3/4) = 10.5; wait 60/10.5/2 minutes
    assert base.free_flow.pt_wait_min[0, 1] == pytest.approx(5.0)
    assert doubled.free_flow.pt_wait_min[0, 1] == pytest.approx(60 / 10.5 / 2)
    assert doubled.free_flow.pt_wait_min[3, 0] == pytest.approx(5.0)  # ne uses s2: route 7 only
    assert doubled.transit_source == "gtfs"
    with pytest.raises(ScenarioError, match="route '99' is not in the twin's GTFS routes"):
        prepare_scenario(
            inputs,
            scenario("x", {"type": "transit_frequency", "route": "99", "factor": 2}),
            tmp_path / "c",
            PARAMS,
        )


def test_scenarios_derive_from_scenarios(tmp_path: Path) -> None:
    (tmp_path / "shut.toml").write_text(
        'name = "shut"\n[[interventions]]\ntype = "close_streets"\nstreets = ["Main Street"]\nmodes = ["car"]\n'
    )
    child = scenario(
        "shut_and_slow",
        {"type": "speed_limit", "streets": ["Col 0 Avenue"], "speed_kmh": 20},
        baseline="shut",
    )
    resolved = resolve_chain(child, tmp_path, CATALOG)
    assert [i.type for i in resolved.interventions] == ["close_streets", "speed_limit"]
    with pytest.raises(ScenarioError, match="baseline 'nope' has no file"):
        resolve_chain(scenario("orphan", baseline="nope"), tmp_path, CATALOG)
    (tmp_path / "loop.toml").write_text('name = "loop"\nbaseline = "loop"\n')
    with pytest.raises(ScenarioError, match="makes a cycle"):
        resolve_chain(scenario("loop", baseline="loop"), tmp_path, CATALOG)


def test_parameters_file_and_overrides(tmp_path: Path) -> None:
    assert load_params(tmp_path).iterations == 3
    (tmp_path / "traffic.toml").write_text("iterations = 4\n[demand]\nscale = 0.5\n")
    params = load_params(tmp_path, iterations=2, mesoscopic=None)
    assert (params.iterations, params.demand.scale, params.mesoscopic) == (2, 0.5, False)
    (tmp_path / "traffic.toml").write_text("[mode_choice]\nwalk_speed = 5\n")
    with pytest.raises(ConfigError, match=r"traffic.toml: mode_choice.walk_speed: unknown key"):
        load_params(tmp_path)
    (tmp_path / "traffic.toml").write_text("iterations = 0\n")
    with pytest.raises(ConfigError, match="iterations: Input should be greater than or equal to 1"):
        load_params(tmp_path)


def test_a_twin_without_residents_has_nothing_to_simulate(tmp_path: Path) -> None:
    inputs = tiny_inputs(tmp_path)
    empty = inputs.__class__(**{**inputs.__dict__, "zones": inputs.zones.assign(population=0.0)})
    with pytest.raises(DemandError, match="zones: no trips to simulate"):
        prepare_scenario(empty, Scenario.baseline_scenario(), tmp_path / "a", PARAMS)


def test_builtin_scenarios_are_copied_once(tmp_path: Path) -> None:
    copied = copy_builtin_scenarios(tmp_path)
    assert sorted(p.name for p in copied) == [
        "close_main_street.toml",
        "green_main_street.toml",
        "netzero_zone.toml",
        "zone_30.toml",
    ]
    (tmp_path / "scenarios" / "zone_30.toml").write_text('name = "zone_30"\n')  # edited by the user
    assert copy_builtin_scenarios(tmp_path) == []
    assert (tmp_path / "scenarios" / "zone_30.toml").read_text() == 'name = "zone_30"\n'


def test_prepared_service_and_trip_ends_equal_the_step_by_step_computation(tmp_path: Path) -> None:
    """What prepare_scenario computes beside netconvert is what the plain functions give afterwards."""
    inputs = tiny_inputs(tmp_path)
    prepared = prepare_scenario(inputs, CLOSURE, tmp_path / "a", PARAMS)
    usable = {e for e in prepared.edges.loc[prepared.edges["car"], "edge_id"]} & prepared.network.edge_ids
    by_zone = zone_edges(inputs.zones, prepared.edges, present=usable)
    assert prepared.layers[0].edges_by_zone == by_zone
    assert not any(e in MAIN for ids in by_zone.values() for e in ids)  # closed to cars
    has_car = np.array([bool(by_zone[z]) for z in inputs.zones["zone_id"]])
    assert prepared.has_car_edges.tolist() == has_car.tolist()
    transit = transit_access(inputs.zones, None, None, PARAMS.mode_choice)
    direct = level_of_service(
        inputs.zones, prepared.edges, transit, PARAMS.mode_choice, has_car_edges=has_car
    )
    for item in dataclasses.fields(direct):
        assert np.array_equal(getattr(prepared.free_flow, item.name), getattr(direct, item.name))
    speeds = {"100_0": 2.0, "-100_0": 2.0, "200_0": 2.0}  # a crawl on open streets in the south-west
    minutes, km = car_times(inputs.zones, prepared.edges, edge_speed_ms=speeds, has_car_edges=has_car)
    assert (minutes >= prepared.free_flow.car_min).all() and (minutes > prepared.free_flow.car_min).any()
    assert np.array_equal(prepared.car_paths.minutes(edge_speed_ms=speeds, has_car_edges=has_car), minutes)
    assert np.array_equal(prepared.car_paths.km, km) and np.array_equal(direct.car_km, km)
