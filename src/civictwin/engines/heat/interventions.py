"""Greening and cooling interventions, and how each changes exactly the grid cells it selects.

- ``plant_street_trees``: trees along the selected streets, on both sides just beyond the carriageway,
  every ``spacing_m`` metres (or ``count`` trees spread evenly).
- ``plant_trees_in_area``: trees inside a polygon, ``count`` of them or as many as reach a
  ``canopy_share`` of the polygon's open ground.
- ``depave``: the paved ground inside a polygon becomes grass (buildings and water stay); a public
  depaved area also counts as public green for green access.
- ``green_roofs``: the roofs of the selected buildings become vegetated.
- ``cool_surfaces``: roofs and/or pavements inside a polygon get a higher albedo.

A new tree is a crown disk of canopy on cells that are not buildings or water. Every intervention that
selects no cell is a :class:`~civictwin.errors.ScenarioError` naming the scenario and the intervention.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import geopandas as gpd
import numpy as np
import shapely
from numpy.typing import NDArray
from pydantic import Field, model_validator

from civictwin.engines.heat.rasters import LANE_WIDTH_M, Cover, Surface
from civictwin.errors import ScenarioError
from civictwin.i18n import N_
from civictwin.scenarios.selection import load_polygon, select_buildings, select_edges
from civictwin.scenarios.spec import BuildingSelection, Intervention, Scenario, StreetSelection

_Radius = Annotated[float, Field(gt=0, le=15)]
_Height = Annotated[float, Field(ge=2, le=40)]
_KERB_GAP_M = 1.0  # trees stand this far beyond the carriageway's edge
Surfaces = Literal["roofs", "pavements"]
_BOTH_SURFACES: tuple[Surfaces, ...] = ("roofs", "pavements")


class PlantStreetTrees(StreetSelection, Intervention):
    """Trees along the selected streets (both sides), every ``spacing_m`` or ``count`` in all."""

    type: Literal["plant_street_trees"]
    spacing_m: Annotated[float, Field(gt=0, le=200)] = 10.0
    count: Annotated[int, Field(gt=0)] | None = None
    crown_radius_m: _Radius = 3.0
    height_m: _Height = 10.0


class PlantTreesInArea(Intervention):
    """Trees inside ``polygon``: ``count`` trees, or enough to cover ``canopy_share`` of its open ground."""

    type: Literal["plant_trees_in_area"]
    polygon: Annotated[str, Field(min_length=1)]
    count: Annotated[int, Field(gt=0)] | None = None
    canopy_share: Annotated[float, Field(gt=0, le=1)] | None = None
    crown_radius_m: _Radius = 3.0
    height_m: _Height = 10.0

    @model_validator(mode="after")
    def _one_target(self) -> PlantTreesInArea:
        if (self.count is None) == (self.canopy_share is None):
            raise ValueError(N_("give either `count` or `canopy_share`"))
        return self

    def describe(self) -> str:
        """How many trees, where."""
        amount = (
            f"{self.count} trees" if self.count else f"canopy over {self.canopy_share:.0%} of open ground"
        )
        return f"{amount} inside a polygon"


class Depave(Intervention):
    """Paved ground inside ``polygon`` becomes grass; ``public`` green counts for green access."""

    type: Literal["depave"]
    polygon: Annotated[str, Field(min_length=1)]
    public: bool = True

    def describe(self) -> str:
        """Where."""
        return "paved ground inside a polygon turned to " + ("public " if self.public else "") + "green"


class GreenRoofs(BuildingSelection, Intervention):
    """Vegetated roofs on the selected buildings (the shared building selection: zones, polygon, uses,
    construction period, OSM ids; all given must hold)."""

    type: Literal["green_roofs"]

    def describe(self) -> str:
        """Which buildings."""
        return "green roofs on " + BuildingSelection.describe(self)


class CoolSurfaces(Intervention):
    """Roofs and/or pavements inside ``polygon`` get albedo ``albedo`` (e.g. 0.5 for a light coating)."""

    type: Literal["cool_surfaces"]
    polygon: Annotated[str, Field(min_length=1)]
    albedo: Annotated[float, Field(gt=0, lt=1)]
    surfaces: list[Surfaces] = Field(default_factory=lambda: list(_BOTH_SURFACES), min_length=1)

    def describe(self) -> str:
        """What, how bright."""
        return f"{' and '.join(self.surfaces)} at albedo {self.albedo:g} inside a polygon"


HeatIntervention = PlantStreetTrees | PlantTreesInArea | Depave | GreenRoofs | CoolSurfaces
INTERVENTION_TYPES: dict[str, type[Intervention]] = {
    "plant_street_trees": PlantStreetTrees,
    "plant_trees_in_area": PlantTreesInArea,
    "depave": Depave,
    "green_roofs": GreenRoofs,
    "cool_surfaces": CoolSurfaces,
}


def heat_interventions(scenario: Scenario) -> list[tuple[int, HeatIntervention]]:
    """The scenario's heat interventions with their index in the file (others' are left out)."""
    return [
        (index, item)
        for index, item in enumerate(scenario.interventions)
        if isinstance(item, PlantStreetTrees | PlantTreesInArea | Depave | GreenRoofs | CoolSurfaces)
    ]


@dataclass(frozen=True)
class Place:
    """What selections resolve against: network edges, buildings, zones (GeoDataFrames in ``crs``), the
    scenario's folder. Without ``zones`` a building selection by zone is an error line."""

    edges: gpd.GeoDataFrame
    buildings: gpd.GeoDataFrame
    crs: str
    base_dir: Path
    zones: gpd.GeoDataFrame | None = None


def apply(
    surface: Surface, intervention: HeatIntervention, place: Place
) -> tuple[Surface, NDArray[np.bool_]]:
    """The surface after ``intervention``, and the cells it selected (ScenarioError when none)."""
    if isinstance(intervention, PlantStreetTrees):
        points = street_tree_points(intervention, place)
        changed, result = _plant(surface, points, intervention.crown_radius_m, intervention.height_m)
    elif isinstance(intervention, PlantTreesInArea):
        area = load_polygon(intervention.polygon, crs=place.crs, base_dir=place.base_dir)
        points = area_tree_points(surface, area, intervention)
        changed, result = _plant(surface, points, intervention.crown_radius_m, intervention.height_m)
    elif isinstance(intervention, Depave):
        area = load_polygon(intervention.polygon, crs=place.crs, base_dir=place.base_dir)
        inside = surface.grid.mask([area])
        changed = inside & np.isin(surface.cover, (Cover.PAVED, Cover.ASPHALT, Cover.BARE_SOIL))
        cover = np.where(changed, np.int8(Cover.GRASS), surface.cover).astype(np.int8)
        public = surface.public_green | (changed if intervention.public else False)
        result = surface.with_changes(cover=cover, public_green=public)
    elif isinstance(intervention, GreenRoofs):
        mask = select_buildings(
            place.buildings, intervention, crs=place.crs, base_dir=place.base_dir, zones=place.zones
        )
        chosen = place.buildings[mask.to_numpy()]
        changed = surface.grid.mask(chosen.geometry.to_numpy()) & (surface.cover == Cover.BUILDING)
        result = surface.with_changes(green_roof=surface.green_roof | changed)
    else:
        area = load_polygon(intervention.polygon, crs=place.crs, base_dir=place.base_dir)
        wanted = np.zeros(surface.grid.shape, dtype=bool)
        if "roofs" in intervention.surfaces:
            wanted |= surface.cover == Cover.BUILDING
        if "pavements" in intervention.surfaces:
            wanted |= np.isin(surface.cover, (Cover.PAVED, Cover.ASPHALT))
        changed = surface.grid.mask([area]) & wanted
        albedo = np.where(changed, np.float32(intervention.albedo), surface.albedo).astype(np.float32)
        result = surface.with_changes(albedo=albedo)
    if not changed.any():
        raise ScenarioError("selects no cell of the heat grid (nothing to change there)")
    return result, changed


def apply_all(
    surface: Surface, interventions: list[tuple[int, HeatIntervention]], place: Place, *, origin: str
) -> tuple[Surface, NDArray[np.bool_]]:
    """Apply ``(index, intervention)`` pairs in order; errors name ``origin`` and the intervention."""
    changed = np.zeros(surface.grid.shape, dtype=bool)
    for index, intervention in interventions:
        try:
            surface, cells = apply(surface, intervention, place)
        except ScenarioError as exc:
            label = f"interventions[{index}] ({intervention.type})" + (f": {exc.field}" if exc.field else "")
            raise ScenarioError(exc.message, path=origin, field=label) from None
        changed |= cells
    return surface, changed


def street_tree_points(spec: PlantStreetTrees, place: Place) -> NDArray[np.object_]:
    """Tree positions on both sides of the selected streets, just beyond each carriageway."""
    ids = select_edges(place.edges, spec, crs=place.crs, base_dir=place.base_dir)
    chosen = place.edges[place.edges["edge_id"].astype(str).isin(ids)]
    motor = chosen["car"].astype(bool) | chosen["bus"].astype(bool)
    lanes = chosen["lanes"].fillna(1).astype(float).where(motor, 0.0)
    ways = chosen.assign(motor_lanes=lanes).dissolve(by="osm_id", aggfunc={"motor_lanes": "sum"})
    lines: list[shapely.Geometry] = []
    for geom, width in zip(ways.geometry, ways["motor_lanes"] * LANE_WIDTH_M, strict=True):
        offset = max(width / 2, 1.0) + _KERB_GAP_M + spec.crown_radius_m
        for line in shapely.get_parts(shapely.line_merge(geom)):
            lines.extend(shapely.get_parts(shapely.offset_curve(line, side * offset)) for side in (1, -1))
    parts = [p for group in lines for p in np.atleast_1d(group) if not p.is_empty]
    lengths = np.array([p.length for p in parts])
    total = float(lengths.sum())
    if total == 0:
        return np.array([], dtype=object)
    spacing = total / spec.count if spec.count else spec.spacing_m
    points: list[shapely.Geometry] = []
    start = spacing / 2
    for part, length in zip(parts, lengths, strict=True):
        positions = np.arange(start, length, spacing)
        points.extend(shapely.line_interpolate_point(part, positions))
        start = (positions[-1] + spacing - length) if positions.size else start - length
    return np.asarray(points, dtype=object)


def area_tree_points(surface: Surface, area: shapely.Geometry, spec: PlantTreesInArea) -> NDArray[np.object_]:
    """Tree positions on a square lattice (one crown diameter apart) over the open ground of ``area``.

    With ``count``, the first ``count`` lattice points (row by row); with ``canopy_share``, as many as
    bring the canopy over the area's open ground to that share (existing canopy counts).
    """
    grid = surface.grid
    inside = grid.mask([area])
    open_ground = inside & ~np.isin(surface.cover, (Cover.BUILDING, Cover.WATER))
    west, south, east, north = area.bounds
    step = 2 * spec.crown_radius_m
    xs, ys = np.meshgrid(np.arange(west + step / 2, east, step), np.arange(north - step / 2, south, -step))
    lattice = shapely.points(xs.ravel(), ys.ravel())
    lattice = lattice[shapely.contains(area, lattice)]
    if spec.count is not None:
        return np.asarray(lattice[: spec.count], dtype=object)
    have = int(np.count_nonzero(open_ground & (surface.canopy_height_m > 0)))
    target = spec.canopy_share * int(np.count_nonzero(open_ground))  # type: ignore[operator]
    per_tree = max(np.pi * spec.crown_radius_m**2 / grid.cell_area_m2, 1.0)
    needed = int(np.ceil(max(target - have, 0.0) / per_tree))
    return np.asarray(lattice[:needed], dtype=object)


def _plant(
    surface: Surface, points: NDArray[np.object_], radius_m: float, height_m: float
) -> tuple[NDArray[np.bool_], Surface]:
    crowns = shapely.buffer(points, radius_m) if len(points) else np.array([], dtype=object)
    plantable = ~np.isin(surface.cover, (Cover.BUILDING, Cover.WATER))
    changed = surface.grid.mask(crowns) & plantable & (surface.canopy_height_m < height_m)
    canopy = np.where(changed, np.float32(height_m), surface.canopy_height_m).astype(np.float32)
    return changed, surface.with_changes(canopy_height_m=canopy)


SCENARIO_EXAMPLES = """\
# Heat and green (street selections as traffic's; polygons are WKT in WGS84 or a file path):

# [[interventions]]
# type = "plant_street_trees"    # both sides of the selected streets
# streets = ["Mannerheimintie"]
# spacing_m = 10.0               # or count = 120 spread evenly
# crown_radius_m = 3.0
# height_m = 10.0

# [[interventions]]
# type = "plant_trees_in_area"
# polygon = "POLYGON ((24.940 60.168, 24.944 60.168, 24.944 60.170, 24.940 60.170, 24.940 60.168))"
# canopy_share = 0.3             # or count = 50

# [[interventions]]
# type = "depave"                # paved ground inside the polygon becomes grass
# polygon = "park.geojson"
# public = true                  # counts as public green for green access

# [[interventions]]
# type = "green_roofs"
# uses = ["commercial"]          # the shared building selection: zones, polygon, uses, osm_ids

# [[interventions]]
# type = "cool_surfaces"
# polygon = "POLYGON ((...))"
# albedo = 0.5
# surfaces = ["roofs", "pavements"]
"""
