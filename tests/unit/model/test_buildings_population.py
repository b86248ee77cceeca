"""LoD1 heights, use classes, floor areas and the dasymetric population estimate."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from civictwin.config import BuildingsSection, PopulationSection
from civictwin.model.buildings import lod1_buildings, parse_height, parse_levels, use_class
from civictwin.model.population import (
    estimate_population,
    landuse_of,
    population_from_grid,
    residential_floor_area,
    unplaced_population,
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


def test_grid_population_is_spread_by_residential_floor_area() -> None:
    lod1 = lod1_buildings(buildings(), BuildingsSection())
    # cell A holds buildings 1 and 2 (residential 800 + 600 m²), cell B the office only, cell C nothing.
    grid = gpd.GeoDataFrame(
        {"population": [140, 30, 7]},
        geometry=[shapely.box(-5, -5, 95, 25), shapely.box(95, -5, 120, 25), shapely.box(500, 0, 510, 10)],
        crs="EPSG:32635",
    )
    people = population_from_grid(lod1, grid, "population", PopulationSection())
    # A: 140 split 800:600 → 80, 60; B: no residential floor → spread over all floor → 30; D: in no cell.
    assert people.tolist() == [80.0, 60.0, 30.0, 0.0]
    assert unplaced_population(lod1, grid, "population") == 7.0
    assert isinstance(people, pd.Series)
