"""Each source's hourly contribution allowance, in one worker and shared by a server's workers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from civictwin.api.floodguard import FloodGuard, flood_limits_path
from civictwin.api.settings import ServerSettings
from civictwin.store.opening import StoreLocation

KEY = b"k" * 32


def test_two_workers_share_one_allowance(tmp_path: Path) -> None:
    shared = flood_limits_path(tmp_path / "twin.duckdb")
    assert shared.name == "twin.contribution.limits.sqlite"
    first, second = (FloodGuard(key=KEY, shared=shared) for _ in range(2))
    # 3 an hour in all: whichever worker takes them, the 4th waits for 1 token at 3 per 3,600 s.
    charges = [first.charge("c1", "192.0.2.7", per_hour=3), second.charge("c1", "192.0.2.7", per_hour=3),
               first.charge("c1", "192.0.2.7", per_hour=3), second.charge("c1", "192.0.2.7", per_hour=3)]  # fmt: skip
    assert [c.wait_s for c in charges[:3]] == [0.0, 0.0, 0.0]
    assert 1_199.0 < charges[3].wait_s <= 1_200.0
    assert len({c.source for c in charges}) == 1  # the same source in both workers
    # another consultation and another address have allowances of their own
    assert first.charge("c2", "192.0.2.7", per_hour=3).wait_s == 0.0
    assert second.charge("c1", "192.0.2.8", per_hour=3).wait_s == 0.0
    # the file never holds an address, only keyed hashes
    con = sqlite3.connect(shared)
    stored = " ".join(str(v) for row in con.execute("SELECT * FROM buckets") for v in row)
    con.close()
    assert "192.0.2" not in stored


def test_ten_refusals_in_a_minute_are_one_flood_over_all_workers(tmp_path: Path) -> None:
    shared = flood_limits_path(tmp_path / "twin.duckdb")
    workers = [FloodGuard(key=KEY, shared=shared) for _ in range(2)]
    assert workers[0].charge("c1", "198.51.100.1", per_hour=1).wait_s == 0.0
    bursts = [workers[i % 2].charge("c1", "198.51.100.1", per_hour=1).burst for i in range(12)]
    assert bursts == [None] * 9 + [10, None, None]  # reported once, at the 10th refusal


def test_one_worker_counts_in_memory_and_several_through_the_file(tmp_path: Path) -> None:
    store = tmp_path / "twin.duckdb"
    location = StoreLocation.of_file(store)
    alone = FloodGuard.for_server(ServerSettings(), store, location)
    assert alone.charge("c1", "203.0.113.5", per_hour=1).wait_s == 0.0
    assert alone.charge("c1", "203.0.113.5", per_hour=1).wait_s > 0.0
    assert not flood_limits_path(store).exists()
    shared = ServerSettings(workers=2, limits_key=KEY)
    one, other = (FloodGuard.for_server(shared, store, location) for _ in range(2))
    assert one.charge("c1", "203.0.113.5", per_hour=1).wait_s == 0.0
    assert other.charge("c1", "203.0.113.5", per_hour=1).wait_s > 0.0
    assert flood_limits_path(store).exists()


def test_contributions_and_proposals_have_allowances_of_their_own(tmp_path: Path) -> None:
    shared = flood_limits_path(tmp_path / "twin.duckdb")
    comments = FloodGuard(key=KEY, shared=shared)
    proposals = FloodGuard(key=KEY, shared=shared, kind="proposals")
    assert comments.charge("c1", "192.0.2.9", per_hour=1).wait_s == 0.0
    assert proposals.charge("c1", "192.0.2.9", per_hour=1).wait_s == 0.0  # not charged to the comments
    assert comments.charge("c1", "192.0.2.9", per_hour=1).wait_s > 0.0
    assert proposals.charge("c1", "192.0.2.9", per_hour=1).wait_s > 0.0
