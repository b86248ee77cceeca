"""A SQLite database kept beside the twin's store (WAL, fully synced), shared by the threads of a process.

Alerts, proposals and consultation contributions live in such files (or, for a PostGIS twin, in a
schema of its database): they are written while the twin is served and must survive its rebuilds,
which replace the store itself. :class:`SidecarStore` is the shell such a store is built on.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self

from civictwin.errors import StoreError


class SidecarDatabase:
    """One SQLite file with ``schema`` applied; ``what`` names it in errors ("alert", "contribution")."""

    duplicate_errors: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)
    """The error of a row that breaks a unique key."""
    like = "LIKE"
    """The text-prefix operator, case-insensitive for ASCII (SQLite's ``LIKE``)."""

    def __init__(self, path: Path, *, schema: str, what: str) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=FULL")
            self._con.executescript(schema)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"not a usable {what} database: {exc}", path=path) from None
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One immediate transaction on the file, one thread of the process at a time."""
        with self._lock, immediate_transaction(self._con) as con:
            yield con

    @property
    def connection(self) -> sqlite3.Connection:
        """The connection, for a store built on this database (hold :attr:`lock` while reading)."""
        return self._con

    @property
    def lock(self) -> threading.RLock:
        """The lock a reader holds so that one thread of the process uses the connection at a time."""
        return self._lock

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction (see :meth:`_transaction`), for a store built on this database."""
        return self._transaction()


@contextmanager
def immediate_transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A ``BEGIN IMMEDIATE`` transaction on ``con`` (opened with ``isolation_level=None``): the write
    lock is taken at once, so other writers wait instead of deadlocking on an upgrade; committed at the
    end, rolled back on any exception."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


class Rows(Protocol):
    """What a statement returns on either backend (``sqlite3.Cursor``, ``psycopg.Cursor``)."""

    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class SQLConnection(Protocol):
    """A connection running statements with ``?`` placeholders (SQLite's own; PostgreSQL's translated)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Rows: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Rows: ...


class SharedDatabase(Protocol):
    """What a store written while the twin is served needs of its database: a SQLite file beside a
    DuckDB twin (:class:`SidecarDatabase`) or a schema of a PostGIS twin's database
    (:class:`civictwin.store.postgis_sidecar.DatabaseSidecar`)."""

    duplicate_errors: tuple[type[Exception], ...]
    like: str

    @property
    def connection(self) -> SQLConnection: ...

    @property
    def lock(self) -> threading.RLock: ...

    def transaction(self) -> AbstractContextManager[SQLConnection]: ...

    def close(self) -> None: ...


class SidecarStore:
    """The shell of a store written while the twin is served (alerts, proposals, contributions); safe
    to share between the threads of a process, closed at the end of a ``with`` block.

    ``where`` picks its database: a :class:`Path` is a SQLite file beside a DuckDB twin
    (:class:`SidecarDatabase`), a string the URI of a PostGIS twin's database, whose schema
    :attr:`postgis_schema` then holds the same tables
    (:class:`civictwin.store.postgis_sidecar.DatabaseSidecar`). A subclass names its tables and
    itself in the class attributes below.
    """

    sqlite_schema: ClassVar[str]
    """The tables, as SQLite statements (translated for PostgreSQL)."""
    postgis_schema: ClassVar[str]
    """The schema of a PostGIS twin's database holding them (never one a build writes or drops)."""
    probe: ClassVar[str]
    """The table whose presence shows that the PostGIS schema is made."""
    what: ClassVar[str]
    """What errors call the database ("alert")."""
    serial_writes: ClassVar[bool] = False
    """One write transaction at a time over every process on PostGIS, as ``BEGIN IMMEDIATE`` is on
    SQLite (see :class:`~civictwin.store.postgis_sidecar.DatabaseSidecar`)."""

    def __init__(self, where: Path | str) -> None:
        self._db: SharedDatabase = (
            self._open_file(where) if isinstance(where, Path) else self._open_database(where)
        )
        self.path = where
        """Where the rows are, as errors name it (the SQLite file, or the database URI: no password)."""

    def _open_file(self, path: Path) -> SharedDatabase:
        """The SQLite file at ``path`` with :attr:`sqlite_schema` applied."""
        return SidecarDatabase(path, schema=self.sqlite_schema, what=self.what)

    def _open_database(self, dsn: str) -> SharedDatabase:
        """The schema :attr:`postgis_schema` of the PostGIS database ``dsn``, made when missing."""
        from civictwin.store.postgis_sidecar import DatabaseSidecar

        return DatabaseSidecar(dsn, schema=self.postgis_schema, sqlite_schema=self.sqlite_schema,
                               probe=self.probe, what=self.what, serial_writes=self.serial_writes)  # fmt: skip

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
