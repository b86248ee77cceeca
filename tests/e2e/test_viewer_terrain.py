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
from served import CHROMIUM, serving

from civictwin.api.viewer import viewer_built

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "city3d"))
from city3d_fixtures import X0, Y0, build_dem_twin, lonlat

pytestmark = pytest.mark.e2e

if not CHROMIUM.is_file():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
if not viewer_built():
    pytest.skip("the viewer bundle is not built (cd web && npm ci && npm run build)", allow_module_level=True)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_dem_twin(
        tmp_path_factory.mktemp("terrain-twin"), name="terrain twin", osm_heights={0.0: "7"}
    )


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
            lon, lat = lonlat(X0 + 5, Y0 + 4)  # the building's centre: the plane is 100 + 0.05 * 505 there
            elevation = page.evaluate(f"window.civictwin.map.queryTerrainElevation([{lon}, {lat}])")
            assert elevation == pytest.approx(125.25, abs=0.5)
            switch = page.locator("button.maplibregl-ctrl-terrain-enabled")  # the 3D terrain switch, on
            assert switch.count() == 1
            switch.click()
            assert page.evaluate("window.civictwin.map.getTerrain()") is None  # off: a flat map again
        finally:
            browser.close()
