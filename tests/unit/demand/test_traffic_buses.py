"""Buses and cycle lanes in the traffic engine: GTFS runs counted by hand, stops on the right edges,
a bus lane speeding up simulated buses (and taking a lane from cars), a new line's runs, a cycle lane
shortening a cycling time by a hand-computed amount."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer
from traffic_tiny_twin import CATALOG, tiny_inputs

from civictwin.engines.base import TwinContext
from civictwin.engines.traffic.busfiles import BusPlan
from civictwin.engines.traffic.demand import DemandParams, network_distances
from civictwin.engines.traffic.edits import apply_interventions, prepare_edges, validate_scenario
from civictwin.engines.traffic.engine import TrafficEngine
from civictwin.engines.traffic.kpis import bus_kpis, bus_line_table, bus_speed_kmh
from civictwin.engines.traffic.modechoice import (
    ModeChoiceParams,
    level_of_service,
    mode_shares,
    transit_access,
)
from civictwin.engines.traffic.network import build_sumo_network
from civictwin.engines.traffic.params import TrafficParams
from civictwin.engines.traffic.prepare import bus_service, prepare_scenario
from civictwin.engines.traffic.run import CarTrip, SimOptions, SimResult, run_sumo
from civictwin.engines.traffic.simulate import _bike_trips, _car_trips, simulate_seed
from civictwin.engines.traffic.synthetic import GRID_CRS, grid_network
from civictwin.engines.traffic.transit import (
    BusRun,
    BusService,
    BusSettings,
    BusStop,
    GtfsSchedule,
    gtfs_departures,
    gtfs_service,
)
from civictwin.errors import ScenarioError
from civictwin.scenarios.spec import Scenario, parse_scenario

X0, Y0 = 385_000.0, 6_671_000.0
TO_LONLAT = Transformer.from_crs(GRID_CRS, "EPSG:4326", always_xy=True)


def lonlat(x: float, y: float) -> list[float]:
    """A grid point (metres) as [lon, lat]."""
    lon, lat = TO_LONLAT.transform(x, y)
    return [lon, lat]


# ------------------------------------------------------------------------------ GTFS runs by hand


def tiny_schedule() -> GtfsSchedule:
    """Stops A, B, C 3 m north of Main Street (row 1 of a 3 × 4 grid) at x = 100, 300, 500 m and D far
    away; bus route 1, a rail route; weekday service WD (busiest: 6 trips) and Saturday service SA."""
    stops = gpd.GeoDataFrame(
        {"feed": "f", "stop_id": ["A", "B", "C", "D"]},
        geometry=[shapely.Point(X0 + x, Y0 + 203) for x in (100, 300, 500)] + [shapely.Point(X0, Y0 + 5000)],
        crs=GRID_CRS,
    )
    routes = pd.DataFrame(
        {"feed": "f", "route_id": ["R1", "R2"], "route_short_name": ["1", "T"], "route_type": [3, 2]}
    )
    trips = pd.DataFrame(
        {
            "feed": "f",
            "trip_id": ["T1", "T2", "T3", "T4", "F1", "RAIL", "SAT"],
            "route_id": ["R1", "R1", "R1", "R1", "R1", "R2", "R1"],
            "service_id": ["WD", "WD", "WD", "WD", "WD", "WD", "SA"],
        }
    )
    first = {
        "T1": "07:55",
        "T2": "08:10",
        "T3": "08:59:59",
        "T4": "09:00",
        "F1": "07:30",
        "RAIL": "08:30",
        "SAT": "08:20",
    }
    rows = []
    for trip, start in first.items():
        parts = [int(p) for p in start.split(":")] + [0]
        t0 = parts[0] * 3600 + parts[1] * 60 + parts[2]
        for seq, stop in enumerate(["A", "B", "C", "D"], start=1):
            rows.append(("f", trip, stop, seq, t0 + 120 * (seq - 1), t0 + 120 * (seq - 1)))
    stop_times = pd.DataFrame(
        rows, columns=["feed", "trip_id", "stop_id", "stop_sequence", "arrival_s", "departure_s"]
    )
    calendar = pd.DataFrame(
        {
            "feed": "f",
            "service_id": ["WD", "SA"],
            **{day: [True, False] for day in ("monday", "tuesday", "wednesday", "thursday", "friday")},
            "saturday": [False, True],
            "sunday": [False, False],
            "start_date": [date(2024, 1, 1)] * 2,
            "end_date": [date(2024, 1, 31)] * 2,
            "date": [None, None],
            "exception_type": [None, None],
        }
    )
    frequencies = pd.DataFrame(
        {"feed": "f", "trip_id": ["F1"], "start_s": [27_000], "end_s": [34_200], "headway_s": [600]}
    )
    return GtfsSchedule(stops, stop_times, trips, routes, calendar, frequencies)


def test_gtfs_runs_in_the_window_counted_by_hand() -> None:
    runs = gtfs_departures(tiny_schedule(), clock_begin_s=8 * 3600, window_s=3600)
    # window 08:00–09:00 on a weekday: T2 (08:10) and T3 (08:59:59); T1 (07:55) before, T4 (09:00) at the
    # end (excluded); F1 every 10 min from 07:30 to 09:30 → 08:00, 08:10 … 08:50 = 6 runs; the rail trip
    # and the Saturday trip never: 2 + 6 = 8
    assert len(runs) == 8
    assert runs["depart_s"].tolist() == [0.0, 600.0, 600.0, 1200.0, 1800.0, 2400.0, 3000.0, 3599.0]
    assert sorted(runs["trip_id"].unique()) == ["F1", "T2", "T3"]
    assert set(runs["line"]) == {"1"}


def test_gtfs_stops_land_on_the_edges_running_the_lines_way() -> None:
    edges, _ = grid_network(3, 4, 200.0)
    service = gtfs_service(
        tiny_schedule(), prepare_edges(edges), BusSettings(), clock_begin_s=8 * 3600, window_s=3600
    )
    # the line runs east: A, B, C go on the eastbound edges of Main Street (way 101), 100 m into each;
    # D (5 km away) matches no street and is left out of every pattern
    assert [(s.edge_id, round(s.pos_m, 6)) for s in service.stops] == [
        ("101_0", 100.0), ("101_1", 100.0), ("101_2", 100.0)
    ]  # fmt: skip
    assert len(service.runs) == 8
    assert service.unmatched_stops == 1  # one stop pattern, one stop off the network
    assert all(len(run.stops) == 3 for run in service.runs)


# ------------------------------------------------------------------------ a bus lane in SUMO


def bottleneck(bus_lanes: int) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """The 3 × 4 grid with Main Street narrowing to one lane on its last block (101_2)."""
    edges, nodes = grid_network(3, 4, 200.0)
    edges = prepare_edges(edges)
    edges.loc[edges["name"] == "Main Street", "bus_lanes"] = bus_lanes
    edges.loc[edges["edge_id"].isin(["101_2", "-101_2"]), ["lanes", "bus_lanes"]] = (1, 0)
    return edges, nodes


PERFECT = SimOptions(
    end_s=1200, driver_imperfection=0.0, speed_deviation=0.0, fleet_mix={"HBEFA4/PC_petrol_Euro-6d": 1.0}
)
BUSES = BusService(
    (BusStop("a", "101_0", 100.0, 13.0, (0.0, 0.0)), BusStop("b", "101_1", 150.0, 13.0, (0.0, 0.0))),
    tuple(BusRun(f"pt{k}", "1", 60.0 * k, ("a", "b")) for k in range(2, 8)),
)
CARS = [CarTrip(f"t{k}", "101_0", "101_2", k * 1.5) for k in range(240)]  # 2,400 cars/h for 6 min


@pytest.fixture(scope="module")
def lane_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, SimResult]:
    """The same cars and buses without and with a bus lane on Main Street (before its bottleneck)."""
    out: dict[int, SimResult] = {}
    for lanes in (0, 1):
        root = tmp_path_factory.mktemp(f"bus_lane_{lanes}")
        edges, nodes = bottleneck(lanes)
        network = build_sumo_network(edges, nodes, root / "net", guess_signals=False)
        plan = BusPlan(BUSES, BusSettings(), {})
        out[lanes] = run_sumo(network, CARS, seed=1, workdir=root / "run", options=PERFECT, buses=plan)
    return out


def test_a_bus_lane_speeds_up_simulated_buses(lane_runs: dict[int, SimResult]) -> None:
    without, with_lane = bus_kpis(lane_runs[0].bus_trips), bus_kpis(lane_runs[1].bus_trips)
    assert without["bus_runs"] == with_lane["bus_runs"] == 6
    assert without["bus_finished_share"] == with_lane["bus_finished_share"] == 1.0
    # hand: from the end of stop a (106.5 m into 101_0) to the end of stop b (156.5 m into 101_1) is
    # 250 m (+ the junction's internal lane), 18 s at 50 km/h, plus 2 × 10 s dwell: at least 38 s; a
    # bus alone on its lane adds only braking and starting at its stops
    assert 38.0 <= with_lane["bus_mean_travel_time_s"] <= 55.0
    assert with_lane["bus_mean_delay_s"] < 10.0
    # without the lane the buses wait in the car queue backing up from the bottleneck
    assert without["bus_mean_travel_time_s"] > with_lane["bus_mean_travel_time_s"] + 15.0
    assert without["bus_mean_delay_s"] > with_lane["bus_mean_delay_s"] + 15.0
    # the bus trips are apart from the car trips
    assert len(lane_runs[1].trips) == len(CARS) and lane_runs[1].unfinished == 0
    table = bus_line_table(lane_runs[1].bus_trips, {"1": b"shape"})
    assert table["line"].tolist() == ["1"] and table["runs"].tolist() == [6.0]
    assert table["travel_time_s"].iloc[0] == pytest.approx(with_lane["bus_mean_travel_time_s"])


def test_a_bus_lane_takes_a_lane_from_cars(tmp_path: Path) -> None:
    """Without the bottleneck and without buses: 2,400 cars/h enter Main Street on two lanes without
    waiting, and wait to enter once one lane is the buses' (one lane carries less)."""
    waits = []
    for lanes in (0, 1):
        edges, nodes = grid_network(3, 4, 200.0)
        edges = prepare_edges(edges)
        edges.loc[edges["name"] == "Main Street", "bus_lanes"] = lanes
        network = build_sumo_network(edges, nodes, tmp_path / f"net{lanes}", guess_signals=False)
        result = run_sumo(network, CARS, seed=1, workdir=tmp_path / f"run{lanes}", options=PERFECT)
        planned = {t.trip_id: t.depart_s for t in CARS}
        waits.append(float((result.trips["depart_s"] - result.trips["trip_id"].map(planned)).mean()))
    assert waits[0] < 2.0
    assert waits[1] > waits[0] + 10.0


def test_the_gtfs_runs_simulated_speed_sets_transit_times() -> None:
    runs = pd.DataFrame(
        {
            "trip_id": ["pt0", "pt1", "pt2", "new0.0"],
            "arrived": [True, True, False, True],
            "route_length_m": [1000.0, 2000.0, 500.0, 9000.0],
            "duration_s": [150.0, 250.0, np.nan, 100.0],
        }
    )
    # GTFS runs that arrived: 3,000 m in 400 s = 7.5 m/s = 27 km/h (the new line's run and the unfinished one left out)
    assert bus_speed_kmh(runs, prefix="pt") == pytest.approx(27.0)
    inputs = tiny_inputs(Path("."))
    service = level_of_service(
        inputs.zones,
        inputs.edges,
        transit_access(inputs.zones, None, None, ModeChoiceParams()),
        ModeChoiceParams(),
    )
    faster = service.with_pt_speed(27.0, planned_kmh=18.0)
    # planned 18 km/h → simulated 27 km/h: every in-vehicle time × 18 / 27 = 2/3
    finite = np.isfinite(service.pt_in_vehicle_min)
    assert np.allclose(faster.pt_in_vehicle_min[finite], service.pt_in_vehicle_min[finite] * 2 / 3)
    assert np.array_equal(faster.pt_wait_min, service.pt_wait_min)
    # simulated bikes at 20 km/h against the planned 15 km/h: cycling times × 15 / 20
    assert np.allclose(service.with_bike_speed(20.0, planned_kmh=15.0).bike_min, service.bike_min * 0.75)


# ------------------------------------------------------------------------------ a new line


def line_scenario(**line: object) -> Scenario:
    stops = [lonlat(X0 + x, Y0 + 403) for x in (100, 300, 500)]  # Main Street of the 4 × 4 tiny twin: row 2
    spec = {"type": "transit_line", "name": "X1", "stops": stops, "headway_min": 7.5, **line}
    return parse_scenario(
        {"name": "new_line", "description": "A new line.", "interventions": [spec]},
        CATALOG,
        origin="new_line.toml",
    )


def test_a_new_line_runs_every_headway_in_the_window(tmp_path: Path) -> None:
    inputs = tiny_inputs(tmp_path)
    scenario = line_scenario()
    modified = apply_interventions(inputs.edges, scenario, crs=inputs.crs)
    service = bus_service(inputs, scenario, modified, TrafficParams())
    # 60 min at 7.5 min: runs at 0, 450, … 3,150 s = 8 runs, each through the three stops on way 102 eastbound
    assert [run.depart_s for run in service.runs] == [450.0 * k for k in range(8)]
    assert {run.line for run in service.runs} == {"X1 (new)"}
    assert [s.edge_id for s in service.stops] == ["102_0", "102_1", "102_2"]
    assert service.sources == ("new bus line 'X1'",)


def test_an_impossible_new_line_is_one_line(tmp_path: Path) -> None:
    inputs = tiny_inputs(tmp_path)
    far = line_scenario(stops=[lonlat(X0 + 100, Y0 + 403), lonlat(X0 + 100, Y0 + 5000)])
    problems = validate_scenario(far, inputs.edges, crs=inputs.crs)
    assert problems == [
        "scenario 'new_line': interventions[0] (transit_line): stop 2: no street open to buses within 50 m"
    ]
    late = line_scenario(begin_s=4000.0)
    engine = TrafficEngine(inputs=inputs, params=TrafficParams())
    assert engine.check(TwinContext(tmp_path), late) == [
        "scenario 'new_line': interventions[0] (transit_line): "
        "no run leaves between 4000 s and 3600 s (the simulated window)"
    ]
    modified = apply_interventions(inputs.edges, late, crs=inputs.crs)
    with pytest.raises(ScenarioError, match=r"no run leaves between 4000 s and 3600 s"):
        bus_service(inputs, late, modified, TrafficParams())


# ------------------------------------------------------------------------------ cycle lanes


def test_a_cycle_lane_opening_a_link_shortens_cycling_by_hand(tmp_path: Path) -> None:
    """Row 0 of a 2 × 3 grid is closed to bikes eastwards; zones sit on its two ends (nodes 1 and 3)."""
    edges, _ = grid_network(2, 3, 200.0)
    edges.loc[edges["edge_id"].isin(["100_0", "100_1"]), "bike"] = False
    zones = gpd.GeoDataFrame(
        {"zone_id": ["w", "e"]},
        geometry=[shapely.Point(X0, Y0).buffer(20), shapely.Point(X0 + 400, Y0).buffer(20)],
        crs=GRID_CRS,
    )
    metres_per_min = 15.0 * 1000 / 60  # bike_speed_kmh 15
    before = network_distances(zones, edges, "bike")[0, 1] / metres_per_min
    scenario = parse_scenario(
        {
            "name": "cycle",
            "description": "A contraflow cycle lane.",
            "interventions": [{"type": "cycle_lane", "edge_ids": ["100_0", "100_1"], "from_cars": False}],
        },
        CATALOG,
        origin="cycle.toml",
    )
    modified = apply_interventions(edges, scenario, crs=GRID_CRS)
    after = network_distances(zones, modified.edges, "bike")[0, 1] / metres_per_min
    # before: up column 0, along row 1, down column 2 = 800 m = 3.2 min; after: along row 0 = 400 m = 1.6 min
    assert before == pytest.approx(3.2)
    assert after == pytest.approx(1.6)


def test_a_cycle_lane_from_cars_is_a_bike_only_lane(tmp_path: Path) -> None:
    edges, nodes = grid_network(3, 4, 200.0)
    scenario = parse_scenario(
        {
            "name": "cycle",
            "description": "A cycle lane on Main Street.",
            "interventions": [
                {"type": "cycle_lane", "streets": ["Main Street"]},
                {"type": "bus_lane", "streets": ["Main Street"]},
            ],
        },
        CATALOG,
        origin="cycle.toml",
    )
    with pytest.raises(ScenarioError, match="no selected car edge has more than 1 lane"):
        apply_interventions(edges, scenario, crs=GRID_CRS)  # two lanes: a cycle lane leaves none for buses
    only_cycle = Scenario(name="c", description="", interventions=scenario.interventions[:1])
    modified = apply_interventions(edges, only_cycle, crs=GRID_CRS)
    main = modified.edges[modified.edges["name"] == "Main Street"]
    assert main["cycle_lanes"].tolist() == [1] * 6
    build_sumo_network(modified.edges, nodes, tmp_path / "net", merge_chains=False)
    written = (tmp_path / "net" / "net.edg.xml").read_text()
    assert written.count('<lane index="0" allow="bicycle" />') == 6
    assert np.all(main["car"])


def test_the_mode_choices_bike_trips_ride_in_sumo(tmp_path: Path) -> None:
    """With ``simulate_bikes`` the bike person trips are SUMO bicycles, kept apart from the cars."""
    inputs = tiny_inputs(tmp_path)
    params = TrafficParams(
        iterations=1, simulate_bikes=True, demand=DemandParams(scale=2.0, distance="crowfly")
    )
    prepared = prepare_scenario(inputs, Scenario.baseline_scenario(), tmp_path / "net", params)
    shares = mode_shares(prepared.free_flow, params.mode_choice)
    sampled = _bike_trips(prepared, shares, 1, 0)
    outcome = simulate_seed(prepared, 1, tmp_path / "sumo")
    assert len(sampled) > 0 and all(t.trip_id.startswith("bk") for t in sampled)
    assert outcome.kpis["bike_trips"] == len(sampled)
    assert outcome.kpis["bike_finished_share"] == 1.0
    cars = _car_trips(prepared, shares, params, 1, 0)
    assert outcome.kpis["trips"] == len(cars)  # the car KPIs count cars only
