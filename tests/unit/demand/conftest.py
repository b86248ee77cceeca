"""A tiny twin in memory: a 3 × 3 street grid (300 m blocks) and two zones, in UTM 35N (Helsinki)."""

from __future__ import annotations

import geopandas as gpd
import pytest
from shapely.geometry import LineString, box

CRS = "EPSG:32635"
X0, Y0, STEP = 385_000.0, 6_672_000.0, 300.0


def grid_edges(n: int = 3, *, speed_kmh: float = 36.0) -> gpd.GeoDataFrame:
    """Two-way streets between the nodes of an n × n grid; way ids count from 1, both directions."""
    rows = []
    way = 0

    def node(i: int, j: int) -> int:
        return i * n + j + 1

    def xy(i: int, j: int) -> tuple[float, float]:
        return (X0 + j * STEP, Y0 + i * STEP)

    for i in range(n):
        for j in range(n):
            for di, dj in ((0, 1), (1, 0)):
                if i + di >= n or j + dj >= n:
                    continue
                way += 1
                a, b = (i, j), (i + di, j + dj)
                for sign, (u, v) in (("", (a, b)), ("-", (b, a))):
                    rows.append(
                        {
                            "edge_id": f"{sign}{way}_0",
                            "from_node": node(*u),
                            "to_node": node(*v),
                            "osm_id": way,
                            "name": f"Street {way}",
                            "highway": "residential",
                            "lanes": 1,
                            "speed_kmh": speed_kmh,
                            "maxspeed_kmh": speed_kmh,
                            "capacity_vph": 900.0,
                            "length_m": STEP,
                            "car": True,
                            "bike": True,
                            "walk": True,
                            "geometry": LineString([xy(*u), xy(*v)]),
                        }
                    )
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)


def two_zones() -> gpd.GeoDataFrame:
    """West (x < 400 m) and east parts of the grid, with residents, jobs and POIs; centroids 450 m apart."""
    west = box(X0 - 150, Y0 - 150, X0 + 400, Y0 + 750)
    east = box(X0 + 400, Y0 - 150, X0 + 750, Y0 + 750)
    return gpd.GeoDataFrame(
        {
            "zone_id": ["west", "east"],
            "population": [600.0, 400.0],
            "jobs_proxy_m2": [3_500.0, 0.0],
            "poi_food": [0, 10],
            "area_m2": [west.area, east.area],
        },
        geometry=[west, east],
        crs=CRS,
    )


@pytest.fixture
def edges() -> gpd.GeoDataFrame:
    return grid_edges()


@pytest.fixture
def zones() -> gpd.GeoDataFrame:
    return two_zones()
