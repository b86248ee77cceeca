"""The scenario and comparison endpoints, over a small hand-written comparison directory.

The fixture mirrors what ``civictwin compare`` writes (comparison.json, manifest.json, GeoParquet edge
differences in WGS84, report.html, the ``complete`` marker), so the tests pin the contract between the
traffic engineers' output and what the API and the viewer read.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from shapely.geometry import LineString

from civictwin.api.scenarios import scenarios_router


def _kpi(
    kpi: str, unit: str, scenario: str, mean: float, low: float | None, high: float | None, n: int
) -> dict[str, object]:
    return {
        "kpi": kpi,
        "unit": unit,
        "scenario": scenario,
        "mean": mean,
        "ci_low": low,
        "ci_high": high,
        "n": n,
    }


def _diff(
    kpi: str, plan: str, mean: float, low: float, high: float, distinguishable: bool, words: str
) -> dict[str, object]:
    return {
        "kpi": kpi,
        "plan": plan,
        "mean": mean,
        "ci_low": low,
        "ci_high": high,
        "distinguishable": distinguishable,
        "words": words,
    }


COMPARISON = {
    "id": "cmp-2026-11-21",
    "created": "2026-11-21T10:00:00Z",
    "baseline": "baseline",
    "plans": ["close_main", "zone30"],
    "kpis": [
        _kpi("mean_travel_time", "s", "baseline", 348.0, 320.7, 375.3, 5),
        _kpi("mean_travel_time", "s", "close_main", 543.0, 405.2, 680.8, 5),
        _kpi("mean_travel_time", "s", "zone30", 352.5, 330.1, 374.9, 5),
        _kpi("co2", "kg", "baseline", 1731.0, 1700.0, 1762.0, 5),
        _kpi("co2", "kg", "close_main", 2719.0, 2600.0, 2838.0, 5),
        _kpi("co2", "kg", "zone30", float("nan"), None, None, 0),
    ],
    "differences": [
        _diff(
            "mean_travel_time",
            "close_main",
            195.0,
            52.1,
            337.9,
            True,
            "Trips take 195 s longer on average (95% CI 52 to 338 s).",
        ),
        _diff(
            "mean_travel_time",
            "zone30",
            4.5,
            -30.2,
            39.2,
            False,
            "The change in travel time is within noise.",
        ),
    ],
    "summary": [
        "Closing the main street makes car trips 195 s longer on average.",
        "The 30 km/h zone's effect on travel time is within noise.",
    ],
}

MANIFEST = {"seeds": [1, 2, 3, 4, 5], "software": {"sumo": "1.28.0"}, "twin": {"sha256": "ab12"}}


def _write_comparison(runs: Path, data: dict[str, object], *, complete: bool = True) -> Path:
    folder = runs / str(data["id"])
    folder.mkdir(parents=True)
    (folder / "comparison.json").write_text(json.dumps(data))
    (folder / "manifest.json").write_text(json.dumps(MANIFEST))
    (folder / "report.html").write_text("<!doctype html><title>Report</title><h1>cmp</h1>")
    edges = gpd.GeoDataFrame(
        {
            "edge_id": ["101_0", "-101_0", "202_1"],
            "flow_diff": [-120.0, -80.0, 45.0],
            "speed_diff": [0.0, 0.0, -3.5],
            "co2_diff": [-2.5, -1.5, 1.25],
            "noise_diff": [-3.0, None, 0.5],
        },
        geometry=[
            LineString([(24.9380, 60.1690), (24.9390, 60.1695)]),
            LineString([(24.9390, 60.1695), (24.9380, 60.1690)]),
            LineString([(24.9400, 60.1700), (24.9410, 60.1710)]),
        ],
        crs="EPSG:4326",
    )
    edges.to_parquet(folder / "edge_diff_close_main.parquet")
    if complete:
        (folder / "complete").touch()
    return folder


@pytest.fixture
def twin_dir(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    _write_comparison(runs, COMPARISON)
    older = {**COMPARISON, "id": "cmp-old", "created": "2026-11-01T08:00:00Z", "plans": ["zone30"]}
    _write_comparison(runs, older)
    _write_comparison(runs, {**COMPARISON, "id": "cmp-running"}, complete=False)
    broken = runs / "cmp-broken"
    broken.mkdir()
    (broken / "comparison.json").write_text('{"id": "cmp-broken"')
    (broken / "complete").touch()
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "baseline.toml").write_text('name = "baseline"\ndescription = "Today\'s traffic."\n')
    (scenarios / "close_main.toml").write_text(
        'name = "close_main"\ndescription = "Close Mannerheimintie to cars."\nbaseline = "baseline"\n'
        '[[interventions]]\ntype = "close"\nstreets = { name = "Mannerheimintie" }\nmodes = ["car"]\n'
    )
    (scenarios / "zone30.toml").write_text(
        '[scenario]\nname = "zone30"\ndescription = "30 km/h in the centre."\nbaseline = "baseline"\n'
    )
    (scenarios / "typo.toml").write_text('name = "typo\n')
    (tmp_path / "secret.json").write_text('{"secret": true}')
    return tmp_path


@pytest.fixture
def client(twin_dir: Path) -> TestClient:
    app = FastAPI()
    app.include_router(scenarios_router(twin_dir))
    return TestClient(app)


def _assert_problem(response: object, status: int, detail_part: str) -> None:
    assert response.status_code == status  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["status"] == status
    assert detail_part in body["detail"]
    assert "Traceback" not in json.dumps(body)


def test_comparisons_lists_only_complete_readable_runs_newest_first(client: TestClient) -> None:
    body = client.get("/comparisons").json()
    assert [c["id"] for c in body["comparisons"]] == ["cmp-2026-11-21", "cmp-old"]
    first = body["comparisons"][0]
    assert first["baseline"] == "baseline"
    assert first["plans"] == ["close_main", "zone30"]
    assert first["links"] == {
        "self": "/comparisons/cmp-2026-11-21",
        "manifest": "/comparisons/cmp-2026-11-21/manifest",
        "kpis": "/comparisons/cmp-2026-11-21/kpis",
        "report": "/comparisons/cmp-2026-11-21/report",
        "edges": {
            "close_main": "/comparisons/cmp-2026-11-21/edges/close_main",
            "zone30": "/comparisons/cmp-2026-11-21/edges/zone30",
        },
    }


def test_links_carry_the_mount_prefix(twin_dir: Path) -> None:
    app = FastAPI()
    app.include_router(scenarios_router(twin_dir, prefix="/api"), prefix="/api")
    body = TestClient(app).get("/api/comparisons").json()
    assert body["comparisons"][1]["links"]["kpis"] == "/api/comparisons/cmp-old/kpis"


def test_comparison_returns_the_json_with_nan_as_null(client: TestClient) -> None:
    body = client.get("/comparisons/cmp-2026-11-21").json()
    assert body["summary"] == COMPARISON["summary"]
    assert body["kpis"][1] == _kpi("mean_travel_time", "s", "close_main", 543.0, 405.2, 680.8, 5)
    assert body["kpis"][5]["mean"] is None
    assert body["differences"][1]["distinguishable"] is False
    assert body["differences"][1]["words"] == "The change in travel time is within noise."


def test_kpis_table(client: TestClient) -> None:
    body = client.get("/comparisons/cmp-2026-11-21/kpis").json()
    assert set(body) == {"id", "baseline", "plans", "kpis", "differences"}
    baseline_tt = [k for k in body["kpis"] if k["scenario"] == "baseline" and k["kpi"] == "mean_travel_time"]
    assert baseline_tt == [_kpi("mean_travel_time", "s", "baseline", 348.0, 320.7, 375.3, 5)]
    assert [d["mean"] for d in body["differences"]] == [195.0, 4.5]


def test_manifest_and_report(client: TestClient) -> None:
    assert client.get("/comparisons/cmp-old/manifest").json() == MANIFEST
    report = client.get("/comparisons/cmp-old/report")
    assert report.status_code == 200
    assert report.headers["content-type"] == "text/html; charset=utf-8"
    assert report.text == "<!doctype html><title>Report</title><h1>cmp</h1>"


def test_edges_are_geojson_in_wgs84_with_edge_ids(client: TestClient) -> None:
    response = client.get("/comparisons/cmp-2026-11-21/edges/close_main")
    assert response.headers["content-type"] == "application/geo+json"
    body = response.json()
    assert body["type"] == "FeatureCollection"
    assert body["numberReturned"] == 3
    assert [f["id"] for f in body["features"]] == ["101_0", "-101_0", "202_1"]
    first, second = body["features"][0], body["features"][1]
    assert first["geometry"] == {"type": "LineString", "coordinates": [[24.938, 60.169], [24.939, 60.1695]]}
    assert first["properties"] == {
        "edge_id": "101_0",
        "flow_diff": -120.0,
        "speed_diff": 0.0,
        "co2_diff": -2.5,
        "noise_diff": -3.0,
    }
    assert second["properties"]["noise_diff"] is None


def test_edges_in_a_metric_crs_are_reprojected(twin_dir: Path, client: TestClient) -> None:
    path = twin_dir / "runs" / "cmp-2026-11-21" / "edge_diff_close_main.parquet"
    gpd.read_parquet(path).to_crs("EPSG:3067").to_parquet(path)
    coords = client.get("/comparisons/cmp-2026-11-21/edges/close_main").json()["features"][0]["geometry"]
    assert coords["coordinates"][0] == pytest.approx([24.938, 60.169], abs=1e-7)


def test_scenarios_list_files_and_their_comparisons(client: TestClient) -> None:
    scenarios = {s["id"]: s for s in client.get("/scenarios").json()["scenarios"]}
    assert sorted(scenarios) == ["baseline", "close_main", "typo", "zone30"]
    assert scenarios["baseline"]["comparisons"] == ["cmp-2026-11-21", "cmp-old"]
    assert scenarios["close_main"]["comparisons"] == ["cmp-2026-11-21"]
    assert scenarios["close_main"]["interventions"] == [
        {"type": "close", "streets": {"name": "Mannerheimintie"}, "modes": ["car"]}
    ]
    assert scenarios["close_main"]["baseline"] == "baseline"
    assert scenarios["zone30"]["description"] == "30 km/h in the centre."
    assert scenarios["zone30"]["comparisons"] == ["cmp-2026-11-21", "cmp-old"]
    assert scenarios["zone30"]["file"] == "scenarios/zone30.toml"
    assert scenarios["typo"]["error"].startswith("typo.toml: ")
    assert scenarios["baseline"]["error"] is None


def test_no_scenarios_or_runs_gives_empty_lists(tmp_path: Path) -> None:
    app = FastAPI()
    app.include_router(scenarios_router(tmp_path))
    client = TestClient(app)
    assert client.get("/scenarios").json() == {"scenarios": []}
    assert client.get("/comparisons").json() == {"comparisons": []}


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("/comparisons/nope", "no comparison 'nope'"),
        ("/comparisons/cmp-running", "not complete"),
        ("/comparisons/cmp-running/kpis", "not complete"),
        ("/comparisons/cmp-broken", "no readable comparison.json"),
        ("/comparisons/nope/manifest", "no comparison"),
        ("/comparisons/nope/report", "no comparison"),
        ("/comparisons/cmp-2026-11-21/edges/other", "no plan 'other'"),
        ("/comparisons/cmp-2026-11-21/edges/zone30", "no edge_diff_zone30.parquet"),
        ("/comparisons/nope/edges/close_main", "no comparison"),
        ("/comparisons/%2E%2E", "not a valid comparison id"),
        ("/comparisons/%2e%2e/kpis", "not a valid comparison id"),
        ("/comparisons/%2E%2E/manifest", "not a valid comparison id"),
        ("/comparisons/.hidden", "not a valid comparison id"),
        ("/comparisons/cmp..x", "not a valid comparison id"),
        ("/comparisons/cmp-old/edges/%2E%2E", "no plan '..'"),
    ],
)
def test_unknown_or_invalid_ids_are_404_problems(client: TestClient, url: str, detail: str) -> None:
    _assert_problem(client.get(url), 404, detail)


@pytest.mark.parametrize(
    "url",
    [
        "/comparisons/..%2Fsecret.json",
        "/comparisons/..%2F..%2Fsecret.json/manifest",
        "/comparisons/../secret.json",
        "/comparisons/%2E%2E/report",
        "/comparisons/cmp-old/edges/..%2F..%2F..%2Fsecret",
    ],
)
def test_traversal_never_reaches_files_outside_runs(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404
    assert "true" not in response.text
