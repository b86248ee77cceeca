"""Vector tiles: decoded back with mapbox-vector-tile, feature counts and attributes checked by hand."""

from __future__ import annotations

import mapbox_vector_tile
import pytest
from apitwin import auth
from fastapi.testclient import TestClient

from civictwin.api.tiles import TileCache
from civictwin.store.tiles import tile_bounds_3857

MVT = "application/vnd.mapbox-vector-tile"


def _decode(client: TestClient, url: str, headers: dict[str, str] | None = None) -> dict[str, object]:
    response = client.get(url, headers=headers or {})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == MVT
    decoded: dict[str, object] = mapbox_vector_tile.decode(response.content)
    return decoded


def test_tile_holds_every_building_with_attributes(client: TestClient) -> None:
    """z14 tile 9326/4742 covers lon 24.917–24.939: all 5 buildings, with their attributes and ids."""
    layer = _decode(client, "/tiles/buildings/14/9326/4742.mvt")["buildings"]
    assert isinstance(layer, dict)
    features = sorted(layer["features"], key=lambda f: f["id"])
    assert [f["id"] for f in features] == [0, 1, 2, 3, 4]
    assert features[2]["properties"]["name"] == "Kauppa"
    assert features[2]["properties"]["height_m"] == 21.5
    assert features[0]["geometry"]["type"] == "Polygon"
    assert layer["extent"] == 4096


def test_deeper_tile_holds_fewer_features(client: TestClient) -> None:
    """At z17 (tiles ~150 m wide here) tile 74611/37940 holds only building 0 (x 385000–385020 m)."""
    layer = _decode(client, "/tiles/buildings/17/74611/37940.mvt")["buildings"]
    assert isinstance(layer, dict)
    assert [f["id"] for f in layer["features"]] == [0]


def test_roads_tile_for_a_token_holder(client: TestClient, tokens: dict[str, str]) -> None:
    """The internal roads layer: 4 lines, highway attribute kept."""
    layer = _decode(client, "/tiles/roads/14/9326/4742.mvt", auth(tokens, "viewer"))["roads"]
    assert isinstance(layer, dict)
    assert sorted(f["properties"]["highway"] for f in layer["features"]) == [
        "primary",
        "primary",
        "residential",
        "secondary",
    ]
    assert all(f["geometry"]["type"] == "LineString" for f in layer["features"])


def test_empty_tile_is_204(client: TestClient) -> None:
    """A tile far from the twin has no features: 204 without a body."""
    response = client.get("/tiles/buildings/14/0/0.mvt")
    assert response.status_code == 204 and response.content == b""
    assert client.get("/tiles/buildings/0/0/0.mvt").status_code in (200, 204)


@pytest.mark.parametrize(
    "path",
    [
        "25/0/0",
        "14/16384/0",
        "14/0/16384",
        "-1/0/0",
        "3/-1/0",
        "3/0/8",
        "a/0/0",
        "3/0/1.5",
        "99999999999999999999/0/0",
    ],
)
def test_out_of_range_tile_is_400(client: TestClient, path: str) -> None:
    """Tiles outside the pyramid (or not integers) are a 400 problem."""
    response = client.get(f"/tiles/buildings/{path}.mvt")
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_unknown_layer_and_geometryless_layer_are_404(client: TestClient) -> None:
    assert client.get("/tiles/nothing/1/0/0.mvt").status_code == 404
    assert client.get("/tiles/transit_routes/1/0/0.mvt").status_code == 404
    assert client.get("/tiles/buildings/14/9326/4742.mvt?x=1").status_code == 400


def test_tilejson(client: TestClient) -> None:
    """TileJSON 3.0.0 points at the tile template and lists the layer's fields."""
    body = client.get("/tiles/buildings.json").json()
    assert body["tilejson"] == "3.0.0"
    assert body["tiles"] == ["http://testserver/tiles/buildings/{z}/{x}/{y}.mvt"]
    assert body["vector_layers"][0]["id"] == "buildings"
    assert body["vector_layers"][0]["fields"] == {
        "osm_id": "Number",
        "use": "String",
        "name": "String",
        "height_m": "Number",
        "surveyed": "String",
    }
    assert body["bounds"][0] == pytest.approx(24.92746, abs=1e-4)
    assert body["attribution"] == "City of Helsinki (CC-BY-4.0)"


def test_tiles_are_cached(client: TestClient) -> None:
    """A second request for the same tile is served from the cache, byte for byte."""
    registry = client.app.state.metrics.registry  # type: ignore[attr-defined]
    first = client.get("/tiles/buildings/15/18652/9484.mvt")
    before = registry.get_sample_value("civictwin_tile_cache_hits_total")
    second = client.get("/tiles/buildings/15/18652/9484.mvt")
    assert registry.get_sample_value("civictwin_tile_cache_hits_total") == before + 1
    assert first.content == second.content


def test_tile_cache_drops_least_recently_used() -> None:
    cache = TileCache(max_bytes=10)
    cache.put(("a", 0, 0, 0, "v"), b"12345")
    cache.put(("b", 0, 0, 0, "v"), b"12345")
    assert cache.get(("a", 0, 0, 0, "v")) == b"12345"  # a is now the most recent
    cache.put(("c", 0, 0, 0, "v"), b"123")
    assert cache.get(("b", 0, 0, 0, "v")) is None
    assert cache.get(("a", 0, 0, 0, "v")) == b"12345" and cache.get(("c", 0, 0, 0, "v")) == b"123"


def test_tile_bounds() -> None:
    """Tile 0/0/0 is the whole Web Mercator square; 1/1/0 its north-east quarter."""
    half = 20037508.342789244
    assert tile_bounds_3857(0, 0, 0) == pytest.approx((-half, -half, half, half))
    assert tile_bounds_3857(1, 1, 0) == pytest.approx((0, 0, half, half))
