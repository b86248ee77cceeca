"""DEM sources: a terrain raster (GeoTIFF or anything GDAL reads), read with rasterio into the twin's CRS.

The raster is reprojected (bilinear) onto a grid in the twin's metric CRS covering the area of
interest plus :data:`MARGIN_M`, at the file's own resolution in metres, and stored as blocks of
:data:`BLOCK` × :data:`BLOCK` float32 heights (NaN where the file has no data), so the model can
sample heights without the file. A DEM whose extent does not cover the whole area is an error:
every building and node needs a height. Heights stay in the file's vertical datum, named in the
quality record. GDAL is told not to write ``.aux.xml`` side files beside the user's data.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import rasterio
import shapely
from pyproj import CRS, Transformer
from rasterio.crs import CRS as RasterCRS
from rasterio.errors import RasterioIOError
from rasterio.transform import from_origin
from rasterio.warp import Resampling, reproject

from civictwin.config import SourceConfig
from civictwin.errors import SourceError
from civictwin.sources.base import BuildContext, IngestedLayer, IngestResult

MARGIN_M = 50.0
"""Terrain kept around the area (m), so features on its boundary still find heights."""
BLOCK = 256
"""Cells per side of a stored block."""


def ingest(source: SourceConfig, ctx: BuildContext) -> IngestResult:
    """Read a DEM into the table ``source.name`` (blocks of heights in the twin's CRS)."""
    path = ctx.path_of(source)
    if not path.is_file():
        raise SourceError("file not found", path=path)
    with rasterio.Env(GDAL_PAM_ENABLED="NO"):
        try:
            with rasterio.open(path) as dem:
                crs, vertical = _crs(dem, source, path)
                grid, transform, cell = _warp(dem, crs, ctx, path)
        except RasterioIOError as exc:
            raise SourceError(f"not a readable raster: {str(exc).splitlines()[0][:200]}", path=path) from None
    frame = _blocks(grid, transform, cell)
    rows = ctx.store.write_table(source.name, frame)
    inside = _cells_inside(grid, transform, ctx.area)
    missing = int(np.isnan(grid[inside]).sum())
    quality: dict[str, Any] = {
        "cells": int(grid.size), "cell_size_m": cell, "cells_in_area": int(inside.sum()), "no_data_in_area": missing,
        "min_m": float(np.nanmin(grid)) if np.isfinite(grid).any() else None,
        "max_m": float(np.nanmax(grid)) if np.isfinite(grid).any() else None,
        "crs": crs, "vertical_crs": vertical,
    }  # fmt: skip
    notes = [
        f"heights in the DEM's vertical datum: {vertical or 'undeclared'}; resampled bilinearly to {cell:g} m cells"
    ]
    if missing:
        notes.append(f"{missing} cell(s) inside the area have no data: features there get no height")
    layer = IngestedLayer(
        table=source.name, rows=rows, title=source.display_title, quality=quality, notes=notes
    )
    return IngestResult(source=source, path=path, layers=[layer])


def _crs(dem: Any, source: SourceConfig, path: Path) -> tuple[str, str | None]:
    declared = dem.crs.to_wkt() if dem.crs is not None else None
    text = declared or source.crs
    if text is None:
        raise SourceError('the raster declares no CRS; set `crs` (e.g. crs = "EPSG:25832")', path=path)
    try:
        crs = CRS.from_user_input(text)
    except Exception:
        raise SourceError(f"unknown CRS {text!r}", path=path, field="crs") from None
    if declared and source.crs and not CRS.from_user_input(source.crs).equals(crs, ignore_axis_order=True):
        raise SourceError(
            f"the raster declares {crs.name} but the config says crs = {source.crs!r}", path=path, field="crs"
        )
    vertical = None
    if crs.is_compound:
        horizontal, *rest = crs.sub_crs_list
        vertical = _name(rest[0]) if rest else None
        crs = horizontal
    return _name(crs), vertical


def _name(crs: CRS) -> str:
    authority = crs.to_authority()
    return ":".join(authority) if authority else crs.to_wkt()


def _warp(dem: Any, crs: str, ctx: BuildContext, path: Path) -> tuple[npt.NDArray[np.float32], Any, float]:
    """The DEM on a grid in the twin's CRS over the area (+ margin); an error when it does not cover it."""
    minx, miny, maxx, maxy = ctx.area.bounds
    to_dem = Transformer.from_crs(ctx.crs, crs, always_xy=True)
    xs = np.array([minx, maxx, maxx, minx, (minx + maxx) / 2])
    ys = np.array([miny, miny, maxy, maxy, (miny + maxy) / 2])
    dx, dy = to_dem.transform(xs, ys)
    left, bottom, right, top = dem.bounds
    slack_x, slack_y = abs(dem.res[0]) / 2, abs(dem.res[1]) / 2
    if (
        min(dx) < left - slack_x
        or max(dx) > right + slack_x
        or min(dy) < bottom - slack_y
        or max(dy) > top + slack_y
    ):
        raise SourceError(
            f"the DEM ({left:.1f}, {bottom:.1f}, {right:.1f}, {top:.1f} in {crs}) does not cover the area of interest "
            f"({min(dx):.1f}, {min(dy):.1f}, {max(dx):.1f}, {max(dy):.1f})",
            path=path,
        )
    cell = _cell_metres(dem, crs, float(np.mean(dx)), float(np.mean(dy)))
    x0, y1 = minx - MARGIN_M, maxy + MARGIN_M
    width = math.ceil((maxx - minx + 2 * MARGIN_M) / cell)
    height = math.ceil((maxy - miny + 2 * MARGIN_M) / cell)
    transform = from_origin(x0, y1, cell, cell)
    grid = np.full((height, width), np.nan, dtype=np.float32)
    reproject(
        source=rasterio.band(dem, 1), destination=grid, dst_transform=transform,
        dst_crs=RasterCRS.from_user_input(ctx.crs), dst_nodata=np.nan, resampling=Resampling.bilinear,
    )  # fmt: skip
    return grid, transform, cell


def _cell_metres(dem: Any, crs: str, x: float, y: float) -> float:
    """The raster's cell size in metres near the area (degrees converted for a geographic raster)."""
    size = float(min(abs(dem.res[0]), abs(dem.res[1])))
    parsed = CRS.from_user_input(crs)
    if parsed.is_geographic:
        return max(size * 111_320.0 * math.cos(math.radians(y)), 0.5)
    factor = parsed.axis_info[0].unit_conversion_factor if parsed.axis_info else 1.0
    return size * factor


def _blocks(grid: npt.NDArray[np.float32], transform: Any, cell: float) -> pd.DataFrame:
    rows: dict[str, list[Any]] = {k: [] for k in ("block_row", "block_col", "x_min", "y_max", "cell_size_m",
                                                  "width", "height", "heights", "geometry")}  # fmt: skip
    for r in range(0, grid.shape[0], BLOCK):
        for c in range(0, grid.shape[1], BLOCK):
            block = np.ascontiguousarray(grid[r : r + BLOCK, c : c + BLOCK], dtype="<f4")
            x_min, y_max = transform @ (c, r)
            h, w = block.shape
            for key, value in (("block_row", r // BLOCK), ("block_col", c // BLOCK), ("x_min", x_min), ("y_max", y_max),
                               ("cell_size_m", cell), ("width", w), ("height", h), ("heights", block.tobytes())):  # fmt: skip
                rows[key].append(value)
            rows["geometry"].append(
                shapely.to_wkb(shapely.box(x_min, y_max - h * cell, x_min + w * cell, y_max))
            )
    return pd.DataFrame(rows)


def _cells_inside(grid: npt.NDArray[np.float32], transform: Any, area: Any) -> npt.NDArray[np.bool_]:
    rows, cols = np.indices(grid.shape)
    xs, ys = transform @ (cols.ravel() + 0.5, rows.ravel() + 0.5)
    inside: npt.NDArray[np.bool_] = shapely.contains_xy(area, np.asarray(xs), np.asarray(ys)).reshape(
        grid.shape
    )
    return inside
