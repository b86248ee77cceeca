"""A typical year of hourly weather from an EnergyPlus EPW file, and the irradiance it puts on surfaces.

pvlib reads the EPW (``pvlib.iotools.read_epw``), finds the sun (``pvlib.solarposition``) and
transposes the horizontal irradiance onto façades and roofs (``pvlib.irradiance.get_total_irradiance``,
Hay–Davies). Everything here is plain numpy arrays of 8,760 hours, so the building model can broadcast
them over buildings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from civictwin.errors import ConfigError

HOURS = 8760
# Façade orientations (azimuth, degrees clockwise from north) whose irradiance the model computes;
# every wall is assigned to the nearest one.
FACADE_AZIMUTHS = (0.0, 90.0, 180.0, 270.0)
# Ground reflectance for the transposition where the EPW gives none: 0.2, the common default for
# urban ground (pvlib's own default is 0.25; PVGIS uses 0.2).
DEFAULT_ALBEDO = 0.2


@dataclass(frozen=True)
class Weather:
    """Hourly weather of a typical year (8,760 values each) and where it was measured."""

    path: str
    station: str
    latitude: float
    longitude: float
    altitude_m: float
    temp_air: np.ndarray  # °C
    wind_speed: np.ndarray  # m/s
    ghi: np.ndarray  # W/m², global horizontal
    dni: np.ndarray  # W/m², direct normal
    dhi: np.ndarray  # W/m², diffuse horizontal
    solar_zenith: np.ndarray  # degrees, at the middle of each hour
    solar_azimuth: np.ndarray  # degrees clockwise from north
    dni_extra: np.ndarray  # W/m², extraterrestrial normal irradiance
    albedo: np.ndarray  # ground reflectance, 0..1
    hour_of_day: np.ndarray  # 0..23, local standard time


def read_weather(path: Path) -> Weather:
    """Read an EPW file; a missing, unreadable or incomplete file is one :class:`ConfigError` naming it."""
    import pvlib

    if not path.is_file():
        raise ConfigError("weather file not found", path=path)
    try:
        data, meta = pvlib.iotools.read_epw(str(path))
    except Exception as exc:  # pvlib raises ValueError, KeyError, IndexError, ... on malformed files
        raise ConfigError(
            f"not a readable EPW weather file ({type(exc).__name__}: {exc})", path=path
        ) from None
    if len(data) != HOURS:
        raise ConfigError(f"expected {HOURS} hourly records of a typical year, found {len(data)}", path=path)
    needed = ["temp_air", "ghi", "dni", "dhi", "wind_speed"]
    missing = [c for c in needed if data[c].isna().any() or (data[c] >= 9999).any()]
    if missing:
        raise ConfigError(f"missing values in {', '.join(missing)}", path=path)
    return _weather(path, data, meta)


def _weather(path: Path, data: pd.DataFrame, meta: dict[str, object]) -> Weather:
    import pvlib

    lat, lon = float(meta["latitude"]), float(meta["longitude"])  # type: ignore[arg-type]
    altitude = float(meta["altitude"])  # type: ignore[arg-type]
    # pvlib labels each EPW record with the start of its hour; the sun is taken at the middle of it.
    index = pd.DatetimeIndex(data.index)
    middle = index + pd.Timedelta(minutes=30)
    sun = pvlib.solarposition.get_solarposition(middle, lat, lon, altitude=altitude)
    albedo = data["albedo"].to_numpy(dtype=float)
    albedo = np.where((albedo > 0) & (albedo < 1), albedo, DEFAULT_ALBEDO)
    return Weather(
        path=str(path),
        station=f"{meta.get('city', '')} ({meta.get('data_type', '')})".strip(),
        latitude=lat,
        longitude=lon,
        altitude_m=altitude,
        temp_air=data["temp_air"].to_numpy(dtype=float),
        wind_speed=data["wind_speed"].to_numpy(dtype=float),
        ghi=data["ghi"].to_numpy(dtype=float),
        dni=data["dni"].to_numpy(dtype=float),
        dhi=data["dhi"].to_numpy(dtype=float),
        solar_zenith=sun["apparent_zenith"].to_numpy(dtype=float),
        solar_azimuth=sun["azimuth"].to_numpy(dtype=float),
        dni_extra=pvlib.irradiance.get_extra_radiation(middle).to_numpy(dtype=float),
        albedo=albedo,
        hour_of_day=np.asarray(index.hour),
    )


def plane_irradiance(weather: Weather, *, tilt_deg: float, azimuth_deg: float) -> np.ndarray:
    """Global irradiance on a plane (W/m², 8,760 values): Hay–Davies sky diffuse, ground reflection.

    Hay–Davies (pvlib ``model="haydavies"``) keeps the circumsolar part of the diffuse light, which
    matters for façades; it needs only the EPW's own columns and the extraterrestrial irradiance.
    """
    import pvlib

    poa = pvlib.irradiance.get_total_irradiance(
        surface_tilt=tilt_deg,
        surface_azimuth=azimuth_deg,
        solar_zenith=weather.solar_zenith,
        solar_azimuth=weather.solar_azimuth,
        dni=weather.dni,
        ghi=weather.ghi,
        dhi=weather.dhi,
        dni_extra=weather.dni_extra,
        albedo=weather.albedo,
        model="haydavies",
    )
    values = np.nan_to_num(np.asarray(poa["poa_global"], dtype=float), nan=0.0)
    clipped: np.ndarray = np.clip(values, 0.0, None)
    return clipped


def facade_irradiance(weather: Weather) -> np.ndarray:
    """Irradiance on vertical walls facing N, E, S, W and on the horizontal roof: shape (5, 8760), W/m²."""
    walls = [plane_irradiance(weather, tilt_deg=90.0, azimuth_deg=a) for a in FACADE_AZIMUTHS]
    return np.vstack([*walls, weather.ghi.clip(0.0, None)])
