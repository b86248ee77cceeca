"""``GET /readiness/{use_case}`` on the hand-made twin: who may ask, and the same report as the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from readinesstwin import build_twin

from civictwin.api.app import create_app
from civictwin.api.settings import ServerSettings
from civictwin.cli import main
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


RECORD = {"id": "calibration-001", "version": 1, "od_factors": [], "count_edges": []}
SPLIT = {
    "inputs": {"shares": {"car": 0.5, "walk": 0.5}},
    "parameters": {"tolerance": 0.02},
    "fit": [
        {"mode": "car", "observed": 0.5, "modelled": 0.5},
        {"mode": "walk", "observed": 0.5, "modelled": 0.5},
    ],
    "gap": 0.0,
}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (json.dumps(RECORD)[:25], "unreadable calibration record: Expecting property name enclosed in double quotes: line 1 column 26 (char 25)"),
        (json.dumps({**RECORD, "od_factors": 7}), "unreadable calibration record: od_factors: Input should be a valid list"),
        (json.dumps({**RECORD, "mode_choice": "fits"}),
         "unreadable calibration record: mode_choice: expected a JSON object"),
        (json.dumps({**RECORD, "mode_choice": {**SPLIT, "gap": "small"}}),
         "unreadable calibration record: mode_choice.gap: Input should be a valid number"),
        (json.dumps({**RECORD, "mode_choice": {**SPLIT, "fit": [{"mode": "car", "observed": 0.5}]}}),
         "unreadable calibration record: mode_choice.fit[0].modelled: Field required"),
    ],
)  # fmt: skip
def test_a_broken_calibration_record_is_a_500_naming_it_and_a_cli_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    twin = build_twin(tmp_path / "twin")
    (twin / "calibration").mkdir()
    record = twin / "calibration" / "calibration-001.json"
    record.write_text(text, encoding="utf-8")
    admin = create_token(tokens_path(twin / "readiness-test.duckdb"), role=Role.ADMIN).token
    with TestClient(create_app(twin)) as client:
        answer = client.get("/readiness/traffic-plan", headers={"Authorization": f"Bearer {admin}"})
    assert (answer.status_code, answer.headers["content-type"]) == (500, "application/problem+json")
    detail = f"readiness is unavailable: calibration/calibration-001.json: {problem}"
    assert answer.json()["detail"] == detail and str(tmp_path) not in answer.text
    with pytest.raises(SystemExit) as exited:
        main(["readiness", str(twin), "--use-case", "traffic-plan", "--format", "json"])
    assert exited.value.code == 1
    output = capsys.readouterr()
    assert (output.out, output.err.strip().splitlines()) == ("", [f"error: {record}: {problem}"])
    assert record.read_text(encoding="utf-8") == text  # the record is left as it was


def test_a_broken_heat_toml_is_the_usual_500_naming_no_file(tmp_path: Path) -> None:
    twin = build_twin(tmp_path / "twin")
    (twin / "heat.toml").write_text("epw = 3\n", encoding="utf-8")
    analyst = create_token(tokens_path(twin / "readiness-test.duckdb"), role=Role.ANALYST).token
    with TestClient(create_app(twin)) as client:
        answer = client.get("/readiness/heat-green", headers={"Authorization": f"Bearer {analyst}"})
    assert (answer.status_code, answer.json()["detail"]) == (
        500,
        "readiness is unavailable: the twin's configuration or a use-case template is invalid",
    )
