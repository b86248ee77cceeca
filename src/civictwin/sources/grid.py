"""Grid sources: population or socio-demographic values on cells, stored as table ``source.name``.

A grid is a vector layer whose chosen attributes are numbers, so it is read by
:func:`civictwin.sources.vector.read_layer` (same formats, layer, CRS and CSV rules). The difference
is in the columns: ``columns`` must all be numeric (text that parses as numbers is converted; anything
else is an error naming the row), and without ``columns`` every numeric, non-boolean attribute is kept.

Quality adds, per chosen column, the total over the cells kept (those intersecting the area, counted
whole: cells are not cut at the boundary) under ``quality["totals"]``, and notes saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from civictwin.config import SourceConfig
from civictwin.errors import SourceError
from civictwin.sources.base import BuildContext, IngestResult
from civictwin.sources.vector import RawLayer, numeric_column, read_layer, select_columns, store_layer


def ingest(source: SourceConfig, ctx: BuildContext) -> IngestResult:
    """Read a grid source into the table ``source.name`` with its numeric columns."""
    path = ctx.path_of(source)
    raw = read_layer(source, path)
    columns = _numeric_columns(source, raw, path)
    for column in columns:
        raw.attributes[column] = numeric_column(raw.attributes[column], column, path, raw.first_line)
    layer = store_layer(source, ctx, raw, columns, summarise=_totals)
    layer.notes.extend(
        f"{column}: total {_format_number(total)} over the {layer.rows} cells intersecting the area"
        for column, total in layer.quality["totals"].items()
    )
    return IngestResult(source=source, path=path, layers=[layer])


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
