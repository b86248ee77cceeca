"""The twin's layers as aligned grids: land cover, building and canopy heights, residents, zones.

Everything is rasterised with :func:`rasterio.features.rasterize` on one north-up grid of square cells
(``cell_m`` metres) in the twin's metric CRS, covering the buildings' extent. Land cover uses UMEP's
class ids, which SOLWEIG reads directly (``Cover``). Painting order, later wins: paved everywhere (a
city centre's default), green areas and grassy land uses, water, roads (carriageway width from the
network's lanes), buildings. Trees are a separate canopy-height grid (a crown disk per OSM tree), so a
tree over a pavement keeps the pavement underneath, as SOLWEIG's canopy DSM expects.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from numpy.typing import NDArray
from rasterio.features import rasterize
from rasterio.transform import Affine, from_origin

from civictwin.errors import EngineError

# OSM values painted as grass (the green layer's `kind`, the landuse layer's `landuse`).
GRASSY = frozenset(
    {"grass", "park", "garden", "meadow", "recreation_ground", "cemetery", "village_green", "allotments",
     "flowerbed", "scrub", "grassland", "heath", "wetland", "common", "dog_park", "nature_reserve",
     "forest", "wood", "playground"}
)  # fmt: skip
# Green kinds open to the public, for the green-access indicator (gardens and cemeteries left out).
PUBLIC_GREEN = frozenset({"park", "recreation_ground", "village_green", "common", "dog_park", "nature_reserve",
                          "forest", "wood", "playground", "grass", "meadow", "grassland", "heath", "scrub"})  # fmt: skip
LANE_WIDTH_M = 3.6  # Highway Capacity Manual base lane width (12 ft); see docs/methods-heat.md
PATH_WIDTH_M = 2.0  # footways, cycleways, steps: an assumption, see docs/methods-heat.md


class Cover(IntEnum):
    """Land-cover classes, numbered as UMEP/SOLWEIG number them."""

    PAVED = 0
    ASPHALT = 1
    BUILDING = 2
    GRASS = 5
    BARE_SOIL = 6
    WATER = 7


@dataclass(frozen=True)
class Grid:
    """Where the grids lie: ``shape`` (rows, cols), square ``cell_m`` cells, upper-left corner, CRS."""

    shape: tuple[int, int]
    cell_m: float
    west: float
    north: float
    crs: str

    @property
    def transform(self) -> Affine:
        """The rasterio/GDAL affine transform of the grid."""
        return from_origin(self.west, self.north, self.cell_m, self.cell_m)

    @property
    def cell_area_m2(self) -> float:
        """Area of one cell (m²)."""
        return self.cell_m**2

    @classmethod
    def covering(cls, bounds: tuple[float, float, float, float], *, cell_m: float, crs: str) -> Grid:
        """The smallest grid of ``cell_m`` cells covering ``(west, south, east, north)``."""
        west, south, east, north = bounds
        if not all(np.isfinite(bounds)) or east <= west or north <= south:
            raise EngineError(f"cannot lay a grid over the empty extent {bounds}")
        cols = int(np.ceil((east - west) / cell_m))
        rows = int(np.ceil((north - south) / cell_m))
        return cls(shape=(rows, cols), cell_m=cell_m, west=west, north=north, crs=crs)

    def cell_centres(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """x and y of every cell centre, as two (rows, cols) arrays."""
        rows, cols = self.shape
        xs = self.west + (np.arange(cols) + 0.5) * self.cell_m
        ys = self.north - (np.arange(rows) + 0.5) * self.cell_m
        return np.meshgrid(xs, ys)

    def mask(self, geometries: object, *, all_touched: bool = False) -> NDArray[np.bool_]:
        """Cells whose centre lies in any of ``geometries`` (or that they touch, with ``all_touched``)."""
        shapes = [g for g in np.asarray(geometries, dtype=object).ravel() if g is not None and not g.is_empty]
        if not shapes:
            return np.zeros(self.shape, dtype=bool)
        burned = rasterize(
            ((g, 1) for g in shapes), out_shape=self.shape, transform=self.transform, fill=0,
            all_touched=all_touched, dtype="uint8",
        )  # fmt: skip
        return np.asarray(burned, dtype=bool)


@dataclass(frozen=True)
class Surface:
    """The city as grids on one :class:`Grid`, ready for the cooling and comfort models.

    ``building_height_m`` and ``canopy_height_m`` are heights above ground (0 where none);
    ``albedo`` holds per-cell overrides (NaN where the class value applies); ``green_roof`` marks
    roofs turned green; ``residents`` are people per cell (each building's residents spread evenly over
    its cells); ``zone`` is the index into ``zone_ids`` (−1 outside every zone); ``public_green`` marks
    cells of public green spaces (for green access).
    """

    grid: Grid
    cover: NDArray[np.int8]
    building_height_m: NDArray[np.float32]
    canopy_height_m: NDArray[np.float32]
    albedo: NDArray[np.float32]
    green_roof: NDArray[np.bool_]
    residents: NDArray[np.float64]
    zone: NDArray[np.int32]
    zone_ids: tuple[str, ...]
    public_green: NDArray[np.bool_]

    def with_changes(self, **grids: object) -> Surface:
        """A copy with some grids replaced (interventions never modify a Surface in place)."""
        return replace(self, **grids)  # type: ignore[arg-type]


def build_surface(
    *,
    buildings: gpd.GeoDataFrame,
    trees: gpd.GeoDataFrame,
    green: gpd.GeoDataFrame,
    water: gpd.GeoDataFrame,
    landuse: gpd.GeoDataFrame,
    edges: gpd.GeoDataFrame,
    zones: gpd.GeoDataFrame,
    cell_m: float,
    crs: str,
    tree_crown_radius_m: float,
    tree_height_m: float,
) -> Surface:
    """Rasterise the twin's layers (GeoDataFrames in ``crs``) onto a grid over the buildings."""
    if buildings.empty:
        raise EngineError(
            "the twin has no buildings (layer buildings_3d is empty): nothing to place a grid on"
        )
    grid = Grid.covering(tuple(buildings.total_bounds), cell_m=cell_m, crs=crs)
    cover = np.full(grid.shape, Cover.PAVED, dtype=np.int8)
    grassy = np.concatenate([_rows(green, "kind", GRASSY), _rows(landuse, "landuse", GRASSY)])
    cover[grid.mask(grassy)] = Cover.GRASS
    cover[grid.mask(water.geometry.to_numpy())] = Cover.WATER
    paths, carriageways = street_areas(edges)
    cover[grid.mask(paths)] = Cover.PAVED
    cover[grid.mask(carriageways)] = Cover.ASPHALT
    heights = buildings["height_m"].to_numpy(dtype=float)
    if not np.isfinite(heights).all() or (heights <= 0).any():
        bad = int(np.count_nonzero(~np.isfinite(heights) | (heights <= 0)))
        raise EngineError(f"buildings_3d: {bad} buildings without a positive height_m")
    height = _burn_values(grid, buildings.geometry.to_numpy(), heights)
    cover[height > 0] = Cover.BUILDING
    crowns = shapely.buffer(trees.geometry.to_numpy(), tree_crown_radius_m)
    canopy = np.where(grid.mask(crowns) & (height <= 0), tree_height_m, 0.0).astype(np.float32)
    zone_index = _burn_values(grid, zones.geometry.to_numpy(), np.arange(len(zones), dtype=float), fill=-1.0)
    return Surface(
        grid=grid,
        cover=cover,
        building_height_m=height.astype(np.float32),
        canopy_height_m=canopy,
        albedo=np.full(grid.shape, np.nan, dtype=np.float32),
        green_roof=np.zeros(grid.shape, dtype=bool),
        residents=spread_residents(grid, buildings),
        zone=zone_index.astype(np.int32),
        zone_ids=tuple(str(z) for z in zones["zone_id"]),
        public_green=grid.mask(_rows(green, "kind", PUBLIC_GREEN)),
    )


def street_areas(edges: gpd.GeoDataFrame) -> tuple[NDArray[np.object_], NDArray[np.object_]]:
    """Footpath areas and carriageway areas: each OSM way buffered to its width.

    A carriageway is as wide as the car/bus lanes of all its directed edges together × the lane
    width; ways only for walking or cycling are ``PATH_WIDTH_M`` wide.
    """
    if edges.empty:
        return np.array([], dtype=object), np.array([], dtype=object)
    motor = edges["car"].astype(bool) | edges.get("bus", edges["car"]).astype(bool)
    lanes = edges["lanes"].fillna(1).astype(float).where(motor, 0.0)
    per_way = edges.assign(motor_lanes=lanes).dissolve(by="osm_id", aggfunc={"motor_lanes": "sum"})
    geoms = per_way.geometry.to_numpy()
    widths = per_way["motor_lanes"].to_numpy(dtype=float) * LANE_WIDTH_M
    is_road = widths > 0
    roads = shapely.buffer(geoms[is_road], widths[is_road] / 2, cap_style="flat")
    paths = shapely.buffer(geoms[~is_road], PATH_WIDTH_M / 2, cap_style="flat")
    return np.asarray(paths, dtype=object), np.asarray(roads, dtype=object)


def spread_residents(grid: Grid, buildings: gpd.GeoDataFrame) -> NDArray[np.float64]:
    """Residents per cell: each building's ``population_est`` spread evenly over its footprint cells.

    A building too small to hold a cell centre puts its residents in the cell of its representative
    point, so no resident is lost.
    """
    residents = np.zeros(grid.shape)
    people = buildings["population_est"].fillna(0.0).to_numpy(dtype=float)
    geoms = buildings.geometry.to_numpy()
    ids = _burn_values(grid, geoms, np.arange(len(buildings), dtype=float), fill=-1.0).astype(np.int64)
    inside = ids >= 0
    counts = np.bincount(ids[inside], minlength=len(buildings))
    per_cell = np.divide(people, counts, out=np.zeros_like(people), where=counts > 0)
    residents[inside] = per_cell[ids[inside]]
    missing = np.flatnonzero((counts == 0) & (people > 0))
    if missing.size:
        points = shapely.point_on_surface(geoms[missing])
        rows, cols = rasterio.transform.rowcol(grid.transform, shapely.get_x(points), shapely.get_y(points))
        rows, cols = np.asarray(rows), np.asarray(cols)
        ok = (rows >= 0) & (rows < grid.shape[0]) & (cols >= 0) & (cols < grid.shape[1])
        np.add.at(residents, (rows[ok], cols[ok]), people[missing][ok])
    return residents


def write_geotiff(
    path: Path, grid: Grid, values: NDArray[np.generic], *, nodata: float | None = None
) -> Path:
    """One band as a GeoTIFF in the grid's CRS (for inspection in GIS tools)."""
    with rasterio.open(
        path, "w", driver="GTiff", height=grid.shape[0], width=grid.shape[1], count=1, dtype=values.dtype,
        crs=grid.crs, transform=grid.transform, nodata=nodata, compress="deflate",
    ) as dst:  # fmt: skip
        dst.write(values, 1)
    return path


def _rows(frame: gpd.GeoDataFrame, column: str, values: frozenset[str]) -> NDArray[np.object_]:
    if frame.empty or column not in frame:
        return np.array([], dtype=object)
    return np.asarray(frame.geometry[frame[column].isin(values)].to_numpy(), dtype=object)


def _burn_values(
    grid: Grid, geometries: NDArray[np.object_], values: NDArray[np.float64], *, fill: float = 0.0
) -> NDArray[np.float64]:
    """Each cell gets the value of the last geometry covering its centre (``fill`` elsewhere)."""
    pairs = [
        (g, float(v)) for g, v in zip(geometries, values, strict=True) if g is not None and not g.is_empty
    ]
    if not pairs:
        return np.full(grid.shape, fill)
    return np.asarray(
        rasterize(pairs, out_shape=grid.shape, transform=grid.transform, fill=fill, dtype="float64"),
        dtype=np.float64,
    )
