"""``GET /buildings/lod2.json`` and :mod:`civictwin.export.viewer3d`: the buildings in LoD2 for the viewer.

Two CityGML houses (city3d_fixtures: 10 × 8 m, eaves 6 m and ridge 9 m above the ground at z = 100,
20 m apart) on the DEM plane z = 100 + 0.05 (x - x0): base elevations 125 m and 126 m (the plane at
each west wall, x0 = X0 - 500). Every number below follows from those.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from city3d_fixtures import SHARED, X0, Y0, Ingest, build_dem_twin, house_cityjson, lonlat, write_json
from fastapi.testclient import TestClient

from civictwin.api.app import create_app
from civictwin.export.viewer3d import best_lod_buildings, finer_than_lod1


def _twin(folder: Path, **city: Any) -> Path:
    """Two LoD2 houses and a DEM, no OSM; ``city`` adds options to the city model source."""
    return build_dem_twin(folder, name="lod2", osm_heights={}, city_houses=2, **city)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    yield TestClient(create_app(_twin(tmp_path_factory.mktemp("lod2"))))


def test_the_houses_roofs_and_walls_come_with_heights_above_ground_and_their_base(client: TestClient) -> None:
    response = client.get("/buildings/lod2.json")
    assert response.status_code == 200 and response.headers["cache-control"] == "public, max-age=3600"
    body = response.json()
    assert set(body) == {"type", "heights", "buildings", "numberReturned", "limit", "bbox", "truncated"}
    assert body["bbox"] is None
    assert (body["type"], body["numberReturned"], body["limit"], body["truncated"]) == (
        "BuildingsLoD2",
        2,
        20_000,
        False,
    )
    assert [(b["id"], b["base_m"]) for b in body["buildings"]] == [("house0", 125.0), ("house1", 126.0)]
    for n, building in enumerate(body["buildings"]):
        assert set(building) == {"id", "base_m", "surfaces"}
        assert sorted(s["type"] for s in building["surfaces"]) == [
            "roof",
            "roof",
            "wall",
            "wall",
            "wall",
            "wall",
        ]
        assert all(
            set(s) == {"type", "rings"} for s in building["surfaces"]
        )  # no attributes, ground left out
        heights = sorted({v[2] for s in building["surfaces"] for ring in s["rings"] for v in ring})
        assert heights == [0.0, 6.0, 9.0]  # ground, eaves, ridge above the house's ground at z = 100
        roofs = [s for s in building["surfaces"] if s["type"] == "roof"]
        south_roof = min(roofs, key=lambda s: min(v[1] for v in s["rings"][0]))
        ring = south_roof["rings"][0]
        assert ring[0] == ring[-1] and len(ring) == 5  # closed: 4 corners
        expected = {(*(round(c, 7) for c in lonlat(X0 + 20 * n + x, Y0 + y)), z)
                    for x, y, z in [(0, 0, 6.0), (10, 0, 6.0), (10, 4, 9.0), (0, 4, 9.0)]}  # fmt: skip
        assert {tuple(v) for v in ring} == expected


def test_the_tile_listing_names_the_route_and_limit_cuts_the_list(client: TestClient) -> None:
    assert client.get("/tiles").json()["lod2"] == "http://testserver/buildings/lod2.json"
    body = client.get("/buildings/lod2.json?limit=1").json()
    assert ([b["id"] for b in body["buildings"]], body["truncated"], body["limit"]) == (["house0"], True, 1)
    assert client.get("/buildings/lod2.json?limit=0").status_code == 400
    assert client.get("/buildings/lod2.json?bbox=1,2,3").status_code == 400
    assert client.get("/buildings/lod2.json?box=1,2,3,4").status_code == 400  # unknown parameter


def _view(x_from: float, x_to: float) -> str:
    """A WGS84 bbox over the houses' row (y from Y0 - 1 to Y0 + 9), from ``X0 + x_from`` to ``X0 + x_to``."""
    west, south = lonlat(X0 + x_from, Y0 - 1)
    east, north = lonlat(X0 + x_to, Y0 + 9)
    return f"{west},{south},{east},{north}"


def test_a_map_view_brings_the_buildings_it_touches_whole(client: TestClient) -> None:
    whole = {b["id"]: b for b in client.get("/buildings/lod2.json").json()["buildings"]}
    # house0 spans X0 .. X0 + 10, house1 X0 + 20 .. X0 + 30: a view over house0's east half only
    body = client.get(f"/buildings/lod2.json?bbox={_view(5, 12)}").json()
    assert [b["id"] for b in body["buildings"]] == ["house0"] and body["truncated"] is False
    assert body["buildings"][0] == whole["house0"]  # all six surfaces, the west wall outside the view too
    assert body["bbox"] == pytest.approx([float(v) for v in _view(5, 12).split(",")])
    assert client.get(f"/buildings/lod2.json?bbox={_view(12, 18)}").json()["buildings"] == []  # the gap
    assert [
        b["id"] for b in client.get(f"/buildings/lod2.json?bbox={_view(25, 60)}").json()["buildings"]
    ] == ["house1"]
    both = client.get(f"/buildings/lod2.json?bbox={_view(-5, 60)}&limit=1").json()
    assert ([b["id"] for b in both["buildings"]], both["truncated"]) == (["house0"], True)
    far = client.get("/buildings/lod2.json?bbox=170,-10,-170,10").json()  # across the antimeridian
    assert (far["buildings"], far["truncated"]) == ([], False)


def test_a_personal_building_id_is_never_sent(tmp_path: Path) -> None:
    store = _twin(tmp_path, personal=["building_id"], legal_basis="Art. 6(1)(e)", retention_days=365)
    body = TestClient(create_app(store)).get("/buildings/lod2.json").json()
    assert [(b["id"], b["base_m"]) for b in body["buildings"]] == [(None, 125.0), (None, 126.0)]
    assert "house0" not in TestClient(create_app(store)).get("/buildings/lod2.json").text


def test_a_restricted_city_model_is_not_served_to_the_public(tmp_path: Path) -> None:
    client = TestClient(create_app(_twin(tmp_path, access="restricted")))
    response = client.get("/buildings/lod2.json")
    assert response.status_code == 404 and "building_surfaces" in response.json()["detail"]
    assert "lod2" not in client.get("/tiles").json()


def test_lods_finer_than_1_and_lod1_models_give_nothing_to_draw(ingest: Ingest, tmp_path: Path) -> None:
    assert [finer_than_lod1(v) for v in ("2", "2.2", "3", "1.2", "1", "0", None, "x")] == [True] * 3 + [
        False
    ] * 5
    store, _ = ingest("cityjson", write_json(tmp_path / "house.json", house_cityjson(version="2.0")))
    found = best_lod_buildings(store, limit=10, bases=None)
    assert [(b["id"], b["base_m"], len(b["surfaces"])) for b in found.buildings] == [("house0", None, 6)]
    delft = SHARED / "cityjson" / "delft.json"
    if not delft.is_file():
        pytest.skip(f"{delft} is absent (../shared/data)")
    store, _ = ingest("cityjson", delft, twin_crs="EPSG:28992")
    assert best_lod_buildings(store, limit=10, bases=None).buildings == []  # Delft's sample is all LoD1
