"""Terrain tiles: the twin's DEM as Terrarium-encoded PNG raster tiles, for a map client's 3D terrain.

``/terrain.json`` is the TileJSON of the twin's ``dem`` source (404 when it has none, or when the
caller may not read it); ``/terrain/{z}/{x}/{y}.png`` is one 256 × 256 tile, each pixel the height
at its centre in Mapzen's Terrarium encoding (height + 32768 m = R·256 + G + B/256), which MapLibre
reads as a ``raster-dem`` source with ``encoding: "terrarium"``. Details: docs/viewer.md.
"""

from __future__ import annotations

import math
import threading
import warnings
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse
from pyproj import Transformer
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile

from civictwin.api.context import PublishedTwin, get_twin, visible_layer
from civictwin.api.problems import bad_request, not_found
from civictwin.api.query import check_params
from civictwin.api.tiles import TileCache
from civictwin.config import AccessLevel
from civictwin.model.terrain import Terrain
from civictwin.store.tiles import MAX_ZOOM, valid_tile

PNG = "image/png"
TILE_PX = 256
EARTH_CIRCUMFERENCE_M = 40_075_016.686
"""The Web Mercator world's width at the equator (2π × 6 378 137 m)."""
TERRARIUM_OFFSET_M = 32_768.0

router = APIRouter(tags=["Terrain"])

Zoom = Annotated[int, Path(description="Zoom level", ge=0, le=MAX_ZOOM)]


class _Terrains:
    """The DEM of the served twin, read once per served version (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: tuple[str, str, Terrain] | None = None

    def get(self, twin: PublishedTwin, table: str) -> Terrain:
        with self._lock:
            if self._held is None or self._held[:2] != (twin.version, table):
                self._held = (twin.version, table, Terrain.from_blocks(twin.store.read_table(table)))
            return self._held[2]


_TERRAINS = _Terrains()


def _readable_dem(request: Request) -> tuple[PublishedTwin, str]:
    twin = get_twin(request)
    table = twin.dem_table()
    if table is None:
        raise not_found("this twin has no terrain (no source of kind 'dem')")
    visible_layer(request, table, noun="terrain")
    return twin, table


@router.get("/terrain.json", summary="TileJSON of the terrain (a raster-dem source, Terrarium encoding)")
def terrain_tilejson(request: Request) -> JSONResponse:
    """TileJSON 3.0.0 of the terrain tiles, with the DEM's bounds and the zoom of its own resolution."""
    check_params(request, ())
    twin, table = _readable_dem(request)
    terrain = _TERRAINS.get(twin, table)
    west, south, east, north = _bounds_wgs84(terrain, twin.store.crs)
    meta = twin.metadata(table)
    body: dict[str, Any] = {
        "tilejson": "3.0.0",
        "name": table,
        "description": str(meta.get("title") or table),
        "scheme": "xyz",
        "tiles": [str(request.base_url).rstrip("/") + "/terrain/{z}/{x}/{y}.png"],
        "encoding": "terrarium",
        "tileSize": TILE_PX,
        "minzoom": 0,
        "maxzoom": native_zoom(terrain.cell, (south + north) / 2),
        "bounds": [west, south, east, north],
    }
    if meta.get("publisher"):
        body["attribution"] = f"{meta['publisher']} ({meta.get('licence') or 'licence unknown'})"
    return JSONResponse(body)


@router.get(
    "/terrain/{z}/{x}/{y}.png",
    summary="One terrain tile (Terrarium-encoded heights)",
    response_class=Response,
    responses={200: {"content": {PNG: {}}}},
)
def terrain_tile(request: Request, z: Zoom, x: int, y: int) -> Response:
    """The terrain tile z/x/y: each pixel's height at its centre, Terrarium-encoded."""
    check_params(request, ())
    twin, table = _readable_dem(request)
    if not valid_tile(z, x, y):
        raise bad_request(f"tile {z}/{x}/{y} is outside the pyramid (0 <= z <= {MAX_ZOOM}, 0 <= x, y < 2^z)")
    cache: TileCache = request.app.state.tile_cache
    key = (f"terrain:{table}", z, x, y, twin.version)
    data = cache.get(key)
    if data is None:
        terrain = _TERRAINS.get(twin, table)
        data = encode_png(terrarium(tile_heights(terrain, twin.store.crs, z, x, y)))
        cache.put(key, data)
    public = twin.policy.levels.get(table) is AccessLevel.PUBLIC
    headers = {
        "Cache-Control": "public, max-age=3600" if public else "private, max-age=3600",
        "Vary": "Authorization",
    }
    return Response(data, media_type=PNG, headers=headers)


def native_zoom(cell_m: float, latitude: float) -> int:
    """The zoom whose pixels are about one DEM cell wide at ``latitude`` (0 … 17)."""
    pixel_at_zoom_0 = EARTH_CIRCUMFERENCE_M * math.cos(math.radians(latitude)) / TILE_PX
    return max(0, min(17, math.floor(math.log2(pixel_at_zoom_0 / cell_m))))


def tile_heights(terrain: Terrain, crs: str, z: int, x: int, y: int) -> npt.NDArray[np.float64]:
    """Heights (m) at the centres of the tile's 256 × 256 pixels, row 0 at the north.

    Pixels beyond the DEM take the height of its nearest edge, and cells without data the DEM's
    lowest height, so the surface has no cliffs at the twin's edge.
    """
    size = EARTH_CIRCUMFERENCE_M / 2**z
    half = EARTH_CIRCUMFERENCE_M / 2
    offsets = (np.arange(TILE_PX) + 0.5) * size / TILE_PX
    mx, my = np.meshgrid(-half + x * size + offsets, half - y * size - offsets)
    to_twin = Transformer.from_crs("EPSG:3857", crs, always_xy=True)
    tx, ty = to_twin.transform(mx.ravel(), my.ravel())
    rows, cols = terrain.heights.shape
    inside_x = np.clip(tx, terrain.x_min + terrain.cell / 2, terrain.x_min + (cols - 0.5) * terrain.cell)
    inside_y = np.clip(ty, terrain.y_max - (rows - 0.5) * terrain.cell, terrain.y_max - terrain.cell / 2)
    heights = terrain.sample(inside_x, inside_y).reshape(TILE_PX, TILE_PX)
    lowest = float(np.nanmin(terrain.heights)) if np.isfinite(terrain.heights).any() else 0.0
    filled: npt.NDArray[np.float64] = np.where(np.isfinite(heights), heights, lowest)
    return filled


def terrarium(heights: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """Heights (m) as Terrarium RGB bands (3 × rows × cols): height + 32768 = R·256 + G + B/256."""
    value = np.clip(heights + TERRARIUM_OFFSET_M, 0.0, 65_535.996)
    whole = np.floor(value)
    red, green = np.divmod(whole, 256)
    blue = np.floor((value - whole) * 256)
    return np.stack([red, green, blue]).astype(np.uint8)


def encode_png(bands: npt.NDArray[np.uint8]) -> bytes:
    """RGB bands (3 × rows × cols) as PNG bytes (GDAL's PNG driver, in memory)."""
    count, height, width = bands.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a map tile needs no geotransform
        with MemoryFile() as memory:
            with memory.open(driver="PNG", width=width, height=height, count=count, dtype="uint8") as png:
                png.write(bands)
            return bytes(memory.read())


def _bounds_wgs84(terrain: Terrain, crs: str) -> tuple[float, float, float, float]:
    rows, cols = terrain.heights.shape
    x_max, y_min = terrain.x_min + cols * terrain.cell, terrain.y_max - rows * terrain.cell
    to_wgs84 = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = to_wgs84.transform(
        [terrain.x_min, x_max, x_max, terrain.x_min], [y_min, y_min, terrain.y_max, terrain.y_max]
    )
    return (round(min(lon), 7), round(min(lat), 7), round(max(lon), 7), round(max(lat), 7))
