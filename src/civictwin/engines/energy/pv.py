"""Rooftop photovoltaics with pvlib: hourly AC yield per kWp for each roof orientation.

The chain is PVWatts (Dobos 2014, as pvlib implements it): plane-of-array irradiance from the EPW
(Hay–Davies transposition, :func:`~civictwin.engines.energy.weather.plane_irradiance`), cell
temperature with the Faiman model (``pvlib.temperature.faiman``, pvlib's default coefficients), DC
power with ``pvlib.pvsystem.pvwatts_dc`` and a temperature coefficient, system losses with
``pvlib.pvsystem.pvwatts_losses`` (soiling, shading, mismatch, wiring, connections, light-induced
degradation, nameplate, availability: 14.08% with pvlib's defaults), and a constant inverter
efficiency. A building's generation is the sum over its roof planes of kWp × yield.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from civictwin.engines.energy.weather import Weather, plane_irradiance

FLAT_ROOF_TILT_DEG = 15.0
"""Modules on flat roofs: racked at 15°, facing the equator (an assumption, see docs/methods-energy.md)."""
FLAT_ROOF_GROUND_COVER = 0.5
"""Module area per m² of usable flat roof: rows spaced so they do not shade each other in winter."""
PITCHED_ROOF_USABLE = 0.8
"""Share of a pitched roof plane that takes modules (edges, ridge and hip setbacks, dormers)."""
MAX_PV_TILT_DEG = 60.0
"""Roof planes steeper than this are walls for PV purposes and take no modules."""
POLEWARD_EXCLUDED_DEG = 45.0
"""Pitched planes facing within this many degrees of the pole (north in the north) take no modules."""


@dataclass(frozen=True)
class PvSystem:
    """PV parameters (one seed's values): module efficiency, losses, temperature coefficient."""

    module_efficiency: float = 0.20  # kWp per m² of module at 1 kW/m²
    losses_percent: float = float("nan")  # nan: pvlib's PVWatts default losses
    gamma_pdc: float = -0.0035  # 1/K, PVWatts v5 "premium" modules
    inverter_efficiency: float = 0.96  # PVWatts' nominal inverter efficiency

    def loss_factor(self) -> float:
        """1 − losses (fraction of DC energy that survives the system losses)."""
        import pvlib

        losses = pvlib.pvsystem.pvwatts_losses() if np.isnan(self.losses_percent) else self.losses_percent
        return 1.0 - float(losses) / 100.0


def yield_per_kwp(weather: Weather, *, tilt_deg: float, azimuth_deg: float, system: PvSystem) -> np.ndarray:
    """Hourly AC energy of 1 kWp on a plane (kWh per hour, 8,760 values)."""
    import pvlib

    poa = plane_irradiance(weather, tilt_deg=tilt_deg, azimuth_deg=azimuth_deg)
    temp_cell = pvlib.temperature.faiman(poa, weather.temp_air, weather.wind_speed)
    dc_w = pvlib.pvsystem.pvwatts_dc(poa, temp_cell, pdc0=1000.0, gamma_pdc=system.gamma_pdc)
    ac_w = np.asarray(dc_w, dtype=float) * system.loss_factor() * system.inverter_efficiency
    return np.clip(ac_w, 0.0, None) / 1000.0


def equator_azimuth(latitude: float) -> float:
    """The azimuth (degrees from north) that faces the equator: 180 in the north, 0 in the south."""
    return 180.0 if latitude >= 0 else 0.0


@dataclass(frozen=True)
class RoofPlanes:
    """PV-usable roof planes of all buildings: building index, module area (m²), tilt and azimuth."""

    building: np.ndarray  # int, index into the buildings
    module_m2: np.ndarray
    tilt_deg: np.ndarray
    azimuth_deg: np.ndarray

    def orientations(self) -> tuple[np.ndarray, np.ndarray]:
        """Unique (tilt, azimuth) pairs, rounded to 5°, and each plane's index into them."""
        keys = np.column_stack([np.rint(self.tilt_deg / 5) * 5, np.rint(self.azimuth_deg / 5) * 5 % 360])
        unique, inverse = np.unique(keys, axis=0, return_inverse=True)
        return unique, inverse.ravel()


def flat_roof_planes(usable_m2: np.ndarray, *, latitude: float) -> RoofPlanes:
    """One racked plane per building on flat LoD1 roofs (module area = ground cover × usable area)."""
    index = np.flatnonzero(usable_m2 > 0)
    return RoofPlanes(
        building=index,
        module_m2=usable_m2[index] * FLAT_ROOF_GROUND_COVER,
        tilt_deg=np.full(len(index), FLAT_ROOF_TILT_DEG),
        azimuth_deg=np.full(len(index), equator_azimuth(latitude)),
    )


def surface_roof_planes(surfaces: pd.DataFrame, building_index: pd.Series, *, latitude: float) -> RoofPlanes:
    """Roof planes from an LoD2 ``building_surfaces`` table (``area_m2``, ``tilt_deg``, ``azimuth_deg``).

    Flat planes (tilt under 10°) are racked like LoD1 flat roofs; pitched ones take flush modules on
    :data:`PITCHED_ROOF_USABLE` of their area unless too steep or facing the pole. ``building_index``
    maps each surface row to its building's position (NaN for buildings the model does not hold).
    """
    area = surfaces["area_m2"].to_numpy(dtype=float)
    tilt = surfaces["tilt_deg"].to_numpy(dtype=float)
    azimuth = surfaces["azimuth_deg"].to_numpy(dtype=float) % 360.0
    pole = 0.0 if latitude >= 0 else 180.0
    off_pole = np.abs((azimuth - pole + 180.0) % 360.0 - 180.0) > POLEWARD_EXCLUDED_DEG
    flat = tilt < 10.0
    usable = np.where(
        flat, FLAT_ROOF_GROUND_COVER, np.where(off_pole & (tilt <= MAX_PV_TILT_DEG), PITCHED_ROOF_USABLE, 0.0)
    )
    known = building_index.notna().to_numpy() & (usable > 0) & (area > 0)
    return RoofPlanes(
        building=building_index.to_numpy()[known].astype(int),
        module_m2=(area * usable)[known],
        tilt_deg=np.where(flat, FLAT_ROOF_TILT_DEG, tilt)[known],
        azimuth_deg=np.where(flat, equator_azimuth(latitude), azimuth)[known],
    )
