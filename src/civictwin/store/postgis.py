"""The PostGIS store: a twin in a PostgreSQL database (with the postgis extension), through psycopg 3.

Each build writes a new schema (``twin_<id>``) and switches the database's one pointer,
``civictwin.current``, to it in one transaction; the previous schema stays until that switch and is
dropped after it, so readers always see one whole twin. The password never passes through
civictwin: libpq takes it from ``PGPASSWORD``, ``~/.pgpass`` or a service file (``PGSERVICEFILE``),
and the URI (which the configuration refuses with a password in it) is all an error ever names.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg
import pyarrow as pa
import shapely
from psycopg import sql
from pyproj import CRS

from civictwin.errors import StoreError, StoreUnavailable
from civictwin.store.base import GEOMETRY, VERSION_KEY, Bounds, Store, TableInfo
from civictwin.store.duckdb import quote
from civictwin.store.postgis_copy import (
    COPY_SIGNATURE,
    COPY_TRAILER,
    binary_copy,
    binary_copyable,
    csv_text,
    is_nested,
)

LAYOUT = 1
"""The version of this module's database layout (pointer table, one schema per build, ``_records``);
a database holding an older one is refused with a request to rebuild."""
META_SCHEMA = "civictwin"
_RECORDS = "_records"
FID = "_fid"
"""The column numbering a table's rows from 0 in the order they were written: the feature id the API
serves (DuckDB's ``rowid``); hidden from every read."""
T = TypeVar("T")
_BUILD_LOCK = 0x63697669  # pg advisory lock key: one build of a database's twin at a time


def connect(dsn: str) -> psycopg.Connection[Any]:
    """A connection in autocommit mode; a server that is down or refuses the login is one line
    (:class:`StoreUnavailable`: a server may retry later)."""
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise StoreUnavailable(f"cannot connect to the PostGIS store: {first_line(exc)}", path=dsn) from None


def answer(
    connection: Callable[[], psycopg.Connection[Any]], ask: Callable[[psycopg.Connection[Any]], T]
) -> T:
    """``ask(con)`` on a reader's connection, for reads only (they may run twice).

    A connection found lost (the database restarted since it was last used) is closed and the read
    asked once more on a new one, so a restart costs a reader nothing; a database that stays
    unreachable is :class:`StoreUnavailable`, worth retrying later.
    """
    for attempt in (1, 2):
        con = connection()
        try:
            return ask(con)
        except psycopg.OperationalError as exc:
            con.close()
            if attempt == 2:
                raise StoreUnavailable(f"the PostGIS store stopped answering: {first_line(exc)}") from None
    raise AssertionError("unreachable")


def first_line(exc: BaseException) -> str:
    """A database error as one line, without libpq's "connection failed: " prefix."""
    text = str(exc).strip()
    return text.splitlines()[0].removeprefix("connection failed: ") if text else type(exc).__name__


def _check_postgis(con: psycopg.Connection[Any], dsn: str) -> None:
    if con.execute("SELECT 1 FROM pg_extension WHERE extname = 'postgis'").fetchone() is None:
        raise StoreError(
            "the database has no postgis extension (its owner can add it: CREATE EXTENSION postgis)", path=dsn
        )


def _current(con: psycopg.Connection[Any]) -> tuple[str, int] | None:
    """The schema of the served twin and its layout; None when the database holds no twin yet."""
    row = con.execute("SELECT to_regclass('civictwin.current')").fetchone()
    if row is None or row[0] is None:
        return None
    found = con.execute("SELECT schema_name, layout FROM civictwin.current").fetchone()
    return None if found is None else (str(found[0]), int(found[1]))


def _check_layout(layout: int, dsn: str, *, building: bool = False) -> None:
    """Refuse a twin of another layout: a newer one always, an older one unless a build replaces it."""
    if layout > LAYOUT:
        raise StoreError(
            f"the database holds a twin in store layout {layout}, newer than this civictwin's {LAYOUT}: "
            "upgrade civictwin",
            path=dsn,
        )
    if layout < LAYOUT and not building:
        raise StoreError(
            f"the database holds a twin in store layout {layout}, older than this civictwin's {LAYOUT}: "
            "rebuild the twin (civictwin build)",
            path=dsn,
        )


def _srid(crs: str) -> int:
    code = CRS.from_user_input(crs).to_epsg()
    if code is None:
        raise StoreError(f"the PostGIS store needs a CRS with an EPSG code, not {crs!r}")
    return int(code)


class PostGISStore(Store):
    """A twin stored in one schema of a PostGIS database."""

    def __init__(
        self, con: psycopg.Connection[Any], *, schema: str, crs: str, dsn: str, marks_versions: bool = True
    ) -> None:
        self._con = con
        self._schema = schema
        self._crs = crs
        self._srid = _srid(crs)
        self.dsn = dsn
        self._marks_versions = marks_versions

    def sibling(self) -> PostGISStore:
        """The same schema on a connection of its own, for writing tables beside this store's work
        (a build's worker thread: ``store/mirror.py``). It never replaces the version marker, whose row
        this store's records update, so that neither connection waits on the other's transaction; the
        caller marks the new version once the sibling's writes are done."""
        return PostGISStore(
            connect(self.dsn), schema=self._schema, crs=self._crs, dsn=self.dsn, marks_versions=False
        )

    def cancel(self) -> None:
        """Ask the server to stop the statement running on this store's connection now (from another
        thread: a failed build abandoning a write in progress); nothing when none runs."""
        self._con.cancel_safe(timeout=10.0)

    @classmethod
    def open(cls, dsn: str) -> PostGISStore:
        """The twin the database serves now (its current schema), for reading."""
        con = connect(dsn)
        try:
            _check_postgis(con, dsn)
            current = _current(con)
            if current is None:
                raise StoreError("no twin in this database (run `civictwin build` first)", path=dsn)
            schema, layout = current
            _check_layout(layout, dsn)
            row = con.execute(
                sql.SQL("SELECT record FROM {} WHERE kind = 'meta' AND key = 'twin'").format(
                    sql.Identifier(schema, _RECORDS)
                )
            ).fetchone()
        except BaseException:
            con.close()
            raise
        if row is None:
            con.close()
            raise StoreError("store has no twin metadata; rebuild it", path=dsn)
        return cls(con, schema=schema, crs=str(row[0]["crs"]), dsn=dsn)

    @property
    def crs(self) -> str:
        return self._crs

    @property
    def srid(self) -> int:
        """The EPSG code of :attr:`crs`."""
        return self._srid

    @property
    def schema(self) -> str:
        """The schema this store reads (one build of the twin)."""
        return self._schema

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The raw connection, for other store-layer modules only; a new one once the last was lost."""
        if self._con.closed:
            self._con = connect(self.dsn)
        return self._con

    def _table(self, name: str) -> sql.Composed:
        quote(name)  # the same names as every backend: plain identifiers only
        return sql.SQL("{}").format(sql.Identifier(self._schema, name))

    def _columns(self, name: str) -> dict[str, str]:
        rows = self._con.execute(
            "SELECT column_name, CASE WHEN data_type = 'USER-DEFINED' THEN udt_name ELSE data_type END "
            "FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
            "ORDER BY ordinal_position",
            [self._schema, name],
        ).fetchall()
        return {str(c): str(t) for c, t in rows if c != FID}

    def tables(self) -> list[TableInfo]:
        rows = self._con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
            "AND table_name NOT LIKE '\\_%%' ORDER BY table_name",
            [self._schema],
        ).fetchall()
        infos = []
        for (name,) in rows:
            columns = self._columns(str(name))
            infos.append(
                TableInfo(
                    name=str(name),
                    rows=self._count(str(name)),
                    columns=columns,
                    has_geometry=columns.get(GEOMETRY) == "geometry",
                )
            )
        return infos

    def _count(self, name: str) -> int:
        row = self._con.execute(sql.SQL("SELECT count(*) FROM {}").format(self._table(name))).fetchone()
        return int(row[0]) if row else 0

    def has_table(self, name: str) -> bool:
        row = self._con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            [self._schema, name],
        ).fetchone()
        return bool(row and row[0])

    def write_table(
        self, name: str, table: pa.Table | pa.RecordBatchReader | pd.DataFrame | gpd.GeoDataFrame
    ) -> int:
        """Create or replace ``name`` in one transaction, streaming its batches through ``COPY``.

        The table is created with its final column types (the geometry checked to be in the store's
        SRID, the row ids an identity column numbered in copy order), filled by one ``COPY``, binary
        where every column type has a binary encoder and CSV otherwise (frozen; see
        :mod:`civictwin.store.postgis_copy`), and only then indexed (primary key, GiST), so no row is
        written twice and no index is maintained row by row.
        """
        target = self._table(name)
        batches = _batches(table)
        schema = batches.schema
        columns = [
            sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(self._column_type(f))) for f in schema
        ]
        fid = sql.SQL("{} bigint GENERATED ALWAYS AS IDENTITY (MINVALUE 0 START WITH 0)").format(
            sql.Identifier(FID)
        )
        # FREEZE (rows written already visible to all, no later vacuum pass over them) needs the table
        # created in the same transaction, which holds only when this is not nested in a caller's one
        outermost = self._con.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        binary = binary_copyable(schema)
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT {}{})").format(
            target,
            sql.SQL(", ").join(sql.Identifier(f.name) for f in schema),
            sql.SQL("binary" if binary else "csv"),
            sql.SQL(", FREEZE" if outermost else ""),
        )
        rows = 0
        with self._con.transaction():
            self._con.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
            self._con.execute(
                sql.SQL("CREATE TABLE {} ({})").format(target, sql.SQL(", ").join([fid, *columns]))
            )
            with self._con.cursor().copy(copy_sql) as copy:
                if binary:
                    copy.write(COPY_SIGNATURE)
                for batch in batches:
                    for data in (
                        binary_copy(batch, srid=self._srid) if binary else [csv_text(batch, srid=self._srid)]
                    ):
                        copy.write(memoryview(data))
                    rows += batch.num_rows
                if binary:
                    copy.write(COPY_TRAILER)
            self._con.execute(
                sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(target, sql.Identifier(FID))
            )
            if GEOMETRY in schema.names:
                self._con.execute(sql.SQL("CREATE INDEX ON {} USING gist (geometry)").format(target))
            if self._marks_versions:
                self._write_version()
        return rows

    def carry_table(self, name: str, served: Store) -> int:
        """Copied inside the database (both schemas are in it), with the served table's indexes."""
        if not isinstance(served, PostGISStore):
            raise StoreError(f"cannot copy '{name}' from a {type(served).__name__} into a PostGIS twin")
        served._wanted_columns(name, None)  # one line when the served twin has no such table
        source, target = served._table(name), self._table(name)
        with self._con.transaction():
            self._con.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
            self._con.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(target, source))
            self._con.execute(
                sql.SQL("INSERT INTO {} OVERRIDING SYSTEM VALUE SELECT * FROM {} ORDER BY {}").format(
                    target, source, sql.Identifier(FID)
                )
            )
            self._write_version()
        return self._count(name)

    def _column_type(self, field: pa.Field) -> str:
        """The PostgreSQL type of a written column; the geometry's holds this store's SRID only (a
        check, not a type modifier, so that 2D and 3D geometries share the column)."""
        if field.name == GEOMETRY:
            return f"geometry CHECK (ST_SRID(geometry) = {self._srid})"
        return _pg_type(field)

    def read_table(
        self,
        name: str,
        *,
        columns: Sequence[str] | None = None,
        bbox: Bounds | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> pd.DataFrame:
        info, wanted = self._wanted_columns(name, columns)
        clauses, params = self._filters(info, bbox, where)
        return self._select(name, info, wanted, clauses, params)

    def read_cell(self, name: str, cell: Bounds, *, columns: Sequence[str] | None = None) -> pa.Table:
        info, wanted = self._wanted_columns(name, columns)
        if info.get(GEOMETRY) != "geometry":
            raise StoreError(f"table '{name}' has no geometry to partition by")
        select = sql.SQL(", ").join(
            sql.SQL("ST_AsBinary(geometry) AS geometry") if c == GEOMETRY else sql.Identifier(c)
            for c in wanted
        )
        query = sql.SQL(
            "SELECT {} FROM {} WHERE ST_XMin(geometry) >= %s AND ST_XMin(geometry) < %s "
            "AND ST_YMin(geometry) >= %s AND ST_YMin(geometry) < %s"
        ).format(select, self._table(name))
        cursor = self._con.execute(query, [cell[0], cell[2], cell[1], cell[3]])
        columns_found = list(zip(*cursor.fetchall(), strict=True)) or [() for _ in wanted]
        return pa.table({
            column: pa.array([None if v is None else bytes(v) for v in values], type=pa.binary())
            if column == GEOMETRY else pa.array(list(values))
            for column, values in zip(wanted, columns_found, strict=True)
        })  # fmt: skip

    def _select(
        self, name: str, info: Mapping[str, str], wanted: list[str], clauses: list[sql.Composable],
        params: list[Any],
    ) -> pd.DataFrame:  # fmt: skip
        """``wanted`` columns of the rows of ``name`` meeting every clause; a GeoDataFrame with a geometry."""
        has_geom = GEOMETRY in wanted and info[GEOMETRY] == "geometry"
        select = sql.SQL(", ").join(
            sql.SQL("ST_AsBinary(geometry) AS geometry") if c == GEOMETRY and has_geom else sql.Identifier(c)
            for c in wanted
        )
        query = sql.SQL("SELECT {} FROM {}").format(select, self._table(name))
        if clauses:
            query = query + sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses)
        cursor = self._con.execute(query, params)
        frame = pd.DataFrame(cursor.fetchall(), columns=wanted)
        if not has_geom:
            return frame
        geometry = shapely.from_wkb([None if g is None else bytes(g) for g in frame.pop(GEOMETRY)])
        return cast(pd.DataFrame, gpd.GeoDataFrame(frame, geometry=geometry, crs=self._crs))

    def _filters(
        self, info: Mapping[str, str], bbox: Bounds | None, where: Mapping[str, Any] | None
    ) -> tuple[list[sql.Composable], list[Any]]:
        clauses: list[sql.Composable] = []
        params: list[Any] = []
        if bbox is not None:
            if info.get(GEOMETRY) != "geometry":
                raise StoreError("bbox filter on a table without geometry")
            clauses.append(
                sql.SQL("ST_Intersects(geometry, ST_MakeEnvelope(%s, %s, %s, %s, {}))").format(
                    sql.Literal(self._srid)
                )
            )
            params.extend(bbox)
        for column, value in (where or {}).items():
            if column not in info:
                raise StoreError(f"unknown column '{column}'")
            if isinstance(value, list | tuple) and not value:
                clauses.append(sql.SQL("FALSE"))
            elif isinstance(value, list | tuple):
                clauses.append(sql.SQL("{} = ANY(%s)").format(sql.Identifier(column)))
                params.append(list(value))
            else:
                clauses.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
                params.append(value)
        return clauses, params

    def sample_rows(self, name: str, *, columns: Sequence[str], limit: int) -> pd.DataFrame:
        info = self._columns(name)
        unknown = [c for c in columns if c not in info or info[c] == "geometry"]
        if unknown:
            raise StoreError(f"table '{name}' has no non-geometry column(s) {', '.join(unknown)}")
        query = sql.SQL("SELECT {} FROM {} LIMIT {}").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in columns), self._table(name), sql.Literal(int(limit))
        )
        return pd.DataFrame(self._con.execute(query).fetchall(), columns=list(columns))

    def shared_list_values(self, name: str, column: str) -> npt.NDArray[np.int64]:
        info = self._columns(name)
        if info.get(column) != "jsonb" or info.get(GEOMETRY) != "geometry":
            raise StoreError(f"table '{name}' has no list column '{column}' beside a geometry")
        values = sql.Identifier(column)
        query = sql.SQL(
            "SELECT v FROM (SELECT jsonb_array_elements({values})::bigint AS v FROM {table} "
            "WHERE jsonb_array_length({values}) >= 2 AND jsonb_array_length({values}) = ST_NPoints(geometry)) s "
            "GROUP BY v HAVING count(*) >= 2 ORDER BY v"
        ).format(values=values, table=self._table(name))
        return np.array([row[0] for row in self._con.execute(query).fetchall()], dtype=np.int64)

    def table_bounds(self, name: str, *, wgs84: bool = False) -> Bounds | None:
        if self._columns(name).get(GEOMETRY) != "geometry":
            return None
        geom = sql.SQL("ST_Transform(geometry, 4326)" if wgs84 else "geometry")
        row = self._con.execute(
            sql.SQL(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent({}) AS e FROM {}) s"
            ).format(geom, self._table(name))
        ).fetchone()
        if row is None or row[0] is None:
            return None
        return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))

    def put_record(self, kind: str, key: str, record: Mapping[str, Any]) -> None:
        self._con.execute(
            sql.SQL(
                "INSERT INTO {} VALUES (%s, %s, %s::jsonb) "
                "ON CONFLICT (kind, key) DO UPDATE SET record = excluded.record"
            ).format(sql.Identifier(self._schema, _RECORDS)),
            [kind, key, json.dumps(record, default=str)],
        )
        if (kind, key) != ("meta", VERSION_KEY):
            self._write_version()

    def records(self, kind: str) -> dict[str, dict[str, Any]]:
        query = sql.SQL("SELECT key, record FROM {} WHERE kind = %s ORDER BY key").format(
            sql.Identifier(self._schema, _RECORDS)
        )
        # read by a server on every readiness probe: survives a database restart
        rows = answer(lambda: self.connection, lambda con: con.execute(query, [kind]).fetchall())
        return {str(key): dict(value) for key, value in rows}

    def close(self) -> None:
        self._con.close()


def _batches(
    table: pa.Table | pa.RecordBatchReader | pd.DataFrame | gpd.GeoDataFrame,
) -> pa.RecordBatchReader:
    if isinstance(table, pa.RecordBatchReader):
        return table
    if isinstance(table, pa.Table):
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    frame = table
    if isinstance(frame, gpd.GeoDataFrame):
        geom_name = frame.geometry.name
        wkb = shapely.to_wkb(frame.geometry.to_numpy())
        frame = pd.DataFrame(frame.drop(columns=geom_name))
        frame[GEOMETRY] = wkb
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    return pa.RecordBatchReader.from_batches(arrow.schema, arrow.to_batches())


def _pg_type(field: pa.Field) -> str:
    """The PostgreSQL type a column of arrow type ``field.type`` is stored as."""
    kind = field.type
    if pa.types.is_dictionary(kind):
        return _pg_type(pa.field(field.name, cast(pa.DictionaryType, kind).value_type))
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return "bytea"
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_int8(kind) or pa.types.is_int16(kind) or pa.types.is_uint8(kind):
        return "smallint"
    if pa.types.is_int32(kind) or pa.types.is_uint16(kind):
        return "integer"
    if pa.types.is_int64(kind) or pa.types.is_uint32(kind):
        return "bigint"
    if pa.types.is_uint64(kind) or pa.types.is_decimal(kind):
        return "numeric"
    if pa.types.is_float32(kind) or pa.types.is_float16(kind):
        return "real"
    if pa.types.is_float64(kind):
        return "double precision"
    if pa.types.is_timestamp(kind):
        return "timestamptz" if cast(pa.TimestampType, kind).tz else "timestamp"
    if pa.types.is_date(kind):
        return "date"
    if is_nested(kind):
        return "jsonb"
    return "text"


@contextmanager
def build_store(dsn: str, *, crs: str) -> Iterator[PostGISStore]:
    """A fresh twin in a new schema, switched to in one transaction when the block succeeds.

    Until the switch the database keeps serving the previous twin's schema; it is dropped only after
    the switch committed. On any failure the new schema is dropped and nothing else changes. One
    build per database at a time (an advisory lock): a second one is refused.
    """
    con = connect(dsn)
    try:
        _check_postgis(con, dsn)
        _prepare_pointer(con, dsn)
        locked = con.execute("SELECT pg_try_advisory_lock(%s)", [_BUILD_LOCK]).fetchone()
        if not (locked and locked[0]):
            raise StoreError(
                "another build of this twin is running; run this one when it has finished", path=dsn
            )
        yield from _build_under_lock(con, dsn, crs)
    finally:
        con.close()  # the advisory lock goes with the session


def _prepare_pointer(con: psycopg.Connection[Any], dsn: str) -> None:
    """The ``civictwin`` schema and its one-row pointer table (created on the first build)."""
    current = _current(con)
    if current is not None:
        _check_layout(current[1], dsn, building=True)
        return
    with con.transaction():
        con.execute("CREATE SCHEMA IF NOT EXISTS civictwin")
        con.execute(
            "CREATE TABLE IF NOT EXISTS civictwin.current (one boolean PRIMARY KEY DEFAULT true CHECK (one), "
            "schema_name text NOT NULL, layout integer NOT NULL, switched_at timestamptz NOT NULL)"
        )


def _build_under_lock(con: psycopg.Connection[Any], dsn: str, crs: str) -> Iterator[PostGISStore]:
    schema = f"twin_{uuid.uuid4().hex[:16]}"
    con.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        con.execute(
            sql.SQL(
                "CREATE TABLE {} (kind text, key text, record jsonb NOT NULL, PRIMARY KEY (kind, key))"
            ).format(sql.Identifier(schema, _RECORDS))
        )
        store = PostGISStore(con, schema=schema, crs=crs, dsn=dsn)
        store.put_record("meta", "twin", {"crs": crs})
        yield store
        previous = _switch(con, schema)
    except BaseException:
        con.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        raise
    if previous is not None and previous != schema:
        con.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(previous)))


def _switch(con: psycopg.Connection[Any], schema: str) -> str | None:
    """Point ``civictwin.current`` at ``schema`` in one transaction; the schema it pointed at before."""
    with con.transaction():
        row = con.execute("SELECT schema_name FROM civictwin.current FOR UPDATE").fetchone()
        con.execute(
            "INSERT INTO civictwin.current (one, schema_name, layout, switched_at) VALUES (true, %s, %s, now()) "
            "ON CONFLICT (one) DO UPDATE SET schema_name = excluded.schema_name, layout = excluded.layout, "
            "switched_at = excluded.switched_at",
            [schema, LAYOUT],
        )
    return None if row is None else str(row[0])


class SchemaWatch:
    """Which schema the database serves now, asked over one held connection (one round trip, no new
    login per question); reconnects once when the connection was lost.

    Once the pointer table has been seen, only its row is read (one statement instead of first
    asking whether the table exists): this runs on every API request.
    """

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._con: psycopg.Connection[Any] | None = None
        self._pointer_seen = False

    def current(self) -> str | None:
        """The served schema; None when the database holds no twin.

        Raises :class:`StoreError` (one line) when the database cannot be reached.
        """
        try:
            return self._ask()
        except psycopg.Error:  # the held connection was lost (a server restart): one new login
            self._con = None
        try:
            return self._ask()
        except psycopg.Error as exc:
            self._con = None
            raise StoreError(f"lost the PostGIS store: {first_line(exc)}", path=self._dsn) from None

    def _ask(self) -> str | None:
        if self._con is None or self._con.closed:
            self._con = connect(self._dsn)
            self._pointer_seen = False
        if not self._pointer_seen:
            found = _current(self._con)
            self._pointer_seen = found is not None
            return None if found is None else found[0]
        try:
            row = self._con.execute("SELECT schema_name FROM civictwin.current").fetchone()
        except psycopg.errors.UndefinedTable:  # the twin was removed since (a failed restore)
            self._pointer_seen = False
            return None
        return None if row is None else str(row[0])
