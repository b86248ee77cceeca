"""In-process protection: a token-bucket rate limit per client and request size limits.

Each client (a token id, or the IP address of anonymous callers) has a bucket of ``burst`` requests
refilled at ``rate`` per second; an empty bucket answers 429 with ``Retry-After``. Sizes are checked
before any work: a declared body over the limit is refused at once (413), a streamed body is counted
as it arrives, and an over-long URL is refused (414).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]

_MAX_CLIENTS = 10_000
"""Buckets kept before idle (full) ones are forgotten."""


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by client; thread-safe, monotonic-clock based."""

    def __init__(self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, client: str) -> float:
        """Take one request from ``client``'s bucket: 0 when allowed, else seconds until allowed."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is None:
                if len(self._buckets) >= _MAX_CLIENTS:
                    self._forget_idle(now)
                bucket = self._buckets[client] = _Bucket(tokens=float(self.burst), updated=now)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        """Drop buckets that have refilled completely: forgetting them changes nothing."""
        full_after = self.burst / self.rate
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.updated < full_after}


def retry_after(seconds: float) -> str:
    """A ``Retry-After`` header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


class BodyTooLarge(HTTPException):
    """A streamed request body went past the size limit (an HTTP error, so FastAPI passes it on)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds {limit} bytes")


def declared_body_too_large(headers: list[tuple[bytes, bytes]], limit: int) -> bool:
    """Whether ``Content-Length`` announces more than ``limit`` bytes (or is not a number)."""
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value) > limit
            except ValueError:
                return True
    return False


def url_too_long(scope: MutableMapping[str, Any], limit: int) -> bool:
    """Whether the request's raw path plus query string exceeds ``limit`` bytes."""
    path = scope.get("raw_path") or str(scope.get("path", "")).encode()
    return len(path) + len(scope.get("query_string", b"")) > limit


def counting_receive(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises :class:`BodyTooLarge` once more than ``limit`` body bytes arrived."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message.get("type") == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return wrapped
