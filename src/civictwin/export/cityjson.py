"""Export the twin's buildings as a CityJSON 2.0 city model of LoD1 solids.

Each footprint is extruded from the ground (z = 0) to its ``height_m``: a ``GroundSurface`` facing
down, a ``RoofSurface`` facing up, and one ``WallSurface`` per footprint edge facing out, holes
included (their walls face into the courtyard). Every surface's outer ring is counter-clockwise
seen from outside the solid, as CityJSON requires. A building with a multipolygon footprint becomes
a ``Building`` with one ``BuildingPart`` child (one solid) per polygon: CityJSON does not allow a
``MultiSolid`` on a building, and a ``CompositeSolid`` must be one connected volume, which separate
parts are not.

Coordinates are in the twin's metric CRS, stored as integers with ``transform`` (millimetres).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from pyproj import CRS
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.polygon import orient

from civictwin.errors import ExportError
from civictwin.export.cityjson_surfaces import (
    CitySurfaces,
    bounds_z,
    city_objects,
    load_city_surfaces,
    reference_system,
)
from civictwin.export.layers import atomic_path, refuse_home_locations
from civictwin.store.base import Store
from civictwin.store.personal import read_published

VERSION = "2.0"
SCALE = 0.001
LOD = "1"
ATTRIBUTES = (
    "osm_id",
    "building",
    "use",
    "height_m",
    "height_source",
    "levels",
    "population_est",
    "year_built",
)
SURFACES = [{"type": "GroundSurface"}, {"type": "RoofSurface"}, {"type": "WallSurface"}]
_GROUND, _ROOF, _WALL = 0, 1, 2

# A surface is a list of rings; a ring a list of vertex indices; a shell a list of surfaces.
Ring = list[int]
Surface = list[Ring]


class _Vertices:
    """The shared vertex list: real coordinates in, quantised and de-duplicated indices out."""

    def __init__(self, translate: tuple[float, float]) -> None:
        self.translate = translate
        self._index: dict[tuple[int, int, int], int] = {}

    def ring(self, coords: Sequence[Sequence[float]], z: float) -> Ring:
        """Indices of a closed ring's points at height ``z`` (closing point and repeats removed)."""
        points: list[tuple[int, int, int]] = []
        for x, y, *_ in coords[:-1]:
            point = self._quantise(x, y, z)
            if not points or points[-1] != point:
                points.append(point)
        while len(points) > 1 and points[0] == points[-1]:
            points.pop()
        return [self._index.setdefault(p, len(self._index)) for p in points]

    def ring3d(self, coords: Sequence[Sequence[float]]) -> Ring:
        """Indices of an open 3D ring's points (its order kept, exact repeats after quantising removed)."""
        points: list[tuple[int, int, int]] = []
        for x, y, z in coords:
            point = self._quantise(x, y, z)
            if not points or points[-1] != point:
                points.append(point)
        while len(points) > 1 and points[0] == points[-1]:
            points.pop()
        return [self._index.setdefault(p, len(self._index)) for p in points]

    def _quantise(self, x: float, y: float, z: float) -> tuple[int, int, int]:
        tx, ty = self.translate
        return (round((x - tx) / SCALE), round((y - ty) / SCALE), round(z / SCALE))

    def as_list(self) -> list[list[int]]:
        return [list(p) for p in self._index]


def buildings_to_cityjson(store: Store, *, table: str = "buildings_3d") -> dict[str, Any]:
    """The buildings of ``table`` as a CityJSON 2.0 document (a dict ready for ``json.dump``)."""
    frame = _buildings(store, table)
    minx, miny, maxx, maxy = frame.total_bounds if len(frame) else (0.0, 0.0, 0.0, 0.0)
    vertices = _Vertices((float(minx), float(miny)))
    objects: dict[str, Any] = {}
    identifiers = _identifiers(frame)
    city = load_city_surfaces(store, _city_ids(frame)) if len(frame) else None
    lowest, top = math.inf, -math.inf
    for ident, row in zip(identifiers, frame.to_dict("records"), strict=True):
        surfaces = _surfaces_of(city, row)
        if surfaces is not None and city is not None:
            city_id = str(row["city_id"])
            attributes = {**city.attributes.get(city_id, {}), **_attributes(row)}
            objects.update(
                city_objects(ident, surfaces, attributes, city.parts.get(city_id, {}), vertices.ring3d)
            )
            low, high = bounds_z(surfaces)
            lowest, top = min(lowest, low), max(top, high)
        else:
            objects.update(_city_objects(ident, row, vertices, table))
            lowest, top = min(lowest, 0.0), max(top, float(row["height_m"]))
    document: dict[str, Any] = {
        "type": "CityJSON",
        "version": VERSION,
        "transform": {"scale": [SCALE, SCALE, SCALE], "translate": [float(minx), float(miny), 0.0]},
        "metadata": {
            "title": f"{_twin_name(store)}: "
            + ("LoD1 buildings" if city is None else "buildings with the city model's LoDs"),
            "referenceSystem": crs_url(store.crs)
            if city is None
            else reference_system(store.crs, city.verticals),
        },
        "CityObjects": objects,
        "vertices": vertices.as_list(),
    }
    if len(frame):
        document["metadata"]["geographicalExtent"] = [
            float(minx),
            float(miny),
            lowest,
            float(maxx),
            float(maxy),
            top,
        ]
    return document


def write_cityjson(store: Store, path: Path, *, table: str = "buildings_3d") -> int:
    """Write :func:`buildings_to_cityjson` to ``path`` (atomically); returns the number of buildings."""
    document = buildings_to_cityjson(store, table=table)
    with atomic_path(path) as partial:
        partial.write_text(json.dumps(document, separators=(",", ":"), allow_nan=False), encoding="utf-8")
    return sum(1 for o in document["CityObjects"].values() if o["type"] == "Building")


def crs_url(crs: str) -> str:
    """The OGC URL CityJSON uses for a CRS, e.g. ``https://www.opengis.net/def/crs/EPSG/0/32635``."""
    authority = CRS.from_user_input(crs).to_authority()
    if authority is None:
        raise ExportError(f"CRS {crs} has no authority code; CityJSON needs one")
    return f"https://www.opengis.net/def/crs/{authority[0]}/0/{authority[1]}"


def _buildings(store: Store, table: str) -> gpd.GeoDataFrame:
    if not store.has_table(table):
        raise ExportError(f"no layer '{table}' in this twin")
    refuse_home_locations(store, table)
    frame = read_published(store, table)  # personal columns never leave the twin
    if not isinstance(frame, gpd.GeoDataFrame) or "height_m" not in frame.columns:
        raise ExportError(f"layer '{table}' is not a buildings layer (needs geometry and height_m)")
    return frame


def _city_ids(frame: pd.DataFrame) -> list[str]:
    return [str(v) for v in frame["city_id"].dropna()] if "city_id" in frame.columns else []


def _surfaces_of(city: CitySurfaces | None, row: dict[str, Any]) -> pd.DataFrame | None:
    """The stored surfaces of a row's city-model building, if it has any."""
    city_id = row.get("city_id")
    if city is None or not isinstance(city_id, str):
        return None
    return city.by_building.get(city_id)


def _identifiers(frame: pd.DataFrame) -> list[str]:
    """Stable object ids: ``building_id`` where the twin has one, else OSM type and id (``way-123``).

    Unique even if the table repeats one.
    """
    if "building_id" in frame.columns and frame["building_id"].notna().all():
        base = [str(b) for b in frame["building_id"]]
    elif {"osm_type", "osm_id"} <= set(frame.columns):
        base = [f"{t}-{i}" for t, i in zip(frame["osm_type"], frame["osm_id"], strict=True)]
    else:
        base = [f"building-{n}" for n in range(len(frame))]
    seen: dict[str, int] = {}
    unique = []
    for ident in base:
        seen[ident] = seen.get(ident, 0) + 1
        unique.append(ident if seen[ident] == 1 else f"{ident}-{seen[ident]}")
    return unique


def _city_objects(ident: str, row: dict[str, Any], vertices: _Vertices, table: str) -> dict[str, Any]:
    """The Building (and its BuildingParts, for a multi-part footprint) of one row."""
    height = row["height_m"]
    if not _present(height) or height < SCALE:
        raise ExportError(f"{table}: building {ident} has no positive height_m ({height})")
    footprint = row["geometry"]
    if isinstance(footprint, Polygon):
        parts = [footprint]
    elif isinstance(footprint, MultiPolygon):
        parts = list(footprint.geoms)
    else:
        raise ExportError(f"{table}: building {ident} has a {footprint.geom_type} footprint, not a polygon")
    building: dict[str, Any] = {"type": "Building", "attributes": _attributes(row)}
    solids = [_solid(ident, part, float(height), vertices) for part in parts]
    if len(solids) == 1:
        building["geometry"] = [solids[0]]
        return {ident: building}
    children = {f"{ident}-part-{n}": solid for n, solid in enumerate(solids, start=1)}
    building["children"] = list(children)
    objects: dict[str, Any] = {ident: building}
    for child, solid in children.items():
        objects[child] = {"type": "BuildingPart", "parents": [ident], "geometry": [solid]}
    return objects


def _solid(ident: str, polygon: Polygon, height: float, vertices: _Vertices) -> dict[str, Any]:
    """An extruded LoD1 solid: ground (down), roof (up), then one wall per edge of every ring (out)."""
    polygon = orient(polygon, sign=1.0)  # exterior counter-clockwise, holes clockwise, seen from above
    rings_low = [vertices.ring(r.coords, 0.0) for r in (polygon.exterior, *polygon.interiors)]
    rings_high = [vertices.ring(r.coords, height) for r in (polygon.exterior, *polygon.interiors)]
    if len(rings_low[0]) < 3:
        raise ExportError(f"building {ident}: footprint smaller than a millimetre, cannot extrude it")
    keep = [i for i, ring in enumerate(rings_low) if len(ring) >= 3]  # holes that collapsed are dropped
    ground: Surface = [list(reversed(rings_low[i])) for i in keep]
    roof: Surface = [rings_high[i] for i in keep]
    walls = [wall for i in keep for wall in _walls(rings_low[i], rings_high[i])]
    return {
        "type": "Solid",
        "lod": LOD,
        "boundaries": [[ground, roof, *walls]],
        "semantics": {"surfaces": SURFACES, "values": [[_GROUND, _ROOF, *([_WALL] * len(walls))]]},
    }


def _walls(low: Ring, high: Ring) -> Iterable[Surface]:
    """One quad per edge: along the edge at the bottom, up, back along the top (normal points outward)."""
    count = len(low)
    for i in range(count):
        j = (i + 1) % count
        yield [[low[i], low[j], high[j], high[i]]]


def _attributes(row: dict[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for name in ATTRIBUTES:
        value: Any = row.get(name)
        if _present(value):
            attributes[name] = value.item() if hasattr(value, "item") else value
    return attributes


def _present(value: Any) -> bool:
    if value is None or value is pd.NA:
        return False
    return not (isinstance(value, float) and math.isnan(value))


def _twin_name(store: Store) -> str:
    return str(store.records("meta").get("twin", {}).get("name") or "twin")
