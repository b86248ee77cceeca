"""The live part of the demo: Helsinki's traffic counts inside the demo area, replayed over a local broker.

``civictwin demo-live DIR`` (after ``civictwin demo --dir DIR``; ``make demo`` runs both):

1. adds, once, to the demo's ``twin.toml`` a ``[[sensors]]`` source for the City of Helsinki traffic
   counts (``../shared/data/counts/helsinki/``, CC BY 4.0) and a rule that fires when a counting
   point sees more than 700 motor vehicles in an hour, and imports the counts inside the demo area
   (matched to the network's directed edges; each year is one typical day);
2. starts Debian's Mosquitto on a free loopback port (fresh random passwords, an ACL per account), the
   consumer of ``civictwin live`` and a replayer that publishes the newest year's typical day of each
   all-motor-vehicle count, one hour of counts every ``step_s`` seconds, stamped with the time it is
   sent, over and over: the viewer's sensors change colour and the morning and evening peaks open
   alerts that close again;
3. serves the twin until Ctrl+C, then stops the replayer, the consumer and the broker.

Without the counts file the twin is served as it is, with a note saying why there is nothing live.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from civictwin.config import TwinConfig
from civictwin.config_live import LiveSection
from civictwin.live.broker import BrokerAccount, Mosquitto
from civictwin.live.consumer import LiveConsumer
from civictwin.live.service import live_consumer
from civictwin.store.observations import open_observations

logger = logging.getLogger(__name__)

COUNTS_FILE = Path("counts") / "helsinki" / "liikennemaarat_2011_2016.csv"
SOURCE_NAME = "helsinki_counts"
BUSY_LIMIT = 700.0
"""Motor vehicles an hour; the busiest directions in the demo area peak at 731–837 (2015 counts)."""
TOPIC_PREFIX = "helsinki/v1.1"
_MARKER = "# --- live demo (civictwin demo-live) ---"
_HELSINKI_CENTRE = (24.9414, 60.1699)
"""Senate Square area: direction 1 of a count is the edge heading towards it."""
_DEMO_SECTIONS = f"""
{_MARKER}
[[sensors]]
name = "{SOURCE_NAME}"
format = "helsinki_counts"
path = "{{path}}"
title = "Traffic counts of the City of Helsinki"
licence = "CC-BY-4.0"
publisher = "City of Helsinki"
steward = "City traffic planning (demo)"
classes = ["autot"]
centre = [{_HELSINKI_CENTRE[0]}, {_HELSINKI_CENTRE[1]}]

[[rules]]
name = "busy_street"
kind = "threshold"
observed_property = "Traffic count: all motor vehicles"
above = {BUSY_LIMIT}
severity = "warning"
description = "More than {BUSY_LIMIT:.0f} motor vehicles an hour past a counting point"
"""


def shared_counts() -> Path:
    """Where the shared Helsinki counts are, beside the repository (``../shared/data/``)."""
    return Path(__file__).resolve().parents[3].parent / "shared" / "data" / COUNTS_FILE


def add_counts(twin_dir: Path, counts: Path) -> TwinConfig:
    """Add the counts source and the demo rule to ``twin.toml`` and import the counts (each once); the config."""
    from civictwin.ingest import add_sensor_source

    section = _DEMO_SECTIONS.format(path=counts.resolve())
    return add_sensor_source(twin_dir, marker=_MARKER, section=section, source=SOURCE_NAME)


@dataclass(frozen=True)
class ReplayHour:
    """One hour of the typical day: each datastream's count (vehicles in that hour)."""

    hour: int
    counts: dict[int, float]


def typical_day(config: TwinConfig) -> list[ReplayHour]:
    """The newest year's 24 hourly all-motor-vehicle counts of every imported counting direction."""
    with open_observations(config, read_only=True) as store:
        infos = [
            d
            for d in store.datastreams()
            if d.dataset == SOURCE_NAME and d.properties.get("vehicle_class") == "autot"
        ]
        latest = store.latest([d.id for d in infos])
        if latest.empty:
            return []
        newest = int(latest["phenomenon_time"].max())
        start = newest - 23 * 3_600_000
        hours: list[dict[int, float]] = [{} for _ in range(24)]
        for info in infos:
            frame = store.observations(info.id, start=start, end=newest + 1)
            for moment, value in zip(
                frame["phenomenon_time"].tolist(), frame["result"].tolist(), strict=True
            ):
                if not math.isnan(value):
                    hours[(int(moment) - start) // 3_600_000][info.id] = float(value)
    return [ReplayHour(hour, counts) for hour, counts in enumerate(hours)]


class Replayer:
    """Publishes the typical day, one hour every ``step_s`` seconds, stamped now, until stopped."""

    def __init__(
        self, broker: Mosquitto, account: BrokerAccount, day: list[ReplayHour], *, step_s: float
    ) -> None:
        self.day = day
        self.step_s = step_s
        self.published = 0
        self._stop = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="civictwin-demo-replay", protocol=mqtt.MQTTv5
        )
        self._client.username_pw_set(account.username, account.password)
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, name="civictwin-demo-replay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for hour in self.day:
                stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
                for datastream, count in hour.counts.items():
                    payload = json.dumps(
                        {"phenomenonTime": stamp, "result": count, "replayed_hour": hour.hour}
                    )
                    self._client.publish(
                        f"{TOPIC_PREFIX}/Datastreams({datastream})/Observations", payload, qos=1
                    )
                    self.published += 1
                if self._stop.wait(self.step_s):
                    return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._client.disconnect()
        self._client.loop_stop()


@contextmanager
def live_demo(
    config: TwinConfig,
    *,
    step_s: float = 2.0,
    on_ready: Callable[[LiveConsumer, Replayer], None] | None = None,
) -> Iterator[Replayer]:
    """A broker, the consumer and the replayer for the demo twin, all stopped at the end of the block."""
    folder = config.base_dir / "live-demo"
    consumer_account = BrokerAccount("civictwin", secrets.token_urlsafe(18), read=(f"{TOPIC_PREFIX}/#",))
    replay_account = BrokerAccount("replay", secrets.token_urlsafe(18), write=(f"{TOPIC_PREFIX}/#",))
    broker = Mosquitto(folder / "broker", accounts=[consumer_account, replay_account])
    broker.write_files()  # new passwords each run
    broker.start()
    password_file = folder / "consumer.password"
    password_file.write_text(consumer_account.password + "\n", encoding="utf-8")
    password_file.chmod(0o600)
    live = LiveSection(
        broker=f"{broker.host}:{broker.port}",
        username=consumer_account.username,
        password_file=str(password_file.relative_to(config.base_dir)),
        topics=[f"{TOPIC_PREFIX}/#"],
        client_id="civictwin-demo",
    )
    try:
        with live_consumer(config.model_copy(update={"live": live})) as consumer:
            worker = threading.Thread(target=consumer.run, name="civictwin-demo-consumer", daemon=True)
            worker.start()
            consumer.subscribed.wait(30)
            replayer = Replayer(broker, replay_account, typical_day(config), step_s=step_s)
            replayer.start()
            try:
                if on_ready is not None:
                    on_ready(consumer, replayer)
                yield replayer
            finally:
                replayer.stop()
                consumer.stop()
                worker.join(30)
    finally:
        broker.stop()
