"""How many contributions (or proposals) a source may make to a consultation: an hourly allowance.

A source is its address under a keyed hash (never the address). One worker keeps the buckets in
memory; several workers of one server (``serve --workers``) keep them in a file of their own beside
the store, under the server's shared key, so the allowance is the configured one in all, not one per
worker; replicas with ``shared_limits = "database"`` keep them in the twin's PostGIS
(:mod:`civictwin.api.replica_state`). Refusals are counted the same way, to report a flood once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from civictwin.api.limits import RateLimiter
from civictwin.api.replica_state import (
    DatabaseFailureBursts,
    DatabaseRateLimiter,
    database_for_limits,
    replica_key,
)
from civictwin.api.settings import ServerSettings
from civictwin.api.shared_state import SharedFailureBursts, SharedRateLimiter
from civictwin.governance.security import FailureBursts
from civictwin.store.opening import StoreLocation

HOUR_S = 3600.0
"""The allowance refills evenly over an hour (seconds)."""


def flood_limits_path(store_path: Path) -> Path:
    """The workers' shared contribution buckets (``<store>.contribution.limits.sqlite``): a file apart
    from the request limits, whose sweeps forget buckets idle for seconds, not for an hour; never
    archived by a backup (its name ends like the request limits')."""
    return store_path.with_name(store_path.stem + ".contribution.limits.sqlite")


@dataclass(frozen=True)
class Charge:
    """One contribution or proposal counted against its source."""

    wait_s: float
    """0 when allowed; otherwise seconds until the source may contribute again."""
    source: str
    """The source's keyed hash (32 hex digits): what a security event may name."""
    burst: int | None
    """Refusals in the last minute when they make a flood to report (once per window), else None."""


class FloodGuard:
    """Charges contributions per source and consultation, in memory or shared by a server's workers."""

    def __init__(
        self,
        *,
        key: bytes,
        shared: Path | None = None,
        database: str | None = None,
        kind: str = "contributions",
    ) -> None:
        self._key = key
        self.kind = kind
        """What is counted (``contributions``, ``proposals``): each kind has allowances of its own."""
        self._shared = shared
        self._database = database
        self._limiters: dict[tuple[str, int], RateLimiter] = {}
        self._lock = threading.Lock()
        self._floods: FailureBursts
        if database is not None:
            self._floods = DatabaseFailureBursts(database, key=key, scope=f"{kind} floods")
        elif shared is not None:
            self._floods = SharedFailureBursts(shared, key=key)
        else:
            self._floods = FailureBursts()

    @classmethod
    def for_server(
        cls,
        settings: ServerSettings,
        store_path: Path,
        location: StoreLocation,
        *,
        kind: str = "contributions",
    ) -> FloodGuard:
        """In memory for one worker (a random key per process); shared through a file by several; in the
        twin's database for every replica (``shared_limits = "database"``)."""
        database = database_for_limits(settings, location)
        if database is not None:
            return cls(key=replica_key(), database=database, kind=kind)
        if settings.workers == 1:
            return cls(key=secrets.token_bytes(32), kind=kind)
        return cls(key=settings.limits_key, shared=flood_limits_path(store_path), kind=kind)

    def charge(self, consultation: str, client: str, *, per_hour: int) -> Charge:
        """Count one contribution from ``client`` (an address) to ``consultation``, whose sources may
        each make ``per_hour`` contributions in a burst, refilled evenly over the hour."""
        source = hmac.new(self._key, client.encode(), hashlib.sha256).hexdigest()[:32]
        wait = self._limiter(consultation, per_hour).acquire(f"{self.kind}\n{consultation}\n{source}")
        burst = self._floods.failed(source) if wait > 0 else None
        return Charge(wait_s=wait, source=source, burst=burst)

    def _limiter(self, consultation: str, per_hour: int) -> RateLimiter:
        with self._lock:  # one bucket set per consultation and allowance, even when requests race
            found = self._limiters.get((consultation, per_hour))
            if found is None:
                rate = per_hour / HOUR_S
                found = self._new_limiter(f"{self.kind}\n{consultation}", rate=rate, burst=per_hour)
                self._limiters[(consultation, per_hour)] = found
            return found

    def _new_limiter(self, scope: str, *, rate: float, burst: int) -> RateLimiter:
        if self._database is not None:
            return DatabaseRateLimiter(self._database, key=self._key, scope=scope, rate=rate, burst=burst)
        if self._shared is not None:
            return SharedRateLimiter(self._shared, key=self._key, rate=rate, burst=burst)
        return RateLimiter(rate=rate, burst=burst)
