"""Geometry preparation shared by every source: reproject, repair, clip, and count what happened.

The counts feed the quality report, so every repaired, dropped or out-of-area feature is accounted for.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry

WGS84 = "EPSG:4326"

GeometryArray = npt.NDArray[np.object_]


@dataclass(frozen=True)
class GeometryReport:
    """What :func:`prepare_geometries` did to a batch of geometries."""

    received: int
    missing: int
    invalid: int
    repaired: int
    dropped_unrepairable: int
    outside_area: int

    @property
    def kept(self) -> int:
        """Features that made it into the twin."""
        return self.received - self.missing - self.dropped_unrepairable - self.outside_area

    def as_dict(self) -> dict[str, int]:
        """Plain numbers for the quality record."""
        return {
            "received": self.received,
            "missing_geometry": self.missing,
            "invalid_geometry": self.invalid,
            "repaired_geometry": self.repaired,
            "dropped_unrepairable": self.dropped_unrepairable,
            "outside_area": self.outside_area,
            "kept": self.kept,
        }


_GML_SUFFIXES = frozenset({".gml", ".xml"})


def gdal_read_options(path: Path) -> dict[str, str]:
    """GDAL open options that keep reading ``path`` from writing beside it.

    GDAL's GML driver saves a ``.gfs`` schema file next to the GML it opens unless told
    ``WRITE_GFS=NO``; a twin never writes into the user's data folders.
    """
    return {"WRITE_GFS": "NO"} if path.suffix.lower() in _GML_SUFFIXES else {}


def utm_crs_for(lon: float, lat: float) -> str:
    """The UTM zone (WGS84 datum) containing a point, as an EPSG code."""
    if not (-180 <= lon <= 180 and -80 <= lat <= 84):
        raise ValueError(f"no UTM zone for lon={lon}, lat={lat}")
    zone = min(math.floor((lon + 180) / 6) + 1, 60)
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def reproject(geoms: GeometryArray, source_crs: str, target_crs: str) -> GeometryArray:
    """Reproject an array of shapely geometries (x/y order, whatever the CRS's axis order says)."""
    if CRS.from_user_input(source_crs) == CRS.from_user_input(target_crs):
        return geoms
    transformer = Transformer.from_crs(source_crs, target_crs, always_xy=True)
    result: GeometryArray = shapely.transform(
        geoms, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
    )
    return result


def wgs84_extent(geoms: GeometryArray, crs: str) -> tuple[float, float, float, float] | None:
    """The exact WGS84 extent (degrees: min lon, min lat, max lon, max lat) of ``geoms`` in ``crs``,
    None when they have no coordinates.

    Every vertex is transformed, as the store does for a stored table's extent (DuckDB's
    ``ST_Transform`` and pyproj call the same PROJ operation: on the 8×8 network's 1.5 M vertices the
    two agreed to the bit), so a build can catalogue a table it holds in memory without the store
    transforming it again.
    """
    return vertices_wgs84_extent(shapely.get_coordinates(geoms), crs)


def project_in_place(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], *, source: str, target: str, threads: int = 2
) -> None:
    """Project the coordinates ``x``, ``y`` (always x/lon first) from ``source`` to ``target`` in place,
    in ``threads`` slices at once: PROJ works without Python's lock, so on two cores the 32×32
    extract's 25 M OSM nodes take 1.5 s less than in one call, with the same numbers to the bit (the
    same operation, point by point). A :class:`~pyproj.Transformer` may be shared by threads since
    pyproj 3.1 (its changelog: "Multithread safe CRS, Proj, & Transformer")."""
    transformer = Transformer.from_crs(source, target, always_xy=True)
    bounds = np.linspace(0, len(x), threads + 1).astype(int)

    def project(start: int, stop: int) -> None:
        transformer.transform(x[start:stop], y[start:stop], inplace=True)

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="project") as pool:
        list(pool.map(project, bounds[:-1], bounds[1:]))


def vertices_wgs84_extent(xy: npt.NDArray[np.float64], crs: str) -> tuple[float, float, float, float] | None:
    """The exact WGS84 extent (degrees) of the vertices ``xy`` (an (n, 2) array in ``crs``), None when
    there are none: :func:`wgs84_extent` once the coordinates are at hand."""
    if not len(xy):
        return None
    lon, lat = Transformer.from_crs(crs, WGS84, always_xy=True).transform(xy[:, 0], xy[:, 1])
    return float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())


_WKB_HEADER = 9
"""Bytes before a WKB line's coordinates: byte order (1), geometry type (4), number of points (4)."""
_WKB_POINT = 21
"""Bytes of a 2D WKB point: byte order (1), geometry type (4), x and y (8 each)."""


def wkb_vertices(
    wkb: pa.Array | pa.ChunkedArray,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]] | None:
    """Every vertex (an (n, 2) array of x, y) of WKB geometries that are all little-endian 2D points or
    all little-endian 2D line strings, read straight from the bytes, with each geometry's number of
    vertices; None for anything else (other geometry types, a mix of the two, big-endian or Z/M
    geometries, nulls, no rows), which needs a WKB parser.

    The vertices in the order the geometries hold them, as :func:`shapely.get_coordinates` gives them
    after :func:`shapely.from_wkb`, without making a GEOS geometry of each row (about 1 µs a row: a
    third of a second for the 8×8 extract's 158 k roads).
    """
    array = wkb.combine_chunks() if isinstance(wkb, pa.ChunkedArray) else wkb
    binary = pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type)
    if len(array) == 0 or array.null_count or not binary:
        return None
    offset_type = np.int64 if pa.types.is_large_binary(array.type) else np.int32
    _validity, offsets_buffer, data_buffer = array.buffers()
    assert offsets_buffer is not None and data_buffer is not None
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[array.offset : array.offset + len(array) + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8)[int(offsets[0]) : int(offsets[-1])]
    starts, sizes = (offsets[:-1] - offsets[0]).astype(np.int64), np.diff(offsets).astype(np.int64)
    if sizes.min() < _WKB_HEADER:
        return None
    header = data[starts[:, None] + np.arange(_WKB_HEADER)]
    kind = header[:, 1:5].copy().view("<u4")[:, 0]
    if not (header[:, 0] == 1).all():
        return None
    if (kind == 1).all() and (sizes == _WKB_POINT).all():
        return data.reshape(-1, _WKB_POINT)[:, 5:].copy().view("<f8"), np.ones(len(array), dtype=np.int64)
    points = header[:, 5:9].copy().view("<u4")[:, 0].astype(np.int64)
    if not ((kind == 2).all() and (sizes == _WKB_HEADER + 16 * points).all()):
        return None
    coordinate_bytes = np.ones(len(data), dtype=bool)
    coordinate_bytes[(starts[:, None] + np.arange(_WKB_HEADER)).ravel()] = False
    return data[coordinate_bytes].view("<f8").reshape(-1, 2), points


def wkb_linestrings(coords: npt.NDArray[np.float64], counts: npt.NDArray[np.int64]) -> pa.Array:
    """Little-endian 2D WKB line strings (the bytes :func:`shapely.to_wkb` gives) of the lines whose
    vertices ``coords`` (an (n, 2) array) holds one line after the other, ``counts[i]`` for line ``i``:
    written from the numbers, without making a GEOS geometry of each line (about 1 µs a line to make,
    and as much again to encode). Each line's 9-byte header and its vertices' bytes, as they lie in
    ``coords``, are joined by Arrow."""
    header = np.zeros(len(counts), dtype=_WKB_LINE_HEADER)
    header["order"], header["kind"], header["count"] = 1, 2, counts
    header_offsets = np.arange(len(counts) + 1, dtype=np.int64) * _WKB_HEADER
    vertex_offsets = np.concatenate([[0], np.cumsum(16 * counts.astype(np.int64))])
    vertex_bytes = np.ascontiguousarray(coords, dtype="<f8").view(np.uint8).ravel()
    large = int(header_offsets[-1] + vertex_offsets[-1]) >= 2**31
    joined: pa.Array = pc.binary_join_element_wise(
        _binary_array(header_offsets, header.view(np.uint8), large=large),
        _binary_array(vertex_offsets, vertex_bytes, large=large),
        pa.scalar(b"", pa.binary()),
    )
    return joined


def wkb_points(xy: npt.NDArray[np.float64]) -> pa.Array:
    """Little-endian 2D WKB points (the bytes :func:`shapely.to_wkb` gives) at ``xy`` (an (n, 2) array),
    written from the numbers, without making a GEOS point of each."""
    points = np.zeros(len(xy), dtype=_WKB_POINT_RECORD)
    points["order"], points["kind"], points["x"], points["y"] = 1, 1, xy[:, 0], xy[:, 1]
    offsets = np.arange(len(xy) + 1, dtype=np.int64) * _WKB_POINT
    return _binary_array(offsets, points.view(np.uint8), large=int(offsets[-1]) >= 2**31)


_WKB_LINE_HEADER = np.dtype([("order", "u1"), ("kind", "<u4"), ("count", "<u4")])
"""A WKB line string's header as packed bytes (9): byte order, geometry type, number of points."""
_WKB_POINT_RECORD = np.dtype([("order", "u1"), ("kind", "<u4"), ("x", "<f8"), ("y", "<f8")])
"""A 2D WKB point as packed bytes (21): byte order, geometry type, x, y."""


def _binary_array(offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8], *, large: bool) -> pa.Array:
    """An Arrow binary array of the values ``data[offsets[i]:offsets[i + 1]]`` (``large``: with 64-bit
    offsets, past the 2 GiB that 32-bit ones reach)."""
    return pa.Array.from_buffers(
        pa.large_binary() if large else pa.binary(),
        len(offsets) - 1,
        [None, pa.py_buffer(offsets.astype(np.int64 if large else np.int32)), pa.py_buffer(data)],
    )


def prepare_geometries(
    geoms: GeometryArray,
    *,
    source_crs: str,
    target_crs: str,
    area: BaseGeometry | None,
    keep_dimension: bool = True,
) -> tuple[npt.NDArray[np.bool_], GeometryArray, GeometryReport]:
    """Reproject, repair and clip; returns (mask of kept rows, their geometries, report).

    ``area`` is in ``target_crs``; features that do not intersect it are dropped (kept whole, not cut,
    so a building on the boundary stays one building). Invalid geometries are repaired with
    ``make_valid``; a repair that loses the geometry's dimension (a polygon collapsing to a line) or
    yields nothing is dropped when ``keep_dimension`` is set. A geometry with a coordinate that has no
    finite place in ``target_crs`` (latitude 95°, or half a world away from a UTM zone) is invalid
    and dropped unrepaired.
    """
    geoms = np.asarray(geoms, dtype=object)
    received = len(geoms)
    missing_mask = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    present = ~missing_mask
    projected = np.empty(received, dtype=object)
    if present.any():
        projected[present] = reproject(geoms[present], source_crs, target_crs)
    placeable = present & _finite(projected, present)
    invalid_mask = present & ~(placeable & shapely.is_valid(projected, where=placeable))
    repairable = invalid_mask & placeable
    repaired_ok = np.zeros(received, dtype=bool)
    if repairable.any():
        fixed = shapely.make_valid(projected[repairable])
        if keep_dimension:
            fixed = _same_dimension(projected[repairable], fixed)
        ok = ~(shapely.is_missing(fixed) | shapely.is_empty(fixed))
        projected[repairable] = fixed
        repaired_ok[np.flatnonzero(repairable)[ok]] = True
    usable = present & (~invalid_mask | repaired_ok)
    inside = usable.copy()
    if area is not None and usable.any():
        shapely.prepare(area)
        inside[usable] = shapely.intersects(area, projected[usable])
    report = GeometryReport(
        received=received,
        missing=int(missing_mask.sum()),
        invalid=int(invalid_mask.sum()),
        repaired=int(repaired_ok.sum()),
        dropped_unrepairable=int((invalid_mask & ~repaired_ok).sum()),
        outside_area=int((usable & ~inside).sum()),
    )
    return inside, projected[inside], report


def _finite(geoms: GeometryArray, where: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Which geometries (among ``where``) have only finite coordinates.

    A coordinate outside the valid longitude/latitude range, or too far from a projection's centre,
    reprojects to infinity; such a geometry cannot be placed and no repair can bring it back.
    """
    finite = where.copy()
    coords, owner = shapely.get_coordinates(geoms[where], return_index=True)
    bad = np.unique(owner[~np.isfinite(coords).all(axis=1)])
    finite[np.flatnonzero(where)[bad]] = False
    return finite


def _same_dimension(original: GeometryArray, fixed: GeometryArray) -> GeometryArray:
    """Keep only the parts of each repaired geometry with the original's dimension."""
    out = np.empty(len(fixed), dtype=object)
    target_dims = shapely.get_dimensions(original)
    for i, (geom, dim) in enumerate(zip(fixed, target_dims, strict=True)):
        parts = shapely.get_parts(geom) if shapely.get_type_id(geom) == 7 else np.array([geom])
        same = [p for p in parts if shapely.get_dimensions(p) == dim and not shapely.is_empty(p)]
        out[i] = shapely.union_all(same) if same else None
    return out
