"""The FastAPI application serving one twin: OGC API – Features, vector tiles, and the viewer.

:func:`create_app` opens the twin's store read-only (attached to an in-memory working database for
the Web Mercator tile tables), reopens it when a rebuild replaces the file
(:class:`~civictwin.api.context.TwinHolder`), reads the catalogue's access levels, and wires the routers behind
:class:`~civictwin.api.security.GateMiddleware` (limits, tokens, audit, metrics) and the hardening
middlewares (:mod:`civictwin.api.hardening`: trusted hosts and public URL, security headers, HEAD;
CORS and forwarded headers when configured). Tokens live in ``<store>.tokens.json``, the audit log in
``<store>.audit.jsonl`` and the security log in ``<store>.security.jsonl``, beside the store.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from civictwin import __version__
from civictwin.api import (
    alerts,
    calibration,
    consultations,
    contributions,
    equity,
    features,
    lod2,
    operations,
    photos,
    proposals,
    readiness,
    scenarios,
    sensorthings,
    surveys,
    terrain,
    tiles,
    viewer,
)
from civictwin.api.context import PublishedTwin, TwinHolder, TwinLeaseMiddleware
from civictwin.api.hardening import HeadMiddleware, HostMiddleware, SecurityHeadersMiddleware
from civictwin.api.limits import RateLimiter
from civictwin.api.metrics import Metrics, TwinCollector
from civictwin.api.problems import UnexpectedErrorMiddleware, install_problem_handlers
from civictwin.api.replica_state import (
    DatabaseFailureBursts,
    DatabaseRateLimiter,
    database_for_limits,
    replica_key,
)
from civictwin.api.security import GateMiddleware
from civictwin.api.settings import ServerSettings
from civictwin.api.shared_state import SharedFailureBursts, SharedRateLimiter, limits_path
from civictwin.config import CONFIG_FILENAME, load_config
from civictwin.errors import StoreError
from civictwin.governance.access import AccessPolicy, access_levels
from civictwin.governance.audit import AuditLog, audit_path
from civictwin.governance.security import FailureBursts, SecurityLog, security_path
from civictwin.governance.tokens import TokenRegistry, token_place
from civictwin.store.base import version_of
from civictwin.store.opening import StoreLocation, open_published, publishing, store_location

logger = logging.getLogger(__name__)


def resolve_store(target: Path) -> tuple[Path, str]:
    """The store file and title of a twin given as its directory (``twin.toml``) or its store file.

    A directory without ``twin.toml`` is accepted when it holds exactly one ``*.duckdb`` file.
    """
    if target.is_file():
        return target, target.stem
    if (target / CONFIG_FILENAME).is_file():
        config = load_config(target)
        return config.store_path, config.twin.name
    candidates = sorted(target.glob("*.duckdb")) if target.is_dir() else []
    if len(candidates) == 1:
        return candidates[0], candidates[0].stem
    if not target.exists():
        raise StoreError("no such twin directory or store file", path=target)
    raise StoreError(f"no {CONFIG_FILENAME} and not exactly one *.duckdb store here", path=target)


def open_twin(twin_dir: Path, settings: ServerSettings) -> PublishedTwin:
    """Open a twin for publishing: store, feature reader, tile tables, access policy."""
    store_path, title = resolve_store(twin_dir)
    location = (
        store_location(load_config(twin_dir))
        if (twin_dir / CONFIG_FILENAME).is_file()
        else StoreLocation.of_file(store_path)
    )
    store = open_published(location)
    try:
        version = version_of(store)  # of the very store opened: a rebuild meanwhile is seen next request
        reader, renderer = publishing(store)
        catalog = store.records("catalog")
    except BaseException:
        store.close()
        raise
    return PublishedTwin(
        twin_dir=twin_dir,
        store_path=store_path,
        location=location,
        title=title,
        store=store,
        features=reader,
        tiles=renderer,
        policy=AccessPolicy(access_levels(catalog, reader.layers)),
        catalog=catalog,
        settings=settings,
        version=version,
    )


def create_app(twin_dir: Path, *, settings: ServerSettings | None = None) -> FastAPI:
    """The API application over the twin in ``twin_dir`` (a twin directory or a store file)."""
    settings = settings or ServerSettings()
    twin = open_twin(twin_dir, settings)
    # The store and the logs live as long as the app (the process): no lifespan hook closes them,
    # since test clients may start and stop an app's lifespan many times.
    audit = AuditLog(
        audit_path(twin.store_path),
        policy=settings.audit_rotation,
        addresses=settings.client_addresses,
        worker=os.getpid() if settings.workers > 1 else None,
    )
    security = SecurityLog(security_path(twin.store_path), policy=settings.audit_rotation)
    metrics = Metrics()
    app = FastAPI(
        title=f"civictwin: {twin.title}",
        version=__version__,
        description="OGC API – Features and vector tiles of an urban digital twin, behind access control.",
        docs_url=None,
        redoc_url=None,
    )
    holder = TwinHolder(twin, lambda: open_twin(twin_dir, settings))
    app.state.twin_holder = holder
    app.state.tile_cache = tiles.TileCache(settings.tile_cache_bytes, counts=metrics)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.audit = audit
    app.state.security = security
    app.state.edge_refused = _edge_recorder(audit, metrics)
    metrics.read_live(TwinCollector(holder.current))
    install_problem_handlers(app)
    app.include_router(features.router)
    app.include_router(photos.router)
    app.include_router(tiles.router)
    app.include_router(scenarios.router)
    app.include_router(operations.router)
    app.include_router(sensorthings.router)
    app.include_router(alerts.router)
    app.include_router(readiness.router)
    app.include_router(terrain.router)
    app.include_router(lod2.router)
    app.include_router(calibration.router)
    app.include_router(consultations.router)
    app.include_router(equity.router)
    app.include_router(contributions.router)
    app.include_router(proposals.router)
    app.include_router(surveys.router)
    app.include_router(viewer.viewer_router())
    _add_middlewares(
        app,
        settings,
        registry=TokenRegistry(
            token_place(tokens=settings.tokens, location=twin.location, store_path=twin.store_path)
        ),
        store_path=twin.store_path,
        location=twin.location,
    )
    proposals.install(app, twin.twin_dir, twin.store_path)
    app.openapi = lambda: _openapi(app, settings)  # type: ignore[method-assign]
    return app


def _add_middlewares(
    app: FastAPI,
    settings: ServerSettings,
    *,
    registry: TokenRegistry,
    store_path: Path,
    location: StoreLocation,
) -> None:
    """The request path, outermost first: the twin's lease (released after the response), forwarded
    headers (from configured proxies only), the gate (limits, tokens, audit, metrics), security
    headers, trusted hosts and public URL, CORS, HEAD, and innermost the 500 problem of an unexpected
    error (so that it passes through all of them)."""
    app.add_middleware(UnexpectedErrorMiddleware)
    app.add_middleware(HeadMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "HEAD"],
            allow_headers=["Authorization"],
            max_age=600,
        )
    app.add_middleware(HostMiddleware, trusted_hosts=settings.trusted_hosts, public_url=settings.public_url)
    app.add_middleware(
        SecurityHeadersMiddleware,
        frame_ancestors=settings.frame_ancestors,
        hsts_max_age_s=settings.hsts_max_age_s,
    )
    limiter, bursts = _limits(settings, store_path, location)
    app.add_middleware(
        GateMiddleware,
        registry=registry,
        limiter=limiter,
        audit=app.state.audit,
        security=app.state.security,
        metrics=app.state.metrics,
        settings=settings,
        bursts=bursts,
    )
    if settings.forwarded_allow_ips:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.forwarded_allow_ips))
    app.add_middleware(TwinLeaseMiddleware, holder=app.state.twin_holder)


def _limits(
    settings: ServerSettings, store_path: Path, location: StoreLocation
) -> tuple[RateLimiter, FailureBursts | None]:
    """Rate buckets and failure counts: in memory for one worker, shared by several through a file, or
    by every replica through the twin's database (``shared_limits = "database"``)."""
    dsn = database_for_limits(settings, location)
    if dsn is not None:
        key = replica_key()
        in_database = DatabaseRateLimiter(
            dsn, key=key, scope="requests", rate=settings.rate_per_second, burst=settings.rate_burst
        )
        return in_database, DatabaseFailureBursts(dsn, key=key, scope="authentication")
    if settings.workers == 1:
        return RateLimiter(rate=settings.rate_per_second, burst=settings.rate_burst), None
    shared = limits_path(store_path)
    key = settings.limits_key
    limiter = SharedRateLimiter(shared, key=key, rate=settings.rate_per_second, burst=settings.rate_burst)
    return limiter, SharedFailureBursts(shared, key=key)


def _edge_recorder(audit: AuditLog, metrics: Metrics) -> Callable[[str, str], None]:
    """What to do with a request refused at the server edge: audit it and count it."""

    def refused(client: str, detail: str) -> None:
        audit.record(
            who="anonymous", client=client, method="", path="", query="", status=400, duration_ms=0.0,
            edge=True, detail=detail,
        )  # fmt: skip
        metrics.observe("edge", "", 400, 0.0)

    return refused


def _openapi(app: FastAPI, settings: ServerSettings) -> dict[str, Any]:
    """FastAPI's OpenAPI document, with ``bbox`` and ``limit`` described as OGC API – Features asks."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("name") == "limit":
                    parameter["schema"] = {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": settings.max_limit,
                        "default": settings.default_limit,
                    }
                if parameter.get("name") == "bbox":
                    parameter["style"] = "form"
                    parameter["explode"] = False
                    parameter["schema"] = {
                        "type": "array",
                        "minItems": 4,
                        "maxItems": 6,
                        "items": {"type": "number"},
                    }
    app.openapi_schema = schema
    return schema
