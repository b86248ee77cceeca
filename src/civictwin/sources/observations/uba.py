"""The German Environment Agency's (UBA) air-quality series: ``<YYYYMM>/<station>/<component>/<series>.json``.

Each file maps days (``YYYYMMDD``) to a list of values: 24 for the hourly series (``1SMW`` hourly
mean, ``8SMW`` 8-hour moving mean) and one for the daily ones (``1TMW`` daily mean, ``1TMAX`` and
``8TMAX`` daily maxima); ``-999`` marks a missing value (stored as null, flagged ``missing``).

Time convention, checked against the agency's API (its ``airquality`` records are keyed by "date
start (CET)", a value's time being the *end* of its measuring hour in CET; hours are numbered 1 to
24): times are CET all year (UTC+1, no summer time), and the value of hour ``h`` (1..24) covers
``[h-1, h)`` CET. So the first value of a day covers 00:00–01:00 CET = 23:00–24:00 UTC the day
before. The files agree: 30 March 2014, when German clocks skipped an hour, still has 24 values.
An 8-hour moving mean ending at hour ``h`` covers ``[h-8, h)``; a daily value covers the CET day.

Values mostly come as integers; some as text with decimals (``"87.02"``, ``"-0.444"``): they are
read as numbers and counted in the notes. The component code ``PM1`` is the agency's component 1,
PM10 (its air-data API lists component 1 as "PM10"), the only particle fraction with daily means here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from civictwin.config import SensorSourceConfig
from civictwin.errors import SourceError
from civictwin.sources.observations.feed import FEED_COLUMNS, ObservationFeed
from civictwin.store.observations import (
    MS_PER_DAY,
    MS_PER_HOUR,
    DatastreamSpec,
    LocationSpec,
    ObservedPropertySpec,
    Quality,
    SensorSpec,
    ThingSpec,
    Unit,
)

CET_OFFSET_MS = MS_PER_HOUR
"""CET is UTC+1; the agency uses it all year."""
MISSING = -999
_MONTH = re.compile(r"^\d{6}$")
_DAY = re.compile(r"^\d{8}$")
_UNIT = Unit(code="ug/m3", name="microgram per cubic metre", symbol="µg/m³")

# Pollutants as the European Environment Agency's air-quality vocabulary defines them
# (http://dd.eionet.europa.eu/vocabulary/aq/pollutant): the definition URI of each ObservedProperty.
_POLLUTANTS: dict[str, tuple[str, str]] = {
    "NO2": ("Nitrogen dioxide (NO2)", "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/8"),
    "O3": ("Ozone (O3)", "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/7"),
    "SO2": ("Sulphur dioxide (SO2)", "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/1"),
    "PM1": ("Particulate matter PM10", "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/5"),
    "PM10": ("Particulate matter PM10", "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/5"),
    "PM2": ("Particulate matter PM2.5", "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/6001"),
    "CO": ("Carbon monoxide (CO)", "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/10"),
}

# series code -> (description, values per day, window length in hours)
SERIES: dict[str, tuple[str, int, int]] = {
    "1SMW": ("hourly mean", 24, 1),
    "8SMW": ("8-hour moving mean", 24, 8),
    "1TMW": ("daily mean", 1, 24),
    "1TMAX": ("daily maximum of the hourly means", 1, 24),
    "8TMAX": ("daily maximum of the 8-hour moving means", 1, 24),
}


def read_uba(source: SensorSourceConfig, path: Path | str, area: BaseGeometry | None) -> ObservationFeed:
    """Read the UBA series under the directory ``path`` (filtered by the source's stations,
    components and series, and by ``area`` when given)."""
    root = Path(path)
    if not root.is_dir():
        raise SourceError(
            "not a directory of UBA series (<YYYYMM>/<station>/<component>/<series>.json)", path=root
        )
    stations = _stations(root)
    files = sorted(_series_files(root, source))
    if not files:
        raise SourceError(
            "no UBA series files match the configured stations, components and series", path=root
        )
    feed = ObservationFeed(source=source, origin=root, datastreams=[], observations=pd.DataFrame())
    specs: dict[str, DatastreamSpec] = {}
    frames: list[pd.DataFrame] = []
    text_values = 0
    for month_dir, station, component, series, file in files:
        info = stations.get(station)
        if info is None:
            raise SourceError(
                f"station {station} is not in stations_complete.csv or stations_active.csv", path=file
            )
        if area is not None and not area.intersects(shapely.Point(info["lon"], info["lat"])):
            continue
        spec = specs.get(f"{source.name}/{station}/{component}/{series}")
        if spec is None:
            spec = _datastream(source, station, component, series, info)
            specs[spec.key] = spec
        frame, texts = _observations(file, spec.key, series, month_dir, feed)
        frames.append(frame)
        text_values += texts
    feed.datastreams = list(specs.values())
    feed.observations = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=FEED_COLUMNS)
    if text_values:
        feed.notes.append(f'{text_values} values were given as text (e.g. "87.02") and were read as numbers')
    return feed


def _stations(root: Path) -> dict[str, dict[str, Any]]:
    """Station code -> name, lon, lat, type and area, from the agency's station lists."""
    found: dict[str, dict[str, Any]] = {}
    for name in ("stations_active.csv", "stations_complete.csv"):
        path = root / name
        if not path.is_file():
            continue
        try:
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
            for row in table.to_dict("records"):
                found.setdefault(
                    str(row["station_code"]),
                    {
                        "name": row["station_name"],
                        "lon": float(row["station_longitude_d"]),
                        "lat": float(row["station_latitude_d"]),
                        "type": row["type_of_station"],
                        "area": row["station_type_of_area"],
                        "network": row["network_code"],
                    },
                )
        except (ValueError, KeyError, pd.errors.ParserError) as exc:
            raise SourceError(f"not a UBA station list: {exc}", path=path) from None
    if not found:
        raise SourceError("no stations_complete.csv or stations_active.csv here", path=root)
    return found


def _series_files(root: Path, source: SensorSourceConfig) -> list[tuple[str, str, str, str, Path]]:
    wanted_stations = set(source.stations or [])
    wanted_components = set(source.components or [])
    wanted_series = set(source.series or SERIES)
    unknown = wanted_series - set(SERIES)
    if unknown:
        raise SourceError(f"unknown UBA series {', '.join(sorted(unknown))}; known: {', '.join(SERIES)}")
    result = []
    for file in root.glob("*/*/*/*.json"):
        month, station, component = file.parts[-4], file.parts[-3], file.parts[-2]
        series = file.stem
        if not _MONTH.match(month) or series not in wanted_series:
            continue
        if (wanted_stations and station not in wanted_stations) or (
            wanted_components and component not in wanted_components
        ):
            continue
        result.append((month, station, component, series, file))
    return result


def _datastream(
    source: SensorSourceConfig, station: str, component: str, series: str, info: dict[str, Any]
) -> DatastreamSpec:
    label, definition = _POLLUTANTS.get(component, (component, component))
    description, _, hours = SERIES[series]
    thing = ThingSpec(
        key=f"{source.name}/{station}",
        name=str(info["name"]),
        description=f"Air-quality station {station} ({info['type']}, {info['area']})",
        location=LocationSpec(
            key=f"{source.name}/{station}", name=str(info["name"]), lon=info["lon"], lat=info["lat"]
        ),
        properties={
            "station_code": station,
            "station_type": info["type"],
            "area_type": info["area"],
            "network": info["network"],
        },
    )
    return DatastreamSpec(
        key=f"{source.name}/{station}/{component}/{series}",
        name=f"{info['name']}: {label}, {description}",
        description=f"{label} at station {station}, {description} ({series}), µg/m³, times in CET as the agency gives them",
        dataset=source.name,
        thing=thing,
        sensor=SensorSpec(
            key=f"{source.name}/{component}",
            name=f"{component} monitor",
            description="Continuous monitor of the German air-quality networks (the files name no method)",
        ),
        observed_property=ObservedPropertySpec(
            key=f"{source.name}/{component}", name=label, definition=definition
        ),
        unit=_UNIT,
        interval_s=3600 if hours == 1 or series == "8SMW" else 86400,
        properties={"series": series, "aggregation": description, "window_hours": hours},
    )


def _observations(
    file: Path, key: str, series: str, month: str, feed: ObservationFeed
) -> tuple[pd.DataFrame, int]:
    """One file's values as feed rows, and how many of them were text."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"not a UBA series file: {exc}", path=file) from None
    if not isinstance(data, dict):
        raise SourceError("expected an object of days", path=file)
    _, per_day, hours = SERIES[series]
    starts: list[int] = []
    values: list[float] = []
    texts = 0
    for day, day_values in data.items():
        if not _DAY.match(str(day)) or not str(day).startswith(month) or not isinstance(day_values, list):
            raise SourceError(
                f"day {day!r}: expected YYYYMMDD of month {month} with a list of values", path=file
            )
        if len(day_values) != per_day:
            raise SourceError(
                f"day {day}: {len(day_values)} values, expected {per_day} for {series}", path=file
            )
        midnight_utc = int(pd.Timestamp(str(day), tz="UTC").value // 1_000_000) - CET_OFFSET_MS
        for index, raw in enumerate(day_values):
            value, was_text = _value(raw)
            texts += was_text
            if value is None:
                feed.reject(key, "not a number")
                continue
            end = midnight_utc + (index + 1) * MS_PER_HOUR if per_day == 24 else midnight_utc + MS_PER_DAY
            starts.append(end - hours * MS_PER_HOUR)
            values.append(value)
    result = np.array(values, dtype=np.float64)
    start = np.array(starts, dtype=np.int64)
    frame = pd.DataFrame(
        {
            "datastream": key,
            "phenomenon_time": start,
            "phenomenon_end": start + hours * MS_PER_HOUR,
            "result": np.where(result == MISSING, np.nan, result),
            "quality": np.where(result == MISSING, Quality.MISSING, Quality.GOOD).astype(np.int8),
        }
    )
    return frame, texts


def _value(raw: Any) -> tuple[float | None, int]:
    """A value as a number (None if it is not one) and whether it came as text."""
    if isinstance(raw, bool):
        return None, 0
    if isinstance(raw, int | float):
        return float(raw), 0
    if isinstance(raw, str):
        try:
            return float(raw), 1
        except ValueError:
            return None, 1
    return None, 0
