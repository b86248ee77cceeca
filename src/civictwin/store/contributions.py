"""Comments, votes and survey observations of public consultations, in one SQLite file per twin
(``<store>.contributions.sqlite``) or, for a twin stored in PostGIS, in the schema
``civictwin_contributions`` of its database (:func:`open_contribution_store` picks).

Why beside the twin's store and not in it: a rebuild replaces the twin's database (a DuckDB file, or
a PostGIS twin's ``twin_<id>`` schema), and contributions must survive it; the server writes them
while it serves the twin read-only. SQLite in WAL mode (as the alert store,
:mod:`civictwin.store.alerts`) lets several server processes of one host append and moderate while
others read, each commit on disk (``synchronous=FULL``) before the call returns; the PostGIS schema
lets replicas on several hosts share them. Both run the same statements. Photo files are never in a
database: they stay in a local folder on both backends (:meth:`ContributionStore.photo_folder`),
which replicas on several hosts must share (a network file system) to serve each other's photos.

What is kept is the minimum (GDPR, docs/consultation.md): no name, e-mail or client address; a random
pseudonym; the SHA-256 of the deletion code handed to the contributor (never the code); the
scenario, vote, theme, text and optional point. After the retention period :meth:`anonymise` drops
the pseudonym, the deletion code's hash and the exact time, rounds the point to 0.01° (about 1 km)
and deletes what was never published (pending and rejected contributions).

A survey observation from the viewer's form (:class:`Kind` ``observation``) is a contribution too, so it
goes through the same moderation, deletion and retention: its category is the ``theme``, its
scenario is empty, it always has a point, and ``photo`` names its clean photo (a content hash; the
file lives in :meth:`ContributionStore.photo_folder`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from civictwin.errors import StoreError
from civictwin.store.sidecar import SidecarDatabase, SidecarStore, SQLConnection

if TYPE_CHECKING:
    from civictwin.store.location import StoreLocation

CONTRIBUTION_SCHEMA = "civictwin_contributions"
"""The schema of a PostGIS twin's contributions (never one a build writes or drops)."""

ANONYMOUS_PSEUDONYM = "anonymised"
POINT_DECIMALS_AFTER_RETENTION = 2
"""Decimals of a degree an anonymised point keeps (0.01° is about 1.1 km north-south)."""
PHOTO_GRACE_S = 600.0
"""How long a photo file is kept before any observation names it (s): the time a submission may take
between storing its photo and committing its row."""

_SCHEMA_BEFORE_INDEXES = """
CREATE TABLE IF NOT EXISTS contributions (
    id INTEGER PRIMARY KEY,
    consultation TEXT NOT NULL,
    pseudonym TEXT,
    deletion_sha256 TEXT UNIQUE,
    scenario TEXT NOT NULL,
    vote TEXT CHECK (vote IN ('for', 'against')),
    theme TEXT NOT NULL,
    text TEXT NOT NULL,
    lon REAL,
    lat REAL,
    created TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    moderated_at TEXT,
    moderated_by TEXT,
    reason TEXT,
    anonymised INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL DEFAULT 'comment' CHECK (kind IN ('comment', 'observation')),
    photo TEXT
);
CREATE TABLE IF NOT EXISTS used_challenges (challenge TEXT PRIMARY KEY, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS contributions_by_status ON contributions (consultation, status, id)",
    "CREATE INDEX IF NOT EXISTS contributions_by_age ON contributions (consultation, anonymised, created)",
    "CREATE INDEX IF NOT EXISTS contributions_by_photo ON contributions (consultation, photo) "
    "WHERE photo IS NOT NULL",
)
_COLUMNS = (
    "id, consultation, pseudonym, scenario, vote, theme, text, lon, lat, created, status, "
    "moderated_at, moderated_by, reason, anonymised, kind, photo"
)
_ADDED_COLUMNS = {
    "kind": "kind TEXT NOT NULL DEFAULT 'comment' CHECK (kind IN ('comment', 'observation'))",
    "photo": "photo TEXT",
}
"""Columns added after the first release, added to a database made before them on opening."""


class Status(StrEnum):
    """Where a contribution is in moderation; only approved ones are ever public."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class Kind(StrEnum):
    """What a contribution is: a comment and/or vote on a scenario, or a survey observation."""

    COMMENT = "comment"
    OBSERVATION = "observation"


@dataclass(frozen=True)
class NewContribution:
    """What a contributor sends, checked by the API: a comment, a vote, or both, on one scenario."""

    consultation: str
    scenario: str
    theme: str
    text: str
    vote: str | None
    lon: float | None
    lat: float | None
    kind: Kind = Kind.COMMENT
    photo: str | None = None
    """A survey observation's clean photo (its file name, a content hash), if it has one."""


@dataclass(frozen=True)
class Queued:
    """A checked contribution ready to store, with what only the server adds to it."""

    contribution: NewContribution
    pseudonym: str
    deletion_sha256: str
    challenge: str
    """The proof-of-work challenge it spent (kept until it expires, so it cannot be spent twice)."""
    challenge_expires: float
    """When the challenge expires (Unix seconds)."""
    received: datetime
    """When the server accepted it (its ``created`` time)."""


@dataclass(frozen=True)
class Contribution:
    """A stored contribution (never with its deletion code, which only its author holds)."""

    id: int
    consultation: str
    pseudonym: str
    scenario: str
    vote: str | None
    theme: str
    text: str
    lon: float | None
    lat: float | None
    created: datetime
    status: Status
    moderated_at: datetime | None
    moderated_by: str | None
    reason: str | None
    anonymised: bool
    kind: Kind = Kind.COMMENT
    photo: str | None = None


@dataclass(frozen=True)
class Decision:
    """A moderator's decision on one contribution."""

    status: Status
    reason: str
    moderator: str
    """The moderator's token id (staff, not a contributor)."""


def contributions_path(store_path: Path) -> Path:
    """The contribution database of the twin whose store is ``store_path``."""
    return store_path.with_name(store_path.stem + ".contributions.sqlite")


def open_contribution_store(location: StoreLocation, *, store_path: Path) -> ContributionStore:
    """The contribution database of a twin (created when missing): for a PostGIS twin (``location``
    names a database) the schema ``civictwin_contributions`` of that database, shared by every host;
    else ``<store>.contributions.sqlite``. ``store_path``: the twin's configured store file, beside
    which the photo folder lies on both backends (``<store>.contributions.sqlite.media``)."""
    photos = _media(contributions_path(store_path))
    if location.dsn is not None:
        return ContributionStore(location.dsn, media=photos)
    if location.path is None:
        raise StoreError("a store location names neither a file nor a database")
    return ContributionStore(contributions_path(location.path), media=photos)


def _media(database: Path) -> Path:
    """The photo folder kept beside the SQLite contribution file ``database`` (or where it would be)."""
    return database.with_name(database.name + ".media")


def _stamp(moment: datetime) -> str:
    """A UTC time as fixed-width ISO 8601 text (so text order is time order)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


class ContributionStore(SidecarStore):
    """The contribution database of one twin; safe to share between the threads of a process.

    ``where``: the SQLite file (``<store>.contributions.sqlite``), or the URI of a PostGIS twin's
    database, whose schema ``civictwin_contributions`` then holds the same tables. ``media``: the
    photo folder; by default ``<file>.media`` beside a SQLite file, and required with a database URI.
    """

    sqlite_schema = _SCHEMA_BEFORE_INDEXES + "".join(f"{statement};\n" for statement in _INDEXES)
    postgis_schema = CONTRIBUTION_SCHEMA
    probe = "contributions"
    what = "contribution"

    def __init__(self, where: Path | str, *, media: Path | None = None) -> None:
        if isinstance(where, Path):
            media = media or _media(where)
        elif media is None:
            raise StoreError("a contribution database in PostGIS needs a photo folder", path=where)
        super().__init__(where)
        self._photos = media

    def _open_file(self, path: Path) -> SidecarDatabase:
        """The SQLite file, brought up to date by :func:`_sqlite_database` (a file made by an earlier
        release lacks later columns, which :attr:`sqlite_schema` alone would not add)."""
        return _sqlite_database(path)

    def secret(self, name: str, make: bytes) -> bytes:
        """The stored secret ``name``, stored as ``make`` the first time (shared by every server process)."""
        with self._db.transaction() as con:
            con.execute("INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                        [name, make])  # fmt: skip
            row = con.execute("SELECT value FROM secrets WHERE name = ?", [name]).fetchone()
        return bytes(row[0])

    def add_many(self, items: Sequence[Queued]) -> list[Contribution | None]:
        """Queue contributions for moderation in one transaction (one disk sync for all: a group
        commit); per item the stored contribution, or None when its challenge was used before (a replay).

        The challenge is recorded in the same transaction, so one proof of work buys one contribution
        whichever server process receives it. Expired challenges are forgotten here.
        """
        if not items:
            return []
        latest = max(item.received for item in items)
        with self._db.transaction() as con:
            con.execute("DELETE FROM used_challenges WHERE expires < ?", [latest.timestamp()])
            return [_insert(con, item) for item in items]

    def contributions(
        self,
        consultation: str,
        *,
        status: Status | None,
        kind: Kind | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[Contribution]:
        """Contributions of ``consultation`` in the order they came, optionally of one status and kind."""
        where, params = _where(consultation, status=status, kind=kind)
        with self._db.lock:
            rows = self._db.connection.execute(
                f"SELECT {_COLUMNS} FROM contributions WHERE {where} ORDER BY id LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return [_contribution(row) for row in rows]

    def count(self, consultation: str, *, status: Status | None, kind: Kind | None = None) -> int:
        """How many contributions of ``consultation`` there are, optionally of one status and kind."""
        where, params = _where(consultation, status=status, kind=kind)
        with self._db.lock:
            row = self._db.connection.execute(
                f"SELECT count(*) FROM contributions WHERE {where}", params
            ).fetchone()
        return int(row[0])

    def photo_status(self, consultation: str, photo: str) -> set[Status]:
        """The statuses of the observations of ``consultation`` showing ``photo`` (empty when none does)."""
        with self._db.lock:
            rows = self._db.connection.execute(
                "SELECT DISTINCT status FROM contributions WHERE consultation = ? AND photo = ?",
                [consultation, photo],
            ).fetchall()
        return {Status(row[0]) for row in rows}

    def photos(self, consultation: str) -> set[str]:
        """Every photo the observations of ``consultation`` still show (the others may go)."""
        with self._db.lock:
            rows = self._db.connection.execute(
                "SELECT DISTINCT photo FROM contributions WHERE consultation = ? AND photo IS NOT NULL",
                [consultation],
            ).fetchall()
        return {str(row[0]) for row in rows}

    def photo_folder(self, consultation: str) -> Path:
        """Where the clean photos of ``consultation``'s survey observations are kept: a local folder
        on both backends (a database holds only their names)."""
        return self._photos / consultation

    def forget_unused_photos(self, consultation: str, *, grace_s: float = PHOTO_GRACE_S) -> int:
        """Delete the photo files no observation of ``consultation`` shows any longer (deleted on
        request, or unpublished and past retention); returns how many went. A file written in the
        last ``grace_s`` seconds stays: its observation may be on its way into the database."""
        folder = self.photo_folder(consultation)
        files = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
        shown = self.photos(consultation)
        young = time.time() - grace_s
        gone = 0
        for file in files:
            if file.name not in shown and file.stat().st_mtime < young:
                file.unlink(missing_ok=True)
                gone += 1
        return gone

    def contribution(self, consultation: str, contribution_id: int) -> Contribution | None:
        """One contribution of ``consultation`` (None when there is no such one)."""
        with self._db.lock:
            row = self._db.connection.execute(
                f"SELECT {_COLUMNS} FROM contributions WHERE consultation = ? AND id = ?",
                [consultation, contribution_id],
            ).fetchone()
        return None if row is None else _contribution(row)

    def decide(self, consultation: str, contribution_id: int, decision: Decision, *, now: datetime) -> bool:
        """Record ``decision`` on a pending contribution; False when it is not pending (or absent)."""
        with self._db.transaction() as con:
            cursor = con.execute(
                "UPDATE contributions SET status = ?, reason = ?, moderated_by = ?, moderated_at = ? "
                "WHERE consultation = ? AND id = ? AND status = 'pending'",
                [str(decision.status), decision.reason, decision.moderator, _stamp(now), consultation,
                 contribution_id],
            )  # fmt: skip
        return cursor.rowcount == 1

    def delete(self, consultation: str, deletion_sha256: str) -> bool:
        """Delete the contribution whose deletion code hashes to ``deletion_sha256``; False when none."""
        with self._db.transaction() as con:
            cursor = con.execute(
                "DELETE FROM contributions WHERE consultation = ? AND deletion_sha256 = ?",
                [consultation, deletion_sha256],
            )
        return cursor.rowcount == 1

    def anonymise(self, consultation: str, *, older_than: datetime) -> int:
        """Anonymise every contribution of ``consultation`` made before ``older_than``: unpublished ones
        deleted, published ones without pseudonym, deletion code, exact time or exact point.
        Returns how many were changed or deleted."""
        cutoff = _stamp(older_than)
        digits = POINT_DECIMALS_AFTER_RETENTION
        with self._db.transaction() as con:
            deleted = con.execute(
                "DELETE FROM contributions WHERE consultation = ? AND anonymised = 0 AND created < ? "
                "AND status != 'approved'",
                [consultation, cutoff],
            ).rowcount
            changed = con.execute(
                "UPDATE contributions SET pseudonym = NULL, deletion_sha256 = NULL, anonymised = 1, "
                "created = substr(created, 1, 10) || 'T00:00:00.000000Z', "
                f"lon = round(CAST(lon AS NUMERIC), {digits}), lat = round(CAST(lat AS NUMERIC), {digits}) "
                "WHERE consultation = ? AND anonymised = 0 AND created < ?",
                [consultation, cutoff],
            ).rowcount
        return int(deleted) + int(changed)


def _sqlite_database(path: Path) -> SidecarDatabase:
    """The SQLite file at ``path``, with the columns added since the first release added to a file
    made before them (a PostGIS schema is always made whole)."""
    database = SidecarDatabase(path, schema=_SCHEMA_BEFORE_INDEXES, what="contribution")
    with database.transaction() as con:
        present = {str(row[1]) for row in con.execute("PRAGMA table_info(contributions)")}
        for name, definition in _ADDED_COLUMNS.items():
            if name not in present:
                con.execute(f"ALTER TABLE contributions ADD COLUMN {definition}")
        for statement in _INDEXES:
            con.execute(statement)
    return database


def _contribution(row: Any) -> Contribution:
    return Contribution(
        id=int(row[0]),
        consultation=str(row[1]),
        pseudonym=ANONYMOUS_PSEUDONYM if row[2] is None else str(row[2]),
        scenario=str(row[3]),
        vote=None if row[4] is None else str(row[4]),
        theme=str(row[5]),
        text=str(row[6]),
        lon=None if row[7] is None else float(row[7]),
        lat=None if row[8] is None else float(row[8]),
        created=_parse(str(row[9])) or datetime.min.replace(tzinfo=UTC),
        status=Status(row[10]),
        moderated_at=_parse(row[11]),
        moderated_by=None if row[12] is None else str(row[12]),
        reason=None if row[13] is None else str(row[13]),
        anonymised=bool(row[14]),
        kind=Kind(row[15]),
        photo=None if row[16] is None else str(row[16]),
    )


def _where(consultation: str, *, status: Status | None, kind: Kind | None) -> tuple[str, list[str]]:
    """The SQL condition (and its parameters) selecting a consultation's contributions."""
    where, params = "consultation = ?", [consultation]
    if status is not None:
        where += " AND status = ?"
        params.append(str(status))
    if kind is not None:
        where += " AND kind = ?"
        params.append(str(kind))
    return where, params


def _insert(con: SQLConnection, item: Queued) -> Contribution | None:
    """Insert one contribution and spend its challenge (None, and nothing inserted, on a replay).

    A spent challenge is skipped (``ON CONFLICT DO NOTHING``) rather than caught as an error: an error
    would end a PostgreSQL transaction, and with it the rest of the group commit."""
    spent = con.execute(
        "INSERT INTO used_challenges (challenge, expires) VALUES (?, ?) ON CONFLICT (challenge) DO NOTHING",
        [item.challenge, item.challenge_expires],
    ).rowcount
    if spent != 1:
        return None
    new = item.contribution
    row = con.execute(
        "INSERT INTO contributions (consultation, pseudonym, deletion_sha256, scenario, vote, theme, "
        "text, lon, lat, created, status, kind, photo) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?) "
        f"RETURNING {_COLUMNS}",
        [new.consultation, item.pseudonym, item.deletion_sha256, new.scenario, new.vote, new.theme, new.text,
         new.lon, new.lat, _stamp(item.received), str(new.kind), new.photo],
    ).fetchone()  # fmt: skip
    return _contribution(row)
