"""The consultation page and its JSON over the API tests' small twin, with hand-written comparisons.

``consult-public`` derives from the public ``buildings`` layer, ``consult-hidden`` from the
restricted ``zones``: the public sees the first and not the second. An ``addresses`` layer (public)
holds one address on the point the near-me tests ask about.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pytest
from apitwin import build_twin
from fastapi.testclient import TestClient
from shapely.geometry import LineString, Point

from civictwin.api.app import create_app
from civictwin.api.settings import ServerSettings
from civictwin.governance.tokens import Role, create_token, tokens_path
from civictwin.store.duckdb import DuckDBStore

LON0, LAT0 = 24.94, 60.17
DEG_LAT_M = 111_300.0


def _kpi(
    kpi: str, unit: str, scenario: str, mean: float, low: float, high: float, label: str
) -> dict[str, object]:
    return {"engine": "traffic", "kpi": kpi, "unit": unit, "label": label, "headline": kpi == "share_car",
            "scenario": scenario, "mean": mean, "ci_low": low, "ci_high": high, "n": 5}  # fmt: skip


COMPARISON = {
    "id": "consult-public",
    "created": "2026-11-30T09:00:00Z",
    "baseline": "baseline",
    "plans": ["zone30"],
    "question": "Should the centre become a 30 km/h zone?",
    "engines": [{"name": "traffic", "version": "0.1.0"}],
    "sources": ["buildings"],
    "tables": [{"id": "traffic.edges", "engine": "traffic", "name": "edges", "label": "Street edges",
                "key": ["edge_id"], "layer": "network_edges", "values": [{"column": "vehicles", "unit": "vehicles"}]}],
    "kpis": [
        _kpi("mean_travel_time_s", "s", "baseline", 348.0, 320.7, 375.3, "Mean car travel time"),
        _kpi("mean_travel_time_s", "s", "zone30", 352.5, 330.1, 374.9, "Mean car travel time"),
        _kpi("share_car", "share", "baseline", 0.186, 0.179, 0.193, "Car share of trips"),
        _kpi("share_car", "share", "zone30", 0.162, 0.155, 0.169, "Car share of trips"),
    ],
    "differences": [
        {"kpi": "mean_travel_time_s", "plan": "zone30", "mean": 4.5, "ci_low": -30.2, "ci_high": 39.2,
         "distinguishable": False, "words": "Mean car travel time: within run-to-run noise, no detectable change (95% CI -30 to 39 s)."},
        {"kpi": "share_car", "plan": "zone30", "mean": -0.024, "ci_low": -0.031, "ci_high": -0.017,
         "distinguishable": True, "words": "Car share of trips: down 13%, an improvement."},
    ],
    "summary": ["'zone30' compared with 'baseline': fewer trips by car."],
}  # fmt: skip
MANIFEST = {
    "scenarios": [
        {"name": "baseline", "interventions": []},
        {"name": "zone30", "interventions": [{"type": "speed_limit", "label": "30 km/h on every street of the centre"}]},
    ],
    "runs": [{"engine": "traffic", "details": {"calibration": {
        "id": "calibration-001", "statement": "After calibration GEH < 5 holds at 50% of 2 count site-hours.",
        "fit_after": {"meets_dmrb": False}, "held_back_note": "2 site(s): too few to hold any back",
    }}}],
}  # fmt: skip
CAR_WORDS = "Car share of trips: from 18.6% to 16.2% of trips, 2.4 points fewer (95% CI −3.1 to −1.7 points)."


def _edge(north_m: float) -> LineString:
    lat = LAT0 + north_m / DEG_LAT_M
    return LineString([(LON0 - 0.001, lat), (LON0 + 0.001, lat)])


def _write(runs: Path, data: dict[str, object]) -> None:
    folder = runs / str(data["id"])
    (folder / "tables" / "traffic.edges").mkdir(parents=True)
    (folder / "comparison.json").write_text(json.dumps(data))
    (folder / "manifest.json").write_text(json.dumps(MANIFEST))
    (folder / "report.html").write_text("<!doctype html><title>report</title>")
    gpd.GeoDataFrame(
        {
            "edge_id": ["e1", "e2", "e3"],
            "name": [None, "Mannerheimintie", "Kaivokatu"],
            "vehicles_base": [100.0, 200.0, 400.0],
            "vehicles_plan": [140.0, 120.0, 200.0],
            "vehicles_diff": [40.0, -80.0, -200.0],
            "vehicles_real": [True, True, True],
        },
        geometry=[_edge(0.0), _edge(110.0), _edge(450.0)],
        crs="EPSG:4326",
    ).to_parquet(folder / "tables" / "traffic.edges" / "diff_zone30.parquet")
    (folder / "complete").touch()


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("consult-twin")
    store_path = build_twin(folder)
    with DuckDBStore.open(store_path, read_only=False) as store:
        addresses = gpd.GeoDataFrame(
            {"osm_id": [1], "osm_type": ["node"], "street": ["Mannerheimintie"], "housenumber": ["5"]},
            geometry=[Point(LON0, LAT0)],
            crs="EPSG:4326",
        ).to_crs(store.crs)
        store.write_table("addresses", addresses)
        store.put_record(
            "catalog", "addresses", {"title": "Addresses", "access": "public", "licence": "ODbL-1.0"}
        )
    _write(folder / "runs", COMPARISON)
    _write(folder / "runs", {**COMPARISON, "id": "consult-hidden", "sources": ["zones"]})
    return folder


@pytest.fixture(scope="module")
def client(twin: Path) -> Iterator[TestClient]:
    with TestClient(
        create_app(twin, settings=ServerSettings(rate_per_second=10_000, rate_burst=100_000))
    ) as c:
        yield c


def test_the_content_is_the_comparisons_own_numbers_in_words(client: TestClient) -> None:
    body = client.get("/consultations/consult-public/data").json()
    assert body["question"] == "Should the centre become a 30 km/h zone?"
    car, time = body["kpis"]  # the headline KPI first
    assert [v["text"] for v in car["values"]] == ["18.6% (17.9% to 19.3%)", "16.2% (15.5% to 16.9%)"]
    assert car["changes"] == [
        {
            "plan": "zone30",
            "mean": -0.024,
            "ci_low": -0.031,
            "ci_high": -0.017,
            "within_noise": False,
            "words": CAR_WORDS,
        }
    ]
    assert [v["text"] for v in time["values"]] == ["348 s (321 to 375)", "352 s (330 to 375)"]
    assert time["changes"][0]["within_noise"] is True
    assert body["within_noise"] == [
        "'zone30' compared with 'baseline': within run-to-run noise, so no change can be claimed, for Mean car travel time."
    ]
    assert body["validation"]["meets_dmrb"] is False
    assert body["validation"]["statement"] == "After calibration GEH < 5 holds at 50% of 2 count site-hours."
    assert body["scenarios"][1]["interventions"] == ["30 km/h on every street of the centre"]
    assert (body["addresses"], body["map"]) == (True, "traffic.edges")


def test_the_map_carries_only_the_change_rounded_to_a_metre(client: TestClient) -> None:
    (page_map,) = client.get("/consultations/consult-public/data").json()["maps"]
    assert page_map["kind"] == "line"
    north = round(LAT0 + 450.0 / DEG_LAT_M, 5)  # e3, the northernmost edge
    assert page_map["bounds"] == pytest.approx([LON0 - 0.001, LAT0, LON0 + 0.001, north], abs=1e-9)
    response = client.get(page_map["map"].removeprefix("http://testserver"))
    assert response.headers["content-type"] == "application/geo+json"
    features = response.json()["features"]
    assert [f["properties"] for f in features] == [
        {"vehicles_diff": 40.0, "vehicles_real": True},
        {"vehicles_diff": -80.0, "vehicles_real": True},
        {"vehicles_diff": -200.0, "vehicles_real": True},
    ]
    assert features[2]["geometry"]["coordinates"] == [[24.939, north], [24.941, north]]  # 5 decimals


def test_the_page_says_it_in_html_with_headers_and_a_live_region(client: TestClient) -> None:
    response = client.get("/consultations/consult-public")
    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    html = response.text
    assert "<h1>Should the centre become a 30 km/h zone?</h1>" in html
    assert CAR_WORDS in html
    assert '<th scope="row">Car share of trips</th>' in html
    assert 'aria-live="polite"' in html
    assert "Does not meet</strong> the usual criterion" in html


def test_near_an_address_or_a_point_in_words(client: TestClient) -> None:
    by_address = client.get(
        "/consultations/consult-public/near", params={"address": "mannerheimintie 5"}
    ).json()
    assert by_address["place"] == {
        "lon": pytest.approx(LON0),
        "lat": pytest.approx(LAT0),
        "label": "Mannerheimintie 5",
    }
    (edges,) = by_address["tables"]
    assert (edges["nearby"], edges["changed"]) == (2, 2)  # e3 lies 450 m away
    assert edges["sentence"] == (
        "2 within 300 m, of which 2 change beyond run-to-run noise. Largest changes: "
        "Mannerheimintie: 200 → 120 vehicles (−80.0); e1: 100 → 140 vehicles (+40.0)."
    )
    wide = client.get("/consultations/consult-public/near", params={"lon": LON0, "lat": LAT0, "radius": 500})
    assert wide.json()["tables"][0]["items"][0]["name"] == "Kaivokatu"
    page = client.get("/consultations/consult-public", params={"address": "Mannerheimintie 5"}).text
    assert (
        "<strong>Near Mannerheimintie 5</strong>" in page
        and "Mannerheimintie: 200 → 120 vehicles (−80.0)" in page
    )


@pytest.mark.parametrize(
    ("params", "status", "detail"),
    [
        ({"address": "Mannerheimintie 99"}, 404, "no address 'Mannerheimintie 99' in this twin"),
        ({"address": "Mannerheimintie"}, 400, "give a street and a house number, e.g. 'Mannerheimintie 5'"),
        ({"lon": LON0}, 400, "give both lon and lat"),
        ({"lon": LON0, "lat": LAT0, "radius": 5000}, 400, None),
        ({"lon": LON0, "lat": LAT0, "plan": "nope"}, 404, "comparison 'consult-public' has no plan 'nope'"),
        ({"lon": LON0, "lat": LAT0, "bogus": "1"}, 400, None),
    ],
)
def test_bad_near_requests_are_told_why(
    client: TestClient, params: dict[str, object], status: int, detail: str | None
) -> None:
    response = client.get("/consultations/consult-public/near", params=params)
    assert response.status_code == status
    if detail is not None:
        assert response.json()["detail"] == detail


def test_the_public_never_sees_a_consultation_of_restricted_layers(client: TestClient, twin: Path) -> None:
    for path in ("", "/data", "/near?lon=24.94&lat=60.17"):
        assert client.get(f"/consultations/consult-hidden{path}").status_code == 404
    steward = create_token(
        tokens_path(twin / "test-twin.duckdb"), role=Role.STEWARD, datasets=["zones"]
    ).token
    response = client.get(
        "/consultations/consult-hidden/data", headers={"Authorization": f"Bearer {steward}"}
    )
    assert response.status_code == 200
