"""Rate buckets and failure bursts shared by several workers through one SQLite file (hand-computed).

Two limiter objects on one file stand for two worker processes; a fake clock makes the refills exact.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from civictwin.api.shared_state import (
    SharedFailureBursts,
    SharedRateLimiter,
    limits_path,
    reset_shared_state,
)


class Clock:
    """A settable clock (seconds)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


KEY = b"k" * 32
"""The key every worker of one server holds (the supervisor draws it at random at each start)."""


def test_two_workers_charge_one_bucket(tmp_path: Path) -> None:
    path = limits_path(tmp_path / "twin.duckdb")
    assert path.name == "twin.limits.sqlite"
    clock = Clock()
    first, second = (SharedRateLimiter(path, key=KEY, rate=2.0, burst=3, clock=clock) for _ in range(2))
    # Burst 3 in all, whichever worker takes them: the 4th request waits 1 token / 2 per s = 0.5 s.
    assert [first.acquire("a"), second.acquire("a"), first.acquire("a")] == [0.0, 0.0, 0.0]
    assert second.acquire("a") == 0.5
    assert first.acquire("b") == 0.0  # another client has its own bucket
    clock.now += 0.25  # half a token back: 0.5 s -> still 0.25 s to wait
    assert first.acquire("a") == 0.25
    clock.now += 0.25  # a whole token: one request, then empty again
    assert second.acquire("a") == 0.0
    assert first.acquire("a") == 0.5
    clock.now += 100.0  # refills to the burst, never beyond
    assert [second.acquire("a") for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]
    reset_shared_state(path)  # a server's start forgets every bucket
    assert first.acquire("a") == 0.0


def test_failure_bursts_counted_over_workers_reported_once(tmp_path: Path) -> None:
    path = limits_path(tmp_path / "twin.duckdb")
    clock = Clock()
    workers = [SharedFailureBursts(path, key=KEY, threshold=4, window_s=60.0, clock=clock) for _ in range(2)]
    # Four failures spread over two workers reach the threshold of 4 once, in the worker that saw the 4th.
    assert [workers[i % 2].failed("10.0.0.1") for i in range(4)] == [None, None, None, 4]
    assert [workers[i % 2].failed("10.0.0.1") for i in range(3)] == [None, None, None]  # reported already
    clock.now += 61.0  # the window passed: the old failures no longer count, a new burst is reported
    assert [workers[i % 2].failed("10.0.0.1") for i in range(4)] == [None, None, None, 4]
    assert workers[0].failed("10.0.0.2") is None


def test_the_shared_file_records_clients_only_under_the_servers_key(tmp_path: Path) -> None:
    """No IP address on disk: the file holds HMAC-SHA-256 of each client under the server's key, and a
    worker with another key (another server start) charges another bucket."""
    path = limits_path(tmp_path / "twin.duckdb")
    workers = [SharedRateLimiter(path, key=KEY, rate=1.0, burst=1) for _ in range(2)]
    bursts = SharedFailureBursts(path, key=KEY, threshold=10, window_s=60.0)
    assert workers[0].acquire("192.0.2.7") == 0.0 and workers[1].acquire("192.0.2.7") > 0
    assert bursts.failed("192.0.2.7") is None
    assert SharedRateLimiter(path, key=b"other" * 7, rate=1.0, burst=1).acquire("192.0.2.7") == 0.0
    with sqlite3.connect(path) as con:
        recorded = {
            row[0] for row in con.execute("SELECT client FROM buckets UNION SELECT client FROM failures")
        }
    assert len(recorded) == 2 and all(len(c) == 32 and "192" not in c for c in recorded)
    assert b"192.0.2.7" not in path.read_bytes() + path.with_name(path.name + "-wal").read_bytes()
