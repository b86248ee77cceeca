"""The FastAPI application serving one twin: OGC API – Features, vector tiles, and the viewer.

:func:`create_app` opens the twin's store read-only (attached to an in-memory working database for
the Web Mercator tile tables), reopens it when a rebuild replaces the file
(:class:`~civictwin.api.context.TwinHolder`), reads the catalogue's access levels, and wires the routers behind
:class:`~civictwin.api.security.GateMiddleware` (limits, tokens, audit). Tokens live in
``<store>.tokens.json`` and the audit log in ``<store>.audit.jsonl``, beside the store.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from civictwin import __version__
from civictwin.api import alerts, features, scenarios, sensorthings, tiles, viewer
from civictwin.api.context import PublishedTwin, TwinHolder, store_version
from civictwin.api.limits import RateLimiter
from civictwin.api.problems import install_problem_handlers
from civictwin.api.security import GateMiddleware
from civictwin.api.settings import ServerSettings
from civictwin.config import CONFIG_FILENAME, load_config
from civictwin.errors import StoreError
from civictwin.governance.access import AccessPolicy, access_levels
from civictwin.governance.audit import AuditLog, audit_path
from civictwin.governance.tokens import TokenRegistry, tokens_path
from civictwin.store.features import FeatureReader, open_published
from civictwin.store.tiles import TileRenderer

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
    # the identity first: a rebuild landing while this opens makes the next request open it again
    version = store_version(store_path)
    store = open_published(store_path)
    try:
        reader = FeatureReader(store)
        renderer = TileRenderer(reader, crs=store.crs)
        catalog = store.records("catalog")
    except BaseException:
        store.close()
        raise
    return PublishedTwin(
        twin_dir=twin_dir,
        store_path=store_path,
        title=title,
        store=store,
        features=reader,
        tiles=renderer,
        policy=AccessPolicy(access_levels(catalog, reader.layers)),
        catalog=catalog,
        settings=settings,
        version=version or "",
    )


def create_app(twin_dir: Path, *, settings: ServerSettings | None = None) -> FastAPI:
    """The API application over the twin in ``twin_dir`` (a twin directory or a store file)."""
    settings = settings or ServerSettings()
    twin = open_twin(twin_dir, settings)
    # The store and the audit log live as long as the app (the process): no lifespan hook closes them,
    # since test clients may start and stop an app's lifespan many times.
    audit = AuditLog(audit_path(twin.store_path))
    app = FastAPI(
        title=f"civictwin: {twin.title}",
        version=__version__,
        description="OGC API – Features and vector tiles of an urban digital twin, behind access control.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.twin_holder = TwinHolder(twin, lambda: open_twin(twin_dir, settings))
    app.state.tile_cache = tiles.TileCache(settings.tile_cache_bytes)
    install_problem_handlers(app)
    app.include_router(features.router)
    app.include_router(tiles.router)
    app.include_router(scenarios.router)
    app.include_router(sensorthings.router)
    app.include_router(alerts.router)
    app.include_router(viewer.viewer_router())
    app.add_middleware(
        GateMiddleware,
        registry=TokenRegistry(tokens_path(twin.store_path)),
        limiter=RateLimiter(rate=settings.rate_per_second, burst=settings.rate_burst),
        audit=audit,
        settings=settings,
    )
    app.openapi = lambda: _openapi(app, settings)  # type: ignore[method-assign]
    return app


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
