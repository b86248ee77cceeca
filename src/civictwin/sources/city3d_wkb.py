"""Many 3D polygons to WKB at once, with numpy: one Arrow binary array, no Python object per polygon.

The bytes are those of ``shapely.to_wkb(polygon, output_dimension=3)`` for a polygon built with
``shapely.polygons(shapely.linearrings(...))`` from the same rings: little-endian, the extended
(EWKB) 3D type ``0x80000003``, each ring closed by repeating its first point unless its last point
already equals it. Building the bytes straight from the coordinate array skips creating a GEOS
geometry and a Python ``bytes`` object per surface, which is most of what the surfaces cost.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

_POLYGON_Z = 0x80000003
"""WKB geometry type of a polygon with z (the extended flavour's 3D flag, as shapely and GEOS write it)."""
_HEADER = 9
"""Bytes before a polygon's rings: byte order (1), type (4), number of rings (4)."""
_POINT = 24
"""Bytes per 3D point (three little-endian doubles)."""


def polygons_wkb(
    coords: npt.NDArray[np.float64],
    ring_start: npt.NDArray[np.int64],
    ring_polygon: npt.NDArray[np.int64],
    polygons: int,
) -> pa.BinaryArray:
    """The WKB of ``polygons`` polygons whose rings start at ``ring_start`` in ``coords`` (n × 3).

    ``ring_polygon`` gives each ring's polygon, non-decreasing, every polygon's outer ring first;
    each ring has at least three points and does not repeat its first point at its end (the
    closing point is added here).
    """
    if not polygons:
        return pa.array([], type=pa.binary())
    ring_length = np.diff(np.append(ring_start, len(coords)))
    closes = ~(coords[ring_start] == coords[ring_start + ring_length - 1]).all(axis=1)
    written = ring_length + closes
    rings_per_polygon = np.bincount(ring_polygon, minlength=polygons)
    first = np.zeros(len(ring_start), dtype=bool)
    first[np.cumsum(rings_per_polygon) - rings_per_polygon] = True
    header = np.zeros(
        (len(ring_start), _HEADER + 4), dtype=np.uint8
    )  # polygon header (first rings) + ring header
    header[:, 0] = 1  # little-endian
    header[:, 1:5] = _u32(np.full(len(ring_start), _POLYGON_Z))
    header[:, 5:9] = _u32(rings_per_polygon[ring_polygon])
    header[:, 9:13] = _u32(written)
    in_header = np.ones(header.shape, dtype=bool)
    in_header[~first, :_HEADER] = False
    ring_bytes = np.where(first, _HEADER, 0) + 4 + _POINT * written
    ring_end = np.cumsum(ring_bytes)
    offsets = np.concatenate([[0], ring_end[np.cumsum(rings_per_polygon) - 1]])
    if offsets[-1] >= 2**31:
        raise ValueError("a batch of surfaces larger than 2 GiB of WKB")
    is_point = np.ones(int(offsets[-1]), dtype=bool)
    header_at = (
        (ring_end - ring_bytes)[:, None] + np.arange(_HEADER + 4) - np.where(first, 0, _HEADER)[:, None]
    )
    is_point[header_at[in_header]] = False
    out = np.empty(len(is_point), dtype=np.uint8)
    out[~is_point] = header[in_header]
    closed = np.insert(np.arange(len(coords)), np.cumsum(ring_length)[closes], ring_start[closes])
    out[is_point] = np.ascontiguousarray(coords[closed], dtype="<f8").view(np.uint8).ravel()
    return pa.BinaryArray.from_buffers(
        pa.binary(), polygons, [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(out)]
    )


def _u32(values: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    """``values`` as little-endian unsigned 32-bit integers, four bytes per row."""
    return values.astype("<u4").view(np.uint8).reshape(-1, 4)
