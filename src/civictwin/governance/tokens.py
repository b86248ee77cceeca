"""API tokens: created and revoked by the CLI, verified by the server, stored only as SHA-256 hashes.

A token reads ``ct_<id>_<secret>``: ``id`` (8 hex digits) names the record, ``secret`` is 32 random
bytes (URL-safe base64). The token file keeps the id, the role, the stewarded datasets and the
SHA-256 of the whole token, never the token itself, so a leaked file grants nothing.

Why a JSON file and not records in the DuckDB store: the server opens the store read-only and DuckDB
lets no other process write to it meanwhile, yet a token must be creatable and revocable while the
server runs. The file is rewritten atomically (temporary file + rename, under an exclusive lock for
concurrent CLI calls); :class:`TokenRegistry` re-reads it whenever its modification time, size or
inode changes, so a running server honours a new or revoked token on its next request.

Replicas of a PostGIS twin on several hosts (``[server] tokens = "database"``) keep the same document
in the twin's database instead (:class:`civictwin.store.postgis_tokens.TokenDatabase`, picked by
:func:`token_place`): every function here takes either place, and the registry re-reads the document
whenever its version changes (one small query per request presenting a token).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from civictwin import durable
from civictwin.errors import CivicTwinError, ConfigError, StoreError
from civictwin.locking import exclusive

if TYPE_CHECKING:
    from civictwin.store.opening import StoreLocation
    from civictwin.store.postgis_tokens import TokenDatabase

    TokenPlace = Path | TokenDatabase
    """Where a twin's tokens are: the token file, or a PostGIS twin's database."""

TOKEN_PREFIX = "ct"
_TOKEN_PATTERN = re.compile(r"^ct_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")
_DATASET_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_FILE_VERSION = 1
_T = TypeVar("_T")


class TokenError(CivicTwinError):
    """A token file is unreadable, or a token command got invalid arguments."""


class Role(StrEnum):
    """What a token holder is: admins read everything, stewards their datasets, the rest public+internal."""

    ADMIN = "admin"
    STEWARD = "steward"
    ANALYST = "analyst"
    VIEWER = "viewer"
    MODERATOR = "moderator"
    """Moderates public consultations (docs/consultation.md); otherwise reads as a viewer does."""


@dataclass(frozen=True)
class TokenRecord:
    """One token as stored: everything but the secret."""

    id: str
    role: Role
    sha256: str
    created: str
    name: str = ""
    datasets: tuple[str, ...] = ()
    revoked: str | None = None
    expires: str | None = None
    """When the token stops granting access (ISO 8601, UTC); None: never."""

    @property
    def active(self) -> bool:
        """Whether the token is not revoked (it may still have expired: see :meth:`expired`)."""
        return self.revoked is None

    def expired(self, now: datetime | None = None) -> bool:
        """Whether the token's lifetime is over at ``now`` (default: the current time)."""
        if self.expires is None:
            return False
        return (now or datetime.now(UTC)) >= datetime.fromisoformat(self.expires)

    def as_json(self) -> dict[str, Any]:
        """The record as written to the token file."""
        data = asdict(self)
        data["role"] = str(self.role)
        data["datasets"] = list(self.datasets)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenRecord:
        """Parse one record of the token file (``KeyError``/``ValueError`` on malformed input)."""
        return cls(
            id=str(data["id"]),
            role=Role(data["role"]),
            sha256=str(data["sha256"]),
            created=str(data["created"]),
            name=str(data.get("name", "")),
            datasets=tuple(str(d) for d in data.get("datasets", [])),
            revoked=None if data.get("revoked") is None else str(data["revoked"]),
            expires=None if data.get("expires") is None else _instant(str(data["expires"])),
        )


@dataclass(frozen=True)
class IssuedToken:
    """A freshly created token: the only moment the secret exists outside its holder's hands."""

    token: str
    record: TokenRecord


def tokens_path(store_path: Path) -> Path:
    """The token file of the twin whose store is ``store_path`` (``<store>.tokens.json``)."""
    return store_path.with_name(store_path.stem + ".tokens.json")


def token_place(
    *, tokens: Literal["file", "database"], location: StoreLocation, store_path: Path
) -> TokenPlace:
    """Where the twin's tokens are: ``<store>.tokens.json`` (``tokens = "file"``), or the schema
    ``civictwin_tokens`` of a PostGIS twin's database (``tokens = "database"``, for replicas on several
    hosts); a twin not stored in PostGIS cannot keep them in a database (:class:`ConfigError`)."""
    if tokens == "file":
        return tokens_path(store_path)
    if location.dsn is None:
        raise ConfigError(
            'tokens = "database" needs a twin stored in PostGIS (the `store` of [twin])',
            field="server.tokens",
        )
    from civictwin.store.postgis_tokens import TokenDatabase

    return TokenDatabase(location.dsn)


def hash_token(token: str) -> str:
    """Hex SHA-256 of a token (the secret has 256 random bits, so no salt or slow hash is needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    path: TokenPlace,
    *,
    role: Role,
    datasets: Sequence[str] = (),
    name: str = "",
    lifetime: timedelta | None = None,
) -> IssuedToken:
    """Add a token to the file (or database) at ``path`` and return it with its secret (shown once,
    never stored).

    With ``lifetime`` the token expires that long after now; without, it never expires.
    """
    datasets = tuple(dict.fromkeys(d.strip() for d in datasets if d.strip()))
    bad = [d for d in datasets if not _DATASET_PATTERN.match(d)]
    if bad:
        raise TokenError(f"invalid dataset name(s): {', '.join(bad)}", field="--datasets")
    if role is Role.STEWARD and not datasets:
        raise TokenError("a steward token needs the datasets it stewards", field="--datasets")
    if datasets and role is not Role.STEWARD:
        raise TokenError(f"only steward tokens take datasets, not {role}", field="--datasets")
    with _editing(path) as records:
        token_id = _new_id({r.id for r in records})
        token = f"{TOKEN_PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
        record = TokenRecord(
            id=token_id,
            role=role,
            sha256=hash_token(token),
            created=_now(),
            name=name,
            datasets=datasets,
            expires=_now(lifetime) if lifetime is not None else None,
        )
        records.append(record)
    return IssuedToken(token=token, record=record)


def rotate_token(
    path: TokenPlace, token_id: str, *, grace: timedelta, lifetime: timedelta | None
) -> IssuedToken:
    """Issue a successor of token ``token_id`` (same role, datasets and name) without downtime.

    The old token keeps working for ``grace`` (so its holder can switch over), then expires; the new
    one lives for ``lifetime`` (None: never expires).
    """
    with _editing(path) as records:
        index = next((i for i, r in enumerate(records) if r.id == token_id), None)
        if index is None:
            raise TokenError(f"no token with id {token_id!r}", path=_named(path))
        old = records[index]
        if not old.active or old.expired():
            raise TokenError(f"token {token_id} is revoked or expired; create a new one instead")
        ends = _now(grace)
        if old.expires is None or old.expires > ends:
            records[index] = TokenRecord(**{**asdict(old), "expires": ends})
        token_id = _new_id({r.id for r in records})
        token = f"{TOKEN_PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
        successor = TokenRecord(
            id=token_id,
            role=old.role,
            sha256=hash_token(token),
            created=_now(),
            name=old.name,
            datasets=old.datasets,
            expires=_now(lifetime) if lifetime is not None else None,
        )
        records.append(successor)
    return IssuedToken(token=token, record=successor)


def revoke_token(path: TokenPlace, token_id: str) -> TokenRecord:
    """Mark a token revoked (kept in the file so audit lines stay attributable)."""
    with _editing(path) as records:
        for index, record in enumerate(records):
            if record.id == token_id:
                if not record.active:
                    raise TokenError(f"token {token_id} was already revoked on {record.revoked}")
                revoked = TokenRecord(**{**asdict(record), "revoked": _now()})
                records[index] = revoked
                return revoked
        raise TokenError(f"no token with id {token_id!r}", path=_named(path))  # nothing written


def list_tokens(path: TokenPlace) -> list[TokenRecord]:
    """Every token in the file (or database), active and revoked, in creation order."""
    if isinstance(path, Path):
        return _read(path)
    return _parsed(_answered(path.document)[1], where=path.path)


def token_uses(path: TokenPlace) -> dict[str, str]:
    """When each token of the file (or database) was last used (ISO 8601, UTC), as far as servers
    have noted it."""
    if isinstance(path, Path):
        return last_used(used_path(path))
    return {token_id: _iso(moment) for token_id, moment in _answered(path.uses).items()}


class TokenExpired(CivicTwinError):
    """A presented token was valid but its lifetime is over."""

    def __init__(self, record: TokenRecord) -> None:
        super().__init__(f"token {record.id} expired on {record.expires}")
        self.record = record


_USED_EVERY_S = 60.0
"""How often a server writes its tokens' last-used times to disk (seconds)."""


class TokenRegistry:
    """Verifies presented tokens against the token file, re-reading it when it changes on disk.

    An unreadable token file fails closed: :meth:`verify` raises :class:`TokenError` (no token is
    accepted) until the file changes, without re-reading it for every request. Each accepted
    token's last use is noted and written to ``<store>.tokens.used.json`` at most once a minute.
    """

    def __init__(self, path: TokenPlace, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._signature: tuple[int, ...] | None = None
        self._records: dict[str, TokenRecord] = {}
        self._failure: TokenError | None = None
        self._used: dict[str, float] = {}
        self._saved_at = 0.0

    def verify(self, token: str) -> TokenRecord | None:
        """The valid record matching ``token``; None when it is malformed, unknown or revoked.

        Raises :class:`TokenExpired` for a genuine token past its expiry, and :class:`TokenError`
        while the token file cannot be read.
        """
        match = _TOKEN_PATTERN.match(token)
        if match is None:
            return None
        record = self._current().get(match.group(1))
        if record is None or not record.active:
            return None
        if not hmac.compare_digest(record.sha256, hash_token(token)):
            return None
        if record.expired():
            raise TokenExpired(record)
        self._note_use(record.id)
        return record

    def _current(self) -> dict[str, TokenRecord]:
        if not isinstance(self.path, Path):
            return self._current_in_database(self.path)
        signature = _signature(self.path)
        with self._lock:
            if signature != self._signature:
                self._signature = signature
                try:
                    self._records, self._failure = {r.id: r for r in _read(self.path)}, None
                except TokenError as exc:
                    self._records, self._failure = {}, exc
            if self._failure is not None:
                raise self._failure
            return self._records

    def _current_in_database(self, database: TokenDatabase) -> dict[str, TokenRecord]:
        """The records, read again when the database's version changed (asked on every call). A
        database that does not answer refuses the call's token (the next call asks again); a document
        that does not parse refuses every token until it changes, as an unreadable file does."""
        version = _answered(database.version)
        with self._lock:
            if (version,) != self._signature:
                version, document = _answered(database.document)
                try:
                    self._records, self._failure = (
                        {r.id: r for r in _parsed(document, where=database.path)},
                        None,
                    )
                except TokenError as exc:
                    self._records, self._failure = {}, exc
                self._signature = (version,)
            if self._failure is not None:
                raise self._failure
            return self._records

    def _note_use(self, token_id: str) -> None:
        now = self._clock()
        with self._lock:
            self._used[token_id] = now
            if now - self._saved_at < _USED_EVERY_S:
                return
            self._saved_at = now
            used = dict(self._used)
        place = self.path
        if isinstance(place, Path):
            save_last_used(used_path(place), used)
        else:
            _answered(lambda: place.save_uses(used))


def used_path(tokens_file: Path) -> Path:
    """Where servers note when each token was last used (``<store>.tokens.used.json``)."""
    return tokens_file.with_name(tokens_file.name.removesuffix(".json") + ".used.json")


def last_used(path: Path) -> dict[str, str]:
    """When each token was last used (ISO 8601, UTC), as far as servers have written it down."""
    return {token_id: _iso(moment) for token_id, moment in _read_used(path).items()}


def save_last_used(path: Path, used: dict[str, float]) -> None:
    """Merge ``used`` (token id → Unix time) into the last-used file, keeping the later time of each.

    Under the file's lock: the workers of one server merge into it without losing each other's times.
    """
    with _locked(path):
        merged = _read_used(path)
        for token_id, moment in used.items():
            merged[token_id] = max(moment, merged.get(token_id, 0.0))
        durable.write_text(path, json.dumps(merged, indent=1, sort_keys=True), mode=0o600)


def _read_used(path: Path) -> dict[str, float]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(k): float(v) for k, v in data.items()}
    except (OSError, ValueError, AttributeError):
        return {}


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


def _signature(path: Path) -> tuple[int, ...] | None:
    """What changes when the file is replaced, edited or has its permissions changed."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino)


def _read(path: Path) -> list[TokenRecord]:
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"unreadable token file ({type(exc).__name__}: {exc})", path=path) from None
    return _parsed(text, where=path)


def _parsed(text: str, *, where: Path | str) -> list[TokenRecord]:
    """The records of a token document (the file's JSON, also what a token database holds)."""
    try:
        data = json.loads(text)
        return [TokenRecord.from_json(item) for item in data["tokens"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise TokenError(f"unreadable token file ({type(exc).__name__}: {exc})", path=where) from None


def _document(records: list[TokenRecord]) -> str:
    return json.dumps({"version": _FILE_VERSION, "tokens": [r.as_json() for r in records]}, indent=2)


def _write(path: Path, records: list[TokenRecord]) -> None:
    """Replace the token file atomically and durably; readers see the old or the new file, never half."""
    durable.write_text(path, _document(records), mode=0o600)


@contextmanager
def _editing(path: TokenPlace) -> Iterator[list[TokenRecord]]:
    """The records of the file (or database), one writer at a time; what the block leaves in the
    list is written back when it ends without an exception (nothing is written otherwise)."""
    if isinstance(path, Path):
        with _locked(path):
            records = _read(path)
            yield records
            _write(path, records)
        return
    with _answered_block(), path.editing() as held:
        records = _parsed(held[0], where=path.path)
        yield records
        held[0] = _document(records)


def _answered(ask: Callable[[], _T]) -> _T:
    """``ask()``, a database that does not answer being a :class:`TokenError` (tokens refused)."""
    with _answered_block():
        return ask()


@contextmanager
def _answered_block() -> Iterator[None]:
    try:
        yield
    except StoreError as exc:
        raise TokenError(exc.message, path=exc.path) from None


def _named(path: TokenPlace) -> Path | str:
    """How errors name the place of the tokens (the file, or the database URI: no password)."""
    return path if isinstance(path, Path) else path.path


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``<file>.lock`` so two CLI calls never lose each other's token."""
    with exclusive(path.with_name(path.name + ".lock"), wait=True):
        yield


def _new_id(taken: set[str]) -> str:
    while True:
        candidate = secrets.token_hex(4)
        if candidate not in taken:
            return candidate


def _now(later: timedelta | None = None) -> str:
    return (datetime.now(UTC) + (later or timedelta())).isoformat(timespec="seconds")


def _instant(text: str) -> str:
    """An ISO 8601 time from the token file, checked and normalised to UTC (ValueError otherwise)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"time without a time zone: {text!r}")
    return moment.astimezone(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Principal:
    """Who is asking: a verified token holder, or anonymous (``token`` is None)."""

    token: TokenRecord | None = None
    stewarded: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, record: TokenRecord | None) -> Principal:
        """The principal a verified token (or no token) stands for."""
        if record is None:
            return ANONYMOUS
        return cls(token=record, stewarded=frozenset(record.datasets))

    @property
    def id(self) -> str:
        """The audit name: the token id, or ``anonymous``."""
        return self.token.id if self.token else "anonymous"

    @property
    def role(self) -> Role | None:
        """The token's role (None for anonymous)."""
        return self.token.role if self.token else None


ANONYMOUS = Principal()
