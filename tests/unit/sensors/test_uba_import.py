"""The Cologne UBA series, checked value by value against the agency's files: -999 stored as null,
hours in CET (UTC+1 all year, the value of hour h covering [h-1, h)), intervals per series."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sensortwin import sensors_entry, twin_config

from civictwin.ingest import import_sensors
from civictwin.store.observations import Quality, iso, open_observations

pytestmark = pytest.mark.shared


def expected_hourly(raw: dict[str, list[float | str]]) -> list[tuple[str, float | None]]:
    """The file's values with their UTC start, computed here independently of the reader."""
    rows = []
    for day, values in sorted(raw.items()):
        midnight_cet = datetime.strptime(day, "%Y%m%d").replace(tzinfo=UTC) - timedelta(hours=1)
        for hour, value in enumerate(values):
            start = midnight_cet + timedelta(hours=hour)
            number = float(value)
            rows.append((start.strftime("%Y-%m-%dT%H:%M:%SZ"), None if number == -999 else number))
    return rows


def stored(twin_dir: Path, key: str) -> list[tuple[str, str, float | None, int]]:
    with open_observations(twin_dir / "sensor-test.duckdb") as store:
        info = store.datastream(key)
        assert info is not None
        frame = store.observations(info.id)
    return [
        (iso(int(t)), iso(int(e)), None if r != r else float(r), int(q))
        for t, e, r, q in zip(
            frame["phenomenon_time"], frame["phenomenon_end"], frame["result"], frame["quality"], strict=True
        )
    ]


def test_hourly_no2_matches_the_files_value_by_value(
    tmp_path: Path, shared_path: Callable[[str], Path]
) -> None:
    root = shared_path("sensors/cologne-uba")
    entry = sensors_entry(
        "cologne_air", "uba", path=str(root), stations=["DENW211"], components=["NO2"], series=["1SMW"]
    )
    config = twin_config(tmp_path, [entry])
    (summary,) = import_sensors(config)
    expected: list[tuple[str, float | None]] = []
    for month in ("201401", "201402", "201403"):
        expected += expected_hourly(json.loads((root / month / "DENW211/NO2/1SMW.json").read_text()))
    rows = stored(tmp_path, "cologne_air/DENW211/NO2/1SMW")
    assert [(start, value) for start, _, value, _ in rows] == expected
    assert (summary.datastreams, summary.stored) == (1, len(expected)) and len(expected) == 90 * 24
    # spot checks, read off the file by hand: 1 Jan 2014, hour 1 (00-01 CET) = 40; hour 2 = -999
    assert rows[0] == ("2013-12-31T23:00:00Z", "2014-01-01T00:00:00Z", 40.0, Quality.GOOD)
    assert rows[1] == ("2014-01-01T00:00:00Z", "2014-01-01T01:00:00Z", None, Quality.MISSING)
    # 30 March 2014, when German clocks skipped 02:00-03:00: still 24 hours, hour 3 (02-03 CET) at 01:00 UTC
    march_30 = [r for r in rows if "2014-03-29T23:00:00Z" <= r[0] < "2014-03-30T23:00:00Z"]
    assert len(march_30) == 24 and march_30[2][0] == "2014-03-30T01:00:00Z"
    missing = sum(1 for _, value in expected if value is None)
    with open_observations(tmp_path / "sensor-test.duckdb") as store:
        quality = store.records("quality")["cologne_air/DENW211/NO2/1SMW"]
        catalog = store.records("catalog")["cologne_air/DENW211/NO2/1SMW"]
    assert (quality["missing"], quality["results"]) == (missing, len(expected) - missing)
    assert quality["completeness"]["result"] == pytest.approx(
        (len(expected) - missing) / len(expected), abs=1e-4
    )
    assert catalog["unit"] == "ug/m3" and catalog["bbox_wgs84"] == [7.00459, 50.962857, 7.00459, 50.962857]
    again = import_sensors(config)[0]
    assert (again.stored, again.duplicates) == (0, len(expected))


def test_moving_and_daily_series_cover_their_windows(
    tmp_path: Path, shared_path: Callable[[str], Path]
) -> None:
    root = shared_path("sensors/cologne-uba")
    entry = sensors_entry(
        "cologne_air", "uba", path=str(root), stations=["DENW058"], components=["O3", "PM1"]
    )
    import_sensors(twin_config(tmp_path, [entry]))
    moving = json.loads((root / "201401/DENW058/O3/8SMW.json").read_text())
    first = stored(tmp_path, "cologne_air/DENW058/O3/8SMW")[0]
    # the 8-hour mean ending 01:00 CET on 1 January covers 17:00 CET to 01:00 CET = 16:00-24:00 UTC
    assert first[:3] == ("2013-12-31T16:00:00Z", "2014-01-01T00:00:00Z", float(moving["20140101"][0]))
    daily = json.loads((root / "201401/DENW058/PM1/1TMW.json").read_text())
    pm10 = stored(tmp_path, "cologne_air/DENW058/PM1/1TMW")
    assert pm10[0][:3] == ("2013-12-31T23:00:00Z", "2014-01-01T23:00:00Z", float(daily["20140101"][0]))
    assert len(pm10) == 90
