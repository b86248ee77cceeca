"""LoD1 heights, use classes, floor areas and the dasymetric population estimate."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from civictwin.config import BuildingsSection, PopulationSection
from civictwin.model.buildings import lod1_buildings, parse_height, parse_levels, use_class
from civictwin.model.population import (
    estimate_population,
    landuse_of,
    place_grid_population,
    residential_floor_area,
    unbuildable_land,
)


def buildings() -> gpd.GeoDataFrame:
    """Four 10 m × 20 m footprints (200 m²) with different tags, side by side."""
    rows = [
        ("apartments", "12 m", None),  # tagged height
        ("house", None, "3"),  # tagged levels
        ("office", None, None),  # default for office: 5 storeys
        ("yes", None, None),  # untyped: default 4 storeys
    ]
    return gpd.GeoDataFrame(
        {"osm_id": [1, 2, 3, 4], "building": [r[0] for r in rows], "height_tag": [r[1] for r in rows],
         "levels_tag": [r[2] for r in rows]},
        geometry=[shapely.box(i * 50, 0, i * 50 + 10, 20) for i in range(4)], crs="EPSG:32635",
    )  # fmt: skip


def test_heights_come_from_tags_levels_or_defaults() -> None:
    lod1 = lod1_buildings(buildings(), BuildingsSection())
    assert lod1["height_m"].tolist() == [12.0, 9.0, 15.0, 12.0]
    assert lod1["height_source"].tolist() == ["height", "levels", "default", "default"]
    assert lod1["levels"].tolist() == [4.0, 3.0, 5.0, 4.0]
    assert lod1["floor_area_m2"].tolist() == [800.0, 600.0, 1000.0, 800.0]
    assert lod1["use"].tolist() == ["residential", "residential", "commercial", "unknown"]


def test_default_levels_can_be_overridden() -> None:
    lod1 = lod1_buildings(buildings(), BuildingsSection(storey_height_m=3.5, default_levels={"office": 2}))
    assert lod1.loc[2, "height_m"] == 7.0


@pytest.mark.parametrize(
    ("value", "metres"),
    [("12", 12.0), ("12.5 m", 12.5), ("12,5", 12.5), ("40 ft", 12.19), ("40'", 12.19), ("tall", None),
     ("-3", None), ("0", None), (None, None)],
)  # fmt: skip
def test_parse_height(value: str | None, metres: float | None) -> None:
    result = parse_height(value)
    assert (result if result is None else round(result, 2)) == metres


def test_parse_levels_and_use_class() -> None:
    assert (parse_levels("3.5"), parse_levels("many"), parse_levels("0")) == (3.5, None, None)
    assert (use_class("church"), use_class("yes"), use_class(None), use_class("barn")) == (
        "religious", "unknown", "unknown", "agricultural",
    )  # fmt: skip


def test_population_estimate_uses_residential_floor_area() -> None:
    lod1 = lod1_buildings(buildings(), BuildingsSection())
    settings = PopulationSection(persons_per_m2=0.025, mixed_use_residential_share=0.5)
    # residential: 800 + 600 m²; office: 0; untyped with no land use: half of 800 m².
    assert residential_floor_area(lod1, settings).tolist() == [800.0, 600.0, 0.0, 400.0]
    assert estimate_population(lod1, settings).tolist() == [20.0, 15.0, 0.0, 10.0]


def test_land_use_decides_untyped_buildings() -> None:
    lod1 = lod1_buildings(buildings(), BuildingsSection())
    landuse = gpd.GeoDataFrame(
        {"landuse": ["commercial"]}, geometry=[shapely.box(140, -10, 200, 30)], crs="EPSG:32635"
    )
    lod1["landuse"] = landuse_of(lod1, landuse)
    assert lod1["landuse"].isna().tolist() == [True, True, True, False]
    assert lod1.loc[3, "landuse"] == "commercial"
    assert residential_floor_area(lod1, PopulationSection()).tolist() == [800.0, 600.0, 0.0, 0.0]
    landuse["landuse"] = ["residential"]
    lod1["landuse"] = landuse_of(lod1, landuse)
    assert residential_floor_area(lod1, PopulationSection())[3] == 800.0


def test_a_grid_places_every_person_in_homes_or_on_buildable_land() -> None:
    lod1 = lod1_buildings(buildings(), BuildingsSection())  # residential floor: 800, 600, 0, 400 m²
    # A holds buildings 1 and 2; B only the office (no homes); C no building at all, half of it a park.
    grid = gpd.GeoDataFrame(
        {"population": [140, 30, 7]},
        geometry=[shapely.box(-5, -5, 95, 45), shapely.box(95, -5, 145, 45), shapely.box(200, 0, 300, 100)],
        crs="EPSG:32635",
    )
    park = gpd.GeoDataFrame(geometry=[shapely.box(200, 0, 250, 100)], crs="EPSG:32635")
    area = shapely.box(-100, -100, 280, 200)  # cuts C at x = 280
    placement = place_grid_population(
        lod1, grid, column="population", settings=PopulationSection(), area=area,
        unbuildable=unbuildable_land(lod1, landuse=None, green=park, water=None),
    )  # fmt: skip
    # A: 140 split 800:600 → 80, 60; the office gets nobody; building 4 lies in no cell.
    assert placement.residents.tolist() == [80.0, 60.0, 0.0, 0.0]
    assert placement.land["cell"].tolist() == [1, 2]
    assert placement.land["population"].tolist() == [30.0, 7.0]
    # B: 50 m × 50 m less the office's 10 m × 20 m footprint; C: x 250–280 (park and area cut away).
    assert placement.land.geometry.area.tolist() == [2300.0, 3000.0]
    assert placement.land.geometry.iloc[1].equals(shapely.box(250, 0, 280, 100))
    assert placement.quality() == {
        "total": 177.0, "in_residential_floor_area": 140.0, "on_buildable_land": 37.0,
        "share_in_residential_floor_area": 0.791, "share_on_buildable_land": 0.209,
        "cells_on_buildable_land": 2, "cells_without_buildable_land": 0,
    }  # fmt: skip
    assert placement.residents.sum() + placement.land["population"].sum() == 177.0


def test_a_cell_with_no_buildable_land_spreads_over_the_whole_cell() -> None:
    lod1 = lod1_buildings(buildings(), BuildingsSection())
    grid = gpd.GeoDataFrame({"population": [12]}, geometry=[shapely.box(200, 0, 300, 100)], crs="EPSG:32635")
    lake = np.array([shapely.box(150, -50, 350, 150)], dtype=object)
    placement = place_grid_population(
        lod1, grid, column="population", settings=PopulationSection(), area=shapely.box(0, 0, 1000, 1000),
        unbuildable=lake,
    )  # fmt: skip
    assert placement.land.geometry.iloc[0].equals(shapely.box(200, 0, 300, 100))
    assert placement.quality()["cells_without_buildable_land"] == 1
    assert placement.on_land == 12.0
