"""Alerts: opened by a firing finding, de-duplicated while it persists, closed when it clears; webhooks
signed, retried with backoff, and given up. The alert database itself (alerts with their evidence,
deliveries, API rules) is tested on both backends in tests/unit/store/test_alert_store_backends.py."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alert_findings import finding
from receiver import Receiver

from civictwin.config_live import WebhookConfig
from civictwin.live.alerts import step
from civictwin.live.webhooks import Deliverer, backoff, sign, verify_signature
from civictwin.store.alerts import AlertEvent, AlertStatus, AlertStore

SECRET = "s3cret-for-tests"


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
