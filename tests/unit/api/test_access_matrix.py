"""Authorisation as a matrix: every endpoint × every caller × every access level, exact statuses.

Expected visibility (public / internal / restricted / no catalogue record):
anonymous sees public; viewer, analyst and moderator see public + internal; the ``zones`` steward sees public +
internal + zones; admin sees everything. Forbidden layers answer 404 exactly like missing ones and
are absent from every listing (collections, tile sets).
"""

from __future__ import annotations

import mapbox_vector_tile
import pytest
from apitwin import ACCESS, GEOMETRY_LAYERS, LAYERS, ROLES, auth
from fastapi.testclient import TestClient

VISIBLE = {
    "anonymous": {"buildings", "transit_routes"},
    "viewer": {"buildings", "transit_routes", "roads"},
    "analyst": {"buildings", "transit_routes", "roads"},
    "steward": {"buildings", "transit_routes", "roads", "zones"},
    "admin": set(LAYERS),
    "moderator": {"buildings", "transit_routes", "roads"},
}
# z=14 tile holding the test twin's features (lon 24.93, lat 60.168)
TILE = (14, 9326, 4742)


def _endpoints(layer: str) -> list[tuple[str, int]]:
    """(url, status when the layer is visible) for every per-layer endpoint."""
    z, x, y = TILE
    endpoints = [
        (f"/collections/{layer}", 200),
        (f"/collections/{layer}?f=html", 200),
        (f"/collections/{layer}/items", 200),
        (f"/collections/{layer}/items?f=html", 200),
        (f"/collections/{layer}/items/0", 200),
    ]
    has_geometry = layer in GEOMETRY_LAYERS
    endpoints.append((f"/tiles/{layer}.json", 200 if has_geometry else 404))
    endpoints.append((f"/tiles/{layer}/{z}/{x}/{y}.mvt", 200 if has_geometry else 404))
    return endpoints


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("layer", LAYERS)
def test_layer_endpoints(client: TestClient, tokens: dict[str, str], role: str, layer: str) -> None:
    """Visible layers answer normally; forbidden ones 404 with the same problem as a missing layer."""
    visible = layer in VISIBLE[role]
    for url, status in _endpoints(layer):
        response = client.get(url, headers=auth(tokens, role))
        expected = status if visible else 404
        assert response.status_code == expected, f"{role} {url}: {response.text}"
        if expected == 404:
            assert response.headers["content-type"] == "application/problem+json"
        if not visible:
            missing = client.get(url.replace(layer, "no_such_layer"), headers=auth(tokens, role))
            assert response.json()["detail"].replace(layer, "X") == missing.json()["detail"].replace(
                "no_such_layer", "X"
            )


@pytest.mark.parametrize("role", ROLES)
def test_listings(client: TestClient, tokens: dict[str, str], role: str) -> None:
    """Collections and tile sets list exactly the visible layers; the landing pages are open to all."""
    headers = auth(tokens, role)
    for url in ("/", "/conformance", "/openapi.json", "/?f=html"):
        assert client.get(url, headers=headers).status_code == 200
    collections = client.get("/collections", headers=headers).json()["collections"]
    assert {c["id"] for c in collections} == VISIBLE[role]
    html = client.get("/collections?f=html", headers=headers).text
    assert all((f"/collections/{name}?" in html) == (name in VISIBLE[role]) for name in LAYERS)
    tilesets = client.get("/tiles", headers=headers).json()["tilesets"]
    assert {t["id"] for t in tilesets} == VISIBLE[role] & set(GEOMETRY_LAYERS)


@pytest.mark.parametrize("role", ROLES)
def test_tiles_never_leak(client: TestClient, tokens: dict[str, str], role: str) -> None:
    """A visible layer's tile holds only that layer (MVT layer named after it), never another."""
    z, x, y = TILE
    for layer in VISIBLE[role] & set(GEOMETRY_LAYERS):
        response = client.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt", headers=auth(tokens, role))
        assert set(mapbox_vector_tile.decode(response.content)) == {layer}


def test_access_levels_cover_every_level() -> None:
    """The matrix covers public, internal, restricted and a table with no catalogue record."""
    assert set(ACCESS.values()) == {"public", "internal", "restricted"}
    assert set(LAYERS) - set(ACCESS) == {"secret_sites"}


@pytest.mark.parametrize(
    "header",
    [
        "Bearer ct_00000000_" + "A" * 43,
        "Bearer not-a-token",
        "Basic dXNlcjpwYXNz",
        "Bearer ",
    ],
)
def test_invalid_token_is_401(client: TestClient, header: str) -> None:
    """Malformed, unknown or wrong-scheme credentials: 401 problem, on public resources too."""
    response = client.get("/collections", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_revoked_and_tampered_tokens_are_401(client: TestClient, tokens: dict[str, str]) -> None:
    """A revoked token, and an admin token with one secret character changed, are refused."""
    assert client.get("/", headers={"Authorization": f"Bearer {tokens['revoked']}"}).status_code == 401
    admin = tokens["admin"]
    tampered = admin[:-1] + ("A" if admin[-1] != "A" else "B")
    assert client.get("/", headers={"Authorization": f"Bearer {tampered}"}).status_code == 401


# Consultation routes needing a role (docs/consultation.md#comments-and-votes): the role is checked
# before the consultation is looked up, so a caller without it learns nothing (401/403); a caller
# with it gets 404 here, as this twin publishes no comparison. The full matrix over a configured
# consultation is in test_contributions_api.py.
MODERATION = ("GET /moderation", "GET /moderation?kind=observation&limit=5", "POST /moderation/1")
EXPORTS = ("GET /export/contributions.csv", "GET /export/counts.csv", "GET /export/contributions.geojson")
ROLE_STATUS = {
    "anonymous": (401, 401),
    "viewer": (403, 403),
    "analyst": (403, 404),
    "steward": (403, 404),
    "moderator": (404, 404),
    "admin": (404, 404),
}


@pytest.mark.parametrize("role", ROLES)
def test_consultation_roles(client: TestClient, tokens: dict[str, str], role: str) -> None:
    """Moderation for moderators and admins; exports for them and staff (analyst, steward)."""
    moderation, export = ROLE_STATUS[role]
    for routes, status in ((MODERATION, moderation), (EXPORTS, export)):
        for route in routes:
            method, path = route.split(" ")
            body = {"decision": "approve", "reason": "ok"} if method == "POST" else None
            answer = client.request(
                method, f"/consultations/none{path}", headers=auth(tokens, role), json=body
            )
            assert answer.status_code == status, f"{role} {route}: {answer.text}"


# Citizen proposals (docs/consultation.md#citizen-proposals): review, decisions and cancellation for
# moderators, analysts and admins, the role checked before the consultation is looked up. The full
# matrix over a consultation taking proposals is in test_proposals_api.py.
PROPOSAL_STAFF = ("GET /proposals/review", "POST /proposals/1/decision", "POST /proposals/1/cancel")
PROPOSAL_STATUS = {
    "anonymous": 401,
    "viewer": 403,
    "analyst": 404,
    "steward": 403,
    "moderator": 404,
    "admin": 404,
}


@pytest.mark.parametrize("role", ROLES)
def test_proposal_staff_roles(client: TestClient, tokens: dict[str, str], role: str) -> None:
    """Staff routes of proposals: 401 without a token, 403 for viewers and stewards."""
    bodies = {"decision": {"decision": "approve", "reason": "ok"}, "cancel": {"reason": "ok"}}
    for route in PROPOSAL_STAFF:
        method, path = route.split(" ")
        body = bodies.get(path.rsplit("/", 1)[-1]) if method == "POST" else None
        answer = client.request(method, f"/consultations/none{path}", headers=auth(tokens, role), json=body)
        assert answer.status_code == PROPOSAL_STATUS[role], f"{role} {route}: {answer.text}"


SURVEY_PUBLIC = ("GET /observations", f"GET /observations/photos/{'0' * 64}.jpg")


@pytest.mark.parametrize("role", ROLES)
def test_survey_routes_are_public_reads(client: TestClient, tokens: dict[str, str], role: str) -> None:
    """The survey layer and its photos need no role (a pending photo is checked per moderator in
    test_surveys_api.py); here every caller gets 404, as this twin publishes no comparison."""
    for route in SURVEY_PUBLIC:
        method, path = route.split(" ")
        answer = client.request(method, f"/consultations/none{path}", headers=auth(tokens, role))
        assert answer.status_code == 404, f"{role} {route}: {answer.text}"
