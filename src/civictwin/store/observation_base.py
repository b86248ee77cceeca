"""The observation store: sensors, datastreams and their observations, following OGC SensorThings.

Observations live beside the twin's store, not inside it: a build replaces the twin's store file,
while observations keep arriving (batch imports, a live consumer) and must survive every rebuild.
This module is the interface; :mod:`civictwin.store.sqlite_observations` is the embedded backend
(SQLite in WAL mode, see ``docs/architecture.md`` for why) and
:mod:`civictwin.store.postgis_observations` the database one, for a twin stored in PostGIS;
:func:`civictwin.store.observations.open_observations` picks the twin's, and that module names
everything defined here too, so that callers import from one place. Callers never write SQL.

The entities are SensorThings v1.1's: a *Thing* (a station, a counting point) at a *Location*; a
*Sensor* (the instrument or method); an *ObservedProperty* (what is measured); a *Datastream* tying
them together with a unit of measurement (a UCUM code) and, where it differs from the Location, a
*FeatureOfInterest* (for a traffic count, the directed network edge). Every datastream belongs to a
*dataset* (one ``[[sensors]]`` entry of ``twin.toml``) that carries its publisher, steward, licence
and access level, exactly like a layer of the twin.

Times cross this interface as integer milliseconds since 1970-01-01T00:00:00Z (UTC): unambiguous,
cheap to compare and to store. An observation is keyed by (datastream, phenomenon time start), so
appending the same observation twice stores it once.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any

import numpy as np
import pandas as pd

from civictwin.errors import StoreError

OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
"""SensorThings observation type of a numeric measurement."""
OM_COUNT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CountObservation"
"""SensorThings observation type of a count (vehicles, people)."""

MS_PER_SECOND = 1000
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000

# A UCUM code (https://ucum.org/ucum): atoms with prefixes and exponents joined by "." and "/",
# annotations in braces ("{vehicle}/h"), square-bracketed atoms ("[ppm]"), "%" and "1".
_UCUM = re.compile(r"^(?:[A-Za-z0-9.\/%*^+\-'\[\]]|\{[^{}]*\})+$")
_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/\-]{0,199}$")


class Quality(IntEnum):
    """The quality flag of one observation (SensorThings ``resultQuality``)."""

    GOOD = 0
    """As received; passed the store's checks."""
    MISSING = 1
    """The source marked the value as missing (e.g. ``-999``); the result is null, never a number."""
    SUSPECT = 2
    """The source flagged the value (provisional, unvalidated) or an import rule did."""

    @property
    def label(self) -> str:
        """The flag as published (``good``, ``missing``, ``suspect``)."""
        return self.name.lower()


class RejectReason(StrEnum):
    """Why an observation was not stored (counted per datastream; a live consumer dead-letters it)."""

    UNKNOWN_DATASTREAM = "unknown datastream"
    OUT_OF_RANGE = "out of range"
    FAR_FUTURE = "phenomenon time too far in the future"
    NOT_FINITE = "result is not a finite number"
    BAD_INTERVAL = "phenomenon time ends before it starts"
    BEFORE_EPOCH = "phenomenon time before 1970"
    CONFLICT = "conflicts with a stored observation of the same time"


def check_key(key: str, what: str) -> str:
    """``key`` if it is a usable entity key (letters, digits and ``_ . : / -``, at most 200)."""
    if not _KEY.match(key):
        raise StoreError(f"invalid {what} key {key!r}: use letters, digits and _ . : / - (at most 200)")
    return key


def check_ucum(code: str) -> str:
    """``code`` if it looks like a UCUM unit code (syntax only; e.g. ``ug/m3``, ``{vehicle}/h``)."""
    if not code or not _UCUM.match(code) or code.count("[") != code.count("]"):
        raise StoreError(f"not a UCUM unit code: {code!r} (e.g. 'ug/m3', 'Cel', '{{vehicle}}/h')")
    return code


@dataclass(frozen=True)
class Unit:
    """A unit of measurement: a UCUM ``code`` plus a human name and symbol."""

    code: str
    name: str
    symbol: str

    def __post_init__(self) -> None:
        check_ucum(self.code)

    @property
    def definition(self) -> str:
        """The SensorThings ``definition`` of the unit: the UCUM code as a ``ucum:`` URI."""
        return f"ucum:{self.code}"


@dataclass(frozen=True)
class DatasetSpec:
    """A group of datastreams under one governance: a ``[[sensors]]`` entry of ``twin.toml``."""

    name: str
    title: str
    publisher: str
    steward: str
    licence: str
    access: str
    """``public``, ``internal`` or ``restricted`` (as for every dataset of the twin)."""
    description: str = ""


@dataclass(frozen=True)
class LocationSpec:
    """Where a Thing is: a WGS84 point (longitude, latitude in degrees)."""

    key: str
    name: str
    lon: float
    lat: float
    description: str = ""


@dataclass(frozen=True)
class ThingSpec:
    """A station or counting point, at one location."""

    key: str
    name: str
    location: LocationSpec
    description: str = ""
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SensorSpec:
    """The instrument or procedure producing observations."""

    key: str
    name: str
    description: str = ""
    encoding_type: str = "text/plain"
    metadata: str = ""


@dataclass(frozen=True)
class ObservedPropertySpec:
    """What is observed; ``definition`` is a URI or a plain definition."""

    key: str
    name: str
    definition: str
    description: str = ""


@dataclass(frozen=True)
class FeatureSpec:
    """A feature of interest that differs from the Thing's Location (e.g. a directed road edge).

    ``geometry`` is a GeoJSON geometry in WGS84.
    """

    key: str
    name: str
    geometry: Mapping[str, Any]
    description: str = ""
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatastreamSpec:
    """Everything needed to create (or find) one datastream and the entities around it.

    ``valid_range`` (inclusive, in ``unit``) rejects impossible values at append time;
    ``interval_s`` is the expected sampling interval, used for completeness and gaps.
    """

    key: str
    name: str
    dataset: str
    thing: ThingSpec
    sensor: SensorSpec
    observed_property: ObservedPropertySpec
    unit: Unit
    description: str = ""
    observation_type: str = OM_MEASUREMENT
    feature: FeatureSpec | None = None
    valid_range: tuple[float | None, float | None] = (None, None)
    interval_s: int | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatastreamInfo:
    """A stored datastream, as readers and writers see it."""

    id: int
    key: str
    name: str
    dataset: str
    access: str
    thing_key: str
    observed_property: str
    unit: Unit
    observation_type: str
    valid_range: tuple[float | None, float | None]
    interval_s: int | None
    properties: dict[str, Any]


@dataclass(frozen=True)
class ObservationBatch:
    """Observations as columns of equal length (numpy arrays), the unit of every append.

    ``phenomenon_time`` is the start (or instant) in ms UTC; ``phenomenon_end`` the end of an interval
    or -1 for an instant; ``result`` NaN stores a null (missing) result; ``result_time`` -1 for none;
    ``quality`` holds :class:`Quality` codes.
    """

    datastream_id: np.ndarray
    phenomenon_time: np.ndarray
    result: np.ndarray
    phenomenon_end: np.ndarray
    result_time: np.ndarray
    quality: np.ndarray

    def __post_init__(self) -> None:
        sizes = {len(getattr(self, name)) for name in _BATCH_COLUMNS}
        if len(sizes) > 1:
            raise StoreError("observation batch columns differ in length")

    def __len__(self) -> int:
        return len(self.datastream_id)

    @classmethod
    def of(
        cls,
        *,
        datastream_id: Sequence[int] | np.ndarray,
        phenomenon_time: Sequence[int] | np.ndarray,
        result: Sequence[float | None] | np.ndarray,
        phenomenon_end: Sequence[int] | np.ndarray | None = None,
        result_time: Sequence[int] | np.ndarray | None = None,
        quality: Sequence[int] | np.ndarray | None = None,
    ) -> ObservationBatch:
        """A batch from sequences; omitted columns are instants without result time, flagged by result."""
        values = np.asarray([math.nan if v is None else v for v in result], dtype=np.float64)
        size = len(values)
        flags = (
            np.asarray(quality, dtype=np.int8)
            if quality is not None
            else np.where(np.isnan(values), Quality.MISSING, Quality.GOOD).astype(np.int8)
        )
        return cls(
            datastream_id=np.asarray(datastream_id, dtype=np.int64),
            phenomenon_time=np.asarray(phenomenon_time, dtype=np.int64),
            result=values,
            phenomenon_end=_or_none(phenomenon_end, size),
            result_time=_or_none(result_time, size),
            quality=flags,
        )

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> ObservationBatch:
        """A batch from a frame with ``datastream_id``, ``phenomenon_time`` (ms or datetimes) and
        ``result``, and optionally ``phenomenon_end``, ``result_time`` and ``quality``."""
        missing = {"datastream_id", "phenomenon_time", "result"} - set(frame.columns)
        if missing:
            raise StoreError(f"observation frame lacks column(s) {', '.join(sorted(missing))}")

        def times(name: str) -> np.ndarray | None:
            return to_ms_array(frame[name]) if name in frame.columns else None

        return cls.of(
            datastream_id=frame["datastream_id"].to_numpy(dtype=np.int64),
            phenomenon_time=to_ms_array(frame["phenomenon_time"]),
            result=pd.to_numeric(frame["result"], errors="coerce").to_numpy(dtype=np.float64),
            phenomenon_end=times("phenomenon_end"),
            result_time=times("result_time"),
            quality=frame["quality"].to_numpy(dtype=np.int8) if "quality" in frame.columns else None,
        )


_BATCH_COLUMNS = ("datastream_id", "phenomenon_time", "result", "phenomenon_end", "result_time", "quality")


def _or_none(values: Sequence[int] | np.ndarray | None, size: int) -> np.ndarray:
    if values is None:
        return np.full(size, -1, dtype=np.int64)
    return np.asarray(values, dtype=np.int64)


@dataclass(frozen=True)
class Rejection:
    """One observation of a batch that was not stored: its position in the batch and why."""

    index: int
    reason: RejectReason


@dataclass(frozen=True)
class AppendResult:
    """What one append did: every observation of the batch is exactly one of stored, duplicate, rejected.

    A *duplicate* is already stored with the same result (or was repeated within the batch): storing
    nothing is the right outcome. A different result for a stored time is a *rejection* (conflict).
    """

    ingest_id: int
    stored: int
    duplicates: int
    rejected: tuple[Rejection, ...]

    @property
    def rejected_by_reason(self) -> dict[str, int]:
        """Rejections counted by reason."""
        counts: dict[str, int] = {}
        for item in self.rejected:
            counts[item.reason.value] = counts.get(item.reason.value, 0) + 1
        return counts


@dataclass(frozen=True)
class DeadLetter:
    """A message that could not be stored, kept with its reason (the live consumer writes these)."""

    message: str
    reason: str
    source: str = ""
    received: str = ""
    """ISO 8601 UTC; filled in by the store when empty."""
    id: int | None = None


class Window(StrEnum):
    """Aggregation windows of :meth:`ObservationStore.aggregate`."""

    HOUR = "hour"
    DAY = "day"


AGGREGATES = ("mean", "min", "max", "sum", "count")
"""Statistics every backend computes in the database; ``pNN`` percentiles are computed on top."""


@dataclass(frozen=True)
class AggregateQuery:
    """Windowed statistics over datastreams between ``start`` (inclusive) and ``end`` (exclusive).

    Windows are aligned to local midnight / the hour in ``timezone`` (an IANA name; DST-aware);
    ``statistics`` are names from :data:`AGGREGATES` or percentiles ``p0``..``p100`` (linear
    interpolation, as numpy's default).
    """

    datastream_ids: tuple[int, ...]
    window: Window
    start: int
    end: int
    statistics: tuple[str, ...] = ("mean",)
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        for name in self.statistics:
            if name not in AGGREGATES and percentile_of(name) is None:
                raise StoreError(f"unknown statistic {name!r}: use {', '.join(AGGREGATES)} or p0..p100")
        if self.end <= self.start:
            raise StoreError("aggregate window: end must be after start")


def percentile_of(name: str) -> float | None:
    """The percentile (0..100) a statistic name such as ``p95`` asks for; None if it is not one."""
    match = re.fullmatch(r"p(\d{1,3}(?:\.\d+)?)", name)
    if not match:
        return None
    value = float(match.group(1))
    return value if 0 <= value <= 100 else None


class ObservationStore(ABC):
    """Sensors, datastreams and observations of one twin. Implementations must be safe for one
    writer process and many reader processes at the same time, and must never lose an observation
    once :meth:`append` has returned."""

    # ------------------------------------------------------------ entities

    @abstractmethod
    def ensure_dataset(self, spec: DatasetSpec) -> None:
        """Create the dataset, or update its governance (publisher, steward, licence, access)."""

    @abstractmethod
    def datasets(self) -> dict[str, DatasetSpec]:
        """Every dataset by name."""

    @abstractmethod
    def ensure_datastream(self, spec: DatastreamSpec) -> int:
        """The id of the datastream ``spec.key``, creating it and its Thing, Location, Sensor,
        ObservedProperty and FeatureOfInterest when missing (their descriptions are updated when
        present). Its dataset must exist. Idempotent: safe to call at every import or start-up."""

    @abstractmethod
    def datastreams(self) -> list[DatastreamInfo]:
        """Every datastream, in id order."""

    def datastream(self, key: str) -> DatastreamInfo | None:
        """The datastream with ``key`` (None when there is none)."""
        return next((d for d in self.datastreams() if d.key == key), None)

    # ------------------------------------------------------------ observations

    @abstractmethod
    def append(self, batch: ObservationBatch, *, origin: str, max_future_s: float = 600.0) -> AppendResult:
        """Store a batch in one transaction, idempotently; durable when this returns.

        Each observation is stored, or counted as a duplicate, or rejected with a reason (unknown
        datastream, out of its valid range, phenomenon time more than ``max_future_s`` ahead of the
        clock, not finite, ends before it starts, or a different result for a stored time).
        ``origin`` (a file, a topic) is recorded with the ingest.
        """

    @abstractmethod
    def observations(
        self,
        datastream_id: int,
        *,
        start: int | None = None,
        end: int | None = None,
        limit: int | None = None,
        descending: bool = False,
    ) -> pd.DataFrame:
        """Observations of one datastream with phenomenon time in [start, end), ordered by time.

        Columns: ``phenomenon_time``, ``phenomenon_end`` (-1: instant), ``result_time`` (-1: none),
        ``result`` (NaN: missing), ``quality`` — times in ms UTC.
        """

    @abstractmethod
    def latest(self, datastream_ids: Sequence[int] | None = None) -> pd.DataFrame:
        """The most recent observation of each datastream (same columns plus ``datastream_id``)."""

    @abstractmethod
    def aggregate(self, query: AggregateQuery) -> pd.DataFrame:
        """Windowed statistics: one row per datastream and window that holds at least one result.

        Columns: ``datastream_id``, ``window_start`` (ms UTC), ``window_end`` (ms UTC), ``count``
        (non-null results) and one column per requested statistic.
        """

    @abstractmethod
    def counts(self) -> dict[int, int]:
        """Number of stored observations per datastream id."""

    @abstractmethod
    def rejections(self) -> dict[int, dict[str, int]]:
        """Rejected observations per datastream id and reason, over every append so far (each
        distinct phenomenon time once per reason, however often it was sent)."""

    # ------------------------------------------------------------ dead letters and records

    @abstractmethod
    def dead_letter(self, letters: Sequence[DeadLetter]) -> int:
        """Keep messages that could not be stored; returns how many were written (durably)."""

    @abstractmethod
    def dead_letters(self, *, limit: int = 1000, after_id: int = 0) -> list[DeadLetter]:
        """Dead letters with id above ``after_id``, oldest first."""

    def put_record(self, kind: str, key: str, record: Mapping[str, Any]) -> None:
        """Store a governance record (catalogue, lineage, quality) of a datastream or dataset."""
        self.put_records([(kind, key, record)])

    @abstractmethod
    def put_records(self, records: Sequence[tuple[str, str, Mapping[str, Any]]]) -> None:
        """Store (kind, key, record) governance records in one transaction, replacing older ones."""

    @abstractmethod
    def records(self, kind: str) -> dict[str, dict[str, Any]]:
        """All records of ``kind`` by key."""

    @abstractmethod
    def close(self) -> None:
        """Release the store."""

    def __enter__(self) -> ObservationStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def to_ms(value: datetime | str | int | float) -> int:
    """A time as ms since the epoch (UTC). Naive datetimes and strings without an offset are refused:
    a time without a zone is ambiguous, and guessing it is how observations end up an hour off."""
    if isinstance(value, str):
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    elif isinstance(value, datetime):
        moment = value
    else:
        return int(value)
    if moment.tzinfo is None:
        raise StoreError(f"time {value!s} has no UTC offset")
    return round(moment.timestamp() * 1000)


def to_ms_array(values: pd.Series | np.ndarray) -> np.ndarray:
    """Times (tz-aware datetimes, or integers already in ms) as an int64 array of ms UTC; -1 for none."""
    series = pd.Series(values)
    if pd.api.types.is_integer_dtype(series.dtype):
        return series.to_numpy(dtype=np.int64)
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        stamps = series.dt.tz_convert(UTC)
    elif pd.api.types.is_datetime64_dtype(series.dtype):
        raise StoreError("times without a time zone: localise them first")
    else:
        stamps = pd.to_datetime(series, utc=True, format="ISO8601")
    millis = stamps.dt.as_unit("ms").astype("int64").to_numpy()
    return np.where(stamps.isna().to_numpy(), -1, millis).astype(np.int64)


def iso(ms: int) -> str:
    """An ms timestamp as ISO 8601 UTC with a ``Z`` (second precision unless it has milliseconds)."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    text = moment.isoformat(timespec="milliseconds" if ms % 1000 else "seconds")
    return text.replace("+00:00", "Z")
