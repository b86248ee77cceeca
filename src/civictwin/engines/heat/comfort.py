"""Street-level heat stress: mean radiant temperature from SOLWEIG, UTCI from pythermalcomfort.

SOLWEIG (the ``solweig`` package, a Rust port of UMEP's SOLWEIG; Lindberg et al. 2008, 2018) models
the radiation a standing person receives: building and tree shadows, sky view factors, wall and ground
emission and reflection. It needs a surface model (ground + buildings), a canopy height model, land
cover (UMEP ids) and hourly weather; it returns the mean radiant temperature Tmrt (°C) per cell and
hour. UTCI (Bröde et al. 2012; the operational polynomial, via :func:`pythermalcomfort.models.utci`)
then combines air temperature, Tmrt, 10 m wind speed and humidity into an equivalent temperature, and
the UTCI assessment scale names the heat-stress class.

SOLWEIG ties albedo, emissivity and ground heating to the land-cover class, so a cool-surface
intervention changes the air temperature (through the Urban Cooling model's albedo term) but not Tmrt;
docs/methods-heat.md states this limit.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from civictwin import durable
from civictwin.engines.heat.rasters import Surface
from civictwin.engines.heat.weather import HotDay
from civictwin.errors import EngineError
from civictwin.locking import exclusive

# UTCI assessment scale, heat side (Błażejczyk et al. 2013, Geographia Polonica 86(1), table 1), °C.
HEAT_STRESS_CLASSES: tuple[tuple[str, float], ...] = (
    ("moderate", 26.0),
    ("strong", 32.0),
    ("very_strong", 38.0),
    ("extreme", 46.0),
)


@dataclass(frozen=True)
class ComfortParameters:
    """Inputs of the radiation model that are uncertain: the body's shortwave absorption (0–1)."""

    abs_k: float = 0.7


def mean_radiant_temperature(
    surface: Surface,
    day: HotDay,
    hours: list[int],
    *,
    params: ComfortParameters,
    workdir: Path,
    cache_dir: Path | None = None,
) -> NDArray[np.float32]:
    """Tmrt (°C) per hour in ``hours`` (indices into ``day``) and cell: an (hours, rows, cols) array.

    With ``cache_dir`` the result is kept there under a hash of everything it depends on (heights,
    canopy, cover, cell size, the hours' weather, the place, the body's absorption, solweig's
    version): the seeds of a scenario that draw the same absorption (all of them unless assumed
    ranges are sampled) run SOLWEIG once, and a seed arriving while another computes it waits for
    that result instead of computing it again.
    """
    if cache_dir is None:
        return _solweig_tmrt(surface, day, hours, params=params, workdir=workdir)
    key = _tmrt_key(surface, day, hours, params)
    target = cache_dir / f"tmrt-{key}.npy"
    with exclusive(cache_dir / f"tmrt-{key}.lock", wait=True):
        if target.is_file():
            return np.asarray(np.load(target), dtype=np.float32)
        tmrt = _solweig_tmrt(surface, day, hours, params=params, workdir=workdir)
        with durable.atomic_path(target) as partial:
            np.save(partial, tmrt)
    return tmrt


def _tmrt_key(surface: Surface, day: HotDay, hours: list[int], params: ComfortParameters) -> str:
    """A hash of every input of :func:`_solweig_tmrt` (SHA-256, hex, first 32 characters)."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    for grid in (surface.building_height_m, surface.canopy_height_m, surface.cover):
        array = np.ascontiguousarray(grid)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    weather = [
        (str(day.times[i]), day.temp_air_c[i], day.relative_humidity_pct[i], day.ghi_wm2[i],
         day.wind_speed_ms[i], day.dni_wm2[i], day.dhi_wm2[i])
        for i in hours
    ]  # fmt: skip
    digest.update(
        json.dumps(
            [surface.grid.cell_m, weather, day.latitude, day.longitude, day.utc_offset_h, params.abs_k,
             version("solweig")]
        ).encode()
    )  # fmt: skip
    return digest.hexdigest()[:32]


def _solweig_tmrt(
    surface: Surface, day: HotDay, hours: list[int], *, params: ComfortParameters, workdir: Path
) -> NDArray[np.float32]:
    """SOLWEIG's Tmrt for ``hours``: walls, sky view factors and shadows, then each hour's radiation."""
    import solweig

    logging.getLogger("solweig").setLevel(logging.ERROR)
    dsm = surface.building_height_m.astype(np.float32)
    try:
        prepared = solweig.SurfaceData.prepare(
            dsm=dsm,
            cdsm=surface.canopy_height_m.astype(np.float32),
            land_cover=surface.cover.astype(np.int32),
            pixel_size=surface.grid.cell_m,
            cdsm_relative=True,
        )
        weather = [_weather(day, i) for i in hours]
        solweig.calculate(
            surface=prepared,
            weather=weather,
            location=solweig.Location(
                latitude=day.latitude, longitude=day.longitude, utc_offset=day.utc_offset_h
            ),
            output_dir=workdir,
            outputs=["tmrt"],
            human=solweig.HumanParams(abs_k=params.abs_k),
        )
    except (ValueError, RuntimeError, solweig.SolweigError) as exc:
        raise EngineError(f"SOLWEIG failed: {type(exc).__name__}: {exc}") from None
    return np.stack([_read_tmrt(workdir, w.datetime) for w in weather])


def utci_grid(
    *, air_temp_c: NDArray[np.float64], tmrt_c: NDArray[np.float64], wind_ms: float, rh_pct: float
) -> NDArray[np.float64]:
    """UTCI (°C) per cell; inputs outside the polynomial's validity give NaN (pythermalcomfort's rule).

    Wind below UTCI's lower limit of 0.5 m/s is raised to it, as the UTCI operational procedure does.
    """
    from pythermalcomfort.models import utci

    result = utci(
        tdb=air_temp_c.ravel(),
        tr=tmrt_c.ravel(),
        v=np.full(air_temp_c.size, max(wind_ms, 0.5)),
        rh=np.full(air_temp_c.size, rh_pct),
        round_output=False,
    )
    return np.asarray(result.utci, dtype=np.float64).reshape(air_temp_c.shape)


def stress_class_threshold(name: str) -> float:
    """The lower UTCI bound (°C) of a heat-stress class of :data:`HEAT_STRESS_CLASSES`."""
    for label, bound in HEAT_STRESS_CLASSES:
        if label == name:
            return bound
    raise EngineError(f"unknown UTCI heat-stress class {name!r}; expected one of "
                      + ", ".join(label for label, _ in HEAT_STRESS_CLASSES))  # fmt: skip


def _weather(day: HotDay, index: int) -> Any:
    import solweig

    stamp = day.times[index]
    return solweig.Weather(
        datetime=datetime(stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute),
        ta=day.temp_air_c[index],
        rh=day.relative_humidity_pct[index],
        global_rad=day.ghi_wm2[index],
        ws=day.wind_speed_ms[index],
        measured_direct_rad=day.dni_wm2[index],
        measured_diffuse_rad=day.dhi_wm2[index],
    )


def _read_tmrt(workdir: Path, stamp: datetime) -> NDArray[np.float32]:
    import rasterio

    path = workdir / "tmrt" / f"tmrt_{stamp:%Y%m%d_%H%M}.tif"
    if not path.is_file():
        raise EngineError(f"SOLWEIG wrote no Tmrt grid for {stamp:%Y-%m-%d %H:%M}", path=path)
    with rasterio.open(path) as src:
        return np.asarray(src.read(1), dtype=np.float32)
