"""A citizen proposal in a real headless Chromium, end to end (docs/consultation.md#citizen-proposals):
composed on the consultation page's map (a street clicked, a 30 km/h limit set), checked as it is
composed, submitted, approved by staff in the page, run by the server's queue through the real
``civictwin compare`` on the Helsinki demo twin (2 seeds, one simulation iteration, a quarter of the
demand), and shown beside the official scenarios with its own interval.

The server and browser are started as in ``test_viewer.py`` (its hand-written comparison ``demo-cmp``
is the consultation); this twin's ``[[consultations]]`` block takes proposals.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from served import chromium, serving
from test_viewer import _poll, _write_comparison

pytestmark = pytest.mark.e2e

if (
    shutil.which("sumo") is None
    and not Path(__file__).resolve().parents[2].joinpath(".venv/bin/sumo").is_file()
):
    pytest.skip("SUMO is not installed (pip install eclipse-sumo)", allow_module_level=True)

PROPOSALS_TOML = """
[[consultations]]
comparison = "demo-cmp"
opens = 2026-01-01
closes = 2100-01-01
proposals = true

[proposals]
max_seeds = 2
settings = {traffic = {iterations = 1, demand = {scale = 0.25}}}
"""
RUN_TIMEOUT_S = 540


@pytest.fixture(scope="module")
def twin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from civictwin.demo import build_demo

    folder = tmp_path_factory.mktemp("demo-proposals")
    build_demo(folder)
    _write_comparison(folder)
    with (folder / "twin.toml").open("a", encoding="utf-8") as config:
        config.write(PROPOSALS_TOML)
    return folder


@pytest.fixture(scope="module")
def server(twin_dir: Path) -> Iterator[str]:
    """The real app under uvicorn in a thread, its lifespan running the proposal queue."""
    from civictwin.api.app import create_app

    with serving(create_app(twin_dir), stop_within_s=60) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def tab(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context.new_page()
    context.close()


def _car_street(twin_dir: Path) -> tuple[int, float, float]:
    """A main street of the demo that carries cars: its OSM way and the middle of one of its edges
    (lon, lat), from the twin's store."""
    import shapely

    from civictwin.store.duckdb import DuckDBStore

    with DuckDBStore.open(next(twin_dir.glob("*.duckdb"))) as store:
        edges = store.read_table(
            "network_edges", columns=["osm_id", "highway", "car", "length_m", "geometry"]
        )
    main = edges[edges["car"] & edges["highway"].isin(["primary", "secondary"]) & (edges["length_m"] > 80)]
    edge = main.sort_values("length_m", ascending=False).iloc[0]
    middle = shapely.line_interpolate_point(edge.geometry, 0.5, normalized=True)
    lon, lat = gpd.GeoSeries([middle], crs=edges.crs).to_crs("EPSG:4326").iloc[0].coords[0]
    return int(edge["osm_id"]), float(lon), float(lat)


def _public(server: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{server}/consultations/demo-cmp/proposals", timeout=30) as answer:
        return json.loads(answer.read())


def test_the_panel_in_slovak_shows_the_servers_menu_and_problems_in_slovak(browser: Any, server: str) -> None:
    """A browser set to Slovak: the menu's labels, help and setting names and the problems the server
    sends are Slovak (docs/consultation.md#languages); the engine's name stays its key."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="sk-SK")
    try:
        page = context.new_page()
        page.goto(f"{server}/consultations/demo-cmp")
        page.wait_for_selector("#propose[data-propose-map=ready]", state="attached", timeout=60_000)
        labels = page.eval_on_selector_all("#propose-pick option", "els => els.map(e => e.textContent)")
        assert "rýchlostný limit (traffic)" in labels and "výsadba stromov pozdĺž ulíc (heat)" in labels
        page.select_option("#propose-pick", "speed_limit")
        page.click("#propose-add")
        page.wait_for_selector("#propose[data-propose-check=problems]", state="attached", timeout=30_000)
        items = page.inner_text("#propose-items")
        assert "Opatrenie 1, rýchlosť (km/h): chýba povinný kľúč" in items, items
        assert page.inner_text("label[for=propose-0-only_lower]") == "len znížiť rýchlosť"
        assert page.inner_text("#propose-items legend") == "rýchlostný limit (traffic)"
    finally:
        context.close()


def test_a_proposal_composed_on_the_map_is_approved_run_and_shown(
    tab: Any, server: str, twin_dir: Path
) -> None:
    from civictwin.governance.tokens import Role, create_token, tokens_path

    page = tab

    page.goto(f"{server}/consultations/demo-cmp")
    page.wait_for_selector("#propose[data-propose-map=ready]", state="attached", timeout=60_000)
    options = page.eval_on_selector_all("#propose-pick option", "els => els.map(e => e.value)")
    assert "speed_limit" in options and "plant_street_trees" in options  # the menu is the engines'
    page.fill("#propose-title", "A 30 limit on one street")
    page.select_option("#propose-pick", "speed_limit")
    page.click("#propose-add")
    page.wait_for_selector("#propose[data-propose-check=problems]", state="attached", timeout=30_000)
    assert "Intervention 1, speed (km/h): required key is missing" in page.inner_text("#propose-items")
    page.fill("#propose-0-speed_kmh", "30")
    page.dispatch_event("#propose-0-speed_kmh", "change")
    osm_id, lon, lat = _car_street(twin_dir)
    page.evaluate(f"window.civictwin.proposeMap.jumpTo({{ center: [{lon}, {lat}], zoom: 18 }})")
    _poll(page, "window.civictwin.proposeMap.loaded() && !window.civictwin.proposeMap.isMoving()")
    page.locator("#propose-map").scroll_into_view_if_needed()
    box = page.locator("#propose-map").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector(f"#propose-items li[data-osm-ids='{osm_id}']", state="attached", timeout=30_000)
    try:
        page.wait_for_selector("#propose[data-propose-check=valid]", state="attached", timeout=30_000)
    except Exception as exc:
        raise AssertionError(
            f"not valid after clicking OSM way {osm_id}: {page.inner_text('#propose-items')}"
        ) from exc
    assert "1 street chosen" in page.inner_text("#propose-items")
    assert page.inner_text("#propose-problems") == "Your proposal can be sent."
    page.click("#propose-send")
    assert page.inner_text("#propose-status") == "Please tick the consent box first."
    page.check("#propose-consent")
    page.click("#propose-send")
    page.wait_for_selector("#propose[data-propose-state=sent]", state="attached", timeout=30_000)
    pid = page.get_attribute("#propose", "data-proposal-id")
    status = page.inner_text("#propose-status")
    assert (
        pid is not None
        and "is waiting for staff review" in status
        and "deletion code" in status
        and "del_" in status
    )

    analyst = create_token(tokens_path(next(twin_dir.glob("*.duckdb"))), role=Role.ANALYST, name="desk")
    page.click("#propose-staff summary")
    page.fill("#propose-token", analyst.token)
    page.click("#propose-token-use")
    row = f"#propose-staff-list li[data-proposal='{pid}']"
    page.wait_for_selector(f"{row}[data-state=submitted]", timeout=30_000)
    page.fill(f"#propose-reason-{pid}", "a fair question")
    page.click(f"{row} button[data-action=approve]")
    page.wait_for_selector(f"{row}[data-state=queued], {row}[data-state=running]", timeout=30_000)

    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        (mine,) = [p for p in _public(server)["proposals"] if str(p["id"]) == pid]
        if mine["state"] in ("done", "failed", "cancelled") or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert mine["state"] == "done", (mine, (twin_dir / "proposals" / f"proposal-{pid}.log").read_text())
    assert mine["interventions"] == [f"speed limit: OSM ways {osm_id}; speed kmh 30.0"]

    page.reload()
    item = f"#propose-published li[data-proposal='{pid}'][data-state=done]"
    page.wait_for_selector(f"{item} table.propose-result", timeout=60_000)
    headers = page.eval_on_selector_all(f"{item} thead th", "els => els.map(e => e.textContent)")
    assert headers == [
        "Indicator",
        "baseline",
        "close_main",
        "zone30",
        "This proposal",
        "Change against the baseline",
    ]
    travel = page.locator(f"{item} tr[data-kpi=mean_travel_time_s] td").all_inner_texts()
    with urllib.request.urlopen(f"{server}/consultations/demo-cmp/data", timeout=30) as answer:
        official = {k["kpi"]: k for k in json.loads(answer.read())["kpis"]}["mean_travel_time_s"]
    assert travel[:3] == [v["text"] for v in official["values"]]  # the official scenarios, beside
    result = {k["kpi"]: k for k in mine["result"]["kpis"]}["mean_travel_time_s"]
    value = result["value"]
    assert value["n"] == 2 and value["ci_low"] <= value["mean"] <= value["ci_high"]
    assert travel[3] == value["text"] and "(" in value["text"]  # its own interval
    assert travel[4] == result["change"]["words"]


def test_cancelling_a_running_proposal_stops_its_civictwin_compare(server: str, twin_dir: Path) -> None:
    """A real run cancelled while it simulates: SIGINT reaches ``civictwin compare``, whose ensemble
    driver stops its seeds and removes their partial folders; no result is left looking complete."""
    import httpx

    from civictwin.governance.tokens import Role, create_token, tokens_path

    base = f"{server}/consultations/demo-cmp/proposals"
    streets = httpx.get(f"{base}/menu").json()
    assert streets["streets"] is not None
    draft = {"consent": True, "title": "Twenty on Mannerheimintie",
             "interventions": [{"type": "speed_limit", "streets": ["Mannerheimintie"], "speed_kmh": 20}]}  # fmt: skip
    sent = httpx.post(base, json=draft)
    assert sent.status_code == 202, sent.text
    pid = sent.json()["id"]
    staff = create_token(tokens_path(next(twin_dir.glob("*.duckdb"))), role=Role.MODERATOR, name="desk 2")
    headers = {"Authorization": f"Bearer {staff.token}"}
    assert (
        httpx.post(
            f"{base}/{pid}/decision", json={"decision": "approve", "reason": "ok"}, headers=headers
        ).status_code
        == 200
    )
    comparison = twin_dir / "runs" / f"proposal-{pid}-demo-cmp"
    deadline = time.monotonic() + 120
    while not (comparison / "seeds").is_dir():  # the seeds are being simulated
        assert time.monotonic() < deadline, "the run never reached its seeds"
        time.sleep(0.2)
    cancelled = httpx.post(f"{base}/{pid}/cancel", json={"reason": "test"}, headers=headers)
    assert cancelled.json()["state"] == "cancelling"
    deadline = time.monotonic() + 60
    while (state := _state_of(base, pid, headers)) != "cancelled":
        assert time.monotonic() < deadline, f"still {state} a minute after cancelling"
        time.sleep(0.5)
    assert not (comparison / "complete").exists()
    assert not list(comparison.glob("seeds/*/*/.seed_*.partial-*"))


def _state_of(base: str, pid: int, headers: dict[str, str]) -> str:
    import httpx

    listed = httpx.get(f"{base}/review", headers=headers).json()["proposals"]
    return str(next(p["state"] for p in listed if p["id"] == pid))


def test_an_area_drawn_on_the_map_is_checked_as_a_polygon(tab: Any, server: str, twin_dir: Path) -> None:
    """Trees in an area: three corners clicked and the area finished give a polygon the server accepts;
    before it is finished, the page says what is missing."""
    page = tab
    page.goto(f"{server}/consultations/demo-cmp")
    page.wait_for_selector("#propose[data-propose-map=ready]", state="attached", timeout=60_000)
    page.fill("#propose-title", "Trees on the square")
    page.select_option("#propose-pick", "plant_trees_in_area")
    page.click("#propose-add")
    page.fill("#propose-0-count", "20")
    page.dispatch_event("#propose-0-count", "change")
    page.locator("#propose-map").scroll_into_view_if_needed()
    box = page.locator("#propose-map").bounding_box()
    for fx, fy in ((0.4, 0.4), (0.6, 0.4), (0.5, 0.6)):
        page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
    page.wait_for_selector("#propose[data-propose-check=problems]", state="attached", timeout=30_000)
    assert "3 corners" in page.inner_text("#propose-items li[data-item='0']")
    assert "Intervention 1, polygon: required key is missing" in page.inner_text("#propose-items")
    page.click("#propose-items .propose-finish")
    page.wait_for_selector("#propose[data-propose-check=valid]", state="attached", timeout=30_000)
    assert "Area drawn" in page.inner_text("#propose-items li[data-item='0']")
