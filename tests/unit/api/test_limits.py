"""Rate limits (429 + Retry-After), size limits (413/414), audit lines, and robustness under bad input."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from apitwin import auth
from fastapi.testclient import TestClient

from civictwin.api.app import create_app
from civictwin.api.limits import BodyTooLarge, RateLimiter, counting_receive
from civictwin.api.settings import ServerSettings
from civictwin.governance.audit import audit_path, read_audit


@pytest.fixture()
def strict(twin_dir: Path) -> Iterator[TestClient]:
    """An app allowing bursts of 3 requests and 1 request per second afterwards; tiny bodies and URLs."""
    settings = ServerSettings(rate_per_second=1.0, rate_burst=3, max_body_bytes=100, max_url_bytes=300)
    with TestClient(create_app(twin_dir, settings=settings)) as client:
        yield client


def test_rate_limit_per_client(strict: TestClient, tokens: dict[str, str]) -> None:
    """The 4th quick request of a client is 429 with Retry-After; another client has its own bucket."""
    statuses = [strict.get("/conformance").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = strict.get("/conformance")
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["content-type"] == "application/problem+json"
    assert strict.get("/conformance", headers=auth(tokens, "viewer")).status_code == 200


def test_bad_tokens_are_throttled_too(strict: TestClient) -> None:
    """A flood of invalid tokens spends the IP's bucket: 401, 401, 401, then 429."""
    headers = {"Authorization": "Bearer ct_12345678_" + "x" * 43}
    assert [strict.get("/", headers=headers).status_code for _ in range(4)] == [401, 401, 401, 429]


def test_body_and_url_limits(strict: TestClient) -> None:
    """A body over 100 bytes: 413; a URL over 300 bytes: 414; both as problem documents."""
    too_big = strict.post("/collections", content=b"x" * 101)
    assert too_big.status_code == 413 and too_big.json()["status"] == 413
    long_url = strict.get("/collections/buildings/items?name=" + "a" * 400)
    assert long_url.status_code == 414 and long_url.headers["content-type"] == "application/problem+json"


def test_streamed_body_is_counted_as_it_arrives() -> None:
    """Without Content-Length, the body is counted chunk by chunk: 80 bytes pass, 160 raise 413."""
    chunks = [{"type": "http.request", "body": b"x" * 80, "more_body": True}] * 2

    async def receive() -> dict[str, object]:
        return chunks.pop(0)

    async def read_all() -> None:
        wrapped = counting_receive(receive, 100)
        await wrapped()
        await wrapped()

    with pytest.raises(BodyTooLarge) as info:
        asyncio.run(read_all())
    assert info.value.status_code == 413


def test_method_not_allowed_is_a_problem(client: TestClient) -> None:
    response = client.post("/collections", content=b"{}")
    assert response.status_code == 405 and response.headers["content-type"] == "application/problem+json"


def test_every_request_is_audited(client: TestClient, tokens: dict[str, str], store_path: Path) -> None:
    """who (token id or anonymous), what (method, path, query) and the outcome (status) per request."""
    client.get("/collections/zones?f=json", headers=auth(tokens, "steward"))
    client.get("/collections/zones")
    client.get("/", headers={"Authorization": "Bearer wrong"})
    entries = read_audit(audit_path(store_path))[-3:]
    steward_id = tokens["steward"].split("_")[1]
    assert [(e.who, e.method, e.path, e.query, e.status) for e in entries] == [
        (steward_id, "GET", "/collections/zones", "f=json", 200),
        ("anonymous", "GET", "/collections/zones", "", 404),
        ("invalid-token", "GET", "/", "", 401),
    ]
    assert all(e.duration_ms >= 0 and e.client for e in entries)


def test_burst_of_bad_requests_leaves_the_server_answering(
    client: TestClient, tokens: dict[str, str]
) -> None:
    """Hundreds of malformed requests: each a 4xx problem, none a 5xx; good requests still work."""
    bad = [
        "/collections/buildings/items?limit=-1",
        "/collections/buildings/items?bbox=x",
        "/collections/buildings/items?datetime=%00",
        "/collections/buildings/items?limit=" + "9" * 5000,
        "/collections/%2e%2e/items",
        "/collections/buildings/items/%00",
        "/tiles/buildings/99/1/1.mvt",
        "/tiles/..%2f..%2fetc/1/1/1.mvt",
        "/collections/buildings/items?height_m=1e999",
        "/collections/buildings/items?surveyed=not-a-date",
        "/collections/buildings/items?offset=" + "9" * 30,
        "/nowhere",
    ]
    for _ in range(20):
        for url in bad:
            response = client.get(url, headers=auth(tokens, "admin"))
            assert 400 <= response.status_code < 500, f"{url}: {response.status_code}"
            assert response.headers["content-type"] == "application/problem+json"
            assert "Traceback" not in response.text
    assert client.get("/collections/buildings/items?limit=1").json()["numberReturned"] == 1


def test_rate_limiter_refills() -> None:
    """A bucket of 2 at 10/s: two immediate requests pass, the third waits 0.1 s, later ones refill."""
    now = [100.0]
    limiter = RateLimiter(rate=10.0, burst=2, clock=lambda: now[0])
    assert [limiter.acquire("a"), limiter.acquire("a")] == [0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(0.1)
    assert limiter.acquire("b") == 0.0
    now[0] += 0.11
    assert limiter.acquire("a") == 0.0
    with pytest.raises(ValueError):
        RateLimiter(rate=0, burst=1)
