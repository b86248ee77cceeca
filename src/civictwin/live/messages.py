"""One MQTT message in, one reading ready to store or one rejection (with its reason) out; pure.

Messages follow the SensorThings MQTT convention: the topic names the datastream
(``.../Datastreams(<id>)/Observations``; the id is the datastream's numeric id or its key, which may
be quoted: ``Datastreams('no2-koeln')``) and the payload is the Observation as JSON::

    {"phenomenonTime": "2026-12-01T10:00:00Z", "result": 41.5}

optionally with ``resultTime``, an interval ``"start/end"`` as phenomenon time, ``"Datastream":
{"@iot.id": ...}`` instead of the id in the topic, and ``"unit"`` (a UCUM code), which must then equal
the datastream's. Times must carry a UTC offset. Other members are ignored.

Why messages are dead-lettered (each with a one-line detail):

* ``malformed``: not UTF-8 JSON, not an object, too large, no datastream, a missing or unparseable
  ``phenomenonTime``, an interval ending before it starts, a time before 1970, a result that is not a
  finite number (``null`` is a missing value and is stored as one);
* ``unknown_datastream``: the id names no datastream of the twin;
* ``wrong_unit``: the message's unit differs from the datastream's;
* decided by the store when appending: ``out_of_range`` (outside the datastream's valid range),
  ``far_future`` (timed beyond the allowed margin ahead of the clock) and ``duplicate`` (that
  datastream has an observation at that time: the same one again, or a conflicting result).

Out-of-order messages (older than the newest stored for their datastream) are valid: they are
stored and counted, not rejected.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from civictwin.store.observations import DatastreamInfo, RejectReason

MAX_PAYLOAD_BYTES = 65_536
_TOPIC_ID = re.compile(r"Datastreams\((?:'((?:[^']|'')*)'|([^)]*))\)/Observations$")


class Reason(StrEnum):
    """Why a message was dead-lettered."""

    MALFORMED = "malformed"
    UNKNOWN_DATASTREAM = "unknown_datastream"
    WRONG_UNIT = "wrong_unit"
    OUT_OF_RANGE = "out_of_range"
    FAR_FUTURE = "far_future"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Reading:
    """A valid observation from a message, ready to append (times in ms UTC, -1: none; NaN: null)."""

    datastream_id: int
    phenomenon_time: int
    phenomenon_end: int
    result: float
    result_time: int
    received_ms: int
    """When the consumer received the message (ms UTC)."""
    topic: str
    payload: str


@dataclass(frozen=True)
class Rejected:
    """A message that is not stored, with the reason and the message itself (for the dead-letter table)."""

    reason: Reason
    detail: str
    topic: str
    payload: str
    received_ms: int
    datastream_id: int | None = None


def datastream_index(datastreams: Iterable[DatastreamInfo]) -> dict[str, DatastreamInfo]:
    """Datastreams by every name a topic may give them: key and numeric id (an id wins over a key)."""
    infos = list(datastreams)
    index = {info.key: info for info in infos}
    index.update({str(info.id): info for info in infos})
    return index


class _Invalid(Exception):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def parse_message(
    topic: str, payload: bytes, *, datastreams: Mapping[str, DatastreamInfo], received_ms: int
) -> Reading | Rejected:
    """Check one message's form, datastream and unit (range, time horizon and duplicates are the store's)."""
    text = payload[:MAX_PAYLOAD_BYTES].decode("utf-8", errors="replace")
    info: DatastreamInfo | None = None
    try:
        body = _json_object(payload)
        name = _datastream_name(topic, body)
        info = datastreams.get(name)
        if info is None:
            raise _Invalid(Reason.UNKNOWN_DATASTREAM, f"no datastream '{name}'")
        start, end = _phenomenon_time(body.get("phenomenonTime"))
        result = _result(body)
        _check_unit(body, info)
        result_time = (
            _time(body.get("resultTime"), "resultTime") if body.get("resultTime") is not None else -1
        )
    except _Invalid as problem:
        return Rejected(
            problem.reason, problem.detail, topic, text, received_ms, info.id if info is not None else None
        )
    return Reading(info.id, start, end, result, result_time, received_ms, topic, text)


def _json_object(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise _Invalid(Reason.MALFORMED, f"payload of {len(payload)} bytes (at most {MAX_PAYLOAD_BYTES})")
    try:
        body = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise _Invalid(Reason.MALFORMED, "payload is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise _Invalid(Reason.MALFORMED, f"payload is not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(body, dict):
        raise _Invalid(Reason.MALFORMED, f"payload is a JSON {type(body).__name__}, not an object")
    return body


def _datastream_name(topic: str, body: Mapping[str, Any]) -> str:
    match = _TOPIC_ID.search(topic)
    from_topic = None
    if match:
        from_topic = match.group(1).replace("''", "'") if match.group(1) is not None else match.group(2)
    link = body.get("Datastream")
    from_body = None
    if link is not None:
        if not isinstance(link, dict) or isinstance(link.get("@iot.id"), (dict, list, bool, type(None))):
            raise _Invalid(Reason.MALFORMED, 'Datastream must be {"@iot.id": <id>}')
        from_body = str(link["@iot.id"])
    if from_topic is not None and from_body is not None and from_topic != from_body:
        raise _Invalid(Reason.MALFORMED, f"topic names datastream '{from_topic}', payload '{from_body}'")
    found = from_topic if from_topic is not None else from_body
    if not found:
        raise _Invalid(Reason.MALFORMED, "no datastream: neither the topic nor the payload names one")
    return found


def _phenomenon_time(value: Any) -> tuple[int, int]:
    """Start and end (-1 for an instant) in ms UTC."""
    if value is None:
        raise _Invalid(Reason.MALFORMED, "phenomenonTime is missing")
    if not isinstance(value, str):
        raise _Invalid(Reason.MALFORMED, "phenomenonTime must be an ISO 8601 string")
    first, slash, second = value.partition("/")
    start = _time(first, "phenomenonTime")
    end = _time(second, "phenomenonTime") if slash else -1
    if slash and end < start:
        raise _Invalid(Reason.MALFORMED, f"phenomenonTime {value[:80]!r} ends before it starts")
    if start < 0:
        raise _Invalid(Reason.MALFORMED, f"phenomenonTime {value[:40]!r} is before 1970")
    return start, end


def _time(value: Any, name: str) -> int:
    if not isinstance(value, str):
        raise _Invalid(Reason.MALFORMED, f"{name} must be an ISO 8601 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _Invalid(Reason.MALFORMED, f"{name} {value[:40]!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise _Invalid(Reason.MALFORMED, f"{name} {value[:40]!r} has no UTC offset")
    return round(moment.timestamp() * 1000)


def _result(body: Mapping[str, Any]) -> float:
    if "result" not in body:
        raise _Invalid(Reason.MALFORMED, "result is missing")
    value = body["result"]
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid(Reason.MALFORMED, f"result {str(value)[:40]!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise _Invalid(Reason.MALFORMED, "result is not a finite number")
    return number


def _check_unit(body: Mapping[str, Any], info: DatastreamInfo) -> None:
    unit = body.get("unit")
    if unit is None:
        return
    if not isinstance(unit, str) or unit.strip() != info.unit.code:
        raise _Invalid(
            Reason.WRONG_UNIT, f"unit {str(unit)[:40]!r}; datastream '{info.key}' is in {info.unit.code!r}"
        )


STORE_REASONS: dict[RejectReason, Reason] = {
    RejectReason.UNKNOWN_DATASTREAM: Reason.UNKNOWN_DATASTREAM,
    RejectReason.OUT_OF_RANGE: Reason.OUT_OF_RANGE,
    RejectReason.FAR_FUTURE: Reason.FAR_FUTURE,
    RejectReason.NOT_FINITE: Reason.MALFORMED,
    RejectReason.BAD_INTERVAL: Reason.MALFORMED,
    RejectReason.BEFORE_EPOCH: Reason.MALFORMED,
    RejectReason.CONFLICT: Reason.DUPLICATE,
}
"""The store's reasons for refusing an observation, as dead-letter reasons."""
