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
from civictwin.store.base import Bounds, Store

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


def best_lod_buildings(
    store: Store, *, limit: int, bases: Mapping[str, float] | None, bbox: Bounds | None = None
) -> Buildings3D:
    """The first ``limit`` buildings (by id) with LoD2+ surfaces, each with all its drawn surfaces.

    ``bases`` maps building ids to their base elevation (m) on the terrain, or is None when the twin
    has no DEM (or the caller may not read it). ``bbox`` (in the store's CRS) keeps the buildings
    with a surface meeting it, and brings each of them whole (its surfaces outside the box too).
    Two reads: the ids and LoDs (of the box's surfaces), then the surfaces of the chosen buildings
    only, so a large city model is never read whole for one view.
    """
    if not store.has_table(SURFACES_TABLE):
        return Buildings3D([], truncated=False)
    found = store.read_table(SURFACES_TABLE, columns=["building_id", "lod"], bbox=bbox)
    found = found[found["lod"].map(finer_than_lod1).astype(bool) & found["building_id"].notna()]
    by_text = {str(i): i for i in found["building_id"].unique()}
    chosen = sorted(by_text)[:limit]
    if not chosen:
        return Buildings3D([], truncated=False)
    rows = store.read_table(
        SURFACES_TABLE, columns=list(SURFACE_COLUMNS), where={"building_id": [by_text[i] for i in chosen]}
    )
    rows = rows[rows["lod"].map(finer_than_lod1).astype(bool)]
    return Buildings3D(_as_buildings(rows, store.crs, bases), truncated=len(by_text) > limit)


def _as_buildings(rows: pd.DataFrame, crs: str, bases: Mapping[str, float] | None) -> list[dict[str, Any]]:
    """Rows of surfaces (shapely polygons with z in ``crs``) as one entry per building, by id.

    Vectorised over every vertex (numpy, shapely, pyproj); Python only assembles the lists.
    """
    codes, names = pd.factorize(rows["building_id"].astype(str))
    ground = _lowest_z_per_building(np.asarray(rows["geometry"]), codes, len(names))
    shown = ~rows["surface_type"].isin(HIDDEN_SURFACES).to_numpy()
    rings, ring_surface = shapely.get_rings(np.asarray(rows["geometry"])[shown], return_index=True)
    coords, coord_ring = shapely.get_coordinates(rings, include_z=True, return_index=True)
    surface_codes = codes[shown]
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(coords[:, 0], coords[:, 1])
    height = coords[:, 2] - ground[surface_codes[ring_surface[coord_ring]]]
    vertices = np.column_stack(
        [
            np.round(lon, COORDINATE_DECIMALS),
            np.round(lat, COORDINATE_DECIMALS),
            np.round(height, HEIGHT_DECIMALS),
        ]
    ).tolist()
    if not len(coord_ring):
        return []
    starts = np.flatnonzero(np.r_[True, np.diff(coord_ring) != 0])
    ends = np.r_[starts[1:], len(coord_ring)]
    kinds = rows["surface_type"].fillna("unknown").astype(str).to_numpy()[shown].tolist()
    building_names = [str(name) for name in names]
    building_of = surface_codes.tolist()
    surface_of_start = ring_surface[coord_ring[starts]].tolist()
    surfaces: dict[int, list[list[list[float]]]] = {}
    for start, end, surface in zip(starts.tolist(), ends.tolist(), surface_of_start, strict=True):
        surfaces.setdefault(surface, []).append(vertices[start:end])
    out: dict[str, dict[str, Any]] = {}
    for surface, surface_rings in surfaces.items():
        building_id = building_names[building_of[surface]]
        entry = out.setdefault(building_id, _entry(building_id, bases))
        entry["surfaces"].append({"type": kinds[surface], "rings": surface_rings})
    return [out[key] for key in sorted(out)]


def _entry(building_id: str, bases: Mapping[str, float] | None) -> dict[str, Any]:
    base = None if bases is None else bases.get(building_id)
    shown = round(float(base), HEIGHT_DECIMALS) if base is not None and math.isfinite(base) else None
    return {"id": building_id, "base_m": shown, "surfaces": []}


def _lowest_z_per_building(
    geometries: npt.NDArray[np.object_], codes: npt.NDArray[np.intp], buildings: int
) -> npt.NDArray[np.float64]:
    """The lowest z (m) of each building's vertices (its ground), by building code; 0 without any."""
    coords, row = shapely.get_coordinates(geometries, include_z=True, return_index=True)
    lowest = np.full(buildings, np.nan)
    np.fmin.at(lowest, codes[row], coords[:, 2])
    filled: npt.NDArray[np.float64] = np.where(np.isnan(lowest), 0.0, lowest)
    return filled
