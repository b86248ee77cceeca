"""CSV import: long and wide layouts, local times converted to UTC, the DST hour that occurs twice
(each option's outcome), the hour that does not exist, -999 as null, and one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sensortwin import sensors_entry, twin_config

from civictwin.errors import ConfigError, SourceError
from civictwin.ingest import import_sensors
from civictwin.store.observations import Quality, iso, open_observations

LONG = """station,pollutant,time,value
kalk,NO2,2014-10-26 01:00,10
kalk,NO2,2014-10-26 02:00,20
kalk,NO2,2014-10-26 02:00,30
kalk,NO2,2014-10-26 03:00,-999
kalk,NO2,2014-03-30 02:30,5
kalk,NO2,2014-01-01 00:00,n/a
kalk,PM10,2014-01-01 00:00,17
"""


def long_source(path: Path, **csv: Any) -> dict[str, Any]:
    return sensors_entry(
        "city_air",
        "csv",
        path=str(path),
        csv={
            "layout": "long",
            "time": "time",
            "time_format": "%Y-%m-%d %H:%M",
            "timezone": "Europe/Berlin",
            "thing": "station",
            "property": "pollutant",
            "value": "value",
            "interval_s": 3600,
            **csv,
        },
        properties={
            "NO2": {"name": "Nitrogen dioxide", "unit": "ug/m3", "symbol": "µg/m³", "min": 0, "max": 1000},
            "PM10": {"name": "PM10", "unit": "ug/m3"},
        },
        things={"kalk": {"name": "Köln-Kalk", "lon": 6.99, "lat": 50.94}},
    )


def stored(config_dir: Path, key: str) -> list[tuple[str, float | None, int]]:
    with open_observations(config_dir / "sensor-test.duckdb") as store:
        info = store.datastream(key)
        assert info is not None
        frame = store.observations(info.id)
    return [
        (iso(int(t)), None if r != r else r, int(q))
        for t, r, q in zip(frame["phenomenon_time"], frame["result"], frame["quality"], strict=True)
    ]


def test_long_csv_local_times_become_utc_and_dst_doubts_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "air.csv").write_text(LONG, encoding="utf-8")
    config = twin_config(tmp_path, [long_source(tmp_path / "air.csv")])
    (summary,) = import_sensors(config)
    assert (summary.datastreams, summary.stored, summary.duplicates) == (2, 3, 0)
    assert summary.rejected == {
        "ambiguous local time (daylight-saving change)": 2,
        "local time that does not exist (daylight-saving change)": 1,
        "not a number": 1,
    }
    # 01:00 CEST = 23:00 UTC the day before; 03:00 CET = 02:00 UTC; -999 stored as null, flagged missing
    assert stored(tmp_path, "city_air/kalk/NO2") == [
        ("2014-10-25T23:00:00Z", 10.0, Quality.GOOD),
        ("2014-10-26T02:00:00Z", None, Quality.MISSING),
    ]
    assert stored(tmp_path, "city_air/kalk/PM10") == [("2013-12-31T23:00:00Z", 17.0, Quality.GOOD)]
    again = import_sensors(config)[0]
    assert (again.stored, again.duplicates) == (0, 3)
    with open_observations(tmp_path / "sensor-test.duckdb") as store:
        quality = store.records("quality")["city_air/kalk/NO2"]
        catalog = store.records("catalog")["city_air/kalk/NO2"]
    assert quality["rejected"]["ambiguous local time (daylight-saving change)"] == 2
    assert (catalog["steward"], catalog["licence"], catalog["access"], catalog["kind"]) == (
        "Test steward",
        "CC-BY-4.0",
        "public",
        "datastream",
    )


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        # both rows land on the same instant: the first is stored, the second conflicts with it
        ("earlier", [("2014-10-26T00:00:00Z", 20.0)]),
        ("later", [("2014-10-26T01:00:00Z", 20.0)]),
        # in order, the first 02:00 is summer time and the second winter time: both are kept
        ("infer", [("2014-10-26T00:00:00Z", 20.0), ("2014-10-26T01:00:00Z", 30.0)]),
    ],
)
def test_each_ambiguous_option_has_a_defined_outcome(
    tmp_path: Path, choice: str, expected: list[tuple[str, float]]
) -> None:
    rows = "\n".join(LONG.splitlines()[:4])  # 01:00, 02:00, 02:00
    (tmp_path / "air.csv").write_text(rows + "\n", encoding="utf-8")
    config = twin_config(tmp_path, [long_source(tmp_path / "air.csv", ambiguous=choice)])
    (summary,) = import_sensors(config)
    values = [(t, r) for t, r, _ in stored(tmp_path, "city_air/kalk/NO2") if t != "2014-10-25T23:00:00Z"]
    assert values == expected
    conflicts = summary.rejected.get("conflicts with a stored observation of the same time", 0)
    assert conflicts == (0 if choice == "infer" else 1)


def test_wide_csv_with_offsets_and_decimal_commas(tmp_path: Path) -> None:
    (tmp_path / "wide.csv").write_text(
        "zeit;no2;pm10\n2014-01-01T01:00:00+01:00;40,5;-999\n2014-01-01T02:00:00+01:00;41;12,25\n",
        encoding="utf-8",
    )
    entry = sensors_entry(
        "station",
        "csv",
        path=str(tmp_path / "wide.csv"),
        csv={
            "layout": "wide",
            "time": "zeit",
            "delimiter": ";",
            "decimal": ",",
            "columns": {"no2": "NO2", "pm10": "PM10"},
        },
        properties={"NO2": {"name": "NO2", "unit": "ug/m3"}, "PM10": {"name": "PM10", "unit": "ug/m3"}},
        things={"s1": {"name": "Station 1", "lon": 7.0, "lat": 50.9}},
    )
    import_sensors(twin_config(tmp_path, [entry]))
    assert [(t, r) for t, r, _ in stored(tmp_path, "station/s1/NO2")] == [
        ("2014-01-01T00:00:00Z", 40.5),
        ("2014-01-01T01:00:00Z", 41.0),
    ]
    assert [(t, r) for t, r, _ in stored(tmp_path, "station/s1/PM10")] == [
        ("2014-01-01T00:00:00Z", None),
        ("2014-01-01T01:00:00Z", 12.25),
    ]


def test_bad_input_gives_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "air.csv").write_text(LONG, encoding="utf-8")
    config = twin_config(tmp_path, [long_source(tmp_path / "air.csv", time="timestamp")])
    with pytest.raises(SourceError, match=r"air\.csv: column 'timestamp' \(csv\.time\) not found"):
        import_sensors(config)
    naive = long_source(tmp_path / "air.csv")
    naive["csv"].pop("timezone")
    with pytest.raises(SourceError, match=r"times carry no UTC offset: set csv\.timezone"):
        import_sensors(twin_config(tmp_path, [naive]))
    with pytest.raises(
        ConfigError, match=r"sensors\[0\] \(city_air\)\.csv\.timezone: .*unknown time zone 'Europe/Köln'"
    ):
        twin_config(tmp_path, [long_source(tmp_path / "air.csv", timezone="Europe/Köln")])
    with pytest.raises(ConfigError, match="no \\[\\[sensors\\]\\] source named 'nope'"):
        import_sensors(twin_config(tmp_path, [long_source(tmp_path / "air.csv")]), names=["nope"])
