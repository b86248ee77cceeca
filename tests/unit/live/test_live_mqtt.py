"""MQTT end to end with a real Mosquitto: publish → stored → alert → webhook received (signature
checked), bad messages dead-lettered with their reasons, access without credentials refused, a
flood, a broker restart, and webhooks that hang or fail without holding up ingestion."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from mqtt_harness import OUTSIDER, TOPIC, Publisher, make_twin, observation, running, wait_until
from receiver import Receiver

from civictwin.config import TwinConfig
from civictwin.live.broker import Mosquitto
from civictwin.live.consumer import LiveError
from civictwin.store.alerts import AlertStore, alerts_path
from civictwin.store.observations import open_observations

NO2, PM10, COUNT = 1, 2, 3
SECRET = "webhook-secret"


def stored(config: TwinConfig, datastream: int) -> list[tuple[int, float]]:
    with open_observations(config.store_path, read_only=True) as store:
        frame = store.observations(datastream)
    return list(zip(frame["phenomenon_time"].tolist(), frame["result"].tolist(), strict=True))


def dead_letters(config: TwinConfig) -> list[tuple[str, str]]:
    with open_observations(config.store_path, read_only=True) as store:
        return [(letter.reason, letter.message) for letter in store.dead_letters()]


def ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


THRESHOLD = """
[[rules]]
name = "no2_high"
kind = "threshold"
datastreams = ["no2-koeln"]
above = 200.0
severity = "critical"
"""


def hook(url: str, **options: object) -> str:
    extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in options.items())
    return f'[[webhooks]]\nname = "ops"\nurl = "{url}"\nsecret_file = "hook.secret"\n{extra}'


def test_publish_store_alert_and_signed_webhook(tmp_path: Path, broker: Mosquitto) -> None:
    receiver = Receiver(SECRET)
    config = make_twin(tmp_path, broker, rules=THRESHOLD, webhooks=hook(receiver.url), client="e2e-1")
    publisher = Publisher(broker)
    try:
        with running(config) as consumer:
            for minute, value in ((0, 150.0), (1, 250.0), (2, 120.0)):
                publisher.send(TOPIC.format("no2-koeln"), observation(value, f"2026-03-01T10:0{minute}:00Z"))
            wait_until(lambda: consumer.counters.stored == 3, what="three observations stored")
            deliveries = receiver.wait_for(2)
    finally:
        publisher.close()
        receiver.close()
    assert stored(config, NO2) == [
        (ms("2026-03-01T10:00:00+00:00"), 150.0),
        (ms("2026-03-01T10:01:00+00:00"), 250.0),
        (ms("2026-03-01T10:02:00+00:00"), 120.0),
    ]
    assert [d.body["event"] for d in deliveries] == ["opened", "closed"]
    assert all(d.signature_ok for d in deliveries)
    opened = deliveries[0].body["alert"]
    assert (opened["rule"], opened["subject"], opened["severity"]) == ("no2_high", "datastream:1", "critical")
    assert opened["evidence"] == {"observations": [{"time": "2026-03-01T10:01:00Z", "result": 250.0}]}
    assert deliveries[1].body["alert"]["closing"]["value"] == 120.0
    with AlertStore(alerts_path(config.store_path)) as alerts:
        [alert] = alerts.alerts()
        assert (alert.status, alert.opened_at, alert.closed_at) == (
            "closed", datetime(2026, 3, 1, 10, 1, tzinfo=UTC), datetime(2026, 3, 1, 10, 2, tzinfo=UTC)
        )  # fmt: skip
        assert [d["status"] for d in alerts.deliveries(alert.id or 0)] == ["delivered", "delivered"]


def test_bad_messages_are_dead_lettered_with_their_reason_and_the_consumer_goes_on(
    tmp_path: Path, broker: Mosquitto
) -> None:
    config = make_twin(tmp_path, broker, client="e2e-bad")
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    sends = [
        (TOPIC.format("no2-koeln"), observation(41.0, "2026-03-01T10:00:00Z")),  # valid
        (TOPIC.format("no2-koeln"), observation(41.0, "2026-03-01T10:00:00Z")),  # the same again
        (TOPIC.format("no2-koeln"), observation(44.0, "2026-03-01T10:00:00Z")),  # another value, same time
        (TOPIC.format("no2-koeln"), observation(39.0, "2026-03-01T09:00:00Z")),  # out of order: valid
        (TOPIC.format("no2-koeln"), "{not json"),
        (TOPIC.format("no2-koeln"), json.dumps({"result": 1.0})),
        (TOPIC.format("no2-koeln"), observation(1.0, "2026-03-01T10:05:00")),  # no UTC offset
        (TOPIC.format("no2-koeln"), observation("high", "2026-03-01T10:06:00Z")),  # type: ignore[arg-type]
        (TOPIC.format("nowhere"), observation(1.0, "2026-03-01T10:07:00Z")),
        (TOPIC.format("no2-koeln"), observation(1.0, "2026-03-01T10:08:00Z", unit="mg/m3")),
        (
            TOPIC.format("no2-koeln"),
            observation(1.0, "2026-03-01T10:09:00Z", unit="ug/m3"),
        ),  # valid, unit right
        (TOPIC.format("no2-koeln"), observation(5000.0, "2026-03-01T10:10:00Z")),
        (TOPIC.format("no2-koeln"), observation(1.0, future)),
        (TOPIC.format(NO2), observation(None, "2026-03-01T10:11:00Z")),  # by id, a missing value: valid
    ]
    publisher = Publisher(broker, client_id="bad-sender")
    try:
        with running(config) as consumer:
            for topic, payload in sends:
                publisher.send(topic, payload)
            wait_until(lambda: consumer.counters.received == len(sends), what="every message")
            counters = consumer.counters
    finally:
        publisher.close()
    assert (counters.stored, counters.out_of_order) == (4, 1)
    assert dict(counters.dead_lettered) == {
        "duplicate": 2, "malformed": 4, "unknown_datastream": 1, "wrong_unit": 1, "out_of_range": 1,
        "far_future": 1,
    }  # fmt: skip
    reasons = [reason for reason, _ in dead_letters(config)]
    assert "duplicate: already stored" in reasons
    assert "duplicate: a different result (41) is stored for that time" in reasons
    assert "wrong_unit: unit 'mg/m3'; datastream 'no2-koeln' is in 'ug/m3'" in reasons
    assert "unknown_datastream: no datastream 'nowhere'" in reasons
    assert "malformed: phenomenonTime '2026-03-01T10:05:00' has no UTC offset" in reasons
    assert (
        "malformed: payload is not JSON (Expecting property name enclosed in double quotes at character 1)",
        "{not json",
    ) in dead_letters(config)
    rows = stored(config, NO2)
    assert [value for _, value in rows][:3] == [39.0, 41.0, 1.0] and rows[3][1] != rows[3][1]  # NaN: null
    with open_observations(config.store_path, read_only=True) as store:
        record = store.records("live")["e2e-bad"]
    assert record["total"]["dead_lettered"]["malformed"] == 4 and record["total"]["out_of_order"] == 1


def test_without_credentials_nothing_gets_in_or_out(tmp_path: Path, broker: Mosquitto) -> None:
    refused: dict[str, object] = {}

    def attempt(username: str | None, password: str | None) -> object:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if username:
            client.username_pw_set(username, password)
        client.on_connect = lambda _c, _u, _f, reason, _p: refused.setdefault(str(username), reason)
        client.connect(broker.host, broker.port)
        client.loop_start()
        wait_until(lambda: str(username) in refused, what="the broker's answer")
        client.loop_stop()
        client.disconnect()
        return refused[str(username)]

    assert str(attempt(None, None)) == "Not authorized"
    assert str(attempt("sensor", "wrong")) == "Not authorized"  # Mosquitto 2.0 says the same to both
    # A valid account without rights on city/#: its publications are refused, its subscription gets nothing.
    config = make_twin(tmp_path, broker, client="e2e-acl")
    outsider = Publisher(broker, OUTSIDER, client_id="outsider")
    received: list[bytes] = []
    listener = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id="outsider-listen", protocol=mqtt.MQTTv5
    )
    listener.username_pw_set(OUTSIDER.username, OUTSIDER.password)
    listener.on_message = lambda _c, _u, message: received.append(message.payload)
    listener.connect(broker.host, broker.port)
    listener.loop_start()
    granted: list[object] = []
    listener.on_subscribe = lambda _c, _u, _m, reasons, _p: granted.extend(reasons)  # type: ignore[misc]
    listener.subscribe("city/#", qos=1)
    wait_until(lambda: bool(granted), what="the subscription answer")
    sensor = Publisher(broker, client_id="legit-sensor")
    try:
        with running(config) as consumer:
            info = outsider.send(TOPIC.format("no2-koeln"), observation(999.0, "2026-03-01T10:00:00Z"))
            sensor.send(TOPIC.format("no2-koeln"), observation(42.0, "2026-03-01T11:00:00Z"))
            wait_until(lambda: consumer.counters.received == 1, what="the legitimate message")
            time.sleep(0.3)
            assert consumer.counters.received == 1
    finally:
        listener.loop_stop()
        listener.disconnect()
        outsider.close()
        sensor.close()
    assert str(outsider.acks[info.mid]) == "Not authorized"
    assert received == []  # Mosquitto grants the subscription (QoS 1) but delivers nothing it may not read
    assert stored(config, NO2) == [(ms("2026-03-01T11:00:00+00:00"), 42.0)]
    bad = make_twin(tmp_path / "wrong", broker, client="e2e-wrong")
    (tmp_path / "wrong" / "mqtt.password").write_text("not the password\n")
    with pytest.raises(LiveError, match="refused the connection: Not authorized"), running(bad):
        pass


def test_a_flood_waits_at_the_broker_and_is_stored_whole(tmp_path: Path, broker: Mosquitto) -> None:
    config = make_twin(tmp_path, broker, live="queue_limit = 200\nbatch_size = 100", client="e2e-flood")
    batches: list[int] = []
    publisher = Publisher(broker, client_id="flooder")
    total = 5_000  # 25 times what the consumer may hold unacknowledged
    start = ms("2026-01-01T00:00:00+00:00")
    messages = [(TOPIC.format(COUNT), _payload(start + i * 1000, float(i % 900))) for i in range(total)]
    try:
        with running(config, on_batch=lambda report: batches.append(len(report.stored))) as consumer:
            acknowledged = publisher.send_many(messages)
            wait_until(lambda: consumer.counters.stored == total, timeout_s=120, what="the whole flood")
    finally:
        publisher.close()
    assert acknowledged == total and len(stored(config, COUNT)) == total
    assert max(batches) <= 100 and sum(batches) == total


def _iso(millis: int) -> str:
    return datetime.fromtimestamp(millis / 1000, tz=UTC).isoformat()


def _payload(millis: int, value: float) -> str:
    return json.dumps({"phenomenonTime": _iso(millis), "result": value})


def test_a_broker_restart_or_crash_loses_and_repeats_nothing(tmp_path: Path, broker: Mosquitto) -> None:
    config = make_twin(tmp_path, broker, live="batch_wait_ms = 200", client="e2e-restart")
    start = ms("2026-02-01T00:00:00+00:00")

    def burst(first: int, count: int, client: str) -> int:
        publisher = Publisher(broker, client_id=client)
        try:
            return publisher.send_many(
                [
                    (TOPIC.format(PM10), _payload(start + i * 60_000, float(i)))
                    for i in range(first, first + count)
                ]
            )
        finally:
            publisher.close()

    with running(config) as consumer:
        acknowledged = burst(0, 300, "burst-1")
        broker.restart()  # cleanly, with messages in flight: it saves the consumer's session and queue
        acknowledged += burst(300, 300, "burst-2")
        wait_until(
            lambda: consumer.counters.stored == 600, timeout_s=60, what="the bursts around the restart"
        )
        broker.kill()  # a broker that disappears: the consumer keeps trying
        time.sleep(2.0)
        broker.start()
        acknowledged += burst(600, 300, "burst-3")
        wait_until(lambda: consumer.counters.stored == 900, timeout_s=60, what="the burst after the crash")
        counters = consumer.counters
    rows = stored(config, PM10)
    assert acknowledged == 900
    assert [value for _, value in rows] == [float(i) for i in range(900)]  # zero lost, none twice
    assert counters.connections >= 3 and counters.received == 900 + counters.dead_lettered["duplicate"]


def test_a_hanging_or_failing_webhook_never_holds_up_ingestion(tmp_path: Path, broker: Mosquitto) -> None:
    receiver = Receiver(SECRET, hang=1, hang_s=10.0, fail=1)
    config = make_twin(
        tmp_path,
        broker,
        rules=THRESHOLD,
        webhooks=hook(receiver.url, timeout_s=3.0, backoff_s=0.2),
        client="e2e-hang",
    )
    stored_at: list[float] = []
    publisher = Publisher(broker, client_id="hang-sender")
    try:
        with running(config, on_batch=lambda report: stored_at.extend([report.done_at] * len(report.stored))):
            publisher.send(TOPIC.format("no2-koeln"), observation(300.0, "2026-03-01T10:00:00Z"))
            sent = time.time()
            for minute in range(1, 100):
                publisher.send(
                    TOPIC.format("no2-koeln"),
                    observation(250.0, f"2026-03-01T{10 + minute // 60}:{minute % 60:02d}:00Z"),
                )
            wait_until(lambda: len(stored_at) == 100, what="100 observations")
            all_stored = max(stored_at) - sent
            [delivery] = receiver.wait_for(1, timeout_s=20)
    finally:
        publisher.close()
        receiver.close()
    assert all_stored < 2.0  # the receiver hung for 3 s (its timeout) meanwhile
    assert receiver.attempts == 3 and delivery.signature_ok and delivery.body["event"] == "opened"
    assert delivery.body["alert"]["fired"] == 1  # de-duplicated: 99 more firings, one alert, one delivery


WINDOW_RULES = """
[[rules]]
name = "no2_hourly_limit"
kind = "exceedances"
observed_property = "NO2"
window = "hour"
above = 200.0
allowed = 1

[[rules]]
name = "pm10_silent"
kind = "silence"
datastreams = ["pm10-koeln"]
minutes = 0.05
"""


def test_window_and_silence_rules_run_live(tmp_path: Path, broker: Mosquitto) -> None:
    config = make_twin(tmp_path, broker, rules=WINDOW_RULES, client="e2e-window")
    events: list[tuple[str, str, str]] = []
    publisher = Publisher(broker, client_id="window-sender")
    # Hourly means 10:00 → (150 + 270) / 2 = 210, 11:00 → 180, 12:00 → 230: two above 200, one allowed.
    sends = [("10:10", 150.0), ("10:40", 270.0), ("11:00", 180.0), ("12:30", 230.0)]
    try:
        with running(
            config,
            on_batch=lambda report: events.extend((a.rule, a.subject, str(e)) for a, e in report.events),
        ) as consumer:
            publisher.send(TOPIC.format(PM10), observation(20.0, datetime.now(UTC).isoformat()))
            for clock, value in sends:
                publisher.send(TOPIC.format(NO2), observation(value, f"2026-03-01T{clock}:00Z"))
            wait_until(lambda: consumer.counters.alerts_opened == 2, timeout_s=30, what="two alerts")
            publisher.send(TOPIC.format(PM10), observation(21.0, datetime.now(UTC).isoformat()))
            wait_until(lambda: consumer.counters.alerts_closed == 1, timeout_s=30, what="the silence to end")
    finally:
        publisher.close()
    with AlertStore(alerts_path(config.store_path)) as alerts:
        [limit] = alerts.alerts(rule="no2_hourly_limit")
        [silence] = alerts.alerts(rule="pm10_silent")
    assert (limit.subject, limit.status, limit.value, limit.limit) == ("datastream:1", "open", 2.0, 1.0)
    assert [e["mean"] for e in limit.evidence["exceedances"]] == [210.0, 230.0]
    assert limit.evidence["period"] == {"start": "2026-01-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"}
    assert (silence.subject, silence.status) == ("datastream:2", "closed")
    assert silence.value is not None and silence.value > 0.05  # minutes silent when it opened
    assert ("pm10_silent", "datastream:2", "closed") in events


def test_a_failing_write_is_retried_and_a_stop_meanwhile_loses_nothing(
    tmp_path: Path, broker: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_twin(tmp_path, broker, client="e2e-disk")
    failures = {"left": 2}
    publisher = Publisher(broker, client_id="disk-sender")
    try:
        with running(config) as consumer:
            append = consumer.observations.append

            def flaky(*args: Any, **kwargs: Any) -> Any:
                if failures["left"]:
                    failures["left"] -= 1
                    raise sqlite3.OperationalError("disk I/O error")
                return append(*args, **kwargs)

            monkeypatch.setattr(consumer.observations, "append", flaky)
            for minute in range(5):
                publisher.send(TOPIC.format(PM10), observation(20.0 + minute, f"2026-03-01T10:0{minute}:00Z"))
            wait_until(
                lambda: consumer.counters.stored == 5, what="five observations despite two failed writes"
            )
            assert consumer.counters.write_retries == 2
            failures["left"] = 1_000  # the disk is gone for good: the consumer is stopped while retrying
            publisher.send(TOPIC.format(PM10), observation(99.0, "2026-03-01T11:00:00Z"))
            wait_until(lambda: consumer.counters.write_retries > 2, what="a retry of the sixth")
        with running(config) as again:  # the next run gets the unacknowledged message from the broker
            wait_until(lambda: again.counters.stored == 1, what="the message the stopped run gave up")
    finally:
        publisher.close()
    assert [value for _, value in stored(config, PM10)] == [20.0, 21.0, 22.0, 23.0, 24.0, 99.0]
    assert dead_letters(config) == []
