"""Feature queries for publishing: pages of GeoJSON features in WGS84, filtered in the database.

The API asks for a page of a layer (bbox, time interval, property equality, limit/offset) and gets
GeoJSON ``Feature`` objects already serialised by DuckDB (``json_object`` + ``ST_AsGeoJSON``), so a
page of 100 features costs one query and a string join, not a Python object per coordinate.

A feature's id is the row's ``rowid``: unique, stable for as long as the twin is not rebuilt (the
server opens the store read-only), and the insertion order used for paging.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import duckdb
import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from civictwin.errors import StoreError
from civictwin.store.base import GEOMETRY, Bounds
from civictwin.store.duckdb import _RECORDS, DuckDBStore, connect
from civictwin.store.personal import publishable

WGS84 = "EPSG:4326"
TWIN_CATALOG = "twin"
"""Name under which the twin's store is attached."""
WORK_SCHEMA = "publish"
"""In-memory schema holding tables derived for publishing."""
_INTEGER = re.compile(
    r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT)$"
)
_FLOAT = re.compile(r"^(FLOAT|DOUBLE|REAL|DECIMAL.*)$")
_TIME = re.compile(r"^(DATE|TIMESTAMP.*)$")
_SKIPPED = re.compile(r"^(BLOB|GEOMETRY|BIT)$")
_TEXT = re.compile(r"^(VARCHAR|ENUM.*)$")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


@dataclass(frozen=True)
class LayerInfo:
    """What publishing needs to know about one layer table."""

    name: str
    rows: int
    properties: dict[str, str]
    """Published (non-geometry, JSON-representable, not personal) columns and their DuckDB types."""
    has_geometry: bool
    bbox_wgs84: Bounds | None
    time_column: str | None
    time_extent: tuple[str | None, str | None] | None


@dataclass(frozen=True)
class TimeInterval:
    """A closed time interval; a None end is open (``..``)."""

    start: datetime | None
    end: datetime | None


@dataclass(frozen=True)
class FeatureQuery:
    """One page request.

    ``bbox`` is WGS84 (min_lon may exceed max_lon across the antimeridian), or in the store's CRS
    when ``bbox_in_store_crs``; ``in_store_crs`` asks for geometries in the store's CRS instead of
    WGS84 longitude/latitude.
    """

    limit: int
    offset: int = 0
    bbox: Bounds | None = None
    interval: TimeInterval | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    bbox_in_store_crs: bool = False
    in_store_crs: bool = False


@dataclass(frozen=True)
class FeaturePage:
    """Serialised GeoJSON features of one page and how many features match the whole query."""

    features: list[str]
    matched: int


class FeatureSource(Protocol):
    """What the API reads features through, whatever the backend (DuckDB: :class:`FeatureReader`)."""

    layers: dict[str, LayerInfo]

    def page(self, layer: str, query: FeatureQuery) -> FeaturePage:
        """One page of ``layer`` in id order and the number of features matching ``query``."""
        ...

    def feature(self, layer: str, feature_id: int, *, in_store_crs: bool = False) -> str | None:
        """One feature of ``layer`` as GeoJSON text, or None when there is no such id."""
        ...


def open_published(path: Path) -> DuckDBStore:
    """The twin store at ``path`` attached read-only to an in-memory working database.

    Publishing keeps derived tables (tiles in Web Mercator) in memory beside the untouched twin;
    DuckDB cannot create them in a database opened read-only, so the twin is attached instead.
    """
    if not path.is_file():
        raise StoreError("no twin store here (run `civictwin build` first)", path=path)
    con = connect()
    try:
        con.execute(f"ATTACH {literal(str(path))} AS {TWIN_CATALOG} (READ_ONLY)")
        con.execute(f"USE {TWIN_CATALOG}")
        con.execute(f"CREATE SCHEMA memory.{WORK_SCHEMA}")
        row = con.execute(f"SELECT record FROM {_RECORDS} WHERE kind='meta' AND key='twin'").fetchone()
    except duckdb.Error as exc:
        con.close()
        raise StoreError(
            f"not a readable twin store: {str(exc).strip().splitlines()[0]}", path=path
        ) from None
    if row is None:
        con.close()
        raise StoreError("store has no twin metadata; rebuild it", path=path)
    return DuckDBStore(con, crs=json.loads(row[0])["crs"], path=path)


def ident(name: str) -> str:
    """A double-quoted SQL identifier (any column name, quotes escaped)."""
    return '"' + name.replace('"', '""') + '"'


def describe_layer(
    name: str,
    rows: int,
    columns: Mapping[str, str],
    record: Mapping[str, Any] | None,
    *,
    bounds_wgs84: Callable[[], Bounds | None],
    time_extent: Callable[[str], tuple[str | None, str | None]],
) -> LayerInfo:
    """A table as it is published, from its column types (DuckDB's type names) and catalogue record.

    The one place, for every backend, where personal columns are left out of a layer's properties
    (:func:`~civictwin.store.personal.publishable`) and where its geometry, first time column, WGS84
    extent (asked of ``bounds_wgs84``) and time extent (of ``time_extent``) are found.
    """
    has_geometry = columns.get(GEOMETRY) == "GEOMETRY"
    published = publishable(columns, record)  # personal columns never leave the store
    properties = {c: columns[c] for c in published if c != GEOMETRY and not _SKIPPED.match(columns[c])}
    time_column = next((c for c, t in properties.items() if _TIME.match(t)), None)
    return LayerInfo(
        name=name,
        rows=rows,
        properties=properties,
        has_geometry=has_geometry,
        bbox_wgs84=_published(bounds_wgs84()) if has_geometry else None,
        time_column=time_column,
        time_extent=time_extent(time_column) if time_column else None,
    )


def _published(bounds: Bounds | None) -> Bounds | None:
    """A WGS84 extent at 7 decimals (about 1 cm, as the features are), rounded outwards so that it
    still contains every feature, instead of the binary noise of a transformation (60.169999999999995)."""
    if bounds is None:
        return None
    scale = 10**7
    west, south, east, north = (round(v * scale, 2) for v in bounds)  # noise off before rounding outwards
    return (
        math.floor(west) / scale,
        math.floor(south) / scale,
        math.ceil(east) / scale,
        math.ceil(north) / scale,
    )


def literal(text: str) -> str:
    """A single-quoted SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def filterable(dtype: str) -> bool:
    """Whether a column of DuckDB type ``dtype`` takes equality filters (scalars: no lists, structs)."""
    return any(p.match(dtype) for p in (_INTEGER, _FLOAT, _TIME, _TEXT)) or dtype == "BOOLEAN"


def coerce_value(dtype: str, raw: str) -> Any:
    """The Python value of a query-string ``raw`` for a column of DuckDB type ``dtype``.

    Raises ``ValueError`` with a readable reason when ``raw`` cannot be such a value (or the column
    cannot be filtered on).
    """
    if not filterable(dtype):
        raise ValueError(f"cannot filter on a column of type {dtype}")
    if _INTEGER.match(dtype):
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
    if _FLOAT.match(dtype):
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {raw!r}")
        return value
    if dtype == "BOOLEAN":
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ValueError(f"expected true or false, got {raw!r}")
    if dtype == "DATE":
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise ValueError(f"expected a date (YYYY-MM-DD), got {raw!r}") from None
    if dtype.startswith("TIMESTAMP"):
        try:
            return _naive_utc(datetime.fromisoformat(raw))
        except ValueError:
            raise ValueError(f"expected an RFC 3339 date-time, got {raw!r}") from None
    return raw


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


class FeatureReader:
    """Pages of features of a published store; one cursor per thread (DuckDB's rule).

    Every geometry layer's features are serialised once, at start-up, so a page costs one indexed
    query for its row ids and no reprojection (PROJ set-up alone is milliseconds per query).
    """

    def __init__(self, store: DuckDBStore) -> None:
        self._store = store
        self._crs = store.crs
        self._local = threading.local()
        self._catalog = store.records("catalog")
        self.layers: dict[str, LayerInfo] = {t.name: self._describe(t.name, t.rows) for t in store.tables()}
        self._select = {name: self._feature_sql(info) for name, info in self.layers.items()}
        self._select_native = {
            name: self._feature_sql(info, in_store_crs=True) for name, info in self.layers.items()
        }
        self._serialised: dict[str, list[str]] = {}
        for name, info in self.layers.items():
            serialised = self._serialise(name) if info.has_geometry else None
            if serialised is not None:
                self._serialised[name] = serialised

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor on the store (for store-layer modules such as tiles)."""
        con: duckdb.DuckDBPyConnection | None = getattr(self._local, "con", None)
        if con is None:
            con = self._store.connection.cursor()
            con.execute(f"USE {TWIN_CATALOG}")
            self._local.con = con
        return con

    def _serialise(self, layer: str) -> list[str] | None:
        """Every feature of ``layer`` as GeoJSON text indexed by rowid; None if rowids have gaps.

        Tables are written whole (``CREATE OR REPLACE ... AS``), so rowids run 0..n-1; a table with
        gaps is served by queries instead.
        """
        rows = self.cursor().execute(self._select[layer].replace("SELECT ", "SELECT rowid, ", 1)).fetchall()
        rows.sort(key=lambda row: int(row[0]))
        if any(int(fid) != index for index, (fid, _) in enumerate(rows)):
            return None
        return [str(text) for _, text in rows]

    def _describe(self, name: str, rows: int) -> LayerInfo:
        columns = dict(
            self.cursor()
            .execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema='main' AND table_name=? ORDER BY ordinal_position",
                [name],
            )
            .fetchall()
        )
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
            self.cursor()
            .execute(f"SELECT min({ident(column)}), max({ident(column)}) FROM {ident(name)}")
            .fetchone()
        )
        if row is None:
            return (None, None)
        return (_iso(row[0]), _iso(row[1]))

    def _feature_sql(self, info: LayerInfo, *, in_store_crs: bool = False) -> str:
        """``SELECT <one GeoJSON feature as text> FROM <layer>`` for this layer, with geometries in
        WGS84 longitude/latitude or (``in_store_crs``) as stored."""
        props = ", ".join(f"{literal(c)}, {_json_value(c, t)}" for c, t in info.properties.items())
        if in_store_crs:  # millimetres
            transformed, grid = GEOMETRY, "1e-3"
        else:  # 7 decimals of a degree: about 1 cm, as RFC 7946 suggests, and a third fewer bytes
            transformed, grid = (
                f"ST_Transform({GEOMETRY}, {literal(self._crs)}, '{WGS84}', always_xy := true)",
                "1e-7",
            )
        # Not for 3D geometries: reducing precision works in the plane, so a vertical wall (no area
        # there) would collapse to an empty polygon.
        reduced = f"CASE WHEN ST_HasZ({GEOMETRY}) THEN {transformed} ELSE ST_ReducePrecision({transformed}, {grid}) END"
        geometry = f"ST_AsGeoJSON({reduced})::JSON" if info.has_geometry else "NULL"
        return (
            f"SELECT json_object('type', 'Feature', 'id', rowid, 'geometry', {geometry}, "
            f"'properties', json_object({props}))::VARCHAR FROM {ident(info.name)}"
        )

    def page(self, layer: str, query: FeatureQuery) -> FeaturePage:
        """One page of ``layer`` in ``rowid`` order and the number of features matching ``query``."""
        info = self.layers[layer]
        clauses, params = self._where(info, query)
        if clauses is None:
            return FeaturePage(features=[], matched=0)
        serialised = None if query.in_store_crs else self._serialised.get(layer)
        select = self._select_native[layer] if query.in_store_crs else self._select[layer]
        if serialised is not None and not clauses:  # the whole layer: no query at all
            return FeaturePage(serialised[query.offset : query.offset + query.limit], matched=len(serialised))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        window = f" ORDER BY rowid LIMIT {int(query.limit)} OFFSET {int(query.offset)}"
        con = self.cursor()
        if serialised is None:
            rows = con.execute(
                f"{select.replace('SELECT ', 'SELECT count(*) OVER (), ', 1)}{where}{window}",
                params,
            ).fetchall()
            features = [str(r[1]) for r in rows]
        else:
            rows = con.execute(
                f"SELECT count(*) OVER (), rowid FROM {ident(layer)}{where}{window}", params
            ).fetchall()
            features = [serialised[int(r[1])] for r in rows]
        if rows:
            return FeaturePage(features=features, matched=int(rows[0][0]))
        count = con.execute(f"SELECT count(*) FROM {ident(layer)}{where}", params).fetchone()
        return FeaturePage(features=[], matched=int(count[0]) if count else 0)

    def feature(self, layer: str, feature_id: int, *, in_store_crs: bool = False) -> str | None:
        """One feature of ``layer`` as GeoJSON text (in WGS84, or as stored), or None when there is no such id."""
        serialised = None if in_store_crs else self._serialised.get(layer)
        if serialised is not None:
            return serialised[feature_id] if 0 <= feature_id < len(serialised) else None
        select = self._select_native[layer] if in_store_crs else self._select[layer]
        row = self.cursor().execute(f"{select} WHERE rowid = ?", [feature_id]).fetchone()
        return str(row[0]) if row else None

    def _where(self, info: LayerInfo, query: FeatureQuery) -> tuple[list[str] | None, list[Any]]:
        """SQL conditions and parameters; ``None`` conditions mean nothing can match."""
        clauses: list[str] = []
        params: list[Any] = []
        if query.bbox is not None:
            area = (
                shapely.box(*query.bbox)
                if query.bbox_in_store_crs
                else self._bbox_in_store_crs(info, query.bbox)
            )
            if area is None:
                return None, []
            clauses.append(f"ST_Intersects({GEOMETRY}, ST_GeomFromWKB(?))")
            params.append(shapely.to_wkb(area))
        if query.interval is not None and info.time_column is not None:
            column = ident(info.time_column)
            if query.interval.start is not None:
                clauses.append(f"{column} >= ?")
                params.append(query.interval.start)
            if query.interval.end is not None:
                clauses.append(f"{column} <= ?")
                params.append(query.interval.end)
        for column, value in query.properties.items():
            clauses.append(f"{ident(column)} = ?")
            params.append(value)
        return clauses, params

    def _bbox_in_store_crs(self, info: LayerInfo, bbox: Bounds) -> BaseGeometry | None:
        """The part of a WGS84 bbox near the layer, in the store CRS (None when they cannot meet).

        Clipping to the layer's own extent first keeps the transform inside the projection's domain,
        whatever the client sends (a world-wide box, one across the antimeridian).
        """
        if not info.has_geometry or info.bbox_wgs84 is None:
            return None
        clipped = wgs84_box(bbox).intersection(shapely.box(*_grow(info.bbox_wgs84)))
        if clipped.is_empty:
            return None
        return self.to_store_crs(clipped)

    def to_store_crs(self, geometry: BaseGeometry) -> BaseGeometry:
        """A WGS84 geometry densified and reprojected into the store CRS."""
        transformer: Transformer | None = getattr(self._local, "transformer", None)
        if transformer is None:  # pyproj transformers must not be shared between threads
            transformer = Transformer.from_crs(WGS84, self._crs, always_xy=True)
            self._local.transformer = transformer
        dense = shapely.segmentize(geometry, max_segment_length=0.002)
        result: BaseGeometry = shapely.transform(
            dense, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
        )
        return result


def wgs84_box(bbox: Bounds) -> BaseGeometry:
    """A WGS84 bbox as a (multi)polygon, split in two when it crosses the antimeridian."""
    min_lon, min_lat, max_lon, max_lat = bbox
    if min_lon <= max_lon:
        return shapely.box(min_lon, min_lat, max_lon, max_lat)
    return shapely.MultiPolygon(
        [shapely.box(min_lon, min_lat, 180.0, max_lat), shapely.box(-180.0, min_lat, max_lon, max_lat)]
    )


def _grow(bounds: Bounds, margin: float = 0.01) -> Bounds:
    """``bounds`` widened by ``margin`` degrees, so features on the edge are never clipped away."""
    return (bounds[0] - margin, bounds[1] - margin, bounds[2] + margin, bounds[3] + margin)


def _json_value(column: str, dtype: str) -> str:
    """The SQL expression publishing ``column`` as a JSON value (NaN and infinities become null)."""
    name = ident(column)
    if dtype in ("FLOAT", "DOUBLE", "REAL"):
        return f"CASE WHEN isfinite({name}) THEN {name} END"
    if dtype.startswith("DECIMAL"):
        return f"{name}::DOUBLE"
    if dtype.startswith("TIMESTAMP"):
        return f"strftime({name}::TIMESTAMP, '%Y-%m-%dT%H:%M:%S')"
    return name


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return _naive_utc(value).isoformat() + "Z"
    if isinstance(value, date):
        return value.isoformat() + "T00:00:00Z"
    return str(value)
