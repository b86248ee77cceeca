"""The live consumer: MQTT messages in, observations stored, dead letters kept, rules judged.

Delivery guarantee, end to end: the consumer subscribes with QoS 1 on a persistent session (MQTT 5,
``clean_start`` false, a session expiry of days) and acknowledges a message only after the
observation store has committed its batch to disk. A message the consumer received but had not
acknowledged when it, the broker or the network died is sent again by the broker; the store's
(datastream, phenomenon time) key makes that second copy a duplicate, stored nothing and
dead-lettered as such. So nothing acknowledged is lost and nothing is stored twice.

Threads: paho's network thread only queues messages; this module's writer thread parses them, writes
a batch in one transaction, acknowledges, then judges the rules (:class:`~civictwin.live.engine.RuleEngine`);
webhooks are sent by :class:`~civictwin.live.webhooks.Deliverer` from its own threads, so a slow
receiver never holds up ingestion. The broker never sends more unacknowledged messages than the
consumer's queue holds (MQTT 5 *Receive Maximum*), so a flood waits at the broker (in the session's
queue), not in memory. A failed write (a locked or full disk) is retried with backoff and nothing is
acknowledged until it succeeds.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from civictwin.config_live import LiveSection
from civictwin.errors import CivicTwinError
from civictwin.live.engine import Outcome, RuleEngine
from civictwin.live.messages import STORE_REASONS, Reading, Reason, Rejected, datastream_index, parse_message
from civictwin.store.alerts import Alert, AlertEvent
from civictwin.store.observations import DeadLetter, ObservationBatch, ObservationStore, iso

logger = logging.getLogger(__name__)

MQTT_RECEIVE_MAXIMUM = 65_535
"""The largest Receive Maximum MQTT 5 allows."""
_LOGIN_REFUSED = frozenset({0x85, 0x86, 0x87})
"""CONNACK reasons that retrying cannot cure: client id not valid, bad user name or password, not authorised."""


class _GaveUp(Exception):
    """Asked to stop while a failing write was being retried: the batch stays unacknowledged."""


class LiveError(CivicTwinError):
    """The consumer cannot run: the broker refused its credentials or its subscriptions."""


@dataclass(frozen=True)
class Message:
    """One received MQTT message, with what acknowledging it needs."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    dup: bool
    received_ms: int
    connection: int
    """Which connection it came on: an acknowledgement only makes sense on that one."""


@dataclass
class Counters:
    """What the consumer did since it started (the live part of the quality record)."""

    received: int = 0
    stored: int = 0
    out_of_order: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)
    acknowledged: int = 0
    batches: int = 0
    write_retries: int = 0
    connections: int = 0
    alerts_opened: int = 0
    alerts_closed: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "stored": self.stored,
            "out_of_order": self.out_of_order,
            "dead_lettered": dict(sorted(self.dead_lettered.items())),
            "acknowledged": self.acknowledged,
            "batches": self.batches,
            "write_retries": self.write_retries,
            "connections": self.connections,
            "alerts_opened": self.alerts_opened,
            "alerts_closed": self.alerts_closed,
        }


@dataclass(frozen=True)
class BatchReport:
    """What one batch did, for observers (tests, the benchmark): stored readings and alert events."""

    stored: list[Reading]
    rejected: list[Rejected]
    events: list[tuple[Alert, AlertEvent]]
    done_at: float
    """``time.time()`` when the batch was stored and its alerts saved."""


class LiveConsumer:
    """Subscribes to the configured topics and stores what arrives, until :meth:`stop`."""

    def __init__(
        self,
        settings: LiveSection,
        *,
        password: str,
        client_id: str,
        observations: ObservationStore,
        engine: RuleEngine,
        on_batch: Callable[[BatchReport], None] | None = None,
        on_alerts: Callable[[], None] | None = None,
        on_tick: Callable[[LiveConsumer], None] | None = None,
        tick_s: float = 1.0,
    ) -> None:
        self.settings = settings
        self.observations = observations
        self.engine = engine
        self.counters = Counters()
        self.on_batch = on_batch
        self.on_alerts = on_alerts
        self.on_tick = on_tick
        self.tick_s = tick_s
        self._index = datastream_index(observations.datastreams())
        self._index_read_at = time.monotonic()
        self._queue: queue.Queue[Message] = queue.Queue(maxsize=settings.queue_limit)
        self._stop = threading.Event()
        self._connection = 0
        self._fatal: str | None = None
        self._connected_once = False
        self.subscribed = threading.Event()
        """Set once the broker has granted the subscriptions (messages published from then on arrive)."""
        self._client = self._make_client(password, client_id)

    # ---- MQTT ---------------------------------------------------------------------------------------

    def _make_client(self, password: str, client_id: str) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        client.username_pw_set(self.settings.username, password)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        return client

    def _connect_properties(self) -> Properties:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.settings.session_expiry_s
        properties.ReceiveMaximum = min(self.settings.queue_limit, MQTT_RECEIVE_MAXIMUM)
        return properties

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, flags: Any, reason: ReasonCode, _properties: Any
    ) -> None:
        if reason.is_failure:
            logger.warning("broker %s refused the connection: %s", self.settings.broker, reason)
            if not self._connected_once and reason.value in _LOGIN_REFUSED:
                self._fatal = f"broker {self.settings.broker} refused the connection: {reason}"
                self._stop.set()
            return
        self._connected_once = True
        self._connection += 1
        self.counters.connections += 1
        logger.info(
            "connected to %s (session %s)",
            self.settings.broker,
            "resumed" if flags.session_present else "new",
        )
        client.subscribe([(topic, SubscribeOptions(qos=1)) for topic in self.settings.topics])

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, reasons: list[ReasonCode], _properties: Any
    ) -> None:
        refused = [
            f"{topic} ({reason})"
            for topic, reason in zip(self.settings.topics, reasons, strict=False)
            if reason.is_failure
        ]
        if refused:
            self._fatal = f"broker {self.settings.broker} refused the subscription to {', '.join(refused)}"
            self._stop.set()
            return
        self.subscribed.set()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._queue.put(
            Message(
                topic=message.topic,
                payload=bytes(message.payload),
                mid=message.mid,
                qos=message.qos,
                dup=bool(message.dup),
                received_ms=round(time.time() * 1000),
                connection=self._connection,
            )
        )

    def _on_disconnect(self, *_: Any) -> None:
        if not self._stop.is_set():
            logger.warning("lost the connection to %s; reconnecting", self.settings.broker)

    # ---- running ------------------------------------------------------------------------------------

    def run(self) -> None:
        """Connect and consume until :meth:`stop` (or a refusal by the broker, raised as :class:`LiveError`)."""
        self._client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=30,
            clean_start=False,
            properties=self._connect_properties(),
        )
        self._client.loop_start()
        next_tick = time.monotonic() + self.tick_s
        try:
            while not self._stop.is_set():
                batch = self._take(block=True)
                if batch:
                    self.process(batch)
                if time.monotonic() >= next_tick:
                    self._tick()
                    next_tick = time.monotonic() + self.tick_s
            self._drain()
        except _GaveUp:
            logger.warning("stopped with a batch not stored: the broker will send it again")
        finally:
            self._client.disconnect()
            self._client.loop_stop()
        if self._fatal:
            raise LiveError(self._fatal)

    def stop(self) -> None:
        """Finish the batch at hand, store and acknowledge what is queued, and disconnect."""
        self._stop.set()

    def _drain(self) -> None:
        if self._fatal:
            return
        while True:
            batch = self._take(block=False)
            if not batch:
                return
            self.process(batch)

    def _take(self, *, block: bool) -> list[Message]:
        """Up to ``batch_size`` messages: the first waited for (briefly), the rest within ``batch_wait_ms``."""
        try:
            first = self._queue.get(timeout=0.1) if block else self._queue.get_nowait()
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.settings.batch_wait_ms / 1000
        while len(batch) < self.settings.batch_size:
            remaining = deadline - time.monotonic()
            try:
                batch.append(
                    self._queue.get(timeout=remaining)
                    if remaining > 0 and block
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
        return batch

    def process(self, batch: list[Message]) -> None:
        """Handle one batch of received messages: parse, store durably, acknowledge, then judge the rules,
        in that order (the writer thread calls it; the benchmark calls it directly)."""
        self.counters.received += len(batch)
        readings, rejected = self._parse(batch)
        stored, rejected = self._write(readings, rejected)
        self._acknowledge(batch)
        outcome = self._judge(stored)
        self.counters.batches += 1
        self.counters.stored += len(stored)
        self.counters.out_of_order += outcome.out_of_order
        for item in rejected:
            self.counters.dead_lettered[str(item.reason)] += 1
        if self.on_batch is not None:
            self.on_batch(BatchReport(stored, rejected, outcome.events, time.time()))

    def _parse(self, batch: Sequence[Message]) -> tuple[list[Reading], list[Rejected]]:
        readings: list[Reading] = []
        rejected: list[Rejected] = []
        for message in batch:
            parsed = parse_message(
                message.topic, message.payload, datastreams=self._index, received_ms=message.received_ms
            )
            if isinstance(parsed, Rejected) and parsed.reason is Reason.UNKNOWN_DATASTREAM:
                parsed = self._retry_unknown(message, parsed)
            if isinstance(parsed, Reading):
                readings.append(parsed)
            else:
                rejected.append(parsed)
        return readings, rejected

    def _retry_unknown(self, message: Message, parsed: Rejected) -> Reading | Rejected:
        """A datastream created after start-up (by an import): look again (at most once a second)."""
        if time.monotonic() - self._index_read_at < 1.0:
            return parsed
        self._index_read_at = time.monotonic()
        self._index = datastream_index(self.observations.datastreams())
        self.engine.set_datastreams(list({info.id: info for info in self._index.values()}.values()))
        return parse_message(
            message.topic, message.payload, datastreams=self._index, received_ms=message.received_ms
        )

    def _write(
        self, readings: list[Reading], rejected: list[Rejected]
    ) -> tuple[list[Reading], list[Rejected]]:
        """Append new readings and dead-letter the rest in durable transactions, retrying until it works.

        A write that fails (a locked, full or vanished disk) is retried with backoff; nothing is
        acknowledged meanwhile. Asked to stop while retrying, the consumer gives the batch up
        unacknowledged (:class:`_GaveUp`): the broker sends it again to the next run.
        """
        delay = 0.1
        while True:
            try:
                return self._write_once(readings, rejected)
            except Exception as exc:
                self.counters.write_retries += 1
                logger.error("storing a batch failed (%s); retrying in %.1f s", exc, delay)
                if self._stop.wait(delay):
                    raise _GaveUp from exc
                delay = min(delay * 2, 10.0)

    def _write_once(
        self, readings: list[Reading], rejected: list[Rejected]
    ) -> tuple[list[Reading], list[Rejected]]:
        fresh, repeated = self._split_duplicates(readings)
        rejected = rejected + repeated
        stored: list[Reading] = []
        if fresh:
            result = self.observations.append(
                _batch(fresh), origin=f"mqtt:{self.settings.broker}", max_future_s=self.settings.max_future_s
            )
            if result.duplicates:  # stored meanwhile by another writer (an import): stored nothing twice
                logger.warning("%d observations were stored already by another writer", result.duplicates)
                self.counters.dead_lettered["duplicate (not identified)"] += result.duplicates
            refused = {item.index: item.reason for item in result.rejected}
            for position, reading in enumerate(fresh):
                reason = refused.get(position)
                if reason is None:
                    stored.append(reading)
                else:
                    rejected.append(_rejected(reading, STORE_REASONS[reason], reason.value))
        if rejected:
            self.observations.dead_letter([_letter(item) for item in rejected])
        return stored, rejected

    def _split_duplicates(self, readings: list[Reading]) -> tuple[list[Reading], list[Rejected]]:
        """Readings whose datastream already has an observation at their time (or earlier in this batch).

        Only a reading no newer than its datastream's newest stored observation can repeat one (this
        consumer is the only live writer), so only those are looked up in the store: in a steady stream
        that is none, after a restart the redelivered ones.
        """
        seen: dict[tuple[int, int], float] = {}
        candidates: dict[int, list[Reading]] = {}
        for reading in readings:
            newest = self.engine.newest(reading.datastream_id)
            if newest is not None and reading.phenomenon_time <= round(newest[0].timestamp() * 1000):
                candidates.setdefault(reading.datastream_id, []).append(reading)
        for ds, group in candidates.items():
            times = [r.phenomenon_time for r in group]
            existing = self.observations.observations(ds, start=min(times), end=max(times) + 1)
            for moment, value in zip(
                existing["phenomenon_time"].tolist(), existing["result"].tolist(), strict=True
            ):
                seen[(ds, int(moment))] = float(value)
        fresh: list[Reading] = []
        repeated: list[Rejected] = []
        for reading in readings:
            key = (reading.datastream_id, reading.phenomenon_time)
            if key in seen:
                old = seen[key]
                same = (math.isnan(old) and math.isnan(reading.result)) or old == reading.result
                detail = "already stored" if same else f"a different result ({old:g}) is stored for that time"
                repeated.append(_rejected(reading, Reason.DUPLICATE, detail))
            else:
                seen[key] = reading.result
                fresh.append(reading)
        return fresh, repeated

    def _acknowledge(self, batch: Sequence[Message]) -> None:
        """Acknowledge, in the order received, what came on the current connection (the rest is resent)."""
        for message in batch:
            if message.qos > 0 and message.connection == self._connection:
                self._client.ack(message.mid, message.qos)
                self.counters.acknowledged += 1

    def _judge(self, stored: list[Reading]) -> Outcome:
        try:
            outcome = self.engine.observe(stored, now=datetime.now(UTC))
        except Exception:  # a rule that fails is logged; the observations are stored and acknowledged
            logger.exception("judging the rules failed for a batch of %d observations", len(stored))
            return Outcome()
        self._announce(outcome)
        return outcome

    def _tick(self) -> None:
        try:
            if self.on_tick is not None:
                self.on_tick(self)
            self._announce(self.engine.tick(now=datetime.now(UTC)))
        except Exception:
            logger.exception("checking silence and window rules failed")

    def _announce(self, outcome: Outcome) -> None:
        for alert, event in outcome.events:
            if event is AlertEvent.OPENED:
                self.counters.alerts_opened += 1
                logger.warning(
                    "alert %s opened: %s on %s: %s", alert.id, alert.rule, alert.subject, alert.message
                )
            else:
                self.counters.alerts_closed += 1
                logger.warning("alert %s closed: %s on %s", alert.id, alert.rule, alert.subject)
        if outcome.events and self.on_alerts is not None:
            self.on_alerts()


def _batch(readings: Sequence[Reading]) -> ObservationBatch:
    return ObservationBatch(
        datastream_id=np.array([r.datastream_id for r in readings], dtype=np.int64),
        phenomenon_time=np.array([r.phenomenon_time for r in readings], dtype=np.int64),
        result=np.array([r.result for r in readings], dtype=np.float64),
        phenomenon_end=np.array([r.phenomenon_end for r in readings], dtype=np.int64),
        result_time=np.array([r.result_time for r in readings], dtype=np.int64),
        quality=np.zeros(len(readings), dtype=np.int8),
    )


def _rejected(reading: Reading, reason: Reason, detail: str) -> Rejected:
    return Rejected(
        reason, detail, reading.topic, reading.payload, reading.received_ms, reading.datastream_id
    )


def _letter(item: Rejected) -> DeadLetter:
    return DeadLetter(
        message=item.payload,
        reason=f"{item.reason}: {item.detail}",
        source=item.topic,
        received=iso(item.received_ms),
    )
