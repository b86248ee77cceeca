"""The Urban Cooling model on grids small enough to compute by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from civictwin.engines.heat.cooling import CoolingParameters, cooling_capacity, urban_cooling


def _params(**changes: float) -> CoolingParameters:
    base = {"t_ref_c": 30.0, "uhi_max_c": 2.0, "cooling_distance_m": 0.0, "blending_distance_m": 0.0}
    return CoolingParameters(**{**base, **changes})


def test_cooling_capacity_is_the_weighted_sum_of_shade_albedo_and_eti() -> None:
    # CC = 0.6 * 1 + 0.2 * 0.2 + 0.2 * 1 = 0.84 (InVEST eq. 2, default weights)
    cc = cooling_capacity(
        shade=np.ones((1, 1)), albedo=np.full((1, 1), 0.2), eti=np.ones((1, 1)), params=_params()
    )
    assert cc[0, 0] == pytest.approx(0.84)


def test_without_parks_or_mixing_air_temperature_follows_cc() -> None:
    # shade 1, albedo 0.2, Kc 1, no green area: HM = CC = 0.84; T = 30 + (1 - 0.84) * 2 = 30.32 °C
    shape = (3, 4)
    result = urban_cooling(
        shade=np.ones(shape),
        albedo=np.full(shape, 0.2),
        kc=np.ones(shape),
        green_area=np.zeros(shape, dtype=bool),
        cell_m=10.0,
        params=_params(),
    )
    np.testing.assert_allclose(result.hm, 0.84)
    np.testing.assert_allclose(result.t_air_c, 30.32)


def test_a_large_park_cools_the_paved_cell_beside_it() -> None:
    # One row of four 100 m cells (1 ha each): three green (shade 1, albedo 0, Kc 1 -> CC 0.8), then a
    # paved one (CC 0). Cooling distance 100 m = 1 cell, so the park kernel weighs a cell d cells away
    # by exp(-d); inside the grid the paved cell sees the green cells at d = 3, 2, 1 and itself (d = 0):
    #   CC_park = 0.8 (e^-1 + e^-2 + e^-3) / (1 + e^-1 + e^-2 + e^-3) = 0.284869
    # Green pixels within 1 cell: the disk kernel has 5 cells; 2 lie in the grid (itself and its left
    # neighbour), one green: 1/2 * 5 = 2.5 pixels >= 2 ha / 1 ha = 2, so the park counts:
    #   HM = max(0, 0.284869); T_air = 30 + (1 - 0.284869) * 2 = 31.430263 °C (no air mixing).
    green = np.array([[True, True, True, False]])
    result = urban_cooling(
        shade=green.astype(float),
        albedo=np.zeros((1, 4)),
        kc=green.astype(float),
        green_area=green,
        cell_m=100.0,
        params=_params(cooling_distance_m=100.0),
    )
    near = sum(math.exp(-d) for d in (1, 2, 3))
    cc_park = 0.8 * near / (1 + near)
    assert result.hm[0, 3] == pytest.approx(cc_park, abs=1e-9)
    assert result.t_air_c[0, 3] == pytest.approx(30 + (1 - cc_park) * 2, abs=1e-9)
    assert result.t_air_c[0, 3] == pytest.approx(31.430263, abs=1e-6)
    np.testing.assert_allclose(result.hm[0, :3], 0.8)  # green cells keep their own, higher CC


def test_a_small_green_area_gives_no_park_effect() -> None:
    # the same row at 50 m cells: one green cell is 0.25 ha, far below 2 ha, so HM stays CC = 0
    green = np.array([[True, False]])
    result = urban_cooling(
        shade=green.astype(float),
        albedo=np.zeros((1, 2)),
        kc=green.astype(float),
        green_area=green,
        cell_m=50.0,
        params=_params(cooling_distance_m=50.0),
    )
    assert result.hm[0, 1] == 0.0
    assert result.t_air_c[0, 1] == pytest.approx(32.0)


def test_air_mixing_averages_with_the_exponential_kernel() -> None:
    # two cells, HM 1 and 0: T_nomix 30 and 32; blending 1 cell: each sees itself (1) and the other (e^-1)
    #   T_air[0] = (30 + 32 e^-1) / (1 + e^-1) = 30.537882 °C
    result = urban_cooling(
        shade=np.array([[1.0, 0.0]]),
        albedo=np.array([[1.0, 0.0]]),
        kc=np.array([[1.0, 0.0]]),
        green_area=np.zeros((1, 2), dtype=bool),
        cell_m=10.0,
        params=_params(blending_distance_m=10.0),
    )
    e = math.exp(-1)
    assert result.t_air_c[0, 0] == pytest.approx((30 + 32 * e) / (1 + e), abs=1e-9)
    assert result.t_air_c[0, 1] == pytest.approx((32 + 30 * e) / (1 + e), abs=1e-9)
