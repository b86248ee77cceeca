"""``GET /readiness/{use_case}`` on the hand-made twin: who may ask, and the same report as the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from civictwin.api.app import create_app
from civictwin.api.settings import ServerSettings
from civictwin.governance.tokens import Role, create_token, tokens_path


@pytest.fixture(scope="module")
def client_and_tokens(twin_dir: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    path = tokens_path(twin_dir / "readiness-test.duckdb")
    tokens = {
        role.value: create_token(path, role=role, name=f"a {role.value}").token
        for role in (Role.VIEWER, Role.ANALYST, Role.ADMIN)
    }
    settings = ServerSettings(rate_per_second=10_000, rate_burst=100_000)
    with TestClient(create_app(twin_dir, settings=settings)) as client:
        yield client, tokens


def test_who_may_ask_and_what_they_get(client_and_tokens: tuple[TestClient, dict[str, str]]) -> None:
    client, tokens = client_and_tokens
    assert client.get("/readiness/traffic-plan").status_code == 401
    viewer = client.get("/readiness/traffic-plan", headers={"Authorization": f"Bearer {tokens['viewer']}"})
    assert viewer.status_code == 403
    analyst = {"Authorization": f"Bearer {tokens['analyst']}"}
    answer = client.get("/readiness/traffic-plan", headers=analyst)
    assert answer.status_code == 200
    data = answer.json()
    assert (data["maturity"], data["maturity_name"], data["next_level"]) == (
        2,
        "informative",
        ["transit_service"],
    )
    assert {n["id"]: n["status"] for n in data["needs"]}["counts"] == "present"
    city = client.get("/readiness/school-streets?format=markdown", headers=analyst)
    assert city.headers["content-type"].startswith("text/markdown")
    assert "**Maturity: level 2 of 4 (informative).**" in city.text
    # green is restricted: absent for an analyst (as everywhere in the API), present for an admin
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    green = {
        who: {n["id"]: n["status"] for n in client.get("/readiness/heat-green", headers=h).json()["needs"]}[
            "green"
        ]
        for who, h in (("analyst", analyst), ("admin", admin))
    }
    assert green == {"analyst": "missing", "admin": "present"}
    listed = client.get("/readiness", headers=analyst).json()["use_cases"]
    assert [u["name"] for u in listed] == [
        "heat-green", "housing-growth", "netzero", "tourism", "traffic-plan", "school-streets"
    ]  # fmt: skip
    assert listed[-1]["title"] == "School streets"
    assert client.get("/readiness").status_code == 401
    missing = client.get("/readiness/parking", headers=analyst)
    assert (missing.status_code, missing.json()["detail"]) == (404, "no use case 'parking'")
    assert client.get("/readiness/..%2Ftwin", headers=analyst).status_code in (404, 422)
