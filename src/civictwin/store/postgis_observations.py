"""The database observation store: the schema ``civictwin_observations`` of the twin's PostgreSQL.

For a twin stored in PostGIS, its observations live in the same database, so every replica of
``civictwin serve`` on any host reads them and any host's import or live consumer writes them. A
build never touches this schema (it writes a ``twin_<id>`` schema and switches ``civictwin.current``),
so observations survive rebuilds exactly as the SQLite file beside a DuckDB twin does.

The statements and counts are :mod:`civictwin.store.sql_observations`' (shared with SQLite); the
schema's creation and the connection that runs ``?``-placeholder statements are
:mod:`civictwin.store.postgis_sidecar`'s. This module adds the connections (one per thread, read-only
when serving, replaced when the server ended one), the writer's staging table and the bulk insert. Guarantees, as for SQLite: each append is one transaction, committed (and,
with the server's default ``synchronous_commit``, on disk) before it returns; readers in other
processes see whole batches only (each statement sees what was committed when it began); read-only
opening sets ``default_transaction_read_only``, so the server itself refuses a write. The libpq URI
holds no password (the configuration refuses one), so no error or record can name one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from civictwin.errors import StoreError
from civictwin.store.postgis import connect, first_line
from civictwin.store.postgis_sidecar import PostgresConnection, ensure_schema, has_schema_table
from civictwin.store.sidecar import SQLConnection
from civictwin.store.sql_observations import SCHEMA, SCHEMA_VERSION, SQLObservationStore

OBSERVATION_SCHEMA = "civictwin_observations"
"""The schema holding a PostGIS twin's observations (never one a build writes or drops)."""
_INCOMING = (
    "CREATE TEMP TABLE incoming (d bigint, t bigint, e bigint, r bigint, v float8, q smallint, i bigint) "
    "ON COMMIT DELETE ROWS"
)
"""A writer connection's staging table for one batch (emptied by every commit)."""
_INCOMING_TYPES = ["int8", "int8", "int8", "int8", "float8", "int2", "int8"]
_INSERT = (
    "INSERT INTO observations SELECT d, t, NULLIF(e, -1), NULLIF(r, -1), v, q, i FROM incoming "
    "ON CONFLICT DO NOTHING"
)


class PostGISObservationStore(SQLObservationStore):
    """Observations in the schema ``civictwin_observations`` of a PostgreSQL database, one connection
    per thread."""

    query_errors = (psycopg.DataError, psycopg.ProgrammingError)
    like = "ILIKE"

    def __init__(self, dsn: str, *, read_only: bool) -> None:
        super().__init__(where=dsn, read_only=read_only)
        self.dsn = dsn

    @classmethod
    def open(cls, dsn: str, *, read_only: bool = False) -> PostGISObservationStore:
        """Open the observation store of the database ``dsn``, creating its schema when missing."""
        store = cls(dsn, read_only=read_only)
        store._initialise()
        return store

    def _connect(self) -> SQLConnection:
        raw = connect(self.dsn)
        try:
            raw.execute(f"SET search_path TO {OBSERVATION_SCHEMA}")
            if self.read_only:
                raw.execute("SET default_transaction_read_only = on")
            else:
                raw.execute(_INCOMING)
        except psycopg.Error as exc:
            raw.close()
            raise StoreError(f"cannot open the observation store: {first_line(exc)}", path=self.dsn) from None
        return PostgresConnection(raw)

    def _disconnect(self, con: SQLConnection) -> None:
        assert isinstance(con, PostgresConnection)
        con.raw.close()

    def _lost(self, con: SQLConnection) -> bool:
        """A connection psycopg closed when it found it broken (the server restarted or ended the
        session): the next use of this thread's store opens a new one, so a restart costs the one
        statement that found it."""
        assert isinstance(con, PostgresConnection)
        return con.raw.closed

    @contextmanager
    def _write(self, con: SQLConnection) -> Iterator[SQLConnection]:
        assert isinstance(con, PostgresConnection)
        try:
            with con.raw.transaction():
                yield con
        except psycopg.OperationalError as exc:
            raise StoreError(f"the observation store failed: {first_line(exc)}", path=self.dsn) from None

    def _insert_observations(self, con: SQLConnection, rows: Sequence[list[Any]]) -> int:
        """The batch copied (binary ``COPY``) into the connection's staging table, then one
        ``INSERT ... SELECT``: 2.7× the rows per second of one statement over arrays and 3.7× of
        ``executemany`` (``benchmarks/bench_observation_backends.py``, measured under load). A NaN result is stored as
        NULL, as SQLite does."""
        assert isinstance(con, PostgresConnection)
        ids, times, ends, result_times, results, quality, ingest = rows
        nulls = [None if value != value else value for value in results]
        with con.raw.cursor().copy("COPY incoming FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_INCOMING_TYPES)
            for row in zip(ids, times, ends, result_times, nulls, quality, ingest, strict=True):
                copy.write_row(row)
        return con.execute(_INSERT).rowcount

    def json_property(self, column: str, key: str) -> str:
        return f"({column}::jsonb -> '{key}')"

    def json_value(self, value: Any) -> Any:
        return Jsonb(value)

    def _initialise(self) -> None:
        """The schema and its tables, created when missing (:func:`ensure_schema`), of this version."""
        raw = connect(self.dsn)
        try:
            ensure_schema(
                raw,
                schema=OBSERVATION_SCHEMA,
                sqlite_schema=SCHEMA,
                probe="meta",
                dsn=self.dsn,
                seed=[("INSERT INTO meta VALUES ('schema', %s)", [str(SCHEMA_VERSION)])],
            )
            found = raw.execute(
                f"SELECT value FROM {OBSERVATION_SCHEMA}.meta WHERE key = 'schema'"
            ).fetchone()
        except psycopg.Error as exc:
            raise StoreError(f"cannot open the observation store: {first_line(exc)}", path=self.dsn) from None
        finally:
            raw.close()
        if found is None or int(found[0]) != SCHEMA_VERSION:
            raise StoreError(
                f"observation store schema {None if found is None else found[0]} is not {SCHEMA_VERSION}",
                path=self.dsn,
            )


def has_observations(dsn: str) -> bool:
    """Whether the database ``dsn`` holds an observation store (its tables exist)."""
    with connect(dsn) as raw:
        return has_schema_table(raw, OBSERVATION_SCHEMA, "meta")
