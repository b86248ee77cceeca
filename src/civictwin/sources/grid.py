"""Grid sources: population or socio-demographic values on cells, stored as table ``source.name``.

A grid is a vector layer whose chosen attributes are numbers, so it is read by
:func:`civictwin.sources.vector.read_layer` (same formats, layer, CRS and CSV rules). The difference
is in the columns: ``columns`` must all be numeric (text that parses as numbers is converted; anything
else is an error naming the row), and without ``columns`` every numeric, non-boolean attribute is kept.

Three shapes of grid are read:

- polygons (the cells themselves);
- points at the cell centres, with ``cell_size_m``: each point becomes a square of that side, drawn in
  the file's CRS when it is projected (national grids are squares there) and in the twin's CRS when the
  file is in degrees; points without ``cell_size_m`` are an error (they would place nobody);
- a table of H3 cell ids in ``h3_column`` (CSV or Parquet, no geometry needed; hexadecimal strings or
  their 64-bit integers): each row is that H3 cell's polygon; an id that is not a valid H3 cell is an
  error naming the row.

Quality adds, per chosen column, the total over the cells kept (those intersecting the area, counted
whole: cells are not cut at the boundary) under ``quality["totals"]``, and notes saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h3
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from civictwin.config import SourceConfig
from civictwin.errors import SourceError
from civictwin.geometry import WGS84, reproject
from civictwin.sources.base import BuildContext, IngestResult
from civictwin.sources.vector import RawLayer, numeric_column, read_layer, select_columns, store_layer


def ingest(source: SourceConfig, ctx: BuildContext) -> IngestResult:
    """Read a grid source into the table ``source.name`` with its numeric columns."""
    path = ctx.path_of(source)
    raw = _read_h3_table(source, path) if source.h3_column else read_layer(source, path)
    columns = _numeric_columns(source, raw, path)
    raw = _cells(source, raw, ctx)
    for column in columns:
        raw.attributes[column] = numeric_column(raw.attributes[column], column, path, raw.first_line)
    layer = store_layer(source, ctx, raw, columns, summarise=_totals)
    layer.notes.extend(
        f"{column}: total {_format_number(total)} over the {layer.rows} cells intersecting the area"
        for column, total in layer.quality["totals"].items()
    )
    return IngestResult(source=source, path=path, layers=[layer])


def _cells(source: SourceConfig, raw: RawLayer, ctx: BuildContext) -> RawLayer:
    """``raw`` with points at cell centres turned into square cells of ``cell_size_m``."""
    if source.h3_column:
        return raw
    present = np.array([g is not None for g in raw.geometries], dtype=bool)
    kinds = set(shapely.get_type_id(raw.geometries[present]).tolist())
    is_points = kinds == {0}
    path = ctx.path_of(source)
    if is_points and source.cell_size_m is None:
        raise SourceError("the cells are points; set `cell_size_m` to the side of a cell (m)", path=path)
    if source.cell_size_m is None:
        return raw
    if not is_points:
        raise SourceError("`cell_size_m` is for grids of cell-centre points; these cells are not points",
                          path=path, field="cell_size_m")  # fmt: skip
    points, crs = raw.geometries, raw.crs
    if not CRS.from_user_input(crs).is_projected:
        points, crs = reproject(points, crs, ctx.crs), ctx.crs
    half = source.cell_size_m / 2
    squares = np.full(len(points), None, dtype=object)
    xs, ys = shapely.get_x(points[present]), shapely.get_y(points[present])
    squares[present] = shapely.box(xs - half, ys - half, xs + half, ys + half)
    return RawLayer(attributes=raw.attributes, geometries=squares, crs=crs, first_line=raw.first_line)


def _read_h3_table(source: SourceConfig, path: Path) -> RawLayer:
    """A CSV or Parquet table of H3 cell ids (``h3_column``) and values, as H3 cell polygons in WGS84."""
    if not path.is_file():
        raise SourceError("file not found", path=path)
    column = str(source.h3_column)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = pd.read_csv(path, encoding="utf-8-sig", dtype={column: str})
        first_line = 2
    elif suffix in (".parquet", ".geoparquet"):
        frame, first_line = pd.read_parquet(path), 1
    else:
        raise SourceError("a grid of H3 ids must be a CSV or Parquet table", path=path, field="h3_column")
    if column not in frame.columns:
        raise SourceError(f"no column '{column}'; available: {', '.join(map(str, frame.columns))}",
                          path=path, field="h3_column")  # fmt: skip
    polygons = np.empty(len(frame), dtype=object)
    for row, text in enumerate(frame[column].astype(str).str.strip()):
        cell = h3.int_to_str(int(text)) if text.isdigit() else text.lower()
        if not h3.is_valid_cell(cell):
            raise SourceError(f"row {first_line + row}: {text!r} is not an H3 cell id", path=path)
        polygons[row] = shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(cell)])
    attributes = frame.drop(columns=[column])
    if source.columns is not None:
        attributes = attributes[select_columns(source, attributes, path)]
    return RawLayer(attributes=attributes, geometries=polygons, crs=WGS84, first_line=first_line)


def _numeric_columns(source: SourceConfig, raw: RawLayer, path: Path) -> list[str]:
    """The chosen columns, or every numeric non-boolean attribute when none are chosen."""
    if source.columns is not None:
        return select_columns(source, raw.attributes, path)
    found = [
        str(c)
        for c in raw.attributes.columns
        if pd.api.types.is_numeric_dtype(raw.attributes[c])
        and not pd.api.types.is_bool_dtype(raw.attributes[c])
    ]
    if not found:
        available = ", ".join(str(c) for c in raw.attributes.columns) or "(none)"
        raise SourceError(f"no numeric columns; available: {available}", path=path, field="columns")
    return found


def _totals(kept: pd.DataFrame) -> dict[str, Any]:
    """Quality entry ``totals``: the sum of each column over the kept cells."""
    return {"totals": {str(column): float(kept[column].sum()) for column in kept.columns}}


def _format_number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
