"""Parsing MQTT messages: which datastream, which time, which result, or why not (pure)."""

from __future__ import annotations

import json

import pytest

from civictwin.live.messages import (
    MAX_PAYLOAD_BYTES,
    Reading,
    Reason,
    Rejected,
    datastream_index,
    parse_message,
)
from civictwin.store.observations import DatastreamInfo, Unit


def info(ds: int, key: str, unit: str) -> DatastreamInfo:
    return DatastreamInfo(
        id=ds, key=key, name=key, dataset="air", access="public", thing_key="t", observed_property="NO2",
        unit=Unit(unit, unit, unit), observation_type="", valid_range=(None, None), interval_s=None, properties={},
    )  # fmt: skip


INDEX = datastream_index([info(1, "no2-koeln", "ug/m3"), info(2, "it's", "{vehicle}/h"), info(3, "1", "Cel")])
RECEIVED = 1_772_359_200_000  # 2026-03-01T10:00:00Z


def parse(topic: str, payload: object) -> Reading | Rejected:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return parse_message(topic, raw, datastreams=INDEX, received_ms=RECEIVED)


def test_a_valid_message_names_its_datastream_by_id_or_key() -> None:
    reading = parse(
        "city/v1.1/Datastreams(no2-koeln)/Observations",
        {"phenomenonTime": "2026-03-01T11:00:00+01:00", "result": 41},
    )
    assert isinstance(reading, Reading)
    assert (reading.datastream_id, reading.phenomenon_time, reading.result) == (1, RECEIVED, 41.0)
    assert (reading.phenomenon_end, reading.result_time) == (-1, -1)
    quoted = parse(
        "x/Datastreams('it''s')/Observations", {"phenomenonTime": "2026-03-01T10:00:00Z", "result": 5}
    )
    assert isinstance(quoted, Reading) and quoted.datastream_id == 2
    # "1" is datastream 1's id and datastream 3's key: the id wins.
    assert (
        parse(
            "x/Datastreams(1)/Observations", {"phenomenonTime": "2026-03-01T10:00:00Z", "result": 1}
        ).datastream_id
        == 1
    )  # type: ignore[union-attr]
    by_body = parse("x/anything", {"Datastream": {"@iot.id": 1}, "phenomenonTime": "2026-03-01T10:00:00Z", "result": None,
                                   "resultTime": "2026-03-01T10:00:05Z", "unit": "ug/m3"})  # fmt: skip
    assert isinstance(by_body, Reading) and by_body.result != by_body.result  # null → NaN (missing)
    assert by_body.result_time == RECEIVED + 5000
    interval = parse(
        "x/Datastreams(1)/Observations",
        {"phenomenonTime": "2026-03-01T09:00:00Z/2026-03-01T10:00:00Z", "result": 3},
    )
    assert isinstance(interval, Reading) and (interval.phenomenon_time, interval.phenomenon_end) == (
        RECEIVED - 3_600_000,
        RECEIVED,
    )


@pytest.mark.parametrize(
    ("topic", "payload", "reason", "detail"),
    [
        ("x/Datastreams(1)/Observations", b"\xff\xfe", Reason.MALFORMED, "payload is not UTF-8 text"),
        ("x/Datastreams(1)/Observations", [1, 2], Reason.MALFORMED, "payload is a JSON list, not an object"),
        ("x/Datastreams(1)/Observations", b"x" * (MAX_PAYLOAD_BYTES + 1), Reason.MALFORMED, f"payload of {MAX_PAYLOAD_BYTES + 1} bytes (at most {MAX_PAYLOAD_BYTES})"),
        ("x/other", {"phenomenonTime": "2026-03-01T10:00:00Z", "result": 1}, Reason.MALFORMED, "no datastream: neither the topic nor the payload names one"),
        ("x/Datastreams(1)/Observations", {"Datastream": {"@iot.id": 2}, "phenomenonTime": "2026-03-01T10:00:00Z", "result": 1},
         Reason.MALFORMED, "topic names datastream '1', payload '2'"),
        ("x/Datastreams(9)/Observations", {"phenomenonTime": "2026-03-01T10:00:00Z", "result": 1}, Reason.UNKNOWN_DATASTREAM, "no datastream '9'"),
        ("x/Datastreams(1)/Observations", {"result": 1}, Reason.MALFORMED, "phenomenonTime is missing"),
        ("x/Datastreams(1)/Observations", {"phenomenonTime": "yesterday", "result": 1}, Reason.MALFORMED, "phenomenonTime 'yesterday' is not an ISO 8601 time"),
        ("x/Datastreams(1)/Observations", {"phenomenonTime": "2026-03-01T10:00:00", "result": 1}, Reason.MALFORMED, "phenomenonTime '2026-03-01T10:00:00' has no UTC offset"),
        ("x/Datastreams(1)/Observations", {"phenomenonTime": "2026-03-01T10:00:00Z/2026-03-01T09:00:00Z", "result": 1},
         Reason.MALFORMED, "phenomenonTime '2026-03-01T10:00:00Z/2026-03-01T09:00:00Z' ends before it starts"),
        ("x/Datastreams(1)/Observations", {"phenomenonTime": "1969-12-31T23:00:00Z", "result": 1}, Reason.MALFORMED, "phenomenonTime '1969-12-31T23:00:00Z' is before 1970"),
        ("x/Datastreams(1)/Observations", {"phenomenonTime": "2026-03-01T10:00:00Z"}, Reason.MALFORMED, "result is missing"),
        ("x/Datastreams(1)/Observations", {"phenomenonTime": "2026-03-01T10:00:00Z", "result": True}, Reason.MALFORMED, "result 'True' is not a number"),
        ("x/Datastreams(1)/Observations", {"phenomenonTime": "2026-03-01T10:00:00Z", "result": "7"}, Reason.MALFORMED, "result '7' is not a number"),
        ("x/Datastreams(1)/Observations", b'{"phenomenonTime": "2026-03-01T10:00:00Z", "result": NaN}', Reason.MALFORMED, "result is not a finite number"),
        ("x/Datastreams(1)/Observations", {"phenomenonTime": "2026-03-01T10:00:00Z", "result": 1, "unit": "mg/m3"},
         Reason.WRONG_UNIT, "unit 'mg/m3'; datastream 'no2-koeln' is in 'ug/m3'"),
    ],
)  # fmt: skip
def test_a_bad_message_is_rejected_with_its_reason(
    topic: str, payload: object, reason: Reason, detail: str
) -> None:
    rejected = parse(topic, payload)
    assert isinstance(rejected, Rejected)
    assert (rejected.reason, rejected.detail, rejected.topic) == (reason, detail, topic)
