"""Building selections (shared by every engine): zones, polygon, uses and construction period select
exactly the intended buildings; a selection matching nothing, or naming what the twin lacks, is one line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from pydantic import ValidationError

from civictwin.errors import ScenarioError
from civictwin.scenarios.selection import select_buildings
from civictwin.scenarios.spec import BuildingSelection

CRS = "EPSG:32635"
ORIGIN = (385_000.0, 6_671_000.0)

# six 20 m buildings, 100 m apart along x: ids 1..6
BUILDINGS = gpd.GeoDataFrame(
    {
        "osm_id": [1, 2, 3, 4, 5, 6],
        "use": ["residential", "residential", "commercial", "residential", "public", "residential"],
        "construction_year": [1925, 1965, 1972, None, 1990, 2010],
    },
    geometry=[
        shapely.box(ORIGIN[0] + 100 * i, ORIGIN[1], ORIGIN[0] + 100 * i + 20, ORIGIN[1] + 20)
        for i in range(6)
    ],
    crs=CRS,
)
# zone "west" holds buildings 1-3, zone "east" 4-6
ZONES = gpd.GeoDataFrame(
    {"zone_id": ["west", "east"]},
    geometry=[
        shapely.box(ORIGIN[0] - 50, ORIGIN[1] - 50, ORIGIN[0] + 250, ORIGIN[1] + 50),
        shapely.box(ORIGIN[0] + 250, ORIGIN[1] - 50, ORIGIN[0] + 600, ORIGIN[1] + 50),
    ],
    crs=CRS,
)


def selected(tmp_path: Path, **keys: object) -> list[int]:
    mask = select_buildings(BUILDINGS, BuildingSelection(**keys), crs=CRS, base_dir=tmp_path, zones=ZONES)
    return BUILDINGS.loc[mask, "osm_id"].tolist()


def test_each_criterion_and_their_intersection(tmp_path: Path, box_wkt: Callable[..., str]) -> None:
    assert selected(tmp_path, zones=["east"]) == [4, 5, 6]
    assert selected(tmp_path, uses=["residential"]) == [1, 2, 4, 6]
    assert selected(tmp_path, built_from=1960, built_to=1979) == [2, 3]  # 4 has no year: never selected
    assert selected(tmp_path, built_to=1960) == [1]
    assert selected(tmp_path, polygon=box_wkt(150, -10, 350, 30)) == [3, 4]  # their centres lie inside
    assert selected(tmp_path, zones=["west", "east"], uses=["residential"], built_from=1950) == [2, 6]
    assert selected(tmp_path, osm_ids=[2, 5]) == [2, 5]
    assert selected(tmp_path, osm_ids=[2, 5], uses=["residential"]) == [2]


@pytest.mark.parametrize(
    ("keys", "field", "message"),
    [
        ({"zones": ["north"]}, "zones", "no zone 'north' in the twin"),
        ({"uses": ["castle"]}, "uses", "no building use 'castle' in the buildings"),
        ({"osm_ids": [2, 99]}, "osm_ids", "no building with OSM id 99 in the twin"),
        ({"uses": ["commercial"], "zones": ["east"]}, "buildings", "matches no building"),
    ],
)
def test_selections_that_cannot_match_are_errors(
    tmp_path: Path, keys: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        selected(tmp_path, **keys)
    assert info.value.field == field and message in info.value.message


def test_a_period_needs_construction_years_and_zones_need_the_zones(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no construction year"):
        select_buildings(
            BUILDINGS.drop(columns="construction_year"),
            BuildingSelection(built_from=1900),
            crs=CRS,
            base_dir=tmp_path,
        )
    with pytest.raises(ScenarioError, match="needs the twin's zones"):
        select_buildings(BUILDINGS, BuildingSelection(zones=["west"]), crs=CRS, base_dir=tmp_path)


def test_the_model_wants_something_and_a_forward_period() -> None:
    with pytest.raises(ValidationError, match="at least one of zones"):
        BuildingSelection()
    with pytest.raises(ValidationError, match="built_to must not be before built_from"):
        BuildingSelection(built_from=1990, built_to=1950)
    assert BuildingSelection(
        uses=["residential"], built_from=1960, built_to=1979, zones=["a"]
    ).describe() == ("residential buildings built 1960–1979 in zones a")
