"""The proposal store's state machine, its run claims under the limits (one at a time, a cap per UTC
day), cancellation, and what happens to a run whose server stopped (docs/consultation.md#citizen-proposals),
on both backends (a SQLite file beside a DuckDB twin, the schema ``civictwin_proposals`` of a PostGIS
twin's database) with the same expected values; claims from two processes at once never start one
proposal twice nor pass the limits; on PostGIS, left alone by a rebuild."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pgtwin import PostGIS, build_layers

from civictwin.store.opening import StoreLocation
from civictwin.store.proposals import (
    PROPOSAL_SCHEMA,
    TRANSITIONS,
    NewProposal,
    ProposalStore,
    State,
    TransitionError,
    open_proposal_store,
    proposals_path,
)

T0 = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
ITEM = {"type": "speed_limit", "osm_ids": [202], "speed_kmh": 30.0}


def _new(store: ProposalStore, title: str = "Thirty on Kaivokatu", now: datetime = T0) -> int:
    new = NewProposal(consultation="c1", pseudonym="Resident ABCDEF", title=title, description="",
                      interventions=[ITEM], deletion_sha256=f"sha-of-{title}")  # fmt: skip
    return store.add(new, now=now).id


def _approved(store: ProposalStore, count: int) -> list[int]:
    ids = [_new(store, f"Proposal {n}") for n in range(count)]
    for pid in ids:
        store.decide(pid, approve=True, reason="fine", by="tok1", role="moderator", now=T0)
    return ids


@pytest.fixture
def store(sidecar_location: StoreLocation) -> Iterator[ProposalStore]:
    """An empty proposal database: a SQLite file beside ``tmp_path/twin.duckdb``, or the schema of a
    fresh PostGIS database."""
    with open_proposal_store(sidecar_location) as opened:
        yield opened


def test_the_file_sits_beside_the_store(tmp_path: Path) -> None:
    assert proposals_path(tmp_path / "city.duckdb") == tmp_path / "city.proposals.sqlite"


def test_a_proposal_goes_from_submitted_to_done_with_its_decision_recorded(store: ProposalStore) -> None:
    pid = _new(store)
    first = store.proposal(pid)
    assert first is not None and first.state is State.SUBMITTED and first.interventions == [ITEM]
    queued = store.decide(pid, approve=True, reason="worth a run", by="tok1", role="analyst", now=T0)
    assert (queued.state, queued.reason, queued.decided_by, queued.decided_role, queued.decided_at) == (
        State.QUEUED, "worth a run", "tok1", "analyst", T0,
    )  # fmt: skip
    running = store.claim(concurrent=1, per_day=5, now=T0)
    assert running is not None and running.id == pid and running.state is State.RUNNING
    assert (running.comparison, running.attempts, running.started) == (f"proposal-{pid}-c1", 1, T0)
    done = store.finish(pid, State.DONE, outcome="done", now=T0 + timedelta(minutes=3))
    assert (done.state, done.outcome, done.finished) == (State.DONE, "done", T0 + timedelta(minutes=3))


def test_moves_outside_the_state_machine_are_refused(store: ProposalStore) -> None:
    rejected = _new(store)
    store.decide(rejected, approve=False, reason="a duplicate of #1", by="tok2", role="moderator", now=T0)
    with pytest.raises(TransitionError, match=f"proposal {rejected} is rejected; it cannot become queued"):
        store.decide(rejected, approve=True, reason="changed my mind", by="tok2", role="moderator", now=T0)
    with pytest.raises(TransitionError, match="is rejected; it cannot become cancelling"):
        store.cancel(rejected, reason="x", by="tok2", role="moderator", now=T0)
    submitted = _new(store, "Second")
    with pytest.raises(TransitionError, match="is submitted; it cannot become done"):
        store.finish(submitted, State.DONE, outcome=None, now=T0)
    with pytest.raises(KeyError):
        store.decide(999, approve=True, reason="x", by="t", role="admin", now=T0)
    assert all(not TRANSITIONS[s] for s in (State.DONE, State.FAILED, State.CANCELLED, State.REJECTED))


def test_one_run_at_a_time_by_default(store: ProposalStore) -> None:
    first, second = _approved(store, 2)
    assert store.claim(concurrent=1, per_day=10, now=T0).id == first  # type: ignore[union-attr]
    assert store.claim(concurrent=1, per_day=10, now=T0) is None
    assert store.claim(concurrent=2, per_day=10, now=T0).id == second  # type: ignore[union-attr]
    store.finish(first, State.FAILED, outcome="engine failed", now=T0)
    assert store.proposal(second).state is State.RUNNING  # type: ignore[union-attr]


def test_a_cap_per_utc_day(store: ProposalStore) -> None:
    ids = _approved(store, 3)
    for pid in ids[:2]:
        assert store.claim(concurrent=5, per_day=2, now=T0).id == pid  # type: ignore[union-attr]
        store.finish(pid, State.DONE, outcome="done", now=T0)
    assert store.claim(concurrent=5, per_day=2, now=T0 + timedelta(hours=14, minutes=59)) is None
    next_day = store.claim(concurrent=5, per_day=2, now=datetime(2026, 12, 11, 0, 0, tzinfo=UTC))
    assert next_day is not None and next_day.id == ids[2]


def test_cancelling_a_queued_and_a_running_proposal(store: ProposalStore) -> None:
    running, queued = _approved(store, 2)
    store.claim(concurrent=1, per_day=5, now=T0)
    now = store.cancel(queued, reason="superseded", by="tok3", role="admin", now=T0)
    assert (now.state, now.outcome, now.finished) == (
        State.CANCELLED, "cancelled by admin tok3: superseded", T0,
    )  # fmt: skip
    asked = store.cancel(running, reason="too costly", by="tok3", role="analyst", now=T0)
    assert asked.state is State.CANCELLING and asked.finished is None
    assert store.beat(running, now=T0) is State.CANCELLING
    assert store.claim(concurrent=1, per_day=5, now=T0) is None  # a run being cancelled still holds its place
    ended = store.finish(running, State.CANCELLED, outcome=None, now=T0 + timedelta(seconds=4))
    assert (ended.state, ended.outcome) == (State.CANCELLED, "cancelled by analyst tok3: too costly")


def test_a_run_whose_server_stopped_is_requeued_and_resumes_under_the_same_comparison(
    store: ProposalStore,
) -> None:
    running, cancelling = _approved(store, 2)
    store.claim(concurrent=2, per_day=5, now=T0)
    store.claim(concurrent=2, per_day=5, now=T0)
    store.cancel(cancelling, reason="stop", by="t", role="moderator", now=T0)
    store.beat(running, now=T0 + timedelta(seconds=50))
    assert store.recover(stale_after_s=60, now=T0 + timedelta(seconds=100)) == [cancelling]
    assert store.recover(stale_after_s=60, now=T0 + timedelta(seconds=111)) == [running]
    back = store.proposal(running)
    assert back is not None and back.state is State.QUEUED
    assert back.outcome == "re-queued: its run stopped with the server that ran it"
    assert store.proposal(cancelling).state is State.CANCELLED  # type: ignore[union-attr]
    again = store.claim(concurrent=1, per_day=2, now=T0 + timedelta(seconds=120))
    assert again is not None and (again.id, again.attempts, again.started) == (running, 2, T0)
    assert again.comparison == f"proposal-{running}-c1"


def test_a_new_store_on_the_same_database_sees_the_queue(store: ProposalStore) -> None:
    (pid,) = _approved(store, 1)
    store.claim(concurrent=1, per_day=5, now=T0)
    store.release(pid, now=T0)
    with ProposalStore(store.path) as second:
        found = second.proposal(pid)
        assert found is not None and found.state is State.QUEUED


def test_deletion_by_code_except_while_simulated(store: ProposalStore) -> None:
    kept, running = _new(store, "Kept"), _new(store, "Running")
    store.decide(running, approve=True, reason="ok", by="t", role="admin", now=T0)
    store.claim(concurrent=1, per_day=5, now=T0)
    assert store.delete("c1", "sha-of-nothing") is None
    assert store.delete("other consultation", "sha-of-Kept") is None
    with pytest.raises(
        TransitionError, match=f"proposal {running} is being simulated; it can be deleted once"
    ):
        store.delete("c1", "sha-of-Running")
    gone = store.delete("c1", "sha-of-Kept")
    assert gone is not None and gone.id == kept and store.proposal(kept) is None
    assert store.delete("c1", "sha-of-Kept") is None


def test_anonymisation_after_retention_deletes_the_unpublished_and_drops_identifiers(
    store: ProposalStore,
) -> None:
    old_submitted = _new(store, "Old submitted", now=T0)
    old_rejected = _new(store, "Old rejected", now=T0)
    old_done = _new(store, "Old done", now=T0)
    recent = _new(store, "Recent", now=T0 + timedelta(days=10))
    store.decide(old_rejected, approve=False, reason="no", by="t", role="moderator", now=T0)
    store.decide(old_done, approve=True, reason="ok", by="t", role="moderator", now=T0)
    store.claim(concurrent=1, per_day=5, now=T0)
    store.finish(old_done, State.DONE, outcome="done", now=T0)
    deleted = store.anonymise("c1", older_than=T0 + timedelta(days=1))
    assert sorted(p.id for p in deleted) == [old_submitted, old_rejected]
    assert store.proposal(old_submitted) is None and store.proposal(old_rejected) is None
    done = store.proposal(old_done)
    assert done is not None and (done.pseudonym, done.created, done.state, done.title) == (
        "anonymised", datetime(2026, 12, 10, tzinfo=UTC), State.DONE, "Old done",
    )  # fmt: skip
    assert store.delete("c1", "sha-of-Old done") is None  # its deletion code is gone
    fresh = store.proposal(recent)
    assert fresh is not None and fresh.pseudonym == "Resident ABCDEF"


CLAIMER = """
import json, sys
from datetime import datetime
from civictwin.store.proposals import ProposalStore
from pathlib import Path
where = sys.argv[1]
with ProposalStore(Path(where[5:]) if where.startswith("file:") else where) as store:
    print("ready", flush=True)
    sys.stdin.readline()
    claimed = []
    while (found := store.claim(concurrent=100, per_day=30, now=datetime.fromisoformat(sys.argv[2]))):
        claimed.append(found.id)
print(json.dumps(claimed))
"""


def test_two_processes_claiming_at_once_start_each_proposal_once_within_the_day_cap(
    store: ProposalStore,
) -> None:
    """Two server processes (on two hosts, for PostGIS) claim from one queue of 40 approved proposals
    at the same moment: 30 start in all (the day's cap), each once, the oldest first."""
    ids = _approved(store, 40)
    where = f"file:{store.path}" if isinstance(store.path, Path) else store.path
    claimers = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, where, T0.isoformat()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for claimer in claimers:
        assert claimer.stdout is not None and claimer.stdout.readline() == "ready\n"
    for claimer in claimers:  # both start together
        assert claimer.stdin is not None
        claimer.stdin.write("go\n")
        claimer.stdin.flush()
    claimed = [json.loads(claimer.communicate(timeout=60)[0]) for claimer in claimers]
    assert sorted(claimed[0] + claimed[1]) == ids[:30]
    assert all(got == sorted(got) for got in claimed)  # each process took the oldest left each time
    assert [p.state for p in store.proposals("c1")].count(State.RUNNING) == 30


def test_postgis_proposals_survive_a_rebuild_in_their_own_schema(postgis: PostGIS, postgis_twin: str) -> None:
    url = postgis_twin
    location = StoreLocation(kind="postgis", dsn=url)
    with open_proposal_store(location) as proposals:
        (pid,) = _approved(proposals, 1)
    build_layers(location, 3)
    name = url.rsplit("/", 1)[1]
    assert postgis.query(name, f"SELECT id, title, state FROM {PROPOSAL_SCHEMA}.proposals") == [
        (pid, "Proposal 0", "queued")
    ]
    with open_proposal_store(location) as after:
        claimed = after.claim(concurrent=1, per_day=5, now=T0)
        assert claimed is not None and claimed.id == pid
