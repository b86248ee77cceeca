"""Export a layer of the twin to a file others can open: GeoParquet, GeoPackage or GeoJSON.

Files are written to a temporary name in the target directory and renamed into place only when
complete (data and directory synced), so a failed export never leaves a half-written file behind
and a finished one survives a power cut.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import geopandas as gpd
from pyarrow import ArrowException
from pyogrio.errors import DataLayerError, DataSourceError, FieldError
from pyproj import CRS
from pyproj.exceptions import CRSError

from civictwin import durable
from civictwin.errors import ExportError, first_line
from civictwin.store.base import Store
from civictwin.store.personal import holds_home_locations, read_published

WGS84 = "EPSG:4326"

# What writing a file can fail with for reasons outside civictwin (disk, permissions, drivers).
WRITE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    DataSourceError,
    DataLayerError,
    FieldError,
    ArrowException,
)
# Files SQLite (GeoPackage) may leave beside a database that was being written.
_SIDECARS = ("-journal", "-wal", "-shm")


def _write_geoparquet(frame: gpd.GeoDataFrame, path: Path, table: str) -> None:
    # GeoParquet 1.1: WKB geometry, "geo" metadata with the CRS as PROJJSON, and a bbox covering column.
    frame.to_parquet(path, index=False, write_covering_bbox=True)


def _write_gpkg(frame: gpd.GeoDataFrame, path: Path, table: str) -> None:
    frame.to_file(path, driver="GPKG", layer=table, engine="pyogrio")


def _write_geojson(frame: gpd.GeoDataFrame, path: Path, table: str) -> None:
    # RFC 7946: WGS84 lon/lat, right-hand rule for polygon rings, no "crs" member.
    frame.to_file(path, driver="GeoJSON", engine="pyogrio", layer_options={"RFC7946": "YES"})


WRITERS: dict[str, Callable[[gpd.GeoDataFrame, Path, str], None]] = {
    "geoparquet": _write_geoparquet,
    "gpkg": _write_gpkg,
    "geojson": _write_geojson,
}


def export_layer(store: Store, table: str, path: Path, fmt: str, *, crs: str = WGS84) -> int:
    """Write ``table`` to ``path`` as ``fmt`` (geoparquet, gpkg, geojson) in ``crs``; returns rows written.

    GeoJSON is always WGS84 (RFC 7946): asking for another CRS is an error rather than a silently
    different file.
    """
    writer = WRITERS.get(fmt)
    if writer is None:
        raise ExportError(f"unknown format '{fmt}' (choose {', '.join(WRITERS)})", field="--format")
    target = _target_crs(crs, fmt)
    if not store.has_table(table):
        raise ExportError(f"no layer '{table}' in this twin")
    refuse_home_locations(store, table)
    frame = read_published(store, table)  # personal columns never leave the twin
    if not isinstance(frame, gpd.GeoDataFrame):
        raise ExportError(f"layer '{table}' has no geometry; {fmt} needs one")
    frame = frame.to_crs(target)
    with atomic_path(path) as partial:
        writer(frame, partial, table)
    return len(frame)


def refuse_home_locations(store: Store, table: str) -> None:
    """Refuse to export a layer whose geometries are exact home locations (GDPR; see docs/api.md)."""
    if holds_home_locations(store.records("catalog").get(table)):
        raise ExportError(
            f"layer '{table}' holds exact home locations of people and is never exported; "
            "export an aggregated layer (e.g. zones) instead"
        )


def parse_crs(crs: str) -> CRS:
    """A CRS from user input (``EPSG:4326``, a WKT, a PROJ string); unknown ones are an ExportError."""
    try:
        return CRS.from_user_input(crs)
    except CRSError:
        raise ExportError(f"unknown CRS '{crs}'", field="--crs") from None


def _target_crs(crs: str, fmt: str) -> CRS:
    target = parse_crs(crs)
    if fmt == "geojson" and target != CRS.from_user_input(WGS84):
        raise ExportError(
            f"GeoJSON is always WGS84 (RFC 7946), not {crs}; use gpkg or geoparquet", field="--crs"
        )
    return target


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it when the block succeeds, and vanishes if not.

    The temporary name keeps the target's suffix (GDAL drivers check it) and starts with a dot.
    """
    if not path.parent.is_dir():
        raise ExportError("the folder to write into does not exist", path=path.parent)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial{path.suffix}")
    try:
        yield partial
        durable.replace(partial, path)
    except WRITE_ERRORS as exc:
        raise ExportError(f"cannot write: {_reason(exc)}", path=path) from None
    finally:
        for leftover in (partial, *(partial.with_name(partial.name + s) for s in _SIDECARS)):
            leftover.unlink(missing_ok=True)


def _reason(exc: BaseException) -> str:
    """The system's reason alone for an OSError (the error names the file already), else the first line."""
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
