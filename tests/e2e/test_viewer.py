"""The web viewer in a real headless Chromium (Debian's ``chromium``), against the real server.

The server is ``create_app`` over the Helsinki demo twin, run by uvicorn on a free loopback port; the
browser is driven by Playwright's Python package pointed at ``/usr/bin/chromium`` (no browser
download). A hand-written comparison in ``<twin>/runs/`` feeds the scenario page. The tests skip with
a reason when Chromium is not installed or the viewer bundle has not been built (``cd web && npm ci &&
npm run build``).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import geopandas as gpd
import pytest
from served import CHROMIUM, chromium, serving
from shapely.geometry import LineString, box

from civictwin.api.viewer import viewer_built

pytestmark = pytest.mark.e2e

BACKGROUND_RGB = (0xEC, 0xEF, 0xF1)
"""The map's plain background colour (web/src/mapPage.js)."""

if not CHROMIUM.is_file():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
if not viewer_built():
    pytest.skip("the viewer bundle is not built (cd web && npm ci && npm run build)", allow_module_level=True)

COMPARISON: dict[str, Any] = {
    "id": "demo-cmp",
    "created": "2026-11-21T10:00:00Z",
    "baseline": "baseline",
    "plans": ["close_main", "zone30"],
    "kpis": [
        {"kpi": "mean_travel_time_s", "unit": "s", "scenario": "baseline", "mean": 348.0,
         "ci_low": 320.7, "ci_high": 375.3, "n": 5},
        {"kpi": "mean_travel_time_s", "unit": "s", "scenario": "close_main", "mean": 543.0,
         "ci_low": 405.2, "ci_high": 680.8, "n": 5},
        {"kpi": "mean_travel_time_s", "unit": "s", "scenario": "zone30", "mean": 352.5,
         "ci_low": 330.1, "ci_high": 374.9, "n": 5},
        {"kpi": "co2_kg", "unit": "kg", "scenario": "baseline", "mean": 1731.0,
         "ci_low": 1700.0, "ci_high": 1762.0, "n": 5},
        {"kpi": "co2_kg", "unit": "kg", "scenario": "close_main", "mean": 2719.0,
         "ci_low": 2600.0, "ci_high": 2838.0, "n": 5},
        {"kpi": "co2_kg", "unit": "kg", "scenario": "zone30", "mean": 1702.0,
         "ci_low": 1650.0, "ci_high": 1754.0, "n": 5},
    ],
    "differences": [
        {"kpi": "mean_travel_time_s", "plan": "close_main", "mean": 195.0, "ci_low": 52.1,
         "ci_high": 337.9, "distinguishable": True, "words": "Mean travel time rises by 56%."},
        {"kpi": "co2_kg", "plan": "close_main", "mean": 988.0, "ci_low": 870.0, "ci_high": 1106.0,
         "distinguishable": True, "words": "CO2 rises by 57%."},
        {"kpi": "mean_travel_time_s", "plan": "zone30", "mean": 4.5, "ci_low": -30.2, "ci_high": 39.2,
         "distinguishable": False, "words": "Mean travel time: within run-to-run noise."},
        {"kpi": "co2_kg", "plan": "zone30", "mean": -29.0, "ci_low": -90.0, "ci_high": 32.0,
         "distinguishable": False, "words": "CO2: within run-to-run noise."},
    ],
    "summary": [
        "Closing the main street makes car trips longer: mean travel time rises by 56%.",
        "The 30 km/h zone shows no detectable change.",
    ],
    "tables": [
        {"id": "traffic.edges", "engine": "traffic", "name": "edges", "label": "Street edges",
         "key": ["edge_id"], "layer": "network_edges", "values": [{"column": "vehicles", "unit": "vehicles"}]},
        {"id": "energy.buildings", "engine": "energy", "name": "buildings", "label": "Buildings: heat demand",
         "key": ["osm_type", "osm_id"], "layer": "buildings_3d", "values": [{"column": "heat_mwh", "unit": "MWh"}]},
    ],
}  # fmt: skip
for _row in COMPARISON["kpis"]:
    _row["engine"] = "traffic"
COMPARISON["kpis"] += [
    {"engine": "energy", "kpi": "heat_mwh", "unit": "MWh", "label": "Heat demand of buildings", "scenario": s,
     "mean": m, "ci_low": m - 1, "ci_high": m + 1, "n": 5}
    for s, m in (("baseline", 42.0), ("close_main", 23.5), ("zone30", 42.0))
]  # fmt: skip
COMPARISON["differences"] += [
    {"engine": "energy", "kpi": "heat_mwh", "plan": "close_main", "mean": -18.5, "ci_low": -20.0, "ci_high": -17.0,
     "distinguishable": True, "words": "Heat demand of buildings: down 44%, an improvement."},
]  # fmt: skip
GRIDLOCK = "403 teleports for 5,390 trips exceed the allowed share 5%: the network is gridlocked or broken"
COMPARISON["not_evaluated"] = [
    {"scenario": "close_all", "runs": 5, "statement": "'close_all' could not be evaluated: …",
     "failures": [{"engine": "traffic", "seed": s, "reason": GRIDLOCK} for s in (1, 2, 3)]},
]  # fmt: skip
"""A third plan whose simulation failed the quality check (three of its five seeds): never offered
as a scenario, named on the page with its reason."""


CONSULTATION_TOML = """
[[consultations]]
comparison = "demo-cmp"
opens = 2026-01-01
closes = 2100-01-01
themes = ["safety", "noise"]
proof_of_work_bits = 8
survey_categories = ["pothole", "lighting"]
"""
"""The demo comparison takes comments and votes (docs/consultation.md#comments-and-votes) and survey
observations (docs/methods-surveys.md#the-viewers-survey-form)."""


def _write_comparison(twin_dir: Path) -> None:
    """A complete comparison as ``civictwin compare`` writes it (the layout of civictwin.runs): three
    street edges in central Helsinki from the traffic engine, and two buildings from a second engine."""
    folder = twin_dir / "runs" / COMPARISON["id"]
    folder.mkdir(parents=True)
    (folder / "comparison.json").write_text(json.dumps(COMPARISON))
    (folder / "manifest.json").write_text(json.dumps({"seeds": [1, 2, 3, 4, 5]}))
    (folder / "report.html").write_text("<!doctype html><title>report</title>")
    (folder / "tables" / "traffic.edges").mkdir(parents=True)
    (folder / "tables" / "energy.buildings").mkdir(parents=True)
    for plan, sign in (("close_main", 1.0), ("zone30", -1.0)):
        gpd.GeoDataFrame(
            {
                "edge_id": ["e1", "e2", "e3"],
                "vehicles_base": [100.0, 200.0, 50.0],
                "vehicles_plan": [100.0 + 40 * sign, 120.0, 60.0],
                "vehicles_diff": [40.0 * sign, -80.0, 10.0],
                "vehicles_real": [True, True, True],
            },
            geometry=[
                LineString([(24.9400, 60.1680), (24.9440, 60.1690)]),
                LineString([(24.9440, 60.1690), (24.9460, 60.1720)]),
                LineString([(24.9380, 60.1700), (24.9400, 60.1740)]),
            ],
            crs="EPSG:4326",
        ).to_parquet(folder / "tables" / "traffic.edges" / f"diff_{plan}.parquet")
    gpd.GeoDataFrame(  # buildings for close_main only: zone30's file is missing
        {
            "osm_type": ["way", "way"],
            "osm_id": [11, 12],
            "heat_mwh_base": [30.0, 12.0],
            "heat_mwh_plan": [10.0, 13.5],
            "heat_mwh_diff": [-20.0, 1.5],
            "heat_mwh_ci_low": [-23.0, -2.0],
            "heat_mwh_ci_high": [-17.0, 5.0],
            "heat_mwh_real": [True, False],
        },
        geometry=[box(24.938, 60.167, 24.944, 60.171), box(24.944, 60.167, 24.950, 60.171)],
        crs="EPSG:4326",
    ).to_parquet(folder / "tables" / "energy.buildings" / "diff_close_main.parquet")
    _write_equity(folder)
    (folder / "complete").touch()


def _write_equity(folder: Path) -> None:
    """The comparison's equity view: vehicle-km of the lowest income quintile's zones under close_main."""
    from civictwin.compare.equity import EQUITY_FILE, EquityRow, EquityView

    row = EquityRow(
        engine="traffic", table="zones", value="vehicle_km", unit="km", grouping="income",
        group="1 of 5 (lowest): 9,000–12,000", zones=3, residents=1200.0, plan="close_main", base_mean=32.0,
        plan_mean=27.0, diff=-5.0, ci_low=-7.3, ci_high=-2.7, distinguishable=True, words="",
    )  # fmt: skip
    view = EquityView(rows=[row], groups={"income": [row.group]}, not_broken_down={"co2_kg": "one number"})
    (folder / EQUITY_FILE).write_text(view.to_json(), encoding="utf-8")


@pytest.fixture(scope="module")
def twin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from civictwin.demo import build_demo

    folder = tmp_path_factory.mktemp("demo")
    build_demo(folder)
    _write_comparison(folder)
    _write_calibration(folder)
    with (folder / "twin.toml").open("a", encoding="utf-8") as config:
        config.write(CONSULTATION_TOML)
    return folder


def _write_calibration(twin_dir: Path) -> None:
    """A calibration record (as ``civictwin calibrate run`` writes it) with two count sites on the
    demo's first two street edges: one matched (GEH 0), one not (100 observed, 200 simulated: 8.2)."""
    from civictwin.store.duckdb import DuckDBStore

    with DuckDBStore.open(next(twin_dir.glob("*.duckdb"))) as store:
        edges = [str(e) for e in store.read_table("network_edges", columns=["edge_id"])["edge_id"][:2]]
    sites = [
        {"site": name, "edge_id": edge, "street": "", "status": "used", "reasons": ""}
        for name, edge in zip(("A", "B"), edges, strict=True)
    ]
    record = {
        "id": "calibration-001",
        "statement": "After calibration GEH < 5 holds at 50% of 2 count site-hours (0% before).",
        "inputs": {"sites": sites},
        "od_factors": [],
        "count_edges": edges,
        "fit_before": {"site_hours": 2, "share_geh_ok": 0.0, "meets_dmrb": False},
        "fit_after": {"site_hours": 2, "share_geh_ok": 0.5, "meets_dmrb": False},
        "kfold": {"folds": [], "note": "2 site(s): too few to hold any back"},
        "scatter": [
            {"site": "A", "edge_id": edges[0], "hour": 0, "observed": 400.0, "before": 100.0, "after": 400.0},
            {"site": "B", "edge_id": edges[1], "hour": 0, "observed": 100.0, "before": 100.0, "after": 200.0},
        ],
    }
    (twin_dir / "calibration").mkdir()
    (twin_dir / "calibration" / "calibration-001.json").write_text(json.dumps(record))


def _app(twin_dir: Path) -> Any:
    """``create_app`` over the twin (it mounts the viewer and scenario routers)."""
    from civictwin.api.app import create_app

    return create_app(twin_dir)


@pytest.fixture(scope="module")
def server(twin_dir: Path) -> Iterator[str]:
    """The real app under uvicorn in a thread; yields its base URL."""
    with serving(_app(twin_dir)) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context.new_page()
    context.close()


def _open_map(page: Any, server: str) -> None:
    page.goto(f"{server}/viewer/")
    # A selector, not wait_for_function: the viewer's CSP forbids the eval that the latter needs.
    page.wait_for_selector("body[data-map-state=ready]", state="attached", timeout=60_000)


def _poll(page: Any, script: str, timeout_s: float = 30) -> Any:
    """Evaluate ``script`` until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = page.evaluate(script)
        if value:
            return value
        page.wait_for_timeout(100)
    raise AssertionError(f"timed out waiting for: {script}")


def _store_buildings(twin_dir: Path) -> dict[int, float]:
    """Height of every building in the demo store, by OSM id."""
    from civictwin.store.duckdb import DuckDBStore

    with DuckDBStore.open(next(twin_dir.glob("*.duckdb"))) as store:
        frame = store.read_table("buildings_3d", columns=["osm_id", "height_m"])
    return {int(k): float(v) for k, v in zip(frame["osm_id"], frame["height_m"], strict=True)}


def test_map_renders_the_demo_buildings(page: Any, server: str, twin_dir: Path) -> None:
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    _open_map(page, server)

    rendered = page.evaluate(
        "() => [...new Set(window.civictwin.map.queryRenderedFeatures({layers: ['buildings-3d']})"
        ".map((f) => f.properties.osm_id))]"
    )
    heights = _store_buildings(twin_dir)
    assert len(rendered) > 0.9 * len(heights), f"{len(rendered)} of {len(heights)} buildings rendered"
    assert set(rendered) <= set(heights)
    assert page.evaluate("window.civictwin.layers.map((l) => l.table)") == [
        "zones",
        "green",
        "roads",
        "buildings_3d",
    ]
    # Offline: everything came from the server itself (no CDN, basemap or font service).
    assert {urlparse(url).netloc for url in requests} == {urlparse(server).netloc}
    assert errors == []

    from PIL import Image

    shot = Image.open(io.BytesIO(page.locator("#map").screenshot())).convert("RGB")
    pixels = list(shot.get_flattened_data())
    background = sum(
        1 for p in pixels if all(abs(a - b) <= 2 for a, b in zip(p, BACKGROUND_RGB, strict=True))
    )
    assert len(set(pixels)) > 200, "the map screenshot is nearly uniform"
    assert background / len(pixels) < 0.8, "the map screenshot is mostly empty background"


def test_layer_switcher_and_zone_attribute(page: Any, server: str, twin_dir: Path) -> None:
    _open_map(page, server)
    options = page.eval_on_selector_all("#zone-attribute option", "(nodes) => nodes.map((n) => n.value)")
    assert page.input_value("#zone-attribute") == "population"
    assert {"population", "jobs_proxy_m2", "green_m2", "area_m2"} <= set(options)
    assert "zone_id" not in options

    from civictwin.store.duckdb import DuckDBStore

    with DuckDBStore.open(next(twin_dir.glob("*.duckdb"))) as store:
        jobs = store.read_table("zones", columns=["jobs_proxy_m2"])["jobs_proxy_m2"]
    page.select_option("#zone-attribute", "jobs_proxy_m2")
    legend = page.inner_text("#legend-zones")
    assert legend.startswith("Jobs proxy (m²)")
    first, last = legend.splitlines()[1].strip(), legend.splitlines()[-1].strip()
    assert first.startswith(f"{jobs.min():,.0f} to under")
    assert last.endswith(f"– {jobs.max():,.0f}")

    def rendered(layer: str) -> int:
        return int(
            page.evaluate(f"window.civictwin.map.queryRenderedFeatures({{layers: ['{layer}']}}).length")
        )

    assert rendered("buildings-3d") > 0
    page.uncheck("#toggle-buildings")
    _poll(page, "window.civictwin.map.getLayoutProperty('buildings-3d', 'visibility') === 'none'")
    page.wait_for_timeout(300)
    assert rendered("buildings-3d") == 0
    assert rendered("roads-line") > 0


def test_clicking_a_building_shows_its_attributes(page: Any, server: str, twin_dir: Path) -> None:
    _open_map(page, server)
    target = page.evaluate(
        """() => {
          const map = window.civictwin.map;
          const canvas = map.getCanvas();
          const box = canvas.getBoundingClientRect();
          for (const f of map.queryRenderedFeatures({layers: ['buildings-3d']})) {
            const ring = f.geometry.type === 'Polygon' ? f.geometry.coordinates[0] : f.geometry.coordinates[0][0];
            const lng = ring.reduce((s, c) => s + c[0], 0) / ring.length;
            const lat = ring.reduce((s, c) => s + c[1], 0) / ring.length;
            const p = map.project([lng, lat]);
            if (p.x < 40 || p.y < 40 || p.x > canvas.clientWidth - 80 || p.y > canvas.clientHeight - 40) continue;
            const top = map.queryRenderedFeatures([p.x, p.y], {layers: ['buildings-3d']});
            if (top.length) return {x: box.left + p.x, y: box.top + p.y, osm_id: top[0].properties.osm_id};
          }
          return null;
        }"""
    )
    assert target is not None, "no clickable building on screen"
    page.mouse.click(target["x"], target["y"])
    page.wait_for_selector("#inspector tr[data-field=height_m]")

    assert page.inner_text("#inspector h2") == "Building"
    assert page.inner_text("#inspector tr[data-field=osm_id] td") == str(target["osm_id"])
    shown = page.inner_text("#inspector tr[data-field=height_m] td")
    expected = _store_buildings(twin_dir)[target["osm_id"]]
    assert float(shown.replace(",", "")) == pytest.approx(expected, abs=0.01 if expected < 10 else 0.5)
    assert page.inner_text("#inspector tr[data-field=height_m] th") == "Height (m)"


def test_scenario_page_shows_both_scenarios_kpis(page: Any, server: str) -> None:
    page.goto(f"{server}/viewer/#scenarios")
    page.wait_for_selector("body[data-scenario-state=ready]", state="attached", timeout=30_000)

    assert page.input_value("#comparison") == "demo-cmp"
    assert page.input_value("#scenario-a") == "baseline"
    assert page.input_value("#scenario-b") == "close_main"
    header = page.inner_text("#kpi-table thead")
    assert "baseline" in header and "close_main" in header
    travel = page.inner_text("#kpi-table tr[data-kpi=mean_travel_time_s]").split()
    assert travel[:4] == ["Mean", "travel", "time", "(s)"]
    row = page.inner_text("#kpi-table tr[data-kpi=mean_travel_time_s]")
    for text in (
        "348",
        "321 to 375",
        "543",
        "405 to 681",
        "+195",
        "52.1 to 338",
        "Distinguishable from noise",
    ):
        assert text in row, f"{text!r} missing from {row!r}"
    co2 = page.inner_text("#kpi-table tr[data-kpi=co2_kg]")
    for text in ("CO2 (kg)", "1,731", "1,700 to 1,762", "2,719", "2,600 to 2,838", "+988"):
        assert text in co2, f"{text!r} missing from {co2!r}"
    assert page.inner_text("#summary-list").splitlines() == COMPARISON["summary"]
    assert page.inner_text("#not-evaluated") == (
        "close_all: not evaluated. Its simulation failed the quality check in 3 of 5 runs (seed 1: "
        f"{GRIDLOCK}); under this model the plan leaves the simulated network gridlocked or its trips "
        "unfinished, so none of its indicators are shown."
    )
    assert "close_all" not in [o.get_attribute("value") for o in page.locator("#scenario-b option").all()]
    assert page.locator("#kpi-charts svg[role=img]").count() == 3  # two traffic KPIs and one of energy
    equity = page.inner_text("#equity")
    for text in (
        "close_main: by income",
        "1 of 5 (lowest): 9,000–12,000",
        "1,200",
        "−5 (−7.3 to −2.7)",
        "CO2 (kg)",
    ):
        assert text in equity, f"{text!r} missing from {equity!r}"

    page.select_option("#scenario-b", "zone30")
    row = _poll(
        page,
        "document.querySelector('#kpi-table tr[data-kpi=co2_kg]').innerText.includes('1,702') "
        "&& document.querySelector('#kpi-table tr[data-kpi=co2_kg]').innerText",
    )
    assert "Within noise" in row and "−29" in row and "1,650 to 1,754" in row


def test_scenario_page_states_the_calibration_and_maps_its_sites_by_geh(page: Any, server: str) -> None:
    page.goto(f"{server}/viewer/#scenarios")
    page.wait_for_selector("body[data-scenario-state=ready]", state="attached", timeout=30_000)
    assert page.inner_text("#calibration-verdict") == (
        "The model does not meet the DMRB criterion (GEH < 5 at 85% of count site-hours): 50% of 2 "
        "site-hours after calibration, 0% before. No sites were held back to validate it. It does not "
        "fit at B (GEH 8.2)."
    )
    colours = _poll(
        page,
        "(() => { const m = window.civictwin.scenarioPage.calibrationMap; if (!m || !m.loaded()) return null;"
        " const f = m.queryRenderedFeatures({layers: ['features']});"
        " return f.length === 2 ? f.map((x) => [x.properties.site, x.layer.paint['circle-color']]) : null; })()",
    )
    by_site = {site: colour for site, colour in colours}
    assert set(by_site) == {"A", "B"} and by_site["A"] != by_site["B"]
    assert "not used" in page.inner_text("#calibration-legend")


def test_scenario_page_maps_edge_differences(page: Any, server: str) -> None:
    page.goto(f"{server}/viewer/#scenarios")
    page.wait_for_selector("body[data-scenario-state=ready]", state="attached", timeout=30_000)
    assert page.input_value("#table-choice") == "traffic.edges"
    assert page.input_value("#table-metric") == "vehicles"
    edges = _poll(
        page,
        "(() => { const m = window.civictwin.tableMaps[0]; if (!m || !m.loaded()) return null;"
        " const ids = [...new Set(m.queryRenderedFeatures({layers: ['features']}).map((f) => f.properties.edge_id))];"
        " return ids.length ? ids.sort() : null; })()",
    )
    assert edges == ["e1", "e2", "e3"]
    assert "−80 (lower)" in page.inner_text("#diff-legend")
    assert page.inner_text("#table-count") == "3 of 3 change their vehicles beyond run-to-run noise."

    page.select_option("#table-view", "side")
    labels = _poll(
        page,
        "window.civictwin.tableMaps.length === 2 && "
        "[...document.querySelectorAll('.map-label')].map((n) => n.textContent)",
    )
    assert labels == ["baseline", "close_main"]


def test_scenario_page_shows_another_engines_kpis_and_buildings(page: Any, server: str) -> None:
    """A second engine's KPIs get their own group in the table; its per-building table is mapped as
    areas, coloured only where the change stands out from noise."""
    page.goto(f"{server}/viewer/#scenarios")
    page.wait_for_selector("body[data-scenario-state=ready]", state="attached", timeout=30_000)
    groups = page.eval_on_selector_all(
        "#kpi-table tr.engine th", "(nodes) => nodes.map((n) => n.textContent)"
    )
    assert groups == ["traffic", "energy"]
    heat = page.inner_text("#kpi-table tr[data-kpi=heat_mwh]")
    assert "Heat demand of buildings (MWh)" in heat and "−18.5" in heat and "improvement" in heat

    page.select_option("#table-choice", "energy.buildings")
    buildings = _poll(
        page,
        "(() => { const m = window.civictwin.tableMaps[0]; if (!m || !m.loaded()) return null;"
        " const ids = [...new Set(m.queryRenderedFeatures({layers: ['features']}).map((f) => f.properties.osm_id))];"
        " return ids.length === 2 ? ids.sort() : null; })()",
    )
    assert buildings == [11, 12]
    assert page.inner_text("#table-count") == "1 of 2 change their heat mwh beyond run-to-run noise."
    assert "−20 (lower)" in page.inner_text("#diff-legend")

    page.select_option("#scenario-b", "zone30")
    note = _poll(
        page,
        "(() => { const t = document.querySelector('#table-note').textContent;"
        " return t.startsWith('No energy.buildings') ? t : null; })()",
    )
    assert note.startswith("No energy.buildings results for zone30:")
    assert page.evaluate("window.civictwin.tableMaps.length") == 0


def test_token_is_sent_with_api_and_tile_requests(page: Any, server: str, twin_dir: Path) -> None:
    from civictwin.governance.audit import audit_path, read_audit
    from civictwin.governance.tokens import Role, create_token, tokens_path

    store_path = next(twin_dir.glob("*.duckdb"))
    issued = create_token(tokens_path(store_path), role=Role.VIEWER, name="e2e")
    _open_map(page, server)  # anonymous first, all tiles loaded: no request of it is still in flight
    page.fill("#token", issued.token)
    sent: list[Any] = []
    page.on("request", lambda request: sent.append(request))
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("body[data-map-state=ready]", state="attached", timeout=60_000)

    assert page.inner_text("#token-state") == "Token in use (this tab only)."
    tiles = [request.all_headers().get("authorization") for request in sent if "/tiles/" in request.url]
    assert tiles and all(auth == f"Bearer {issued.token}" for auth in tiles)
    seen = {e.who for e in read_audit(audit_path(store_path)) if e.path.startswith("/tiles/buildings_3d/")}
    assert issued.record.id in seen


def test_a_refused_token_is_explained(page: Any, server: str) -> None:
    _open_map(page, server)
    page.fill("#token", "ct_unknown_not-a-real-token")
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("body[data-map-state=error]", state="attached", timeout=30_000)
    assert page.inner_text("#map-status") == (
        "The map layers could not be loaded: invalid, unknown or revoked token. "
        "Press “Forget” or paste another token."
    )
    page.click("#token-clear")
    page.wait_for_selector("body[data-map-state=ready]", state="attached", timeout=60_000)
    assert page.inner_text("#token-state") == "No token: public data only."


# The demo twin holds the OSM layers only: no GTFS feed, no sensors, no weather file, no LoD2 roofs, no
# validation records. Hence, by hand, per template: (maturity, next level's unmet needs, unmet needs).
DEMO_READINESS = {  # without ../shared/data: no weather year and no building typology in the demo
    "traffic-plan": (1, ["counts"], ["counts", "transit_service", "validation"]),
    "netzero": (1, ["roofs"], ["roofs", "weather", "typology", "validation"]),
    "heat-green": (1, ["air_temperature"], ["air_temperature", "weather", "validation"]),
    "tourism": (1, ["visitors"], ["visitors", "transit_service", "validation"]),
    "housing-growth": (2, ["transit_service", "weather"], ["transit_service", "weather", "population_check"]),
}
DEMO_READINESS_WITH_ENERGY = {  # with it: [energy] names Helsinki's EPW and TABULA (heat falls back to the EPW)
    **DEMO_READINESS,
    "netzero": (1, ["roofs"], ["roofs", "validation"]),
    "heat-green": (1, ["air_temperature"], ["air_temperature", "validation"]),
    "housing-growth": (2, ["transit_service"], ["transit_service", "population_check"]),
}


def test_readiness_of_the_demo_twin_for_every_template(server: str, twin_dir: Path) -> None:
    from urllib.request import Request, urlopen

    from civictwin.governance.tokens import Role, create_token, tokens_path

    token = create_token(
        tokens_path(next(twin_dir.glob("*.duckdb"))), role=Role.ANALYST, name="readiness"
    ).token
    from civictwin.config import load_config

    energy = load_config(twin_dir).energy
    expected = DEMO_READINESS_WITH_ENERGY if energy.weather and energy.typology else DEMO_READINESS
    for use_case, (maturity, next_level, unmet) in expected.items():
        request = Request(f"{server}/readiness/{use_case}", headers={"Authorization": f"Bearer {token}"})
        with urlopen(request, timeout=30) as answer:
            report = json.loads(answer.read())
        assert (report["maturity"], report["next_level"]) == (maturity, next_level), use_case
        assert [n["id"] for n in report["needs"] if not n["met"]] == unmet, use_case
        assert all(n["licence"] == "ODbL-1.0" for n in report["needs"] if n["kind"] == "layer" and n["met"])


# ---- the consultation page of the demo comparison (/consultations/demo-cmp) -------------------------


def _ax_nodes(page: Any) -> list[dict[str, Any]]:
    """Chromium's own accessibility tree of the page (what a screen reader is given), as flat nodes."""
    session = page.context.new_cdp_session(page)
    nodes = session.send("Accessibility.getFullAXTree")["nodes"]
    return [n for n in nodes if not n.get("ignored")]


def _ax(nodes: list[dict[str, Any]], role: str) -> list[dict[str, Any]]:
    return [n for n in nodes if n.get("role", {}).get("value") == role]


def _ax_names(nodes: list[dict[str, Any]], role: str) -> list[str]:
    return [str(n.get("name", {}).get("value", "")) for n in _ax(nodes, role)]


def _ax_property(node: dict[str, Any], name: str) -> Any:
    return next((p["value"]["value"] for p in node.get("properties", []) if p["name"] == name), None)


NEAR_MANNERHEIMINTIE_10 = (
    # The demo's OSM address Mannerheimintie 10 lies ≈ 60 m from e1, ≈ 240 m from e2's nearer end and
    # ≈ 315 m from e3's: two edges within 300 m, both changed beyond noise (vehicles_real).
    "Street edges: 2 within 300 m, of which 2 change beyond run-to-run noise. Largest changes: "
    "e2: 200 → 120 vehicles (−80.0); e1: 100 → 140 vehicles (+40.0)."
)


def test_the_consultation_page_reads_to_a_screen_reader_and_answers_near_me(page: Any, server: str) -> None:
    page.goto(f"{server}/consultations/demo-cmp")
    page.wait_for_selector("body[data-consult-state=ready]", state="attached", timeout=60_000)
    nodes = _ax_nodes(page)
    assert {"banner", "navigation", "main"} <= {n["role"]["value"] for n in nodes}
    (h1,) = [n for n in _ax(nodes, "heading") if _ax_property(n, "level") == 1]
    assert h1["name"]["value"] == "What changes with close_main, zone30 compared with baseline?"
    assert _ax_names(nodes, "table") == [
        "Indicators per scenario, with 95% intervals, and the change of each plan"
    ]
    assert _ax_names(nodes, "columnheader")[:6] == [
        "Indicator", "baseline", "close_main", "zone30", "Change with close_main", "Change with zone30",
    ]  # fmt: skip
    assert _ax_names(nodes, "rowheader") == [
        "Mean travel time (s)",
        "CO2 (kg)",
        "Heat demand of buildings (MWh)",
    ]
    cells = _ax_names(
        nodes, "cell"
    )  # the comparison's numbers: 348.0 (320.7 to 375.3) and 1731 (1700 to 1762)
    assert "348 s (321 to 375)" in cells and "1,731 kg (1,700 to 1,762)" in cells
    (live,) = [n for n in _ax(nodes, "region") if n["name"]["value"] == "What changes near the chosen place"]
    assert _ax_property(live, "live") == "polite"
    assert any(name.startswith("Map of the change in street edges") for name in _ax_names(nodes, "region"))

    page.fill("#address", "Mannerheimintie 10")
    page.click("form.near button[type=submit]")
    page.wait_for_url("**address=Mannerheimintie+10", timeout=30_000)
    page.wait_for_selector("body[data-near-state=ready]", state="attached", timeout=30_000)
    assert NEAR_MANNERHEIMINTIE_10 in page.inner_text("#near-result")
    shared = page.url  # the link a resident would send: opened anew, the server says the same
    page.goto(shared)
    assert NEAR_MANNERHEIMINTIE_10 in page.inner_text("#near-result")
    page.wait_for_selector("body[data-consult-state=ready]", state="attached", timeout=60_000)
    page.focus("#near-centre")  # from the keyboard: the map's centre instead of a click
    page.keyboard.press("Enter")
    page.wait_for_url("**lon=*", timeout=30_000)
    page.wait_for_selector("body[data-near-state=ready]", state="attached", timeout=30_000)
    assert page.inner_text("#near-result").startswith("Near the point")


def test_the_consultation_page_fits_a_phone_and_prints_without_its_map(browser: Any, server: str) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.goto(f"{server}/consultations/demo-cmp?plan=zone30")
        page.wait_for_selector("body[data-consult-state=ready]", state="attached", timeout=60_000)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing scrolls sideways
        cell = page.locator("tr[data-kpi=mean_travel_time_s] td").first
        assert cell.evaluate("td => getComputedStyle(td).display") == "block"  # one card per indicator
        assert page.locator("strong[aria-current=true]").inner_text() == "zone30"
        page.emulate_media(media="print")
        assert not page.locator("#map").is_visible() and not page.locator("form.near").is_visible()
        assert page.locator(".print-only").first.is_visible()
    finally:
        context.close()


def test_a_resident_comments_and_votes_a_moderator_approves_the_council_exports(
    page: Any, server: str, twin_dir: Path
) -> None:
    """The whole flow: open the page, comment and vote (consent, proof of work solved by the page),
    moderate through the API with a moderator token, see it published, export the counts."""
    import httpx

    from civictwin.governance.tokens import Role, create_token, tokens_path

    page.goto(f"{server}/consultations/demo-cmp")
    page.wait_for_selector("form.say", timeout=60_000)
    assert "No approved comments yet." in page.inner_text("#say")
    page.select_option("#say-scenario", "zone30")
    page.select_option("#say-theme", "noise")
    page.select_option("#say-vote", "for")
    page.fill("#say-text", "Quieter nights <b>please</b>")
    page.click("form.say button[type=submit]")
    assert page.inner_text("#say-status") == "Please tick the consent box first."
    page.check("#say-consent")
    page.click("form.say button[type=submit]")
    page.wait_for_selector("#say[data-say-state=sent]", state="attached", timeout=60_000)
    status = page.inner_text("#say-status")
    assert "is waiting for a moderator" in status and "del_" in status
    page.fill("#say-code", "del_not-a-code")  # deletion on request: an unknown code is told so
    page.click("form.say-delete button[type=submit]")
    page.wait_for_selector("#say-delete-status p", timeout=30_000)
    assert (
        page.inner_text("#say-delete-status")
        == "no contribution has this deletion code (deleted already, or anonymised)"
    )

    moderator = create_token(tokens_path(next(twin_dir.glob("*.duckdb"))), role=Role.MODERATOR, name="desk")
    headers = {"Authorization": f"Bearer {moderator.token}"}
    base = f"{server}/consultations/demo-cmp"
    (queued,) = httpx.get(f"{base}/moderation", headers=headers).json()["contributions"]
    assert (queued["scenario"], queued["theme"], queued["vote"], queued["text"]) == (
        "zone30", "noise", "for", "Quieter nights <b>please</b>")  # fmt: skip
    decided = httpx.post(f"{base}/moderation/{queued['id']}", headers=headers,
                         json={"decision": "approve", "reason": "on topic"})  # fmt: skip
    assert decided.status_code == 200

    page.reload()
    page.wait_for_selector(".say-comments", timeout=60_000)
    assert page.locator(".say-comments p").inner_text() == "Quieter nights <b>please</b>"  # text, not HTML
    assert page.locator(".say-comments b").count() == 0
    assert "zone30: 1 for, 0 against, 1 comment" in page.inner_text(".say-counts")
    counts = httpx.get(f"{base}/export/counts.csv", headers=headers).text.splitlines()
    assert counts[0] == "scenario,theme,contributions,comments,votes_for,votes_against"
    assert "zone30,noise,1,1,1,0" in counts and "zone30,safety,0,0,0,0" in counts


def _phone_photo(path: Path) -> Path:
    """A 320 × 240 px JPEG as a phone writes it: EXIF GPS (60° 10′ 11.64″ N, 24° 56′ 28.3″ E), make,
    model and serial number."""
    from PIL import ExifTags, Image

    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneMaker"
    exif[ExifTags.Base.Model] = "Model X200"
    exif[ExifTags.Base.BodySerialNumber] = "SN-0042"
    exif.get_ifd(ExifTags.IFD.GPSInfo).update({1: "N", 2: (60.0, 10.0, 11.64), 3: "E", 4: (24.0, 56.0, 28.3)})
    Image.new("RGB", (320, 240), (200, 120, 30)).save(path, format="JPEG", exif=exif)
    with Image.open(path) as check:  # the photo sent really carries them
        assert check.getexif().get_ifd(ExifTags.IFD.GPSInfo)[2] == (60.0, 10.0, 11.64)
    return path


def test_a_survey_photo_loses_its_exif_is_moderated_on_the_moderation_page_and_published(
    browser: Any, server: str, twin_dir: Path, tmp_path: Path
) -> None:
    """The survey flow in Chromium: a place from the map, then from the device's location; an
    observation with a photo carrying EXIF GPS and the phone's make and model; the moderator logs in
    on the viewer's moderation page, sees the photo and approves it; the public layer lists it and its
    photo has no EXIF at all."""
    import httpx
    from PIL import ExifTags, Image

    from civictwin.fieldwork.photos import metadata_left
    from civictwin.governance.tokens import Role, create_token, tokens_path

    photo = _phone_photo(tmp_path / "IMG_0001.jpg")
    context = browser.new_context(viewport={"width": 1280, "height": 800}, permissions=["geolocation"],
                                  geolocation={"latitude": 60.1699, "longitude": 24.9384})  # fmt: skip
    try:
        page = context.new_page()
        page.goto(f"{server}/consultations/demo-cmp")
        page.wait_for_selector("body[data-consult-state=ready]", state="attached", timeout=60_000)
        page.wait_for_selector("form.survey", timeout=60_000)
        assert "No approved observations yet." in page.inner_text("#survey")
        page.click("form.survey button[type=submit]")
        assert page.inner_text("#survey-status") == "Please tick the consent box first."
        page.check("#survey-consent")
        page.click("form.survey button[type=submit]")
        assert (
            page.inner_text("#survey-status") == "Choose a place first: click the map, or use your location."
        )
        page.click("#map", position={"x": 400, "y": 300})  # a point picked on the map
        _poll(page, "document.getElementById('survey-place').textContent.includes('° N')")
        page.click("#survey-locate")  # then the device's position instead
        _poll(page, "document.getElementById('survey-place').textContent === '60.16990° N, 24.93840° E'")
        page.select_option("#survey-category", "pothole")
        page.fill("#survey-text", "Deep hole <img src=x onerror=alert(1)>")
        page.set_input_files("#survey-photo", str(photo))
        page.click("form.survey button[type=submit]")
        page.wait_for_selector("#survey[data-survey-state=sent]", state="attached", timeout=60_000)
        status = page.inner_text("#survey-status")
        assert "your observation is waiting for a moderator" in status and "del_" in status

        moderator = create_token(
            tokens_path(next(twin_dir.glob("*.duckdb"))), role=Role.MODERATOR, name="survey desk"
        )
        page.goto(f"{server}/viewer/#moderation?c=demo-cmp")
        page.wait_for_selector(
            "#page-moderation[data-moderation-state=login]", state="attached", timeout=60_000
        )
        page.fill("#moderation-token", moderator.token)
        page.click(".moderation-login button[type=submit]")
        page.select_option("#moderation-kind", "observation")
        item = page.locator("#moderation-queue li[data-kind=observation]")
        item.wait_for(timeout=30_000)
        assert "observation: pothole" in item.locator("strong").inner_text()
        assert item.locator(".moderation-text").inner_text() == "Deep hole <img src=x onerror=alert(1)>"
        assert item.locator(".moderation-text img").count() == 0  # text, not HTML
        _poll(
            page, "document.querySelector('img.moderation-photo')?.naturalWidth === 320"
        )  # the pending photo, fetched with the moderator's token
        item.locator("input[type=text]").fill("seen on site")
        item.locator("button[data-decision=approve]").click()
        page.wait_for_selector(".moderation-result[data-decided=approved]", state="attached", timeout=30_000)
        assert item.locator(".moderation-result").inner_text() == "Approved: seen on site"

        base = f"{server}/consultations/demo-cmp"
        (feature,) = httpx.get(f"{base}/observations").json()["features"]
        assert feature["geometry"]["coordinates"] == [24.9384, 60.1699]
        assert feature["properties"]["text"] == "Deep hole <img src=x onerror=alert(1)>"
        served = httpx.get(feature["properties"]["photo"])
        assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
        with Image.open(io.BytesIO(served.content)) as image:
            assert image.size == (320, 240)
            assert dict(image.getexif()) == {} and image.getexif().get_ifd(ExifTags.IFD.GPSInfo) == {}
        assert metadata_left(served.content) == []
        assert b"PhoneMaker" not in served.content and b"Model X200" not in served.content

        _moderation_refused_once_closed(page, server, twin_dir, photo)

        page.goto(base)
        page.wait_for_selector(".survey-list li", timeout=60_000)
        assert page.locator(".survey-list li strong").inner_text().startswith("pothole · ")
        page.locator("img.survey-photo").scroll_into_view_if_needed()  # loaded lazily, once in view
        _poll(page, "document.querySelector('img.survey-photo')?.naturalWidth === 320")
        _poll(page, "window.civictwin.map.getLayer('observations') !== undefined")
    finally:
        context.close()


def _moderation_refused_once_closed(page: Any, server: str, twin_dir: Path, photo: Path) -> None:
    """A pending observation (sent through the API as the form sends it), then the consultation closed
    by editing twin.toml (the server reads it again): the moderation page shows the server's refusal."""
    import httpx

    from civictwin.compare.participation import solve

    base = f"{server}/consultations/demo-cmp"
    issued = httpx.get(f"{base}/challenge").json()
    fields = {"consent": "true", "category": "lighting", "text": "Dark corner", "lon": "24.94", "lat": "60.17",
              "challenge": issued["challenge"], "nonce": solve(issued["challenge"], issued["bits"])}  # fmt: skip
    sent = httpx.post(f"{base}/observations", data=fields, files={"photo": ("p.jpg", photo.read_bytes(), "image/jpeg")},
                      headers={"X-Civictwin-Form": "survey"})  # fmt: skip
    assert sent.status_code == 202, sent.text
    config = twin_dir / "twin.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace("closes = 2100-01-01", "closes = 2026-01-02\nmoderation_days = 0"), encoding="utf-8"
    )
    try:
        page.reload()  # the moderation page still, logged in: the token is kept in the tab
        page.wait_for_selector(
            "#page-moderation[data-moderation-state=ready]", state="attached", timeout=60_000
        )
        assert (
            page.inner_text("#moderation-phase")
            == "Closed for contributions; moderation possible until 2 January 2026."
        )
        item = page.locator(f"#moderation-queue li[data-id='{sent.json()['id']}']")
        item.locator("input[type=text]").fill("too late?")
        item.locator("button[data-decision=approve]").click()
        page.wait_for_selector(".moderation-result[data-refused='409']", state="attached", timeout=30_000)
        assert item.locator(".moderation-result").inner_text() == (
            "consultation 'demo-cmp' closed; moderation ended at 2026-01-02T00:00:00+00:00"
        )
    finally:
        config.write_text(text, encoding="utf-8")
