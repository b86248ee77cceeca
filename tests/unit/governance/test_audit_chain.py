"""The chained logs: tamper evidence, rotation by size and age, retention, reopening, privacy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from civictwin.governance.audit import AuditLog, ClientAddresses, read_audit
from civictwin.governance.chain import (
    GENESIS,
    ChainedLog,
    RotationPolicy,
    chain_files,
    rotated_files,
    verify_chain,
)
from civictwin.governance.security import FailureBursts


class Clock:
    """A settable clock (Unix seconds)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def write(log: ChainedLog, count: int, start: int = 0) -> None:
    for number in range(start, start + count):
        log.append({"time": f"2026-12-01T00:00:{number % 60:02d}+00:00", "n": number})


def test_an_intact_chain_verifies_and_names_its_head(tmp_path: Path) -> None:
    log = ChainedLog(tmp_path / "x.jsonl")
    write(log, 5)
    lines = (tmp_path / "x.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert records[0]["prev"] == GENESIS
    assert [r["prev"] for r in records[1:]] == [r["hash"] for r in records[:-1]]
    report = verify_chain([tmp_path / "x.jsonl"])
    assert (report.intact, report.records, report.head) == (True, 5, records[-1]["hash"])


def test_verify_finds_a_removed_and_an_altered_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    write(ChainedLog(path), 6)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2] + lines[3:]))  # line 3 removed
    report = verify_chain([path])
    assert report.problems == [
        f"{path}: line 3: does not follow the record before it (a record was removed or moved)"
    ]
    altered = lines[4].replace('"n":4', '"n":40')
    path.write_text("".join([*lines[:4], altered, *lines[5:]]))
    report = verify_chain([path])
    assert report.problems == [f"{path}: line 5: altered (its content no longer matches its hash)"]


def test_rotation_by_size_keeps_one_chain_across_files(tmp_path: Path) -> None:
    path = tmp_path / "twin.audit.jsonl"
    clock = Clock(1_796_000_000.0)
    log = ChainedLog(path, policy=RotationPolicy(max_bytes=400), clock=clock)
    for number in range(12):
        clock.now += 1
        write(log, 1, number)
    rotated = rotated_files(path)
    assert len(rotated) >= 3
    assert all(p.stat().st_size >= 400 for p in rotated)
    report = verify_chain(chain_files(path))
    assert report.intact and report.records == 12
    numbers = [json.loads(line)["n"] for p in chain_files(path) for line in p.read_text().splitlines()]
    assert numbers == list(range(12))
    second = rotated[1].read_text().splitlines()
    rotated[1].write_text("\n".join(second[1:]) + "\n")  # the first record of a middle file removed
    assert verify_chain(chain_files(path)).problems == [
        f"{rotated[1]}: line 1: does not follow the record before it (a record was removed or moved)"
    ]


def test_rotation_by_age_and_retention(tmp_path: Path) -> None:
    path = tmp_path / "twin.audit.jsonl"
    day = 86_400.0
    clock = Clock(1_796_000_000.0)  # 2026-11-30
    policy = RotationPolicy(max_bytes=10**9, max_age_s=day, retention_days=2)
    log = ChainedLog(path, policy=policy, clock=clock)
    for _ in range(5):  # one record a day: each new day's record rotates the previous day's file
        log.append({"time": _iso(clock.now), "day": clock.now})
        clock.now += day
    log.append({"time": _iso(clock.now), "day": clock.now})
    kept = rotated_files(path)
    # rotated on days 1..5; those rotated more than 2 days before day 5 are gone
    assert [p.name[len("twin.audit.") : len("twin.audit.") + 8] for p in kept] == [
        "20261203",
        "20261204",
        "20261205",
    ]
    report = verify_chain(chain_files(path))
    assert report.intact and report.records == 4
    assert report.starts_after is not None  # the chain continues from records removed by retention


def _iso(moment: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(moment, UTC).isoformat()


def test_an_externally_moved_log_is_reopened(tmp_path: Path) -> None:
    path = tmp_path / "twin.audit.jsonl"
    log = ChainedLog(path)
    write(log, 2)
    moved = tmp_path / "twin.audit.jsonl.1"
    path.rename(moved)  # logrotate's "mv"
    log.request_reopen()  # what SIGHUP does
    write(log, 2, 2)
    assert len(moved.read_text().splitlines()) == 2
    assert len(path.read_text().splitlines()) == 2
    assert verify_chain([moved, path]).intact


def test_two_processes_append_to_one_chain(tmp_path: Path) -> None:
    # records stamped now: a writer that catches up with the other's records takes the file's age from
    # the first one's time, so a fixed past date would make it rotate by age (one day) mid-test
    path = tmp_path / "shared.jsonl"
    code = (
        "import sys; from datetime import UTC, datetime; from pathlib import Path\n"
        "from civictwin.governance.chain import ChainedLog\n"
        "log = ChainedLog(Path(sys.argv[1]))\n"
        "for n in range(200):\n"
        "    log.append({'time': datetime.now(UTC).isoformat(), 'who': sys.argv[2], 'n': n})\n"
    )
    writers = [subprocess.Popen([sys.executable, "-c", code, str(path), name]) for name in ("a", "b")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    report = verify_chain([path])
    assert report.intact and report.records == 400


def test_client_addresses_are_truncated_hashed_or_kept(tmp_path: Path) -> None:
    def client_of(mode: ClientAddresses, address: str) -> str:
        path = tmp_path / f"{mode}.audit.jsonl"
        AuditLog(path, addresses=mode).record(
            who="anonymous", client=address, method="GET", path="/", query="", status=200, duration_ms=1.0
        )
        return read_audit(path)[-1].client

    assert client_of(ClientAddresses.TRUNCATED, "203.0.113.77") == "203.0.113.0/24"
    assert client_of(ClientAddresses.TRUNCATED, "2001:db8:abcd:12::1") == "2001:db8:abcd::/48"
    assert client_of(ClientAddresses.FULL, "203.0.113.77") == "203.0.113.77"
    hashed = client_of(ClientAddresses.HASHED, "203.0.113.77")
    assert hashed.startswith("h:") and len(hashed) == 18 and "203" not in hashed
    assert client_of(ClientAddresses.HASHED, "203.0.113.77") == hashed  # stable per twin
    assert (tmp_path / "hashed.audit.jsonl.key").stat().st_mode & 0o777 == 0o600


def test_failed_authentications_are_reported_once_per_burst() -> None:
    clock = Clock(0.0)
    bursts = FailureBursts(threshold=3, window_s=60, clock=clock)
    reports = []
    for _ in range(8):
        clock.now += 1
        reports.append(bursts.failed("198.51.100.1"))
    assert reports == [None, None, 3, None, None, None, None, None]
    clock.now += 61
    assert [bursts.failed("198.51.100.1") for _ in range(3)] == [None, None, 3]
    assert bursts.failed("198.51.100.2") is None


@pytest.mark.parametrize("mode", list(ClientAddresses))
def test_audit_records_read_back_with_their_chain(tmp_path: Path, mode: ClientAddresses) -> None:
    path = tmp_path / "t.audit.jsonl"
    audit = AuditLog(path, addresses=mode)
    audit.record(
        who="x", client="10.1.2.3", method="GET", path="/" + "p" * 5000, query="", status=414, duration_ms=2
    )
    audit.record(
        who="anonymous", client="10.1.2.3", method="", path="", query="", status=400, duration_ms=0, edge=True,
        detail="malformed",
    )  # fmt: skip
    first, second = read_audit(path)
    assert len(first.path) == 2048 and second.prev == first.hash
    assert (second.edge, second.detail, second.status) == (True, "malformed", 400)
