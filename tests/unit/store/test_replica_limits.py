"""Rate limits shared by replicas on several hosts through the twin's PostGIS (`shared_limits = "database"`).

Two limiter objects with their own connections stand for two replicas; the database's clock times the
buckets, so the refills are checked with a tolerance of the few milliseconds between statements.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from pgtwin import PASSWORD, USER, PostGIS, build_layers, serve_replicas

from civictwin.api.floodguard import FloodGuard
from civictwin.api.replica_state import (
    KEY_ENV,
    DatabaseFailureBursts,
    DatabaseRateLimiter,
    database_for_limits,
    replica_key,
)
from civictwin.api.settings import ServerSettings
from civictwin.errors import ConfigError
from civictwin.store.opening import StoreLocation

KEY = b"k" * 32
STORE = Path("/nonexistent/twin.duckdb")
"""A DuckDB twin's store path (its files are never opened here)."""


def test_two_replicas_charge_one_bucket_per_scope(postgis_url: str, postgis: PostGIS) -> None:
    first, second = (
        DatabaseRateLimiter(postgis_url, key=KEY, scope="requests", rate=2.0, burst=3) for _ in range(2)
    )
    # burst 3 in all, whichever replica takes them; the 4th waits about 1 token / 2 per s = 0.5 s
    assert [first.acquire("ip:192.0.2.1"), second.acquire("ip:192.0.2.1"), first.acquire("ip:192.0.2.1")] == [
        0.0
    ] * 3
    assert 0.45 < second.acquire("ip:192.0.2.1") <= 0.5
    # another scope (a consultation's contributions) and another client have buckets of their own
    other_scope = DatabaseRateLimiter(postgis_url, key=KEY, scope="contributions\nc1", rate=2.0, burst=3)
    assert other_scope.acquire("ip:192.0.2.1") == 0.0
    assert first.acquire("ip:192.0.2.2") == 0.0
    # only keyed hashes reach the database
    database = postgis_url.rsplit("/", 1)[1]
    rows = postgis.query(
        database, "SELECT scope, client FROM civictwin_serving.buckets ORDER BY scope, client"
    )
    assert len(rows) == 3 and not any("192.0.2" in client for _, client in rows)
    assert {scope for scope, _ in rows} == {"requests", "contributions\nc1"}


def test_failures_are_counted_over_every_replica_and_reported_once(postgis_url: str) -> None:
    replicas = [DatabaseFailureBursts(postgis_url, key=KEY, scope="authentication") for _ in range(2)]
    counts = [replicas[i % 2].failed("198.51.100.7") for i in range(12)]
    assert counts == [None] * 9 + [10, None, None]


def test_contributions_share_one_allowance_over_replicas(
    postgis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "a replicas' secret of forty characters...")
    settings = ServerSettings(shared_limits="database")
    location = StoreLocation(kind="postgis", dsn=postgis_url)
    here, there = (FloodGuard.for_server(settings, STORE, location) for _ in range(2))
    assert [
        here.charge("c1", "203.0.113.9", per_hour=2).wait_s,
        there.charge("c1", "203.0.113.9", per_hour=2).wait_s,
    ] == [0.0, 0.0]
    refused = here.charge("c1", "203.0.113.9", per_hour=2)
    assert 1_799.0 < refused.wait_s <= 1_800.0  # one token at 2 per 3,600 s


def test_sharing_through_the_database_needs_postgis_and_a_shared_key(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ServerSettings(shared_limits="database")
    with pytest.raises(ConfigError, match="needs a twin stored in PostGIS"):
        database_for_limits(settings, StoreLocation.of_file(STORE))
    assert (
        database_for_limits(ServerSettings(), StoreLocation(kind="postgis", dsn="postgresql://x@h/d")) is None
    )
    monkeypatch.setenv(KEY_ENV, "too short")
    with pytest.raises(ConfigError, match=f"at least 32 characters in {KEY_ENV}"):
        replica_key()
    monkeypatch.setenv(KEY_ENV, "s" * 32)
    assert len(replica_key()) == 32


def test_a_role_that_cannot_create_the_tables_is_one_line(postgis: PostGIS, postgis_url: str) -> None:
    database = postgis_url.rsplit("/", 1)[1]
    postgis.sql(database, "CREATE ROLE reader LOGIN PASSWORD 'reader-pw'; REVOKE CREATE ON DATABASE "
                f"{database} FROM PUBLIC; REVOKE CREATE ON SCHEMA public FROM PUBLIC")  # fmt: skip
    reader_url = postgis_url.replace(f"{USER}@", "reader@")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PGPASSWORD", "reader-pw")
        with pytest.raises(ConfigError, match="cannot create the schema civictwin_serving"):
            DatabaseRateLimiter(reader_url, key=KEY, scope="requests", rate=1.0, burst=1)


def test_two_replicas_of_serve_share_a_client_s_burst(postgis: PostGIS, tmp_path: Path) -> None:
    """Two `civictwin serve` processes, each with its own twin directory (as on two hosts), one PostGIS
    twin: a token's burst of 5 is spent over both, whichever replica answers."""
    url = postgis.new_database()
    env = {**os.environ, "PGPASSWORD": PASSWORD, KEY_ENV: "the replicas' shared secret, 40 characters"}
    os.environ["PGPASSWORD"] = PASSWORD
    try:
        build_layers(StoreLocation(kind="postgis", dsn=url), 5)
    finally:
        del os.environ["PGPASSWORD"]
    server, options = 'shared_limits = "database"', ["--burst", "5", "--rate-limit", "0.001"]
    with serve_replicas(tmp_path, url=url, server=server, env=env, options=options) as replicas:
        bases = [replica.base for replica in replicas]
        statuses = [httpx.get(bases[i % 2] + "/conformance", timeout=30).status_code for i in range(8)]
        # each replica's one answered health check took a token too: 5 − 2 are left for the 8 requests
        assert statuses == [200] * 3 + [429] * 5
