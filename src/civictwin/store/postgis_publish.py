"""Feature pages and vector tiles served from a PostGIS store (``ST_AsGeoJSON``, ``ST_AsMVT``).

The same answers as :class:`civictwin.store.features.FeatureReader` and
:class:`civictwin.store.tiles.TileRenderer` give for a DuckDB store: features in WGS84 at 7 decimals
(or as stored, at millimetres), ids counted from 0 in the order rows were written (the ``_fid``
column every PostGIS table gets), personal columns withheld, column types named as DuckDB names them
so the API's filters parse values the same way. Each thread gets its own connection.

A page costs what its own features cost, never the whole table's: a build writes each table whole, so
its ids run 0…n-1 and an unfiltered page is the id range ``[offset, offset + limit)``, its
``numberMatched`` the row count known since start-up. Serialising a feature is dear (the precision
reduction above all), so each reader keeps the features it has serialised, by id, in a bounded cache
(a reader serves one build, so the cache goes with it when the twin changes): a page takes the
features the cache holds and reads only the rest, in one query over the id index (keyset paging, not
an ``OFFSET`` scan) from its first missing id to its last. A filtered page asks for its ids (plus a
count only when the page is full or past the end: ``count(*) OVER ()`` would read every matching row)
and takes their features from the same cache, reading the missing ones in one more query.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import numpy as np
import psycopg
import shapely
from psycopg import sql
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from civictwin.store.base import Bounds
from civictwin.store.features import (
    WGS84,
    FeaturePage,
    FeatureQuery,
    LayerInfo,
    _grow,
    _iso,
    describe_layer,
    wgs84_box,
)
from civictwin.store.postgis import FID, PostGISStore, answer, connect
from civictwin.store.tiles import BUFFER, EXTENT, valid_tile

_DUCKDB_NAMES = {
    "smallint": "SMALLINT",
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "numeric": "DECIMAL",
    "real": "FLOAT",
    "double precision": "DOUBLE",
    "boolean": "BOOLEAN",
    "text": "VARCHAR",
    "date": "DATE",
    "timestamp without time zone": "TIMESTAMP",
    "timestamp with time zone": "TIMESTAMP WITH TIME ZONE",
    "jsonb": "JSON",
    "bytea": "BLOB",
    "geometry": "GEOMETRY",
}
_PER_CALL = 50
"""Properties per ``jsonb_build_object`` call (PostgreSQL functions take at most 100 arguments)."""
CACHE_BYTES = 64 * 2**20
"""Serialised features a reader keeps (bytes of GeoJSON text, about): 64 MiB per serving process."""
BLOCK = 500
"""Ids per block of the feature cache (the unit it drops, least recently used first)."""

_BlockKey = tuple[str, bool, int]
"""A block of the feature cache: layer, whether in the store's CRS, block number (ids ``[k × BLOCK, (k + 1) × BLOCK)``)."""


class _FeatureCache:
    """Serialised features of layers numbered 0…n-1, by id, at most ``limit_bytes`` of text; thread-safe.

    Features are held in blocks of :data:`BLOCK` ids, filled feature by feature as pages read them, and
    dropped a block at a time, the least recently used first.
    """

    def __init__(self, limit_bytes: int) -> None:
        self._limit = limit_bytes
        self._held = 0
        self._blocks: OrderedDict[_BlockKey, tuple[list[str | None], list[int]]] = OrderedDict()
        """Per block, its slots (None: not held) and the bytes it holds (a one-item list, updated in place)."""
        self._lock = threading.Lock()

    def get(self, layer: str, native: bool, start: int, stop: int) -> list[str | None]:
        """The features with ids ``[start, stop)``, None for each one not held."""
        found: list[str | None] = []
        with self._lock:
            for block in range(start // BLOCK, (stop - 1) // BLOCK + 1):
                first = block * BLOCK
                low, high = max(start - first, 0), min(stop - first, BLOCK)
                held = self._blocks.get((layer, native, block))
                if held is None:
                    found.extend([None] * (high - low))
                    continue
                self._blocks.move_to_end((layer, native, block))
                found.extend(held[0][low:high])
        return found

    def get_each(self, layer: str, native: bool, ids: list[int]) -> list[str | None]:
        """The features with ``ids``, in their order, None for each one not held."""
        found: list[str | None] = []
        with self._lock:
            for fid in ids:
                block, slot = divmod(fid, BLOCK)
                held = self._blocks.get((layer, native, block))
                found.append(None if held is None else held[0][slot])
                if held is not None:
                    self._blocks.move_to_end((layer, native, block))
        return found

    def put(self, layer: str, native: bool, start: int, features: list[str]) -> None:
        """Keep ``features`` as those with ids ``start``, ``start + 1``, …; drop old blocks beyond the limit."""
        self.put_each(layer, native, enumerate(features, start))

    def put_each(self, layer: str, native: bool, features: Iterable[tuple[int, str]]) -> None:
        """Keep each ``(id, feature)`` of ``features``; drop old blocks beyond the limit."""
        with self._lock:
            for position, text in features:
                block, slot = divmod(position, BLOCK)
                key = (layer, native, block)
                held = self._blocks.get(key)
                if held is None:
                    held = self._blocks[key] = ([None] * BLOCK, [0])
                if held[0][slot] is None:
                    held[0][slot] = text
                    held[1][0] += len(text)
                    self._held += len(text)
            while self._held > self._limit and self._blocks:
                _, (_, size) = self._blocks.popitem(last=False)
                self._held -= size[0]


class PostGISFeatureReader:
    """Pages of features of a PostGIS store's served schema."""

    def __init__(self, store: PostGISStore) -> None:
        self._store = store
        self._crs = store.crs
        self._local = threading.local()
        self._catalog = store.records("catalog")
        self.layers: dict[str, LayerInfo] = {t.name: self._describe(t.name, t.rows) for t in store.tables()}
        self._select = {name: self._feature_sql(info) for name, info in self.layers.items()}
        self._select_native = {
            name: self._feature_sql(info, in_store_crs=True) for name, info in self.layers.items()
        }
        self._numbered = {
            name for name, info in self.layers.items() if self._ids_run_from_zero(name, info.rows)
        }
        self._id_range = {
            (name, native): self._id_range_sql(name, in_store_crs=native)
            for name in self._numbered
            for native in (False, True)
        }
        self._by_ids = {
            (name, native): self._by_ids_sql(name, in_store_crs=native)
            for name in self._numbered
            for native in (False, True)
        }
        self._clip = {
            name: shapely.box(*_grow(info.bbox_wgs84))
            for name, info in self.layers.items()
            if info.has_geometry and info.bbox_wgs84 is not None
        }
        """Each layer's WGS84 extent with a margin, which a bbox is clipped to before it is reprojected."""
        self._cache = _FeatureCache(CACHE_BYTES)

    def connection(self) -> psycopg.Connection[Any]:
        """This thread's connection to the store's database (a new one after the last was lost)."""
        con: psycopg.Connection[Any] | None = getattr(self._local, "con", None)
        if con is None or con.closed:
            con = self._local.con = connect(self._store.dsn)
        return con

    @property
    def srid(self) -> int:
        """The EPSG code of the store's CRS."""
        return self._store.srid

    def table(self, name: str) -> sql.Composed:
        """``name`` qualified with the served schema."""
        return sql.SQL("{}").format(sql.Identifier(self._store.schema, name))

    def _describe(self, name: str, rows: int) -> LayerInfo:
        found = self.connection().execute(
            "SELECT column_name, CASE WHEN data_type = 'USER-DEFINED' THEN udt_name ELSE data_type END "
            "FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
            "ORDER BY ordinal_position",
            [self._store.schema, name],
        )
        columns = {str(c): _DUCKDB_NAMES.get(str(t), "VARCHAR") for c, t in found.fetchall() if c != FID}
        return describe_layer(
            name,
            rows,
            columns,
            self._catalog.get(name),
            bounds_wgs84=lambda: self._store.table_bounds(name, wgs84=True),
            time_extent=lambda column: self._time_extent(name, column),
        )

    def _time_extent(self, name: str, column: str) -> tuple[str | None, str | None]:
        row = (
            self.connection()
            .execute(
                sql.SQL("SELECT min({c}), max({c}) FROM {t}").format(
                    c=sql.Identifier(column), t=self.table(name)
                )
            )
            .fetchone()
        )
        return (None, None) if row is None else (_iso(row[0]), _iso(row[1]))

    def _feature_sql(self, info: LayerInfo, *, in_store_crs: bool = False) -> sql.Composed:
        """The expression of one row of ``info``'s table as GeoJSON feature text."""
        items = list(info.properties.items())
        calls: list[sql.Composable] = [
            sql.SQL("jsonb_build_object({})").format(
                sql.SQL(", ").join(
                    sql.SQL("{}, {}").format(sql.Literal(c), _json_value(c, t)) for c, t in part
                )
            )
            for part in (items[i : i + _PER_CALL] for i in range(0, len(items), _PER_CALL))
        ] or [sql.SQL("'{}'::jsonb")]
        properties = sql.SQL(" || ").join(calls)
        # As the DuckDB reader does: precision reduced in the plane (which also orients rings the same
        # way), but not for 3D geometries, where a vertical wall would collapse to an empty polygon.
        geometry: sql.Composable = sql.SQL("NULL")
        if info.has_geometry:
            transformed = "geometry" if in_store_crs else "ST_Transform(geometry, 4326)"
            grid = "1e-3" if in_store_crs else "1e-7"
            geometry = sql.SQL(
                "ST_AsGeoJSON(CASE WHEN ST_Zmflag(geometry) IN (2, 3) THEN {g} "
                "ELSE ST_ReducePrecision({g}, {grid}) END, 9, 0)::jsonb"
            ).format(g=sql.SQL(transformed), grid=sql.SQL(grid))
        return sql.SQL(
            "jsonb_build_object('type', 'Feature', 'id', {fid}, 'geometry', {g}, 'properties', {p})::text"
        ).format(fid=sql.Identifier(FID), g=geometry, p=properties)

    def _ids_run_from_zero(self, layer: str, rows: int) -> bool:
        """Whether ``layer``'s ids are exactly 0…rows-1 (as a build writes every table)."""
        query = sql.SQL("SELECT min({f}), max({f}) FROM {t}").format(
            f=sql.Identifier(FID), t=self.table(layer)
        )
        found = self.connection().execute(query).fetchone()
        return rows == 0 or (found is not None and (found[0], found[1]) == (0, rows - 1))

    def page(self, layer: str, query: FeatureQuery) -> FeaturePage:
        """One page of ``layer`` in id order and the number of features matching ``query``."""
        info = self.layers[layer]
        clauses, params = self._where(info, query)
        if clauses is None:
            return FeaturePage(features=[], matched=0)
        if not clauses and layer in self._numbered:
            return self._unfiltered_page(layer, query)
        select = self._select_native[layer] if query.in_store_crs else self._select[layer]
        where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("")
        window = sql.SQL(" ORDER BY {} LIMIT {} OFFSET {}").format(
            sql.Identifier(FID), sql.Literal(int(query.limit)), sql.Literal(int(query.offset))
        )
        count_only = sql.SQL("SELECT count(*) FROM {}").format(self.table(layer)) + where
        if layer in self._numbered:  # the page's ids first: their features may be cached already
            ids_only = (
                sql.SQL("SELECT {} FROM {}").format(sql.Identifier(FID), self.table(layer)) + where + window
            )

            def ask_ids(con: psycopg.Connection[Any]) -> tuple[list[int], int]:
                ids = [int(r[0]) for r in con.execute(ids_only, params).fetchall()]
                return ids, _matched(con, count_only, params, query, returned=len(ids))

            ids, matched = answer(self.connection, ask_ids)
            return FeaturePage(features=self._features_by_id(layer, query.in_store_crs, ids), matched=matched)
        selected = sql.SQL("SELECT {} FROM {}").format(select, self.table(layer)) + where + window

        def ask(con: psycopg.Connection[Any]) -> FeaturePage:
            features = [str(r[0]) for r in con.execute(selected, params).fetchall()]
            return FeaturePage(
                features=features, matched=_matched(con, count_only, params, query, returned=len(features))
            )

        return answer(self.connection, ask)

    def _features_by_id(self, layer: str, native: bool, ids: list[int]) -> list[str]:
        """The features with ``ids`` (of a layer numbered 0…n-1): those the cache holds, and the rest
        in one query."""
        found = self._cache.get_each(layer, native, ids)
        missing = [fid for fid, text in zip(ids, found, strict=True) if text is None]
        if not missing:
            return [text for text in found if text is not None]
        statement = self._by_ids[layer, native]
        rows = answer(self.connection, lambda con: con.execute(statement, [missing]).fetchall())
        read = {int(fid): str(text) for fid, text in rows}
        self._cache.put_each(layer, native, read.items())
        return [text if text is not None else read[fid] for fid, text in zip(ids, found, strict=True)]

    def _unfiltered_page(self, layer: str, query: FeatureQuery) -> FeaturePage:
        """Features ``offset`` … ``offset + limit - 1`` of a layer numbered 0…n-1: those the cache holds,
        and the rest in one query over the id range from the first missing one to the last."""
        rows = self.layers[layer].rows
        start, stop = query.offset, min(query.offset + query.limit, rows)
        if start >= stop:
            return FeaturePage(features=[], matched=rows)
        native = query.in_store_crs
        found = self._cache.get(layer, native, start, stop)
        missing = [i for i, text in enumerate(found) if text is None]
        if missing:
            low, high = start + missing[0], start + missing[-1] + 1
            statement = self._id_range[layer, native]
            read = answer(
                self.connection,
                lambda con: [str(r[0]) for r in con.execute(statement, [low, high]).fetchall()],
            )
            self._cache.put(layer, native, low, read)
            found[missing[0] : missing[-1] + 1] = read
        return FeaturePage(features=[text for text in found if text is not None], matched=rows)

    def _by_ids_sql(self, layer: str, *, in_store_crs: bool) -> bytes:
        """The query of ``layer``'s ids and features for the ids in an array ``%s``, composed once."""
        select = self._select_native[layer] if in_store_crs else self._select[layer]
        query = sql.SQL("SELECT {f}, {s} FROM {t} WHERE {f} = ANY(%s)").format(
            s=select, t=self.table(layer), f=sql.Identifier(FID)
        )
        return query.as_string(self.connection()).encode()

    def _id_range_sql(self, layer: str, *, in_store_crs: bool) -> bytes:
        """The query of ``layer``'s features with ids in ``[%s, %s)`` in id order, composed once."""
        select = self._select_native[layer] if in_store_crs else self._select[layer]
        query = sql.SQL("SELECT {s} FROM {t} WHERE {f} >= %s AND {f} < %s ORDER BY {f}").format(
            s=select, t=self.table(layer), f=sql.Identifier(FID)
        )
        return query.as_string(self.connection()).encode()

    def feature(self, layer: str, feature_id: int, *, in_store_crs: bool = False) -> str | None:
        """One feature of ``layer`` as GeoJSON text, or None when there is no such id."""
        select = self._select_native[layer] if in_store_crs else self._select[layer]
        query = sql.SQL("SELECT {} FROM {} WHERE {} = %s").format(
            select, self.table(layer), sql.Identifier(FID)
        )
        row = answer(self.connection, lambda con: con.execute(query, [feature_id]).fetchone())
        return str(row[0]) if row else None

    def _where(self, info: LayerInfo, query: FeatureQuery) -> tuple[list[sql.Composable] | None, list[Any]]:
        clauses: list[sql.Composable] = []
        params: list[Any] = []
        if query.bbox is not None:
            area = (
                shapely.box(*query.bbox)
                if query.bbox_in_store_crs
                else self._bbox_in_store_crs(info, query.bbox)
            )
            if area is None:
                return None, []
            clauses.append(
                sql.SQL("ST_Intersects(geometry, ST_GeomFromWKB(%s, {}))").format(
                    sql.Literal(self._store.srid)
                )
            )
            params.append(shapely.to_wkb(area))
        if query.interval is not None and info.time_column is not None:
            column = sql.Identifier(info.time_column)
            if query.interval.start is not None:
                clauses.append(sql.SQL("{} >= %s").format(column))
                params.append(query.interval.start)
            if query.interval.end is not None:
                clauses.append(sql.SQL("{} <= %s").format(column))
                params.append(query.interval.end)
        for column_name, value in query.properties.items():
            clauses.append(sql.SQL("{} = %s").format(sql.Identifier(column_name)))
            params.append(value)
        return clauses, params

    def _bbox_in_store_crs(self, info: LayerInfo, bbox: Bounds) -> BaseGeometry | None:
        clip = self._clip.get(info.name)
        if clip is None:
            return None
        clipped = wgs84_box(bbox).intersection(clip)
        return None if clipped.is_empty else self.to_store_crs(clipped)

    def to_store_crs(self, geometry: BaseGeometry) -> BaseGeometry:
        """A WGS84 geometry densified and reprojected into the store CRS."""
        transformer: Transformer | None = getattr(self._local, "transformer", None)
        if transformer is None:
            transformer = self._local.transformer = Transformer.from_crs(WGS84, self._crs, always_xy=True)
        dense = shapely.segmentize(geometry, max_segment_length=0.002)
        result: BaseGeometry = shapely.transform(
            dense, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
        )
        return result


def _matched(
    con: psycopg.Connection[Any],
    count_only: sql.Composed,
    params: list[Any],
    query: FeatureQuery,
    *,
    returned: int,
) -> int:
    """How many features match a filtered ``query`` whose page held ``returned``: told by the page
    when it is neither full nor past the end, else counted."""
    if 0 < returned < query.limit or (returned == 0 and query.offset == 0):
        return query.offset + returned
    count = con.execute(count_only, params).fetchone()
    return int(count[0]) if count else 0


class PostGISTileRenderer:
    """One layer's tile as MVT bytes (``ST_AsMVT``), None when no feature meets it."""

    def __init__(self, reader: PostGISFeatureReader) -> None:
        self._reader = reader
        self._sql = {name: self._tile_sql(info) for name, info in reader.layers.items() if info.has_geometry}

    def layers(self) -> list[str]:
        """Layers that have geometry, hence tiles."""
        return sorted(self._sql)

    def render(self, layer: str, z: int, x: int, y: int) -> bytes | None:
        """The MVT of ``layer`` at z/x/y (one MVT layer named after the table), None when empty."""
        if layer not in self._sql or not valid_tile(z, x, y):
            return None
        tile = self._sql[layer]
        row = answer(
            self._reader.connection, lambda con: con.execute(tile, {"z": z, "x": x, "y": y}).fetchone()
        )
        if row is None or not row[1]:
            return None
        return bytes(row[0])

    def _tile_sql(self, info: LayerInfo) -> sql.Composed:
        props = sql.SQL("").join(
            sql.SQL(", {} AS {}").format(_mvt_value(c, t), sql.Identifier(c))
            for c, t in info.properties.items()
        )
        srid = sql.Literal(self._reader.srid)
        return sql.SQL(
            "SELECT ST_AsMVT(q, {name}, {extent}, 'geometry', 'fid'), count(*) FROM ("
            "SELECT ST_AsMVTGeom(ST_Transform(geometry, 3857), ST_TileEnvelope(%(z)s, %(x)s, %(y)s), "
            "{extent}, {buffer}, true) AS geometry, {fid} AS fid{props} FROM {t} "
            "WHERE geometry && ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => {margin}), {srid})"
            ") q WHERE q.geometry IS NOT NULL AND NOT ST_IsEmpty(q.geometry)"
        ).format(
            name=sql.Literal(info.name),
            extent=sql.Literal(EXTENT),
            buffer=sql.Literal(BUFFER),
            fid=sql.Identifier(FID),
            props=props,
            t=self._reader.table(info.name),
            margin=sql.Literal(BUFFER / EXTENT),
            srid=srid,
        )


def _json_value(column: str, dtype: str) -> sql.Composable:
    """The SQL expression publishing ``column`` as a JSON value (NaN and infinities become null)."""
    name = sql.Identifier(column)
    if dtype in ("FLOAT", "DOUBLE", "DECIMAL"):
        return sql.SQL(
            "CASE WHEN {c} IN ('NaN', 'Infinity', '-Infinity') THEN NULL ELSE {c}::double precision END"
        ).format(c=name)
    if dtype.startswith("TIMESTAMP"):
        return sql.SQL("to_char({}, 'YYYY-MM-DD\"T\"HH24:MI:SS')").format(name)
    return name


def _mvt_value(column: str, dtype: str) -> sql.Composable:
    """``column`` cast to a type MVT carries (integers, floats, booleans, otherwise text)."""
    name = sql.Identifier(column)
    if dtype in ("SMALLINT", "INTEGER", "BIGINT", "BOOLEAN", "FLOAT", "DOUBLE"):
        return name
    if dtype == "DECIMAL":
        return sql.SQL("{}::double precision").format(name)
    return sql.SQL("{}::text").format(name)
