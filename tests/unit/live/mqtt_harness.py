"""Helpers of the live tests: broker accounts, a twin directory with its datastreams, an MQTT
publisher, and a consumer running in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from civictwin.config import TwinConfig, load_config
from civictwin.live.broker import BrokerAccount, Mosquitto
from civictwin.live.consumer import BatchReport, LiveConsumer
from civictwin.live.service import live_consumer
from civictwin.store.observations import (
    DatasetSpec,
    DatastreamSpec,
    LocationSpec,
    ObservedPropertySpec,
    SensorSpec,
    ThingSpec,
    Unit,
    open_observations,
)

CONSUMER = BrokerAccount("civictwin", "consumer-pw", read=("city/#",))
SENSOR = BrokerAccount("sensor", "sensor-pw", write=("city/#",))
OUTSIDER = BrokerAccount("outsider", "outsider-pw", read=("other/#",), write=("other/#",))
TOPIC = "city/v1.1/Datastreams({})/Observations"


def datastream(
    key: str, prop: str, unit: str, dataset: str, *, valid: tuple[float | None, float | None]
) -> DatastreamSpec:
    location = LocationSpec(f"loc-{key}", f"Station {key}", 6.95, 50.94)
    return DatastreamSpec(
        key=key,
        name=f"{prop} at {key}",
        dataset=dataset,
        thing=ThingSpec(f"thing-{key}", f"Station {key}", location),
        sensor=SensorSpec(f"sensor-{prop}", f"{prop} analyser"),
        observed_property=ObservedPropertySpec(prop.lower(), prop, f"https://example.org/{prop}"),
        unit=Unit(unit, unit, unit),
        valid_range=valid,
    )


def make_twin(
    folder: Path,
    broker: Mosquitto,
    *,
    rules: str = "",
    webhooks: str = "",
    live: str = "",
    client: str = "civictwin-test",
) -> TwinConfig:
    """A twin directory whose consumer listens to ``broker``, with three datastreams (ids 1, 2, 3)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mqtt.password").write_text(CONSUMER.password + "\n")
    (folder / "hook.secret").write_text("webhook-secret\n")
    (folder / "twin.toml").write_text(
        f"""
[twin]
name = "live test"

[area]
bbox = [6.9, 50.9, 7.0, 51.0]

[[sources]]
name = "osm"
kind = "osm"
path = "none.osm.pbf"
licence = "ODbL-1.0"
publisher = "OpenStreetMap contributors"
steward = "tests"

[live]
broker = "{broker.host}:{broker.port}"
username = "{CONSUMER.username}"
password_file = "mqtt.password"
topics = ["city/#"]
client_id = "{client}"
{live if "batch_wait_ms" in live else "batch_wait_ms = 20" + chr(10) + live}
{rules}
{webhooks}
"""
    )
    config = load_config(folder)
    with open_observations(config.store_path) as store:
        store.ensure_dataset(DatasetSpec("air", "Air quality", "UBA", "Air team", "dl-de/by-2-0", "public"))
        store.ensure_dataset(
            DatasetSpec("traffic", "Counts", "City", "Traffic team", "CC-BY-4.0", "internal")
        )
        store.ensure_datastream(datastream("no2-koeln", "NO2", "ug/m3", "air", valid=(0.0, 1000.0)))
        store.ensure_datastream(datastream("pm10-koeln", "PM10", "ug/m3", "air", valid=(0.0, 1000.0)))
        store.ensure_datastream(
            datastream("count-c18", "Vehicles", "{vehicle}/h", "traffic", valid=(0.0, None))
        )
    return config


class Publisher:
    """An MQTT 5 client that publishes with QoS 1 and remembers each PUBACK's reason code."""

    def __init__(
        self, broker: Mosquitto, account: BrokerAccount = SENSOR, client_id: str = "test-sensor"
    ) -> None:
        self.acks: dict[int, Any] = {}
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(account.username, account.password)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.on_publish = self._on_publish
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_publish(self, _client: Any, _userdata: Any, mid: int, reason: Any, _properties: Any) -> None:
        with self._lock:
            self.acks[mid] = reason

    def send(self, topic: str, payload: str | bytes, *, wait: bool = True) -> mqtt.MQTTMessageInfo:
        info = self.client.publish(topic, payload, qos=1)
        if wait:
            info.wait_for_publish(10)
        return info

    def send_many(self, messages: list[tuple[str, str]], *, window: int = 500) -> int:
        """Publish all, at most ``window`` unacknowledged at a time (paho slows down with long queues);
        returns how many of them the broker acknowledged."""
        sent: list[mqtt.MQTTMessageInfo] = []
        for count, (topic, payload) in enumerate(messages, start=1):
            sent.append(self.client.publish(topic, payload, qos=1))
            if count >= window:
                sent[count - window].wait_for_publish(30)
        for info in sent:
            info.wait_for_publish(30)
        with self._lock:
            return sum(1 for info in sent if not self.acks[info.mid].is_failure)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def observation(value: float | None, time: str, **extra: Any) -> str:
    import json

    return json.dumps({"phenomenonTime": time, "result": value, **extra})


def wait_until(predicate: Callable[[], bool], *, timeout_s: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def running(
    config: TwinConfig, on_batch: Callable[[BatchReport], None] | None = None
) -> Iterator[LiveConsumer]:
    """A consumer running in a thread, stopped (and its errors raised) at the end."""
    errors: list[BaseException] = []
    with live_consumer(config, on_batch=on_batch) as consumer:

        def run() -> None:
            try:
                consumer.run()
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        wait_until(lambda: consumer.subscribed.is_set() or bool(errors), what="the consumer to subscribe")
        try:
            yield consumer
        finally:
            consumer.stop()
            thread.join(20)
    if errors:
        raise errors[0]
