"""The security log: the few events an operator alerts on, apart from the flood of ordinary requests.

``<store>.security.jsonl`` is a chained log like the audit log (same rotation, retention and
verification) holding: bursts of failed authentications from one client, access denials (a token
or anonymous caller asking for a dataset it may not read), an unreadable token file, token changes
(created, rotated, revoked) and rebuilds of the twin. The server and the CLI both append to it; each
record is one JSON object with ``time`` and ``event`` and the event's own members.
"""

from __future__ import annotations

import getpass
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from civictwin.governance.chain import ChainedLog, RotationPolicy


def security_path(store_path: Path) -> Path:
    """The security log of the twin whose store is ``store_path``."""
    return store_path.with_name(store_path.stem + ".security.jsonl")


class SecurityLog:
    """Appends security events to the chained security log."""

    def __init__(self, path: Path, *, policy: RotationPolicy | None = None) -> None:
        self.path = path
        self.log = ChainedLog(path, policy=policy)

    def event(self, event: str, **details: Any) -> None:
        """Record ``event`` (e.g. ``"token created"``) with its details."""
        self.log.append(
            {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event, **details}
        )

    def request_reopen(self) -> None:
        """Reopen the file before the next event (for SIGHUP after an external rotation)."""
        self.log.request_reopen()

    def close(self) -> None:
        """Close the file."""
        self.log.close()


def record_event(store_path: Path, event: str, **details: Any) -> None:
    """Append one event from a command (token change, rebuild), naming the operating-system user."""
    log = SecurityLog(security_path(store_path))
    try:
        log.event(event, by=_user(), **details)
    finally:
        log.close()


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name for this uid (containers)
        return "unknown"


class FailureBursts:
    """Failed authentications per client in a sliding window: reports a client reaching the threshold.

    A burst is reported once per window per client (when its count reaches ``threshold``), so a
    password-spraying client produces one alert a minute, not one line per attempt.
    """

    def __init__(
        self, *, threshold: int = 10, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._reported: dict[str, float] = {}
        self._lock = threading.Lock()

    def failed(self, client: str) -> int | None:
        """Count one failure of ``client``; the count in the window when a burst is to be reported."""
        now = self._clock()
        with self._lock:
            times = self._failures.setdefault(client, deque())
            times.append(now)
            while times and now - times[0] > self.window_s:
                times.popleft()
            if len(self._failures) > 10_000:
                self._forget(now)
            if (
                len(times) < self.threshold
                or now - self._reported.get(client, -self.window_s) < self.window_s
            ):
                return None
            self._reported[client] = now
            return len(times)

    def _forget(self, now: float) -> None:
        """Drop clients with no failure in the window."""
        self._failures = {c: t for c, t in self._failures.items() if t and now - t[-1] <= self.window_s}
        self._reported = {c: t for c, t in self._reported.items() if now - t < self.window_s}
