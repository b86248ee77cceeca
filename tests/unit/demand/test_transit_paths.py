"""Transit times per OD pair over the simulated lines (engines/traffic/transitpaths.py), by hand: walk
to a stop, half the headway, each line's own route at its own speed, a transfer penalty per change."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from test_traffic_buses import line_scenario, tiny_schedule
from traffic_tiny_twin import CATALOG, tiny_inputs

from civictwin.engines.traffic.edits import apply_interventions
from civictwin.engines.traffic.modechoice import (
    ModeChoiceParams,
    generalised_minutes,
    level_of_service,
    mode_shares,
    transit_access,
)
from civictwin.engines.traffic.params import TrafficParams
from civictwin.engines.traffic.prepare import bus_service, line_frequency_factors, prepare_scenario
from civictwin.engines.traffic.run import run_sumo
from civictwin.engines.traffic.simulate import _car_trips, _simulated_service
from civictwin.engines.traffic.synthetic import GRID_CRS, grid_network
from civictwin.engines.traffic.transit import BusRun, BusService, BusStop
from civictwin.engines.traffic.transitpaths import (
    LineRoute,
    LineTransit,
    TransitLines,
    line_speeds,
    line_times,
    transit_lines,
)
from civictwin.scenarios.spec import parse_scenario

INF = np.inf


def two_lines() -> tuple[gpd.GeoDataFrame, TransitLines]:
    """Zones z0 (0, 0), z1 (2000, 0), z2 (2000, 2000); line 1 from stop A (0, 100) to B (2000, 100)
    every 10 min, 2,000 m; line 2 from B to D (2000, 1900) every 20 min, 1,800 m."""
    zones = gpd.GeoDataFrame(
        {"zone_id": ["z0", "z1", "z2"]},
        geometry=[shapely.box(x - 50, y - 50, x + 50, y + 50) for x, y in [(0, 0), (2000, 0), (2000, 2000)]],
        crs="EPSG:3067",
    )
    routes = (LineRoute("1", ("A", "B"), (2000.0,), 10.0), LineRoute("2", ("B", "D"), (1800.0,), 20.0))
    return zones, TransitLines(routes, {"A": (0.0, 100.0), "B": (2000.0, 100.0), "D": (2000.0, 1900.0)}, True)


def test_two_lines_with_a_transfer_by_hand() -> None:
    zones, lines = two_lines()
    times = line_times(lines, zones, ModeChoiceParams())
    # walks: 100 m × 1.3 detour at 80 m/min = 1.625 min at each end (stops farther than 800 m unused);
    # z0 → z1: wait 10 / 2 = 5, ride 2,000 m at 18 km/h (300 m/min) = 6.667 min;
    # z0 → z2: the same, then at B wait 20 / 2 = 10 and ride 1,800 m = 6 min, one transfer (15 min);
    # z1 → z2: line 2 from B; nothing runs west or south, and no trip stays inside a zone
    assert times.in_vehicle_min == pytest.approx(
        np.array([[INF, 20 / 3, 20 / 3 + 6], [INF, INF, 6.0], [INF, INF, INF]])
    )
    assert times.wait_min == pytest.approx(np.array([[INF, 5.0, 15.0], [INF, INF, 10.0], [INF] * 3]))
    assert times.walk_min == pytest.approx(np.array([[INF, 3.25, 3.25], [INF, INF, 3.25], [INF] * 3]))
    assert times.transfer_min == pytest.approx(np.array([[INF, 0.0, 15.0], [INF, INF, 0.0], [INF] * 3]))


def test_a_faster_line_shortens_only_the_trips_that_ride_it() -> None:
    zones, lines = two_lines()
    before = line_times(lines, zones, ModeChoiceParams())
    # line 2 simulated at 27 km/h (450 m/min), e.g. on a bus lane: its 1,800 m take 4 min, not 6
    after = line_times(lines, zones, ModeChoiceParams(), line_speed_kmh={"2": 27.0})
    assert after.in_vehicle_min[0, 1] == before.in_vehicle_min[0, 1] == pytest.approx(20 / 3)
    assert after.in_vehicle_min[0, 2] == pytest.approx(20 / 3 + 4.0)
    assert after.in_vehicle_min[1, 2] == pytest.approx(4.0)
    assert np.array_equal(after.wait_min, before.wait_min)


def test_a_lines_speed_from_its_own_runs() -> None:
    runs = pd.DataFrame(
        {
            "trip_id": ["pt0", "pt1", "pt2", "new0.0"],
            "line": ["1", "1", "2", "X (new)"],
            "arrived": [True, True, True, False],
            "route_length_m": [1000.0, 2000.0, 500.0, 900.0],
            "duration_s": [150.0, 250.0, 200.0, np.nan],
        }
    )
    # line 1: 3,000 m in 400 s = 27 km/h; line 2: 500 m in 200 s = 9 km/h; no run of X arrived
    assert line_speeds(runs) == pytest.approx({"1": 27.0, "2": 9.0})


def test_a_new_lines_own_route_and_headway_by_hand(tmp_path: Path) -> None:
    inputs = tiny_inputs(tmp_path)  # no GTFS: the fallback's 300 m walks and 10 min headway
    scenario = line_scenario()  # stops 3 m north of Main Street (y = 400) at x = 100, 300, 500; every 7.5 min
    modified = apply_interventions(inputs.edges, scenario, crs=inputs.crs)
    lines = transit_lines(
        bus_service(inputs, scenario, modified, TrafficParams()),
        modified.edges,
        window_s=3600.0,
        complete=False,
    )
    assert lines is not None
    (route,) = lines.routes
    # 8 runs in 60 min: 7.5 min; 100 m to the end of block 102_0, then 100 m into 102_1, and so on
    assert route.headway_min == pytest.approx(7.5)
    assert route.segment_m == pytest.approx((200.0, 200.0))
    params = ModeChoiceParams()
    times = line_times(lines, inputs.zones, params)
    nw, ne, sw, se = 2, 3, 0, 1
    # nw (100, 500) and ne (500, 500) lie 97 m from the first and last stop: walks 2 × 97 × 1.3 / 80,
    # wait 7.5 / 2, ride 400 m at 300 m/min
    assert times.walk_min[nw, ne] == pytest.approx(2 * 97 * 1.3 / 80)
    assert times.wait_min[nw, ne] == pytest.approx(3.75)
    assert times.in_vehicle_min[nw, ne] == pytest.approx(400 / 300)
    # sw (100, 100) to se (500, 100): 303 m to the first stop and from the last
    assert times.walk_min[sw, se] == pytest.approx(2 * 303 * 1.3 / 80)
    assert times.in_vehicle_min[sw, se] == pytest.approx(400 / 300)
    # the line adds to the fallback: a pair takes it only where its generalised time is lower
    free = level_of_service(
        inputs.zones, modified.edges, transit_access(inputs.zones, None, None, params), params
    )
    served = LineTransit.over(lines, free).applied(free, inputs.zones, params)
    fallback = generalised_minutes(free, params)["pt"]
    with_line = generalised_minutes(served, params)["pt"]
    line_cost = (
        times.in_vehicle_min
        + params.wait_weight * times.wait_min
        + params.access_walk_weight * times.walk_min
        + params.minutes_per_eur() * params.pt_fare_eur
    )
    assert with_line == pytest.approx(np.minimum(fallback, line_cost))
    # nw → ne: 1.333 + 1.5 × 3.75 + 1.5 × 3.1525 = 11.69 min plus the fare, well under the fallback's
    assert with_line[nw, ne] < fallback[nw, ne]
    assert served.pt_in_vehicle_min[nw, ne] == pytest.approx(400 / 300)


# ------------------------------------------------------------------------------ cycle lanes


def node_zones(*centres: tuple[float, float]) -> gpd.GeoDataFrame:
    """Zones 100 m square centred on grid nodes (so each snaps to its node)."""
    return gpd.GeoDataFrame(
        {"zone_id": [f"z{k}" for k in range(len(centres))]},
        geometry=[shapely.box(x - 50, y - 50, x + 50, y + 50) for x, y in centres],
        crs=GRID_CRS,
    )


def test_a_cycle_lane_on_a_street_open_to_bikes_by_hand() -> None:
    edges, _ = grid_network(3, 3, 200.0, origin=(0.0, 0.0))  # Main Street: row 1 (y = 200), two lanes
    zones = node_zones((0.0, 200.0), (400.0, 200.0), (0.0, 0.0))
    scenario = parse_scenario(
        {
            "name": "cycle",
            "description": "A cycle lane on Main Street.",
            "interventions": [{"type": "cycle_lane", "streets": ["Main Street"]}],
        },
        CATALOG,
        origin="cycle.toml",
    )
    modified = apply_interventions(edges, scenario, crs=GRID_CRS)
    halved = ModeChoiceParams(cycle_lane_time_factor=0.5)
    ridden = level_of_service(zones, modified.edges, transit_access(zones, None, None, halved), halved)
    plain = level_of_service(
        zones, modified.edges, transit_access(zones, None, None, halved), ModeChoiceParams()
    )
    # z0 → z1 along Main Street: 400 m at 15 km/h (250 m/min) = 1.6 min ridden, 0.8 min perceived at 0.5
    assert plain.bike_min[0, 1] == pytest.approx(1.6)
    assert ridden.bike_min[0, 1] == ridden.bike_min[1, 0] == pytest.approx(0.8)
    # z2 → z1: up column 0 (200 m, no lane) then along Main Street (400 m at 0.5): 400 perceived metres
    # of 600 ridden; the straight row-0 path is 600 m ridden and perceived alike
    assert plain.bike_min[2, 1] == pytest.approx(600 / 250)
    assert ridden.bike_min[2, 1] == pytest.approx(400 / 250)
    # the factor 1 (the default) changes nothing: the same as without the lane's perception
    unchanged = level_of_service(zones, edges, transit_access(zones, None, None, halved), ModeChoiceParams())
    assert np.array_equal(unchanged.bike_min, plain.bike_min)


def test_a_simulated_lines_own_speed_sets_its_trips_times(tmp_path: Path) -> None:
    """The feedback round's service: the new line's pairs ride at its own simulated speed."""
    inputs = tiny_inputs(tmp_path)
    params = TrafficParams(iterations=1)
    prepared = prepare_scenario(inputs, line_scenario(), tmp_path / "net", params)
    assert prepared.line_transit is not None and prepared.buses is not None
    nw, ne = 2, 3
    # before any simulation: 400 m at the planned 18 km/h
    assert prepared.free_flow.pt_in_vehicle_min[nw, ne] == pytest.approx(400 / 300)
    cars = _car_trips(prepared, mode_shares(prepared.free_flow, params.mode_choice), params, 1, 0)
    result = run_sumo(
        prepared.network,
        cars,
        seed=1,
        workdir=tmp_path / "sumo",
        options=params.sim_options(),
        buses=prepared.buses,
    )
    (speed,) = line_speeds(result.bus_trips).values()
    assert 5.0 < speed < 50.0  # km/h: a bus alone on the street, dwell included
    service = _simulated_service(prepared, result)
    assert service.pt_in_vehicle_min[nw, ne] == pytest.approx(400 / (speed * 1000 / 60))
    assert service.pt_wait_min[nw, ne] == pytest.approx(3.75)


def test_transit_frequency_shortens_its_lines_headway(tmp_path: Path) -> None:
    inputs = dataclasses.replace(tiny_inputs(tmp_path), schedule=tiny_schedule())  # route R1, short name 1
    scenario = parse_scenario(
        {
            "name": "more",
            "description": "Route 1 more often.",
            "interventions": [
                {"type": "transit_frequency", "route": "R1", "factor": 2},
                {"type": "transit_frequency", "route": "1", "factor": 1.5},
            ],
        },
        CATALOG,
        origin="more.toml",
    )
    modified = apply_interventions(inputs.edges, scenario, crs=inputs.crs)
    # by id and by short name, both the line "1": 1 + (2 - 1) + (1.5 - 1) = 2.5 times as often
    assert line_frequency_factors(inputs, modified) == {"1": 2.5}
    new_line = line_scenario()
    service = bus_service(
        inputs, new_line, apply_interventions(inputs.edges, new_line, crs=inputs.crs), TrafficParams()
    )
    lines = transit_lines(
        service, inputs.edges, window_s=3600.0, complete=False, frequency_factors={"X1 (new)": 2.0}
    )
    assert lines is not None
    # 8 runs in the hour: every 7.5 min, twice as often: 3.75 min
    assert [r.headway_min for r in lines.routes if r.line == "X1 (new)"] == [pytest.approx(3.75)]


def test_street_distances_between_stops_by_hand() -> None:
    edges, _ = grid_network(3, 3, 200.0, origin=(0.0, 0.0))
    stops = (
        BusStop("a", "100_0", 100.0, 13.0, (100.0, 0.0)),  # row 0, eastbound, halfway
        BusStop("b", "201_0", 50.0, 13.0, (200.0, 50.0)),  # column 1, northbound, 50 m up
        BusStop("c", "nowhere", 0.0, 13.0, (200.0, 350.0)),  # an edge the network lacks
    )
    runs = (BusRun("pt0", "9", 0.0, ("a", "b", "c")), BusRun("pt1", "9", 600.0, ("a", "b", "c")))
    lines = transit_lines(BusService(stops, runs), edges, window_s=3600.0, complete=True)
    assert lines is not None
    (route,) = lines.routes
    # a → b: the other 100 m of 100_0, then 50 m into 201_0; b → c: no street route, the straight 300 m
    assert route.segment_m == pytest.approx((150.0, 300.0))
    assert route.headway_min == pytest.approx(30.0)  # two runs in the hour
