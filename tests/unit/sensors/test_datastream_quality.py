"""Datastream quality against hand-counted series: completeness, gaps, out of range, stuck runs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from civictwin.catalog.observations import datastream_quality
from civictwin.store.observations import MS_PER_HOUR, OM_MEASUREMENT, DatastreamInfo, Unit

INFO = DatastreamInfo(
    id=1, key="air/s1/no2", name="s1 NO2", dataset="air", access="public", thing_key="air/s1",
    observed_property="NO2", unit=Unit("ug/m3", "microgram per cubic metre", "µg/m³"),
    observation_type=OM_MEASUREMENT, valid_range=(0.0, 1000.0), interval_s=3600, properties={},
)  # fmt: skip


def series(hours: list[int], values: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"phenomenon_time": np.array(hours) * MS_PER_HOUR, "result": values})


def test_gaps_completeness_and_rejections() -> None:
    # hours 0..11 expected; hours 3 and 4 absent, hour 7 stored as missing (null)
    hours = [0, 1, 2, 5, 6, 7, 8, 9, 10, 11]
    values = [1.0, 2.0, 3.0, 4.0, 5.0, float("nan"), 6.0, 7.0, 8.0, 9.0]
    record = datastream_quality(INFO, series(hours, values), rejected={"out of range": 2, "conflicts": 1})
    assert (record["observations"], record["results"], record["missing"]) == (10, 9, 1)
    assert record["completeness"]["result"] == 0.75  # 9 results over 12 hourly slots from 00:00 to 11:00
    # between results: 2 -> 5 (3 h, a gap of 2 h) and 6 -> 8 (2 h, a gap of 1 h)
    assert record["gaps"] == {"count": 2, "longest_hours": 2.0}
    assert record["out_of_range"] == 2 and record["rejected"] == {"conflicts": 1, "out of range": 2}
    assert record["stuck"] == {"runs": 0, "values": 0}
    assert record["first"] == "1970-01-01T00:00:00Z" and record["last"] == "1970-01-01T11:00:00Z"
    assert "completeness 75% of the expected observations have a result" in record["notes"]


def test_stuck_runs_leave_zeros_out_and_expected_counts_win() -> None:
    values = [5.0] * 7 + [0.0] * 8 + [3.0, 4.0]  # 7 identical non-zero values, then 8 zeros
    record = datastream_quality(INFO, series(list(range(17)), values), rejected={}, expected=34)
    assert record["stuck"] == {"runs": 1, "values": 7}
    assert record["completeness"]["result"] == 0.5  # 17 results of the 34 the format expects
