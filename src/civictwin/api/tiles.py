"""Mapbox Vector Tiles of the twin's layers, with TileJSON so map clients can find them.

``/tiles/{layer}/{z}/{x}/{y}.mvt`` answers ``application/vnd.mapbox-vector-tile``. A tile without
features answers **204 No Content** (no body): map clients (MapLibre included) treat it as an empty
tile, and no bytes are spent encoding or sending an empty layer. Tiles outside the Web Mercator
pyramid (z beyond 0..24, x or y beyond 0..2^z-1) are a 400 problem; a layer the caller may not read
is a 404, exactly like a layer that does not exist. Rendered tiles (and empty results) are kept in an
in-memory LRU cache keyed by layer, z, x, y and the data version.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse

from civictwin.api.context import get_twin, visible_layer, visible_layers
from civictwin.api.problems import bad_request, not_found
from civictwin.api.query import check_params
from civictwin.config import AccessLevel
from civictwin.sources.city3d import SURFACES_TABLE
from civictwin.store.tiles import MAX_ZOOM, valid_tile

MVT = "application/vnd.mapbox-vector-tile"
_EMPTY = b""

router = APIRouter(tags=["Vector tiles"])

Layer = Annotated[str, Path(description="A layer of the twin", max_length=63)]


class TileCounts(Protocol):
    """Where a tile cache reports its lookups and its size (the server's metrics)."""

    def looked_up(self, *, hit: bool) -> None: ...
    def holding(self, size: int) -> None: ...


class TileCache:
    """Least-recently-used tiles within a byte budget; thread-safe."""

    def __init__(self, max_bytes: int, *, counts: TileCounts | None = None) -> None:
        self.max_bytes = max_bytes
        self._tiles: OrderedDict[tuple[str, int, int, int, str], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._counts = counts

    @property
    def size(self) -> int:
        """Bytes of tiles held now."""
        return self._bytes

    def get(self, key: tuple[str, int, int, int, str]) -> bytes | None:
        """The cached tile (``b""`` for a cached empty tile), or None when not cached."""
        with self._lock:
            tile = self._tiles.get(key)
            if tile is not None:
                self._tiles.move_to_end(key)
        if self._counts is not None:
            self._counts.looked_up(hit=tile is not None)
        return tile

    def put(self, key: tuple[str, int, int, int, str], tile: bytes) -> None:
        """Keep ``tile``, dropping the least recently used ones beyond the budget."""
        with self._lock:
            old = self._tiles.pop(key, None)
            self._bytes -= len(old) if old is not None else 0
            self._tiles[key] = tile
            self._bytes += len(tile)
            while self._bytes > self.max_bytes and self._tiles:
                _, dropped = self._tiles.popitem(last=False)
                self._bytes -= len(dropped)
            size = self._bytes
        if self._counts is not None:
            self._counts.holding(size)


@router.get("/tiles", summary="Vector tile sets (the layers you may read)")
def tilesets(request: Request) -> JSONResponse:
    """One entry per readable layer with geometry, pointing at its TileJSON; ``terrain``, the
    terrain's TileJSON, when the twin has a DEM the caller may read; and ``lod2``, the buildings in
    LoD2 or finer, when the twin has a 3D city model's surfaces the caller may read."""
    check_params(request, ())
    twin = get_twin(request)
    drawable = set(twin.tiles.layers())
    readable = visible_layers(request)
    entries = [
        {"id": name, "tilejson": _url(request, f"/tiles/{name}.json")}
        for name in readable
        if name in drawable
    ]
    body: dict[str, Any] = {"tilesets": entries}
    dem = twin.dem_table()
    if dem is not None and dem in readable:  # the terrain's raster tiles (api/terrain.py)
        body["terrain"] = _url(request, "/terrain.json")
    if SURFACES_TABLE in readable:  # the buildings' LoD2 surfaces (api/lod2.py)
        body["lod2"] = _url(request, "/buildings/lod2.json")
    return JSONResponse(body)


@router.get("/tiles/{layer}.json", summary="TileJSON of a layer")
def tilejson(request: Request, layer: Layer) -> JSONResponse:
    """TileJSON 3.0.0: the tile URL template, zoom range, bounds and the layer's attributes."""
    check_params(request, ())
    info = visible_layer(request, layer, noun="tile layer")
    if not info.has_geometry:
        raise not_found(f"layer '{layer}' has no geometry, hence no tiles")
    twin = get_twin(request)
    meta = twin.metadata(layer)
    west, south, east, north = info.bbox_wgs84 or (-180.0, -85.0, 180.0, 85.0)
    body: dict[str, Any] = {
        "tilejson": "3.0.0",
        "name": layer,
        "description": str(meta.get("title") or layer),
        "scheme": "xyz",
        "tiles": [_url(request, f"/tiles/{layer}/{{z}}/{{x}}/{{y}}.mvt")],
        "minzoom": 0,
        "maxzoom": MAX_ZOOM,
        "bounds": [west, south, east, north],
        "center": [round((west + east) / 2, 7), round((south + north) / 2, 7), 14],
        "vector_layers": [
            {"id": layer, "fields": {name: _field_type(dtype) for name, dtype in info.properties.items()}}
        ],
    }
    if meta.get("publisher"):
        body["attribution"] = f"{meta['publisher']} ({meta.get('licence') or 'licence unknown'})"
    return JSONResponse(body)


@router.get(
    "/tiles/{layer}/{z}/{x}/{y}.mvt",
    summary="One vector tile (204 when empty)",
    response_class=Response,
    responses={200: {"content": {MVT: {}}}, 204: {"description": "No feature in this tile"}},
)
def tile(request: Request, layer: Layer, z: int, x: int, y: int) -> Response:
    """The Mapbox Vector Tile of ``layer`` at z/x/y (one MVT layer named after the layer)."""
    check_params(request, ())
    info = visible_layer(request, layer, noun="tile layer")
    if not info.has_geometry:
        raise not_found(f"layer '{layer}' has no geometry, hence no tiles")
    if not valid_tile(z, x, y):
        raise bad_request(f"tile {z}/{x}/{y} is outside the pyramid (0 <= z <= {MAX_ZOOM}, 0 <= x, y < 2^z)")
    twin = get_twin(request)
    cache: TileCache = request.app.state.tile_cache
    key = (layer, z, x, y, twin.version)
    data = cache.get(key)
    if data is None:
        data = twin.tiles.render(layer, z, x, y) or _EMPTY
        cache.put(key, data)
    public = twin.policy.levels.get(layer) is AccessLevel.PUBLIC
    headers = {
        "Cache-Control": "public, max-age=3600" if public else "private, max-age=3600",
        "Vary": "Authorization",
    }
    if not data:
        return Response(status_code=204, headers=headers)
    return Response(data, media_type=MVT, headers=headers)


def _field_type(dtype: str) -> str:
    """TileJSON's description of an attribute type."""
    if dtype == "BOOLEAN":
        return "Boolean"
    if any(word in dtype for word in ("INT", "DOUBLE", "FLOAT", "REAL", "DECIMAL")):
        return "Number"
    return "String"


def _url(request: Request, path: str) -> str:
    return str(request.base_url).rstrip("/") + path
