"""Terrain from a DEM the test writes: the plane z = 100 + 0.05 · (x − x0), so every height is known."""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from city3d_fixtures import TWIN_CRS, X0, Y0, Ingest, write_dem
from shapely.geometry import LineString, Point, box

from civictwin.config import TerrainSection
from civictwin.errors import SourceError
from civictwin.model.terrain import (
    Terrain,
    bike_factor,
    building_bases,
    edge_slopes,
    node_heights,
    tobler_factor,
)

AREA = box(X0 + 20, Y0 + 20, X0 + 180, Y0 + 180)


@pytest.fixture
def terrain(tmp_path: Path, ingest: Ingest) -> Terrain:
    dem = write_dem(tmp_path / "dem.tif", x0=X0, y0=Y0, width_m=200, height_m=200)
    store, result = ingest("dem", dem, area=AREA)
    quality = result.layers[0].quality
    assert (quality["cell_size_m"], quality["no_data_in_area"], quality["crs"]) == (2.0, 0, "EPSG:25832")
    assert not list(tmp_path.glob("*.aux.xml"))  # nothing written beside the user's file
    return Terrain.from_blocks(store.read_table("city"))


def test_heights_are_the_plane(terrain: Terrain) -> None:
    xs = np.array([X0 + 51.0, X0 + 100.3, X0 + 20.0])
    heights = terrain.sample(xs, np.array([Y0 + 50.0, Y0 + 77.7, Y0 + 150.0]))
    assert heights == pytest.approx(100 + 0.05 * (xs - X0), abs=1e-4)


def test_building_base_is_the_lowest_terrain_under_it(terrain: Terrain) -> None:
    buildings = gpd.GeoDataFrame(geometry=[box(X0 + 40, Y0 + 40, X0 + 60, Y0 + 50)], crs=TWIN_CRS)
    assert building_bases(buildings, terrain).tolist() == [102.0]
    nodes = gpd.GeoDataFrame(geometry=[Point(X0 + 30, Y0 + 30)], crs=TWIN_CRS)
    assert node_heights(nodes, terrain).tolist() == [101.5]


def test_walking_and_cycling_times_follow_the_grade(terrain: Terrain) -> None:
    up = LineString([(X0 + 20, Y0 + 60), (X0 + 70, Y0 + 60), (X0 + 120, Y0 + 60)])
    edges = gpd.GeoDataFrame(geometry=[up, LineString(up.coords[::-1])], crs=TWIN_CRS)
    slopes = edge_slopes(edges, terrain, TerrainSection())
    assert slopes["grade"].tolist() == [0.05, -0.05]
    assert slopes["climb_m"].tolist() == [5.0, 0.0]
    walk_flat, bike_flat = 4.8 / 3.6, 15.0 / 3.6
    # Tobler: 6·e^(−3.5·|s+0.05|) relative to the flat: e^(−0.175) uphill at 5 %, e^(+0.175) downhill
    assert slopes["walk_time_s"].tolist() == [round(100 / (walk_flat * math.exp(-0.175)), 1),
                                              round(100 / (walk_flat * math.exp(0.175)), 1)]  # fmt: skip
    # Valhalla: factor 0.75 at +5 %, 1.7 at −5 %
    assert slopes["bike_time_s"].tolist() == [
        round(100 / (bike_flat * 0.75), 1),
        round(100 / (bike_flat * 1.7), 1),
    ]
    assert slopes["walk_time_s"].iloc[0] == 89.3 and slopes["bike_time_s"].iloc[0] == 32.0


def test_grade_factors_at_their_anchor_points() -> None:
    assert tobler_factor(np.array([0.0, -0.05]))[0] == 1.0
    assert tobler_factor(np.array([-0.05]))[0] == pytest.approx(6 / (6 * math.exp(-0.175)))
    assert bike_factor(np.array([-0.2, -0.04, 0.0, 0.03, 0.2])).tolist() == pytest.approx(
        [2.2, 1.55, 1.0, 0.85, 0.3]
    )


def test_a_dem_that_does_not_cover_the_area_is_one_line(tmp_path: Path, ingest: Ingest) -> None:
    dem = write_dem(tmp_path / "small.tif", x0=X0, y0=Y0, width_m=100, height_m=100)
    with pytest.raises(
        SourceError, match=r"small.tif: the DEM \(.*\) does not cover the area of interest"
    ) as caught:
        ingest("dem", dem, area=AREA)
    assert "\n" not in str(caught.value)


def test_a_dem_in_another_crs_is_reprojected(tmp_path: Path, ingest: Ingest) -> None:
    dem = write_dem(
        tmp_path / "wgs.tif", x0=X0 - 100, y0=Y0 - 100, width_m=400, height_m=400, crs="EPSG:32632"
    )
    store, result = ingest("dem", dem, area=AREA)
    terrain = Terrain.from_blocks(store.read_table("city"))
    # ETRS89 and WGS84 UTM coordinates differ by well under a metre: heights agree to a few cm
    assert terrain.sample(np.array([X0 + 100.0]), np.array([Y0 + 100.0]))[0] == pytest.approx(110.0, abs=0.05)
    assert result.layers[0].quality["crs"] == "EPSG:32632"
