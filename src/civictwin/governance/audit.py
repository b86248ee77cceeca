"""The request audit log: one chained JSON line per request saying who asked what, and what they got.

The file (``<store>.audit.jsonl``) is a :class:`~civictwin.governance.chain.ChainedLog`: tamper-evident
(``civictwin audit verify``), rotated by size and age, kept for the retention period, reopened after an
external rotation. Client addresses are personal data (GDPR): by default they are stored truncated to
their network (IPv4 /24, IPv6 /48), or as a keyed hash (stable per twin, so one client's requests can
still be told apart), and only in full when the twin's configuration says so.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from civictwin import durable
from civictwin.governance.chain import ChainedLog, RotationPolicy, chain_files

_MAX_PATH = 2_048
"""Longest request path kept in a record (characters); the rest is cut."""


def audit_path(store_path: Path) -> Path:
    """The audit log of the twin whose store is ``store_path``."""
    return store_path.with_name(store_path.stem + ".audit.jsonl")


class ClientAddresses(StrEnum):
    """How client addresses are written to the logs."""

    TRUNCATED = "truncated"
    HASHED = "hashed"
    FULL = "full"


@dataclass(frozen=True)
class AuditEntry:
    """One request: who (token id or ``anonymous``), what (method and path), outcome (HTTP status).

    ``edge`` marks a request the HTTP server refused before the application saw it (a malformed
    request line or header); ``detail`` then says why.
    """

    time: str
    who: str
    client: str
    method: str
    path: str
    query: str
    status: int
    duration_ms: float
    prev: str
    hash: str
    edge: bool = False
    detail: str = ""
    worker: int | None = None
    """The process id of the server worker that answered (only when several serve the twin)."""


class AddressPseudonymiser:
    """Client addresses as the configured mode writes them (see :class:`ClientAddresses`)."""

    def __init__(self, mode: ClientAddresses, key_path: Path) -> None:
        self.mode = mode
        self._key = _key(key_path) if mode is ClientAddresses.HASHED else b""

    def __call__(self, address: str) -> str:
        if self.mode is ClientAddresses.FULL:
            return address
        if self.mode is ClientAddresses.HASHED:
            return "h:" + hmac.new(self._key, address.encode(), hashlib.sha256).hexdigest()[:16]
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return address  # not an address ("unknown", a test client's name): nothing personal
        prefix = 24 if ip.version == 4 else 48
        return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def _key(path: Path) -> bytes:
    """The twin's secret for hashing addresses (created once, readable by its owner only)."""
    if not path.exists():
        durable.write_bytes(path, secrets.token_bytes(32), mode=0o600)
    return path.read_bytes()


class AuditLog:
    """Appends :class:`AuditEntry` records to a chained, rotated file; safe to call from many threads."""

    def __init__(
        self,
        path: Path,
        *,
        policy: RotationPolicy | None = None,
        addresses: ClientAddresses = ClientAddresses.TRUNCATED,
        worker: int | None = None,
    ) -> None:
        self.path = path
        self.worker = worker
        self.log = ChainedLog(path, policy=policy)
        self.pseudonymise = AddressPseudonymiser(addresses, path.with_name(path.name + ".key"))

    def record(
        self,
        *,
        who: str,
        client: str,
        method: str,
        path: str,
        query: str,
        status: int,
        duration_ms: float,
        edge: bool = False,
        detail: str = "",
    ) -> None:
        """Write one entry (the path cut to 2,048 characters)."""
        fields: dict[str, object] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "who": who,
            "client": self.pseudonymise(client),
            "method": method,
            "path": path[:_MAX_PATH],
            "query": query,
            "status": status,
            "duration_ms": round(duration_ms, 3),
        }
        if edge:
            fields |= {"edge": True, "detail": detail}
        if self.worker is not None:
            fields["worker"] = self.worker
        self.log.append(fields)

    def request_reopen(self) -> None:
        """Reopen the file before the next record (for SIGHUP after an external rotation)."""
        self.log.request_reopen()

    def close(self) -> None:
        """Close the file."""
        self.log.close()


def read_audit(path: Path) -> list[AuditEntry]:
    """Every entry of an audit log (rotated files included), oldest first."""
    entries: list[AuditEntry] = []
    for file in chain_files(path):
        with open(file, encoding="utf-8") as handle:
            entries.extend(AuditEntry(**json.loads(line)) for line in handle if line.strip())
    return entries
