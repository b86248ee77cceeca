"""Exports of the twin's layers to files: GeoParquet, GeoPackage, GeoJSON, and buildings as CityJSON.

:func:`export_dataset` picks the writer for a format, so the CLI and the API share one entry point.
"""

from __future__ import annotations

from pathlib import Path

from civictwin.errors import ExportError
from civictwin.export.cityjson import write_cityjson
from civictwin.export.layers import WGS84, WRITERS, export_layer, parse_crs
from civictwin.store.base import Store

FORMATS = (*WRITERS, "cityjson")


def export_dataset(store: Store, table: str, path: Path, fmt: str, *, crs: str | None = None) -> int:
    """Export ``table`` as ``fmt``; returns the rows (or, for CityJSON, the buildings) written.

    ``crs`` defaults to WGS84 for the vector formats. CityJSON is always written in the twin's
    metric CRS, since its solids are extruded in metres; asking for another CRS is an error.
    """
    if fmt == "cityjson":
        if crs is not None and parse_crs(crs) != parse_crs(store.crs):
            raise ExportError(
                f"CityJSON is written in the twin's CRS ({store.crs}); leave out --crs", field="--crs"
            )
        return write_cityjson(store, path, table=table)
    if fmt not in WRITERS:
        raise ExportError(f"unknown format '{fmt}' (choose {', '.join(FORMATS)})", field="--format")
    return export_layer(store, table, path, fmt, crs=crs or WGS84)
