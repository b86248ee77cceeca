"""GTFS sources: a transit feed (zip or directory) read into the ``transit_*`` tables.

Required files: ``agency.txt``, ``stops.txt``, ``routes.txt``, ``trips.txt``, ``stop_times.txt``,
and ``calendar.txt`` or ``calendar_dates.txt``; ``frequencies.txt`` is used when present (and kept as
``transit_frequencies`` for the trips kept, so headway-based runs can be simulated). Every file
is parsed as text and then converted, so a bad value is an error naming the file, the line and the
field (a latitude that is not a number, a time that is not ``H:MM:SS``, ...). Times may pass
24:00:00 and are stored as seconds after midnight of the service day.

What is kept: stops intersecting the area (the others are counted as ``outside_area``), the
stop_times at kept stops, and the trips, routes and calendar entries those stop_times use, so every
stored row refers to stored rows. Stop_times naming an unknown stop or trip, trips naming an unknown
route, and repeated ids are counted in the quality record and left out (the first of repeated ids is
kept); trips whose service is in neither calendar file are counted (``unknown_service``) and never run.

``IngestedLayer.rows`` is the number of rows this feed contributed to each table.

Each table carries a ``feed`` column holding the source name; a second GTFS source appends its rows
to the same tables (re-ingesting a feed replaces its own rows only).

``transit_calendar`` stores both calendar files in one long table: one row per ``calendar.txt``
line (weekday flags, ``start_date``, ``end_date``) and one per ``calendar_dates.txt`` line (``date``
and ``exception_type``: 1 added, 2 removed), the columns of the other kind left null.

Stop and route names longer than :data:`civictwin.sources.vector.MAX_TEXT_CHARS` are truncated and
counted (``truncated_values``), as for vector attributes.

``transit_stop_frequency`` is derived: departures per stop and hour on the busiest service day, the
date whose active services run the most trips (trips in ``frequencies.txt`` count once per run; ties
go to the earliest date), counted over the trips serving the area. A departure is a vehicle leaving
a stop: every stop of a trip except its last. Headway-based trips run at ``start_time``,
``start_time + headway`` ... while before ``end_time``, with the stop offsets of their stop_times.
Stops without times between two timed stops get times interpolated by stop sequence (for the
frequency count only; the stored stop_times keep the file's values).

A feed whose service period (first to last day any service of the area's trips runs) ended before
the build day, or starts after it, is said loudly: the quality record of ``transit_stop_frequency``
gets ``service_period`` (first, last, build day, ``status`` ``ended``/``not started``/``current``) and
a note starting "warning:" naming the feed and the day whose departures were counted.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import shapely

from civictwin.config import SourceConfig
from civictwin.errors import SourceError, first_line, shorten
from civictwin.geometry import WGS84, GeometryReport, prepare_geometries
from civictwin.sources.base import BuildContext, IngestedLayer, IngestResult
from civictwin.sources.vector import truncate_text
from civictwin.store.base import GEOMETRY

REQUIRED_FILES = ("agency.txt", "stops.txt", "routes.txt", "trips.txt", "stop_times.txt")
CALENDAR_FILES = ("calendar.txt", "calendar_dates.txt")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# file -> (required columns, optional columns); other columns are not read.
_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "agency.txt": ((), ("agency_id", "agency_name")),
    "stops.txt": (("stop_id",), ("stop_name", "stop_lat", "stop_lon", "location_type", "parent_station")),
    "routes.txt": (("route_id", "route_type"), ("route_short_name", "route_long_name", "agency_id")),
    "trips.txt": (("route_id", "service_id", "trip_id"), ("direction_id", "shape_id")),
    "stop_times.txt": (("trip_id", "stop_id", "stop_sequence"), ("arrival_time", "departure_time")),
    "calendar.txt": (("service_id", *WEEKDAYS, "start_date", "end_date"), ()),
    "calendar_dates.txt": (("service_id", "date", "exception_type"), ()),
    "frequencies.txt": (("trip_id", "start_time", "end_time", "headway_secs"), ()),
}

_SCHEMAS: dict[str, pa.Schema] = {
    "transit_stops": pa.schema(
        [
            ("feed", pa.string()),
            ("stop_id", pa.string()),
            ("stop_name", pa.string()),
            ("location_type", pa.int64()),
            ("parent_station", pa.string()),
            (GEOMETRY, pa.binary()),
        ]
    ),
    "transit_routes": pa.schema(
        [
            ("feed", pa.string()),
            ("route_id", pa.string()),
            ("route_short_name", pa.string()),
            ("route_long_name", pa.string()),
            ("route_type", pa.int64()),
            ("agency_id", pa.string()),
        ]
    ),
    "transit_trips": pa.schema(
        [
            ("feed", pa.string()),
            ("trip_id", pa.string()),
            ("route_id", pa.string()),
            ("service_id", pa.string()),
            ("direction_id", pa.int64()),
            ("shape_id", pa.string()),
        ]
    ),
    "transit_stop_times": pa.schema(
        [
            ("feed", pa.string()),
            ("trip_id", pa.string()),
            ("stop_id", pa.string()),
            ("stop_sequence", pa.int64()),
            ("arrival_s", pa.int64()),
            ("departure_s", pa.int64()),
        ]
    ),
    "transit_calendar": pa.schema(
        [
            ("feed", pa.string()),
            ("service_id", pa.string()),
            *[(day, pa.bool_()) for day in WEEKDAYS],
            ("start_date", pa.date32()),
            ("end_date", pa.date32()),
            ("date", pa.date32()),
            ("exception_type", pa.int64()),
        ]
    ),
    "transit_stop_frequency": pa.schema(
        [("feed", pa.string()), ("stop_id", pa.string()), ("hour", pa.int64()), ("departures", pa.int64())]
    ),
    "transit_frequencies": pa.schema(
        [
            ("feed", pa.string()),
            ("trip_id", pa.string()),
            ("start_s", pa.int64()),
            ("end_s", pa.int64()),
            ("headway_s", pa.int64()),
        ]
    ),
}

_Opener = Callable[[], IO[bytes]]
"""Opens one feed file for binary reading."""

_TIME_PATTERN = r"^(\d{1,3}):([0-5]\d):([0-5]\d)$"
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)


def ingest(source: SourceConfig, ctx: BuildContext) -> IngestResult:
    """Read a GTFS feed into the ``transit_*`` tables, appending to rows of other feeds."""
    path = ctx.path_of(source)
    feed = read_feed(path)
    kept = _select(feed, ctx, clip=source.clip)
    kept.busiest["service_period"] = service_period(
        kept.calendar, kept.calendar_dates, datetime.now(UTC).date()
    )
    layers = _write_tables(source.name, feed, kept, ctx)
    ctx.report(f"{source.name}: {kept.stops.shape[0]} stops, {kept.trips.shape[0]} trips in the area")
    warning = _period_warning(source.name, kept.busiest)
    if warning:
        ctx.report(warning)
    return IngestResult(source=source, path=path, layers=layers)


# --- reading ---------------------------------------------------------------------------------------


@dataclass
class Feed:
    """The parsed, type-checked content of a feed (all of it, before selecting the area)."""

    path: Path
    stops: pd.DataFrame
    routes: pd.DataFrame
    trips: pd.DataFrame
    stop_times: pd.DataFrame
    calendar: pd.DataFrame
    calendar_dates: pd.DataFrame
    frequencies: pd.DataFrame
    duplicates: dict[str, int]
    unknown: dict[str, int]


def read_feed(path: Path) -> Feed:
    """Open and validate a feed; raises :class:`SourceError` naming file, line and field on bad input."""
    with _open_feed(path) as files:
        missing = [name for name in REQUIRED_FILES if name not in files]
        if not any(name in files for name in CALENDAR_FILES):
            missing.append("calendar.txt or calendar_dates.txt")
        if missing:
            raise SourceError(f"GTFS feed lacks required file {', '.join(missing)}", path=path)
        tables = {name: _read_file(path, files, name) for name in _COLUMNS}
    if tables["agency.txt"].empty:
        raise SourceError("agency.txt: no agency", path=path)
    for name in ("stops.txt", "routes.txt", "trips.txt", "stop_times.txt"):
        if tables[name].empty:
            raise SourceError(f"{name}: no rows", path=path)
    if tables["calendar.txt"].empty and tables["calendar_dates.txt"].empty:
        raise SourceError("calendar.txt and calendar_dates.txt have no rows", path=path)
    parse = _Parser(path)
    stops = parse.stops(tables["stops.txt"])
    routes = parse.routes(tables["routes.txt"])
    trips = parse.trips(tables["trips.txt"])
    stop_times = parse.stop_times(tables["stop_times.txt"])
    calendar = parse.calendar(tables["calendar.txt"])
    calendar_dates = parse.calendar_dates(tables["calendar_dates.txt"])
    frequencies = parse.frequencies(tables["frequencies.txt"])
    duplicates = {
        "stops": _count_duplicates(stops, ["stop_id"]),
        "routes": _count_duplicates(routes, ["route_id"]),
        "trips": _count_duplicates(trips, ["trip_id"]),
        "stop_times": _count_duplicates(stop_times, ["trip_id", "stop_sequence"]),
        "calendar": _count_duplicates(calendar, ["service_id"])
        + _count_duplicates(calendar_dates, ["service_id", "date"]),
    }
    stops, routes, trips = (
        f.drop_duplicates(k) for f, k in ((stops, "stop_id"), (routes, "route_id"), (trips, "trip_id"))
    )
    stop_times = stop_times.drop_duplicates(["trip_id", "stop_sequence"])
    unknown = {
        "trip_route": int((~trips["route_id"].isin(routes["route_id"])).sum()),
        "stop_time_stop": int((~stop_times["stop_id"].isin(stops["stop_id"])).sum()),
        "stop_time_trip": int((~stop_times["trip_id"].isin(trips["trip_id"])).sum()),
        "trip_service": int(
            (
                ~trips["service_id"].isin(pd.concat([calendar["service_id"], calendar_dates["service_id"]]))
            ).sum()
        ),
    }
    trips = trips[trips["route_id"].isin(routes["route_id"])]
    stop_times = stop_times[
        stop_times["stop_id"].isin(stops["stop_id"]) & stop_times["trip_id"].isin(trips["trip_id"])
    ]
    return Feed(
        path=path,
        stops=stops,
        routes=routes,
        trips=trips,
        stop_times=stop_times,
        calendar=calendar.drop_duplicates("service_id"),
        calendar_dates=calendar_dates.drop_duplicates(["service_id", "date"]),
        frequencies=frequencies,
        duplicates=duplicates,
        unknown=unknown,
    )


@contextmanager
def _open_feed(path: Path) -> Iterator[dict[str, _Opener]]:
    """The feed's files by name, from a directory or a zip (also one with a single folder inside)."""
    if not path.exists():
        raise SourceError("GTFS feed not found", path=path)
    if path.is_dir():
        yield {p.name: _file_opener(p) for p in path.iterdir() if p.is_file()}
        return
    if path.stat().st_size == 0:
        raise SourceError("file is empty", path=path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SourceError(f"not a readable zip file (truncated or corrupt?): {exc}", path=path) from None
    with archive:
        members: dict[str, zipfile.ZipInfo] = {}
        for info in sorted(archive.infolist(), key=lambda i: i.filename.count("/")):
            name = info.filename.rsplit("/", 1)[-1]
            if not info.is_dir() and name and name not in members:
                members[name] = info
        yield {name: _member_opener(archive, info) for name, info in members.items()}


def _file_opener(path: Path) -> _Opener:
    return lambda: path.open("rb")


def _member_opener(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Opener:
    return lambda: archive.open(info)


def _read_file(path: Path, files: dict[str, _Opener], name: str) -> pd.DataFrame:
    """One feed file as text columns (required + optional ones), or an empty frame when absent."""
    required, optional = _COLUMNS[name]
    wanted = (*required, *optional)
    if name not in files:
        return pd.DataFrame({c: pd.Series(dtype="string") for c in wanted})
    try:
        with files[name]() as handle:
            frame = _parse_csv(handle, wanted)
    except pd.errors.EmptyDataError:
        raise SourceError(f"{name}: file is empty", path=path) from None
    except pd.errors.ParserError as exc:
        raise SourceError(f"{name}: not valid CSV: {first_line(exc)}", path=path) from None
    except UnicodeDecodeError:
        raise SourceError(f"{name}: not UTF-8 text", path=path) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise SourceError(
            f"{name}: cannot read (truncated or corrupt zip?): {first_line(exc)}", path=path
        ) from None
    absent = [c for c in required if c not in frame.columns]
    if absent:
        raise SourceError(f"{name}: missing required column(s) {', '.join(absent)}", path=path)
    for column in optional:
        if column not in frame.columns:
            frame[column] = pd.Series(pd.NA, index=frame.index, dtype="string")
    return frame[list(wanted)]


def _parse_csv(handle: IO[bytes], wanted: tuple[str, ...]) -> pd.DataFrame:
    """The ``wanted`` columns as stripped text, empty cells as NA.

    Every column is read (not only the wanted ones) so pandas still rejects rows with too many fields:
    a stray comma shifts every later value of the row.
    """
    text = io.TextIOWrapper(handle, encoding="utf-8-sig")
    frame = pd.read_csv(text, dtype="string", keep_default_na=False, na_values=[""], skipinitialspace=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.loc[:, ~frame.columns.duplicated()][[c for c in wanted if c in frame.columns]]
    for column in frame.columns:
        stripped = frame[column].str.strip()
        frame[column] = stripped.mask(stripped == "")
    return frame


class _Parser:
    """Type conversion of feed files; every error names the file, the line and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def stops(self, raw: pd.DataFrame) -> pd.DataFrame:
        self._require(raw, "stops.txt", ["stop_id"])
        location_type = self._integers(raw, "stops.txt", "location_type", allowed=range(5)).fillna(0)
        lat = self._numbers(raw, "stops.txt", "stop_lat", -90, 90)
        lon = self._numbers(raw, "stops.txt", "stop_lon", -180, 180)
        needs_position = location_type.isin([0, 1, 2]) & (lat.isna() | lon.isna())
        if needs_position.any():
            row = int(np.flatnonzero(needs_position.to_numpy())[0])
            column = "stop_lat" if pd.isna(lat.iloc[row]) else "stop_lon"
            raise self._error("stops.txt", row, column, "is empty (required for stops and stations)")
        return pd.DataFrame(
            {
                "stop_id": raw["stop_id"],
                "stop_name": raw["stop_name"],
                "location_type": location_type,
                "parent_station": raw["parent_station"],
                "lat": lat,
                "lon": lon,
            }
        )

    def routes(self, raw: pd.DataFrame) -> pd.DataFrame:
        self._require(raw, "routes.txt", ["route_id", "route_type"])
        routes = raw.copy()
        routes["route_type"] = self._integers(raw, "routes.txt", "route_type", allowed=None)
        return routes

    def trips(self, raw: pd.DataFrame) -> pd.DataFrame:
        self._require(raw, "trips.txt", ["route_id", "service_id", "trip_id"])
        trips = raw.copy()
        trips["direction_id"] = self._integers(raw, "trips.txt", "direction_id", allowed=range(2))
        return trips

    def stop_times(self, raw: pd.DataFrame) -> pd.DataFrame:
        self._require(raw, "stop_times.txt", ["trip_id", "stop_id", "stop_sequence"])
        return pd.DataFrame(
            {
                "trip_id": raw["trip_id"],
                "stop_id": raw["stop_id"],
                "stop_sequence": self._integers(
                    raw, "stop_times.txt", "stop_sequence", allowed=None, minimum=0
                ),
                "arrival_s": self._times(raw, "stop_times.txt", "arrival_time"),
                "departure_s": self._times(raw, "stop_times.txt", "departure_time"),
            }
        )

    def calendar(self, raw: pd.DataFrame) -> pd.DataFrame:
        self._require(raw, "calendar.txt", ["service_id", *WEEKDAYS, "start_date", "end_date"])
        calendar = pd.DataFrame({"service_id": raw["service_id"]})
        for day in WEEKDAYS:
            calendar[day] = self._integers(raw, "calendar.txt", day, allowed=range(2)).astype("boolean")
        calendar["start_date"] = self._dates(raw, "calendar.txt", "start_date")
        calendar["end_date"] = self._dates(raw, "calendar.txt", "end_date")
        return calendar

    def calendar_dates(self, raw: pd.DataFrame) -> pd.DataFrame:
        self._require(raw, "calendar_dates.txt", ["service_id", "date", "exception_type"])
        return pd.DataFrame(
            {
                "service_id": raw["service_id"],
                "date": self._dates(raw, "calendar_dates.txt", "date"),
                "exception_type": self._integers(
                    raw, "calendar_dates.txt", "exception_type", allowed=range(1, 3)
                ),
            }
        )

    def frequencies(self, raw: pd.DataFrame) -> pd.DataFrame:
        self._require(raw, "frequencies.txt", ["trip_id", "start_time", "end_time", "headway_secs"])
        return pd.DataFrame(
            {
                "trip_id": raw["trip_id"],
                "start_s": self._times(raw, "frequencies.txt", "start_time"),
                "end_s": self._times(raw, "frequencies.txt", "end_time"),
                "headway_s": self._integers(raw, "frequencies.txt", "headway_secs", allowed=None, minimum=1),
            }
        )

    # helpers

    def _error(self, file: str, row: int, column: str, problem: str) -> SourceError:
        return SourceError(f"{file} line {row + 2}: {column} {problem}", path=self.path)

    def _first_bad(
        self, file: str, raw: pd.DataFrame, column: str, bad: pd.Series, problem: str
    ) -> SourceError:
        row = int(np.flatnonzero(bad.to_numpy(dtype=bool))[0])
        return self._error(file, row, column, f"{shorten(str(raw[column].iloc[row]))!r} {problem}")

    def _require(self, raw: pd.DataFrame, file: str, columns: list[str]) -> None:
        for column in columns:
            empty = raw[column].isna()
            if empty.any():
                raise self._error(file, int(np.flatnonzero(empty.to_numpy())[0]), column, "is empty")

    def _numbers(self, raw: pd.DataFrame, file: str, column: str, low: float, high: float) -> pd.Series:
        values = pd.to_numeric(raw[column], errors="coerce").astype("float64")
        not_number = values.isna() & raw[column].notna()
        if not_number.any():
            raise self._first_bad(file, raw, column, not_number, "is not a number")
        out_of_range = ~values.between(low, high) & values.notna()
        if out_of_range.any():
            raise self._first_bad(file, raw, column, out_of_range, f"is outside [{low:g}, {high:g}]")
        return values

    def _integers(
        self, raw: pd.DataFrame, file: str, column: str, *, allowed: range | None, minimum: int | None = None
    ) -> pd.Series:
        text = raw[column]
        is_int = text.str.fullmatch(r"[+-]?\d+").fillna(True).astype(bool)
        if not is_int.all():
            raise self._first_bad(file, raw, column, ~is_int, "is not an integer")
        values = pd.to_numeric(text).astype("Int64")
        if allowed is not None:
            bad = values.notna() & ~values.isin(list(allowed))
            if bad.any():
                raise self._first_bad(file, raw, column, bad, f"is not one of {', '.join(map(str, allowed))}")
        if minimum is not None:
            bad = values.notna() & (values < minimum)
            if bad.any():
                raise self._first_bad(file, raw, column, bad, f"is below {minimum}")
        return values

    def _times(self, raw: pd.DataFrame, file: str, column: str) -> pd.Series:
        parts = raw[column].str.extract(_TIME_PATTERN)
        bad = parts[0].isna() & raw[column].notna()
        if bad.any():
            raise self._first_bad(file, raw, column, bad, "is not a time H:MM:SS")
        numbers = parts.astype("Int64")
        return (numbers[0] * 3600 + numbers[1] * 60 + numbers[2]).astype("Int64")

    def _dates(self, raw: pd.DataFrame, file: str, column: str) -> pd.Series:
        values = pd.to_datetime(raw[column], format="%Y%m%d", errors="coerce")
        bad = values.isna() & raw[column].notna()
        if bad.any():
            raise self._first_bad(file, raw, column, bad, "is not a date YYYYMMDD")
        return values.astype("datetime64[s]")


def _count_duplicates(frame: pd.DataFrame, key: list[str]) -> int:
    return int(frame.duplicated(key).sum())


# --- selecting the area ---------------------------------------------------------------------------


@dataclass
class Selection:
    """The part of a feed serving the area, with the numbers the quality record needs."""

    stops: pd.DataFrame
    stop_geometries: npt.NDArray[np.object_]
    geometry: GeometryReport
    routes: pd.DataFrame
    trips: pd.DataFrame
    stop_times: pd.DataFrame
    calendar: pd.DataFrame
    calendar_dates: pd.DataFrame
    frequency: pd.DataFrame
    busiest: dict[str, Any] = field(default_factory=dict)


def _select(feed: Feed, ctx: BuildContext, *, clip: bool) -> Selection:
    points = np.asarray(
        shapely.points(feed.stops["lon"].to_numpy(), feed.stops["lat"].to_numpy()), dtype=object
    )
    points[feed.stops["lat"].isna().to_numpy() | feed.stops["lon"].isna().to_numpy()] = None
    inside, geometries, report = prepare_geometries(
        points, source_crs=WGS84, target_crs=ctx.crs, area=ctx.area if clip else None
    )
    stops = feed.stops[inside].reset_index(drop=True)
    stop_times = feed.stop_times[feed.stop_times["stop_id"].isin(stops["stop_id"])]
    trips = feed.trips[feed.trips["trip_id"].isin(stop_times["trip_id"])]
    services = trips["service_id"]
    frequency, busiest = stop_frequency(feed, trips, stops["stop_id"])
    return Selection(
        stops=stops,
        stop_geometries=geometries,
        geometry=report,
        routes=feed.routes[feed.routes["route_id"].isin(trips["route_id"])],
        trips=trips,
        stop_times=stop_times,
        calendar=feed.calendar[feed.calendar["service_id"].isin(services)],
        calendar_dates=feed.calendar_dates[feed.calendar_dates["service_id"].isin(services)],
        frequency=frequency,
        busiest=busiest,
    )


# --- departures per stop and hour ----------------------------------------------------------------


def stop_frequency(
    feed: Feed, trips: pd.DataFrame, stop_ids: pd.Series
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Departures per (stop, hour) at ``stop_ids`` on the busiest day of ``trips``, and that day's facts."""
    departures = _departures(feed, trips)
    runs = departures.drop_duplicates(["trip_id", "run"]).groupby("trip_id").size()
    runs_per_service = (
        trips.assign(runs=trips["trip_id"].map(runs).fillna(0)).groupby("service_id")["runs"].sum()
    )
    busiest = busiest_service_day(feed.calendar, feed.calendar_dates, runs_per_service)
    empty = pd.DataFrame({"stop_id": pd.Series(dtype="string"), "hour": [], "departures": []})
    if busiest is None:
        return empty, {"busiest_date": None, "runs_on_busiest_date": 0}
    day, total_runs = busiest
    active = active_services(feed.calendar, feed.calendar_dates, day)
    active_trips = trips.loc[trips["service_id"].isin(active), "trip_id"]
    chosen = departures[departures["trip_id"].isin(active_trips) & departures["stop_id"].isin(stop_ids)]
    counts = chosen.assign(hour=chosen["time_s"] // 3600).groupby(["stop_id", "hour"]).size()
    frame = counts.rename("departures").reset_index()
    facts = {
        "busiest_date": day.isoformat(),
        "runs_on_busiest_date": int(total_runs),
        "departures_on_busiest_date": int(frame["departures"].sum()),
    }
    return (frame if not frame.empty else empty), facts


def _departures(feed: Feed, trips: pd.DataFrame) -> pd.DataFrame:
    """Every departure (trip, run, stop, time in s) of ``trips``; headway-based trips expanded into runs."""
    times = feed.stop_times[feed.stop_times["trip_id"].isin(trips["trip_id"])]
    times = times.sort_values(["trip_id", "stop_sequence"]).reset_index(drop=True)
    times = times.assign(time_s=_interpolated_times(times))
    last = times.groupby("trip_id")["stop_sequence"].transform("max") == times["stop_sequence"]
    times = times[~last & times["time_s"].notna()]
    frequencies = feed.frequencies[feed.frequencies["trip_id"].isin(trips["trip_id"])]
    scheduled = times[~times["trip_id"].isin(frequencies["trip_id"])].assign(run=0)
    headway = times[times["trip_id"].isin(frequencies["trip_id"])]
    first = headway.groupby("trip_id")["time_s"].transform("min")
    offsets = headway.assign(offset=headway["time_s"] - first)
    starts = _run_starts(frequencies)
    expanded = offsets.merge(starts, on="trip_id").assign(time_s=lambda f: f["start"] + f["offset"])
    columns = ["trip_id", "run", "stop_id", "time_s"]
    return pd.concat([scheduled[columns], expanded[columns]], ignore_index=True)


def _interpolated_times(times: pd.DataFrame) -> pd.Series:
    """Departure (else arrival) time of each stop_time, interpolated by sequence between timed stops."""
    known = times["departure_s"].fillna(times["arrival_s"]).astype("float64")
    position = times.groupby("trip_id").cumcount().astype("float64")
    known_position = position.where(known.notna())
    by_trip = times["trip_id"]
    before_t, before_p = known.groupby(by_trip).ffill(), known_position.groupby(by_trip).ffill()
    after_t, after_p = known.groupby(by_trip).bfill(), known_position.groupby(by_trip).bfill()
    span = (after_p - before_p).replace(0, np.nan)
    interpolated = before_t + (after_t - before_t) * (position - before_p) / span
    return known.fillna(interpolated.round())


def _run_starts(frequencies: pd.DataFrame) -> pd.DataFrame:
    """One row per run of a headway-based trip: (trip_id, run, start in s)."""
    rows: list[tuple[str, int, int]] = []
    for trip_id, group in frequencies.groupby("trip_id", sort=True):
        bounds = group[["start_s", "end_s", "headway_s"]].to_numpy(dtype="int64")
        starts = np.concatenate([np.arange(start, end, step) for start, end, step in bounds])
        rows.extend((str(trip_id), run, int(start)) for run, start in enumerate(np.unique(starts)))
    return pd.DataFrame(rows, columns=["trip_id", "run", "start"])


def busiest_service_day(
    calendar: pd.DataFrame, calendar_dates: pd.DataFrame, runs_per_service: pd.Series
) -> tuple[Any, float] | None:
    """The date with the most trip runs (earliest on ties) and that number, or None without service.

    Counts per day are built with one difference array per weekday over the feed's date span, so a
    feed valid for decades costs a few arrays of that many days, not days × services.
    """
    weights = runs_per_service[runs_per_service > 0]
    cal = calendar[
        calendar["service_id"].isin(weights.index) & (calendar["start_date"] <= calendar["end_date"])
    ]
    exc = calendar_dates[calendar_dates["service_id"].isin(weights.index)]
    bounds = [cal["start_date"], cal["end_date"], exc["date"]]
    edges = pd.concat([b for b in bounds if not b.empty]) if any(not b.empty for b in bounds) else None
    if edges is None or edges.empty:
        return None
    first, last = _day(edges.min()), _day(edges.max())
    days = np.arange(first, last + 1)
    counts = np.zeros(len(days), dtype="float64")
    weekday = (days + _EPOCH_WEEKDAY) % 7
    for k, name in enumerate(WEEKDAYS):
        rows = cal[cal[name].fillna(False).astype(bool)]
        diff = np.zeros(len(days) + 1)
        w = weights.reindex(rows["service_id"]).to_numpy()
        np.add.at(diff, _days(rows["start_date"]) - first, w)
        np.add.at(diff, np.maximum(_days(rows["end_date"]) - first + 1, 0), -w)
        counts[weekday == k] += np.cumsum(diff)[: len(days)][weekday == k]
    if not exc.empty:
        base = _regular_service(cal, exc)
        sign = np.where((exc["exception_type"] == 1).to_numpy() & ~base, 1.0, 0.0)
        sign -= np.where((exc["exception_type"] == 2).to_numpy() & base, 1.0, 0.0)
        np.add.at(counts, _days(exc["date"]) - first, sign * weights.reindex(exc["service_id"]).to_numpy())
    best = int(np.argmax(counts))
    if counts[best] <= 0:
        return None
    return np.datetime64(int(days[best]), "D").astype(object), float(counts[best])


def service_period(calendar: pd.DataFrame, calendar_dates: pd.DataFrame, build_day: date) -> dict[str, Any]:
    """First and last day with service (calendar spans and added dates) and how ``build_day`` relates.

    ``status``: ``ended`` (the last service day is before the build day), ``not started`` (the first is
    after it), ``current``, or ``none`` when the calendars hold no service at all.
    """
    added = calendar_dates.loc[calendar_dates["exception_type"] == 1, "date"]
    starts = pd.concat([calendar["start_date"], added]).dropna()
    ends = pd.concat([calendar["end_date"], added]).dropna()
    period: dict[str, Any] = {"build_day": build_day.isoformat()}
    if starts.empty:
        return {**period, "first": None, "last": None, "status": "none"}
    first, last = pd.Timestamp(starts.min()).date(), pd.Timestamp(ends.max()).date()
    status = "ended" if last < build_day else "not started" if first > build_day else "current"
    return {**period, "first": first.isoformat(), "last": last.isoformat(), "status": status}


def _period_warning(feed_name: str, busiest: dict[str, Any]) -> str | None:
    """A loud line when the feed's service ended or has not started on the build day."""
    period = busiest.get("service_period") or {}
    counted = busiest.get("busiest_date") or "no day (no service found)"
    if period.get("status") == "ended":
        return (f"warning: GTFS feed '{feed_name}' ended on {period['last']}, before the build day "
                f"{period['build_day']}; its departures are counted on {counted}: replace it with a current feed")  # fmt: skip
    if period.get("status") == "not started":
        return (f"warning: GTFS feed '{feed_name}' starts on {period['first']}, after the build day "
                f"{period['build_day']}; its departures are counted on {counted}")  # fmt: skip
    return None


def active_services(calendar: pd.DataFrame, calendar_dates: pd.DataFrame, day: Any) -> set[str]:
    """The service_ids running on ``day`` (a ``datetime.date``)."""
    stamp = pd.Timestamp(day)
    weekday = WEEKDAYS[stamp.weekday()]
    regular = calendar[
        calendar[weekday].fillna(False).astype(bool)
        & (calendar["start_date"] <= stamp)
        & (calendar["end_date"] >= stamp)
    ]
    services = set(regular["service_id"].astype(str))
    exceptions = calendar_dates[calendar_dates["date"] == stamp]
    services |= set(exceptions.loc[exceptions["exception_type"] == 1, "service_id"].astype(str))
    services -= set(exceptions.loc[exceptions["exception_type"] == 2, "service_id"].astype(str))
    return services


def _regular_service(calendar: pd.DataFrame, exceptions: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """For each calendar_dates row: would calendar.txt alone run its service on its date?"""
    joined = exceptions[["service_id", "date"]].merge(calendar, on="service_id", how="left")
    weekday = joined["date"].dt.day_of_week.to_numpy()
    flags = joined[list(WEEKDAYS)].fillna(False).astype(bool).to_numpy()
    on_weekday = flags[np.arange(len(joined)), weekday] if len(joined) else np.zeros(0, dtype=bool)
    in_range = ((joined["start_date"] <= joined["date"]) & (joined["end_date"] >= joined["date"])).to_numpy()
    return np.asarray(on_weekday & in_range, dtype=bool)


def _day(value: Any) -> int:
    return int(np.datetime64(value, "D").astype("int64"))


def _days(values: pd.Series) -> npt.NDArray[np.int64]:
    return np.asarray(values.to_numpy(dtype="datetime64[D]").astype("int64"), dtype=np.int64)


# --- writing -------------------------------------------------------------------------------------


def _write_tables(feed_name: str, feed: Feed, kept: Selection, ctx: BuildContext) -> list[IngestedLayer]:
    names, truncated_stops = truncate_text(kept.stops[["stop_name"]])
    stops = kept.stops.assign(stop_name=names["stop_name"], geometry=shapely.to_wkb(kept.stop_geometries))
    route_names, truncated_routes = truncate_text(kept.routes[["route_short_name", "route_long_name"]])
    routes = kept.routes.assign(**{c: route_names[c] for c in route_names.columns})
    calendar_rows = pd.concat(
        [
            kept.calendar.assign(
                start_date=kept.calendar["start_date"].dt.date, end_date=kept.calendar["end_date"].dt.date
            ),
            kept.calendar_dates.assign(date=kept.calendar_dates["date"].dt.date),
        ],
        ignore_index=True,
    )
    served = kept.stops["stop_id"].isin(kept.stop_times["stop_id"]) | (kept.stops["location_type"] != 0)
    specs: list[tuple[str, str, pd.DataFrame, dict[str, Any]]] = [
        (
            "transit_stops",
            "Transit stops",
            stops,
            {
                "geometry": kept.geometry.as_dict(),
                "completeness": _completeness(kept.stops, ["stop_name"]),
                "duplicates": feed.duplicates["stops"],
                "stops_without_service": int((~served).sum()),
                "truncated_values": truncated_stops,
            },
        ),
        (
            "transit_routes",
            "Transit routes",
            routes,
            {
                "completeness": _completeness(kept.routes, ["route_short_name", "route_long_name"]),
                "duplicates": feed.duplicates["routes"],
                "truncated_values": truncated_routes,
            },
        ),
        (
            "transit_trips",
            "Transit trips",
            kept.trips,
            {
                "completeness": _completeness(kept.trips, ["direction_id", "shape_id"]),
                "duplicates": feed.duplicates["trips"],
                "unknown_route": feed.unknown["trip_route"],
                "unknown_service": feed.unknown["trip_service"],
            },
        ),
        (
            "transit_stop_times",
            "Transit stop times",
            kept.stop_times,
            {
                "completeness": _completeness(kept.stop_times, ["arrival_s", "departure_s"]),
                "duplicates": feed.duplicates["stop_times"],
                "unknown_stop": feed.unknown["stop_time_stop"],
                "unknown_trip": feed.unknown["stop_time_trip"],
            },
        ),
        (
            "transit_calendar",
            "Transit calendar",
            calendar_rows,
            {"completeness": {}, "duplicates": feed.duplicates["calendar"]},
        ),
        (
            "transit_stop_frequency",
            "Transit departures per stop and hour",
            kept.frequency,
            {"completeness": {}, "duplicates": 0, **kept.busiest},
        ),
    ]
    if not feed.frequencies.empty:  # headway-based trips, for simulating their runs (buses)
        kept_frequencies = feed.frequencies[feed.frequencies["trip_id"].isin(kept.trips["trip_id"])]
        specs.append(("transit_frequencies", "Transit headways", kept_frequencies, {"completeness": {}}))
    layers = []
    for table, title, frame, quality in specs:
        rows = _append(ctx, table, feed_name, frame)
        notes = _notes(table, kept)
        warning = _period_warning(feed_name, kept.busiest)
        if table == "transit_stop_frequency" and warning:
            notes.insert(0, warning)
        layers.append(IngestedLayer(table=table, rows=rows, title=title, quality=quality, notes=notes))
    return layers


def _notes(table: str, kept: Selection) -> list[str]:
    if table == "transit_stops" and kept.stops.empty:
        return ["no stop of this feed lies in the area"]
    if table != "transit_stop_frequency":
        return []
    if kept.busiest.get("busiest_date") is None:
        return ["no service day found for the trips serving the area: no departures counted"]
    return [f"departures counted on the busiest service day, {kept.busiest['busiest_date']}"]


def _completeness(frame: pd.DataFrame, columns: list[str]) -> dict[str, float]:
    if frame.empty:
        return {c: 1.0 for c in columns}
    return {c: float(frame[c].notna().mean()) for c in columns}


def _append(ctx: BuildContext, table: str, feed_name: str, frame: pd.DataFrame) -> int:
    """Write this feed's rows to ``table`` next to other feeds' rows; returns this feed's row count."""
    schema = _SCHEMAS[table]
    new = _to_arrow(frame.assign(feed=feed_name), schema)
    parts = [new]
    if ctx.store.has_table(table):
        existing = pd.DataFrame(ctx.store.read_table(table))
        existing = existing[existing["feed"] != feed_name]
        if GEOMETRY in existing.columns:
            existing[GEOMETRY] = shapely.to_wkb(existing[GEOMETRY].to_numpy())
        parts.insert(0, _to_arrow(existing, schema))
    ctx.store.write_table(table, pa.concat_tables(parts))
    return int(new.num_rows)


def _to_arrow(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    if frame.empty:
        return schema.empty_table()
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
