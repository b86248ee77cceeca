"""The City of Helsinki's traffic counts ("Liikennemäärät Helsingissä", CC BY 4.0) as count datastreams.

One CSV row per counting point (``piste``), direction (``suunta``), time slot (``aika``, HHMM start)
and year (``vuosi``), with vehicles per class: ``ha`` cars, ``pa`` vans, ``ka`` lorries, ``ra``
lorries with trailer, ``la`` buses, ``mp`` motorcycles, ``rv`` trams, ``autot`` all motor vehicles.
Coordinates are GK25 (EPSG:3879). How each quirk is handled:

- **Slots to hours.** 06:00–09:00 and 15:00–18:00 come as 15-minute slots: the four slots of an hour
  are summed into it. An hour with fewer than four of its slots is stored as missing (null), never as
  a partial sum, and counted.
- **No date.** The file gives one value per slot and year, no day: each year is one typical day.
  Observations are placed on a nominal date, 1 January of the year in Helsinki local time (EET,
  UTC+2, so no daylight-saving hour is involved), hour by hour; each datastream says so in its
  ``time_basis`` property.
- **Point C18** has no direction and two rows per slot: the two rows are summed into one two-way
  count (direction ``both``); the file does not say which row is which direction.
- **Encoding.** The file is documented as Latin-1, but its bytes are UTF-8 with U+FFFD replacement
  characters where Ä and Ö were (``PITK�SILTA``): it is decoded as UTF-8 when it is valid UTF-8,
  as Latin-1 otherwise, and names that lost letters are counted in the notes.
- **Silent points.** A point whose every count is zero in every year and class (B11) is kept, its
  observations flagged ``suspect``: a counter that counted nothing is not evidence of an empty road.
- **Copied years.** Years whose counts repeat the previous year's hour by hour (all of 2016 repeats
  2015) are named in the notes.
- **Directions.** ``1`` and ``2`` are not explained in the file; :mod:`civictwin.model.counts`
  decides which directed edge each is, from the street geometry and the morning/afternoon peaks
  recorded here per direction.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
from pyproj import Transformer
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from civictwin.config import SensorSourceConfig
from civictwin.errors import SourceError
from civictwin.sources.observations.feed import CountSite, ObservationFeed
from civictwin.store.observations import (
    MS_PER_HOUR,
    OM_COUNT,
    DatastreamSpec,
    LocationSpec,
    ObservedPropertySpec,
    Quality,
    SensorSpec,
    ThingSpec,
    Unit,
)

SOURCE_CRS = "EPSG:3879"
"""ETRS89 / GK25FIN, the file's coordinates."""
LOCAL_OFFSET_MS = 2 * MS_PER_HOUR
"""Helsinki in January: EET, UTC+2."""
CLASSES: dict[str, str] = {
    "ha": "passenger cars",
    "pa": "vans",
    "ka": "lorries",
    "ra": "lorries with trailer",
    "la": "buses",
    "mp": "motorcycles",
    "rv": "trams",
    "autot": "all motor vehicles",
}
ALL_MOTOR_VEHICLES = "autot"
BOTH = "both"
AM_PEAK, PM_PEAK = (7, 8), (15, 16, 17)
_COLUMNS = ["piste", "nimi", "x_gk25", "y_gk25", "suunta", "aika", "vuosi"]
_QUARTERS = {0, 15, 30, 45}
TIME_BASIS = (
    "one typical day per year: the file gives no date, so each year's hours are placed on 1 January "
    "of that year (Helsinki local time)"
)
_UNIT = Unit(code="{vehicle}/h", name="vehicles per hour", symbol="veh/h")


def read_helsinki_counts(
    source: SensorSourceConfig, path: Path | str, area: BaseGeometry | None
) -> ObservationFeed:
    """Read the counts file ``path``: hourly counts per point, direction and vehicle class."""
    file = Path(path)
    table, notes = _read(file)
    classes = source.classes or list(CLASSES)
    unknown = [c for c in classes if c not in CLASSES or c not in table.columns]
    if unknown:
        raise SourceError(f"unknown or absent vehicle class(es) {', '.join(unknown)}", path=file)
    points = _points(table)
    if area is not None:
        inside = [
            area.intersects(Point(lon, lat)) for lon, lat in zip(points["lon"], points["lat"], strict=True)
        ]
        points = points[inside]
    table = table[table["piste"].isin(points.index)]
    hourly, incomplete = _hourly(table, classes)
    silent = _silent_points(table)
    feed = ObservationFeed(
        source=source, origin=file, datastreams=[], observations=pd.DataFrame(), notes=notes
    )
    frames = []
    for (point, direction), group in hourly.groupby(["piste", "direction"], sort=True):
        info = cast(pd.Series, points.loc[str(point)])
        keys = []
        for cls in classes:
            spec = _datastream(source, str(point), str(direction), cls, info)
            feed.datastreams.append(spec)
            feed.expected[spec.key] = 24 * table["vuosi"].nunique()
            keys.append(spec.key)
            frames.append(_rows(spec.key, group, cls, suspect=str(point) in silent))
        _add_site(feed, str(point), info, str(direction), keys, group)
    feed.observations = pd.concat(frames, ignore_index=True)
    if incomplete:
        feed.notes.append(
            f"{incomplete} point-hours had fewer than four 15-minute slots and are stored as missing"
        )
    feed.notes.append(
        "point C18 has no direction and two rows per slot: they are summed into one two-way count"
        if "C18" in set(table["piste"])
        else ""
    )
    if silent:
        feed.notes.append(
            f"{', '.join(sorted(silent))}: every count is zero in every year and class (a counter that did not "
            "count?); stored, flagged suspect"
        )
    feed.notes = [n for n in feed.notes if n]
    feed.notes.extend(_repeated_years(hourly))
    return feed


def _read(file: Path) -> tuple[pd.DataFrame, list[str]]:
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror}", path=file) from None
    try:
        text, encoding = raw.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        text, encoding = raw.decode("latin-1"), "Latin-1"
    from io import StringIO

    try:
        table = pd.read_csv(StringIO(text), dtype={"suunta": "string", "nimi": "string", "piste": "string"})
    except (pd.errors.ParserError, ValueError) as exc:
        raise SourceError(f"not a counts CSV: {exc}", path=file) from None
    missing = [c for c in _COLUMNS if c not in table.columns]
    if missing:
        raise SourceError(f"missing column(s) {', '.join(missing)}", path=file)
    notes = [] if encoding == "UTF-8" else [f"not valid UTF-8: decoded as {encoding}"]
    lost = table.loc[table["nimi"].str.contains("\ufffd", regex=False, na=False), "piste"].nunique()
    if lost:
        notes.append(
            f"{lost} points' street names lost letters in the source file (Ä/Ö replaced by U+FFFD before publication)"
        )
    return table, notes


def _points(table: pd.DataFrame) -> pd.DataFrame:
    """One row per point: its latest name, WGS84 position and the names of earlier years."""
    latest = table.sort_values("vuosi").groupby("piste").last()
    to_wgs84 = Transformer.from_crs(SOURCE_CRS, "EPSG:4326", always_xy=True)
    lon, lat = to_wgs84.transform(latest["x_gk25"].to_numpy(float), latest["y_gk25"].to_numpy(float))
    names = table.groupby("piste")["nimi"].agg(lambda s: sorted(set(s.dropna())))
    return pd.DataFrame({"name": latest["nimi"], "lon": lon, "lat": lat, "names": names}, index=latest.index)


def _hourly(table: pd.DataFrame, classes: list[str]) -> tuple[pd.DataFrame, int]:
    """Counts per point, direction, year and hour; quarter-hour slots summed; C18's rows summed."""
    frame = table.assign(
        direction=table["suunta"].fillna(BOTH).replace("", BOTH),
        hour=table["aika"] // 100,
        minute=table["aika"] % 100,
    )
    bad = frame[(frame["hour"] > 23) | ~frame["minute"].isin(_QUARTERS)]
    if not bad.empty:
        raise SourceError(
            f"slot {int(bad['aika'].iloc[0])}: not a start time HHMM at 0, 15, 30 or 45 minutes"
        )
    keys = ["piste", "direction", "vuosi", "hour"]
    per_slot = frame.groupby([*keys, "minute"], sort=False)[classes].sum().reset_index()
    grouped = per_slot.groupby(keys)
    sums = grouped[classes].sum()
    slots = grouped["minute"].agg(["count", "max"])
    quarter_hours = slots["max"] > 0
    incomplete = quarter_hours & (slots["count"] < len(_QUARTERS))
    sums.loc[incomplete, classes] = np.nan
    return sums.reset_index(), int(incomplete.sum())


def _silent_points(table: pd.DataFrame) -> set[str]:
    """Points whose every count (all classes, years and slots) is zero."""
    counts = table[[c for c in CLASSES if c in table.columns]].sum(axis=1).groupby(table["piste"]).sum()
    return {str(point) for point in counts[counts == 0].index}


def _rows(key: str, group: pd.DataFrame, cls: str, *, suspect: bool) -> pd.DataFrame:
    start_of_year = (
        pd.to_datetime(group["vuosi"].astype(str) + "-01-01", utc=True).dt.as_unit("ms").astype("int64")
    )
    start = (start_of_year + group["hour"] * MS_PER_HOUR - LOCAL_OFFSET_MS).to_numpy(np.int64)
    result = group[cls].to_numpy(np.float64)
    return pd.DataFrame(
        {
            "datastream": key,
            "phenomenon_time": start,
            "phenomenon_end": start + MS_PER_HOUR,
            "result": result,
            "quality": np.where(
                np.isnan(result), Quality.MISSING, Quality.SUSPECT if suspect else Quality.GOOD
            ).astype(np.int8),
        }
    )


def _datastream(
    source: SensorSourceConfig, point: str, direction: str, cls: str, info: pd.Series
) -> DatastreamSpec:
    name = str(info["name"])
    way = "both directions" if direction == BOTH else f"direction {direction}"
    thing = ThingSpec(
        key=f"{source.name}/{point}",
        name=f"{point} {name}",
        description=f"Traffic counting point {point} of the City of Helsinki",
        location=LocationSpec(
            key=f"{source.name}/{point}",
            name=f"{point} {name}",
            lon=float(info["lon"]),
            lat=float(info["lat"]),
        ),
        properties={"point": point, "names": list(info["names"])},
    )
    return DatastreamSpec(
        key=f"{source.name}/{point}/{direction}/{cls}",
        name=f"{point} {name}, {way}: {CLASSES[cls]}",
        description=f"Hourly count of {CLASSES[cls]} at point {point} ({way}); {TIME_BASIS}",
        dataset=source.name,
        thing=thing,
        sensor=SensorSpec(
            key=f"{source.name}/count",
            name="Helsinki traffic count",
            description="Traffic counts of the City of Helsinki (the file names no counting method)",
        ),
        observed_property=ObservedPropertySpec(
            key=f"{source.name}/{cls}",
            name=f"Traffic count: {CLASSES[cls]}",
            definition=f"vehicle class '{cls}'",
        ),
        unit=_UNIT,
        observation_type=OM_COUNT,
        valid_range=(0.0, None),
        properties={"point": point, "direction": direction, "vehicle_class": cls, "time_basis": TIME_BASIS},
    )


def _add_site(
    feed: ObservationFeed, point: str, info: pd.Series, direction: str, keys: list[str], group: pd.DataFrame
) -> None:
    """Record the counting point and this direction's peak evidence for the edge matching."""
    site = next((s for s in feed.count_sites if s.key == point), None)
    if site is None:
        site = CountSite(
            key=point,
            name=str(info["name"]),
            lon=float(info["lon"]),
            lat=float(info["lat"]),
            directions={},
            am_pm_ratio={},
            totals={},
        )
        feed.count_sites.append(site)
    totals = group[ALL_MOTOR_VEHICLES] if ALL_MOTOR_VEHICLES in group else group.iloc[:, -1]
    am = float(totals[group["hour"].isin(AM_PEAK)].sum())
    pm = float(totals[group["hour"].isin(PM_PEAK)].sum())
    site.directions[direction] = keys
    site.am_pm_ratio[direction] = am / pm if pm > 0 else float("nan")
    site.totals[direction] = float(totals.sum())


def _repeated_years(hourly: pd.DataFrame) -> list[str]:
    """Notes on years whose counts repeat the previous year's exactly (a copied year, not a count)."""
    value = ALL_MOTOR_VEHICLES if ALL_MOTOR_VEHICLES in hourly else hourly.columns[-1]
    profiles = hourly.pivot_table(index=["piste", "direction", "hour"], columns="vuosi", values=value)
    counted = profiles.groupby(level=[0, 1]).transform("sum").sum(axis=1) > 0
    profiles = profiles[counted]  # a direction that is always zero (a one-way street) repeats trivially
    years = sorted(profiles.columns)
    notes = []
    for previous, year in pairwise(years):
        same = (profiles[year] == profiles[previous]).groupby(level=[0, 1]).all()
        copied = sorted({str(point) for point, _ in same[same].index})
        if copied:
            notes.append(
                f"{year}: {len(copied)} of {profiles.index.get_level_values(0).nunique()} points that counted "
                f"traffic repeat {previous}'s counts exactly, hour by hour (copied rather than counted?)"
            )
    return notes
