"""Citizen proposals and their runs, in one SQLite file per twin (``<store>.proposals.sqlite``) or,
for a twin stored in PostGIS, in the schema ``civictwin_proposals`` of its database
(:func:`open_proposal_store` picks; the same statements on both).

Beside the twin's store for the reasons contributions are (:mod:`civictwin.store.contributions`): a
rebuild replaces the store, proposals must survive it, and the server writes them while serving the
twin read-only. The database is also the run queue's only state, so the queue survives a restart and
several server processes (on several hosts, with PostGIS) share it: every write is one transaction
with the store to itself (SQLite's ``BEGIN IMMEDIATE``; on PostgreSQL an advisory lock of the schema
taken first), so a claim counts the running proposals, checks the day's cap and starts the oldest
queued one with no other process changing any of them meanwhile.

A proposal moves through these states, and only along :data:`TRANSITIONS` (anything else is refused)::

    submitted ──approve──▶ queued ──▶ running ──▶ done | failed
        │                    │           │
        └──reject──▶ rejected └─cancel─▶ cancelled ◀── cancelling ◀─cancel─┘

Approval queues a proposal at once (the decision, its reason and the deciding role are recorded);
``cancelling`` is a running proposal whose process has been told to stop. A proposal whose runner
stopped sending heartbeats (its server was stopped or died) goes back to ``queued``, or to
``cancelled`` when it was being cancelled (:meth:`ProposalStore.recover`).

What is kept of the author is a random pseudonym and the SHA-256 of the deletion code they were
given: no name, e-mail or client address. After the consultation's retention period
:meth:`ProposalStore.anonymise` drops both (and the time of day), and deletes proposals never published.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from civictwin.errors import StoreError
from civictwin.store.sidecar import SidecarStore, SQLConnection

if TYPE_CHECKING:
    from civictwin.store.location import StoreLocation


class State(StrEnum):
    """Where a proposal is; only approved ones (queued and after) are public."""

    SUBMITTED = "submitted"
    REJECTED = "rejected"
    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


TRANSITIONS: Mapping[State, frozenset[State]] = {
    State.SUBMITTED: frozenset({State.QUEUED, State.REJECTED}),
    State.QUEUED: frozenset({State.RUNNING, State.CANCELLED}),
    State.RUNNING: frozenset({State.DONE, State.FAILED, State.CANCELLING, State.QUEUED}),
    State.CANCELLING: frozenset({State.CANCELLED, State.DONE, State.FAILED}),
    State.REJECTED: frozenset(),
    State.DONE: frozenset(),
    State.FAILED: frozenset(),
    State.CANCELLED: frozenset(),
}
"""Every allowed move; ``running → queued`` is the recovery of a run whose server stopped."""

PUBLIC_STATES = frozenset(
    {State.QUEUED, State.RUNNING, State.CANCELLING, State.DONE, State.FAILED, State.CANCELLED}
)

ANONYMOUS_PSEUDONYM = "anonymised"
PROPOSAL_SCHEMA = "civictwin_proposals"
"""The schema of a PostGIS twin's proposals (never one a build writes or drops)."""
_STATES_SQL = ", ".join(f"'{s}'" for s in State)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS proposals (
    id INTEGER PRIMARY KEY,
    consultation TEXT NOT NULL,
    pseudonym TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    interventions TEXT NOT NULL,
    created TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ({_STATES_SQL})),
    decided_at TEXT,
    decided_by TEXT,
    decided_role TEXT,
    reason TEXT,
    started TEXT,
    heartbeat TEXT,
    finished TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    comparison TEXT,
    outcome TEXT,
    deletion_sha256 TEXT UNIQUE,
    anonymised INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS proposals_by_state ON proposals (state, id);
CREATE INDEX IF NOT EXISTS proposals_by_consultation ON proposals (consultation, id);
CREATE INDEX IF NOT EXISTS proposals_by_age ON proposals (consultation, anonymised, created);
"""
_COLUMNS = (
    "id, consultation, pseudonym, title, description, interventions, created, state, decided_at, "
    "decided_by, decided_role, reason, started, heartbeat, finished, attempts, comparison, outcome"
)


class TransitionError(ValueError):
    """A move the state machine does not allow (the message names the proposal, its state and the move)."""


@dataclass(frozen=True)
class NewProposal:
    """A validated proposal as the API stores it."""

    consultation: str
    pseudonym: str
    title: str
    description: str
    interventions: Sequence[Mapping[str, Any]]
    """The scenario's interventions as plain data (each a table of the scenario file)."""
    deletion_sha256: str
    """SHA-256 of the deletion code handed to the author (never the code)."""


@dataclass(frozen=True)
class Proposal:
    """A stored proposal with its decision and run."""

    id: int
    consultation: str
    pseudonym: str
    title: str
    description: str
    interventions: list[dict[str, Any]]
    created: datetime
    state: State
    decided_at: datetime | None
    decided_by: str | None
    """The deciding staff member's token id."""
    decided_role: str | None
    reason: str | None
    started: datetime | None
    """When its first run started (counts against that day's cap)."""
    heartbeat: datetime | None
    finished: datetime | None
    attempts: int
    comparison: str | None
    """The comparison id its run writes (``runs/<comparison>``)."""
    outcome: str | None
    """How the run ended, in one line (a failure's message, who cancelled and why)."""


def proposals_path(store_path: Path) -> Path:
    """The proposal database of the twin whose store is ``store_path``."""
    return store_path.with_name(store_path.stem + ".proposals.sqlite")


def open_proposal_store(location: StoreLocation) -> ProposalStore:
    """The proposal database of a twin (created when missing): for a PostGIS twin the schema
    ``civictwin_proposals`` of its database, shared by every host; else ``<store>.proposals.sqlite``."""
    if location.dsn is not None:
        return ProposalStore(location.dsn)
    if location.path is None:
        raise StoreError("a store location names neither a file nor a database")
    return ProposalStore(proposals_path(location.path))


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


class ProposalStore(SidecarStore):
    """The proposal database of one twin; safe to share between the threads of a process.

    ``where``: the SQLite file (``<store>.proposals.sqlite``), or the URI of a PostGIS twin's
    database, whose schema ``civictwin_proposals`` then holds the same table.
    """

    sqlite_schema = _SCHEMA
    postgis_schema = PROPOSAL_SCHEMA
    probe = "proposals"
    what = "proposal"
    serial_writes = True

    def add(self, new: NewProposal, *, now: datetime) -> Proposal:
        """Store a submitted proposal."""
        with self._db.transaction() as con:
            row = con.execute(
                "INSERT INTO proposals (consultation, pseudonym, title, description, interventions, created, "
                f"state, deletion_sha256) VALUES (?, ?, ?, ?, ?, ?, 'submitted', ?) RETURNING {_COLUMNS}",
                [new.consultation, new.pseudonym, new.title, new.description,
                 json.dumps(list(new.interventions)), _stamp(now), new.deletion_sha256],
            ).fetchone()  # fmt: skip
        return _proposal(row)

    def proposal(self, proposal_id: int) -> Proposal | None:
        """One proposal (None when there is no such one)."""
        with self._db.lock:
            row = self._db.connection.execute(
                f"SELECT {_COLUMNS} FROM proposals WHERE id = ?", [proposal_id]
            ).fetchone()
        return None if row is None else _proposal(row)

    def proposals(self, consultation: str, *, states: Sequence[State] | None = None) -> list[Proposal]:
        """The proposals of ``consultation`` in the order they came, optionally of some states only."""
        where, params = "consultation = ?", [consultation]
        if states is not None:
            where += f" AND state IN ({', '.join('?' for _ in states)})"
            params += [str(s) for s in states]
        with self._db.lock:
            rows = self._db.connection.execute(
                f"SELECT {_COLUMNS} FROM proposals WHERE {where} ORDER BY id", params
            ).fetchall()
        return [_proposal(row) for row in rows]

    def decide(
        self, proposal_id: int, *, approve: bool, reason: str, by: str, role: str, now: datetime
    ) -> Proposal:
        """Approve (queue) or reject a submitted proposal, recording the reason and who decided."""
        target = State.QUEUED if approve else State.REJECTED
        with self._db.transaction() as con:
            _move(con, proposal_id, target)
            con.execute(
                "UPDATE proposals SET decided_at = ?, decided_by = ?, decided_role = ?, reason = ? WHERE id = ?",
                [_stamp(now), by, role, reason, proposal_id],
            )
            return _one(con, proposal_id)

    def cancel(self, proposal_id: int, *, reason: str, by: str, role: str, now: datetime) -> Proposal:
        """Cancel a queued proposal (at once) or a running one (``cancelling`` until its run stops)."""
        with self._db.transaction() as con:
            current = _one(con, proposal_id)
            target = State.CANCELLED if current.state is State.QUEUED else State.CANCELLING
            _move(con, proposal_id, target)
            outcome = f"cancelled by {role} {by}: {reason}"
            finished = _stamp(now) if target is State.CANCELLED else None
            con.execute(
                "UPDATE proposals SET outcome = ?, finished = ? WHERE id = ?",
                [outcome, finished, proposal_id],
            )
            return _one(con, proposal_id)

    def claim(
        self, *, concurrent: int, per_day: int, now: datetime, comparison: str | None = None
    ) -> Proposal | None:
        """Start the oldest queued proposal if fewer than ``concurrent`` run and fewer than ``per_day``
        first started this UTC day; None when nothing may start. ``comparison`` names the comparison
        its run writes (default ``proposal-<id>-<consultation>``, cut to 128 characters)."""
        midnight = _stamp(now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0))
        with self._db.transaction() as con:
            running = con.execute(
                "SELECT count(*) FROM proposals WHERE state IN ('running', 'cancelling')"
            ).fetchone()[0]
            today = con.execute("SELECT count(*) FROM proposals WHERE started >= ?", [midnight]).fetchone()[0]
            row = con.execute(
                "SELECT id, started FROM proposals WHERE state = 'queued' ORDER BY id LIMIT 1"
            ).fetchone()
            if row is None or running >= concurrent:
                return None
            first_start = row[1] is None
            if first_start and today >= per_day:
                return None
            proposal_id = int(row[0])
            _move(con, proposal_id, State.RUNNING)
            consultation = con.execute(
                "SELECT consultation FROM proposals WHERE id = ?", [proposal_id]
            ).fetchone()[0]
            name = comparison or f"proposal-{proposal_id}-{consultation}"[:128]
            con.execute(
                "UPDATE proposals SET started = coalesce(started, ?), heartbeat = ?, attempts = attempts + 1, "
                "comparison = ? WHERE id = ?",
                [_stamp(now), _stamp(now), name, proposal_id],
            )
            return _one(con, proposal_id)

    def beat(self, proposal_id: int, *, now: datetime) -> State | None:
        """Record that the proposal's run is alive; returns its state (``cancelling``: stop the run)."""
        with self._db.transaction() as con:
            con.execute("UPDATE proposals SET heartbeat = ? WHERE id = ?", [_stamp(now), proposal_id])
            row = con.execute("SELECT state FROM proposals WHERE id = ?", [proposal_id]).fetchone()
        return None if row is None else State(row[0])

    def finish(self, proposal_id: int, state: State, *, outcome: str | None, now: datetime) -> Proposal:
        """End a run: ``done``, ``failed`` or ``cancelled`` (a cancellation keeps its recorded reason)."""
        with self._db.transaction() as con:
            _move(con, proposal_id, state)
            con.execute(
                "UPDATE proposals SET finished = ?, outcome = coalesce(?, outcome) WHERE id = ?",
                [_stamp(now), outcome, proposal_id],
            )
            return _one(con, proposal_id)

    def recover(self, *, stale_after_s: float, now: datetime) -> list[int]:
        """Re-queue every running proposal whose heartbeat is older than ``stale_after_s`` (its server
        stopped: the next run resumes its completed seeds), and mark cancelled those that were being
        cancelled. Returns the ids recovered."""
        cutoff = _stamp(now - timedelta(seconds=stale_after_s))
        with self._db.transaction() as con:
            rows = con.execute(
                "SELECT id, state FROM proposals WHERE state IN ('running', 'cancelling') AND heartbeat < ?",
                [cutoff],
            ).fetchall()
            for proposal_id, state in rows:
                _release(con, int(proposal_id), State(state), now=now)
        return [int(r[0]) for r in rows]

    def delete(self, consultation: str, deletion_sha256: str) -> Proposal | None:
        """Delete the proposal whose deletion code hashes to ``deletion_sha256`` (None when none does);
        a proposal being simulated is kept (:class:`TransitionError`): its run must end first."""
        with self._db.transaction() as con:
            row = con.execute(
                "SELECT id FROM proposals WHERE consultation = ? AND deletion_sha256 = ?",
                [consultation, deletion_sha256],
            ).fetchone()
            if row is None:
                return None
            found = _one(con, int(row[0]))
            if found.state in (State.RUNNING, State.CANCELLING):
                raise TransitionError(
                    f"proposal {found.id} is being simulated; it can be deleted once its run has ended"
                )
            con.execute("DELETE FROM proposals WHERE id = ?", [found.id])
            return found

    def anonymise(self, consultation: str, *, older_than: datetime) -> list[Proposal]:
        """Anonymise the proposals of ``consultation`` made before ``older_than``: those never published
        (submitted, rejected) deleted, the others without pseudonym, deletion code or time of day.
        Returns the deleted ones (their files go too)."""
        cutoff = _stamp(older_than)
        with self._db.transaction() as con:
            rows = con.execute(
                f"SELECT {_COLUMNS} FROM proposals WHERE consultation = ? AND anonymised = 0 AND created < ? "
                "AND state IN ('submitted', 'rejected')",
                [consultation, cutoff],
            ).fetchall()
            con.execute(
                "DELETE FROM proposals WHERE consultation = ? AND anonymised = 0 AND created < ? "
                "AND state IN ('submitted', 'rejected')",
                [consultation, cutoff],
            )
            con.execute(
                "UPDATE proposals SET pseudonym = ?, deletion_sha256 = NULL, anonymised = 1, "
                "created = substr(created, 1, 10) || 'T00:00:00.000000Z' "
                "WHERE consultation = ? AND anonymised = 0 AND created < ?",
                [ANONYMOUS_PSEUDONYM, consultation, cutoff],
            )
        return [_proposal(row) for row in rows]

    def release(self, proposal_id: int, *, now: datetime) -> Proposal:
        """Hand back a run this server stopped (it shuts down): re-queued, or cancelled when it was
        being cancelled."""
        with self._db.transaction() as con:
            _release(con, proposal_id, _one(con, proposal_id).state, now=now)
            return _one(con, proposal_id)


def _release(con: SQLConnection, proposal_id: int, state: State, *, now: datetime) -> None:
    if state is State.CANCELLING:
        _move(con, proposal_id, State.CANCELLED)
        con.execute("UPDATE proposals SET finished = ? WHERE id = ?", [_stamp(now), proposal_id])
        return
    _move(con, proposal_id, State.QUEUED)
    con.execute(
        "UPDATE proposals SET outcome = ? WHERE id = ?",
        ["re-queued: its run stopped with the server that ran it", proposal_id],
    )


def _move(con: SQLConnection, proposal_id: int, target: State) -> None:
    """Set the state of ``proposal_id`` to ``target`` if :data:`TRANSITIONS` allows it."""
    row = con.execute("SELECT state FROM proposals WHERE id = ?", [proposal_id]).fetchone()
    if row is None:
        raise KeyError(proposal_id)
    current = State(row[0])
    if target not in TRANSITIONS[current]:
        raise TransitionError(f"proposal {proposal_id} is {current}; it cannot become {target}")
    con.execute("UPDATE proposals SET state = ? WHERE id = ?", [str(target), proposal_id])


def _one(con: SQLConnection, proposal_id: int) -> Proposal:
    row = con.execute(f"SELECT {_COLUMNS} FROM proposals WHERE id = ?", [proposal_id]).fetchone()
    if row is None:
        raise KeyError(proposal_id)
    return _proposal(row)


def _proposal(row: Any) -> Proposal:
    return Proposal(
        id=int(row[0]),
        consultation=str(row[1]),
        pseudonym=str(row[2]),
        title=str(row[3]),
        description=str(row[4]),
        interventions=list(json.loads(row[5])),
        created=_parse(str(row[6])) or datetime.min.replace(tzinfo=UTC),
        state=State(row[7]),
        decided_at=_parse(row[8]),
        decided_by=row[9],
        decided_role=row[10],
        reason=row[11],
        started=_parse(row[12]),
        heartbeat=_parse(row[13]),
        finished=_parse(row[14]),
        attempts=int(row[15]),
        comparison=row[16],
        outcome=row[17],
    )
