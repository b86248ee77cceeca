"""Tamper-evident JSON-lines logs: each record chained to the previous one's hash; rotated, reopened, verified.

Every line is a JSON object ending in ``"prev"`` (the previous record's hash) and ``"hash"`` (SHA-256
of the line's own text up to the hash member), so deleting, inserting, reordering or altering a line
breaks the chain at that point (:func:`verify_chain`). The chain runs on across files: a rotated file
is renamed ``<stem>.<UTC time>.jsonl`` and the new file's first record continues from its last hash.

Writers append one whole line per ``write`` under an exclusive lock on the file (portalocker), and
before each append check that the path still names the file they hold open: a log moved away by an
external rotation (``mv``) or a second process is reopened at once; :meth:`ChainedLog.request_reopen`
(called on SIGHUP) forces it. Rotation happens by size and by age; rotated files older than the
retention period are deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import portalocker

from civictwin import durable

GENESIS = "0" * 64
"""The ``prev`` of the very first record of a chain."""
_HASH_SUFFIX = re.compile(rb',"hash":"([0-9a-f]{64})"\}$')
_PREV = re.compile(rb',"prev":"([0-9a-f]{64})"$')
_TAIL_BYTES = 65_536
_ROTATED_TIME = "%Y%m%dT%H%M%S.%fZ"


@dataclass(frozen=True)
class RotationPolicy:
    """When a log is rotated and how long rotated files are kept."""

    max_bytes: int = 100 * 1_048_576
    """Rotate once the current file reaches this size (bytes)."""
    max_age_s: float = 86_400.0
    """Rotate once the current file's first record is this old (seconds)."""
    retention_days: float = 180.0
    """Delete rotated files older than this (days); the current file is never deleted."""


def rotated_files(path: Path) -> list[Path]:
    """The rotated files of the log at ``path``, oldest first."""
    stem = path.name.removesuffix(".jsonl")
    pattern = re.compile(re.escape(stem) + r"\.(\d{8}T\d{6}\.\d{6}Z)\.jsonl$")
    found = [p for p in path.parent.glob(f"{stem}.*.jsonl") if pattern.match(p.name)]
    return sorted(found, key=lambda p: p.name)


def chain_files(path: Path) -> list[Path]:
    """Every file of the log at ``path`` in chain order: the rotated ones, then the current one."""
    return [*rotated_files(path), *([path] if path.exists() else [])]


def seal(fields: Mapping[str, Any], prev: str) -> tuple[bytes, str]:
    """The line (with newline) for ``fields`` chained to ``prev``, and its hash."""
    body = json.dumps({**fields, "prev": prev}, ensure_ascii=False, separators=(",", ":"))[:-1]
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    return f'{body},"hash":"{digest}"}}\n'.encode(), digest


class ChainedLog:
    """One chained log file, appended to from many threads (and processes); rotated by ``policy``."""

    def __init__(
        self, path: Path, *, policy: RotationPolicy | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.policy = policy or RotationPolicy()
        self._clock = clock
        self._lock = threading.Lock()
        self._handle: BinaryIO | None = None
        self._reopen = False
        self._size = 0
        self._last = GENESIS
        self._started: float | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._open()
            previous = rotated_files(path)
            if self._size == 0 and previous:
                self._last = _last_hash(previous[-1]) or GENESIS

    def request_reopen(self) -> None:
        """Reopen the file before the next record (safe to call from a signal handler)."""
        self._reopen = True

    def append(self, fields: Mapping[str, Any]) -> str:
        """Write one record (``fields`` plus ``prev`` and ``hash``) and return its hash."""
        with self._lock:
            handle = self._current()
            portalocker.lock(handle, portalocker.LockFlags.EXCLUSIVE)
            try:
                handle = self._still_ours(handle)
                self._catch_up(handle)
                if self._due(self._clock()):
                    handle = self._rotate(handle)
                line, digest = seal(fields, self._last)
                handle.write(line)
                self._last, self._size = digest, self._size + len(line)
                if self._started is None:
                    self._started = self._clock()
            finally:
                portalocker.unlock(handle)
            return digest

    def close(self) -> None:
        """Close the file (a later record opens it again)."""
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None

    # ------------------------------------------------------------------------------------------- internals

    def _open(self) -> BinaryIO:
        handle = open(self.path, "ab", buffering=0)  # noqa: SIM115 (kept open between records)
        self._handle = handle
        self._size = os.fstat(handle.fileno()).st_size
        self._started = _first_time(self.path) if self._size else None
        if self._size:
            self._last = _last_hash(self.path) or self._last
        return handle

    def _current(self) -> BinaryIO:
        if self._handle is None or self._reopen:
            self._reopen = False
            if self._handle is not None:
                self._handle.close()
            return self._open()
        return self._handle

    def _still_ours(self, handle: BinaryIO) -> BinaryIO:
        """The locked handle, or a fresh locked one when the path now names another file (or none)."""
        try:
            same = os.path.samestat(os.stat(self.path), os.fstat(handle.fileno()))
        except FileNotFoundError:
            same = False
        if same:
            return handle
        portalocker.unlock(handle)
        handle.close()
        fresh = self._open()
        portalocker.lock(fresh, portalocker.LockFlags.EXCLUSIVE)
        return fresh

    def _catch_up(self, handle: BinaryIO) -> None:
        """Pick up the chain's head when another process appended (or the file was truncated)."""
        size = os.fstat(handle.fileno()).st_size
        if size != self._size:
            self._size = size
            if size:
                self._last = _last_hash(self.path) or self._last
            self._started = _first_time(self.path) if size else None

    def _due(self, now: float) -> bool:
        if self._size == 0:
            return False
        too_old = self._started is not None and now - self._started >= self.policy.max_age_s
        return self._size >= self.policy.max_bytes or too_old

    def _rotate(self, handle: BinaryIO) -> BinaryIO:
        """Rename the current file aside, start a new one, and apply the retention period."""
        stamp = datetime.fromtimestamp(self._clock(), UTC).strftime(_ROTATED_TIME)
        target = self.path.with_name(f"{self.path.name.removesuffix('.jsonl')}.{stamp}.jsonl")
        durable.replace(self.path, target)
        portalocker.unlock(handle)
        handle.close()
        fresh = self._open()  # empty: the chain's head stays the rotated file's last hash
        portalocker.lock(fresh, portalocker.LockFlags.EXCLUSIVE)
        self._expire()
        return fresh

    def _expire(self) -> None:
        cutoff = self._clock() - self.policy.retention_days * 86_400
        for old in rotated_files(self.path):
            stamp = old.name.removesuffix(".jsonl").rsplit(".", 2)[-2:]
            rotated = datetime.strptime(".".join(stamp), _ROTATED_TIME).replace(tzinfo=UTC).timestamp()
            if rotated < cutoff:
                old.unlink(missing_ok=True)


def _last_hash(path: Path) -> str | None:
    """The hash of the last complete record of ``path`` (None when it has none)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        end = handle.tell()
        handle.seek(max(0, end - _TAIL_BYTES))
        lines = handle.read().rstrip(b"\n").split(b"\n")
    for line in reversed(lines):
        match = _HASH_SUFFIX.search(line)
        if match:
            return match.group(1).decode()
    return None


def _first_time(path: Path) -> float | None:
    """When the first record of ``path`` was written (its ``time`` member), if readable."""
    try:
        with open(path, "rb") as handle:
            first = json.loads(handle.readline())
        return datetime.fromisoformat(first["time"]).timestamp()
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ---------------------------------------------------------------------------------------------- verify


@dataclass
class ChainReport:
    """What :func:`verify_chain` found: records checked, problems (empty when intact), the head hash."""

    files: list[Path]
    records: int = 0
    problems: list[str] = field(default_factory=list)
    head: str = GENESIS
    starts_after: str | None = None
    """The ``prev`` of the first kept record when older records were removed (retention), else None."""

    @property
    def intact(self) -> bool:
        """Whether every record is unaltered and follows the one before."""
        return not self.problems


def verify_chain(files: Sequence[Path]) -> ChainReport:
    """Check every record of ``files`` (in chain order): its own hash, and that it follows the previous.

    The first record of the first file may continue a chain whose start was deleted by the retention
    period; that is reported in :attr:`ChainReport.starts_after`, not as a problem.
    """
    report = ChainReport(files=list(files))
    expected: str | None = None
    for path in files:
        with open(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                expected = _check_line(raw.rstrip(b"\n"), f"{path}: line {number}", expected, report)
    return report


def _check_line(line: bytes, where: str, expected: str | None, report: ChainReport) -> str | None:
    """Check one line against the hash expected before it; return the hash the next should follow."""
    match = _HASH_SUFFIX.search(line)
    body = line[: match.start()] if match else b""
    prev = _PREV.search(body) if match else None
    if match is None or prev is None:
        report.problems.append(f"{where}: not a chained record (damaged or inserted)")
        return expected
    report.records += 1
    digest = match.group(1).decode()
    if hashlib.sha256(body).hexdigest() != digest:
        report.problems.append(f"{where}: altered (its content no longer matches its hash)")
    claimed = prev.group(1).decode()
    if expected is None:
        report.starts_after = None if claimed == GENESIS else claimed
    elif claimed != expected:
        report.problems.append(
            f"{where}: does not follow the record before it (a record was removed or moved)"
        )
    report.head = digest
    return digest
