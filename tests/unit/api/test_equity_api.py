"""``GET /comparisons/{id}/equity`` of the real app over a comparison folder written beside the API test twin."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from apitwin import build_twin
from fastapi.testclient import TestClient

from civictwin.api.app import create_app
from civictwin.api.settings import ServerSettings
from civictwin.compare.equity import EQUITY_FILE, EquityRow, EquityView
from civictwin.governance.tokens import Role, create_token, tokens_path
from civictwin.runs import ComparisonRecord

ROW = EquityRow(
    engine="traffic", table="zones", value="vehicle_km", unit="km", grouping="income", group="1 of 5 (lowest): 9–12",
    zones=3, residents=1200.0, plan="close", base_mean=32.0, plan_mean=27.0, diff=-5.0, ci_low=-7.3,
    ci_high=-2.7, distinguishable=True, words="vehicle_km (income 1 of 5 (lowest): 9–12): down 16% (95% CI ...).",
)  # fmt: skip


def _comparison(runs: Path, comparison_id: str, *, equity: bool) -> None:
    folder = runs / comparison_id
    folder.mkdir(parents=True)
    record = ComparisonRecord(
        id=comparison_id, created="2026-12-01T06:00:00Z", baseline="base", plans=["close"], sources=["zones"],
        kpis=[], differences=[], summary=[],
    )  # fmt: skip
    (folder / "comparison.json").write_text(record.to_json(), encoding="utf-8")
    if equity:
        view = EquityView(
            rows=[ROW], groups={"income": [ROW.group]}, not_broken_down={"share_car": "one number"}
        )
        (folder / EQUITY_FILE).write_text(view.to_json(), encoding="utf-8")
    (folder / "complete").touch()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    twin = tmp_path_factory.mktemp("equity-twin")
    build_twin(twin)
    _comparison(twin / "runs", "with-equity", equity=True)
    _comparison(twin / "runs", "without", equity=False)
    app = create_app(twin, settings=ServerSettings(rate_per_second=10_000, rate_burst=100_000))
    admin = create_token(tokens_path(twin / "test-twin.duckdb"), role=Role.ADMIN).token
    with TestClient(app) as test_client:
        test_client.headers.update({"Authorization": f"Bearer {admin}"})
        yield test_client


def test_equity_view_is_served_as_written(client: TestClient) -> None:
    body = client.get("/comparisons/with-equity/equity").json()
    assert body["groups"] == {"income": ["1 of 5 (lowest): 9–12"]}
    assert body["rows"][0]["diff"] == -5.0 and body["rows"][0]["ci_low"] == -7.3
    assert body["not_broken_down"] == {"share_car": "one number"}


def test_no_equity_view_and_no_access_are_404(client: TestClient) -> None:
    response = client.get("/comparisons/without/equity")
    assert response.status_code == 404
    assert "has no equity.json" in response.json()["detail"]
    # the comparison derives from the restricted `zones` layer: an anonymous caller sees nothing
    token = client.headers.pop("Authorization")
    try:
        anonymous = client.get("/comparisons/with-equity/equity")
    finally:
        client.headers["Authorization"] = token
    assert anonymous.status_code == 404
    assert "vehicle_km" not in json.dumps(anonymous.json())
