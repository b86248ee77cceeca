"""Weather, typology, geometry and PV inputs against values computed by hand from the files."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely

from civictwin.engines.energy.archetypes import load_use_profiles, read_typology
from civictwin.engines.energy.geometry import envelope_geometry, flat_roof_pv_area
from civictwin.engines.energy.model import construction_year
from civictwin.engines.energy.pv import PvSystem, yield_per_kwp
from civictwin.engines.energy.weather import read_weather
from civictwin.errors import ConfigError


def test_missing_and_malformed_epw_are_one_line_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.epw: weather file not found"):
        read_weather(tmp_path / "missing.epw")
    bad = tmp_path / "bad.epw"
    bad.write_text("LOCATION,Nowhere\nnot,an,epw\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        read_weather(bad)
    assert err.value.user_message().startswith(f"{bad}: not a readable EPW weather file")
    assert "\n" not in err.value.user_message()


def test_epw_read_matches_the_files_own_columns(helsinki_weather: Any, helsinki_epw: Path) -> None:
    # hand check: column 7 of every data row (after 8 header lines) is the dry-bulb temperature and
    # column 14 the global horizontal irradiance, Wh/m²
    with helsinki_epw.open(encoding="utf-8", errors="replace") as handle:
        rows = list(csv.reader(handle))[8:]
    temps = np.array([float(r[6]) for r in rows])
    ghi = np.array([float(r[13]) for r in rows])
    assert len(rows) == 8760
    assert helsinki_weather.temp_air == pytest.approx(temps)
    assert helsinki_weather.ghi.sum() / 1000 == pytest.approx(ghi.sum() / 1000)  # 946.9 kWh/m²
    assert ghi.sum() / 1000 == pytest.approx(946.9, abs=0.1)
    assert helsinki_weather.latitude == pytest.approx(60.32)


def test_pv_yield_of_a_horizontal_roof_by_hand(helsinki_weather: Any, helsinki_epw: Path) -> None:
    # PVGIS-style by hand: on a horizontal plane the irradiation is the direct part DNI·cos(zenith)
    # plus the diffuse DHI, straight from the EPW columns 15 and 16 (about 947 kWh/m² in the year);
    # without a temperature effect 1 kWp yields H × (1 − losses) × η_inverter (losses 14.08%, η 0.96)
    with helsinki_epw.open(encoding="utf-8", errors="replace") as handle:
        rows = list(csv.reader(handle))[8:]
    dni, dhi = np.array([float(r[14]) for r in rows]), np.array([float(r[15]) for r in rows])
    cos_zenith = np.cos(np.radians(helsinki_weather.solar_zenith))
    irradiation = (dni * np.where(cos_zenith > 0, cos_zenith, 0.0) + dhi).sum() / 1000
    system = PvSystem(gamma_pdc=0.0)
    energy = yield_per_kwp(helsinki_weather, tilt_deg=0.0, azimuth_deg=180.0, system=system).sum()
    assert irradiation == pytest.approx(947.5, abs=1.0)
    assert energy == pytest.approx(irradiation * (1 - 0.14075660688) * 0.96, rel=1e-6)
    assert energy == pytest.approx(781.6, abs=0.5)


def test_pv_yield_of_a_tilted_roof_against_the_isotropic_sky_by_hand(helsinki_weather: Any) -> None:
    # 40° south: POA = DNI·cos(AOI) + DHI·(1 + cos β)/2 + GHI·ρ·(1 − cos β)/2 (isotropic sky, by hand);
    # Hay–Davies adds circumsolar light, so the model's irradiation lies above it by a few per cent
    w = helsinki_weather
    zen, az = np.radians(w.solar_zenith), np.radians(w.solar_azimuth)
    beta, gamma = np.radians(40.0), np.radians(180.0)
    cos_aoi = np.cos(zen) * np.cos(beta) + np.sin(zen) * np.sin(beta) * np.cos(az - gamma)
    poa = np.maximum(cos_aoi, 0) * w.dni * (zen < np.radians(90)) + w.dhi * (1 + np.cos(beta)) / 2
    poa += w.ghi * w.albedo * (1 - np.cos(beta)) / 2
    by_hand = poa.sum() / 1000 * (1 - 0.14075660688) * 0.96
    model = yield_per_kwp(w, tilt_deg=40.0, azimuth_deg=180.0, system=PvSystem(gamma_pdc=0.0)).sum()
    assert 1.0 < model / by_hand < 1.08
    # and with the temperature coefficient the Helsinki yield lands near PVGIS's figures for the
    # city (about 850–950 kWh/kWp for an optimally tilted roof)
    real = yield_per_kwp(w, tilt_deg=40.0, azimuth_deg=180.0, system=PvSystem()).sum()
    assert 820 < real < 1000


def test_tabula_refurbishment_follows_the_calculation_sheet(sweden_typology: Any) -> None:
    mfh = sweden_typology[(sweden_typology["size_class"] == "MFH") & (sweden_typology["year_from"] == 1961)]
    existing, usual, advanced = (mfh[mfh["variant"] == v].iloc[0] for v in (1, 2, 3))
    # SE.N.MFH.02: wall 0.41 W/(m²K); usual refurbishment adds R = 1.7151515 m²K/W in series:
    # 1 / (1/0.41 + 1.7151515) = 0.2407; windows are replaced (R = 1.1111112 → U = 0.90)
    assert existing["u_wall"] == pytest.approx(0.41)
    assert usual["u_wall"] == pytest.approx(1 / (1 / 0.41 + 1.7151515), rel=1e-6)
    assert advanced["u_wall"] == pytest.approx(1 / (1 / 0.41 + 9.290909), rel=1e-6)
    assert usual["u_window"] == pytest.approx(1 / 1.1111112, rel=1e-6)
    assert existing["n_infiltration"] == pytest.approx(0.4)
    assert usual["n_infiltration"] == pytest.approx(0.2)


def test_a_file_that_is_not_a_typology_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "typo.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a TABULA typology: missing column"):
        read_typology(path)
    with pytest.raises(ConfigError, match="typology file not found"):
        read_typology(tmp_path / "none.csv")


def test_use_profiles_come_from_teaser() -> None:
    living = load_use_profiles({"Living"})["Living"]
    # TEASER "Living": 1 person per 50 m² at 70 W, appliances 2 W/m², lighting 75 lx / 150 lm/W = 0.5 W/m²,
    # heating 294.15 K = 21 °C; at 07:00 persons 0.6, machines 1.0, lighting 1.0
    assert living.heating_setpoint[7] == pytest.approx(21.0)
    assert living.internal_gains[7] == pytest.approx(70 / 50 * 0.6 + 2.0 * 1.0 + 0.5 * 1.0)
    assert living.electricity[7] == pytest.approx(2.5)


def test_shared_walls_are_adiabatic_up_to_the_lower_neighbour() -> None:
    # two 10 m boxes touching along x = 10 (heights 9 and 6 m), a third alone with a courtyard
    a, b = shapely.box(0, 0, 10, 10), shapely.box(10, 0, 20, 10)
    c = shapely.Polygon(
        [(100, 0), (120, 0), (120, 20), (100, 20)], [[(105, 5), (105, 15), (115, 15), (115, 5)]]
    )
    geometry = envelope_geometry(np.array([a, b, c]), np.array([9.0, 6.0, 3.0]))
    # a: N, S, W 10 × 9 = 90 m² each; its east wall is shared up to 6 m: 10 × 3 = 30 m² exposed
    assert geometry.facade_m2[0].tolist() == pytest.approx([90, 30, 90, 90])
    assert geometry.facade_m2[1].tolist() == pytest.approx([60, 60, 60, 0])
    assert geometry.shared_wall_m2.tolist() == pytest.approx([60, 60, 0])
    # the courtyard's walls face into it: 20 × 3 + 10 × 3 per orientation
    assert geometry.facade_m2[2].tolist() == pytest.approx([90, 90, 90, 90])
    assert geometry.roof_m2.tolist() == pytest.approx([100, 100, 300])
    # a 1 m setback leaves 8 × 8 of a 10 m box, and 18² − 12² of the courtyard block
    assert flat_roof_pv_area(np.array([a, c]), setback_m=1.0).tolist() == pytest.approx([64, 180])


@pytest.mark.parametrize(
    ("text", "year"),
    [("1908", 1908), ("1890s", 1895), ("after 1905..1908", 1906.5), ("2012?", 2012), ("before 1939", 1939),
     ("1938-10", 1938), ("unknown", None), (None, None)],
)  # fmt: skip
def test_construction_year_from_osm_start_date(text: str | None, year: float | None) -> None:
    value = construction_year(text)
    assert np.isnan(value) if year is None else value == pytest.approx(year)
