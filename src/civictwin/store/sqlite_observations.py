"""The embedded observation store: one SQLite database in WAL mode beside the twin's store.

Why SQLite (measured and argued in ``docs/architecture.md``): several processes share it safely (a
live consumer appends while ``civictwin serve`` and a batch import read and write); readers never
block the writer nor the writer them (write-ahead log); a commit with ``synchronous=FULL`` is on disk
before :meth:`append` returns, so a crash of any process loses nothing acknowledged; the primary key
(datastream, phenomenon time) makes appends idempotent and keeps each datastream's observations
together on disk, so a year of one datastream is one short range scan. The twin's DuckDB store cannot
take this role: a rebuild replaces its file, and DuckDB lets no other process read a file a writer
holds.

The statements are :mod:`civictwin.store.sql_observations`' (shared with the PostGIS backend); this
module adds the file, its pragmas and the write transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from civictwin.errors import StoreError
from civictwin.store.sidecar import SQLConnection, immediate_transaction
from civictwin.store.sql_observations import SCHEMA, SCHEMA_VERSION, SQLObservationStore

_BUSY_TIMEOUT_MS = 30_000
_INSERT = (
    "INSERT INTO observations VALUES (?, ?, NULLIF(?, -1), NULLIF(?, -1), ?, ?, ?) ON CONFLICT DO NOTHING"
)


class SQLiteObservationStore(SQLObservationStore):
    """Observations in one SQLite file (WAL mode, ``synchronous=FULL``), one connection per thread."""

    query_errors = (sqlite3.Error,)

    def __init__(self, path: Path, *, read_only: bool) -> None:
        super().__init__(where=str(path), read_only=read_only)
        self.path = path

    @classmethod
    def open(cls, path: Path, *, read_only: bool = False) -> SQLiteObservationStore:
        """Open (creating the file and its schema when missing) the observation store at ``path``."""
        store = cls(path, read_only=read_only)
        store._initialise()
        return store

    def _connect(self) -> SQLConnection:
        try:
            con = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            con.execute("PRAGMA foreign_keys=ON")
            if self.read_only:
                con.execute("PRAGMA query_only=ON")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the observation store: {exc}", path=self.path) from None
        return con

    def _disconnect(self, con: SQLConnection) -> None:
        assert isinstance(con, sqlite3.Connection)
        con.close()

    @contextmanager
    def _write(self, con: SQLConnection) -> Iterator[SQLConnection]:
        """Taken at once (``BEGIN IMMEDIATE``) so that it never deadlocks on an upgrade."""
        assert isinstance(con, sqlite3.Connection)
        with immediate_transaction(con) as held:
            yield held

    def _insert_observations(self, con: SQLConnection, rows: Sequence[list[Any]]) -> int:
        """One prepared statement run per row (``executemany``); NaN binds as NULL."""
        ids, times, ends, result_times, results, quality, ingest = rows
        values = zip(ids, times, ends, result_times, results, quality, ingest, strict=True)
        return con.executemany(_INSERT, values).rowcount

    def _initialise(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = SQLiteObservationStore(self.path, read_only=False)
        try:
            with writer._transaction() as con:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        con.execute(statement)
                found = con.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                if found is None:
                    con.execute("INSERT INTO meta VALUES ('schema', ?)", [str(SCHEMA_VERSION)])
                elif int(found[0]) != SCHEMA_VERSION:
                    raise StoreError(
                        f"observation store schema {found[0]} is not {SCHEMA_VERSION}", path=self.path
                    )
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"not an observation store: {exc}", path=self.path) from None
        finally:
            writer.close()
