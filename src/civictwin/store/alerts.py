"""Alerts, their pending deliveries and the rules added through the API, in one SQLite file per twin
(or, for a twin stored in PostGIS, the schema ``civictwin_alerts`` of its database).

Why SQLite beside the DuckDB store (``<store>.alerts.sqlite``): alerts are written by several processes
at once — the live consumer (observation rules), a comparison (scenario rules), the API (rules an
admin adds) — while the server reads them, and a rebuild of the twin must not drop them. SQLite in WAL
mode lets each process commit short transactions while others read, and each commit is on disk
(``synchronous=FULL``) before the call returns. A partial unique index keeps at most one open alert
per rule and subject, whichever process tries to open a second one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from civictwin.config_live import RuleConfig
from civictwin.errors import StoreError
from civictwin.store.location import StoreLocation, store_location
from civictwin.store.sidecar import SidecarStore, SQLConnection

if TYPE_CHECKING:
    from civictwin.config import TwinConfig

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL,
    subject TEXT NOT NULL,
    severity TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    opened_at TEXT NOT NULL,
    last_fired_at TEXT NOT NULL,
    closed_at TEXT,
    fired INTEGER NOT NULL,
    message TEXT NOT NULL,
    value REAL,
    limit_value REAL NOT NULL,
    evidence TEXT NOT NULL,
    last_evidence TEXT NOT NULL,
    closing TEXT,
    datasets TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_open ON alerts (rule, subject) WHERE status = 'open';
CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts (opened_at);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL REFERENCES alerts (id),
    event TEXT NOT NULL,
    target TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    created_at TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_at);
CREATE TABLE IF NOT EXISTS api_rules (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_ALERT_COLUMNS = (
    "id, rule, subject, severity, status, opened_at, last_fired_at, closed_at, fired, message, value, "
    "limit_value, evidence, last_evidence, closing, datasets"
)


class AlertStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class AlertEvent(StrEnum):
    """What happened to an alert; each event is delivered once to every target."""

    OPENED = "opened"
    CLOSED = "closed"


@dataclass(frozen=True)
class Alert:
    """One alert: a rule firing on a subject, from its opening to its closing."""

    rule: str
    subject: str
    severity: str
    status: AlertStatus
    opened_at: datetime
    """When the condition was first seen (the firing finding's time)."""
    last_fired_at: datetime
    message: str
    value: float | None
    limit: float
    evidence: dict[str, Any]
    """The evidence of the finding that opened the alert."""
    last_evidence: dict[str, Any]
    """The evidence of the newest firing finding (equal to ``evidence`` until it fires again)."""
    fired: int = 1
    """Firing findings while open (the first included)."""
    datasets: tuple[str, ...] = ()
    """Datasets a reader must be allowed to read to see this alert (its datastream, a comparison's layers)."""
    closed_at: datetime | None = None
    closing: dict[str, Any] | None = None
    """The finding that closed it: its time, value and message."""
    id: int | None = None

    def as_json(self) -> dict[str, Any]:
        """The alert as the API and webhooks show it."""
        return {
            "id": self.id,
            "rule": self.rule,
            "subject": self.subject,
            "severity": self.severity,
            "status": str(self.status),
            "opened_at": iso_utc(self.opened_at),
            "last_fired_at": iso_utc(self.last_fired_at),
            "closed_at": iso_utc(self.closed_at) if self.closed_at else None,
            "fired": self.fired,
            "message": self.message,
            "value": self.value,
            "limit": self.limit,
            "evidence": self.evidence,
            "last_evidence": self.last_evidence,
            "closing": self.closing,
        }


def iso_utc(moment: datetime) -> str:
    """A time as ISO 8601 in UTC with a ``Z``, as the API and webhooks show it."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def alerts_path(store_path: Path) -> Path:
    """The alert database of the twin whose store is ``store_path``."""
    return store_path.with_name(store_path.stem + ".alerts.sqlite")


def open_alert_store(where: StoreLocation | TwinConfig) -> AlertStore:
    """The alert database of a twin (created when missing): for a PostGIS twin the schema
    ``civictwin_alerts`` of its database, shared by every host; else ``<store>.alerts.sqlite``."""
    location = where if isinstance(where, StoreLocation) else store_location(where)
    if location.dsn is not None:
        return AlertStore(location.dsn)
    if location.path is None:
        raise StoreError("a store location names neither a file nor a database")
    return AlertStore(alerts_path(location.path))


def timestamp(moment: datetime) -> str:
    """A UTC time as fixed-width ISO 8601 text (so text order is time order)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Delivery:
    """One event of one alert, owed to one target (a webhook name)."""

    id: int
    alert_id: int
    event: AlertEvent
    target: str
    payload: bytes
    attempts: int


@dataclass(frozen=True)
class StoredRule:
    """A rule an admin added through the API, with who added it and when."""

    rule: RuleConfig
    created_at: str
    created_by: str


ALERT_SCHEMA = "civictwin_alerts"
"""The schema of a PostGIS twin's alerts (never one a build writes or drops)."""


class AlertStore(SidecarStore):
    """The alert database of one twin; safe to share between the threads of a process.

    ``where``: the SQLite file (``<store>.alerts.sqlite``), or the URI of a PostGIS twin's database,
    whose schema ``civictwin_alerts`` then holds the same tables (:func:`open_alert_store` picks).
    """

    sqlite_schema = _SCHEMA
    postgis_schema = ALERT_SCHEMA
    probe = "counters"
    what = "alert"

    # ---- alerts -------------------------------------------------------------------------------------

    def open_alerts(self, *, subject_prefix: str = "") -> dict[tuple[str, str], Alert]:
        """The open alerts by (rule, subject), optionally only those whose subject starts with a prefix."""
        with self._db.lock:
            rows = self._db.connection.execute(
                f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE status = 'open' AND subject {self._db.like} ? ESCAPE '\\'",
                [_like_prefix(subject_prefix)],
            ).fetchall()
        return {(row[1], row[2]): _alert(row) for row in rows}

    def save(
        self, changes: Sequence[tuple[Alert, AlertEvent | None]], *, targets: dict[str, list[str]]
    ) -> list[Alert]:
        """Insert or update alerts in one transaction and queue a delivery per event and target.

        ``targets`` maps a rule name to the webhooks its events go to. Returns the alerts with ids.
        """
        saved = []
        now = datetime.now(UTC)
        inserted: dict[tuple[str, str, datetime], int] = {}  # an alert opened and changed in one call
        with self._db.transaction() as con:
            for change, event in changes:
                key = (change.rule, change.subject, change.opened_at)
                alert = _with_id(change, inserted[key]) if change.id is None and key in inserted else change
                try:
                    stored = _upsert(con, alert)
                except self._db.duplicate_errors:
                    raise StoreError(
                        f"an alert of rule '{alert.rule}' on {alert.subject} is already open", path=self.path
                    ) from None
                inserted[key] = stored.id or 0
                saved.append(stored)
                if event is None:
                    continue
                payload = json.dumps({"event": str(event), "alert": stored.as_json()}, default=str)
                for target in targets.get(alert.rule, []):
                    con.execute(
                        "INSERT INTO deliveries (alert_id, event, target, payload, status, next_attempt_at, "
                        "created_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                        [stored.id, str(event), target, payload, now.timestamp(), timestamp(now)],
                    )
        return saved

    def alerts(
        self,
        *,
        status: AlertStatus | None = None,
        rule: str | None = None,
        subject: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Alert]:
        """Alerts, newest opened first, optionally filtered."""
        clauses, params = [], []
        for column, value in (("status", status), ("rule", rule), ("subject", subject)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(str(value))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._db.lock:
            rows = self._db.connection.execute(
                f"SELECT {_ALERT_COLUMNS} FROM alerts{where} ORDER BY opened_at DESC, id DESC LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return [_alert(row) for row in rows]

    def alert(self, alert_id: int) -> Alert | None:
        with self._db.lock:
            row = self._db.connection.execute(
                f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE id = ?", [alert_id]
            ).fetchone()
        return _alert(row) if row else None

    # ---- deliveries ---------------------------------------------------------------------------------

    def due_deliveries(self, now: datetime, *, limit: int = 100) -> list[Delivery]:
        """Pending deliveries whose next attempt is due, oldest first.

        An alert's events reach each target in order: a delivery waits while an earlier one of the same
        alert to the same target is still pending (its "closed" never overtakes its "opened").
        """
        with self._db.lock:
            rows = self._db.connection.execute(
                "SELECT id, alert_id, event, target, payload, attempts FROM deliveries d "
                "WHERE status = 'pending' AND next_attempt_at <= ? AND NOT EXISTS (SELECT 1 FROM deliveries e "
                "WHERE e.target = d.target AND e.alert_id = d.alert_id AND e.status = 'pending' AND e.id < d.id) "
                "ORDER BY id LIMIT ?",
                [now.timestamp(), limit],
            ).fetchall()
        return [Delivery(r[0], r[1], AlertEvent(r[2]), r[3], r[4].encode(), r[5]) for r in rows]

    def next_due(self) -> float | None:
        """When the earliest pending delivery is due (UNIX seconds), None when none is pending."""
        with self._db.lock:
            row = self._db.connection.execute(
                "SELECT min(next_attempt_at) FROM deliveries WHERE status = 'pending'"
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def record_attempt(self, delivery_id: int, *, error: str | None, retry_at: datetime | None) -> None:
        """Note one attempt: delivered (``error`` None), to retry at ``retry_at``, or given up (neither)."""
        now = datetime.now(UTC)
        with self._db.transaction() as con:
            if error is None:
                con.execute(
                    "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, last_error = NULL, "
                    "delivered_at = ? WHERE id = ?",
                    [timestamp(now), delivery_id],
                )
            elif retry_at is not None:
                con.execute(
                    "UPDATE deliveries SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
                    "WHERE id = ?",
                    [error, retry_at.timestamp(), delivery_id],
                )
            else:
                con.execute(
                    "UPDATE deliveries SET status = 'failed', attempts = attempts + 1, last_error = ? "
                    "WHERE id = ?",
                    [error, delivery_id],
                )

    def delivery_counts(self) -> dict[str, int]:
        """Deliveries by status (pending, delivered, failed)."""
        with self._db.lock:
            rows = self._db.connection.execute(
                "SELECT status, count(*) FROM deliveries GROUP BY status"
            ).fetchall()
        return {status: int(n) for status, n in rows}

    def deliveries(self, alert_id: int) -> list[dict[str, Any]]:
        """The deliveries of one alert, for people and tests: target, event, status, attempts, last error."""
        with self._db.lock:
            rows = self._db.connection.execute(
                "SELECT target, event, status, attempts, last_error FROM deliveries WHERE alert_id = ? ORDER BY id",
                [alert_id],
            ).fetchall()
        keys = ("target", "event", "status", "attempts", "last_error")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    # ---- rules added through the API ----------------------------------------------------------------

    def api_rules(self) -> list[StoredRule]:
        with self._db.lock:
            rows = self._db.connection.execute(
                "SELECT definition, created_at, created_by FROM api_rules ORDER BY name"
            ).fetchall()
        return [StoredRule(RuleConfig.model_validate_json(d), at, by) for d, at, by in rows]

    def add_rule(self, rule: RuleConfig, *, created_by: str) -> StoredRule:
        """Add a rule; raises :class:`StoreError` when one of that name exists."""
        created = timestamp(datetime.now(UTC))
        try:
            with self._db.transaction() as con:
                con.execute(
                    "INSERT INTO api_rules VALUES (?, ?, ?, ?)",
                    [rule.name, rule.model_dump_json(exclude_unset=True), created, created_by],
                )
                _bump(con, "rules_version")
        except self._db.duplicate_errors:
            raise StoreError(f"a rule named '{rule.name}' exists already") from None
        return StoredRule(rule, created, created_by)

    def delete_rule(self, name: str) -> bool:
        """Delete an API rule; False when there was none of that name."""
        with self._db.transaction() as con:
            deleted = con.execute("DELETE FROM api_rules WHERE name = ?", [name]).rowcount
            if deleted:
                _bump(con, "rules_version")
        return bool(deleted)

    def rules_version(self) -> int:
        """A number that changes whenever an API rule is added or deleted (cheap to poll)."""
        with self._db.lock:
            row = self._db.connection.execute(
                "SELECT value FROM counters WHERE name = 'rules_version'"
            ).fetchone()
        return int(row[0]) if row else 0


def _bump(con: SQLConnection, name: str) -> None:
    con.execute(
        "INSERT INTO counters VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET value = counters.value + 1",
        [name],
    )


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _upsert(con: SQLConnection, alert: Alert) -> Alert:
    values = [
        alert.rule,
        alert.subject,
        alert.severity,
        str(alert.status),
        timestamp(alert.opened_at),
        timestamp(alert.last_fired_at),
        timestamp(alert.closed_at) if alert.closed_at else None,
        alert.fired,
        alert.message,
        alert.value,
        alert.limit,
        json.dumps(alert.evidence, default=str),
        json.dumps(alert.last_evidence, default=str),
        json.dumps(alert.closing, default=str) if alert.closing is not None else None,
        json.dumps(list(alert.datasets)),
    ]
    if alert.id is None:
        row = con.execute(
            "INSERT INTO alerts (rule, subject, severity, status, opened_at, last_fired_at, closed_at, fired, "
            "message, value, limit_value, evidence, last_evidence, closing, datasets) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            values,
        ).fetchone()
        return _with_id(alert, int(row[0]))
    con.execute(
        "UPDATE alerts SET rule = ?, subject = ?, severity = ?, status = ?, opened_at = ?, last_fired_at = ?, "
        "closed_at = ?, fired = ?, message = ?, value = ?, limit_value = ?, evidence = ?, last_evidence = ?, "
        "closing = ?, datasets = ? WHERE id = ?",
        [*values, alert.id],
    )
    return alert


def _with_id(alert: Alert, alert_id: int) -> Alert:
    return replace(alert, id=alert_id)


def _alert(row: Sequence[Any]) -> Alert:
    opened, last, closed = _parse(row[5]), _parse(row[6]), _parse(row[7])
    assert opened is not None and last is not None
    return Alert(
        id=int(row[0]),
        rule=row[1],
        subject=row[2],
        severity=row[3],
        status=AlertStatus(row[4]),
        opened_at=opened,
        last_fired_at=last,
        closed_at=closed,
        fired=int(row[8]),
        message=row[9],
        value=row[10],
        limit=float(row[11]),
        evidence=json.loads(row[12]),
        last_evidence=json.loads(row[13]),
        closing=json.loads(row[14]) if row[14] is not None else None,
        datasets=tuple(json.loads(row[15])),
    )
