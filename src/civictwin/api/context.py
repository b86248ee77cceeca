"""The published twin as the routers see it: its layers, readers, access policy and metadata.

Routers never open the store: they get :class:`PublishedTwin` from the app state, and ask it which
layers the caller may see. A layer the caller may not read is indistinguishable from one that does
not exist (404 everywhere: listings, items, tiles). A rebuild replaces the store (atomically) and
with it the store's version marker; :class:`TwinHolder` notices and serves the new twin from the
next request on, without a restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from civictwin.api.problems import not_found
from civictwin.api.security import current_principal
from civictwin.api.settings import ServerSettings
from civictwin.errors import CivicTwinError
from civictwin.governance.access import AccessPolicy
from civictwin.store.base import Store
from civictwin.store.features import FeatureSource, LayerInfo
from civictwin.store.opening import StoreLocation, VersionProbe
from civictwin.store.tiles import TileSource


@dataclass
class PublishedTwin:
    """Everything the API serves from one twin, opened once at start-up."""

    twin_dir: Path
    store_path: Path
    """The twin's store file, or (PostGIS) the name its files beside the twin are named after."""
    location: StoreLocation
    title: str
    store: Store
    features: FeatureSource
    tiles: TileSource
    policy: AccessPolicy
    catalog: dict[str, dict[str, Any]]
    settings: ServerSettings
    version: str
    """Identifies the data served (the store's version marker); part of every tile cache key."""

    @property
    def built_at(self) -> str | None:
        """When the served store's build started (ISO 8601), if recorded."""
        value = self.store.records("meta").get("twin", {}).get("built_at")
        return None if value is None else str(value)

    def metadata(self, layer: str) -> dict[str, Any]:
        """The layer's catalogue record (empty when it has none)."""
        return self.catalog.get(layer, {})

    def dem_table(self) -> str | None:
        """The table the twin's ``dem`` source was read into (None without one)."""
        return next(
            (name for name, record in sorted(self.catalog.items()) if record.get("kind") == "dem"), None
        )


logger = logging.getLogger(__name__)


class TwinHolder:
    """The twin being served, reopened when a rebuild has replaced its store.

    Each request checks the store's version marker (:class:`VersionProbe`: for a file, one ``stat``
    unless it changed); the first request after a rebuild opens the new store, while requests already
    under way finish on the old one. A store that cannot be opened (a broken file put in place by
    hand) is logged once and the previous twin stays served.

    Requests hold the twin they were served from (:meth:`acquire`, :meth:`release`); a replaced twin's
    store is closed when its last request has finished, so a server that outlives many rebuilds keeps
    one store open, not one per rebuild (a replaced DuckDB file stays on disk while it is open).
    """

    def __init__(self, twin: PublishedTwin, reopen: Callable[[], PublishedTwin]) -> None:
        self._twin = twin
        self._reopen = reopen
        self._probe = VersionProbe(twin.location)
        self._lock = threading.Lock()
        self._refused: str | None = None
        self._holders: dict[int, int] = {}
        """Requests under way per twin (by ``id``); a twin absent here has none."""
        self._retired: dict[int, PublishedTwin] = {}
        """Replaced twins whose stores close when their last request ends."""

    def acquire(self) -> PublishedTwin:
        """The twin to serve a request from, held until :meth:`release` (its store stays open)."""
        twin = self.current()
        with self._lock:
            twin = self._twin  # the twin current() settled on, or a newer one
            self._holders[id(twin)] = self._holders.get(id(twin), 0) + 1
        return twin

    def release(self, twin: PublishedTwin) -> None:
        """A request served from ``twin`` has finished; close the twin's store if it was replaced."""
        with self._lock:
            left = self._holders.get(id(twin), 0) - 1
            if left > 0:
                self._holders[id(twin)] = left
                return
            self._holders.pop(id(twin), None)
            retired = self._retired.pop(id(twin), None)
        if retired is not None:
            _close_quietly(retired)

    def current(self) -> PublishedTwin:
        """The twin to serve now."""
        twin = self._twin
        version = self._probe.current()
        if version is None or version in (twin.version, self._refused):
            return twin
        with self._lock:
            if self._twin is twin:  # not reloaded by another request meanwhile
                self._reload(version)
            return self._twin

    def readiness(self) -> tuple[bool, str]:
        """Whether the twin's store can be served now, and why not.

        Not ready while the store is missing, or while the one now in its place cannot be opened (the
        previous twin is still answered meanwhile, but it is no longer the twin in the store).
        """
        twin = self.current()
        version = self._probe.current()
        if version is None:
            return False, f"the store {_name(twin.location)} is missing"
        if version == self._refused:
            # the reason (paths, the database's address) goes to the log, not to whoever asks
            return (
                False,
                f"the store {_name(twin.location)} cannot be opened (the reason is in the server's log)",
            )
        return True, f"serving the store built at {twin.built_at or 'an unknown time'}"

    def _reload(self, version: str) -> None:
        """Open the store now in place (called holding the lock); retire the twin it replaces."""
        previous = self._twin
        try:
            self._twin = self._reopen()
        except Exception as exc:  # a server keeps serving what it has: the problem goes to the log
            self._refused = version
            logger.warning(
                "the twin store changed but cannot be opened (%s); still serving the previous one",
                exc,
                exc_info=not isinstance(exc, CivicTwinError),
            )
            return
        logger.info("the twin store was rebuilt: now serving the new one")
        if id(previous) in self._holders:
            self._retired[id(previous)] = previous
        else:
            _close_quietly(previous)


def _close_quietly(twin: PublishedTwin) -> None:
    """Close a replaced twin's store; a failure to close is logged, never raised into a request."""
    try:
        twin.store.close()
    except Exception as exc:  # the store is gone either way; the request that got here must not fail
        logger.warning("closing the replaced twin store failed: %s", exc)


def _name(location: StoreLocation) -> str:
    """The store as readiness names it, to anyone who asks: the file's name (no folder), or "PostGIS"
    (no host, port, user or database)."""
    return f"file {location.path.name}" if location.path is not None else "in PostGIS"


def get_twin(request: Request) -> PublishedTwin:
    """The twin this request is served from (the same one for the whole request)."""
    twin: PublishedTwin | None = getattr(request.state, "twin", None)
    if twin is None:
        holder: TwinHolder = request.app.state.twin_holder
        twin = request.state.twin = holder.acquire()
    return twin


class TwinLeaseMiddleware:
    """Releases the twin a request was served from once its whole response has been sent.

    Outermost, so that streamed bodies and every inner middleware have finished with the store before
    :meth:`TwinHolder.release` may close a replaced one.
    """

    def __init__(self, app: ASGIApp, *, holder: TwinHolder) -> None:
        self.app = app
        self.holder = holder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        try:
            await self.app(scope, receive, send)
        finally:
            twin = state.pop("twin", None)
            if twin is not None:
                self.holder.release(twin)


def visible_layers(request: Request) -> dict[str, LayerInfo]:
    """The layers the caller may read, by name, in name order."""
    twin = get_twin(request)
    readable = twin.policy.readable(current_principal(request))
    return {name: info for name, info in sorted(twin.features.layers.items()) if name in readable}


def visible_layer(request: Request, name: str, *, noun: str = "collection") -> LayerInfo:
    """The layer ``name`` if the caller may read it; otherwise a 404 problem (same as no such layer)."""
    twin = get_twin(request)
    info = twin.features.layers.get(name)
    principal = current_principal(request)
    if info is not None and not twin.policy.allows(principal, name):
        _denied(request, principal.id, name)
    if info is None or not twin.policy.allows(principal, name):
        raise not_found(f"no {noun} named '{name[:80]}'")
    return info


def _denied(request: Request, who: str, dataset: str) -> None:
    """Note in the security log that ``who`` asked for a dataset it may not read."""
    security = getattr(request.app.state, "security", None)
    if security is None:
        return
    client = request.client.host if request.client else "unknown"
    security.event(
        "access denied",
        who=who,
        client=request.app.state.audit.pseudonymise(client),
        dataset=dataset,
        path=request.url.path[:256],
    )
