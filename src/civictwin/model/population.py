"""Residents per building: from an observed grid when one is given, else a dasymetric estimate.

The estimate spreads people over residential floor area: residents = residential floor area ×
persons per m² (``population.persons_per_m2``). Typed buildings are residential or not by their use
class; untyped ones (``building=yes``) take their share from the OSM land use around them
(residential land → all, commercial/civic/industrial land → none, elsewhere the configurable
``mixed_use_residential_share``): a multi-class dasymetric method with land use as ancillary data.
The method and the error measured against Helsinki's real population grid are in
docs/methods-population.md.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

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


def population_from_grid(
    buildings: gpd.GeoDataFrame, grid: gpd.GeoDataFrame, column: str, settings: PopulationSection
) -> pd.Series:
    """Residents per building by spreading each grid cell's count over its residential floor area.

    A cell's people go to the buildings whose centroid lies in it, in proportion to residential floor
    area; cells with people but no residential floor area spread them over all floor area in the
    cell; people in cells with no building at all cannot be placed and are left out (counted by
    :func:`unplaced_population`).
    """
    weights = residential_floor_area(buildings, settings)
    points = gpd.GeoDataFrame(
        {"weight": weights.to_numpy(), "floor": buildings["floor_area_m2"].to_numpy()},
        geometry=buildings.geometry.centroid.to_numpy(),
        crs=buildings.crs,
    )
    cells = grid[[column, "geometry"]].reset_index(drop=True)
    joined = gpd.sjoin(points, cells, how="left", predicate="within")
    joined = joined[~joined.index.duplicated(keep="first")]
    cell = joined["index_right"]
    by_cell_weight = joined.groupby(cell)["weight"].transform("sum")
    by_cell_floor = joined.groupby(cell)["floor"].transform("sum")
    use_floor = by_cell_weight <= 0
    share = np.where(use_floor, joined["floor"] / by_cell_floor, joined["weight"] / by_cell_weight)
    people = cells[column].astype("float64").reindex(cell.to_numpy()).to_numpy()
    result = pd.Series(np.nan_to_num(share * people), index=buildings.index)
    return result.round(2)


def unplaced_population(buildings: gpd.GeoDataFrame, grid: gpd.GeoDataFrame, column: str) -> float:
    """People in grid cells that contain no building centroid (they cannot be assigned)."""
    centroids = gpd.GeoDataFrame(geometry=buildings.geometry.centroid.to_numpy(), crs=buildings.crs)
    hit = gpd.sjoin(grid[[column, "geometry"]], centroids, how="inner", predicate="contains")
    empty = ~grid.index.isin(hit.index)
    return float(grid.loc[empty, column].astype("float64").sum())
