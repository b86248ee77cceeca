"""Small hand-made surfaces and places for the heat engine's tests (UTM 35N, central Helsinki)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Transformer

from civictwin.engines.heat.interventions import Place
from civictwin.engines.heat.rasters import Cover, Grid, Surface

CRS = "EPSG:32635"
WEST, NORTH = 385_000.0, 6_672_000.0
_TO_WGS84 = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)


def wkt_wgs84(geom: shapely.Geometry) -> str:
    """A UTM geometry as WKT in lon/lat, as scenarios write polygons."""
    return shapely.transform(geom, lambda xy: np.column_stack(_TO_WGS84.transform(xy[:, 0], xy[:, 1]))).wkt


def small_surface(rows: int = 20, cols: int = 30, cell_m: float = 2.0) -> Surface:
    """Paved ground, a road band (rows 9-10, asphalt), one building (rows 2-5, cols 3-8, 12 m)."""
    grid = Grid(shape=(rows, cols), cell_m=cell_m, west=WEST, north=NORTH, crs=CRS)
    cover = np.full(grid.shape, Cover.PAVED, dtype=np.int8)
    cover[9:11, :] = Cover.ASPHALT
    height = np.zeros(grid.shape, dtype=np.float32)
    height[2:6, 3:9] = 12.0
    cover[height > 0] = Cover.BUILDING
    residents = np.zeros(grid.shape)
    residents[2:6, 3:9] = 1.0
    return Surface(
        grid=grid,
        cover=cover,
        building_height_m=height,
        canopy_height_m=np.zeros(grid.shape, dtype=np.float32),
        albedo=np.full(grid.shape, np.nan, dtype=np.float32),
        green_roof=np.zeros(grid.shape, dtype=bool),
        residents=residents,
        zone=np.zeros(grid.shape, dtype=np.int32),
        zone_ids=("z1",),
        public_green=np.zeros(grid.shape, dtype=bool),
    )


def small_place(surface: Surface) -> Place:
    """The road along rows 9-10 as one two-way street 'Testikatu' (1 lane each way), and the building."""
    y = NORTH - 10 * surface.grid.cell_m
    line = shapely.LineString([(WEST, y), (WEST + 60.0, y)])
    edges = gpd.GeoDataFrame(
        {
            "edge_id": ["1_0", "-1_0"],
            "osm_id": [1, 1],
            "name": ["Testikatu", "Testikatu"],
            "lanes": [1, 1],
            "car": [True, True],
            "bus": [True, True],
            "walk": [True, True],
            "from_node": [10, 11],
            "to_node": [11, 10],
            "length_m": [60.0, 60.0],
        },
        geometry=[line, line.reverse()],
        crs=CRS,
    )
    cell = surface.grid.cell_m
    building = shapely.box(WEST + 3 * cell, NORTH - 6 * cell, WEST + 9 * cell, NORTH - 2 * cell)
    buildings = gpd.GeoDataFrame(
        {"osm_id": [7], "use": ["residential"], "height_m": [12.0], "population_est": [24.0]},
        geometry=[building],
        crs=CRS,
    )
    return Place(edges=edges, buildings=buildings, crs=CRS, base_dir=Path("."))
