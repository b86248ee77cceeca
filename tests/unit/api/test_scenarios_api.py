"""The scenario and comparison endpoints of the real app, over hand-written comparison folders.

The twin is the API tests' small store (:mod:`apitwin`: ``zones`` restricted to its steward and
admins, no ``network_edges``) with comparisons written beside it exactly as ``civictwin compare``
writes them (comparison.json, manifest.json, GeoParquet table differences under ``tables/``,
report.html, the ``complete`` marker; the layout of :mod:`civictwin.runs`), so the tests pin the
contract between any engine's output and what the API and the viewer read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from apitwin import build_twin
from fastapi.testclient import TestClient
from shapely.geometry import LineString, box

from civictwin.api.app import create_app
from civictwin.api.settings import ServerSettings
from civictwin.governance.tokens import Role, create_token, tokens_path

BASE = "http://testserver"


def _kpi(
    kpi: str, unit: str, scenario: str, mean: float, low: float | None, high: float | None, n: int
) -> dict[str, object]:
    return {
        "engine": "traffic",
        "kpi": kpi,
        "unit": unit,
        "label": kpi.replace("_", " ").capitalize(),
        "better": "lower",
        "headline": True,
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


TABLES = [
    {
        "id": "traffic.edges",
        "engine": "traffic",
        "name": "edges",
        "label": "Street edges",
        "key": ["edge_id"],
        "layer": "network_edges",
        "values": [{"column": "flow", "unit": "vehicles"}],
    },
    {
        "id": "traffic.zones",
        "engine": "traffic",
        "name": "zones",
        "label": "Zones",
        "key": ["zone_id"],
        "layer": "zones",
        "values": [{"column": "vehicle_km", "unit": "km"}],
    },
]

COMPARISON = {
    "id": "cmp-2026-11-21",
    "created": "2026-11-21T10:00:00Z",
    "baseline": "baseline",
    "plans": ["close_main", "zone30"],
    "engines": [{"name": "traffic", "version": "0.1.0"}],
    "sources": ["network_edges", "zones"],
    "tables": TABLES,
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


def _write_comparison(
    runs: Path, data: dict[str, object], *, complete: bool = True, crs: str = "EPSG:4326"
) -> Path:
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
    (folder / "tables" / "traffic.edges").mkdir(parents=True)
    (folder / "tables" / "traffic.zones").mkdir(parents=True)
    edges.to_crs(crs).to_parquet(folder / "tables" / "traffic.edges" / "diff_close_main.parquet")
    zones = gpd.GeoDataFrame(
        {
            "zone_id": ["8911aa", "8911ab"],
            "vehicle_km_diff": [-20.5, 1.25],
            "vehicle_km_ci_low": [-22.0, float("nan")],
            "vehicle_km_ci_high": [-19.0, float("nan")],
            "vehicle_km_real": [True, False],
        },
        geometry=[box(24.937, 60.168, 24.939, 60.170), box(24.939, 60.168, 24.941, 60.170)],
        crs="EPSG:4326",
    )
    zones.to_crs(crs).to_parquet(folder / "tables" / "traffic.zones" / "diff_close_main.parquet")
    if complete:
        (folder / "complete").touch()
    return folder


@pytest.fixture(scope="module")
def cmp_twin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The API test twin with comparisons (complete, older, running, broken, metric CRS) and scenarios."""
    twin = tmp_path_factory.mktemp("cmp-twin")
    build_twin(twin)
    runs = twin / "runs"
    folder = _write_comparison(runs, COMPARISON)
    for code in ("sk", "it"):  # the report in each language; cmp-old has only the English one
        (folder / f"report.{code}.html").write_text(
            f'<!doctype html><html lang="{code}"><title>{code}</title>'
        )
    older = {**COMPARISON, "id": "cmp-old", "created": "2026-11-01T08:00:00Z", "plans": ["zone30"]}
    _write_comparison(runs, older)
    _write_comparison(runs, {**COMPARISON, "id": "cmp-running"}, complete=False)
    metric = {**COMPARISON, "id": "cmp-metric", "created": "2026-10-01T08:00:00Z", "plans": ["close_main"]}
    _write_comparison(runs, metric, crs="EPSG:3067")
    broken = runs / "cmp-broken"
    broken.mkdir()
    (broken / "comparison.json").write_text('{"id": "cmp-broken"')
    (broken / "complete").touch()
    scenarios = twin / "scenarios"
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
    (twin / "secret.json").write_text('{"secret": true}')
    return twin


@pytest.fixture(scope="module")
def role_headers(cmp_twin: Path) -> dict[str, dict[str, str]]:
    """Request headers per caller: ``zones`` is restricted, so only its steward and admins see comparisons."""
    path = tokens_path(cmp_twin / "test-twin.duckdb")
    issued = {
        "viewer": create_token(path, role=Role.VIEWER).token,
        "steward": create_token(path, role=Role.STEWARD, datasets=["zones"]).token,
        "admin": create_token(path, role=Role.ADMIN).token,
    }
    return {"anonymous": {}, **{role: {"Authorization": f"Bearer {t}"} for role, t in issued.items()}}


@pytest.fixture(scope="module")
def app_client(cmp_twin: Path) -> Iterator[TestClient]:
    app = create_app(cmp_twin, settings=ServerSettings(rate_per_second=10_000, rate_burst=100_000))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def client(app_client: TestClient, role_headers: dict[str, dict[str, str]]) -> TestClient:
    """The app's client, authenticated as an admin (who may read every comparison)."""
    app_client.headers.clear()
    app_client.headers.update(role_headers["admin"])
    return app_client


def _assert_problem(response: object, status: int, detail_part: str) -> None:
    assert response.status_code == status  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["status"] == status
    assert detail_part in body["detail"]
    assert "Traceback" not in json.dumps(body)


def test_comparisons_lists_only_complete_readable_runs_newest_first(client: TestClient) -> None:
    body = client.get("/comparisons").json()
    assert [c["id"] for c in body["comparisons"]] == ["cmp-2026-11-21", "cmp-old", "cmp-metric"]
    first = body["comparisons"][0]
    assert first["baseline"] == "baseline"
    assert first["plans"] == ["close_main", "zone30"]
    assert first["links"] == {
        "self": f"{BASE}/comparisons/cmp-2026-11-21",
        "manifest": f"{BASE}/comparisons/cmp-2026-11-21/manifest",
        "kpis": f"{BASE}/comparisons/cmp-2026-11-21/kpis",
        "report": f"{BASE}/comparisons/cmp-2026-11-21/report",
        "tables": {
            table: {
                "close_main": f"{BASE}/comparisons/cmp-2026-11-21/tables/{table}/close_main",
                "zone30": f"{BASE}/comparisons/cmp-2026-11-21/tables/{table}/zone30",
            }
            for table in ("traffic.edges", "traffic.zones")
        },
    }
    assert client.get(first["links"]["kpis"]).json()["id"] == "cmp-2026-11-21"
    assert client.get(first["links"]["tables"]["traffic.edges"]["close_main"]).json()["numberReturned"] == 3


def test_comparison_returns_the_json_with_nan_as_null(client: TestClient) -> None:
    body = client.get("/comparisons/cmp-2026-11-21").json()
    assert body["summary"] == COMPARISON["summary"]
    assert body["kpis"][1] == _kpi("mean_travel_time", "s", "close_main", 543.0, 405.2, 680.8, 5)
    assert body["kpis"][5]["mean"] is None
    assert body["differences"][1]["distinguishable"] is False
    assert body["differences"][1]["words"] == "The change in travel time is within noise."


def test_kpis_table(client: TestClient) -> None:
    body = client.get("/comparisons/cmp-2026-11-21/kpis").json()
    assert set(body) == {"id", "baseline", "plans", "kpis", "differences", "not_evaluated"}
    assert body["not_evaluated"] == []  # a comparison.json written before plans could fail: none
    baseline_tt = [k for k in body["kpis"] if k["scenario"] == "baseline" and k["kpi"] == "mean_travel_time"]
    assert baseline_tt == [_kpi("mean_travel_time", "s", "baseline", 348.0, 320.7, 375.3, 5)]
    assert [d["mean"] for d in body["differences"]] == [195.0, 4.5]


def test_manifest_and_report(client: TestClient) -> None:
    assert client.get("/comparisons/cmp-old/manifest").json() == MANIFEST
    report = client.get("/comparisons/cmp-old/report")
    assert report.status_code == 200
    assert report.headers["content-type"] == "text/html; charset=utf-8"
    assert report.text == "<!doctype html><title>Report</title><h1>cmp</h1>"


@pytest.mark.parametrize(
    ("query", "headers", "code"),
    [
        ("", {}, "en"),
        ("?lang=sk", {}, "sk"),
        ("?lang=it", {"Accept-Language": "sk"}, "it"),  # the switcher's choice before the browser's
        ("", {"Accept-Language": "de-DE, it;q=0.8, sk;q=0.5"}, "it"),
        ("", {"Accept-Language": "sk-SK"}, "sk"),
        ("", {"Cookie": "lang=it", "Accept-Language": "sk"}, "it"),
        ("?lang=de", {"Accept-Language": "fr"}, "en"),  # nothing offered: English
    ],
)
def test_the_report_comes_in_the_readers_language(
    client: TestClient, query: str, headers: dict[str, str], code: str
) -> None:
    report = client.get(f"/comparisons/cmp-2026-11-21/report{query}", headers=headers)
    assert report.status_code == 200, report.text
    assert report.headers["content-language"] == code
    assert report.headers["vary"] == "Accept-Language, Cookie"
    expected = {
        "en": "<!doctype html><title>Report</title><h1>cmp</h1>",
        "sk": '<!doctype html><html lang="sk"><title>sk</title>',
        "it": '<!doctype html><html lang="it"><title>it</title>',
    }
    assert report.text == expected[code]


def test_a_report_without_translations_is_served_in_english(client: TestClient) -> None:
    report = client.get("/comparisons/cmp-old/report?lang=sk")
    assert report.status_code == 200 and report.headers["content-language"] == "en"
    assert report.text == "<!doctype html><title>Report</title><h1>cmp</h1>"
    _assert_problem(
        client.get("/comparisons/cmp-old/report?format=pdf"), 400, "unknown query parameter 'format'"
    )


def test_comparison_declares_its_engines_tables_and_sources(client: TestClient) -> None:
    body = client.get("/comparisons/cmp-2026-11-21").json()
    assert body["engines"] == [{"name": "traffic", "version": "0.1.0"}]
    assert body["tables"] == TABLES and body["sources"] == ["network_edges", "zones"]


def test_edges_are_geojson_in_wgs84_with_edge_ids(client: TestClient) -> None:
    response = client.get("/comparisons/cmp-2026-11-21/tables/traffic.edges/close_main")
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


def test_zones_are_geojson_in_wgs84_with_zone_ids_and_intervals(client: TestClient) -> None:
    response = client.get("/comparisons/cmp-2026-11-21/tables/traffic.zones/close_main")
    assert response.headers["content-type"] == "application/geo+json"
    body = response.json()
    assert [f["id"] for f in body["features"]] == ["8911aa", "8911ab"] and body["numberReturned"] == 2
    assert body["features"][0]["properties"] == {
        "zone_id": "8911aa",
        "vehicle_km_diff": -20.5,
        "vehicle_km_ci_low": -22.0,
        "vehicle_km_ci_high": -19.0,
        "vehicle_km_real": True,
    }
    assert body["features"][1]["properties"]["vehicle_km_ci_low"] is None
    assert body["features"][0]["geometry"]["coordinates"][0][0] == pytest.approx([24.939, 60.168])
    metric = client.get("/comparisons/cmp-metric/tables/traffic.zones/close_main").json()["features"][0][
        "geometry"
    ]
    assert metric["coordinates"][0][0] == pytest.approx([24.939, 60.168], abs=1e-7)
    _assert_problem(
        client.get("/comparisons/cmp-2026-11-21/tables/traffic.zones/zone30"),
        404,
        "has no readable traffic.zones for 'zone30'",
    )


def test_edges_in_a_metric_crs_are_reprojected(client: TestClient) -> None:
    coords = client.get("/comparisons/cmp-metric/tables/traffic.edges/close_main").json()["features"][0][
        "geometry"
    ]
    assert coords["coordinates"][0] == pytest.approx([24.938, 60.169], abs=1e-7)


def test_scenarios_list_files_and_their_comparisons(client: TestClient) -> None:
    scenarios = {s["id"]: s for s in client.get("/scenarios").json()["scenarios"]}
    assert sorted(scenarios) == ["baseline", "close_main", "typo", "zone30"]
    assert scenarios["baseline"]["comparisons"] == ["cmp-2026-11-21", "cmp-old", "cmp-metric"]
    assert scenarios["close_main"]["comparisons"] == ["cmp-2026-11-21", "cmp-metric"]
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
    build_twin(tmp_path)
    app = create_app(tmp_path)
    admin = create_token(tokens_path(tmp_path / "test-twin.duckdb"), role=Role.ADMIN).token
    with TestClient(app, headers={"Authorization": f"Bearer {admin}"}) as empty:
        assert empty.get("/scenarios").json() == {"scenarios": []}
        assert empty.get("/comparisons").json() == {"comparisons": []}


@pytest.mark.parametrize(
    ("role", "visible"),
    [("anonymous", False), ("viewer", False), ("steward", True), ("admin", True)],
)
def test_comparisons_are_visible_only_to_those_who_may_read_their_inputs(
    app_client: TestClient, role_headers: dict[str, dict[str, str]], role: str, visible: bool
) -> None:
    """``zones`` is restricted in this twin: comparisons built on it are as invisible as the layer."""
    app_client.headers.clear()
    headers = role_headers[role]
    listed = [c["id"] for c in app_client.get("/comparisons", headers=headers).json()["comparisons"]]
    assert listed == (["cmp-2026-11-21", "cmp-old", "cmp-metric"] if visible else [])
    scenarios = app_client.get("/scenarios", headers=headers).json()["scenarios"]
    assert [s["id"] for s in scenarios] == ["baseline", "close_main", "typo", "zone30"]
    assert scenarios[0]["comparisons"] == listed
    for url in (
        "/comparisons/cmp-old",
        "/comparisons/cmp-old/kpis",
        "/comparisons/cmp-old/manifest",
        "/comparisons/cmp-old/report",
        "/comparisons/cmp-2026-11-21/tables/traffic.edges/close_main",
    ):
        response = app_client.get(url, headers=headers)
        if visible:
            assert response.status_code == 200, url
        else:
            _assert_problem(response, 404, "no comparison")
    hidden_running = app_client.get("/comparisons/cmp-running", headers=headers).json()["detail"]
    assert hidden_running == (
        "comparison 'cmp-running' is not complete" if visible else "no comparison 'cmp-running'"
    )


def test_unknown_query_parameters_are_400(client: TestClient) -> None:
    _assert_problem(client.get("/comparisons?limit=5"), 400, "unknown query parameter 'limit'")
    _assert_problem(client.get("/comparisons/cmp-old/kpis?f=csv"), 400, "unknown query parameter 'f'")


def test_overlong_ids_are_400(client: TestClient) -> None:
    _assert_problem(client.get("/comparisons/" + "a" * 129), 400, "comparison_id")


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("/comparisons/nope", "no comparison 'nope'"),
        ("/comparisons/cmp-running", "not complete"),
        ("/comparisons/cmp-running/kpis", "not complete"),
        ("/comparisons/cmp-broken", "no readable comparison.json"),
        ("/comparisons/nope/manifest", "no comparison"),
        ("/comparisons/nope/report", "no comparison"),
        ("/comparisons/cmp-2026-11-21/tables/traffic.edges/other", "no plan 'other'"),
        ("/comparisons/cmp-2026-11-21/tables/traffic.edges/zone30", "no readable traffic.edges for 'zone30'"),
        ("/comparisons/cmp-2026-11-21/tables/energy.buildings/close_main", "no table 'energy.buildings'"),
        ("/comparisons/nope/tables/traffic.edges/close_main", "no comparison"),
        ("/comparisons/%2E%2E", "not a valid comparison id"),
        ("/comparisons/%2e%2e/kpis", "not a valid comparison id"),
        ("/comparisons/%2E%2E/manifest", "not a valid comparison id"),
        ("/comparisons/.hidden", "not a valid comparison id"),
        ("/comparisons/cmp..x", "not a valid comparison id"),
        ("/comparisons/cmp-old/tables/traffic.edges/%2E%2E", "no plan '..'"),
        ("/comparisons/cmp-old/tables/%2E%2E/zone30", "no table '..'"),
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
        "/comparisons/cmp-old/tables/traffic.edges/..%2F..%2F..%2Fsecret",
        "/comparisons/cmp-old/tables/..%2F..%2Fsecret/zone30",
    ],
)
def test_traversal_never_reaches_files_outside_runs(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404
    assert "true" not in response.text


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_scenario_endpoints_fuzzed_from_the_openapi_document(
    app_client: TestClient, role_headers: dict[str, dict[str, str]], mode: str
) -> None:
    """Schemathesis requests (valid and invalid) to every scenario operation: never a 5xx, errors as problems."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    app_client.headers.clear()
    schema = schemathesis.openapi.from_asgi("/openapi.json", app_client.app)
    operations = [
        op
        for op in (result.ok() for result in schema.get_all_operations())
        if op.path.startswith(("/comparisons", "/scenarios"))
    ]
    assert len(operations) == 8  # with GET /comparisons/{id}/equity
    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=generation))
        @settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            for role in ("admin", "anonymous"):
                response = case.call(headers=role_headers[role])
                where = f"{case.method} {case.formatted_path} {case.query}"
                assert response.status_code < 500, f"{where}: {response.text}"
                if response.status_code >= 400:
                    assert response.headers["content-type"] == ["application/problem+json"], where

        try:
            check()
        except Unsatisfiable:
            assert generation is GenerationMode.NEGATIVE and not operation.path_parameters
