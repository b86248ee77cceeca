"""The published twin as the routers see it: its layers, readers, access policy and metadata.

Routers never open the store: they get :class:`PublishedTwin` from the app state, and ask it which
layers the caller may see. A layer the caller may not read is indistinguishable from one that does
not exist (404 everywhere: listings, items, tiles).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request

from civictwin.api.problems import not_found
from civictwin.api.security import current_principal
from civictwin.api.settings import ServerSettings
from civictwin.governance.access import AccessPolicy
from civictwin.store.duckdb import DuckDBStore
from civictwin.store.features import FeatureReader, LayerInfo
from civictwin.store.tiles import TileRenderer


@dataclass
class PublishedTwin:
    """Everything the API serves from one twin, opened once at start-up."""

    twin_dir: Path
    store_path: Path
    title: str
    store: DuckDBStore
    features: FeatureReader
    tiles: TileRenderer
    policy: AccessPolicy
    catalog: dict[str, dict[str, Any]]
    settings: ServerSettings
    version: str
    """Identifies the data served (store file identity and time); part of every tile cache key."""

    def metadata(self, layer: str) -> dict[str, Any]:
        """The layer's catalogue record (empty when it has none)."""
        return self.catalog.get(layer, {})


def get_twin(request: Request) -> PublishedTwin:
    """The twin the app serves."""
    twin: PublishedTwin = request.app.state.twin
    return twin


def visible_layers(request: Request) -> dict[str, LayerInfo]:
    """The layers the caller may read, by name, in name order."""
    twin = get_twin(request)
    readable = twin.policy.readable(current_principal(request))
    return {name: info for name, info in sorted(twin.features.layers.items()) if name in readable}


def visible_layer(request: Request, name: str, *, noun: str = "collection") -> LayerInfo:
    """The layer ``name`` if the caller may read it; otherwise a 404 problem (same as no such layer)."""
    twin = get_twin(request)
    info = twin.features.layers.get(name)
    if info is None or not twin.policy.allows(current_principal(request), name):
        raise not_found(f"no {noun} named '{name}'")
    return info
