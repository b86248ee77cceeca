"""The calibration endpoints of the real app over the API test twin, with a street network and a
hand-made calibration record: the verdict, the fit, and the sites as GeoJSON points at their edges'
midpoints with their GEH, for callers who may read the traffic layers only."""

from __future__ import annotations

import json
from collections.abc import Iterator

import geopandas as gpd
import pytest
from apitwin import CRS, X0, Y0, build_twin
from fastapi.testclient import TestClient
from pyproj import Transformer
from shapely.geometry import LineString

from civictwin.api.app import create_app
from civictwin.api.settings import ServerSettings
from civictwin.governance.tokens import Role, create_token, tokens_path
from civictwin.store.duckdb import DuckDBStore

SITES = [
    {"site": "A", "edge_id": "a", "street": "Mannerheimintie", "status": "used", "reasons": ""},
    {"site": "B", "edge_id": "b", "street": "Kaivokatu", "status": "used", "reasons": ""},
    {"site": "X", "edge_id": None, "street": "Nowhere", "status": "excluded", "reasons": "no edge"},
]
RECORD = {
    "id": "calibration-001",
    "version": 1,
    "created": "2026-11-30T10:00:00+00:00",
    "method": "GLS",
    "statement": "After calibration GEH < 5 holds at 50% of 2 count site-hours (0% before).",
    "inputs": {"sites": SITES, "used_sites": ["A", "B"], "site_hours": 2},
    "fit_before": {"site_hours": 2, "share_geh_ok": 0.0, "meets_dmrb": False},
    "fit_after": {"site_hours": 2, "share_geh_ok": 0.5, "meets_dmrb": False},
    "converged": True,
    "kfold": {"folds": [], "note": "2 site(s): too few to hold any back"},
    "mode_choice": {
        "inputs": {"source": "Survey 2024"},
        "statement": "The mode choice's constants reproduce the observed modal split within 1 percentage point(s) per mode.",
        "converged": True,
        "fit": [{"mode": "car", "observed": 0.4, "modelled": 0.401, "final": 0.399}],
        "runs": [],
    },
    # GEH after: A 400 vs 400 → 0; B 100 vs 200 → √(2·100²/300) = 8.165; before: A 100 vs 400 → 18.97
    "scatter": [
        {"site": "A", "edge_id": "a", "hour": 0, "observed": 400.0, "before": 100.0, "after": 400.0},
        {"site": "B", "edge_id": "b", "hour": 0, "observed": 100.0, "before": 100.0, "after": 200.0},
    ],
}


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    twin = tmp_path_factory.mktemp("calibration-twin")
    path = build_twin(twin)
    edges = gpd.GeoDataFrame(
        {"edge_id": ["a", "b"]},
        geometry=[LineString([(X0, Y0), (X0 + 200, Y0)]), LineString([(X0, Y0), (X0, Y0 + 100)])],
        crs=CRS,
    )
    store = DuckDBStore.open(path, read_only=False)
    try:
        store.write_table("network_edges", edges)
        store.put_record("catalog", "network_edges", {"title": "Streets", "access": "internal"})
    finally:
        store.close()
    (twin / "calibration").mkdir()
    (twin / "calibration" / "calibration-001.json").write_text(json.dumps(RECORD), encoding="utf-8")
    tokens = tokens_path(path)
    headers = {
        "anonymous": {},
        "viewer": {"Authorization": f"Bearer {create_token(tokens, role=Role.VIEWER).token}"},
        "admin": {"Authorization": f"Bearer {create_token(tokens, role=Role.ADMIN).token}"},
    }
    app = create_app(twin, settings=ServerSettings(rate_per_second=10_000, rate_burst=100_000))
    with TestClient(app) as test_client:
        yield test_client, headers


def test_the_record_and_its_sites_as_geojson_points_with_their_geh(
    client: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    app, headers = client
    listing = app.get("/calibration", headers=headers["admin"]).json()["calibrations"]
    assert [(c["id"], c["version"], c["meets_dmrb"]) for c in listing] == [("calibration-001", 1, False)]
    body = app.get("/calibration/1", headers=headers["admin"]).json()
    assert body["statement"].startswith("After calibration GEH < 5 holds at 50%")
    assert body["held_back_note"] == "2 site(s): too few to hold any back"
    assert body["modal_split"] == {
        "source": "Survey 2024",
        "statement": "The mode choice's constants reproduce the observed modal split within 1 percentage point(s) per mode.",
        "converged": True,
        "fit": [{"mode": "car", "observed": 0.4, "modelled": 0.401, "final": 0.399}],
    }
    a, b, x = body["sites"]["features"]
    to_wgs84 = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    for feature, midpoint in ((a, (X0 + 100, Y0)), (b, (X0, Y0 + 50))):
        assert feature["geometry"]["type"] == "Point"
        assert feature["geometry"]["coordinates"] == pytest.approx(to_wgs84.transform(*midpoint), abs=1e-6)
    assert (a["id"], a["properties"]["geh"], a["properties"]["geh_before"], a["properties"]["geh_ok"]) == (
        "A", 0.0, 18.974, True,
    )  # fmt: skip
    assert (b["properties"]["geh"], b["properties"]["geh_ok"], b["properties"]["simulated"]) == (
        8.165,
        False,
        200.0,
    )
    assert (
        x["geometry"] is None and x["properties"]["geh"] is None and x["properties"]["reasons"] == "no edge"
    )
    sites = app.get("/calibration/1/sites", headers=headers["admin"])
    assert sites.headers["content-type"] == "application/geo+json"
    assert sites.json() == body["sites"]


def test_callers_who_may_not_read_the_traffic_layers_see_no_record(
    client: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    app, headers = client
    for role in ("anonymous", "viewer"):  # zones are restricted, network_edges internal
        assert app.get("/calibration", headers=headers[role]).json() == {"calibrations": []}
        assert app.get("/calibration/1", headers=headers[role]).status_code == 404
    assert app.get("/calibration/2", headers=headers["admin"]).status_code == 404
