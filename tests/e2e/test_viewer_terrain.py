"""The viewer draws the twin on its terrain, in a real headless Chromium (Debian's), against the real server.

A tiny twin: one OSM building and a road on a DEM that is the plane z = 100 + 0.05 (x - x0) (the
city3d tests' hand-made inputs). The map turns 3D terrain on from ``GET /terrain.json`` and the
terrain under the building is the plane's height there.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyproj import Transformer
from served import CHROMIUM, serving

from civictwin.api.viewer import viewer_built
from civictwin.build import build_twin
from civictwin.config import parse_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "city3d"))
from city3d_fixtures import X0, Y0, write_dem, write_pbf

pytestmark = pytest.mark.e2e

if not CHROMIUM.is_file():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
if not viewer_built():
    pytest.skip("the viewer bundle is not built (cd web && npm ci && npm run build)", allow_module_level=True)

TO_LONLAT = Transformer.from_crs("EPSG:25832", "EPSG:4326", always_xy=True)


def _lonlat(x: float, y: float) -> tuple[float, float]:
    lon, lat = TO_LONLAT.transform(x, y)
    return float(lon), float(lat)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("terrain-twin")
    corners = [(X0, Y0), (X0 + 10, Y0), (X0 + 10, Y0 + 8), (X0, Y0 + 8)]
    nodes = {i + 1: (*_lonlat(x, y), {}) for i, (x, y) in enumerate(corners)}
    nodes.update(
        {10 + i: (*_lonlat(x, y), {}) for i, (x, y) in enumerate([(X0 - 50, Y0 - 10), (X0 + 150, Y0 - 10)])}
    )
    ways = {100: ([1, 2, 3, 4, 1], {"building": "house", "height": "7"}),
            200: ([10, 11], {"highway": "residential", "name": "Hauptstraße"})}  # fmt: skip
    write_pbf(folder / "area.osm.pbf", nodes, ways)
    write_dem(folder / "dem.tif", x0=X0 - 500, y0=Y0 - 500, width_m=1000, height_m=1000, cell=5.0)
    west, south = _lonlat(X0 - 100, Y0 - 100)
    east, north = _lonlat(X0 + 160, Y0 + 100)
    source = {"licence": "CC0", "publisher": "p", "steward": "s"}
    config = parse_config(
        {"twin": {"name": "terrain twin", "crs": "EPSG:25832"}, "area": {"bbox": [west, south, east, north]},
         "sources": [{"name": "osm", "kind": "osm", "path": "area.osm.pbf", **source},
                     {"name": "terrain", "kind": "dem", "path": "dem.tif", **source}]},
        base_dir=folder,
    )  # fmt: skip
    build_twin(config)
    return config.store_path


@pytest.fixture(scope="module")
def server(store_path: Path) -> Iterator[str]:
    from civictwin.api.app import create_app

    with serving(create_app(store_path)) as base:
        yield base


def test_the_map_stands_the_buildings_on_the_terrain(server: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.goto(f"{server}/viewer/")
            page.wait_for_selector("body[data-map-state=ready]", state="attached", timeout=60_000)
            assert page.evaluate("window.civictwin.terrain") == {"name": "terrain", "maxzoom": 14}
            assert page.evaluate("window.civictwin.map.getTerrain().source") == "terrain"
            assert any("/terrain/" in url and url.endswith(".png") for url in requested)
            lon, lat = _lonlat(X0 + 5, Y0 + 4)  # the building's centre: the plane is 100 + 0.05 * 505 there
            elevation = page.evaluate(f"window.civictwin.map.queryTerrainElevation([{lon}, {lat}])")
            assert elevation == pytest.approx(125.25, abs=0.5)
            switch = page.locator("button.maplibregl-ctrl-terrain-enabled")  # the 3D terrain switch, on
            assert switch.count() == 1
            switch.click()
            assert page.evaluate("window.civictwin.map.getTerrain()") is None  # off: a flat map again
        finally:
            browser.close()
