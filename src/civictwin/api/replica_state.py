"""Rate buckets and failure bursts shared by every replica of a server through the twin's PostGIS.

Replicas of ``civictwin serve`` on several hosts behind a load balancer share nothing on disk; with
``[server] shared_limits = "database"`` they charge one bucket per client in the twin's own database
(schema ``civictwin_serving``, unlogged tables: buckets are worth nothing after a crash), timed by the
database's clock (the replicas' clocks need not agree). Clients are recorded as HMAC-SHA-256 under a
key every replica takes from :data:`KEY_ENV` (the operator gives all of them the same one); the key is
never written, so the database holds no address. Each charge is one statement (the bucket's update is
atomic); counting a failure is one short transaction under the client's advisory lock.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from typing import Any

import psycopg

from civictwin.api.limits import RateLimiter
from civictwin.api.settings import ServerSettings
from civictwin.errors import ConfigError
from civictwin.governance.security import FailureBursts
from civictwin.store.opening import StoreLocation
from civictwin.store.postgis import answer, connect

KEY_ENV = "CIVICTWIN_SERVER_KEY"
"""The environment variable holding the replicas' shared key (at least :data:`MIN_KEY_CHARS` characters)."""
MIN_KEY_CHARS = 32
SCHEMA = "civictwin_serving"
_TIDY_EVERY = 1_000
"""Charges between two sweeps of a scope's forgotten buckets (per process)."""
_CREATE = f"""
SELECT pg_advisory_xact_lock(hashtext('{SCHEMA}'));
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE UNLOGGED TABLE IF NOT EXISTS {SCHEMA}.buckets (
    scope text NOT NULL, client text NOT NULL, tokens double precision NOT NULL,
    updated double precision NOT NULL, allowed boolean NOT NULL, PRIMARY KEY (scope, client));
CREATE UNLOGGED TABLE IF NOT EXISTS {SCHEMA}.failures (
    scope text NOT NULL, client text NOT NULL, at double precision NOT NULL);
CREATE INDEX IF NOT EXISTS failures_by_client ON {SCHEMA}.failures (scope, client, at);
CREATE UNLOGGED TABLE IF NOT EXISTS {SCHEMA}.bursts_reported (
    scope text NOT NULL, client text NOT NULL, at double precision NOT NULL, PRIMARY KEY (scope, client));
"""
_NOW = "extract(epoch FROM clock_timestamp())"
# One statement: refill the client's bucket for the time since its last charge (database clock),
# then take a token if there is a whole one; `allowed` tells which, `tokens` what is left.
_CHARGE = f"""
INSERT INTO {SCHEMA}.buckets AS b (scope, client, tokens, updated, allowed)
VALUES (%(scope)s, %(client)s, %(burst)s - 1, {_NOW}, true)
ON CONFLICT (scope, client) DO UPDATE SET
    tokens = least(%(burst)s, b.tokens + (EXCLUDED.updated - b.updated) * %(rate)s)
             - CASE WHEN least(%(burst)s, b.tokens + (EXCLUDED.updated - b.updated) * %(rate)s) >= 1
                    THEN 1 ELSE 0 END,
    allowed = least(%(burst)s, b.tokens + (EXCLUDED.updated - b.updated) * %(rate)s) >= 1,
    updated = EXCLUDED.updated
RETURNING allowed, tokens
"""


def database_for_limits(settings: ServerSettings, location: StoreLocation) -> str | None:
    """The database the limits are shared through (``shared_limits = "database"``), else None; asking
    for it with a twin not stored in PostGIS is one line."""
    if settings.shared_limits != "database":
        return None
    if location.dsn is None:
        raise ConfigError(
            'shared_limits = "database" needs a twin stored in PostGIS (the `store` of [twin])',
            field="server.shared_limits",
        )
    return location.dsn


def replica_key() -> bytes:
    """The replicas' shared key from :data:`KEY_ENV`; a missing or short one is one line."""
    value = os.environ.get(KEY_ENV, "")
    if len(value) < MIN_KEY_CHARS:
        raise ConfigError(
            f'shared_limits = "database" needs the same secret of at least {MIN_KEY_CHARS} characters '
            f"in {KEY_ENV} for every replica",
            field="server.shared_limits",
        )
    return hashlib.sha256(value.encode()).digest()


class _Database:
    """This thread's connection to the twin's database, the tables made once per process."""

    def __init__(self, dsn: str, *, key: bytes) -> None:
        self.dsn = dsn
        self._key = key
        self._local = threading.local()
        self._ready = False
        self._lock = threading.Lock()

    def client_id(self, client: str) -> str:
        """How ``client`` is recorded: HMAC-SHA-256 under the replicas' key, 32 hex digits."""
        return hmac.new(self._key, client.encode(), hashlib.sha256).hexdigest()[:32]

    def connection(self) -> psycopg.Connection[Any]:
        con: psycopg.Connection[Any] | None = getattr(self._local, "con", None)
        if con is None or con.closed:
            con = self._local.con = connect(self.dsn)
        with self._lock:
            if not self._ready:
                _create_tables(con)
                self._ready = True
        return con


def _create_tables(con: psycopg.Connection[Any]) -> None:
    """The schema and its tables, once (several replicas starting together take turns)."""
    try:
        with con.transaction():
            con.execute(_CREATE)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ConfigError(
            f"the server's database role cannot create the schema {SCHEMA} for the shared limits "
            f"({exc.diag.message_primary}); grant it CREATE on the database once",
            field="server.shared_limits",
        ) from None


class DatabaseRateLimiter(RateLimiter):
    """:class:`RateLimiter`'s token buckets in the twin's database: every replica charges the same one.

    ``scope`` keeps apart the buckets of limiters with different rates (the API's requests, each
    consultation's contributions), so that one's sweep never forgets the other's.
    """

    def __init__(self, dsn: str, *, key: bytes, scope: str, rate: float, burst: int) -> None:
        super().__init__(rate=rate, burst=burst)
        self._db = _Database(dsn, key=key)
        self.scope = scope
        self._charges = 0
        self._db.connection()  # at start: a database the limits cannot use is one line now, not later

    # A charge lost with its connection is asked again (answer()); if the first one had committed,
    # the client paid one request twice: rare, and on the safe side.

    def acquire(self, client: str) -> float:
        """Take one request from ``client``'s shared bucket: 0 when allowed, else seconds until allowed."""
        values = {"scope": self.scope, "client": self._db.client_id(client), "burst": float(self.burst),
                  "rate": self.rate}  # fmt: skip
        row = answer(self._db.connection, lambda con: con.execute(_CHARGE, values).fetchone())
        assert row is not None  # INSERT … RETURNING always returns the row
        allowed, tokens = bool(row[0]), float(row[1])
        self._charges += 1
        if self._charges % _TIDY_EVERY == 0:
            self._forget_full()
        return 0.0 if allowed else (1.0 - tokens) / self.rate

    def _forget_full(self) -> None:
        """Drop this scope's buckets idle long enough to be full again (the same as no bucket)."""
        idle_s = self.burst / self.rate
        query = f"DELETE FROM {SCHEMA}.buckets WHERE scope = %s AND updated < {_NOW} - %s"
        answer(self._db.connection, lambda con: con.execute(query, [self.scope, idle_s]))


class DatabaseFailureBursts(FailureBursts):
    """:class:`FailureBursts` counted over every replica: one report per client and window in all."""

    def __init__(
        self, dsn: str, *, key: bytes, scope: str, threshold: int = 10, window_s: float = 60.0
    ) -> None:
        super().__init__(threshold=threshold, window_s=window_s)
        self._db = _Database(dsn, key=key)
        self.scope = scope

    def failed(self, client: str) -> int | None:
        """Count one failure of ``client``; the count in the window when a burst is to be reported."""
        return answer(self._db.connection, lambda con: self._count(con, self._db.client_id(client)))

    def _count(self, con: psycopg.Connection[Any], client: str) -> int | None:
        scope, window = self.scope, self.window_s
        with con.transaction():
            con.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{scope}\n{client}"])
            now = float(con.execute(f"SELECT {_NOW}").fetchone()[0])  # type: ignore[index]
            con.execute(f"DELETE FROM {SCHEMA}.failures WHERE scope = %s AND at < %s", [scope, now - window])
            con.execute(f"INSERT INTO {SCHEMA}.failures VALUES (%s, %s, %s)", [scope, client, now])
            (count,) = con.execute(
                f"SELECT count(*) FROM {SCHEMA}.failures WHERE scope = %s AND client = %s", [scope, client]
            ).fetchone() or (0,)
            reported = con.execute(
                f"SELECT at FROM {SCHEMA}.bursts_reported WHERE scope = %s AND client = %s", [scope, client]
            ).fetchone()
            if count < self.threshold or (reported is not None and now - reported[0] < window):
                return None
            con.execute(
                f"INSERT INTO {SCHEMA}.bursts_reported VALUES (%s, %s, %s) "
                "ON CONFLICT (scope, client) DO UPDATE SET at = EXCLUDED.at",
                [scope, client, now],
            )
        return int(count)
