"""The alert database on both backends (a SQLite file beside a DuckDB twin, the schema
``civictwin_alerts`` of a PostGIS twin's database): the same alerts, deliveries, refusals and API
rules with the same expected values; on PostGIS, left alone by a rebuild."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pgtwin import PostGIS, build_layers

from civictwin.config_live import RuleConfig
from civictwin.errors import StoreError
from civictwin.live.alerts import step
from civictwin.store.alerts import ALERT_SCHEMA, AlertStatus, AlertStore, open_alert_store
from civictwin.store.opening import StoreLocation

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "live"))
from alert_findings import finding


@pytest.fixture
def store(sidecar_location: StoreLocation) -> Iterator[AlertStore]:
    """An empty alert database: a SQLite file, or the schema of a fresh PostGIS database."""
    with open_alert_store(sidecar_location) as opened:
        yield opened


def test_alerts_keep_their_evidence_and_queue_one_delivery_per_event(store: AlertStore) -> None:
    opened = step(None, finding(True, 0, 250.0), severity="critical", datasets=("no2",))
    assert opened.alert is not None and opened.event is not None
    [saved] = store.save([(opened.alert, opened.event)], targets={"no2_high": ["ops", "city"]})
    assert saved.id == 1
    repeated = step(saved, finding(True, 10, 260.0), severity="critical")
    assert repeated.alert is not None
    store.save([(repeated.alert, repeated.event)], targets={"no2_high": ["ops", "city"]})
    assert store.delivery_counts() == {"pending": 2}
    [reloaded] = store.alerts(status=AlertStatus.OPEN)
    assert (reloaded.fired, reloaded.datasets, reloaded.evidence) == (2, ("no2",), opened.alert.evidence)
    assert store.open_alerts(subject_prefix="datastream:") == {("no2_high", "datastream:no2-1"): reloaded}
    assert store.open_alerts(subject_prefix="DATASTREAM:") == {("no2_high", "datastream:no2-1"): reloaded}
    assert store.open_alerts(subject_prefix="scenario:") == {}
    closed = step(reloaded, finding(False, 20, 150.0), severity="critical")
    assert closed.alert is not None
    store.save([(closed.alert, closed.event)], targets={"no2_high": ["ops"]})
    assert store.delivery_counts() == {"pending": 3} and store.alerts(status=AlertStatus.OPEN) == []
    due = store.due_deliveries(datetime.now(UTC))
    assert [(d.target, d.event) for d in due] == [("ops", "opened"), ("city", "opened")]  # "closed" waits
    store.record_attempt(due[0].id, error=None, retry_at=None)
    [closing] = store.due_deliveries(datetime.now(UTC))[1:]
    payload = json.loads(closing.payload)
    assert (closing.target, payload["event"], payload["alert"]["closing"]["value"]) == (
        "ops",
        "closed",
        150.0,
    )
    assert payload["alert"]["status"] == "closed"
    assert store.deliveries(1)[0] == {
        "target": "ops", "event": "opened", "status": "delivered", "attempts": 1, "last_error": None
    }  # fmt: skip


def test_a_second_open_alert_is_refused_from_another_connection(store: AlertStore) -> None:
    opened = step(None, finding(True, 0, 250.0), severity="warning")
    assert opened.alert is not None
    store.save([(opened.alert, opened.event)], targets={})
    with AlertStore(store.path) as other, pytest.raises(StoreError, match="already open"):
        other.save([(opened.alert, opened.event)], targets={})  # another process, same condition
    assert len(store.alerts()) == 1


def test_api_rules_are_stored_and_versioned(store: AlertStore) -> None:
    rule = RuleConfig(name="pm10_daily", kind="exceedances", window="day", above=50, allowed=35)
    assert store.rules_version() == 0
    store.add_rule(rule, created_by="ab12cd34")
    with pytest.raises(StoreError, match="exists already"):
        store.add_rule(rule, created_by="ab12cd34")
    [stored] = store.api_rules()
    assert (stored.rule, stored.created_by) == (rule, "ab12cd34")
    assert store.rules_version() == 1
    assert store.delete_rule("pm10_daily") and not store.delete_rule("pm10_daily")
    assert store.rules_version() == 2 and store.api_rules() == []


def test_postgis_alerts_survive_a_rebuild_in_their_own_schema(postgis: PostGIS, postgis_twin: str) -> None:
    url = postgis_twin
    location = StoreLocation(kind="postgis", dsn=url)
    opened = step(None, finding(True, 0, 250.0), severity="warning")
    assert opened.alert is not None
    with open_alert_store(location) as alerts:
        alerts.save([(opened.alert, opened.event)], targets={"no2_high": ["ops"]})
    build_layers(location, 3)
    name = url.rsplit("/", 1)[1]
    assert postgis.query(name, f"SELECT rule, subject, status FROM {ALERT_SCHEMA}.alerts") == [
        ("no2_high", "datastream:no2-1", "open")
    ]
    with open_alert_store(location) as after:
        assert after.delivery_counts() == {"pending": 1}
