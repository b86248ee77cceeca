"""One seed of the heat engine: Urban Cooling air temperature, SOLWEIG Tmrt, UTCI, and the indicators.

The two models meet in the air temperature: the Urban Cooling model gives each cell's air temperature
anomaly over the rural reference (ΔT = T_air − T_ref, with T_ref the EPW's value of the hour), SOLWEIG
gives Tmrt per cell and hour, and UTCI at a cell and hour uses T_EPW + ΔT, Tmrt, the EPW's wind and
humidity. Each resident is exposed to the peak UTCI of the day at the outdoor cell nearest their home.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.ndimage import distance_transform_edt

from civictwin.engines.heat import params as P
from civictwin.engines.heat.comfort import ComfortParameters, mean_radiant_temperature, utci_grid
from civictwin.engines.heat.cooling import CoolingParameters, urban_cooling
from civictwin.engines.heat.rasters import Cover, Surface
from civictwin.engines.heat.weather import HotDay

CANOPY_MIN_HEIGHT_M = 2.0  # InVEST's "shade": tree canopy at least 2 m high


@dataclass(frozen=True)
class Grids:
    """The per-cell results of one seed (NaN on building cells for outdoor quantities)."""

    delta_t_c: NDArray[np.float64]
    air_temp_peak_c: NDArray[np.float64]
    utci_peak_c: NDArray[np.float64]
    cooling_c: NDArray[np.float64]


def ucm_inputs(surface: Surface, values: dict[str, float]) -> dict[str, NDArray[np.float64]]:
    """Shade, albedo, Kc and green-area grids for the Urban Cooling model, from land cover and canopy."""
    cover = surface.cover
    canopy = surface.canopy_height_m >= CANOPY_MIN_HEIGHT_M
    albedo = np.zeros(cover.shape)
    for klass, value in P.ALBEDO.items():
        albedo[cover == klass] = value
    kc = np.full(cover.shape, values["kc_sealed"])
    kc[cover == Cover.GRASS] = values["kc_grass"]
    kc[cover == Cover.WATER] = P.KC_WATER
    kc[cover == Cover.BARE_SOIL] = P.KC_BARE_SOIL
    kc[canopy] = np.maximum(kc[canopy], values["kc_tree"])
    albedo[canopy] = values["albedo_canopy"]
    kc[surface.green_roof] = values["kc_green_roof"]
    albedo[surface.green_roof] = P.GREEN_ROOF_ALBEDO
    albedo = np.where(np.isfinite(surface.albedo), surface.albedo, albedo)
    green = ((cover == Cover.GRASS) | canopy) & (cover != Cover.BUILDING)
    return {"shade": canopy.astype(np.float64), "albedo": albedo, "kc": kc, "green_area": green}


def simulate(
    surface: Surface,
    day: HotDay,
    hours: list[int],
    values: dict[str, float],
    *,
    workdir: Path,
    tmrt_cache: Path | None = None,
) -> Grids:
    """Air temperature, cooling and peak UTCI per cell for one draw of the parameters.

    ``tmrt_cache``: where SOLWEIG's Tmrt is kept between seeds (see
    :func:`~civictwin.engines.heat.comfort.mean_radiant_temperature`); None computes it here.
    """
    inputs = ucm_inputs(surface, values)
    cooling = urban_cooling(
        shade=inputs["shade"],
        albedo=inputs["albedo"],
        kc=inputs["kc"],
        green_area=inputs["green_area"].astype(bool),
        cell_m=surface.grid.cell_m,
        params=CoolingParameters(
            t_ref_c=0.0,
            uhi_max_c=values["uhi_max_c"],
            cooling_distance_m=values["cooling_distance_m"],
            blending_distance_m=values["blending_distance_m"],
        ),
    )
    delta = cooling.t_air_c
    outdoor = surface.cover != Cover.BUILDING
    tmrt = mean_radiant_temperature(
        surface,
        day,
        hours,
        params=ComfortParameters(abs_k=values["abs_k"]),
        workdir=workdir,
        cache_dir=tmrt_cache,
    )
    peak = np.full(surface.grid.shape, -np.inf)
    for step, hour in enumerate(hours):
        utci = utci_grid(
            air_temp_c=day.temp_air_c[hour] + delta,
            tmrt_c=tmrt[step].astype(np.float64),
            wind_ms=day.wind_speed_ms[hour],
            rh_pct=day.relative_humidity_pct[hour],
        )
        peak = np.fmax(peak, utci)
    peak[~np.isfinite(peak)] = np.nan
    return Grids(
        delta_t_c=np.where(outdoor, delta, np.nan),
        air_temp_peak_c=np.where(outdoor, day.max_temp_c + delta, np.nan),
        utci_peak_c=np.where(outdoor, peak, np.nan),
        cooling_c=np.where(outdoor, values["uhi_max_c"] - delta, np.nan),
    )


def at_nearest_outdoor_cell(surface: Surface, values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each building cell takes the value of the nearest outdoor cell (the street in front of it)."""
    indoor = (surface.cover == Cover.BUILDING) | ~np.isfinite(values)
    if indoor.all():
        return np.full(values.shape, np.nan)
    _, nearest = distance_transform_edt(indoor, return_indices=True)
    return np.asarray(values[nearest[0], nearest[1]], dtype=np.float64)


def zone_table(
    surface: Surface,
    grids: Grids,
    *,
    exposed: NDArray[np.bool_],
    green_access: NDArray[np.float64],
) -> pd.DataFrame:
    """Per zone: residents, residents exposed, mean air temperature and cooling, canopy share, access.

    ``exposed`` marks cells whose residents face the chosen heat-stress class; ``green_access`` holds
    per cell the residents with green access.
    """
    zones = surface.zone
    n = len(surface.zone_ids)
    inside = zones >= 0
    idx = zones[inside]
    outdoor = np.isfinite(grids.air_temp_peak_c) & inside

    def per_zone(weights: NDArray[np.float64], mask: NDArray[np.bool_] = inside) -> NDArray[np.float64]:
        return np.bincount(zones[mask], weights=weights[mask], minlength=n).astype(np.float64)

    cells = np.bincount(idx, minlength=n).astype(float)
    outdoor_cells = np.bincount(zones[outdoor], minlength=n).astype(float)
    rated = np.isfinite(grids.utci_peak_c) & inside  # UTCI is NaN where its polynomial does not apply
    rated_cells = np.bincount(zones[rated], minlength=n).astype(float)
    canopy = (surface.canopy_height_m >= CANOPY_MIN_HEIGHT_M).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        frame = pd.DataFrame(
            {
                "zone_id": list(surface.zone_ids),
                "residents": per_zone(surface.residents),
                "residents_heat_exposed": per_zone(surface.residents * exposed),
                "residents_green_access": per_zone(green_access),
                "air_temp_peak_c": per_zone(np.nan_to_num(grids.air_temp_peak_c), outdoor) / outdoor_cells,
                "cooling_c": per_zone(np.nan_to_num(grids.cooling_c), outdoor) / outdoor_cells,
                "utci_peak_c": per_zone(np.nan_to_num(grids.utci_peak_c), rated) / rated_cells,
                "canopy_share": per_zone(canopy) / cells,
            }
        )
    return frame
