"""Car availability in the mode choice: travellers without a car choose among the other modes."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from civictwin.engines.traffic.modechoice import (
    LevelOfService,
    ModeChoiceParams,
    mode_shares,
    zone_car_availability,
)


def _two_origins(availability: list[float] | None) -> LevelOfService:
    """Two origin zones, one destination each way; only car and transit are available."""

    def cells(value: float) -> np.ndarray:
        return np.full((2, 2), value)

    return LevelOfService(
        zones=("a", "b"),
        car_min=cells(10.0), car_km=cells(0.0), pt_in_vehicle_min=cells(10.0), pt_wait_min=cells(0.0),
        pt_access_min=cells(0.0), walk_min=cells(np.inf), bike_min=cells(np.inf),
        car_availability=None if availability is None else np.array(availability),
    )  # fmt: skip


def test_shares_mix_travellers_with_and_without_a_car() -> None:
    params = ModeChoiceParams(car_access_min=0.0, parking_cost_eur=0.0, pt_fare_eur=0.0, asc_pt=-1.0)
    # with a car: U_car = 0 - 0.05 * 10 = -0.5, U_pt = -1 - 0.05 * 10 = -1.5 -> P(car) = 1 / (1 + e^-1)
    p_car = 1.0 / (1.0 + math.exp(-1.0))
    everyone = mode_shares(_two_origins(None), params)
    assert everyone["car"][0, 0] == pytest.approx(p_car)
    # zone a: 40% have a car -> car 0.4 · P(car); transit takes the rest (without a car it is the only mode)
    shares = mode_shares(_two_origins([0.4, 1.0]), params)
    assert shares["car"][0, 1] == pytest.approx(0.4 * p_car)
    assert shares["pt"][0, 1] == pytest.approx(0.4 * (1 - p_car) + 0.6)
    assert shares["car"][1, 0] == pytest.approx(p_car)  # zone b: everyone has a car, as before
    total = sum(shares[m] for m in ("car", "pt", "bike", "walk"))
    np.testing.assert_allclose(total, 1.0)


def test_zone_car_availability_reads_the_zones_column() -> None:
    shapes = [box(0, 0, 1, 1)] * 3
    zones = gpd.GeoDataFrame(
        {"zone_id": ["a", "b", "c"], "car_availability": [0.3, None, 1.4]}, geometry=shapes
    )
    # a zone without a value keeps everyone's car; a share is clipped to 0..1
    np.testing.assert_allclose(zone_car_availability(zones), [0.3, 1.0, 1.0])  # type: ignore[arg-type]
    assert zone_car_availability(zones.drop(columns=["car_availability"])) is None
