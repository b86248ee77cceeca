"""Alerts: opened by a firing finding, de-duplicated while it persists, closed when it clears; stored
with their evidence and their deliveries; webhooks signed, retried with backoff, and given up."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from receiver import Receiver

from civictwin.config_live import RuleConfig, WebhookConfig
from civictwin.errors import StoreError
from civictwin.live.alerts import step
from civictwin.live.triggers import Finding
from civictwin.live.webhooks import Deliverer, backoff, sign, verify_signature
from civictwin.store.alerts import AlertEvent, AlertStatus, AlertStore

SECRET = "s3cret-for-tests"


def finding(firing: bool, minute: int, value: float) -> Finding:
    return Finding(
        rule="no2_high",
        subject="datastream:no2-1",
        firing=firing,
        at=datetime(2026, 3, 1, 10, minute, tzinfo=UTC),
        value=value,
        limit=200.0,
        message=f"{value} vs 200",
        evidence={"observations": [{"time": f"10:{minute:02d}", "result": value}]},
    )


def test_an_alert_opens_once_counts_while_firing_and_closes_when_clear() -> None:
    first = step(None, finding(True, 0, 250.0), severity="critical", datasets=("no2",))
    assert first.event is AlertEvent.OPENED and first.alert is not None
    again = step(first.alert, finding(True, 10, 260.0), severity="critical")
    assert again.event is None and again.alert is not None
    assert (again.alert.fired, again.alert.evidence["observations"][0]["result"]) == (2, 250.0)
    assert again.alert.last_evidence["observations"][0]["result"] == 260.0
    stale = step(again.alert, finding(False, 5, 100.0), severity="critical")  # older than the newest firing
    assert stale.event is None and stale.alert == again.alert
    closed = step(again.alert, finding(False, 20, 150.0), severity="critical")
    assert closed.event is AlertEvent.CLOSED and closed.alert is not None
    assert closed.alert.status is AlertStatus.CLOSED
    assert closed.alert.closed_at == datetime(2026, 3, 1, 10, 20, tzinfo=UTC)
    assert closed.alert.closing == {"at": "2026-03-01T10:20:00Z", "value": 150.0, "message": "150.0 vs 200"}
    assert step(None, finding(False, 30, 100.0), severity="critical").alert is None


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[AlertStore]:
    with AlertStore(tmp_path / "twin.alerts.sqlite") as alert_store:
        yield alert_store


def test_stored_alerts_keep_their_evidence_and_queue_one_delivery_per_event(store: AlertStore) -> None:
    opened = step(None, finding(True, 0, 250.0), severity="critical", datasets=("no2",))
    assert opened.alert is not None and opened.event is not None
    [saved] = store.save([(opened.alert, opened.event)], targets={"no2_high": ["ops", "city"]})
    assert saved.id is not None
    repeated = step(saved, finding(True, 10, 260.0), severity="critical")
    assert repeated.alert is not None
    store.save([(repeated.alert, repeated.event)], targets={"no2_high": ["ops", "city"]})
    assert store.delivery_counts() == {"pending": 2}  # de-duplicated: no delivery for the repeat
    [reloaded] = store.alerts(status=AlertStatus.OPEN)
    assert (reloaded.fired, reloaded.datasets, reloaded.evidence) == (2, ("no2",), opened.alert.evidence)
    assert store.open_alerts(subject_prefix="datastream:") == {("no2_high", "datastream:no2-1"): reloaded}
    assert store.open_alerts(subject_prefix="scenario:") == {}
    closed = step(reloaded, finding(False, 20, 150.0), severity="critical")
    assert closed.alert is not None
    store.save([(closed.alert, closed.event)], targets={"no2_high": ["ops"]})
    assert store.delivery_counts() == {"pending": 3}
    assert store.alerts(status=AlertStatus.OPEN) == []
    due = store.due_deliveries(datetime.now(UTC))
    assert [(d.target, d.event) for d in due] == [("ops", "opened"), ("city", "opened")]  # "closed" waits
    store.record_attempt(due[0].id, error=None, retry_at=None)
    [closing] = store.due_deliveries(datetime.now(UTC))[1:]
    payload = json.loads(closing.payload)
    assert (closing.target, payload["event"], payload["alert"]["status"]) == ("ops", "closed", "closed")
    assert payload["alert"]["closing"]["value"] == 150.0


def test_a_second_open_alert_for_the_same_rule_and_subject_is_refused(
    store: AlertStore, tmp_path: Path
) -> None:
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


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"event":"opened"}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    header = sign(SECRET, body, timestamp=1_700_000_000)
    assert header == f"t=1700000000,v1={expected}"
    assert verify_signature(SECRET, header, body, now=1_700_000_100)
    assert not verify_signature(SECRET, header, body + b" ", now=1_700_000_100)  # body changed
    assert not verify_signature("other", header, body, now=1_700_000_100)  # wrong secret
    assert not verify_signature(SECRET, header, body, now=1_700_000_301)  # replayed 301 s later
    assert not verify_signature(SECRET, "garbage", body, now=1_700_000_000)


def test_backoff_doubles_up_to_its_cap() -> None:
    hook = WebhookConfig(name="ops", url="http://x.test/", secret_env="X", backoff_s=2, max_backoff_s=10)
    assert [backoff(n, hook) for n in (1, 2, 3, 4, 5)] == [2.0, 4.0, 8.0, 10.0, 10.0]


def _deliver(store: AlertStore, hook: WebhookConfig, receiver_count: int, receiver: Receiver) -> None:
    opened = step(None, finding(True, 0, 250.0), severity="critical")
    assert opened.alert is not None
    store.save([(opened.alert, opened.event)], targets={"no2_high": [hook.name]})
    deliverer = Deliverer(store, [hook], {hook.name: SECRET}, poll_s=0.05)
    deliverer.start()
    try:
        receiver.wait_for(receiver_count)
    finally:
        deliverer.stop()


def test_a_webhook_answering_500_is_retried_with_backoff_until_it_takes_the_alert(store: AlertStore) -> None:
    receiver = Receiver(SECRET, fail=2)
    hook = WebhookConfig(name="ops", url=receiver.url, secret_env="X", backoff_s=0.2)
    try:
        started = time.monotonic()
        _deliver(store, hook, 1, receiver)
        elapsed = time.monotonic() - started
    finally:
        receiver.close()
    [got] = receiver.received
    assert got.signature_ok and got.body["event"] == "opened" and got.body["alert"]["value"] == 250.0
    assert receiver.attempts == 3
    assert elapsed >= 0.2 + 0.4  # waited 0.2 s after the first failure and 0.4 s after the second
    [delivery] = store.deliveries(1)
    assert (delivery["status"], delivery["attempts"], delivery["last_error"]) == ("delivered", 3, None)


def test_a_hanging_webhook_is_cut_off_by_its_timeout_and_retried(store: AlertStore) -> None:
    receiver = Receiver(SECRET, hang=1, hang_s=5.0)
    hook = WebhookConfig(name="ops", url=receiver.url, secret_env="X", timeout_s=0.5, backoff_s=0.1)
    try:
        started = time.monotonic()
        _deliver(store, hook, 1, receiver)
        elapsed = time.monotonic() - started
    finally:
        receiver.close()
    assert receiver.attempts == 2 and receiver.received[0].signature_ok
    assert 0.5 <= elapsed < 3.0  # the hang cost one timeout, not the receiver's 5 s
    assert store.deliveries(1)[0]["attempts"] == 2


def test_a_webhook_failing_every_attempt_is_given_up_and_the_error_kept(store: AlertStore) -> None:
    receiver = Receiver(SECRET, fail=10)
    hook = WebhookConfig(name="ops", url=receiver.url, secret_env="X", backoff_s=0.05, max_attempts=3)
    opened = step(None, finding(True, 0, 250.0), severity="critical")
    assert opened.alert is not None
    store.save([(opened.alert, opened.event)], targets={"no2_high": ["ops"]})
    deliverer = Deliverer(store, [hook], {"ops": SECRET}, poll_s=0.05)
    try:
        deadline = time.monotonic() + 10
        while store.delivery_counts().get("failed") != 1 and time.monotonic() < deadline:
            deliverer.deliver_due()
            time.sleep(0.05)
    finally:
        deliverer.stop()
        receiver.close()
    assert store.deliveries(1) == [
        {"target": "ops", "event": "opened", "status": "failed", "attempts": 3, "last_error": "HTTP 500"}
    ]
    assert receiver.attempts == 3
