"""A whole build: OSM + a CityGML model + a city road layer + a DEM → one twin with known numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from city3d_fixtures import X0, Y0, write_citygml, write_dem, write_pbf
from pyproj import Transformer
from shapely.geometry import LineString

from civictwin.build import build_twin
from civictwin.config import parse_config
from civictwin.errors import ConfigError
from civictwin.store.duckdb import DuckDBStore

TO_LONLAT = Transformer.from_crs("EPSG:25832", "EPSG:4326", always_xy=True)


def _lonlat(x: float, y: float) -> tuple[float, float]:
    lon, lat = TO_LONLAT.transform(x, y)
    return float(lon), float(lat)


def _write_inputs(folder: Path) -> dict[str, Any]:
    corners = [(X0, Y0), (X0 + 10, Y0), (X0 + 10, Y0 + 8), (X0, Y0 + 8)]
    nodes = {i + 1: (*_lonlat(x, y), {}) for i, (x, y) in enumerate(corners)}
    road = [(X0 - 50, Y0 - 10), (X0 + 50, Y0 - 10), (X0 + 150, Y0 - 10)]
    nodes.update({10 + i: (*_lonlat(x, y), {}) for i, (x, y) in enumerate(road)})
    ways = {100: ([1, 2, 3, 4, 1], {"building": "house", "height": "7"}),
            200: ([10, 11, 12], {"highway": "residential", "name": "Hauptstraße"})}  # fmt: skip
    write_pbf(folder / "area.osm.pbf", nodes, ways)
    write_citygml(folder / "city.gml")
    gpd.GeoDataFrame(
        {"id": ["r1"], "strassenname": ["Hauptstrasse"], "tempo": [20]},
        geometry=[LineString([(X0 - 50, Y0 - 12), (X0 + 150, Y0 - 12)])], crs="EPSG:25832",
    ).to_file(folder / "roads.gpkg")  # fmt: skip
    write_dem(folder / "dem.tif", x0=X0 - 500, y0=Y0 - 500, width_m=1000, height_m=1000, cell=5.0)
    west, south = _lonlat(X0 - 100, Y0 - 100)
    east, north = _lonlat(X0 + 160, Y0 + 100)
    source = {"licence": "CC0", "publisher": "p", "steward": "s"}
    return {
        "twin": {"name": "city twin", "crs": "EPSG:25832"}, "area": {"bbox": [west, south, east, north]},
        "sources": [{"name": "osm", "kind": "osm", "path": "area.osm.pbf", **source},
                    {"name": "city3d", "kind": "citygml", "path": "city.gml", **source},
                    {"name": "city_roads", "kind": "vector", "path": "roads.gpkg", **source},
                    {"name": "terrain", "kind": "dem", "path": "dem.tif", **source}],
        "conflation": [{"layer": "streets", "source": "city_roads", "name_column": "strassenname",
                        "columns": {"maxspeed_kmh": "tempo"}}],
    }  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> DuckDBStore:
    folder = tmp_path_factory.mktemp("citytwin")
    config = parse_config(_write_inputs(folder), base_dir=folder)
    build_twin(config)
    store = DuckDBStore.open(config.store_path)
    yield store  # type: ignore[misc]
    store.close()


def test_osm_and_city_buildings_become_one_building_on_the_terrain(built: DuckDBStore) -> None:
    (building,) = built.read_table("buildings_3d").to_dict("records")
    assert (building["building_id"], building["city_id"], building["osm_id"], building["match"]) == (
        "house0",
        "house0",
        100,
        "matched",
    )
    assert (building["height_m"], building["height_source"], building["year_built"], building["use"]) == (
        9.5,
        "city:measuredHeight",
        1975,
        "residential",
    )
    assert building["base_elevation_m"] == 125.0  # 100 + 0.05 · (500 − 0): the plane at the house's west wall
    quality = built.records("quality")["buildings_3d"]
    assert (
        quality["conflation"]["matched_pairs"] == 1 and quality["conflation"]["conflicting"]["height_m"] == 1
    )
    lineage = built.records("lineage")["buildings_3d"]
    assert {"buildings", "city3d", "conflation_buildings", "terrain"} <= {
        i["table"] for i in lineage["inputs"]
    }
    decisions = built.read_table("conflation_buildings").set_index("object")
    assert decisions.loc["way-100", "partner"] == "house0"
    assert json.loads(decisions.loc["house0", "attribute_sources"])["height_m"] == "city"
    assert set(built.read_table("building_surfaces")["building_id"]) == {"house0"}


def test_city_roads_set_speeds_and_terrain_sets_grades(built: DuckDBStore) -> None:
    edges = built.read_table("network_edges").set_index("edge_id")
    assert set(edges["maxspeed_kmh"]) == {20.0}  # "Hauptstrasse" matches "Hauptstraße" (ß casefolds to ss)
    forward = edges.loc["200_1"]
    assert forward["grade"] == pytest.approx(0.05, abs=1e-3)  # the road runs 200 m east, up the 5 % plane
    assert forward["climb_m"] == pytest.approx(10.0, abs=0.05)
    nodes = built.read_table("network_nodes").set_index("node_id")
    assert nodes.loc[10, "elevation_m"] == pytest.approx(122.5, abs=0.01)
    inputs = {i["table"] for i in built.records("lineage")["network_edges"]["inputs"]}
    assert {"roads", "city_roads", "conflation_streets", "terrain"} == inputs
    assert built.records("quality")["network_edges"]["conflation"][0]["matched_edges"] == 1


def test_a_rule_naming_a_missing_column_stops_the_build_and_stores_nothing(tmp_path: Path) -> None:
    data = _write_inputs(tmp_path)
    data["conflation"][0]["columns"] = {"maxspeed_kmh": "speed_limit"}
    config = parse_config(data, base_dir=tmp_path)
    with pytest.raises(
        ConfigError,
        match=r"conflation\[0\].columns.maxspeed_kmh: source 'city_roads' has no column 'speed_limit'",
    ):
        build_twin(config)
    assert not config.store_path.exists()
    assert not [p for p in tmp_path.glob("*.building*") if p.suffix != ".lock"]  # no half-written twin


def test_the_terrain_is_served_as_terrarium_tiles_of_the_plane(built: DuckDBStore) -> None:
    """GET /terrain.json and a tile: every pixel decodes to the DEM's plane at its centre."""
    import numpy as np
    from fastapi.testclient import TestClient
    from rasterio.io import MemoryFile

    from civictwin.api.app import create_app
    from civictwin.model.terrain import Terrain

    assert built.path is not None
    client = TestClient(create_app(built.path))
    tilejson = client.get("/terrain.json").json()
    assert (tilejson["encoding"], tilejson["tileSize"], tilejson["name"]) == ("terrarium", 256, "terrain")
    assert (
        tilejson["maxzoom"] == 14
    )  # 5 m cells at 48.7° N: 40 075 km · cos(48.7°) / 256 / 2^14 = 6.3 m pixels
    west, south, east, north = tilejson["bounds"]
    lon, lat = _lonlat(X0, Y0)
    assert west < lon < east and south < lat < north
    z = 15
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - np.arcsinh(np.tan(np.radians(lat))) / np.pi) / 2 * n)
    tile = client.get(f"/terrain/{z}/{x}/{y}.png")
    assert tile.status_code == 200 and tile.headers["content-type"] == "image/png"
    with MemoryFile(tile.content) as memory, memory.open() as png:
        red, green, blue = (band.astype(float) for band in png.read())
    decoded = red * 256 + green + blue / 256 - 32768
    # the pixel centres in Web Mercator, back to the twin's CRS: the plane is z = 100 + 0.05 (x - (X0 - 500))
    size = 40_075_016.686 / n
    offsets = (np.arange(256) + 0.5) * size / 256
    mx, my = np.meshgrid(-size * n / 2 + x * size + offsets, size * n / 2 - y * size - offsets)
    tx, _ = Transformer.from_crs("EPSG:3857", "EPSG:25832", always_xy=True).transform(mx, my)
    stored = Terrain.from_blocks(built.read_table("terrain"))  # the area and a margin, not the whole file
    first, last = stored.x_min + 2.5, stored.x_min + (stored.heights.shape[1] - 0.5) * 5  # its cell centres
    ty = Transformer.from_crs("EPSG:3857", "EPSG:25832", always_xy=True).transform(mx, my)[1]
    top, bottom = stored.y_max - 2.5, stored.y_max - (stored.heights.shape[0] - 0.5) * 5
    inside = (tx > first) & (tx < last) & (ty < top) & (ty > bottom)
    expected = 100 + 0.05 * (tx - (X0 - 500))
    assert inside.sum() > 10_000
    assert np.abs(decoded[inside] - expected[inside]).max() < 1 / 256 + 1e-6  # Terrarium's resolution
    beyond = decoded[~inside & (tx > last)]  # east of the stored DEM: its easternmost cell centres' height
    assert beyond.size and np.abs(beyond - (100 + 0.05 * (last - (X0 - 500)))).max() < 1 / 256 + 1e-6
    assert client.get(f"/terrain/15/{n}/0.png").status_code == 400
