"""Selections resolve to exactly the intended edges; a selection matching nothing is an error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import shapely

from civictwin.engines.registry import intervention_catalog
from civictwin.engines.traffic.edits import apply_interventions
from civictwin.engines.traffic.engine import TrafficEngine
from civictwin.errors import ScenarioError
from civictwin.scenarios.selection import select_edges
from civictwin.scenarios.spec import StreetSelection, load_scenario

CATALOG = intervention_catalog([TrafficEngine()])

CRS = "EPSG:32635"
Grid = tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]


def pick(edges: gpd.GeoDataFrame, tmp_path: Path, **keys: Any) -> set[str]:
    return set(select_edges(edges, StreetSelection(**keys), crs=CRS, base_dir=tmp_path))


def test_streets_match_both_directions_case_insensitively(grid: Grid, tmp_path: Path) -> None:
    edges, _ = grid
    assert pick(edges, tmp_path, streets=["  main STREET "]) == {"101_0", "-101_0", "101_1", "-101_1"}


def test_osm_ids_and_edge_ids_are_united(grid: Grid, tmp_path: Path) -> None:
    edges, _ = grid
    got = pick(edges, tmp_path, osm_ids=[200], edge_ids=["-100_1"])
    assert got == {"200_0", "-200_0", "200_1", "-200_1", "-100_1"}


def test_polygon_selects_edges_whose_midpoint_is_inside(
    grid: Grid, box_wkt: Callable[..., str], tmp_path: Path
) -> None:
    edges, _ = grid
    # x in [-50, 150]: the western half of each row segment 0 (midpoint x=100) and column 0 (x=0)
    got = pick(edges, tmp_path, polygon=box_wkt(-50, -50, 150, 450))
    rows = {f"{s}{w}_0" for w in (100, 101, 102) for s in ("", "-")}
    col0 = {f"{s}200_{i}" for i in (0, 1) for s in ("", "-")}
    assert got == rows | col0


def test_polygon_restricts_named_streets(grid: Grid, box_wkt: Callable[..., str], tmp_path: Path) -> None:
    edges, _ = grid
    assert pick(edges, tmp_path, streets=["Main Street"], polygon=box_wkt(-50, -50, 150, 450)) == {
        "101_0",
        "-101_0",
    }


def test_polygon_from_a_file_relative_to_the_scenario(grid: Grid, tmp_path: Path) -> None:
    edges, _ = grid
    area = shapely.box(385_250, 6_670_950, 385_450, 6_671_450)  # east half of segment 1: x midpoint 300
    gpd.GeoDataFrame(geometry=[area], crs=CRS).to_file(tmp_path / "east.geojson")
    got = pick(edges, tmp_path, streets=["Main Street"], polygon="east.geojson")
    assert got == {"101_1", "-101_1"}


@pytest.mark.parametrize(
    ("keys", "field", "message"),
    [
        ('streets = ["Main Street", "Nowhere Road"]', "streets", "no street named 'Nowhere Road'"),
        ("osm_ids = [101, 999]", "osm_ids", "no OSM way 999"),
        ('edge_ids = ["101_7"]', "edge_ids", "no edge '101_7'"),
        ('polygon = "POLYGON ((10 10, 11 10, 11 11, 10 11, 10 10))"', "polygon", "does not contain any edge"),
        ('polygon = "missing.geojson"', "polygon", "polygon file"),
        ('polygon = "POLYGON ((1 2, 3"', "polygon", "not valid WKT"),
    ],
)
def test_selection_matching_nothing_names_file_intervention_and_key(
    grid: Grid,
    tmp_path: Path,
    keys: str,
    field: str,
    message: str,
) -> None:
    edges, _ = grid
    path = tmp_path / "plan.toml"
    path.write_text(f'name = "p"\n[[interventions]]\ntype = "speed_limit"\nspeed_kmh = 30\n{keys}\n')
    with pytest.raises(ScenarioError) as info:
        apply_interventions(edges, load_scenario(path, CATALOG), crs=CRS)
    line = info.value.user_message()
    assert line.startswith(f"{path}: interventions[0] (speed_limit): {field}: ")
    assert message in line and "\n" not in line


def test_modal_filter_far_from_any_node(grid: Grid, lonlat: Callable[..., Any], tmp_path: Path) -> None:
    edges, _ = grid
    lon, lat = lonlat(100, 100)  # the middle of a block, 141 m from the nearest junction
    path = tmp_path / "f.toml"
    path.write_text(
        f'name = "f"\n[[interventions]]\ntype = "modal_filter"\nat = [{lon}, {lat}]\nradius_m = 50\n'
    )
    with pytest.raises(
        ScenarioError, match=r"interventions\[0\] \(modal_filter\): no network node within 50 m"
    ):
        apply_interventions(edges, load_scenario(path, CATALOG), crs=CRS)
