"""``GET /buildings/lod2.json``: the buildings a 3D city model gives in LoD2 or finer, for the viewer.

Each building's roof and wall surfaces as ``[lon, lat, h]`` rings, ``h`` in metres above the
building's ground, with its base elevation on the terrain when the twin has a DEM (see
:mod:`civictwin.export.viewer3d`). Served only when the caller may read ``building_surfaces``
(404 otherwise, as for a missing layer); the base elevations only when the caller may also read
``buildings_3d`` and the DEM. Nothing but ids, surface types and geometry is sent, and the ids only
when neither table declares ``building_id`` personal. ``bbox`` (WGS84) keeps the buildings with a
surface in a map view, each whole. Details: docs/viewer.md.
"""

from __future__ import annotations

import json
from typing import Annotated

import pandas as pd
import shapely
from fastapi import APIRouter, Query, Request, Response
from pyproj import Transformer

from civictwin.api.context import PublishedTwin, get_twin, visible_layer, visible_layers
from civictwin.api.query import check_params, parse_bbox
from civictwin.api.tiles import TileCache
from civictwin.config import AccessLevel
from civictwin.export.viewer3d import Buildings3D, best_lod_buildings
from civictwin.sources.city3d import SURFACES_TABLE
from civictwin.store.base import Bounds, Store
from civictwin.store.features import wgs84_box
from civictwin.store.personal import personal_columns

BUILDINGS_TABLE = "buildings_3d"
BASE_COLUMN = "base_elevation_m"
ID_COLUMN = "building_id"
DEFAULT_LIMIT = 20_000
"""Buildings per answer by default: a district's LoD2 model (a few MB of JSON) in one request."""
MAX_LIMIT = 50_000

router = APIRouter(tags=["Buildings in 3D"])


@router.get(
    "/buildings/lod2.json",
    summary="Buildings in LoD2 or finer: roof and wall surfaces for a 3D map",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}},
)
def lod2_buildings(
    request: Request,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="Most buildings returned (by id)")
    ] = DEFAULT_LIMIT,
    bbox: Annotated[
        str | None,
        Query(description="minLon,minLat,maxLon,maxLat (WGS84): only buildings with a surface in this box"),
    ] = None,
) -> Response:
    """The buildings whose best LoD is 2 or finer, their outer surfaces and base elevations."""
    check_params(request, ("limit", "bbox"))
    view = None if bbox is None else parse_bbox(bbox)
    visible_layer(request, SURFACES_TABLE, noun="layer")
    twin = get_twin(request)
    readable = visible_layers(request)
    with_bases = twin.dem_table() in readable and BUILDINGS_TABLE in readable
    with_ids = not any(
        ID_COLUMN in personal_columns(twin.metadata(t)) for t in (SURFACES_TABLE, BUILDINGS_TABLE)
    )
    cache: TileCache = request.app.state.tile_cache
    key = (f"lod2:{limit}:{int(with_bases)}:{int(with_ids)}:{view}", 0, 0, 0, twin.version)
    body = cache.get(key)
    if body is None:
        body = _answer(twin, limit=limit, view=view, with_bases=with_bases, with_ids=with_ids)
        cache.put(key, body)
    public = twin.policy.levels.get(SURFACES_TABLE) is AccessLevel.PUBLIC
    headers = {"Cache-Control": f"{'public' if public else 'private'}, max-age=3600", "Vary": "Authorization"}
    return Response(body, media_type="application/json", headers=headers)


def _answer(
    twin: PublishedTwin, *, limit: int, view: Bounds | None, with_bases: bool, with_ids: bool
) -> bytes:
    bases = _bases(twin) if with_bases else None
    box = None if view is None else _in_store_crs(view, twin.store)
    if view is not None and box is None:
        found = Buildings3D([], truncated=False)
    else:
        found = best_lod_buildings(twin.store, limit=limit, bases=bases, bbox=box)
    if not with_ids:
        for building in found.buildings:
            building["id"] = None
    body = {
        "type": "BuildingsLoD2",
        "heights": "metres above each building's lowest vertex; base_m: its base elevation on the terrain",
        "buildings": found.buildings,
        "numberReturned": len(found.buildings),
        "limit": limit,
        "bbox": None if view is None else list(view),
        "truncated": found.truncated,
    }
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def _in_store_crs(view: Bounds, store: Store) -> Bounds | None:
    """The store-CRS box covering a WGS84 view where it meets the city model (None where it does not).

    The view is first clipped to the surfaces' own WGS84 extent, so a view across the antimeridian or
    far outside the projection's zone never reaches the projection; the box's edges are densified,
    so a curved edge in the store's CRS is covered.
    """
    extent = store.table_bounds(SURFACES_TABLE, wgs84=True)
    if extent is None:
        return None
    clipped = wgs84_box(view).intersection(shapely.box(*extent))
    if clipped.is_empty:
        return None
    west, south, east, north = clipped.bounds
    to_store = Transformer.from_crs("EPSG:4326", store.crs, always_xy=True)
    return to_store.transform_bounds(west, south, east, north, densify_pts=21)


def _bases(twin: PublishedTwin) -> dict[str, float] | None:
    """Building id → base elevation (m) from ``buildings_3d``; None when it has no such column."""
    store = twin.store
    if not store.has_table(BUILDINGS_TABLE):
        return None
    info = next(t for t in store.tables() if t.name == BUILDINGS_TABLE)
    if BASE_COLUMN not in info.columns or ID_COLUMN not in info.columns:
        return None
    if BASE_COLUMN in personal_columns(twin.metadata(BUILDINGS_TABLE)):
        return None
    rows = pd.DataFrame(store.read_table(BUILDINGS_TABLE, columns=[ID_COLUMN, BASE_COLUMN]))
    rows = rows.dropna()
    return dict(zip(rows[ID_COLUMN].astype(str), rows[BASE_COLUMN].astype(float), strict=True))
