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
    ring_bytes = 4 + _POINT * written
    rings_per_polygon = np.bincount(ring_polygon, minlength=polygons)
    polygon_bytes = _HEADER + np.bincount(ring_polygon, weights=ring_bytes, minlength=polygons).astype(
        np.int64
    )
    offsets = np.concatenate([[0], np.cumsum(polygon_bytes)])
    if offsets[-1] >= 2**31:
        raise ValueError("a batch of surfaces larger than 2 GiB of WKB")
    out = np.empty(int(offsets[-1]), dtype=np.uint8)
    head = offsets[:-1]
    out[head] = 1  # little-endian
    _put_u32(out, head + 1, np.full(polygons, _POLYGON_Z, dtype=np.int64))
    _put_u32(out, head + 5, rings_per_polygon)
    before = np.concatenate([[0], np.cumsum(ring_bytes)[:-1]])
    first_ring = np.concatenate([[0], np.cumsum(rings_per_polygon)[:-1]])
    ring_at = head[ring_polygon] + _HEADER + before - before[first_ring][ring_polygon]
    _put_u32(out, ring_at, written)
    ring_of = np.repeat(np.arange(len(ring_start)), written)
    k = np.arange(len(ring_of)) - np.repeat(np.cumsum(written) - written, written)
    source = ring_start[ring_of] + k % ring_length[ring_of]
    values = np.ascontiguousarray(coords[source], dtype="<f8").view(np.uint8).reshape(-1, _POINT)
    out[(ring_at[ring_of] + 4 + _POINT * k)[:, None] + np.arange(_POINT)] = values
    return pa.BinaryArray.from_buffers(
        pa.binary(), polygons, [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(out)]
    )


def _put_u32(out: npt.NDArray[np.uint8], at: npt.NDArray[np.int64], values: npt.NDArray[np.int64]) -> None:
    """Write ``values`` as little-endian unsigned 32-bit integers at byte offsets ``at``."""
    out[at[:, None] + np.arange(4)] = values.astype("<u4").view(np.uint8).reshape(-1, 4)
