"""Traffic KPIs: exact arithmetic on hand-made results, and hand-computed values from a real SUMO run."""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from civictwin.engines.traffic.kpis import (
    KPI_UNITS,
    edge_zones,
    energy_average_db,
    run_kpis,
    zone_totals,
)
from civictwin.engines.traffic.network import build_sumo_network
from civictwin.engines.traffic.outputs import EDGE_COLUMNS, SimResult
from civictwin.engines.traffic.run import CarTrip, SimOptions, run_sumo

CRS = "EPSG:32635"


def straight_road(
    length_m: float = 1000.0, speed_kmh: float = 50.0
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """One two-way road of ``length_m`` between nodes 1 (west) and 2 (east)."""
    a, b = shapely.Point(385_000, 6_671_000), shapely.Point(385_000 + length_m, 6_671_000)
    common = {
        "osm_id": 1,
        "name": "Test Road",
        "highway": "primary",
        "lanes": 1,
        "speed_kmh": speed_kmh,
        "length_m": length_m,
        "car": True,
        "bike": True,
        "walk": True,
    }
    edges = gpd.GeoDataFrame(
        [
            {
                "edge_id": "1_0",
                "from_node": 1,
                "to_node": 2,
                **common,
                "geometry": shapely.LineString([a, b]),
            },
            {
                "edge_id": "-1_0",
                "from_node": 2,
                "to_node": 1,
                **common,
                "geometry": shapely.LineString([b, a]),
            },
        ],
        crs=CRS,
    )
    nodes = gpd.GeoDataFrame({"node_id": [1, 2]}, geometry=[a, b], crs=CRS)
    return edges, nodes


def test_one_car_on_a_straight_road_matches_hand_values(tmp_path: Path) -> None:
    edges, nodes = straight_road()
    network = build_sumo_network(edges, nodes, tmp_path / "net")
    options = SimOptions(
        end_s=600, speed_deviation=0.0, driver_imperfection=0.0, fleet_mix={"HBEFA4/PC_petrol_Euro-6d": 1.0}
    )
    result = run_sumo(
        network, [CarTrip("car", "1_0", "1_0", 0.0)], seed=1, workdir=tmp_path / "run", options=options
    )
    kpis = run_kpis(result)
    # a perfect driver (no dawdling, no speed deviation) inserted at full speed (50 km/h = 13.889 m/s) with
    # its back at the start (front at 5.1 m) and driven to the end: ~995 m in 995 / 13.889 = 71.6 s, i.e. arrival at the 72nd one-second step; no delay
    assert kpis["vehicle_km"] == pytest.approx((1000 - 5.1) / 1000, abs=1e-6)
    assert kpis["mean_travel_time_s"] == math.ceil(994.9 / (50 / 3.6))  # 72 s
    assert kpis["total_travel_time_h"] == pytest.approx(kpis["mean_travel_time_s"] / 3600)
    assert kpis["mean_speed_kmh"] == pytest.approx(0.9949 / (72 / 3600))  # 49.7 km/h
    assert kpis["total_delay_h"] == 0.0
    assert (kpis["trips"], kpis["finished_share"], kpis["teleports"], kpis["unfinished"]) == (
        1.0,
        1.0,
        0.0,
        0.0,
    )
    # emissions: the edge totals equal the car's own total (one car, one edge)
    assert kpis["co2_kg"] > 0
    assert kpis["co2_kg"] == pytest.approx(result.trips["CO2_g"].sum() / 1000, rel=0.01)
    # noise: only one edge carried traffic, so the energy average is that edge's level
    assert kpis["mean_noise_db"] == pytest.approx(result.edges.set_index("edge_id").loc["1_0", "noise_dB"])
    assert set(kpis) == set(KPI_UNITS)


def fake_result(trips: pd.DataFrame, edges: pd.DataFrame) -> SimResult:
    return SimResult(
        edges=edges,
        trips=trips,
        teleports=1,
        loaded=3,
        inserted=3,
        unfinished=1,
        sumo_version="test",
        wall_s=0.0,
        seed=0,
        workdir=Path("."),
    )


def edges_frame(rows: list[dict[str, float | str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows).reindex(columns=EDGE_COLUMNS)
    return frame.fillna({"CO2_g": 0.0, "NOx_g": 0.0, "PMx_g": 0.0, "vehicles": 0})


def test_run_kpis_arithmetic() -> None:
    trips = pd.DataFrame(
        {
            "trip_id": ["a", "b", "c"],
            "duration_s": [100.0, 200.0, 50.0],
            "route_length_m": [1000.0, 3000.0, 400.0],
            "time_loss_s": [10.0, 30.0, 5.0],
            "arrived": [True, True, False],
        }
    )
    edges = edges_frame(
        [
            {"edge_id": "e1", "vehicles": 2, "CO2_g": 1500.0, "NOx_g": 3.0, "PMx_g": 0.2, "noise_dB": 60.0},
            {"edge_id": "e2", "vehicles": 1, "CO2_g": 500.0, "NOx_g": 1.0, "PMx_g": 0.2, "noise_dB": 70.0},
            {"edge_id": "e3", "vehicles": 0, "noise_dB": float("nan")},
        ]
    )
    kpis = run_kpis(fake_result(trips, edges))
    assert kpis["finished_share"] == pytest.approx(2 / 3)
    assert kpis["mean_travel_time_s"] == 150.0  # the unfinished trip has no travel time
    assert kpis["total_travel_time_h"] == pytest.approx(300 / 3600)
    assert kpis["total_delay_h"] == pytest.approx(40 / 3600)
    assert kpis["vehicle_km"] == 4.0
    assert kpis["mean_speed_kmh"] == pytest.approx(4.0 / (300 / 3600))  # 48 km/h
    assert (kpis["co2_kg"], kpis["nox_kg"], kpis["pmx_kg"]) == pytest.approx((2.0, 0.004, 0.0004))
    assert kpis["mean_noise_db"] == pytest.approx(10 * math.log10((10**6 + 10**7) / 2))  # 67.40 dB
    assert (kpis["teleports"], kpis["unfinished"]) == (1.0, 1.0)


def test_energy_average_by_hand() -> None:
    assert energy_average_db([60.0, 70.0]) == pytest.approx(67.4036, abs=1e-4)
    assert energy_average_db([55.0, 55.0, float("nan")]) == pytest.approx(55.0)
    assert math.isnan(energy_average_db([]))


def test_zone_totals_sum_edges_by_midpoint() -> None:
    edges, _ = straight_road()  # both directions of one 1 km road, midpoint x = 385 500
    zones = gpd.GeoDataFrame(
        {"zone_id": ["road", "empty"]},
        geometry=[
            shapely.box(385_400, 6_670_900, 385_600, 6_671_100),
            shapely.box(390_000, 6_670_000, 390_100, 6_670_100),
        ],
        crs=CRS,
    )
    edge_means = pd.DataFrame(
        {
            "edge_id": ["1_0", "-1_0"],
            "flow": [10.0, 0.0],
            "co2_g": [1500.0, 0.0],
            "noise_db": [58.0, float("nan")],
        }
    )
    length_km = edges.loc[edges["edge_id"] == "1_0", "length_m"].iloc[0] / 1000
    placement = edge_zones(edges, zones)
    assert sorted(placement["edge_id"]) == ["-1_0", "1_0"] and set(placement["zone_id"]) == {"road"}
    out = zone_totals(edge_means, placement, zones["zone_id"]).set_index("zone_id")
    assert out.loc["road", "vehicle_km"] == pytest.approx(10 * length_km) and out.loc["road", "co2_kg"] == 1.5
    assert out.loc["road", "noise_db"] == pytest.approx(58.0)
    assert out.loc["empty", "vehicle_km"] == 0.0 and out["noise_db"].isna().loc["empty"]
