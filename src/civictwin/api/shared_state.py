"""State the worker processes of one server share: rate buckets and failed-authentication bursts.

With ``civictwin serve --workers N`` every request may land on any of N processes, so a client's rate
bucket and its count of failed authentications cannot live in one process's memory: a client would
get N times its limit, and a password sprayer spread over N workers might never reach the alert
threshold in any one of them. Both live instead in one SQLite file beside the twin
(``<store>.limits.sqlite``, WAL mode), changed in one short ``BEGIN IMMEDIATE`` transaction per
request, so each charge sees every earlier one whichever worker made it.

Why SQLite rather than the twin's PostGIS: it works the same for a DuckDB twin, costs a fraction of
a millisecond on a local disk, and keeps an overloaded or unreachable database from stopping the
gate. It is shared by the processes of one host, like the token file and the audit log beside the
twin; replicas on several hosts each count their own clients. Times are ``time.monotonic()``, one
clock for every process of a host (it counts from boot), and the supervisor empties the file when a
server starts, so a reboot's new clock never meets old buckets. Nothing in it needs to survive a
crash (``synchronous=OFF``). Clients (token ids, or IP addresses of anonymous callers) are recorded
only as a keyed hash whose key the supervisor draws at each start and keeps in memory, so the file
holds no address.
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from civictwin.api.limits import RateLimiter
from civictwin.errors import ConfigError
from civictwin.governance.security import FailureBursts
from civictwin.store.sidecar import immediate_transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (client TEXT PRIMARY KEY, tokens REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS failures (client TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS failures_by_client ON failures (client, at);
CREATE TABLE IF NOT EXISTS bursts_reported (client TEXT PRIMARY KEY, at REAL NOT NULL);
"""
_BUSY_TIMEOUT_S = 5.0
"""How long a worker waits for another's transaction on the file (they last microseconds)."""
_TIDY_EVERY = 1_000
"""Charges between two sweeps of forgotten buckets and failures (per worker)."""


def limits_path(store_path: Path) -> Path:
    """The shared limits file of the twin whose store is ``store_path`` (``<store>.limits.sqlite``)."""
    return store_path.with_name(store_path.stem + ".limits.sqlite")


def reset_shared_state(path: Path) -> None:
    """Start a server with empty buckets and failure counts (called once, before the workers start)."""
    shared = _SharedFile(path)
    with shared.transaction() as con:
        con.execute("DELETE FROM buckets")
        con.execute("DELETE FROM failures")
        con.execute("DELETE FROM bursts_reported")
    shared.close()


class _SharedFile:
    """One SQLite file opened once per thread (sqlite3 connections are not shared between threads),
    recording clients under a keyed hash (``key``: the same in every worker of a server)."""

    def __init__(self, path: Path, *, key: bytes = b"") -> None:
        self.path = path
        self._key = key
        self._local = threading.local()

    def client_id(self, client: str) -> str:
        """How ``client`` is recorded: HMAC-SHA-256 under the server's key, 32 hex digits."""
        return hmac.new(self._key, client.encode(), hashlib.sha256).hexdigest()[:32]

    def _connection(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            try:
                con = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=OFF")
                con.executescript(_SCHEMA)
            except sqlite3.Error as exc:
                raise ConfigError(f"cannot open the shared limits file ({exc})", path=self.path) from None
            self._local.con = con
        return con

    def close(self) -> None:
        """Close this thread's connection (a later transaction opens a new one)."""
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate (write-locked) transaction: no other worker changes the file meanwhile."""
        with immediate_transaction(self._connection()) as con:
            yield con


class SharedRateLimiter(RateLimiter):
    """:class:`RateLimiter`'s token buckets, kept in the shared file so every worker charges the same one."""

    def __init__(
        self,
        path: Path,
        *,
        key: bytes,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(rate=rate, burst=burst, clock=clock)
        self._file = _SharedFile(path, key=key)
        self._charges = 0

    def acquire(self, client: str) -> float:
        """Take one request from ``client``'s shared bucket: 0 when allowed, else seconds until allowed."""
        now = self._clock()
        client = self._file.client_id(client)
        with self._file.transaction() as con:
            row = con.execute("SELECT tokens, updated FROM buckets WHERE client = ?", (client,)).fetchone()
            tokens = float(self.burst) if row is None else float(row[0]) + max(0.0, now - row[1]) * self.rate
            tokens = min(float(self.burst), tokens)
            wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate
            if wait == 0.0:
                tokens -= 1.0
            con.execute("INSERT OR REPLACE INTO buckets VALUES (?, ?, ?)", (client, tokens, now))
            self._charges += 1
            if self._charges % _TIDY_EVERY == 0:
                # A bucket idle long enough to be full again is the same as no bucket.
                con.execute("DELETE FROM buckets WHERE updated < ?", (now - self.burst / self.rate,))
        return wait


class SharedFailureBursts(FailureBursts):
    """:class:`FailureBursts` counted over every worker: one report per client and window in all."""

    def __init__(
        self,
        path: Path,
        *,
        key: bytes,
        threshold: int = 10,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(threshold=threshold, window_s=window_s, clock=clock)
        self._file = _SharedFile(path, key=key)

    def failed(self, client: str) -> int | None:
        """Count one failure of ``client``; the count in the window when a burst is to be reported."""
        now = self._clock()
        client = self._file.client_id(client)
        since = now - self.window_s
        with self._file.transaction() as con:
            con.execute("DELETE FROM failures WHERE at < ?", (since,))
            con.execute("INSERT INTO failures VALUES (?, ?)", (client, now))
            (count,) = con.execute(
                "SELECT count(*) FROM failures WHERE client = ? AND at >= ?", (client, since)
            ).fetchone()
            reported = con.execute("SELECT at FROM bursts_reported WHERE client = ?", (client,)).fetchone()
            if count < self.threshold or (reported is not None and now - reported[0] < self.window_s):
                return None
            con.execute("INSERT OR REPLACE INTO bursts_reported VALUES (?, ?)", (client, now))
        return int(count)
