"""The alerts and live-sensor routes through the real app: what each role sees, sensor status and
limits, a sensor's chart data, and rules added and deleted by an admin (and refused to others)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from fastapi.testclient import TestClient
from mqtt_harness import datastream
from shapely.geometry import box

from civictwin.api.app import create_app
from civictwin.api.settings import ServerSettings
from civictwin.config import load_config
from civictwin.governance.audit import audit_path
from civictwin.governance.tokens import Role, create_token, tokens_path
from civictwin.live.alerts import step
from civictwin.live.triggers import Finding
from civictwin.store.alerts import AlertStore, alerts_path
from civictwin.store.duckdb import DuckDBStore
from civictwin.store.observations import DatasetSpec, ObservationBatch, open_observations

T0 = 1_772_359_200_000  # 2026-03-01T10:00:00Z
HOUR = 3_600_000
TWIN_TOML = """
[twin]
name = "alerts api"

[area]
bbox = [24.93, 60.16, 24.96, 60.18]

[[sources]]
name = "osm"
kind = "osm"
path = "none.osm.pbf"
licence = "ODbL-1.0"
publisher = "OpenStreetMap contributors"
steward = "tests"

[[rules]]
name = "no2_high"
kind = "threshold"
datastreams = ["no2-koeln"]
above = 200.0
severity = "critical"

[[rules]]
name = "pm10_annual"
kind = "period_mean"
observed_property = "PM10"
period = "year"
above = 40.0

[[rules]]
name = "co2_up"
kind = "scenario_difference"
kpis = ["co2_kg"]
by_more_than = 100.0
"""


def _finding(rule: str, subject: str, at_ms: int, value: float) -> Finding:
    return Finding(
        rule,
        subject,
        True,
        datetime.fromtimestamp(at_ms / 1000, tz=UTC),
        value,
        200.0,
        f"{value}",
        {"v": value},
    )


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A twin with restricted zones (so comparisons are hidden from most), three datastreams and alerts."""
    folder = tmp_path_factory.mktemp("alerts-api")
    (folder / "twin.toml").write_text(TWIN_TOML)
    config = load_config(folder)
    store = DuckDBStore.create(config.store_path, crs="EPSG:32635")
    store.write_table(
        "zones", gpd.GeoDataFrame({"zone_id": ["z"]}, geometry=[box(0, 0, 1, 1)], crs="EPSG:32635")
    )
    store.put_record("catalog", "zones", {"access": "restricted"})
    store.close()
    with open_observations(config.store_path) as observations:
        observations.ensure_dataset(DatasetSpec("air", "Air", "UBA", "Air team", "dl-de/by-2-0", "public"))
        observations.ensure_dataset(
            DatasetSpec("traffic", "Counts", "City", "Traffic team", "CC-BY-4.0", "internal")
        )
        observations.ensure_datastream(datastream("no2-koeln", "NO2", "ug/m3", "air", valid=(0.0, 1000.0)))
        observations.ensure_datastream(datastream("pm10-koeln", "PM10", "ug/m3", "air", valid=(0.0, 1000.0)))
        observations.ensure_datastream(
            datastream("count-c18", "Vehicles", "{vehicle}/h", "traffic", valid=(0, None))
        )
        times = [T0 - 3 * HOUR, T0 - 2 * HOUR, T0 - HOUR, T0]
        observations.append(
            ObservationBatch.of(datastream_id=[1] * 4, phenomenon_time=times, result=[150, 180, 230, 250]),
            origin="test",
        )
        observations.append(
            ObservationBatch.of(datastream_id=[2] * 2, phenomenon_time=times[2:], result=[28, 30]),
            origin="test",
        )
    with AlertStore(alerts_path(config.store_path)) as alerts:
        for finding, datasets in (
            (_finding("no2_high", "datastream:1", T0 - HOUR, 230.0), ("air",)),
            (_finding("no2_high", "datastream:3", T0, 900.0), ("traffic",)),
            (_finding("co2_up", "scenario:close_main:co2_kg", T0, 870.0), ()),
        ):
            opened = step(None, finding, severity="critical", datasets=datasets)
            assert opened.alert is not None
            alerts.save([(opened.alert, opened.event)], targets={})
    return folder


@pytest.fixture(scope="module")
def tokens(twin: Path) -> dict[str, str]:
    path = tokens_path(load_config(twin).store_path)
    return {role: create_token(path, role=Role(role), name=role).token for role in ("viewer", "admin")}


@pytest.fixture(scope="module")
def client(twin: Path) -> Iterator[TestClient]:
    settings = ServerSettings(rate_per_second=10_000, rate_burst=100_000)
    with TestClient(create_app(twin, settings=settings)) as test_client:
        yield test_client


def get(client: TestClient, path: str, token: str | None = None) -> Any:
    response = client.get(path, headers={"Authorization": f"Bearer {token}"} if token else {})
    assert response.status_code == 200, response.text
    return response.json()


def test_sensors_are_points_with_latest_value_limits_and_status(
    client: TestClient, tokens: dict[str, str]
) -> None:
    public = get(client, "/live/sensors")
    assert [f["properties"]["key"] for f in public["features"]] == [
        "no2-koeln",
        "pm10-koeln",
    ]  # traffic is internal
    no2, pm10 = (f["properties"] for f in public["features"])
    assert public["features"][0]["geometry"] == {"type": "Point", "coordinates": [6.95, 50.94]}
    assert (no2["latest_result"], no2["latest_time"], no2["status"], no2["open_alerts"]) == (
        250.0,
        "2026-03-01T10:00:00Z",
        "alert",
        1,
    )
    assert no2["limits"] == [
        {"rule": "no2_high", "severity": "critical", "above": 200.0, "below": None, "applies_to": "value"}
    ]
    assert (pm10["latest_result"], pm10["status"]) == (30.0, "ok")  # within the annual-mean limit of 40
    assert pm10["limits"][0]["applies_to"] == "year mean"
    counted = get(client, "/live/sensors", tokens["viewer"])
    count = counted["features"][2]["properties"]
    assert (count["key"], count["status"], count["latest_result"]) == ("count-c18", "alert", None)


def test_a_sensor_chart_has_its_recent_observations_limits_and_alerts(client: TestClient) -> None:
    series = get(client, "/live/sensors/1?hours=2")
    assert series["observations"] == [[T0 - 2 * HOUR, 180.0], [T0 - HOUR, 230.0], [T0, 250.0]]
    assert (series["start"], series["end"]) == ("2026-03-01T08:00:00Z", "2026-03-01T10:00:00Z")
    assert [a["rule"] for a in series["alerts"]] == ["no2_high"] and series["alerts"][0][
        "opened_at"
    ] == "2026-03-01T09:00:00Z"
    assert series["limits"][0]["above"] == 200.0
    assert client.get("/live/sensors/3").status_code == 404  # internal: not for anonymous callers
    assert client.get("/live/sensors/99").status_code == 404
    assert client.get("/live/sensors/1?hours=0").status_code == 400
    assert client.get("/live/sensors/1?days=1").status_code == 400


def test_alerts_are_shown_to_those_who_may_read_what_they_are_about(
    client: TestClient, tokens: dict[str, str]
) -> None:
    anonymous = get(client, "/alerts")
    assert [(a["rule"], a["subject"]) for a in anonymous["alerts"]] == [("no2_high", "datastream:1")]
    assert anonymous["alerts"][0]["datastream"] == {
        "id": 1,
        "key": "no2-koeln",
        "name": "NO2 at no2-koeln",
        "unit": "ug/m3",
    }
    viewer = get(
        client, "/alerts", tokens["viewer"]
    )  # internal counts: yes; comparisons over restricted zones: no
    assert sorted(a["subject"] for a in viewer["alerts"]) == ["datastream:1", "datastream:3"]
    admin = get(client, "/alerts?status=open", tokens["admin"])
    assert admin["numberMatched"] == 3
    assert get(client, "/alerts?limit=1&offset=1", tokens["admin"])["numberReturned"] == 1
    assert client.get("/alerts/3").status_code == 404  # the scenario alert, for an anonymous caller
    detail = get(client, "/alerts/3", tokens["admin"])
    assert detail["evidence"] == {"v": 870.0} and detail["deliveries"] == []
    assert "deliveries" not in get(client, "/alerts/1")
    assert client.get("/alerts?status=pending").status_code == 400


def test_only_admins_add_and_delete_rules(client: TestClient, twin: Path, tokens: dict[str, str]) -> None:
    rule = {"name": "pm10_now", "kind": "threshold", "observed_property": "PM10", "above": 25.0}
    assert client.post("/alerts/rules", json=rule).status_code == 401
    assert (
        client.post(
            "/alerts/rules", json=rule, headers={"Authorization": f"Bearer {tokens['viewer']}"}
        ).status_code
        == 403
    )
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    created = client.post("/alerts/rules", json=rule, headers=admin)
    assert created.status_code == 201 and created.json()["source"] == "api"
    assert client.post("/alerts/rules", json=rule, headers=admin).status_code == 409
    clash = client.post("/alerts/rules", json={**rule, "name": "no2_high"}, headers=admin)
    assert (clash.status_code, clash.json()["detail"]) == (
        409,
        "a rule named 'no2_high' is defined in twin.toml",
    )
    bad = client.post("/alerts/rules", json={**rule, "name": "x", "per_hour": 3}, headers=admin)
    assert (bad.status_code, bad.json()["detail"]) == (
        400,
        "option(s) per_hour do not apply to kind 'threshold'",
    )
    # The new limit colours PM10 at once: its latest 30 is above 25, with no alert open yet.
    pm10 = get(client, "/live/sensors")["features"][1]["properties"]
    assert (pm10["status"], [lim["rule"] for lim in pm10["limits"]]) == (
        "beyond",
        ["pm10_annual", "pm10_now"],
    )
    rules = get(client, "/alerts/rules")["rules"]
    assert [(r["name"], r["source"]) for r in rules] == [
        ("no2_high", "twin.toml"), ("pm10_annual", "twin.toml"), ("co2_up", "twin.toml"), ("pm10_now", "api")
    ]  # fmt: skip
    assert client.delete("/alerts/rules/no2_high", headers=admin).status_code == 409
    assert client.delete("/alerts/rules/pm10_now", headers=admin).status_code == 204
    assert client.delete("/alerts/rules/pm10_now", headers=admin).status_code == 404
    lines = [json.loads(line) for line in audit_path(load_config(twin).store_path).read_text().splitlines()]
    assert {(e["method"], e["path"], e["status"]) for e in lines} >= {
        ("POST", "/alerts/rules", 201),
        ("POST", "/alerts/rules", 401),
    }
