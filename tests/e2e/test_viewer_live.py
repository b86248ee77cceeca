"""The viewer's live sensors and alerts in a real headless Chromium (Debian's), against the real server.

A small twin (a few buildings around central Helsinki) with three sensors: NO2 with an open alert,
PM10 within its limit, a counter with no data yet. The map colours each sensor by its status, the
sensor list and the chart work from the keyboard, the alerts panel lists the open alert, a new
alert shows up by itself, and the page fits a phone's width.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from served import CHROMIUM, chromium, serving
from shapely.geometry import box

from civictwin.api.viewer import viewer_built
from civictwin.config import load_config
from civictwin.live.alerts import step
from civictwin.live.triggers import Finding
from civictwin.store.alerts import AlertStore, alerts_path
from civictwin.store.duckdb import DuckDBStore
from civictwin.store.observations import (
    DatasetSpec,
    DatastreamSpec,
    LocationSpec,
    ObservationBatch,
    ObservedPropertySpec,
    SensorSpec,
    ThingSpec,
    Unit,
    open_observations,
)

pytestmark = pytest.mark.e2e

if not CHROMIUM.is_file():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
if not viewer_built():
    pytest.skip("the viewer bundle is not built (cd web && npm ci && npm run build)", allow_module_level=True)

T0 = 1_772_359_200_000  # 2026-03-01T10:00:00Z
HOUR = 3_600_000
SENSORS = {  # key: (property, unit, lon, lat)
    "no2-centre": ("NO2", "ug/m3", 24.9440, 60.1700),
    "pm10-centre": ("PM10", "ug/m3", 24.9400, 60.1680),
    "count-c18": ("Vehicles", "{vehicle}/h", 24.9480, 60.1720),
}
VERMILLION, BLUISH_GREEN, GREY = (0xD5, 0x5E, 0x00), (0x00, 0x9E, 0x73), (0x8C, 0x8C, 0x8C)
TWIN_TOML = """
[twin]
name = "live viewer"

[area]
bbox = [24.935, 60.164, 24.954, 60.179]

[[sources]]
name = "osm"
kind = "osm"
path = "none.osm.pbf"
licence = "ODbL-1.0"
publisher = "OpenStreetMap contributors"
steward = "tests"

[[rules]]
name = "no2_high"
kind = "threshold"
observed_property = "NO2"
above = 200.0
severity = "critical"

[[rules]]
name = "pm10_high"
kind = "threshold"
observed_property = "PM10"
above = 50.0
"""


def _spec(key: str) -> DatastreamSpec:
    prop, unit, lon, lat = SENSORS[key]
    location = LocationSpec(f"loc-{key}", f"Station {key}", lon, lat)
    return DatastreamSpec(
        key=key,
        name=f"{prop} {key}",
        dataset="city_sensors",
        thing=ThingSpec(f"thing-{key}", f"Station {key}", location),
        sensor=SensorSpec(f"sensor-{prop}", prop),
        observed_property=ObservedPropertySpec(prop.lower(), prop, prop),
        unit=Unit(unit, unit, "µg/m³" if unit == "ug/m3" else "vehicles/h"),
    )


def _open_alert(store_path: Path, rule: str, ds: int, at_ms: int, value: float) -> None:
    finding = Finding(rule, f"datastream:{ds}", True, datetime.fromtimestamp(at_ms / 1000, tz=UTC), value, 200.0,
                      f"{value:g} at {datetime.fromtimestamp(at_ms / 1000, tz=UTC):%H:%M} is above the limit", {})  # fmt: skip
    opened = step(None, finding, severity="critical", datasets=("city_sensors",))
    assert opened.alert is not None
    with AlertStore(alerts_path(store_path)) as alerts:
        alerts.save([(opened.alert, opened.event)], targets={})


@pytest.fixture(scope="module")
def twin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("live-viewer")
    (folder / "twin.toml").write_text(TWIN_TOML)
    config = load_config(folder)
    buildings = gpd.GeoDataFrame(
        {"osm_id": [1, 2, 3], "height_m": [12.0, 18.0, 9.0]},
        geometry=[
            box(24.939, 60.167, 24.941, 60.168),
            box(24.943, 60.169, 24.945, 60.171),
            box(24.947, 60.171, 24.949, 60.173),
        ],
        crs="EPSG:4326",
    ).to_crs("EPSG:32635")
    store = DuckDBStore.create(config.store_path, crs="EPSG:32635")
    store.write_table("buildings_3d", buildings)
    store.put_record("catalog", "buildings_3d", {"access": "public", "title": "Buildings"})
    store.close()
    with open_observations(config.store_path) as observations:
        observations.ensure_dataset(
            DatasetSpec("city_sensors", "City sensors", "City", "Env team", "CC-BY-4.0", "public")
        )
        ids = {key: observations.ensure_datastream(_spec(key)) for key in SENSORS}
        times = [T0 - h * HOUR for h in range(12, -1, -1)]
        no2 = [120.0 + 10 * i for i in range(13)]  # 120 … 240: above 200 from 09:00 on
        observations.append(
            ObservationBatch.of(datastream_id=[ids["no2-centre"]] * 13, phenomenon_time=times, result=no2),
            origin="test",
        )
        observations.append(
            ObservationBatch.of(
                datastream_id=[ids["pm10-centre"]] * 13, phenomenon_time=times, result=[30.0] * 13
            ),
            origin="test",
        )
    _open_alert(config.store_path, "no2_high", ids["no2-centre"], T0 - 2 * HOUR, 220.0)
    return folder


@pytest.fixture(scope="module")
def server(twin_dir: Path) -> Iterator[str]:
    from civictwin.api.app import create_app

    with serving(create_app(twin_dir)) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def _open(browser: Any, server: str, viewport: dict[str, int]) -> Any:
    page = browser.new_context(viewport=viewport).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server}/viewer/")
    page.wait_for_selector("body[data-live-state=ready]", state="attached", timeout=60_000)
    page.wait_for_selector("body[data-map-state=ready]", state="attached", timeout=60_000)
    page.errors = errors
    return page


def _poll(page: Any, script: str, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = page.evaluate(script)
        if value:
            return value
        page.wait_for_timeout(100)
    raise AssertionError(f"timed out waiting for: {script}")


def _pixel(page: Any, lon: float, lat: float) -> tuple[int, int, int]:
    from PIL import Image

    x, y = page.evaluate(
        f"(() => {{ const p = window.civictwin.map.project([{lon}, {lat}]); return [p.x, p.y]; }})()"
    )
    shot = Image.open(io.BytesIO(page.locator("#map").screenshot())).convert("RGB")
    return shot.getpixel((round(x), round(y)))  # type: ignore[return-value]


def _near(colour: tuple[int, int, int], expected: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 12 for a, b in zip(colour, expected, strict=True))


def test_sensors_are_drawn_in_the_colour_of_their_status(browser: Any, server: str) -> None:
    page = _open(browser, server, {"width": 1280, "height": 800})
    sensors = page.evaluate("window.civictwin.live.sensors.map((s) => [s.key, s.status, s.latest_result])")
    assert sensors == [
        ["no2-centre", "alert", 240.0],
        ["pm10-centre", "ok", 30.0],
        ["count-c18", "no_data", None],
    ]
    _poll(page, "window.civictwin.map.queryRenderedFeatures({layers: ['sensors-circle']}).length === 3")
    page.wait_for_timeout(300)
    for key, colour in (("no2-centre", VERMILLION), ("pm10-centre", BLUISH_GREEN), ("count-c18", GREY)):
        _, _, lon, lat = SENSORS[key]
        assert _near(_pixel(page, lon, lat), colour), (key, _pixel(page, lon, lat))
    alerts = page.inner_text("#alert-list")
    assert "Critical: no2_high on NO2 no2-centre, open since 2026-03-01 08:00 UTC." in alerts
    assert page.inner_text("#alert-status") == "1 open alert."
    assert page.errors == []


def test_the_chart_opens_from_the_keyboard_with_limits_and_alerts(browser: Any, server: str) -> None:
    page = _open(browser, server, {"width": 1280, "height": 800})
    page.focus("#sensor-list li[data-sensor='1'] button")
    page.keyboard.press("Enter")
    _poll(page, "window.civictwin.live.chart && window.civictwin.live.chart.id === 1")
    assert page.evaluate("document.activeElement.id") == "sensor-chart-title"
    assert page.evaluate("window.civictwin.live.chart") == {"id": 1, "points": 13, "limits": 1, "alerts": 1}
    chart = page.locator("#sensor-chart svg")
    title = chart.locator("title").text_content() or ""
    assert (
        "13 observations from 2026-02-28 22:00 UTC to 2026-03-01 10:00 UTC; lowest 120, highest 240, latest 240."
        in title
    )
    assert "Rule no2_high (critical) fires when a value is above 200 µg/m³." in title
    assert "Alert 1 of rule no2_high open since 2026-03-01 08:00 UTC." in title
    assert chart.locator(".limit").count() == 1 and chart.locator(".alert-band").count() == 1
    # The limit line is drawn at the height of the point whose value is 200 (06:00: 120 + 10 × 8).
    limit_y = float(chart.locator(".limit").get_attribute("y1"))
    ys = page.eval_on_selector_all(
        "#sensor-chart circle.point", "(cs) => cs.map((c) => Number(c.getAttribute('cy')))"
    )
    assert abs(ys[8] - limit_y) < 0.5 and ys[7] > limit_y > ys[9]
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # "Close chart"
    assert page.evaluate("window.civictwin.live.chart") is None
    assert page.evaluate("document.activeElement.textContent") == "NO2 no2-centre"


def test_a_new_alert_appears_without_reloading(browser: Any, server: str, twin_dir: Path) -> None:
    page = _open(browser, server, {"width": 1280, "height": 800})
    assert page.evaluate("window.civictwin.live.sensors[1].status") == "ok"
    config = load_config(twin_dir)
    with open_observations(config.store_path) as observations:
        observations.append(
            ObservationBatch.of(datastream_id=[2], phenomenon_time=[T0 + HOUR], result=[75.0]), origin="test"
        )
    _open_alert(config.store_path, "pm10_high", 2, T0 + HOUR, 75.0)
    _poll(page, "window.civictwin.live.sensors[1].status === 'alert'", timeout_s=20)
    assert page.inner_text("#alert-status") == "2 open alerts."
    _poll(
        page,
        "window.civictwin.map.querySourceFeatures('sensors').some((f) => f.properties.status === 'alert' && f.properties.id === 2)",
    )


def test_the_live_panel_fits_a_phone(browser: Any, server: str) -> None:
    page = _open(browser, server, {"width": 390, "height": 844})
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    page.click("#alert-list li[data-alert='1'] button")  # "Show chart" of the NO2 alert
    _poll(page, "window.civictwin.live.chart && window.civictwin.live.chart.id === 1")
    # Read in one evaluation: a refresh may redraw the chart between a locator's lookup and its box.
    width, height = page.evaluate(
        "(() => { const r = document.querySelector('#sensor-chart svg').getBoundingClientRect(); return [r.width, r.height]; })()"
    )
    assert 0 < width <= 390 and height > 100
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
