"""The multinomial logit: hand-checked shares, mode shift when cars slow down, level of service inputs."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Point

from civictwin.engines.traffic.demand import OdMatrix
from civictwin.engines.traffic.modechoice import (
    LevelOfService,
    ModeChoiceParams,
    car_times,
    generalised_minutes,
    level_of_service,
    logit_shares,
    modal_split,
    mode_shares,
    msa_update,
    transit_access,
)


def _one_pair(car_min: float) -> LevelOfService:
    def cell(value: float) -> np.ndarray:
        return np.array([[value]])

    return LevelOfService(
        zones=("a",),
        car_min=cell(car_min),
        car_km=cell(0.0),
        pt_in_vehicle_min=cell(10.0),
        pt_wait_min=cell(0.0),
        pt_access_min=cell(0.0),
        walk_min=cell(20.0),
        bike_min=cell(np.inf),
    )


def test_logit_shares_match_hand_computed_values() -> None:
    utility = {
        "car": np.array([-1.0]),
        "pt": np.array([-2.0]),
        "bike": np.array([-3.0]),
        "walk": np.array([-np.inf]),
    }
    shares = logit_shares(utility)
    denominator = math.exp(-1) + math.exp(-2) + math.exp(-3)
    assert shares["car"][0] == pytest.approx(math.exp(-1) / denominator)  # 0.6652
    assert shares["pt"][0] == pytest.approx(0.2447, abs=1e-4)
    assert shares["bike"][0] == pytest.approx(0.0900, abs=1e-4)
    assert shares["walk"][0] == 0.0


def test_no_available_mode_gives_no_trips() -> None:
    shares = logit_shares({m: np.array([-np.inf]) for m in ("car", "pt", "bike", "walk")})  # type: ignore[misc]
    assert all(s[0] == 0.0 for s in shares.values())


def test_generalised_time_adds_weights_and_money() -> None:
    params = ModeChoiceParams(
        value_of_time_eur_h=12.0,
        parking_cost_eur=2.0,
        car_cost_per_km_eur=0.5,
        car_access_min=2.0,
        access_walk_weight=2.0,
        pt_fare_eur=1.0,
        wait_weight=2.0,
    )
    los = LevelOfService(
        ("a",),
        np.array([[10.0]]),
        np.array([[4.0]]),
        np.array([[8.0]]),
        np.array([[3.0]]),
        np.array([[5.0]]),
        np.array([[40.0]]),
        np.array([[15.0]]),
    )
    minutes = generalised_minutes(los, params)
    # car: 10 + 2·2 access + (0.5 €/km · 4 km + 2 €) · 5 min/€ = 34
    assert minutes["car"][0, 0] == pytest.approx(34.0)
    # pt: 8 + 2·3 wait + 2·5 walk + 1 € · 5 = 29
    assert minutes["pt"][0, 0] == pytest.approx(29.0)
    assert minutes["walk"][0, 0] == pytest.approx(1.5 * 40.0)
    assert minutes["bike"][0, 0] == pytest.approx(1.2 * 15.0)


def test_slower_cars_lower_the_car_share_by_the_logit_amount() -> None:
    # No money costs or access times: car utility = -0.05·t_car, pt = -0.05·10, walk = 0.5 - 0.05·1.5·20.
    params = ModeChoiceParams(
        parking_cost_eur=0.0, car_cost_per_km_eur=0.0, car_access_min=0.0, pt_fare_eur=0.0
    )
    fast = mode_shares(_one_pair(10.0), params)
    slow = mode_shares(_one_pair(30.0), params)
    u_pt, u_walk = -0.5, 0.5 - 1.5
    expected_fast = math.exp(-0.5) / (math.exp(-0.5) + math.exp(u_pt) + math.exp(u_walk))
    expected_slow = math.exp(-1.5) / (math.exp(-1.5) + math.exp(u_pt) + math.exp(u_walk))
    assert fast["car"][0, 0] == pytest.approx(expected_fast)  # 0.4223
    assert slow["car"][0, 0] == pytest.approx(expected_slow)  # 0.2119
    assert slow["car"][0, 0] < fast["car"][0, 0]
    assert slow["pt"][0, 0] > fast["pt"][0, 0] and slow["walk"][0, 0] > fast["walk"][0, 0]
    assert slow["bike"][0, 0] == 0.0  # unavailable (inf time)


def test_msa_averages_successive_shares() -> None:
    old = {m: np.array([v]) for m, v in zip(("car", "pt", "bike", "walk"), (0.4, 0.3, 0.1, 0.2), strict=True)}
    new = {m: np.array([v]) for m, v in zip(("car", "pt", "bike", "walk"), (0.1, 0.5, 0.1, 0.3), strict=True)}
    averaged = msa_update(old, new, 2)  # step 1/3
    assert averaged["car"][0] == pytest.approx(0.3)
    assert averaged["pt"][0] == pytest.approx(0.3 + 0.2 / 3)
    assert sum(float(v[0]) for v in averaged.values()) == pytest.approx(1.0)


def test_modal_split_weights_pairs_by_trips() -> None:
    od = OdMatrix(("a", "b"), np.array([[0.0, 30.0], [10.0, 0.0]]))
    ones = np.ones((2, 2))
    shares = {
        "car": 0.5 * ones,
        "pt": np.array([[0, 0.5], [0, 0]]),
        "bike": np.zeros((2, 2)),
        "walk": np.array([[0.5, 0], [0.5, 0.5]]),
    }
    split = modal_split(od, shares)  # type: ignore[arg-type]
    assert split == pytest.approx({"car": 0.5, "pt": 15 / 40, "bike": 0.0, "walk": 5 / 40})


def test_car_times_use_simulated_speeds_and_observed_durations(
    zones: gpd.GeoDataFrame, edges: gpd.GeoDataFrame
) -> None:
    free_min, km = car_times(zones, edges)
    # 600 m at 36 km/h (10 m/s) = 60 s = 1 min; distance 0.6 km
    assert free_min[0, 1] == pytest.approx(1.0)
    assert km[0, 1] == pytest.approx(0.6)
    crawl = {e: 2.0 for e in edges["edge_id"]}  # 2 m/s everywhere: 300 s
    slow_min, _ = car_times(zones, edges, edge_speed_ms=crawl)
    assert slow_min[0, 1] == pytest.approx(5.0)
    observed = np.array([[np.nan, 7.5], [np.nan, np.nan]])
    mixed, _ = car_times(zones, edges, edge_speed_ms=crawl, observed_min=observed)
    assert mixed[0, 1] == 7.5 and mixed[1, 0] == pytest.approx(5.0)
    blocked, _ = car_times(zones, edges, has_car_edges=np.array([True, False]))
    assert np.isinf(blocked[0, 1]) and np.isinf(blocked[1, 1]) and np.isfinite(blocked[0, 0])


def test_transit_wait_is_half_the_headway_at_the_best_stop(zones: gpd.GeoDataFrame) -> None:
    params = ModeChoiceParams(peak_hour=8, walk_speed_kmh=6.0, pt_detour_factor=1.0, pt_access_max_m=500)
    stops = gpd.GeoDataFrame(
        {"feed": ["f", "f", "f"], "stop_id": ["s1", "s2", "far"]},
        # s1 100 m from the west centroid (125, 300), s2 200 m, 'far' 2 km from everything
        geometry=[Point(385_125, 6_672_400), Point(385_125, 6_672_500), Point(387_000, 6_672_300)],
        crs=zones.crs,
    )
    departures = pd.DataFrame(
        {
            "feed": ["f"] * 4,
            "stop_id": ["s1", "s2", "s2", "far"],
            "hour": [8, 8, 9, 8],
            "departures": [6, 12, 60, 60],
        }
    )
    access = transit_access(zones, stops, departures, params)
    assert access.source == "gtfs"
    # west: best stop s2 (12 departures at 8h): wait 60/12/2 = 2.5 min; 200 m at 100 m/min = 2 min
    assert access.wait_min[0] == pytest.approx(2.5)
    assert access.access_min[0] == pytest.approx(2.0)
    # east centroid (575, 300): s1 is 461 m away (within 500 m), s2 492 m: best s2 again
    assert access.wait_min[1] == pytest.approx(2.5)
    doubled = transit_access(zones, stops, departures, params, stop_factors={("f", "s1"): 4.0})
    assert doubled.wait_min[0] == pytest.approx(60 / 24 / 2)  # s1 now 24 departures
    fallback = transit_access(zones, None, None, params)
    assert fallback.source == "fallback"
    assert fallback.wait_min == pytest.approx([5.0, 5.0]) and fallback.access_min == pytest.approx([3.0, 3.0])


def test_level_of_service_on_the_grid(zones: gpd.GeoDataFrame, edges: gpd.GeoDataFrame) -> None:
    params = ModeChoiceParams()
    transit = transit_access(zones, None, None, params)
    los = level_of_service(zones, edges, transit, params)
    # 600 m walk at 4.8 km/h = 7.5 min; bike at 15 km/h = 2.4 min
    assert los.walk_min[0, 1] == pytest.approx(7.5)
    assert los.bike_min[0, 1] == pytest.approx(2.4)
    assert np.isinf(los.pt_in_vehicle_min[0, 0])
    # 600 m · 1.3 detour at 18 km/h (300 m/min) = 2.6 min
    assert los.pt_in_vehicle_min[0, 1] == pytest.approx(2.6)
    shares = mode_shares(los, params)
    total = sum(shares.values())
    assert total == pytest.approx(np.ones((2, 2)))
