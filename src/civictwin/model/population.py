"""Residents per building: from an observed grid when one is given, else a dasymetric estimate.

The estimate spreads people over residential floor area: residents = residential floor area ×
persons per m² (``population.persons_per_m2``). Typed buildings are residential or not by their use
class; untyped ones (``building=yes``) take their share from the OSM land use around them
(residential land → all, commercial/civic/industrial land → none, elsewhere the configurable
``mixed_use_residential_share``): a multi-class dasymetric method with land use as ancillary data.
The method and the error measured against Helsinki's real population grid are in
docs/methods-population.md.

An observed grid is authoritative (:func:`place_grid_population`): every person of every kept cell
stays in the twin, in residential floor area where the cell has some, else on the cell's buildable
land (the cell within the area, less water, green space, non-residential land use and building
footprints).
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from civictwin.config import PopulationSection

RESIDENTIAL_LANDUSE = frozenset({"residential"})
NON_RESIDENTIAL_LANDUSE = frozenset({
    "commercial", "retail", "industrial", "civil", "education", "religious", "railway", "military",
    "port", "construction", "garages",
})  # fmt: skip


def landuse_of(buildings: gpd.GeoDataFrame, landuse: gpd.GeoDataFrame) -> pd.Series:
    """The OSM ``landuse`` value of the polygon holding each building's centroid (None outside any)."""
    centroids = gpd.GeoDataFrame(geometry=buildings.geometry.centroid.to_numpy(), crs=buildings.crs)
    joined = gpd.sjoin(centroids, landuse[["landuse", "geometry"]], how="left", predicate="within")
    first = joined[~joined.index.duplicated(keep="first")]["landuse"]
    return pd.Series(first.to_numpy(), index=buildings.index, dtype=object)


def residential_floor_area(buildings: gpd.GeoDataFrame, settings: PopulationSection) -> pd.Series:
    """Floor area (m²) assumed residential in each building (uses a ``landuse`` column if present)."""
    landuse = buildings["landuse"] if "landuse" in buildings else pd.Series(None, index=buildings.index)
    untyped_share = np.select(
        [landuse.isin(RESIDENTIAL_LANDUSE).to_numpy(), landuse.isin(NON_RESIDENTIAL_LANDUSE).to_numpy()],
        [1.0, 0.0],
        settings.mixed_use_residential_share,
    )
    share = np.select(
        [buildings["use"].eq("residential").to_numpy(), buildings["use"].eq("unknown").to_numpy()],
        [1.0, untyped_share],
        0.0,
    )
    return pd.Series(buildings["floor_area_m2"].to_numpy() * share, index=buildings.index)


def estimate_population(buildings: gpd.GeoDataFrame, settings: PopulationSection) -> pd.Series:
    """Estimated residents per building (dasymetric, from residential floor area)."""
    return (residential_floor_area(buildings, settings) * settings.persons_per_m2).round(2)


@dataclass(frozen=True)
class GridPlacement:
    """Where a grid's people went: per-building residents and the buildable land of the other cells."""

    residents: pd.Series
    """Residents per building (index of the buildings)."""
    land: gpd.GeoDataFrame
    """Columns ``cell`` (row of the grid), ``population`` (people on that land) and the land polygon."""
    in_buildings: float
    on_land: float
    whole_cell_fallbacks: int
    """Cells with no buildable land left, whose people were spread over the cell within the area."""

    def quality(self) -> dict[str, float | int]:
        """The placement as a quality entry: totals and shares (0–1) in buildings and on land."""
        total = self.in_buildings + self.on_land
        return {
            "total": round(total, 2),
            "in_residential_floor_area": round(self.in_buildings, 2),
            "on_buildable_land": round(self.on_land, 2),
            "share_in_residential_floor_area": round(self.in_buildings / total, 4) if total else 0.0,
            "share_on_buildable_land": round(self.on_land / total, 4) if total else 0.0,
            "cells_on_buildable_land": len(self.land),
            "cells_without_buildable_land": self.whole_cell_fallbacks,
        }


def unbuildable_land(
    buildings: gpd.GeoDataFrame, *, landuse: gpd.GeoDataFrame | None, green: gpd.GeoDataFrame | None,
    water: gpd.GeoDataFrame | None,
) -> npt.NDArray[np.object_]:  # fmt: skip
    """Polygons where no one can be placed on open land: footprints, water, green, non-residential use."""
    parts = [buildings.geometry.to_numpy()]
    if landuse is not None and len(landuse):
        parts.append(landuse.geometry[landuse["landuse"].isin(NON_RESIDENTIAL_LANDUSE)].to_numpy())
    parts += [frame.geometry.to_numpy() for frame in (green, water) if frame is not None and len(frame)]
    polygons: npt.NDArray[np.object_] = np.concatenate([np.asarray(p, dtype=object) for p in parts])
    areal: npt.NDArray[np.object_] = polygons[shapely.get_dimensions(polygons) == 2]
    return areal


def place_grid_population(
    buildings: gpd.GeoDataFrame,
    grid: gpd.GeoDataFrame,
    *,
    column: str,
    settings: PopulationSection,
    area: BaseGeometry,
    unbuildable: npt.NDArray[np.object_],
) -> GridPlacement:
    """Place every person of ``grid[column]``: in residential floor area, else on buildable land.

    A cell's people go to the buildings whose centroid lies in it, in proportion to residential floor
    area. A cell with people but no residential floor area spreads them evenly over its buildable land:
    the cell within ``area`` less the ``unbuildable`` polygons; where nothing is left, over the cell
    within the area (counted in ``whole_cell_fallbacks``). Nobody is dropped, so the placed total
    equals the grid's total.
    """
    weights = residential_floor_area(buildings, settings)
    points = gpd.GeoDataFrame(
        {"weight": weights.to_numpy()}, geometry=buildings.geometry.centroid.to_numpy(), crs=buildings.crs
    )
    cells = grid[[column, "geometry"]].reset_index(drop=True)
    people = cells[column].astype("float64").fillna(0.0)
    joined = gpd.sjoin(points, cells, how="inner", predicate="within")
    joined = joined[~joined.index.duplicated(keep="first")]
    cell_weight = joined.groupby("index_right")["weight"].sum().reindex(cells.index, fill_value=0.0)
    housed = cell_weight > 0
    share = joined["weight"] / joined["index_right"].map(cell_weight)
    per_building = (share * joined["index_right"].map(people)).where(joined["index_right"].map(housed), 0.0)
    residents = per_building.reindex(buildings.index, fill_value=0.0).fillna(0.0)
    homeless = cells.index[~housed & (people > 0)]
    land, fallbacks = _buildable_land(cells.geometry.to_numpy()[homeless], area, unbuildable)
    land_frame = gpd.GeoDataFrame(
        {"cell": homeless.to_numpy(), "population": people[homeless].to_numpy()},
        geometry=land, crs=grid.crs,
    )  # fmt: skip
    return GridPlacement(
        residents=pd.Series(residents.to_numpy(), index=buildings.index),
        land=land_frame,
        in_buildings=float(people[housed].sum()),
        on_land=float(people[homeless].sum()),
        whole_cell_fallbacks=fallbacks,
    )


def _buildable_land(
    cells: npt.NDArray[np.object_], area: BaseGeometry, unbuildable: npt.NDArray[np.object_]
) -> tuple[npt.NDArray[np.object_], int]:
    """Each cell within the area less the unbuildable polygons it meets; the cell within the area if empty."""
    within = shapely.intersection(cells, area)
    within = np.where(shapely.area(within) > 0, within, cells)
    tree = shapely.STRtree(unbuildable)
    land = np.empty(len(cells), dtype=object)
    fallbacks = 0
    for i, cell in enumerate(within):
        blocked = unbuildable[tree.query(cell, predicate="intersects")]
        left = shapely.difference(cell, shapely.union_all(blocked)) if len(blocked) else cell
        if shapely.area(left) <= 0:
            left, fallbacks = cell, fallbacks + 1
        land[i] = left
    return land, fallbacks
