"""Observations from CSV, in long form (one row per observation) or wide form (one column per property).

The mapping lives in ``twin.toml`` (``[sensors.csv]``, ``[sensors.properties.<key>]``,
``[sensors.things.<id>]``, see ``docs/configuration.md``). Times are parsed with the configured format;
a time written without an offset is local time in the configured ``timezone`` (there is no default:
guessing a zone is how a series ends up an hour off). At a daylight-saving change:

- a wall-clock time that does not exist (the skipped hour in spring) is rejected, always;
- a wall-clock time that occurs twice (the repeated hour in autumn) follows ``ambiguous``: ``reject``
  (the default: the row is refused and counted), ``earlier`` or ``later`` (the first or second
  occurrence), or ``infer`` (from the order of each datastream's rows, as pandas infers it; a
  datastream whose order does not decide it has those rows rejected).

Cells equal to one of the ``missing`` markers (default ``-999`` and empty) are stored as null and
flagged ``missing``, never as numbers; any other cell that is not a number is rejected and counted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from civictwin.config import CsvConfig, ObservedPropertyConfig, SensorSourceConfig, ThingConfig
from civictwin.errors import SourceError
from civictwin.sources.observations.feed import FEED_COLUMNS, ObservationFeed
from civictwin.store.observations import (
    MS_PER_SECOND,
    DatastreamSpec,
    LocationSpec,
    ObservedPropertySpec,
    Quality,
    SensorSpec,
    ThingSpec,
    Unit,
)

AMBIGUOUS = "ambiguous local time (daylight-saving change)"
NONEXISTENT = "local time that does not exist (daylight-saving change)"
BAD_TIME = "unparseable time"
NOT_A_NUMBER = "not a number"
UNKNOWN_THING = "station not configured"
UNKNOWN_PROPERTY = "property not configured"
_SINGLE = "_single"


def read_csv_observations(
    source: SensorSourceConfig, path: Path | str, area: BaseGeometry | None
) -> ObservationFeed:
    """Read the CSV ``path`` with the source's mapping into a feed."""
    mapping = source.csv
    assert mapping is not None  # the config requires it for format 'csv'
    file = Path(path)
    table = _read(file, mapping)
    long = _to_long(table, mapping, source, file)
    feed = ObservationFeed(source=source, origin=file, datastreams=[], observations=pd.DataFrame())
    things = {key: thing for key, thing in source.things.items() if _inside(thing, area)}
    known = long["thing"].isin(list(things)) | (long["thing"] == _SINGLE)
    long = long[known | long["thing"].isin(list(source.things))]
    for thing_key, count in (
        long.loc[~long["thing"].isin([*source.things, _SINGLE]), "thing"].value_counts().items()
    ):
        feed.reject(f"{source.name}/{thing_key}", UNKNOWN_THING, int(count))
    outside = sorted(set(long["thing"]) - set(things) - {_SINGLE})
    long = long[long["thing"].isin([*things, _SINGLE])]
    if outside and long.empty:
        raise SourceError(
            f"{_stations(outside)} outside the twin's area: nothing to import (clip = false imports them)",
            path=file,
        )
    times = _times(long, mapping, feed, source.name)
    result, not_number = _numbers(long["value_text"], mapping)
    long = long.assign(phenomenon_time=times, result=result, not_number=not_number)
    long = long.dropna(subset=["phenomenon_time"])
    frames = []
    for (thing_key, prop_key), rows in long.groupby(["thing", "property"], sort=True):
        spec = _datastream(source, str(thing_key), str(prop_key), things)
        feed.datastreams.append(spec)
        frames.append(_rows(spec.key, rows, mapping, feed))
    feed.observations = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=FEED_COLUMNS)
    if outside:
        kept = len(feed.datastreams)
        feed.notes.append(
            f"warning: {file.name}: {_stations(outside)} outside the twin's area not imported; "
            f"{kept} datastream{'' if kept == 1 else 's'} imported from the stations inside"
        )
    return feed


def _stations(keys: list[str]) -> str:
    """``station 'a'`` or ``stations 'a', 'b'``: the configured stations (``[sensors.things]``) named."""
    return ("station " if len(keys) == 1 else "stations ") + ", ".join(repr(key) for key in keys)


def _read(file: Path, mapping: CsvConfig) -> pd.DataFrame:
    try:
        return pd.read_csv(
            file, sep=mapping.delimiter, dtype=str, keep_default_na=False, encoding=mapping.encoding
        )
    except FileNotFoundError:
        raise SourceError("file not found", path=file) from None
    except UnicodeDecodeError:
        raise SourceError(f"not {mapping.encoding} text (set csv.encoding)", path=file) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, LookupError) as exc:
        raise SourceError(f"not a readable CSV: {str(exc).strip().splitlines()[0]}", path=file) from None


def _to_long(table: pd.DataFrame, mapping: CsvConfig, source: SensorSourceConfig, file: Path) -> pd.DataFrame:
    """Rows of (thing, property, time text, value text), whatever the layout."""
    wanted = {
        "time": mapping.time,
        "thing": mapping.thing,
        "property": mapping.property,
        "value": mapping.value,
    }
    wanted.update({f"columns[{c}]": c for c in (mapping.columns or {})})
    for label, column in wanted.items():
        if column is not None and column not in table.columns:
            raise SourceError(f"column '{column}' (csv.{label}) not found", path=file)
    if mapping.thing is None and len(source.things) != 1:
        raise SourceError("no csv.thing column: configure exactly one [sensors.things.<id>]", path=file)
    thing = table[mapping.thing] if mapping.thing else pd.Series(_SINGLE, index=table.index)
    if mapping.layout == "long":
        assert mapping.property is not None and mapping.value is not None
        long = pd.DataFrame(
            {
                "row": table.index,
                "thing": thing,
                "property": table[mapping.property],
                "time_text": table[mapping.time],
                "value_text": table[mapping.value],
            }
        )
    else:
        assert mapping.columns is not None
        long = pd.concat(
            [
                pd.DataFrame(
                    {
                        "row": table.index,
                        "thing": thing,
                        "property": prop,
                        "time_text": table[mapping.time],
                        "value_text": table[column],
                    }
                )
                for column, prop in mapping.columns.items()
            ],
            ignore_index=True,
        )
    if _SINGLE in set(long["thing"]):
        long["thing"] = next(iter(source.things))
    unknown = ~long["property"].isin(list(source.properties))
    if unknown.any():
        raise SourceError(
            f"property {long.loc[unknown, 'property'].iloc[0]!r} has no [sensors.properties] entry", path=file
        )
    return long


def _inside(thing: ThingConfig, area: BaseGeometry | None) -> bool:
    return area is None or area.intersects(shapely.Point(thing.lon, thing.lat))


def _times(long: pd.DataFrame, mapping: CsvConfig, feed: ObservationFeed, source: str) -> pd.Series:
    """Phenomenon times in ms UTC (float, NaN where rejected; rejections counted per datastream)."""
    fmt = "ISO8601" if mapping.time_format.upper() == "ISO8601" else mapping.time_format
    parsed = pd.to_datetime(long["time_text"], format=fmt, errors="coerce", utc=False)
    keys = source + "/" + long["thing"].astype(str) + "/" + long["property"].astype(str)
    result = pd.Series(np.nan, index=long.index)
    bad = parsed.isna()
    for key, count in keys[bad].value_counts().items():
        feed.reject(str(key), BAD_TIME, int(count))
    if isinstance(parsed.dtype, pd.DatetimeTZDtype) or parsed.dtype == object:
        aware = pd.to_datetime(long["time_text"], format=fmt, errors="coerce", utc=True)
        known = ~aware.isna()
        result[known] = aware[known].dt.as_unit("ms").astype("int64").astype("float64")
    elif mapping.timezone is None:
        raise SourceError(
            "times carry no UTC offset: set csv.timezone to the IANA zone they are written in",
            path=feed.origin,
        )
    else:
        for key, rows in long[~bad].groupby(keys[~bad]):
            local = parsed[rows.index]
            millis, reasons = _localise(local, mapping)
            result[rows.index] = millis
            for reason, count in reasons.items():
                feed.reject(str(key), reason, count)
    if mapping.time_is == "end" and mapping.interval_s:
        result = result - mapping.interval_s * MS_PER_SECOND
    return result


def _localise(local: pd.Series, mapping: CsvConfig) -> tuple[np.ndarray, dict[str, int]]:
    """Wall-clock times in ``mapping.timezone`` as ms UTC (NaN where rejected) and rejection counts."""
    zone = mapping.timezone
    series = pd.Series(local.to_numpy(dtype="datetime64[ns]"))
    earlier = series.dt.tz_localize(zone, ambiguous=np.ones(len(series), dtype=bool), nonexistent="NaT")
    later = series.dt.tz_localize(zone, ambiguous=np.zeros(len(series), dtype=bool), nonexistent="NaT")
    nonexistent = earlier.isna().to_numpy()
    ambiguous = (~nonexistent) & (earlier != later).to_numpy()
    chosen = earlier if mapping.ambiguous in ("earlier", "reject") else later
    if mapping.ambiguous == "infer":
        try:
            chosen = series.dt.tz_localize(zone, ambiguous="infer", nonexistent="NaT")
        except ValueError:  # the order of this datastream's rows does not decide it
            chosen = earlier.where(~ambiguous)
    millis = chosen.dt.as_unit("ms").astype("int64").to_numpy()
    millis = np.where(chosen.isna().to_numpy(), np.nan, millis.astype(np.float64))
    rejected_ambiguous = ambiguous & np.isnan(millis) if mapping.ambiguous == "infer" else ambiguous
    if mapping.ambiguous == "reject":
        millis = np.where(ambiguous, np.nan, millis)
    reasons = {NONEXISTENT: int(nonexistent.sum())}
    if mapping.ambiguous in ("reject", "infer"):
        reasons[AMBIGUOUS] = int(rejected_ambiguous.sum())
    return millis, {k: v for k, v in reasons.items() if v}


def _datastream(
    source: SensorSourceConfig, thing_key: str, prop_key: str, things: dict[str, ThingConfig]
) -> DatastreamSpec:
    thing = things[thing_key]
    prop: ObservedPropertyConfig = source.properties[prop_key]
    unit = Unit(code=prop.unit, name=prop.unit_name or prop.unit, symbol=prop.symbol or prop.unit)
    interval = source.csv.interval_s if source.csv else None
    return DatastreamSpec(
        key=f"{source.name}/{thing_key}/{prop_key}",
        name=f"{thing.name}: {prop.name}",
        description=f"{prop.name} at {thing.name} ({unit.symbol})",
        dataset=source.name,
        thing=ThingSpec(
            key=f"{source.name}/{thing_key}",
            name=thing.name,
            description=thing.description,
            location=LocationSpec(
                key=f"{source.name}/{thing_key}", name=thing.name, lon=thing.lon, lat=thing.lat
            ),
        ),
        sensor=SensorSpec(key=f"{source.name}/{prop_key}", name=f"{prop.name} sensor"),
        observed_property=ObservedPropertySpec(
            key=f"{source.name}/{prop_key}", name=prop.name, definition=prop.definition or prop.name
        ),
        unit=unit,
        valid_range=(prop.min, prop.max),
        interval_s=interval,
    )


def _numbers(text: pd.Series, mapping: CsvConfig) -> tuple[np.ndarray, np.ndarray]:
    """Every cell as a number (NaN for a missing marker) and whether it is neither (rejected)."""
    cells = text.str.strip()
    missing = cells.isin([m.strip() for m in mapping.missing]).to_numpy(bool)
    if mapping.decimal == ",":
        cells = cells.str.replace(",", ".", regex=False)
    numbers = pd.to_numeric(cells, errors="coerce").to_numpy(np.float64)
    not_number = np.isnan(numbers) & ~missing
    return np.where(missing, np.nan, numbers), not_number


def _rows(key: str, rows: pd.DataFrame, mapping: CsvConfig, feed: ObservationFeed) -> pd.DataFrame:
    not_number = rows["not_number"].to_numpy(bool)
    feed.reject(key, NOT_A_NUMBER, int(not_number.sum()))
    start = rows["phenomenon_time"].to_numpy(np.int64)[~not_number]
    result = rows["result"].to_numpy(np.float64)[~not_number]
    end = start + mapping.interval_s * MS_PER_SECOND if mapping.interval_s else np.full(len(start), -1)
    return pd.DataFrame(
        {
            "datastream": key,
            "phenomenon_time": start,
            "phenomenon_end": end,
            "result": result,
            "quality": np.where(np.isnan(result), Quality.MISSING, Quality.GOOD).astype(np.int8),
        }
    )
