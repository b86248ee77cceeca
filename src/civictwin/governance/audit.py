"""The request audit log: one JSON line per request saying who asked what, and what they got.

The file (``<store>.audit.jsonl``) is append-only and line-buffered: each line is written whole under
a lock, so concurrent requests never interleave and a crash loses at most the request in flight.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO


def audit_path(store_path: Path) -> Path:
    """The audit log of the twin whose store is ``store_path``."""
    return store_path.with_name(store_path.stem + ".audit.jsonl")


@dataclass(frozen=True)
class AuditEntry:
    """One request: who (token id or ``anonymous``), what (method and path), outcome (HTTP status)."""

    time: str
    who: str
    client: str
    method: str
    path: str
    query: str
    status: int
    duration_ms: float


class AuditLog:
    """Appends :class:`AuditEntry` lines to a file; safe to call from many threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: TextIO = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 (lives with the log)
        self._lock = threading.Lock()

    def record(
        self, *, who: str, client: str, method: str, path: str, query: str, status: int, duration_ms: float
    ) -> AuditEntry:
        """Write one entry and return it."""
        entry = AuditEntry(
            time=datetime.now(UTC).isoformat(timespec="milliseconds"),
            who=who,
            client=client,
            method=method,
            path=path,
            query=query,
            status=status,
            duration_ms=round(duration_ms, 3),
        )
        line = json.dumps(asdict(entry), ensure_ascii=False)
        with self._lock:
            self._handle.write(line + "\n")
        return entry

    def close(self) -> None:
        """Flush and close the file."""
        with self._lock:
            self._handle.close()


def read_audit(path: Path) -> list[AuditEntry]:
    """Every entry of an audit log, oldest first."""
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as handle:
        return [AuditEntry(**json.loads(line)) for line in handle if line.strip()]
