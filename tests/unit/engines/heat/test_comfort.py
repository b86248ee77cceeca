"""UTCI against the published reference values, and SOLWEIG's shade behind a building."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from heat_surfaces import small_surface

from civictwin.engines.heat import comfort
from civictwin.engines.heat.comfort import ComfortParameters, mean_radiant_temperature, utci_grid
from civictwin.engines.heat.weather import HotDay


def test_utci_on_a_small_grid_matches_the_reference_values() -> None:
    # pythermalcomfort's documented examples of the UTCI polynomial (Bröde et al. 2012):
    # Ta 25 °C, Tmrt 25 °C, 1 m/s, 50 % -> 24.6 °C; Ta 40 °C, same -> 40.4 °C
    result = utci_grid(
        air_temp_c=np.array([[25.0, 40.0]]), tmrt_c=np.array([[25.0, 25.0]]), wind_ms=1.0, rh_pct=50
    )
    np.testing.assert_allclose(result, [[24.6, 40.4]], atol=0.05)


def test_wind_below_half_a_metre_per_second_counts_as_the_utci_minimum() -> None:
    calm = utci_grid(air_temp_c=np.array([[30.0]]), tmrt_c=np.array([[50.0]]), wind_ms=0.0, rh_pct=40)
    floor = utci_grid(air_temp_c=np.array([[30.0]]), tmrt_c=np.array([[50.0]]), wind_ms=0.5, rh_pct=40)
    assert calm[0, 0] == floor[0, 0] and np.isfinite(calm[0, 0])


def _noon(hour_end: int = 13) -> HotDay:
    stamp = pd.Timestamp(f"2025-07-15 {hour_end:02d}:00")
    return HotDay(source="test", latitude=60.17, longitude=24.94, utc_offset_h=2.0, times=(stamp,),
                  temp_air_c=(28.0,), relative_humidity_pct=(40.0,), wind_speed_ms=(2.0,),
                  ghi_wm2=(750.0,), dni_wm2=(800.0,), dhi_wm2=(120.0,))  # fmt: skip


def test_solweig_puts_the_cells_north_of_a_building_in_its_shadow(tmp_path: Path) -> None:
    # A 12 m building on rows 2-5 (north is row 0). Around 12:30 local standard time in Helsinki the sun
    # stands about 52 degrees high in the south, so the shadow reaches 12 / tan(52°) = 9.4 m, 4-5 cells
    # of 2 m north of the building: row 0-1 in its columns lies in the shade (after the building's own
    # cells), while row 7, south of it, is in full sun.
    surface = small_surface()
    tmrt = mean_radiant_temperature(surface, _noon(), [0], params=ComfortParameters(), workdir=tmp_path)
    assert tmrt.shape == (1, *surface.grid.shape)
    shaded = float(tmrt[0, 0:2, 4:8].mean())
    sunlit = float(tmrt[0, 7, 4:8].mean())
    open_ground = float(tmrt[0, 14:18, 20:28].mean())
    assert sunlit - shaded > 15.0
    assert open_ground > 45.0 and open_ground - shaded > 15.0


def test_seeds_of_a_scenario_share_one_solweig_run_per_body_absorption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    surface, day, cache = small_surface(), _noon(), tmp_path / "cache"
    calls: list[float] = []
    real = comfort._solweig_tmrt

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["params"].abs_k)
        return real(*args, **kwargs)

    monkeypatch.setattr(comfort, "_solweig_tmrt", counted)
    first = mean_radiant_temperature(
        surface, day, [0], params=ComfortParameters(), workdir=tmp_path / "s1", cache_dir=cache
    )
    again = mean_radiant_temperature(
        surface, day, [0], params=ComfortParameters(), workdir=tmp_path / "s2", cache_dir=cache
    )
    assert calls == [0.7] and again.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    # another absorption is another radiation balance: computed, and kept beside the first
    other = mean_radiant_temperature(
        surface, day, [0], params=ComfortParameters(abs_k=0.75), workdir=tmp_path / "s3", cache_dir=cache
    )
    assert calls == [0.7, 0.75] and len(list(cache.glob("tmrt-*.npy"))) == 2
    # more absorbed shortwave warms every sunlit cell
    assert float(other[0, 7, 4:8].mean()) > float(first[0, 7, 4:8].mean())
