"""Serving safely: trusted hosts, public URL, forwarded headers, security headers, CORS, HEAD, bounded
errors, token lifetimes, an unreadable token file, readiness across a rebuild, and the metrics."""

from __future__ import annotations

import json
import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from apitwin import build_twin
from fastapi.testclient import TestClient

from civictwin.api.app import create_app
from civictwin.api.settings import ServerSettings
from civictwin.governance.audit import audit_path, read_audit
from civictwin.governance.security import security_path
from civictwin.governance.tokens import Role, create_token, last_used, rotate_token, tokens_path, used_path

LOOSE = {"rate_per_second": 10_000.0, "rate_burst": 100_000}
GET_ROUTES = [
    "/", "/conformance", "/collections", "/collections/buildings", "/collections/buildings/items",
    "/collections/buildings/items/1", "/tiles", "/tiles/buildings.json", "/tiles/buildings/14/9326/4742.mvt",
    "/scenarios", "/comparisons", "/openapi.json", "/health/live", "/health/ready", "/viewer/",
]  # fmt: skip


@pytest.fixture()
def own_twin(tmp_path: Path) -> Path:
    build_twin(tmp_path / "twin")
    return tmp_path / "twin"


def client_of(twin: Path, **settings: object) -> TestClient:
    return TestClient(create_app(twin, settings=ServerSettings(**{**LOOSE, **settings})))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ hosts and URLs


def test_an_untrusted_host_header_is_refused_and_never_echoed_into_links(twin_dir: Path) -> None:
    with client_of(twin_dir, trusted_hosts=("localhost", "127.0.0.1", "::1")) as client:
        evil = client.get("/tiles/buildings.json", headers={"Host": "evil.example"})
        assert evil.status_code == 400
        assert evil.headers["content-type"] == "application/problem+json"
        assert evil.json()["detail"] == "the Host header 'evil.example' is not a trusted host of this server"
        good = client.get("/tiles/buildings.json", headers={"Host": "127.0.0.1:8000"})
        assert good.json()["tiles"] == ["http://127.0.0.1:8000/tiles/buildings/{z}/{x}/{y}.mvt"]
        assert client.get("/collections", headers={"Host": "[::1]:8000"}).status_code == 200


def test_links_come_from_the_public_url_whatever_the_host(twin_dir: Path) -> None:
    with client_of(twin_dir, public_url="https://twin.example.org/city/", trusted_hosts=("*",)) as client:
        tilejson = client.get("/tiles/buildings.json", headers={"Host": "evil.example"}).json()
        assert tilejson["tiles"] == ["https://twin.example.org/city/tiles/buildings/{z}/{x}/{y}.mvt"]
        links = client.get("/collections/buildings", headers={"Host": "evil.example"}).json()["links"]
        assert {link["href"] for link in links if link["rel"] == "items"} == {
            "https://twin.example.org/city/collections/buildings/items",
            "https://twin.example.org/city/collections/buildings/items?f=html",
        }


def test_forwarded_headers_count_only_from_configured_proxies(twin_dir: Path) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    with client_of(twin_dir) as direct:  # no proxy configured: the headers are ignored
        assert direct.get("/tiles/buildings.json", headers=forwarded).json()["tiles"][0].startswith("http://")
        assert "strict-transport-security" not in direct.get("/", headers=forwarded).headers
    with client_of(twin_dir, forwarded_allow_ips=("testclient",)) as proxied:
        body = proxied.get("/tiles/buildings.json", headers=forwarded).json()
        assert body["tiles"][0].startswith("https://testserver/")
        assert proxied.get("/", headers=forwarded).headers["strict-transport-security"] == "max-age=31536000"
    clients = [e.client for e in read_audit(audit_path(twin_dir / "test-twin.duckdb"))[-4:]]
    assert clients == ["testclient", "testclient", "203.0.113.0/24", "203.0.113.0/24"]


# -------------------------------------------------------------------------------------- headers and HEAD


def test_security_headers_on_data_pages_and_the_viewer(client: TestClient) -> None:
    data = client.get("/collections")
    assert data.headers["x-content-type-options"] == "nosniff"
    assert data.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'self'"
    page = client.get("/collections?f=html")
    assert page.headers["content-security-policy"].startswith("default-src 'none'; style-src 'unsafe-inline'")
    viewer = client.get("/viewer/")
    policy = viewer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and policy.endswith("frame-ancestors 'self'")
    assert "strict-transport-security" not in data.headers  # plain HTTP: no HSTS


def test_cors_per_configured_origin(twin_dir: Path) -> None:
    with client_of(twin_dir, cors_origins=("https://maps.city.example",)) as client:
        allowed = client.get("/collections", headers={"Origin": "https://maps.city.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://maps.city.example"
        other = client.get("/collections", headers={"Origin": "https://elsewhere.example"})
        assert "access-control-allow-origin" not in other.headers
        preflight = client.options(
            "/collections",
            headers={"Origin": "https://maps.city.example", "Access-Control-Request-Method": "GET",
                     "Access-Control-Request-Headers": "authorization"},
        )  # fmt: skip
        assert preflight.status_code == 200
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()


@pytest.mark.parametrize("path", GET_ROUTES)
def test_head_answers_like_get_without_a_body(client: TestClient, path: str) -> None:
    got = client.get(path)
    head = client.head(path)
    assert head.status_code == got.status_code, path
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    if "content-length" in got.headers and got.status_code == 200:
        assert head.headers["content-length"] == got.headers["content-length"]


def test_error_bodies_never_echo_an_unbounded_request(twin_dir: Path) -> None:
    with client_of(twin_dir, max_url_bytes=100_000) as roomy, client_of(twin_dir) as client:
        long_path = "/collections/" + "x" * 60_000  # (httpx refuses URLs over 64 KiB)
        too_long = client.get(long_path)
        assert too_long.status_code == 414 and len(too_long.content) < 1_000
        unknown = roomy.get(long_path)
        assert unknown.status_code == 400 and len(unknown.content) < 1_500  # the name is over 63 characters
        assert unknown.json()["instance"].endswith("…") and len(unknown.json()["instance"]) == 256


# ------------------------------------------------------------------------------------------------ tokens


def test_an_expired_token_gets_a_clear_401_and_rotation_keeps_service(own_twin: Path) -> None:
    path = tokens_path(own_twin / "test-twin.duckdb")
    old = create_token(path, role=Role.ADMIN, name="ops", lifetime=timedelta(days=30))
    with client_of(own_twin) as client:
        admin = {"Authorization": f"Bearer {old.token}"}
        assert client.get("/collections", headers=admin).status_code == 200
        new = rotate_token(path, old.record.id, grace=timedelta(hours=1), lifetime=timedelta(days=90))
        assert client.get("/collections", headers=admin).status_code == 200  # still inside the grace period
        assert client.get("/collections", headers={"Authorization": f"Bearer {new.token}"}).status_code == 200
        rotate_token(path, new.record.id, grace=timedelta(0), lifetime=None)  # ends the successor at once
        expired = client.get("/collections", headers={"Authorization": f"Bearer {new.token}"})
        assert expired.status_code == 401
        assert expired.json()["detail"].startswith(f"token {new.record.id} expired on ")
        assert 'error_description="The access token expired"' in expired.headers["www-authenticate"]


def test_last_use_of_a_token_is_written_down(own_twin: Path) -> None:
    path = tokens_path(own_twin / "test-twin.duckdb")
    issued = create_token(path, role=Role.VIEWER)
    with client_of(own_twin) as client:
        assert (
            client.get("/collections", headers={"Authorization": f"Bearer {issued.token}"}).status_code == 200
        )
    assert list(last_used(used_path(path))) == [issued.record.id]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_an_unreadable_token_file_fails_closed_with_503_once_logged(
    own_twin: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _unreadable_token_file_check(own_twin, caplog, lambda p: p.chmod(0))


def test_a_corrupt_token_file_fails_closed_with_503_once_logged(
    own_twin: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _unreadable_token_file_check(own_twin, caplog, lambda p: p.write_text("{ not json"))


def _unreadable_token_file_check(twin: Path, caplog: pytest.LogCaptureFixture, spoil: object) -> None:
    path = tokens_path(twin / "test-twin.duckdb")
    issued = create_token(path, role=Role.ADMIN)
    spoil(path)  # type: ignore[operator]
    with client_of(twin) as client:
        for _ in range(3):
            refused = client.get("/collections", headers={"Authorization": f"Bearer {issued.token}"})
            assert refused.status_code == 503
            assert (
                refused.json()["detail"]
                == "tokens cannot be checked right now (the server's token file is unreadable)"
            )
        assert client.get("/collections").status_code == 200  # anonymous requests go on
    errors = [r for r in caplog.records if r.levelname == "ERROR" and "token" in r.getMessage()]
    assert len(errors) == 1
    events = [
        json.loads(line)["event"]
        for line in security_path(twin / "test-twin.duckdb").read_text().splitlines()
    ]
    assert events.count("token file unreadable") == 1


def test_denials_and_failed_login_bursts_reach_the_security_log(own_twin: Path) -> None:
    path = tokens_path(own_twin / "test-twin.duckdb")
    viewer = create_token(path, role=Role.VIEWER).token
    with client_of(own_twin) as client:
        assert (
            client.get("/collections/zones", headers={"Authorization": f"Bearer {viewer}"}).status_code == 404
        )
        for _ in range(12):
            client.get("/collections", headers={"Authorization": "Bearer ct_00000000_" + "A" * 43})
    events = [
        json.loads(line) for line in security_path(own_twin / "test-twin.duckdb").read_text().splitlines()
    ]
    denied = [e for e in events if e["event"] == "access denied"]
    assert [(e["dataset"], e["client"], e["path"]) for e in denied] == [
        ("zones", "testclient", "/collections/zones")
    ]
    bursts = [e for e in events if e["event"] == "failed authentications"]
    assert [(b["count"], b["window_s"]) for b in bursts] == [(10, 60.0)]


# --------------------------------------------------------------------------------- readiness and metrics


def test_readiness_across_a_rebuild_and_a_broken_store(own_twin: Path) -> None:
    store = own_twin / "test-twin.duckdb"
    with client_of(own_twin) as client:
        first = client.get("/health/ready")
        assert first.status_code == 200 and first.json()["status"] == "ready"
        kept = own_twin.parent / "kept.duckdb"
        shutil.copy(store, kept)
        build_twin(own_twin.parent / "rebuilt")
        os.replace(own_twin.parent / "rebuilt" / "test-twin.duckdb", store)  # what a rebuild's rename does
        second = client.get("/health/ready")
        assert second.status_code == 200 and second.json()["store_version"] != first.json()["store_version"]
        store.write_bytes(b"not a duckdb file")  # a broken file put in place by hand
        broken = client.get("/health/ready")
        assert broken.status_code == 503
        assert broken.json()["detail"] == (
            "the store file test-twin.duckdb cannot be opened (the reason is in the server's log)"
        )
        assert client.get("/collections").status_code == 200  # the previous twin is still answered
        store.unlink()
        assert client.get("/health/ready").json()["detail"] == "the store file test-twin.duckdb is missing"
        os.replace(kept, store)
        assert client.get("/health/ready").status_code == 200
        assert client.get("/health/live").json() == {"status": "live"}


def test_metrics_by_route_template_for_admins(twin_dir: Path, tokens: dict[str, str]) -> None:
    with client_of(twin_dir) as client:
        admin = {"Authorization": f"Bearer {tokens['admin']}"}
        assert client.get("/metrics").status_code == 404
        assert (
            client.get("/metrics", headers={"Authorization": f"Bearer {tokens['analyst']}"}).status_code
            == 404
        )
        for _ in range(3):
            client.get("/collections/buildings/items?limit=5")
        client.get("/tiles/buildings/14/9326/4742.mvt")
        client.get("/tiles/buildings/14/9326/4742.mvt")
        text = client.get("/metrics", headers=admin).text
        version = client.app.state.twin_holder.current().version
    route = 'route="/collections/{collection_id}/items"'
    assert f'civictwin_http_requests_total{{method="GET",{route},status="200"}} 3.0' in text
    assert f'civictwin_http_request_duration_seconds_count{{method="GET",{route}}} 3.0' in text
    assert "civictwin_tile_cache_hits_total 1.0" in text and "civictwin_tile_cache_misses_total 1.0" in text
    assert f'version="{version}"' in next(
        line for line in text.splitlines() if line.startswith("civictwin_store_info")
    )


def test_metrics_can_be_public(twin_dir: Path) -> None:
    with client_of(twin_dir, metrics_public=True) as client:
        assert client.get("/metrics").status_code == 200
