"""The project's conformance tests for OGC API – Features – Part 1: Core (OGC 17-069r4, Annex A), and
Part 2: Coordinate Reference Systems by Reference (OGC 18-058r1, Annex A) at the end.

Each test is named after the abstract test it implements (``/conf/core/<name>`` → ``test_<name>``),
plus GeoJSON (``/conf/geojson/*``) and HTML (``/conf/html/*``) ones. Run as the admin, who sees every
collection; visibility per role is tested in ``test_access_matrix.py``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from apitwin import LAYERS, auth
from fastapi.testclient import TestClient

CORE = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
# Buildings 0 and 1 lie in this WGS84 box (x 385000-385120 m ≈ lon 24.9275-24.9296); building 2 starts
# at x 385200 m ≈ lon 24.9311.
TWO_BUILDINGS = "24.927,60.168,24.930,60.170"


@pytest.fixture(scope="module")
def admin(tokens: dict[str, str]) -> dict[str, str]:
    return auth(tokens, "admin")


def _get(client: TestClient, url: str, headers: dict[str, str], status: int = 200) -> Any:
    response = client.get(url, headers=headers)
    assert response.status_code == status, response.text
    return response.json()


def _link(links: list[dict[str, Any]], rel: str, media: str | None = None) -> dict[str, Any]:
    found = [lk for lk in links if lk["rel"] == rel and (media is None or lk.get("type") == media)]
    assert found, f"no {rel} link"
    return found[0]


def test_http(client: TestClient) -> None:
    """/conf/core/http: the API speaks HTTP 1.1 (the test client and uvicorn do)."""
    assert client.get("/").http_version == "HTTP/1.1"


def test_root_op_and_root_success(client: TestClient, admin: dict[str, str]) -> None:
    """/conf/core/root-op, /conf/core/root-success: landing page with API, conformance, data links."""
    body = _get(client, "/", admin)
    links = body["links"]
    assert _link(links, "service-desc")["href"].endswith("/openapi.json")
    assert _link(links, "conformance")["href"].endswith("/conformance")
    assert _link(links, "data")["href"].endswith("/collections")
    assert _link(links, "self", "application/json")


def test_api_definition_op_and_success(client: TestClient) -> None:
    """/conf/core/api-definition-op, /conf/core/api-definition-success: the OpenAPI document."""
    document = _get(client, "/openapi.json", {})
    assert document["openapi"].startswith("3.")
    assert "/collections/{collection_id}/items" in document["paths"]


def test_conformance_op_and_success(client: TestClient) -> None:
    """/conf/core/conformance-op, /conf/core/conformance-success."""
    body = _get(client, "/conformance", {})
    assert CORE in body["conformsTo"]
    assert any(c.endswith("/conf/geojson") for c in body["conformsTo"])
    assert any(c.endswith("/conf/html") for c in body["conformsTo"])


def test_fc_md_op_and_success(client: TestClient, admin: dict[str, str]) -> None:
    """/conf/core/fc-md-op, /conf/core/fc-md-success, /conf/core/fc-md-links, /conf/core/fc-md-items."""
    body = _get(client, "/collections", admin)
    assert [c["id"] for c in body["collections"]] == sorted(LAYERS)
    assert _link(body["links"], "self")
    for item in body["collections"]:
        assert item["itemType"] == "feature"
        assert _link(item["links"], "items", "application/geo+json")["href"].endswith(
            f"/collections/{item['id']}/items"
        )


def test_fc_md_extent(client: TestClient, admin: dict[str, str]) -> None:
    """/conf/core/fc-md-extent: spatial extent in CRS84; temporal extent where a time column exists."""
    body = _get(client, "/collections/buildings", admin)
    spatial = body["extent"]["spatial"]
    assert spatial["crs"] == CRS84
    west, south, east, north = spatial["bbox"][0]
    assert west == pytest.approx(24.92746, abs=1e-4) and south == pytest.approx(60.16867, abs=1e-4)
    assert east > west and north > south
    # at 7 decimals, rounded outwards: it still holds every feature
    assert all(round(v, 7) == v for v in (west, south, east, north))
    features = _get(client, "/collections/buildings/items?limit=1000", admin)["features"]
    lons, lats = zip(
        *(xy for f in features for ring in f["geometry"]["coordinates"] for xy in ring), strict=True
    )
    assert west <= min(lons) and east >= max(lons) and south <= min(lats) and north >= max(lats)
    assert body["extent"]["temporal"]["interval"] == [["2019-01-01T00:00:00Z", "2023-01-01T00:00:00Z"]]
    assert "extent" not in _get(client, "/collections/transit_routes", admin)


def test_crs84(client: TestClient, admin: dict[str, str]) -> None:
    """/conf/core/crs84: collections advertise CRS84 and geometries are lon/lat."""
    assert _get(client, "/collections/roads", admin)["crs"][0] == CRS84
    feature = _get(client, "/collections/buildings/items/0", admin)
    lon, lat = feature["geometry"]["coordinates"][0][0]
    assert 24.9 < lon < 25.0 and 60.1 < lat < 60.2


def test_sfc_md_op_and_success(client: TestClient, admin: dict[str, str]) -> None:
    """/conf/core/sfc-md-op, /conf/core/sfc-md-success: one collection's description."""
    body = _get(client, "/collections/roads", admin)
    assert body["id"] == "roads" and body["title"] == "Roads" and body["description"] == "The roads."
    _get(client, "/collections/no_such_layer", admin, status=404)


def test_fc_op_and_fc_response(client: TestClient, admin: dict[str, str]) -> None:
    """/conf/core/fc-op, /conf/core/fc-response: a GeoJSON FeatureCollection."""
    response = client.get("/collections/buildings/items", headers=admin)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    body = response.json()
    assert body["type"] == "FeatureCollection"
    assert [f["id"] for f in body["features"]] == [0, 1, 2, 3, 4]
    assert body["features"][2]["properties"] == {
        "osm_id": 103,
        "use": "commercial",
        "name": "Kauppa",
        "height_m": 21.5,
        "surveyed": "2021-01-01T00:00:00",
    }


def test_fc_limit_definition(client: TestClient) -> None:
    """/conf/core/fc-limit-definition: limit is an optional integer query parameter with a maximum."""
    operation = _get(client, "/openapi.json", {})["paths"]["/collections/{collection_id}/items"]["get"]
    limit = next(p for p in operation["parameters"] if p["name"] == "limit")
    assert limit["in"] == "query" and not limit.get("required", False)
    schema = limit["schema"]["anyOf"][0] if "anyOf" in limit["schema"] else limit["schema"]
    assert schema["type"] == "integer" and schema["minimum"] == 1 and schema["maximum"] == 10_000


def test_fc_limit_response(client: TestClient, admin: dict[str, str]) -> None:
    """/conf/core/fc-limit-response: at most `limit` features; above the maximum: capped, no error."""
    assert len(_get(client, "/collections/buildings/items?limit=2", admin)["features"]) == 2
    body = _get(client, "/collections/buildings/items?limit=99999999", admin)
    assert body["numberReturned"] == 5
    assert "limit=10000" in _link(body["links"], "self")["href"]


def test_fc_bbox_definition_and_response(client: TestClient, admin: dict[str, str]) -> None:
    """/conf/core/fc-bbox-definition, /conf/core/fc-bbox-response: only intersecting features."""
    body = _get(client, f"/collections/buildings/items?bbox={TWO_BUILDINGS}", admin)
    assert [f["id"] for f in body["features"]] == [0, 1]
    assert body["numberMatched"] == 2
    six = _get(client, "/collections/buildings/items?bbox=24.927,60.168,-10,24.930,60.170,100", admin)
    assert six["numberMatched"] == 2
    assert _get(client, "/collections/buildings/items?bbox=0,0,1,1", admin)["numberMatched"] == 0
    # across the antimeridian: from 170°E eastwards to 25°W includes Helsinki
    assert _get(client, "/collections/buildings/items?bbox=170,59,-25,61", admin)["numberMatched"] == 0
    assert _get(client, "/collections/buildings/items?bbox=170,59,25,61", admin)["numberMatched"] == 5
    operation = _get(client, "/openapi.json", {})["paths"]["/collections/{collection_id}/items"]["get"]
    bbox = next(p for p in operation["parameters"] if p["name"] == "bbox")
    assert bbox["schema"]["type"] == "array" and bbox["style"] == "form" and bbox["explode"] is False


def test_fc_time_definition_and_response(client: TestClient, admin: dict[str, str]) -> None:
    """/conf/core/fc-time-definition, /conf/core/fc-time-response: instant, bounded and half-bounded."""

    def ids(value: str) -> list[int]:
        return [
            f["id"] for f in _get(client, f"/collections/buildings/items?datetime={value}", admin)["features"]
        ]

    assert ids("2021-01-01T00:00:00Z") == [2]
    assert ids("2021-01-01") == [2]
    assert ids("2020-01-01T00:00:00Z/2022-01-01T00:00:00Z") == [1, 2, 3]
    assert ids("../2020-06-01T00:00:00Z") == [0, 1]
    assert ids("/2020-06-01T00:00:00Z") == [0, 1]
    assert ids("2022-01-01T00:00:00%2B00:00/..") == [3, 4]
    assert ids("2022-01-01T00:00:00Z/") == [3, 4]
    # features of a collection without temporal geometry all stay in the result
    body = _get(client, "/collections/roads/items?datetime=2021-01-01T00:00:00Z", admin)
    assert body["numberMatched"] == 4


def test_fc_links(client: TestClient, admin: dict[str, str]) -> None:
    """/conf/core/fc-links: self and alternate; next/prev for paging, which walks every feature once."""
    seen: list[int] = []
    url = "/collections/buildings/items?limit=2&use=residential"
    body = _get(client, url, admin)
    assert _link(body["links"], "alternate", "text/html")
    while True:
        seen += [f["id"] for f in body["features"]]
        nxt = [lk for lk in body["links"] if lk["rel"] == "next"]
        if not nxt:
            break
        assert "use=residential" in nxt[0]["href"]
        body = _get(client, nxt[0]["href"], admin)
    assert seen == [0, 1, 4]
    assert "offset=0" in _link(body["links"], "prev")["href"]


def test_fc_timestamp(client: TestClient, admin: dict[str, str]) -> None:
    """/conf/core/fc-timeStamp: an RFC 3339 timeStamp."""
    stamp = _get(client, "/collections/roads/items", admin)["timeStamp"]
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$", stamp)


def test_fc_numbermatched_and_numberreturned(client: TestClient, admin: dict[str, str]) -> None:
    """/conf/core/fc-numberMatched, /conf/core/fc-numberReturned."""
    body = _get(client, "/collections/roads/items?highway=primary&limit=1", admin)
    assert body["numberMatched"] == 2 and body["numberReturned"] == 1 == len(body["features"])
    paged = _get(client, "/collections/roads/items?offset=3", admin)
    assert paged["numberMatched"] == 4 and paged["numberReturned"] == 1


def test_f_op_and_f_success(client: TestClient, admin: dict[str, str]) -> None:
    """/conf/core/f-op, /conf/core/f-success, /conf/core/f-links: one feature by id, with links."""
    feature = _get(client, "/collections/roads/items/2", admin)
    assert feature["type"] == "Feature" and feature["id"] == 2
    assert feature["properties"]["highway"] == "secondary"
    assert feature["geometry"]["type"] == "LineString"
    assert _link(feature["links"], "self")["href"].endswith("/collections/roads/items/2")
    assert _link(feature["links"], "collection")["href"].endswith("/collections/roads")
    for missing in ("99", "abc", "-1", "9" * 40):
        _get(client, f"/collections/roads/items/{missing}", admin, status=404)


def test_query_param_unknown(client: TestClient, admin: dict[str, str]) -> None:
    """/conf/core/query-param-unknown: 400 for a parameter the API does not define."""
    for url in (
        "/collections/buildings/items?colour=red",
        "/collections?foo=1",
        "/?x=1",
        "/conformance?limit=3",
        "/collections/buildings/items/0?bbox=1,2,3,4",
    ):
        problem = _get(client, url, admin, status=400)
        assert problem["status"] == 400 and "unknown query parameter" in problem["detail"]


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=-5",
        "limit=ten",
        "limit=1.5",
        "offset=-1",
        "bbox=1,2,3",
        "bbox=a,b,c,d",
        "bbox=0,50,1,40",
        "bbox=0,0,1,91",
        "bbox=0,0,nan,1",
        "datetime=yesterday",
        "datetime=2021-13-01",
        "datetime=2022-01-01T00:00:00Z/2021-01-01T00:00:00Z",
        "datetime=a/b/c",
        "f=xml",
        "height_m=tall",
        "osm_id=1.5",
        "limit=1&limit=2",
    ],
)
def test_query_param_invalid(client: TestClient, admin: dict[str, str], query: str) -> None:
    """/conf/core/query-param-invalid: 400 with a problem document for malformed values."""
    response = client.get(f"/collections/buildings/items?{query}", headers=admin)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Bad Request"


def test_property_filters(client: TestClient, admin: dict[str, str]) -> None:
    """Property equality filters (typed by column): ?highway=primary, ?lanes=1, ?height_m=21.5."""
    assert _get(client, "/collections/roads/items?highway=primary", admin)["numberMatched"] == 2
    assert _get(client, "/collections/roads/items?lanes=1", admin)["numberMatched"] == 2
    assert [
        f["id"] for f in _get(client, "/collections/buildings/items?height_m=21.5", admin)["features"]
    ] == [2]
    routes = _get(client, "/collections/transit_routes/items?route_short_name=55", admin)
    assert routes["numberMatched"] == 2 and routes["features"][0]["geometry"] is None


def test_geojson_and_html_encodings(client: TestClient, admin: dict[str, str]) -> None:
    """/conf/geojson/content, /conf/html/content: both encodings, by f= and by Accept."""
    page = client.get("/collections/buildings/items?f=html", headers=admin)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Kauppa" in page.text and "5 of 5 matching features" in page.text
    accept = client.get("/collections", headers={**admin, "Accept": "text/html,application/xhtml+xml"})
    assert accept.headers["content-type"].startswith("text/html") and "Roads" in accept.text
    single = client.get("/collections/buildings/items/2?f=html", headers=admin)
    assert "Kauppa" in single.text and "Polygon" in single.text
    for url in ("/?f=html", "/conformance?f=html", "/collections/roads?f=html"):
        assert client.get(url, headers=admin).headers["content-type"].startswith("text/html")
    assert client.get("/collections?f=json", headers={"Accept": "text/html"}).headers["content-type"] == (
        "application/json"
    )


# ------------------------------------------------------------------ Part 2: CRS by reference (OGC 18-058r1)

UTM35 = "http://www.opengis.net/def/crs/EPSG/0/32635"  # the test twin's storage CRS


def test_part2_conformance_and_crs_lists(client: TestClient, admin: dict[str, str]) -> None:
    """/conf/crs/crs-conformance, /conf/crs/fc-md-crs-list, /conf/crs/fc-md-storageCrs."""
    assert (
        "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs"
        in _get(client, "/conformance", {})["conformsTo"]
    )
    body = _get(client, "/collections/buildings", admin)
    assert (body["crs"], body["storageCrs"]) == ([CRS84, UTM35], UTM35)
    assert _get(client, "/collections/transit_routes", admin)["crs"] == [CRS84]  # no geometry, no storage CRS


def test_part2_crs_returns_the_stored_coordinates_and_says_so(
    client: TestClient, admin: dict[str, str]
) -> None:
    """/conf/crs/ogc-crs-header, /conf/crs/crs-action: building 0 is the 20 m square at (385000, 6672000)."""
    response = client.get(f"/collections/buildings/items?crs={UTM35}&limit=1", headers=admin)
    assert response.status_code == 200 and response.headers["content-crs"] == f"<{UTM35}>"
    ring = response.json()["features"][0]["geometry"]["coordinates"][0]
    assert sorted({(x, y) for x, y in ring}) == [(385000.0, 6672000.0), (385000.0, 6672020.0),
                                                 (385020.0, 6672000.0), (385020.0, 6672020.0)]  # fmt: skip
    one = client.get(f"/collections/buildings/items/0?crs={UTM35}", headers=admin)
    assert one.headers["content-crs"] == f"<{UTM35}>" and one.json()["geometry"]["coordinates"][0] == ring
    plain = client.get("/collections/buildings/items/0", headers=admin)
    assert plain.headers["content-crs"] == f"<{CRS84}>"


def test_part2_bbox_crs_selects_in_the_storage_crs(client: TestClient, admin: dict[str, str]) -> None:
    """/conf/crs/fc-bbox-crs-action: a box around buildings 1 and 2 only (x 385100-385220 m)."""
    box_ = "385090,6671990,385230,6672030"
    body = _get(client, f"/collections/buildings/items?bbox={box_}&bbox-crs={UTM35}", admin)
    assert [f["properties"]["osm_id"] for f in body["features"]] == [102, 103]
    lonlat = _get(client, f"/collections/buildings/items?bbox={TWO_BUILDINGS}&bbox-crs={CRS84}", admin)
    assert [f["properties"]["osm_id"] for f in lonlat["features"]] == [101, 102]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("crs=http://www.opengis.net/def/crs/EPSG/0/3857", "crs: 'http://www.opengis.net/def/crs/EPSG/0/3857' is not offered"),
        (f"bbox=1,2,3&bbox-crs={UTM35}", "bbox: expected 4 or 6 comma-separated numbers, got 3"),
        (f"bbox=385100,6672000,385000,6672100&bbox-crs={UTM35}", "bbox: a minimum is greater than its maximum"),
    ],
)  # fmt: skip
def test_part2_an_unknown_crs_or_bad_box_is_a_400(
    client: TestClient, admin: dict[str, str], query: str, message: str
) -> None:
    """/conf/crs/crs-action (a CRS not in the list), and a malformed box in the storage CRS."""
    assert _get(client, f"/collections/buildings/items?{query}", admin, status=400)["detail"].startswith(
        message
    )
