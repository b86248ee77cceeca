"""The GTFS reader on a hand-made feed (values checked by hand), the real sample feeds, and bad input.

The hand-made feed, in central Helsinki:

- stops A, B, C inside the area, D inside but never served, X outside;
- weekday service ``WD`` and Saturday service ``SA`` for January 2024; ``WD`` removed on Monday
  2024-01-01, ``SA`` added on Wednesday 2024-01-03 — so 2024-01-03 is the busiest day;
- T1 A 07:00 → B 07:10 → C 07:20; T2 A 07:30 → B (no time: interpolated 07:40) → C 07:50;
  T3 C 23:50 → B 24:05 → A 24:20 (after midnight); F1 headway-based A → B → C at offsets 0, 5, 10 min,
  every 15 min from 08:00 until before 09:00 (4 runs); S1 (Saturdays) A 10:00 → X 10:30; O1 runs at
  X only (route R3), so it and R3 are left out.

Departures on 2024-01-03 (a trip's last stop is not a departure): A: 7h 2, 8h 4, 10h 1;
B: 7h 2, 8h 4, 24h 1; C: 23h 1. Runs that day: WD 3 + F1 4 + S1 1 = 8.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from civictwin.errors import SourceError
from civictwin.sources import reader_for
from civictwin.sources.base import BuildContext, IngestResult
from civictwin.sources.gtfs import ingest, service_period
from civictwin.sources.vector import MAX_TEXT_CHARS

FEED: dict[str, str] = {
    "agency.txt": "agency_id,agency_name,agency_url,agency_timezone\nHSL,Test,https://example.org,Europe/Helsinki\n",
    "stops.txt": (
        "stop_id,stop_name,stop_lat,stop_lon,location_type,parent_station\n"
        "A,Alpha,60.165,24.93,,\n"
        "B,Beta,60.166,24.94,0,\n"
        "C,Gamma,60.167,24.95,0,\n"
        "D,Delta,60.168,24.96,0,\n"
        "X,Far,60.200,25.10,0,\n"
    ),
    "routes.txt": (
        "route_id,agency_id,route_short_name,route_long_name,route_type\n"
        "R1,HSL,1,One,3\n"
        "R2,HSL,2,Two,0\n"
        "R3,HSL,3,Three,3\n"
    ),
    "trips.txt": (
        "route_id,service_id,trip_id,direction_id,shape_id\n"
        "R1,WD,T1,0,\n"
        "R1,WD,T2,0,\n"
        "R1,WD,T3,1,\n"
        "R2,WD,F1,0,\n"
        "R2,SA,S1,,\n"
        "R3,SA,O1,,\n"
    ),
    "stop_times.txt": (
        "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
        "T1,07:00:00,07:00:00,A,1\n"
        "T1,07:10:00,07:10:00,B,2\n"
        "T1,07:20:00,07:20:00,C,3\n"
        "T2,07:30:00,07:30:00,A,1\n"
        "T2,,,B,2\n"
        "T2,07:50:00,07:50:00,C,3\n"
        "T3,23:50:00,23:50:00,C,1\n"
        "T3,24:05:00,24:05:00,B,2\n"
        "T3,24:20:00,24:20:00,A,3\n"
        "F1,0:00:00,0:00:00,A,1\n"
        "F1,0:05:00,0:05:00,B,2\n"
        "F1,0:10:00,0:10:00,C,3\n"
        "S1,10:00:00,10:00:00,A,1\n"
        "S1,10:30:00,10:30:00,X,2\n"
        "O1,11:00:00,11:00:00,X,1\n"
        "O1,11:30:00,11:30:00,X,2\n"
    ),
    "calendar.txt": (
        "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n"
        "WD,1,1,1,1,1,0,0,20240101,20240131\n"
        "SA,0,0,0,0,0,1,0,20240101,20240131\n"
    ),
    "calendar_dates.txt": "service_id,date,exception_type\nWD,20240101,2\nSA,20240103,1\n",
    "frequencies.txt": "trip_id,start_time,end_time,headway_secs\nF1,08:00:00,09:00:00,900\n",
}

WriteFeed = Callable[..., Path]


@pytest.fixture
def write_feed(tmp_path: Path) -> WriteFeed:
    """``write_feed(as_zip=True, drop=(...), **replacements)``: the hand-made feed, altered, on disk."""
    counter = iter(range(1000))

    def write(*, as_zip: bool = True, drop: tuple[str, ...] = (), **replace: str) -> Path:
        files = {name: text for name, text in FEED.items() if name not in drop}
        files.update({name.replace("_txt", ".txt"): text for name, text in replace.items()})
        target = tmp_path / f"feed{next(counter)}"
        if as_zip:
            target = target.with_suffix(".zip")
            with zipfile.ZipFile(target, "w") as archive:
                for name, text in files.items():
                    archive.writestr(name, text)
        else:
            target.mkdir()
            for name, text in files.items():
                (target / name).write_text(text, encoding="utf-8")
        return target

    return write


@pytest.fixture
def run_feed(make_context: Any, source_entry: Any) -> Callable[..., tuple[IngestResult, BuildContext]]:
    """Ingest one feed path into a fresh context and return the result and the context."""

    def run(path: Path, name: str = "hsl", **options: Any) -> tuple[IngestResult, BuildContext]:
        ctx = make_context([source_entry(name, "gtfs", path, **options)])
        return ingest(ctx.config.sources[0], ctx), ctx

    return run


def _layer(result: IngestResult, table: str) -> Any:
    return next(layer for layer in result.layers if layer.table == table)


def _frequency(ctx: BuildContext) -> dict[tuple[str, int], int]:
    frame = ctx.store.read_table("transit_stop_frequency")
    rows = zip(
        frame["stop_id"].astype(str), frame["hour"].astype(int), frame["departures"].astype(int), strict=True
    )
    return {(stop, hour): departures for stop, hour, departures in rows}


def test_reader_for_dispatches_gtfs() -> None:
    from civictwin.config import SourceKind

    assert reader_for(SourceKind.GTFS) is ingest


@pytest.mark.parametrize("as_zip", [True, False])
def test_hand_made_feed_tables(write_feed: WriteFeed, run_feed: Any, as_zip: bool) -> None:
    result, ctx = run_feed(write_feed(as_zip=as_zip))
    rows = {layer.table: layer.rows for layer in result.layers}
    assert rows == {
        "transit_stops": 4,
        "transit_routes": 2,
        "transit_trips": 5,
        "transit_stop_times": 13,
        "transit_calendar": 4,
        "transit_stop_frequency": 7,
        "transit_frequencies": 1,
    }
    frequencies = ctx.store.read_table("transit_frequencies")
    assert frequencies[["trip_id", "start_s", "end_s", "headway_s"]].values.tolist() == [
        ["F1", 28800, 32400, 900]
    ]
    stops = ctx.store.read_frame("transit_stops")
    assert sorted(stops["stop_id"]) == ["A", "B", "C", "D"]
    assert set(stops["feed"]) == {"hsl"}
    assert stops.crs.to_string() == "EPSG:32635"
    assert stops.loc[stops["stop_id"] == "A", "location_type"].iloc[0] == 0  # empty means 0
    assert sorted(ctx.store.read_table("transit_routes")["route_id"]) == ["R1", "R2"]
    assert sorted(ctx.store.read_table("transit_trips")["trip_id"]) == ["F1", "S1", "T1", "T2", "T3"]
    times = ctx.store.read_table("transit_stop_times").set_index(["trip_id", "stop_sequence"])
    assert times.loc[("T3", 2), "departure_s"] == 24 * 3600 + 5 * 60
    assert times.loc[("T3", 3), "arrival_s"] == 24 * 3600 + 20 * 60
    assert times.loc[("F1", 2), "departure_s"] == 300
    assert times.loc[("T2", 2), ["arrival_s", "departure_s"]].isna().all()  # stored as in the file
    assert ("S1", 2) not in times.index  # stop X is outside the area


def test_hand_made_feed_departures_per_hour(write_feed: WriteFeed, run_feed: Any) -> None:
    result, ctx = run_feed(write_feed())
    assert _frequency(ctx) == {
        ("A", 7): 2,
        ("A", 8): 4,
        ("A", 10): 1,
        ("B", 7): 2,
        ("B", 8): 4,
        ("B", 24): 1,
        ("C", 23): 1,
    }
    layer = _layer(result, "transit_stop_frequency")
    quality = dict(layer.quality)
    period = quality.pop("service_period")
    assert quality == {
        "completeness": {},
        "duplicates": 0,
        "busiest_date": "2024-01-03",
        "runs_on_busiest_date": 8,
        "departures_on_busiest_date": 15,
    }
    # the feed ran in January 2024 (calendar.txt spans, SA added on the 3rd): it has ended since
    build_day = period.pop("build_day")
    assert period == {"first": "2024-01-01", "last": "2024-01-31", "status": "ended"}
    assert layer.notes[0] == (
        f"warning: GTFS feed 'hsl' ended on 2024-01-31, before the build day {build_day}; its departures "
        "are counted on 2024-01-03: replace it with a current feed"
    )


def test_a_feed_that_has_not_started_or_runs_today() -> None:
    calendar = pd.DataFrame(
        {"start_date": pd.to_datetime(["2030-03-01"]), "end_date": pd.to_datetime(["2030-06-30"])}
    )
    added = pd.DataFrame({"date": pd.to_datetime(["2030-02-14", "2029-12-24"]), "exception_type": [1, 2]})
    early = service_period(calendar, added, date(2029, 12, 31))
    assert early == {
        "build_day": "2029-12-31",
        "first": "2030-02-14",
        "last": "2030-06-30",
        "status": "not started",
    }
    assert service_period(calendar, added, date(2030, 6, 30))["status"] == "current"
    assert service_period(calendar.iloc[:0], added.iloc[:0], date(2030, 1, 1))["status"] == "none"


def test_hand_made_feed_quality(write_feed: WriteFeed, run_feed: Any) -> None:
    result, _ctx = run_feed(write_feed())
    stops = _layer(result, "transit_stops").quality
    assert stops["geometry"]["received"] == 5
    assert stops["geometry"]["outside_area"] == 1
    assert stops["geometry"]["kept"] == 4
    assert stops["stops_without_service"] == 1  # D
    assert stops["duplicates"] == 0
    trips = _layer(result, "transit_trips").quality
    assert trips["completeness"] == {"direction_id": 0.8, "shape_id": 0.0}
    stop_times = _layer(result, "transit_stop_times").quality
    assert stop_times["completeness"]["arrival_s"] == pytest.approx(12 / 13)


def test_calendar_table_holds_both_files(write_feed: WriteFeed, run_feed: Any) -> None:
    _result, ctx = run_feed(write_feed())
    calendar = ctx.store.read_table("transit_calendar").sort_values(
        ["service_id", "date"], na_position="first"
    )
    regular = calendar[calendar["date"].isna()].set_index("service_id")
    assert bool(regular.loc["WD", "friday"]) is True
    assert bool(regular.loc["WD", "saturday"]) is False
    assert regular.loc["SA", "start_date"] == date(2024, 1, 1)
    assert regular.loc["SA", "end_date"] == date(2024, 1, 31)
    exceptions = calendar[calendar["date"].notna()]
    assert {(r.service_id, r.date, int(r.exception_type)) for r in exceptions.itertuples()} == {
        ("WD", date(2024, 1, 1), 2),
        ("SA", date(2024, 1, 3), 1),
    }


def test_second_feed_appends_and_reingest_replaces(
    write_feed: WriteFeed, make_context: Any, source_entry: Any
) -> None:
    path = write_feed()
    ctx = make_context([source_entry("hsl", "gtfs", path), source_entry("other", "gtfs", path)])
    first, second = ctx.config.sources
    ingest(first, ctx)
    result = ingest(second, ctx)
    assert _layer(result, "transit_stops").rows == 4  # this feed's rows
    stops = ctx.store.read_frame("transit_stops")
    assert Counter(stops["feed"]) == {"hsl": 4, "other": 4}
    assert stops.geometry.notna().all()
    frequency = ctx.store.read_table("transit_stop_frequency")
    assert Counter(frequency["feed"]) == {"hsl": 7, "other": 7}
    ingest(first, ctx)  # again: replaces its own rows only
    assert Counter(ctx.store.read_table("transit_stop_times")["feed"]) == {"hsl": 13, "other": 13}


def test_clip_false_keeps_stops_outside(write_feed: WriteFeed, run_feed: Any) -> None:
    result, _ctx = run_feed(write_feed(), clip=False)
    assert _layer(result, "transit_stops").rows == 5
    assert _layer(result, "transit_routes").rows == 3


def test_feed_outside_the_area(write_feed: WriteFeed, make_context: Any, source_entry: Any) -> None:
    ctx = make_context([source_entry("hsl", "gtfs", write_feed())], bbox=(24.0, 61.0, 24.1, 61.1))
    result = ingest(ctx.config.sources[0], ctx)
    assert {layer.table: layer.rows for layer in result.layers} == dict.fromkeys(
        [
            "transit_stops",
            "transit_routes",
            "transit_trips",
            "transit_stop_times",
            "transit_calendar",
            "transit_stop_frequency",
            "transit_frequencies",
        ],
        0,
    )
    stops = _layer(result, "transit_stops")
    assert stops.quality["geometry"]["outside_area"] == 5
    assert stops.notes == ["no stop of this feed lies in the area"]
    assert ctx.store.has_table("transit_stop_times")


def test_feed_inside_a_folder_of_the_zip(tmp_path: Path, run_feed: Any) -> None:
    path = tmp_path / "nested.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in FEED.items():
            archive.writestr(f"gtfs/{name}", text)
    result, _ctx = run_feed(path)
    assert _layer(result, "transit_stops").rows == 4


def test_unknown_references_and_duplicates_are_counted(write_feed: WriteFeed, run_feed: Any) -> None:
    stop_times = FEED["stop_times.txt"] + "T1,07:25:00,07:25:00,NOWHERE,4\nGHOST,08:00:00,08:00:00,A,1\n"
    stop_times += "T1,07:00:00,07:00:00,A,1\n"  # repeats (T1, 1)
    stops = FEED["stops.txt"] + "A,Alpha again,60.165,24.93,0,\n"
    trips = FEED["trips.txt"] + "R9,WD,T9,0,\nR1,NEVER,T10,0,\n"
    result, ctx = run_feed(write_feed(stop_times_txt=stop_times, stops_txt=stops, trips_txt=trips))
    quality = _layer(result, "transit_stop_times").quality
    assert (quality["unknown_stop"], quality["unknown_trip"], quality["duplicates"]) == (1, 1, 1)
    assert _layer(result, "transit_stops").quality["duplicates"] == 1
    trips_quality = _layer(result, "transit_trips").quality
    assert (trips_quality["unknown_route"], trips_quality["unknown_service"]) == (1, 1)
    names = ctx.store.read_table("transit_stops").set_index("stop_id")["stop_name"]
    assert names["A"] == "Alpha"  # the first of repeated ids is kept
    assert _frequency(ctx)[("A", 7)] == 2  # the repeated stop_time is not counted twice


def test_no_service_in_the_area(write_feed: WriteFeed, run_feed: Any) -> None:
    calendar = "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n"
    dates = "service_id,date,exception_type\nOTHER,20240101,1\n"
    result, ctx = run_feed(write_feed(calendar_txt=calendar, calendar_dates_txt=dates))
    layer = _layer(result, "transit_stop_frequency")
    assert layer.rows == 0
    assert layer.quality["busiest_date"] is None
    assert "no service day" in layer.notes[0]
    assert ctx.store.has_table("transit_stop_frequency")


def test_huge_stop_name_is_truncated(write_feed: WriteFeed, run_feed: Any) -> None:
    huge = "x" * 10_000_000
    stops = FEED["stops.txt"].replace("Alpha", huge)
    result, ctx = run_feed(write_feed(stops_txt=stops))
    assert _layer(result, "transit_stops").quality["truncated_values"] == 1
    names = ctx.store.read_table("transit_stops").set_index("stop_id")["stop_name"]
    assert len(names["A"]) == MAX_TEXT_CHARS


# --- malformed input ---------------------------------------------------------------------------


def _error(run_feed: Any, path: Path) -> str:
    with pytest.raises(SourceError) as caught:
        run_feed(path)
    message = caught.value.user_message()
    assert "\n" not in message
    return message


@pytest.mark.parametrize("missing", ["agency.txt", "stops.txt", "routes.txt", "trips.txt", "stop_times.txt"])
def test_missing_required_file(write_feed: WriteFeed, run_feed: Any, missing: str) -> None:
    path = write_feed(drop=(missing,))
    assert _error(run_feed, path) == f"{path}: GTFS feed lacks required file {missing}"


def test_missing_both_calendars(write_feed: WriteFeed, run_feed: Any) -> None:
    path = write_feed(drop=("calendar.txt", "calendar_dates.txt"))
    assert _error(run_feed, path).endswith("lacks required file calendar.txt or calendar_dates.txt")


def test_calendar_period_ending_before_it_starts_never_runs(write_feed: WriteFeed, run_feed: Any) -> None:
    calendar = FEED["calendar.txt"].replace(
        "SA,0,0,0,0,0,1,0,20240101,20240131", "SA,0,0,0,0,0,1,0,20240131,20240101"
    )
    result, _ctx = run_feed(write_feed(calendar_txt=calendar))
    quality = _layer(result, "transit_stop_frequency").quality
    assert (quality["busiest_date"], quality["runs_on_busiest_date"]) == (
        "2024-01-03",
        8,
    )  # SA only by exception


def test_calendar_dates_alone_is_enough(write_feed: WriteFeed, run_feed: Any) -> None:
    dates = "service_id,date,exception_type\nWD,20240105,1\nWD,20240106,1\nSA,20240106,1\n"
    result, _ctx = run_feed(write_feed(drop=("calendar.txt",), calendar_dates_txt=dates))
    assert _layer(result, "transit_stop_frequency").quality["busiest_date"] == "2024-01-06"


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        ("stops.txt", "60.166,24.94", "abc,24.94", "stops.txt line 3: stop_lat 'abc' is not a number"),
        ("stops.txt", "60.166,24.94", "95.5,24.94", "stops.txt line 3: stop_lat '95.5' is outside [-90, 90]"),
        ("stops.txt", "60.167,24.95", "60.167,", "stops.txt line 4: stop_lon is empty (required for stops"),
        (
            "stops.txt",
            "24.96,0,",
            "24.96,7,",
            "stops.txt line 5: location_type '7' is not one of 0, 1, 2, 3, 4",
        ),
        (
            "stop_times.txt",
            "T1,07:10:00",
            "T1,7:1:00",
            "stop_times.txt line 3: arrival_time '7:1:00' is not a time",
        ),
        (
            "stop_times.txt",
            "07:20:00,C,3",
            "07:61:00,C,3",
            "stop_times.txt line 4: departure_time '07:61:00'",
        ),
        (
            "stop_times.txt",
            "07:20:00,C,3",
            "07:20:00,C,three",
            "line 4: stop_sequence 'three' is not an integer",
        ),
        ("stop_times.txt", "T1,07:00:00,07:00:00,A,1", ",07:00:00,07:00:00,A,1", "line 2: trip_id is empty"),
        ("routes.txt", "One,3", "One,bus", "routes.txt line 2: route_type 'bus' is not an integer"),
        (
            "calendar.txt",
            "20240101,20240131\nSA",
            "2024-01-01,20240131\nSA",
            "start_date '2024-01-01' is not a date",
        ),
        ("calendar.txt", "WD,1,1,1", "WD,1,2,1", "calendar.txt line 2: tuesday '2' is not one of 0, 1"),
        ("calendar_dates.txt", "WD,20240101,2", "WD,20240101,3", "exception_type '3' is not one of 1, 2"),
        ("frequencies.txt", ",900", ",0", "frequencies.txt line 2: headway_secs '0' is below 1"),
        ("trips.txt", "R1,WD,T1,0,", "R1,WD,T1,2,", "trips.txt line 2: direction_id '2' is not one of 0, 1"),
    ],
)
def test_wrong_values_name_file_line_and_field(
    write_feed: WriteFeed, run_feed: Any, file: str, old: str, new: str, expected: str
) -> None:
    assert old in FEED[file]
    path = write_feed(**{file.replace(".txt", "_txt"): FEED[file].replace(old, new, 1)})
    message = _error(run_feed, path)
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_missing_required_column(write_feed: WriteFeed, run_feed: Any) -> None:
    stops = FEED["stops.txt"].replace("stop_id,", "id,", 1)
    assert _error(run_feed, write_feed(stops_txt=stops)).endswith(
        "stops.txt: missing required column(s) stop_id"
    )


def test_empty_file(write_feed: WriteFeed, run_feed: Any) -> None:
    assert _error(run_feed, write_feed(stops_txt="")).endswith("stops.txt: file is empty")


def test_header_only_file(write_feed: WriteFeed, run_feed: Any) -> None:
    header = FEED["trips.txt"].splitlines()[0] + "\n"
    assert _error(run_feed, write_feed(trips_txt=header)).endswith("trips.txt: no rows")


def test_ragged_csv(write_feed: WriteFeed, run_feed: Any) -> None:
    routes = FEED["routes.txt"] + "R4,HSL,4,Four,3,extra,fields,here\n"
    assert "routes.txt: not valid CSV" in _error(run_feed, write_feed(routes_txt=routes))


def test_not_utf8(write_feed: WriteFeed, run_feed: Any, tmp_path: Path) -> None:
    path = write_feed(as_zip=False)
    (path / "stops.txt").write_bytes(FEED["stops.txt"].replace("Alpha", "Älpha").encode("latin-1"))
    assert _error(run_feed, path).endswith("stops.txt: not UTF-8 text")


def test_truncated_text_file(write_feed: WriteFeed, run_feed: Any) -> None:
    text = FEED["stop_times.txt"]
    cut = text[: text.index("O1,11:30:00") + len("O1,11:3")]  # the last line ends mid-time
    path = write_feed(as_zip=False, stop_times_txt=cut)
    assert _error(run_feed, path) == f"{path}: stop_times.txt line 17: stop_id is empty"


def test_truncated_zip(write_feed: WriteFeed, run_feed: Any) -> None:
    path = write_feed()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "not a readable zip file" in _error(run_feed, path)


def test_empty_and_missing_feed(tmp_path: Path, run_feed: Any) -> None:
    empty = tmp_path / "empty.zip"
    empty.write_bytes(b"")
    assert _error(run_feed, empty) == f"{empty}: file is empty"
    assert _error(run_feed, tmp_path / "nope.zip").endswith("GTFS feed not found")


# --- the real feeds ----------------------------------------------------------------------------


def _csv_rows(path: Path, name: str) -> list[dict[str, str]]:
    with zipfile.ZipFile(path) as archive, archive.open(name) as handle:
        return list(csv.DictReader(io.TextIOWrapper(handle, encoding="utf-8-sig")))


def test_sample_feed_with_frequencies(
    shared_file: Any, run_feed: Any, make_context: Any, source_entry: Any
) -> None:
    path = shared_file("gtfs/sample_gtfs.zip")
    # the demo feed lies in Nevada: an area around it, in its own UTM zone
    ctx = make_context(
        [source_entry("demo", "gtfs", path)], bbox=(-117.5, 36.0, -116.0, 37.5), crs="EPSG:32611"
    )
    result = ingest(ctx.config.sources[0], ctx)
    rows = {layer.table: layer.rows for layer in result.layers}
    assert rows["transit_stops"] == 9
    assert rows["transit_trips"] == 11
    assert rows["transit_stop_times"] == 28
    # Saturday 2007-01-06, the first weekend day: FULLW and WE both run. Runs: STBA every 30 min
    # 06:00-22:00 = 32, CITY1 and CITY2 4+12+12+18+6 = 52 each, AB/BFC 4, AAMV 4: 144.
    quality = _layer(result, "transit_stop_frequency").quality
    assert quality["busiest_date"] == "2007-01-06"
    assert quality["runs_on_busiest_date"] == 144
    frequency = _frequency(ctx)
    # STAGECOACH at 8h: STBA 08:00, 08:30 and CITY1 every 10 min (CITY2 ends there: not a departure)
    assert frequency[("STAGECOACH", 8)] == 8
    # DADAN at 6h: CITY1 runs 06:00/06:30 + 21 min, CITY2 runs 06:00/06:30 + 7 min
    assert frequency[("DADAN", 6)] == 4
    assert ("AMV", 9) not in frequency  # AAMV1 ends at AMV at 9:00


def test_cairns_feed(shared_file: Any, make_context: Any, source_entry: Any) -> None:
    path = shared_file("gtfs/cairns_gtfs.zip")
    ctx = make_context(
        [source_entry("cairns", "gtfs", path)], bbox=(145.0, -17.5, 146.5, -16.0), crs="EPSG:32755"
    )
    result = ingest(ctx.config.sources[0], ctx)
    rows = {layer.table: layer.rows for layer in result.layers}
    assert rows["transit_stops"] == len(_csv_rows(path, "stops.txt")) == 416
    assert rows["transit_stop_times"] == len(_csv_rows(path, "stop_times.txt")) == 37790
    assert rows["transit_routes"] == 22
    # Fridays run the weekday service and the Friday-only one; the first Friday is 2014-05-30.
    trips = _csv_rows(path, "trips.txt")
    friday = {"CNS2014-CNS_MUL-Weekday-00", "CNS2014-CNS_MUL-Weekday-00-0000100"}
    quality = _layer(result, "transit_stop_frequency").quality
    assert quality["busiest_date"] == "2014-05-30"
    assert quality["runs_on_busiest_date"] == sum(t["service_id"] in friday for t in trips)
    stop_times = _csv_rows(path, "stop_times.txt")
    friday_trips = {t["trip_id"] for t in trips if t["service_id"] in friday}
    last: dict[str, int] = {}
    for row in stop_times:
        if row["trip_id"] in friday_trips:
            seq = int(row["stop_sequence"])
            last[row["trip_id"]] = max(last.get(row["trip_id"], seq), seq)
    expected = sum(
        1
        for row in stop_times
        if row["trip_id"] in friday_trips and int(row["stop_sequence"]) != last[row["trip_id"]]
    )
    assert quality["departures_on_busiest_date"] == expected


def test_the_stored_feed_gives_the_bus_and_tram_runs_of_an_hour(write_feed: WriteFeed, run_feed: Any) -> None:
    """The traffic engine's bus runs from the stored tables: the busiest day is Wednesday 3 January
    (the weekday trips and the Saturday service added that day); F1 (tram line 2) runs every 15 min
    from 08:00 to 09:00 (frequencies.txt), T1 and T2 (bus line 1) leave A at 07:00 and 07:30, S1
    (Saturday service, line 2) at 10:00."""
    from civictwin.engines.traffic.inputs import read_schedule
    from civictwin.engines.traffic.transit import gtfs_departures

    _, ctx = run_feed(write_feed())
    schedule = read_schedule(ctx.store, ctx.store.read_frame("transit_stops"))
    assert schedule is not None

    def runs(hour: int) -> list[list[object]]:
        found = gtfs_departures(schedule, clock_begin_s=hour * 3600, window_s=3600)
        return found[["trip_id", "line", "depart_s"]].values.tolist()

    assert runs(7) == [["T1", "1", 0.0], ["T2", "1", 1800.0]]
    assert runs(8) == [["F1", "2", 0.0], ["F1", "2", 900.0], ["F1", "2", 1800.0], ["F1", "2", 2700.0]]
    assert runs(10) == [["S1", "2", 0.0]]
    assert runs(12) == []
