"""The rule engine over real stores, without MQTT: alerts opened and closed inside one batch, out-of-order
observations counted but never judged by point rules, window rules on the store's hourly means."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mqtt_harness import datastream

from civictwin.config_live import RuleConfig
from civictwin.live.engine import RuleEngine
from civictwin.live.messages import Reading
from civictwin.store.alerts import AlertStore
from civictwin.store.observations import DatasetSpec, ObservationBatch, ObservationStore, open_observations

T0 = 1_772_359_200_000  # 2026-03-01T10:00:00Z
MINUTE = 60_000
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture()
def stores(tmp_path: Path) -> Iterator[tuple[ObservationStore, AlertStore]]:
    observations = open_observations(tmp_path / "twin.duckdb")
    observations.ensure_dataset(DatasetSpec("air", "Air", "UBA", "Air team", "dl-de/by-2-0", "public"))
    observations.ensure_datastream(datastream("no2-koeln", "NO2", "ug/m3", "air", valid=(0.0, 1000.0)))
    alerts = AlertStore(tmp_path / "twin.alerts.sqlite")
    yield observations, alerts
    alerts.close()
    observations.close()


def _stored(observations: ObservationStore, points: list[tuple[int, float]]) -> list[Reading]:
    """Append the points (minutes after T0, value) and return them as the consumer would pass them on."""
    observations.append(
        ObservationBatch.of(
            datastream_id=[1] * len(points),
            phenomenon_time=[T0 + m * MINUTE for m, _ in points],
            result=[v for _, v in points],
        ),
        origin="test",
    )
    return [Reading(1, T0 + m * MINUTE, -1, v, -1, 0, "t", "") for m, v in points]


def _engine(stores: tuple[ObservationStore, AlertStore], *rules: RuleConfig) -> RuleEngine:
    observations, alerts = stores
    return RuleEngine(
        list(rules), datastreams=observations.datastreams(), observations=observations, alerts=alerts
    )


def test_alerts_opened_and_closed_within_one_batch_are_each_delivered_once(
    stores: tuple[ObservationStore, AlertStore],
) -> None:
    engine = _engine(stores, RuleConfig(name="high", kind="threshold", above=200))
    outcome = engine.observe(_stored(stores[0], [(0, 150), (1, 250), (2, 120), (3, 260), (4, 130)]), now=NOW)
    assert [(a.id, str(e), a.value) for a, e in outcome.events] == [
        (1, "opened", 250.0), (1, "closed", 250.0), (2, "opened", 260.0), (2, "closed", 260.0)
    ]  # fmt: skip
    assert engine.observe(_stored(stores[0], [(5, 110)]), now=NOW).events == []  # nothing left to close
    alerts = stores[1].alerts()
    assert [(a.id, a.status, a.closing["value"] if a.closing else None) for a in alerts] == [
        (2, "closed", 130.0),
        (1, "closed", 120.0),
    ]


def test_out_of_order_observations_are_counted_but_judge_no_point_rule(
    stores: tuple[ObservationStore, AlertStore],
) -> None:
    engine = _engine(stores, RuleConfig(name="high", kind="threshold", above=200))
    engine.observe(_stored(stores[0], [(10, 100)]), now=NOW)
    late = engine.observe(_stored(stores[0], [(12, 90), (5, 900), (11, 950)]), now=NOW)  # arrival order
    assert late.out_of_order == 2 and late.events == []
    assert engine.newest(1) == (datetime(2026, 3, 1, 10, 12, tzinfo=UTC), 90.0)


def test_window_rules_use_the_stores_hourly_means(stores: tuple[ObservationStore, AlertStore]) -> None:
    rule = RuleConfig(name="no2_hourly", kind="exceedances", window="hour", above=200, allowed=1)
    engine = _engine(stores, rule)
    # 10:00 → (150 + 270) / 2 = 210; 11:00 → 180; 12:30 → 230 (the second batch, judged when forced)
    engine.observe(_stored(stores[0], [(10, 150), (40, 270), (60, 180)]), now=NOW)
    engine.observe(_stored(stores[0], [(150, 230)]), now=NOW)
    outcome = engine.judge_windows()
    [(alert, event)] = outcome.events
    assert (str(event), alert.value, [e["mean"] for e in alert.evidence["exceedances"]]) == (
        "opened",
        2.0,
        [210.0, 230.0],
    )
