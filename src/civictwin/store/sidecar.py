"""A SQLite database kept beside the twin's store (WAL, fully synced), shared by the threads of a process.

Alerts and consultation contributions live in such files: they are written while the twin is served
and must survive its rebuilds, which replace the store itself.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from civictwin.errors import StoreError


class SidecarDatabase:
    """One SQLite file with ``schema`` applied; ``what`` names it in errors ("alert", "contribution")."""

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
        """One ``BEGIN IMMEDIATE`` transaction (other writers wait), rolled back on any exception."""
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                yield self._con
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")
