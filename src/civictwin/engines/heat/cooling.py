"""The InVEST Urban Cooling model ("factors" method, daytime), on numpy grids.

The equations, kernels and edge handling follow natcap-invest's ``urban_cooling_model`` (InVEST 3.20,
user's guide chapter "Urban Cooling") step by step; the model is re-expressed on in-memory arrays
because natcap-invest needs GDAL's Python bindings, which have no wheel and take many minutes to
compile here (docs/methods-heat.md, "Why not the natcap-invest package"); it agrees with
natcap-invest 3.20.2 cell by cell (``benchmarks/parity_invest_cooling.py``). Every step keeps InVEST's
name:

1. ETI = Kc · ET0 / ET0_max (eq. 1); with one ET0 for the whole area, ETI = Kc.
2. CC = w_shade · shade + w_albedo · albedo + w_eti · ETI, weights normalised to sum 1 (eq. 2).
3. CC_park: CC of green-area cells averaged with an exponential-decay kernel of scale
   ``cooling_distance_m`` (cut at five scales), edge-corrected.
4. GA: green-area pixels within ``cooling_distance_m`` (a disk), edge-corrected.
5. HM = CC_park where GA ≥ 2 ha and CC_park > CC, else CC (eq. 4).
6. T_air,nomix = T_ref + (1 − HM) · UHI_max (eq. 5).
7. T_air: T_air,nomix averaged with an exponential-decay kernel of scale ``blending_distance_m``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.signal import fftconvolve

FloatGrid = NDArray[np.float64]
_LARGE_GREEN_AREA_M2 = 2e4  # 2 ha: InVEST's threshold for a park's extra cooling (user's guide, eq. 4)


@dataclass(frozen=True)
class CoolingParameters:
    """The scalar inputs of the Urban Cooling model (units in the names; weights are unitless)."""

    t_ref_c: float
    uhi_max_c: float
    cooling_distance_m: float
    blending_distance_m: float
    weight_shade: float = 0.6
    weight_albedo: float = 0.2
    weight_eti: float = 0.2


@dataclass(frozen=True)
class CoolingResult:
    """The model's grids: cooling capacity, heat mitigation index and air temperature (°C)."""

    cc: FloatGrid
    hm: FloatGrid
    t_air_nomix_c: FloatGrid
    t_air_c: FloatGrid


def cooling_capacity(
    *, shade: FloatGrid, albedo: FloatGrid, eti: FloatGrid, params: CoolingParameters
) -> FloatGrid:
    """CC per cell (0–1) from shade share, albedo and evapotranspiration index, InVEST eq. 2."""
    total = params.weight_shade + params.weight_albedo + params.weight_eti
    return (params.weight_shade * shade + params.weight_albedo * albedo + params.weight_eti * eti) / total


def evapotranspiration_index(kc: FloatGrid, et0: FloatGrid | float) -> FloatGrid:
    """ETI = Kc · ET0 / max(ET0), InVEST eq. 1 (Kc alone when ET0 is one value for the area)."""
    et0_grid = np.broadcast_to(np.asarray(et0, dtype=np.float64), kc.shape)
    return kc * et0_grid / float(et0_grid.max())


def urban_cooling(
    *,
    shade: FloatGrid,
    albedo: FloatGrid,
    kc: FloatGrid,
    green_area: NDArray[np.bool_],
    cell_m: float,
    params: CoolingParameters,
    et0: FloatGrid | float = 1.0,
) -> CoolingResult:
    """Run the model on aligned grids of one cell size ``cell_m`` (metres)."""
    cc = cooling_capacity(shade=shade, albedo=albedo, eti=evapotranspiration_index(kc, et0), params=params)
    cooling_px = int(np.round(params.cooling_distance_m / cell_m))
    cc_park = _edge_corrected(np.where(green_area, cc, 0.0), _exponential_kernel(cooling_px))
    disk = _disk_kernel(cooling_px)
    green_pixels = _edge_corrected(green_area.astype(np.float64), disk) * disk.sum()
    hm = heat_mitigation(cc=cc, cc_park=cc_park, green_pixels=green_pixels, cell_m=cell_m)
    t_nomix = params.t_ref_c + (1.0 - hm) * params.uhi_max_c
    blend_px = int(np.round(params.blending_distance_m / cell_m))
    t_air = _edge_corrected(t_nomix, _exponential_kernel(blend_px))
    return CoolingResult(cc=cc, hm=hm, t_air_nomix_c=t_nomix, t_air_c=t_air)


def heat_mitigation(
    *, cc: FloatGrid, cc_park: FloatGrid, green_pixels: FloatGrid, cell_m: float
) -> FloatGrid:
    """HM: a park's cooling replaces the local CC where at least 2 ha of green lie within reach."""
    near_large_park = green_pixels >= _LARGE_GREEN_AREA_M2 / cell_m**2
    return np.where(near_large_park & (cc_park > cc), cc_park, cc)


def _exponential_kernel(scale_px: int) -> FloatGrid:
    """exp(−d / scale) out to five scales, normalised to sum 1 (a single 1 when the scale is 0)."""
    if scale_px <= 0:
        return np.ones((1, 1))
    reach = 5 * scale_px
    dist = _distance_grid(reach)
    kernel = np.where(dist <= reach, np.exp(-dist / scale_px), 0.0)
    return np.asarray(kernel / kernel.sum(), dtype=np.float64)


def _disk_kernel(radius_px: int) -> FloatGrid:
    """1 within ``radius_px`` cells of the centre, else 0."""
    return np.asarray(_distance_grid(max(radius_px, 0)) <= radius_px, dtype=np.float64)


def _distance_grid(reach: int) -> FloatGrid:
    offsets = np.arange(-reach, reach + 1, dtype=np.float64)
    return np.hypot(offsets[:, None], offsets[None, :])


def _edge_corrected(signal: FloatGrid, kernel: FloatGrid) -> FloatGrid:
    """The kernel-weighted mean of ``signal`` over the cells inside the grid.

    Cells near the edge average over the part of the kernel that lies inside, as pygeoprocessing's
    ``convolve_2d(ignore_nodata_and_edges=True)`` does for InVEST.
    """
    if kernel.size == 1:
        return signal.astype(np.float64)
    weighted = fftconvolve(signal, kernel, mode="same")
    coverage = fftconvolve(np.ones_like(signal, dtype=np.float64), kernel, mode="same")
    return np.asarray(weighted / coverage, dtype=np.float64)
