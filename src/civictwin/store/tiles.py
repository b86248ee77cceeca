"""Mapbox Vector Tiles rendered by DuckDB spatial (``ST_AsMVT``/``ST_AsMVTGeom``/``ST_TileEnvelope``).

Layers are reprojected to Web Mercator once, at start-up, into in-memory tables with each feature's
envelope; a tile selects candidates by envelope and clips and quantises them with ``ST_AsMVTGeom``.
A tile that meets no feature is reported as ``None`` so the API can answer "no content" without
encoding anything.
"""

from __future__ import annotations

import re
from typing import Protocol

from civictwin.store.base import GEOMETRY, Bounds
from civictwin.store.features import WORK_SCHEMA, FeatureReader, LayerInfo, ident, literal

EXTENT = 4096
"""Tile coordinate resolution (MVT default)."""
BUFFER = 64
"""Pixels (of :data:`EXTENT`) drawn beyond the tile edge, so lines and outlines join seamlessly."""
MAX_ZOOM = 24
"""Deepest zoom level served."""

_MVT_TYPES = {
    "BOOLEAN": "BOOLEAN",
    "TINYINT": "INTEGER",
    "SMALLINT": "INTEGER",
    "INTEGER": "INTEGER",
    "UTINYINT": "INTEGER",
    "USMALLINT": "INTEGER",
    "UINTEGER": "BIGINT",
    "BIGINT": "BIGINT",
    "FLOAT": "FLOAT",
    "DOUBLE": "DOUBLE",
}
_NUMERIC_TO_DOUBLE = re.compile(r"^(UBIGINT|HUGEINT|UHUGEINT|DECIMAL.*)$")


_HALF_WORLD = 20037508.342789244
"""Half the width of the Web Mercator square, in metres."""


def tile_bounds_3857(z: int, x: int, y: int, *, pad: float = 0.0) -> Bounds:
    """The Web Mercator bounds of tile z/x/y, widened by ``pad`` tile widths on every side."""
    size = 2 * _HALF_WORLD / 2**z
    west = -_HALF_WORLD + (x - pad) * size
    north = _HALF_WORLD - (y - pad) * size
    return (west, north - (1 + 2 * pad) * size, west + (1 + 2 * pad) * size, north)


def valid_tile(z: int, x: int, y: int) -> bool:
    """Whether z/x/y names a tile of the Web Mercator quad tree up to :data:`MAX_ZOOM`."""
    return 0 <= z <= MAX_ZOOM and 0 <= x < 2**z and 0 <= y < 2**z


class TileSource(Protocol):
    """What the API renders tiles through, whatever the backend (DuckDB: :class:`TileRenderer`)."""

    def layers(self) -> list[str]:
        """Layers that have geometry, hence tiles."""
        ...

    def render(self, layer: str, z: int, x: int, y: int) -> bytes | None:
        """The MVT of ``layer`` at z/x/y, None when empty."""
        ...


class TileRenderer:
    """Renders one layer's tile as MVT bytes; thread-safe through the reader's per-thread cursors.

    At start-up each geometry layer is copied once into an in-memory table in Web Mercator, with its
    envelope, so a tile is a range filter plus ``ST_AsMVTGeom``: no reprojection per request.
    """

    def __init__(self, reader: FeatureReader, *, crs: str) -> None:
        self._reader = reader
        self._sql: dict[str, str] = {}
        for name, info in reader.layers.items():
            if info.has_geometry:
                self._prepare(info, crs)
                self._sql[name] = self._tile_sql(info)

    def layers(self) -> list[str]:
        """Layers that have geometry, hence tiles."""
        return sorted(self._sql)

    def render(self, layer: str, z: int, x: int, y: int) -> bytes | None:
        """The MVT of ``layer`` at z/x/y (one MVT layer named after the table), None when empty."""
        if layer not in self._sql or not valid_tile(z, x, y):
            return None
        west, south, east, north = tile_bounds_3857(z, x, y, pad=BUFFER / EXTENT)
        row = self._reader.cursor().execute(self._sql[layer], [z, x, y, west, south, east, north]).fetchone()
        if row is None or not row[1]:
            return None
        return bytes(row[0])

    def _prepare(self, info: LayerInfo, crs: str) -> None:
        props = "".join(f", {_mvt_value(c, t)} AS {ident(c)}" for c, t in info.properties.items())
        self._reader.cursor().execute(
            f"CREATE OR REPLACE TABLE {_table(info.name)} AS "
            f"SELECT fid, g AS {GEOMETRY}, ST_XMin(g) AS _xmin, ST_YMin(g) AS _ymin, ST_XMax(g) AS _xmax, "
            f"ST_YMax(g) AS _ymax{props} FROM ("
            f"SELECT rowid AS fid, "
            f"ST_Transform({GEOMETRY}, {literal(crs)}, 'EPSG:3857', always_xy := true) AS g, * "
            f"FROM {ident(info.name)} WHERE {GEOMETRY} IS NOT NULL) ORDER BY fid"
        )

    def _tile_sql(self, info: LayerInfo) -> str:
        """The query producing ``(mvt blob, feature count)`` for parameters z, x, y, W, S, E, N."""
        props = "".join(f", {literal(c)}: {ident(c)}" for c in info.properties)
        geom = f"ST_AsMVTGeom({GEOMETRY}, ST_Extent(ST_TileEnvelope($1, $2, $3)), {EXTENT}, {BUFFER}, true)"
        return (
            f"SELECT ST_AsMVT(feature, {literal(info.name)}, {EXTENT}, 'geometry', 'fid'), count(*) FROM ("
            f"SELECT {{'geometry': {geom}, 'fid': fid{props}}} AS feature FROM {_table(info.name)} "
            f"WHERE _xmax >= $4 AND _xmin <= $6 AND _ymax >= $5 AND _ymin <= $7"
            f") WHERE feature.geometry IS NOT NULL AND NOT ST_IsEmpty(feature.geometry)"
        )


def _table(layer: str) -> str:
    """The in-memory Web Mercator copy of ``layer``."""
    return f"memory.{WORK_SCHEMA}.{ident('mvt_' + layer)}"


def _mvt_value(column: str, dtype: str) -> str:
    """``column`` cast to a type MVT can carry (integers, floats, booleans, otherwise text)."""
    name = ident(column)
    if dtype in _MVT_TYPES:
        return f"{name}::{_MVT_TYPES[dtype]}"
    if _NUMERIC_TO_DOUBLE.match(dtype):
        return f"{name}::DOUBLE"
    return f"{name}::VARCHAR"
