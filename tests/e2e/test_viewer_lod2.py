"""The viewer draws buildings in their best LoD on the terrain, in a real headless Chromium (Debian's).

A tiny twin (the city3d tests' hand-made inputs): OSM's house and a CityGML LoD2 house with the same
10 × 8 m footprint (conflated into one building, LoD2), a second OSM building 20 m east with no city
model (LoD1, 12 m), a road, and a DEM that is the plane z = 100 + 0.05 (x - x0). The house's gabled
roof is drawn by the LoD2 layer (14 triangles), its LoD1 extrusion is flattened, the other building
stays extruded, and the house stands on the terrain at its stored base elevation (125 m).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from served import CHROMIUM, chromium, serving

from civictwin.api.viewer import viewer_built

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "city3d"))
from city3d_fixtures import X0, Y0, build_dem_twin, lonlat

pytestmark = pytest.mark.e2e

if not CHROMIUM.is_file():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
if not viewer_built():
    pytest.skip("the viewer bundle is not built (cd web && npm ci && npm run build)", allow_module_level=True)

VERMILLION = (0xD5, 0x5E, 0x00)
"""The roof colour (lod2Layer.js: Okabe–Ito vermillion), before shading."""


def _south_roof_colour() -> tuple[float, float, float]:
    """The south roof's shade: 0.6 + 0.4 |n · l|, n = (0, -0.6, 0.8), l = (0.35, -0.35, √3/2) normalised."""
    light = (0.35, -0.35, math.sqrt(3) / 2)
    length = math.hypot(*light)
    lit = 0.6 + 0.4 * abs(-0.6 * light[1] / length + 0.8 * light[2] / length)
    return (VERMILLION[0] * lit, VERMILLION[1] * lit, VERMILLION[2] * lit)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lod2-twin")
    return build_dem_twin(folder, name="lod2 twin", osm_heights={0.0: "7", 30.0: "12"}, city_houses=1)


@pytest.fixture(scope="module")
def server(store_path: Path) -> Iterator[str]:
    from civictwin.api.app import create_app

    with serving(create_app(store_path)) as base:
        yield base


@pytest.fixture(scope="module")
def page(server: str) -> Iterator[Any]:
    with chromium() as browser:
        page = browser.new_context(viewport={"width": 800, "height": 600}).new_page()
        page.goto(f"{server}/viewer/")
        page.wait_for_selector("body[data-map-state=ready]", state="attached", timeout=60_000)
        page.wait_for_selector("body[data-lod2-state=drawn]", state="attached", timeout=60_000)
        yield page


LOOK = """([lon, lat]) => new Promise((resolve) => {
  const map = window.civictwin.map;
  map.once('idle', () => resolve(null));
  map.jumpTo({ center: [lon, lat], zoom: 20, pitch: 0, bearing: 0 });
})"""
"""Look straight down at a point (zoom 20: about 0.1 m a pixel), so whatever is above it is at the canvas centre."""

PIXEL = """() => {
  const canvas = window.civictwin.map.getCanvas();
  const copy = document.createElement('canvas');
  copy.width = canvas.width;
  copy.height = canvas.height;
  const context = copy.getContext('2d');
  context.drawImage(canvas, 0, 0);
  return Array.from(context.getImageData(canvas.width / 2, canvas.height / 2, 1, 1).data);
}"""
"""The RGBA of the canvas's centre pixel (the map keeps its drawing buffer: preserveDrawingBuffer)."""


def _centre_pixel(page: Any, x: float, y: float) -> tuple[int, int, int]:
    page.evaluate(LOOK, list(lonlat(x, y)))
    red, green, blue, _alpha = page.evaluate(PIXEL)
    return red, green, blue


def test_the_layer_draws_the_lod2_house_and_flattens_its_lod1_extrusion(page: Any) -> None:
    drawn = page.evaluate("window.civictwin.lod2")
    counts = (drawn["buildings"], drawn["triangles"], drawn["drawnIds"], drawn["truncated"])
    assert counts == (1, 14, 1, False)  # one house: 2 pentagon gables × 3 + 2 walls × 2 + 2 roofs × 2
    assert drawn["frames"] > 0
    height = page.evaluate("window.civictwin.map.getPaintProperty('buildings-3d', 'fill-extrusion-height')")
    assert height[0] == "match" and height[2] == ["house0"] and height[3] == 0
    legend = page.locator("#legend-buildings .legend-lod2").inner_text()
    assert legend.strip() == "Roofs of the buildings in LoD2"


def test_a_pixel_on_the_pitched_roof_is_the_roofs_shade_and_the_lod1_building_stays_grey(page: Any) -> None:
    roof = _centre_pixel(page, X0 + 5, Y0 + 2)  # on the south roof, 2 m from the eaves
    expected = _south_roof_colour()
    assert all(abs(got - want) <= 6 for got, want in zip(roof, expected, strict=True)), (roof, expected)
    page.evaluate("window.civictwin.map.setLayoutProperty('buildings-lod2', 'visibility', 'none')")
    red, green, _blue = _centre_pixel(page, X0 + 5, Y0 + 2)
    assert abs(red - expected[0]) > 30 or abs(green - expected[1]) > 30  # without the layer: no roof there
    page.evaluate("window.civictwin.map.setLayoutProperty('buildings-lod2', 'visibility', 'visible')")
    block = _centre_pixel(page, X0 + 35, Y0 + 4)  # the LoD1 building's flat top: a grey of the height ramp
    assert max(block) - min(block) <= 12 and block != roof, block


def test_the_house_stands_on_the_terrain_at_its_stored_base(page: Any, server: str) -> None:
    import httpx

    payload = httpx.get(f"{server}/buildings/lod2.json").json()
    (house,) = payload["buildings"]
    assert (house["id"], house["base_m"]) == ("house0", 125.0)  # 100 + 0.05 · 500: the plane at the west wall
    assert page.evaluate("window.civictwin.map.getTerrain().source") == "terrain"
    lon, lat = lonlat(X0 + 5, Y0 + 4)
    elevation = page.evaluate(f"window.civictwin.map.queryTerrainElevation([{lon}, {lat}])")
    assert elevation == pytest.approx(125.25, abs=0.5)  # the plane at the house's centre
    switch = page.locator("button.maplibregl-ctrl-terrain-enabled")
    switch.click()  # terrain off: the house stands at 0 on a flat map, still drawn
    assert page.evaluate("window.civictwin.map.getTerrain()") is None
    roof = _centre_pixel(page, X0 + 5, Y0 + 2)
    assert all(abs(got - want) <= 6 for got, want in zip(roof, _south_roof_colour(), strict=True)), roof


def test_the_layer_follows_the_view_fetching_the_buildings_around_it(page: Any) -> None:
    first = page.evaluate("window.civictwin.lod2")
    west, south, east, north = first["box"]
    lon, lat = lonlat(X0 + 5, Y0 + 4)
    assert west < lon < east and south < lat < north  # the view grown by half: the house inside
    fetches = first["fetches"]
    page.evaluate(LOOK, list(lonlat(X0 + 5_000, Y0 + 4)))  # 5 km east: out of the fetched box
    # selectors, not wait_for_function: the viewer's CSP forbids the eval that the latter needs
    page.wait_for_selector(
        f"body[data-lod2-fetches='{fetches + 1}'][data-lod2-state=empty]", state="attached"
    )
    away = page.evaluate("window.civictwin.lod2")
    assert (away["buildings"], away["triangles"], page.evaluate("document.body.dataset.lod2State")) == (
        0,
        0,
        "empty",
    )
    height = page.evaluate("window.civictwin.map.getPaintProperty('buildings-3d', 'fill-extrusion-height')")
    assert height[0] != "match"  # no building flattened: the LoD1 extrusions are whole again
    page.evaluate(LOOK, [lon, lat])  # back: fetched again and drawn
    page.wait_for_selector(
        f"body[data-lod2-fetches='{fetches + 2}'][data-lod2-state=drawn]", state="attached"
    )
    back = page.evaluate("window.civictwin.lod2")
    assert (back["buildings"], back["triangles"], back["drawnIds"]) == (1, 14, 1)
    roof = _centre_pixel(page, X0 + 5, Y0 + 2)
    assert all(abs(got - want) <= 6 for got, want in zip(roof, _south_roof_colour(), strict=True)), roof
