"""The API tokens of a PostGIS twin served by replicas on several hosts (``[server] tokens =
"database"``), in the schema ``civictwin_tokens`` of its database: the counterpart of the token file.

The schema holds the token file's document as it is (one row, the same JSON, parsed and checked by
:mod:`civictwin.governance.tokens` as the file is) with a version number raised by every change, so a
server asks one cheap question per authenticated request (the version) and re-reads the document
only when it changed: a token created or revoked on any host is honoured by every replica from its
next request on. Changes run one at a time over every process and host (an advisory lock, as the
file's exclusive lock). Last uses are kept per token, the later time winning.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

import psycopg

from civictwin.errors import StoreError
from civictwin.store.postgis import first_line
from civictwin.store.postgis_sidecar import DatabaseSidecar

TOKEN_SCHEMA = "civictwin_tokens"
"""The schema of a PostGIS twin's tokens (never one a build writes or drops)."""
EMPTY_BOOK = '{"version": 1, "tokens": []}'
"""The document of a twin without tokens (the token file's format)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS book (name TEXT PRIMARY KEY, version INTEGER NOT NULL, document TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS uses (token_id TEXT PRIMARY KEY, at REAL NOT NULL);
"""


class TokenDatabase:
    """The token document and last uses of one PostGIS twin; safe to share between threads.

    Every method raises :class:`StoreError` (one line, no password) when the database cannot answer,
    so that the server fails closed.
    """

    def __init__(self, dsn: str) -> None:
        self.path = dsn
        """Where the tokens are, as errors name it (the database URI: no password)."""
        self._db = DatabaseSidecar(
            dsn,
            schema=TOKEN_SCHEMA,
            sqlite_schema=_SCHEMA,
            probe="book",
            what="token",
            serial_writes=True,
            seed=[("INSERT INTO book VALUES ('tokens', 0, %s)", [EMPTY_BOOK])],
        )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def version(self) -> int:
        """A number raised by every change of the document (cheap to ask on every request)."""
        with self._answering(), self._db.lock:
            row = self._book(self._db.connection.execute("SELECT version FROM book WHERE name = 'tokens'"))
        return int(row[0])

    def document(self) -> tuple[int, str]:
        """The version and the document (the token file's JSON)."""
        with self._answering(), self._db.lock:
            row = self._book(
                self._db.connection.execute("SELECT version, document FROM book WHERE name = 'tokens'")
            )
        return int(row[0]), str(row[1])

    @contextmanager
    def editing(self) -> Iterator[list[str]]:
        """The document as a one-item list, in a transaction no other writer shares: what the block
        leaves in the list is written back (with a new version) when it ends without an exception."""
        with self._answering(), self._db.transaction() as con:
            row = self._book(con.execute("SELECT document FROM book WHERE name = 'tokens'"))
            held = [str(row[0])]
            yield held
            if held[0] != row[0]:
                con.execute(
                    "UPDATE book SET document = ?, version = version + 1 WHERE name = 'tokens'", [held[0]]
                )

    def save_uses(self, used: dict[str, float]) -> None:
        """Merge ``used`` (token id → Unix time), keeping the later time of each."""
        with self._answering(), self._db.transaction() as con:
            con.executemany(
                "INSERT INTO uses VALUES (?, ?) ON CONFLICT (token_id) DO UPDATE SET at = greatest(uses.at, excluded.at)",
                sorted(used.items()),
            )

    def uses(self) -> dict[str, float]:
        """When each token was last used (Unix time), as far as servers have noted it."""
        with self._answering(), self._db.lock:
            rows = self._db.connection.execute("SELECT token_id, at FROM uses").fetchall()
        return {str(token_id): float(at) for token_id, at in rows}

    def _book(self, cursor: psycopg.Cursor[Any]) -> Any:
        """The one row of the document (a :class:`StoreError` when someone deleted it)."""
        row = cursor.fetchone()
        if row is None:
            raise StoreError(f"the schema {TOKEN_SCHEMA} has lost its token document", path=self.path)
        return row

    @contextmanager
    def _answering(self) -> Iterator[None]:
        """Turn a database error into one :class:`StoreError` line."""
        try:
            yield
        except psycopg.Error as exc:
            raise StoreError(
                f"the token database did not answer: {first_line(exc)}", path=self.path
            ) from None
