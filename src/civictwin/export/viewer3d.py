"""Buildings in their best LoD for a map client: the roof and wall surfaces of every building whose
city model gives it LoD2 or finer, in WGS84, heights above the building's own ground.

The ``cityjson``/``citygml`` readers store each building's surfaces of its best LoD in
``building_surfaces`` (twin CRS, heights in the file's vertical datum). A map client draws them in
3D only where they say more than an extruded footprint does, so this module keeps the buildings
whose best LoD is 2 or above and, of their surfaces, those seen from outside and above (roofs,
walls and the other outer surfaces; never ground, floor, ceiling or interior surfaces). Each vertex
becomes ``[lon, lat, h]`` with ``h`` in metres above the lowest vertex of its building (its ground),
so the client stands the building on a flat map at 0 or on the terrain at the building's stored
``base_elevation_m`` (the lowest DEM height under its footprint, from ``buildings_3d``). Details:
docs/viewer.md, "Buildings in their best LoD".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from pyproj import Transformer

from civictwin.sources.city3d import SURFACES_TABLE
from civictwin.store.base import Store

HIDDEN_SURFACES = frozenset({"ground", "floor", "ceiling", "interior_wall", "outer_floor"})
"""Surface types a viewer looking from above and outside never sees (``surface_type`` values)."""

COORDINATE_DECIMALS = 7
"""Longitude/latitude decimals: 1e-7° is about 1 cm, finer than any city model's stated accuracy."""
HEIGHT_DECIMALS = 2
"""Height decimals (metres): 1 cm."""

SURFACE_COLUMNS = ("building_id", "lod", "surface_type", "geometry")


@dataclass(frozen=True)
class Buildings3D:
    """The buildings to draw in 3D, as plain JSON-ready data, and whether ``limit`` cut the list."""

    buildings: list[dict[str, Any]]
    truncated: bool


def finer_than_lod1(lod: object) -> bool:
    """Whether a stored LoD (``"2"``, ``"2.2"``, ``"1.2"``, ...) is LoD2 or finer."""
    text = str(lod or "").strip()
    try:
        return float(text.split(".")[0]) >= 2
    except ValueError:
        return False


def best_lod_buildings(store: Store, *, limit: int, bases: Mapping[str, float] | None) -> Buildings3D:
    """The first ``limit`` buildings (by id) with LoD2+ surfaces, each with all its drawn surfaces.

    ``bases`` maps building ids to their base elevation (m) on the terrain, or is None when the twin
    has no DEM (or the caller may not read it).
    """
    if not store.has_table(SURFACES_TABLE):
        return Buildings3D([], truncated=False)
    rows = store.read_table(SURFACES_TABLE, columns=list(SURFACE_COLUMNS))
    rows = rows[rows["lod"].map(finer_than_lod1) & rows["building_id"].notna()]
    ids = sorted(str(i) for i in rows["building_id"].unique())
    rows = rows[rows["building_id"].astype(str).isin(set(ids[:limit]))]
    return Buildings3D(_as_buildings(rows, store.crs, bases), truncated=len(ids) > limit)


def _as_buildings(rows: pd.DataFrame, crs: str, bases: Mapping[str, float] | None) -> list[dict[str, Any]]:
    """Rows of surfaces (shapely polygons with z in ``crs``) as one entry per building, by id."""
    ground = rows.groupby(rows["building_id"].astype(str))["geometry"].agg(_lowest_z)
    shown = rows[~rows["surface_type"].isin(HIDDEN_SURFACES)]
    rings, ring_surface = shapely.get_rings(np.asarray(shown["geometry"]), return_index=True)
    coords, coord_ring = shapely.get_coordinates(rings, include_z=True, return_index=True)
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(coords[:, 0], coords[:, 1])
    vertices = np.column_stack(
        [np.round(lon, COORDINATE_DECIMALS), np.round(lat, COORDINATE_DECIMALS), coords[:, 2]]
    )
    per_ring = np.split(vertices, np.flatnonzero(np.diff(coord_ring)) + 1) if len(vertices) else []
    building_of = shown["building_id"].astype(str).to_numpy()
    kinds = shown["surface_type"].fillna("unknown").astype(str).to_numpy()
    surfaces: dict[int, list[list[list[float]]]] = {}
    for ring, surface in zip(per_ring, ring_surface, strict=True):
        floor = float(ground[building_of[surface]])
        ring[:, 2] = np.round(ring[:, 2] - floor, HEIGHT_DECIMALS)
        surfaces.setdefault(int(surface), []).append(ring.tolist())
    out: dict[str, dict[str, Any]] = {}
    for surface, surface_rings in surfaces.items():
        building_id = building_of[surface]
        entry = out.setdefault(building_id, _entry(building_id, bases))
        entry["surfaces"].append({"type": kinds[surface], "rings": surface_rings})
    return [out[key] for key in sorted(out)]


def _entry(building_id: str, bases: Mapping[str, float] | None) -> dict[str, Any]:
    base = None if bases is None else bases.get(building_id)
    shown = round(float(base), HEIGHT_DECIMALS) if base is not None and math.isfinite(base) else None
    return {"id": building_id, "base_m": shown, "surfaces": []}


def _lowest_z(geometries: pd.Series) -> float:
    coords: npt.NDArray[np.float64] = shapely.get_coordinates(np.asarray(geometries), include_z=True)
    return float(np.nanmin(coords[:, 2])) if len(coords) else 0.0
