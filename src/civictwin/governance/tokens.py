"""API tokens: created and revoked by the CLI, verified by the server, stored only as SHA-256 hashes.

A token reads ``ct_<id>_<secret>``: ``id`` (8 hex digits) names the record, ``secret`` is 32 random
bytes (URL-safe base64). The token file keeps the id, the role, the stewarded datasets and the
SHA-256 of the whole token, never the token itself, so a leaked file grants nothing.

Why a JSON file and not records in the DuckDB store: the server opens the store read-only and DuckDB
lets no other process write to it meanwhile, yet a token must be creatable and revocable while the
server runs. The file is rewritten atomically (temporary file + rename, under an exclusive lock for
concurrent CLI calls); :class:`TokenRegistry` re-reads it whenever its modification time, size or
inode changes, so a running server honours a new or revoked token on its next request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from civictwin.errors import CivicTwinError
from civictwin.locking import exclusive

TOKEN_PREFIX = "ct"
_TOKEN_PATTERN = re.compile(r"^ct_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")
_DATASET_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_FILE_VERSION = 1


class TokenError(CivicTwinError):
    """A token file is unreadable, or a token command got invalid arguments."""


class Role(StrEnum):
    """What a token holder is: admins read everything, stewards their datasets, the rest public+internal."""

    ADMIN = "admin"
    STEWARD = "steward"
    ANALYST = "analyst"
    VIEWER = "viewer"


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

    @property
    def active(self) -> bool:
        """Whether the token still grants access."""
        return self.revoked is None

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
        )


@dataclass(frozen=True)
class IssuedToken:
    """A freshly created token: the only moment the secret exists outside its holder's hands."""

    token: str
    record: TokenRecord


def tokens_path(store_path: Path) -> Path:
    """The token file of the twin whose store is ``store_path`` (``<store>.tokens.json``)."""
    return store_path.with_name(store_path.stem + ".tokens.json")


def hash_token(token: str) -> str:
    """Hex SHA-256 of a token (the secret has 256 random bits, so no salt or slow hash is needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(path: Path, *, role: Role, datasets: Sequence[str] = (), name: str = "") -> IssuedToken:
    """Add a token to the file at ``path`` and return it with its secret (shown once, never stored)."""
    datasets = tuple(dict.fromkeys(d.strip() for d in datasets if d.strip()))
    bad = [d for d in datasets if not _DATASET_PATTERN.match(d)]
    if bad:
        raise TokenError(f"invalid dataset name(s): {', '.join(bad)}", field="--datasets")
    if role is Role.STEWARD and not datasets:
        raise TokenError("a steward token needs the datasets it stewards", field="--datasets")
    if datasets and role is not Role.STEWARD:
        raise TokenError(f"only steward tokens take datasets, not {role}", field="--datasets")
    with _locked(path):
        records = _read(path)
        token_id = _new_id({r.id for r in records})
        token = f"{TOKEN_PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
        record = TokenRecord(
            id=token_id,
            role=role,
            sha256=hash_token(token),
            created=_now(),
            name=name,
            datasets=datasets,
        )
        _write(path, [*records, record])
    return IssuedToken(token=token, record=record)


def revoke_token(path: Path, token_id: str) -> TokenRecord:
    """Mark a token revoked (kept in the file so audit lines stay attributable)."""
    with _locked(path):
        records = _read(path)
        for index, record in enumerate(records):
            if record.id == token_id:
                if not record.active:
                    raise TokenError(f"token {token_id} was already revoked on {record.revoked}")
                revoked = TokenRecord(**{**asdict(record), "revoked": _now()})
                records[index] = revoked
                _write(path, records)
                return revoked
    raise TokenError(f"no token with id {token_id!r}", path=path)


def list_tokens(path: Path) -> list[TokenRecord]:
    """Every token in the file, active and revoked, in creation order."""
    return _read(path)


class TokenRegistry:
    """Verifies presented tokens against the token file, re-reading it when it changes on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._records: dict[str, TokenRecord] = {}

    def verify(self, token: str) -> TokenRecord | None:
        """The active record matching ``token``, or None when it is malformed, unknown or revoked."""
        match = _TOKEN_PATTERN.match(token)
        if match is None:
            return None
        record = self._current().get(match.group(1))
        if record is None or not record.active:
            return None
        if not hmac.compare_digest(record.sha256, hash_token(token)):
            return None
        return record

    def _current(self) -> dict[str, TokenRecord]:
        signature = _signature(self.path)
        with self._lock:
            if signature != self._signature:
                self._records = {r.id: r for r in _read(self.path)}
                self._signature = signature
            return self._records


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def _read(path: Path) -> list[TokenRecord]:
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [TokenRecord.from_json(item) for item in data["tokens"]]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise TokenError(f"unreadable token file ({type(exc).__name__}: {exc})", path=path) from None


def _write(path: Path, records: list[TokenRecord]) -> None:
    """Replace the token file atomically; readers see either the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({"version": _FILE_VERSION, "tokens": [r.as_json() for r in records]}, indent=2)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
