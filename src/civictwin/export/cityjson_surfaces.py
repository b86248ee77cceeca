"""Buildings that came from a 3D city model, back to CityJSON 2.0 with every LoD and its semantics.

The surfaces the ``cityjson``/``citygml`` readers stored (``building_surfaces`` and
``building_surfaces_other_lods``) keep, per polygon, the geometry it belonged to (type, LoD,
solid, shell, position) and its semantic surface, so each object is rebuilt with the same nesting:
``MultiSurface``/``CompositeSurface`` → surfaces, ``Solid`` → shells, ``MultiSolid``/
``CompositeSolid`` → solids. Rings keep their vertex order (outer rings counter-clockwise seen from
outside, as read). Attributes come from the city model's own table, parts become ``BuildingPart``
children.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import shapely
from pyproj import CRS
from pyproj.crs import CompoundCRS

from civictwin.store.base import Store
from civictwin.store.personal import personal_columns

SURFACE_TABLES = ("building_surfaces", "building_surfaces_other_lods")
Ring = list[int]
RingMaker = Callable[[Sequence[Sequence[float]]], Ring]


@dataclass
class CitySurfaces:
    """The stored surfaces of the twin's city-model buildings, grouped by building id."""

    by_building: dict[str, pd.DataFrame]
    attributes: dict[str, dict[str, Any]]
    parts: dict[str, dict[str, dict[str, Any]]]
    verticals: set[str]


def load_city_surfaces(store: Store, building_ids: Sequence[str]) -> CitySurfaces | None:
    """Surfaces, attributes and parts of the given city buildings (None when the twin has none)."""
    frames = [store.read_table(t) for t in SURFACE_TABLES if store.has_table(t)]
    if not frames or not any(len(f) for f in frames):
        return None
    surfaces = pd.concat([f for f in frames if len(f)], ignore_index=True)
    wanted = set(building_ids)
    surfaces = surfaces[surfaces["building_id"].isin(wanted)]
    attributes: dict[str, dict[str, Any]] = {}
    parts: dict[str, dict[str, dict[str, Any]]] = {}
    verticals: set[str] = set()
    quality = store.records("quality")
    catalogue = store.records("catalog")
    for source in sorted(surfaces["source"].dropna().unique()):
        if not store.has_table(source):
            continue
        verticals.add(str(quality.get(source, {}).get("vertical_crs")))
        table = store.read_table(source, columns=["building_id", "attributes", "parts"])
        withheld = personal_columns(catalogue.get(source))  # personal attributes never leave the twin
        for row in table[table["building_id"].isin(wanted)].to_dict("records"):
            key = str(row["building_id"])
            kept = json.loads(row["attributes"]) if isinstance(row["attributes"], str) else {}
            attributes[key] = {name: value for name, value in kept.items() if name not in withheld}
            parts[key] = json.loads(row["parts"]) if isinstance(row["parts"], str) else {}
    groups = {str(k): g for k, g in surfaces.groupby("building_id", sort=False)}
    return CitySurfaces(by_building=groups, attributes=attributes, parts=parts, verticals=verticals)


def city_objects(
    ident: str,
    surfaces: pd.DataFrame,
    attributes: dict[str, Any],
    parts: dict[str, dict[str, Any]],
    ring: RingMaker,
) -> dict[str, Any]:
    """The Building (and its BuildingParts) of one city-model building, from its stored surfaces."""
    building: dict[str, Any] = {"type": "Building", "attributes": attributes}
    objects: dict[str, Any] = {ident: building}
    own = surfaces[surfaces["part_id"].isna()]
    if len(own):
        building["geometry"] = _geometries(own, ring)
    children = [p for p in parts if (surfaces["part_id"] == p).any()]
    if children:
        building["children"] = children
    for part in children:
        part_object: dict[str, Any] = {"type": "BuildingPart", "parents": [ident]}
        if parts.get(part):
            part_object["attributes"] = parts[part]
        part_object["geometry"] = _geometries(surfaces[surfaces["part_id"] == part], ring)
        objects[part] = part_object
    if not building["attributes"]:
        del building["attributes"]
    return objects


def _geometries(surfaces: pd.DataFrame, ring: RingMaker) -> list[dict[str, Any]]:
    out = []
    for _index, group in surfaces.groupby("geometry_index", sort=True):
        out.append(_geometry(group.sort_values(["solid", "shell", "surface_index"]), ring))
    return out


def _geometry(group: pd.DataFrame, ring: RingMaker) -> dict[str, Any]:
    kind = str(group["geometry_type"].iloc[0])
    semantic_index: dict[str, int] = {}
    semantic_list: list[dict[str, Any]] = []
    nested: dict[int, dict[int, list[tuple[list[Ring], int | None]]]] = {}
    for row in group.to_dict("records"):
        polygon = row["geometry"]
        rings = [ring(list(r.coords)[:-1]) for r in (polygon.exterior, *polygon.interiors)]
        value = None
        semantic = row["semantic"]
        if isinstance(semantic, str):
            extra = (
                json.loads(row["surface_attributes"]) if isinstance(row["surface_attributes"], str) else {}
            )
            key = json.dumps({"type": semantic, **extra}, sort_keys=True)
            if key not in semantic_index:
                semantic_index[key] = len(semantic_list)
                semantic_list.append({"type": semantic, **extra})
            value = semantic_index[key]
        nested.setdefault(int(row["solid"]), {}).setdefault(int(row["shell"]), []).append((rings, value))
    solids = [
        [[s[0] for s in shell] for _h, shell in sorted(shells.items())]
        for _s, shells in sorted(nested.items())
    ]
    values = [
        [[s[1] for s in shell] for _h, shell in sorted(shells.items())]
        for _s, shells in sorted(nested.items())
    ]
    if kind in ("MultiSurface", "CompositeSurface"):
        boundaries: Any = solids[0][0]
        semantic_values: Any = values[0][0]
    elif kind == "Solid":
        boundaries, semantic_values = solids[0], values[0]
    else:
        boundaries, semantic_values = solids, values
    geometry: dict[str, Any] = {"type": kind, "lod": str(group["lod"].iloc[0]), "boundaries": boundaries}
    if semantic_list:
        geometry["semantics"] = {"surfaces": semantic_list, "values": semantic_values}
    return geometry


def reference_system(horizontal: str, verticals: set[str]) -> str:
    """The CRS URL of the export: the twin's CRS, compounded with the models' one vertical datum if EPSG knows it."""
    crs = CRS.from_user_input(horizontal)
    known = {v for v in verticals if v and v != "None"}
    if len(known) == 1 and not crs.is_compound:
        vertical = CRS.from_user_input(next(iter(known)))
        compound = CompoundCRS(name=f"{crs.name} + {vertical.name}", components=[crs, vertical])
        authority = compound.to_authority(min_confidence=90)
        if authority is not None:
            return f"https://www.opengis.net/def/crs/{authority[0]}/0/{authority[1]}"
    authority = crs.to_authority()
    assert authority is not None
    return f"https://www.opengis.net/def/crs/{authority[0]}/0/{authority[1]}"


def bounds_z(surfaces: pd.DataFrame) -> tuple[float, float]:
    """Lowest and highest z of a set of stored surfaces."""
    coords = shapely.get_coordinates(surfaces["geometry"].to_numpy(), include_z=True)
    return float(coords[:, 2].min()), float(coords[:, 2].max())
