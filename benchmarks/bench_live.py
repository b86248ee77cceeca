"""Live ingestion benchmark: sustained MQTT rates, publish → stored and publish → alert latency.

Reproduce (the numbers recorded in BENCHMARKS.md):

    .venv/bin/python benchmarks/bench_live.py --rates 1000 2000 3000 5000 --duration 60

Setup, all real and local: Debian's Mosquitto (``civictwin.live.broker.Mosquitto``: password file,
ACL, persistence) on a loopback port; the consumer of ``civictwin live`` (``live_consumer``, QoS 1,
persistent session, store-then-acknowledge, the rule engine and its alert store) in its own process;
``--publishers`` publisher processes (paho-mqtt, QoS 1) sharing the target rate, each pacing its
messages evenly. ``--datastreams`` datastreams are spread over the publishers; one threshold rule
(above 100) watches them all, and every 50th observation of a datastream is 500 (then 10 again), so
alerts open and close all the time.

Per rate, for ``--duration`` seconds:

- *published*: messages the broker acknowledged (PUBACK) to the publishers; *rate held*: published
  per second of publishing;
- *stored*: observations the consumer stored (its counters and the store agree, checked); *lost* =
  published − stored; *duplicates* = rows the store holds beyond the distinct observations (always 0
  by the primary key; the consumer's dead-lettered duplicates are reported too);
- *publish → stored*: from the publisher's ``publish()`` call to the end of the transaction that
  stored the observation (the consumer acknowledges right after); *publish → alert*: from the
  ``publish()`` of the observation that fired an alert to the commit of that alert (its webhook
  deliveries are queued in the same commit). p50, p95 and p99 in ms; clocks are one machine's.
- *drained*: seconds after the last publish until everything published was stored.

A rate is *held without loss* when nothing published was lost and the consumer drained within
``--drain-limit`` seconds (it kept pace instead of falling behind). Publishers keep at most 256
messages in flight (paho walks its whole queue on every acknowledgement), and the broker saves its
database every minute and on a clean stop (``autosave_interval 60``).

``--capacity``: the consumer alone, without the network: ``LiveConsumer.process`` on batches of
``--batch`` ready-made messages (parse, store with ``synchronous=FULL``, the threshold rule, its
alerts), messages per second over ``--capacity-messages``; what the consumer could take if broker and
publishers kept up. Everything lives in a temporary folder removed at the end.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from civictwin.config import load_config
from civictwin.live.broker import BrokerAccount, Mosquitto
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

CONSUMER = BrokerAccount("civictwin", "bench-consumer", read=("bench/#",))
PUBLISHER = BrokerAccount("sensor", "bench-sensor", write=("bench/#",))
SPIKE_EVERY = 50
THRESHOLD = 100.0
WINDOW = 256
"""Unacknowledged messages a publisher keeps in flight."""
AUTOSAVE_S = 60
"""Mosquitto saves its in-memory database every minute (and on a clean stop), not every second."""
BASE_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z: observation times count up from here, one ms apart


def _twin(folder: Path, broker: Mosquitto, datastreams: int, run: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "mqtt.password").write_text(CONSUMER.password + "\n")
    (folder / "twin.toml").write_text(
        f"""[twin]
name = "bench live {run}"
[area]
bbox = [24.9, 60.1, 25.0, 60.2]
[[sources]]
name = "osm"
kind = "osm"
path = "none.osm.pbf"
licence = "ODbL-1.0"
publisher = "OpenStreetMap contributors"
steward = "bench"
[live]
broker = "{broker.host}:{broker.port}"
username = "{CONSUMER.username}"
password_file = "mqtt.password"
topics = ["bench/#"]
client_id = "bench-{run}"
[[rules]]
name = "spike"
kind = "threshold"
above = {THRESHOLD}
"""
    )
    config = load_config(folder)
    with open_observations(config.store_path) as store:
        store.ensure_dataset(DatasetSpec("bench", "Bench", "bench", "bench", "CC0-1.0", "public"))
        for i in range(datastreams):
            location = LocationSpec(f"l{i}", f"s{i}", 24.95, 60.17)
            store.ensure_datastream(
                DatastreamSpec(
                    key=f"s{i}",
                    name=f"sensor {i}",
                    dataset="bench",
                    thing=ThingSpec(f"t{i}", f"s{i}", location),
                    sensor=SensorSpec("bench", "bench"),
                    observed_property=ObservedPropertySpec("level", "level", "level"),
                    unit=Unit("1", "one", "1"),
                )
            )
    return folder


def _consume(twin: str, ready: Any, stop: Any, out: str) -> None:
    """The consumer process: record when each observation was stored and each alert saved."""
    from civictwin.live.service import live_consumer

    stored: list[tuple[int, int, float]] = []
    alerts: list[tuple[int, int, float]] = []

    def on_batch(report: Any) -> None:
        stored.extend((r.datastream_id, r.phenomenon_time, report.done_at) for r in report.stored)
        for alert, event in report.events:
            if str(event) == "opened":
                moment = alert.opened_at.timestamp() * 1000
                alerts.append((int(alert.subject.split(":")[1]), round(moment), report.done_at))

    config = load_config(Path(twin))
    with live_consumer(config, on_batch=on_batch) as consumer:
        worker = threading.Thread(target=consumer.run, daemon=True)
        worker.start()
        consumer.subscribed.wait(60)
        ready.set()
        stop.wait()
        consumer.stop()
        worker.join(120)
        counters = consumer.counters.as_json()
    np.savez(
        out, stored=np.array(stored, dtype=np.float64).reshape(-1, 3), alerts=np.array(alerts).reshape(-1, 3)
    )
    Path(out + ".json").write_text(json.dumps(counters))


def _publish(
    host: str, port: int, ids: list[int], rate: float, duration: float, start_at: float, out: str
) -> None:
    """One publisher process: ``rate`` messages a second, round-robin over ``ids``, for ``duration`` s."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{ids[0]}", protocol=mqtt.MQTTv5)
    client.username_pw_set(PUBLISHER.username, PUBLISHER.password)
    client.max_inflight_messages_set(WINDOW)
    client.connect(host, port)
    client.loop_start()
    count = int(rate * duration)
    sent = np.zeros((count, 3), dtype=np.float64)
    sequence = dict.fromkeys(ids, 0)
    infos = []
    while time.time() < start_at:
        time.sleep(0.001)
    for n in range(count):
        due = start_at + n / rate
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        ds = ids[n % len(ids)]
        seq = sequence[ds] = sequence[ds] + 1
        value = 500.0 if seq % SPIKE_EVERY == 0 else 10.0
        stamp = BASE_MS + seq
        payload = f'{{"phenomenonTime": "{_iso(stamp)}", "result": {value}}}'
        sent[n] = (ds, stamp, time.time())
        infos.append(client.publish(f"bench/v1.1/Datastreams({ds})/Observations", payload, qos=1))
        if len(infos) > WINDOW:  # paho walks its whole queue on every PUBACK: keep it short
            infos[-WINDOW].wait_for_publish(60)
    for info in infos:
        info.wait_for_publish(120)
    published_s = time.time() - start_at
    ok = np.array([info.is_published() for info in infos], dtype=bool)
    client.disconnect()
    client.loop_stop()
    np.savez(out, sent=sent[ok], published_s=np.array([published_s]))


def _iso(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


@dataclass(frozen=True)
class Result:
    rate: float
    published: int
    held: float
    stored: int
    lost: int
    duplicates_stored: int
    duplicates_dead_lettered: int
    stored_ms: tuple[float, float, float]
    alert_ms: tuple[float, float, float]
    alerts: int
    drained_s: float


def run_rate(folder: Path, broker: Mosquitto, args: argparse.Namespace, rate: float) -> Result:
    twin = _twin(folder / f"twin-{int(rate)}", broker, args.datastreams, str(int(rate)))
    context = mp.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    consumer_out = str(folder / f"consumer-{int(rate)}")
    consumer = context.Process(target=_consume, args=(str(twin), ready, stop, consumer_out))
    consumer.start()
    if not ready.wait(120):
        raise SystemExit("the consumer did not subscribe within 120 s")
    start_at = time.time() + 2.0
    share = rate / args.publishers
    outputs, publishers = [], []
    for p in range(args.publishers):
        ids = list(range(p + 1, args.datastreams + 1, args.publishers))
        out = str(folder / f"pub-{int(rate)}-{p}")
        outputs.append(out)
        proc = context.Process(
            target=_publish, args=(broker.host, broker.port, ids, share, args.duration, start_at, out)
        )
        proc.start()
        publishers.append(proc)
    for proc in publishers:
        proc.join()
    sent = np.concatenate([np.load(out + ".npz")["sent"] for out in outputs])
    published_s = max(float(np.load(out + ".npz")["published_s"][0]) for out in outputs)
    last_publish = float(sent[:, 2].max()) if len(sent) else time.time()
    config = load_config(twin)
    deadline = time.time() + args.drain_wait
    while time.time() < deadline and _count(config.store_path) < len(sent):
        time.sleep(0.2)
    stop.set()
    consumer.join(300)
    data = np.load(consumer_out + ".npz")
    counters = json.loads(Path(consumer_out + ".json").read_text())
    stored, alerts = data["stored"], data["alerts"]
    in_store = _count(config.store_path)
    sent_at = {(int(d), int(t)): s for d, t, s in sent}
    stored_lat = [
        (done - sent_at[(int(d), int(t))]) * 1000 for d, t, done in stored if (int(d), int(t)) in sent_at
    ]
    alert_lat = [
        (done - sent_at[(int(d), int(t))]) * 1000 for d, t, done in alerts if (int(d), int(t)) in sent_at
    ]
    drained = float(stored[:, 2].max()) - last_publish if len(stored) else float("nan")
    return Result(
        rate=rate,
        published=len(sent),
        held=len(sent) / published_s,
        stored=in_store,
        lost=len(sent) - in_store,
        duplicates_stored=len(stored) - len({(int(d), int(t)) for d, t, _ in stored}),
        duplicates_dead_lettered=int(counters["dead_lettered"].get("duplicate", 0)),
        stored_ms=_percentiles(stored_lat),
        alert_ms=_percentiles(alert_lat),
        alerts=len(alerts),
        drained_s=max(drained, 0.0),
    )


def _count(store_path: Path) -> int:
    with open_observations(store_path, read_only=True) as store:
        return sum(store.counts().values())


def _percentiles(values: list[float]) -> tuple[float, float, float]:
    if not values:
        return (float("nan"),) * 3
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return float(p50), float(p95), float(p99)


def capacity(folder: Path, args: argparse.Namespace) -> float:
    """Messages a second the consumer handles on its own (no broker, no network)."""
    from civictwin.config_live import LiveSection
    from civictwin.live.consumer import LiveConsumer, Message
    from civictwin.live.engine import RuleEngine
    from civictwin.store.alerts import AlertStore, alerts_path

    twin = _twin(
        folder / "capacity", Mosquitto(folder / "unused", accounts=[CONSUMER]), args.datastreams, "cap"
    )
    config = load_config(twin)
    observations = open_observations(config.store_path)
    alerts = AlertStore(alerts_path(config.store_path))
    engine = RuleEngine(
        config.rules, datastreams=observations.datastreams(), observations=observations, alerts=alerts
    )
    settings = LiveSection(broker="127.0.0.1:1", username="bench", password_env="HOME", topics=["bench/#"])
    consumer = LiveConsumer(
        settings, password="", client_id="bench", observations=observations, engine=engine
    )
    batches = []
    for b in range(args.capacity_messages // args.batch):
        batch = []
        for j in range(args.batch):
            n = b * args.batch + j
            ds, seq = n % args.datastreams + 1, n // args.datastreams + 1
            value = 500.0 if seq % SPIKE_EVERY == 0 else 10.0
            payload = f'{{"phenomenonTime": "{_iso(BASE_MS + seq)}", "result": {value}}}'.encode()
            batch.append(Message(f"bench/v1.1/Datastreams({ds})/Observations", payload, j, 1, False, 0, 0))
        batches.append(batch)
    started = time.perf_counter()
    for batch in batches:
        consumer.process(batch)
    elapsed = time.perf_counter() - started
    alerts.close()
    observations.close()
    return consumer.counters.stored / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", type=float, nargs="+", default=[1000, 2000, 3000, 5000])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of publishing per rate")
    parser.add_argument("--datastreams", type=int, default=100)
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes")
    parser.add_argument(
        "--drain-limit", type=float, default=2.0, help="seconds the consumer may lag and still hold"
    )
    parser.add_argument(
        "--drain-wait", type=float, default=120.0, help="longest wait for the consumer to catch up"
    )
    parser.add_argument("--capacity", action="store_true", help="measure the consumer alone instead")
    parser.add_argument("--capacity-messages", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500, help="--capacity: messages per batch")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-live-"))
    if args.capacity:
        try:
            rate = capacity(folder, args)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        print(
            f"Consumer alone: {rate:,.0f} messages/s ({args.capacity_messages:,} messages in batches of "
            f"{args.batch}, {args.datastreams} datastreams, one threshold rule)"
        )
        return
    broker = Mosquitto(folder / "broker", accounts=[CONSUMER, PUBLISHER], autosave_interval_s=AUTOSAVE_S)
    results = []
    try:
        broker.start()
        for rate in args.rates:
            print(f"rate {rate:.0f}/s for {args.duration:.0f} s …", file=sys.stderr, flush=True)
            results.append(run_rate(folder, broker, args, rate))
    finally:
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)
    _report(results, args)


def _report(results: list[Result], args: argparse.Namespace) -> None:
    print(
        f"#### MQTT ingestion: {args.datastreams} datastreams, {args.publishers} publisher processes, "
        f"{args.duration:.0f} s per rate, QoS 1, one threshold rule\n"
    )
    print(
        "| target /s | published | rate held /s | stored | lost | duplicates stored (dead-lettered) "
        "| publish → stored p50 / p95 / p99 ms | alerts | publish → alert p50 / p95 / p99 ms | drained s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r.rate:,.0f} | {r.published:,} | {r.held:,.0f} | {r.stored:,} | {r.lost:,} | "
            f"{r.duplicates_stored} ({r.duplicates_dead_lettered}) | {_ms(r.stored_ms)} | {r.alerts:,} | "
            f"{_ms(r.alert_ms)} | {r.drained_s:.2f} |"
        )
    held = [r for r in results if r.lost == 0 and r.drained_s <= args.drain_limit]
    best = max((r.held for r in held), default=0.0)
    print(f"\nHighest rate held without loss (drained within {args.drain_limit:g} s): {best:,.0f} messages/s")


def _ms(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:.0f}" for v in values)


if __name__ == "__main__":
    main()
