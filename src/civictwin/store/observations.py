"""A twin's observation store: :func:`open_observations` picks its backend and place.

A twin stored in PostGIS keeps its observations in the same database (the schema
``civictwin_observations``, :mod:`civictwin.store.postgis_observations`), shared by every host; a
DuckDB twin in ``<store>.observations.sqlite`` beside its file
(:mod:`civictwin.store.sqlite_observations`). The interface the backends implement (entities,
batches, results, :class:`ObservationStore`, the time helpers) is defined below them, in
:mod:`civictwin.store.observation_base`, and named here too: callers import everything from this
module, the backends from the base, so that no import goes round.
"""

from __future__ import annotations

from pathlib import Path

from civictwin.config import TwinConfig
from civictwin.errors import StoreError
from civictwin.store.location import StoreLocation, store_location
from civictwin.store.observation_base import (
    AGGREGATES,
    MS_PER_DAY,
    MS_PER_HOUR,
    MS_PER_SECOND,
    OM_COUNT,
    OM_MEASUREMENT,
    AggregateQuery,
    AppendResult,
    DatasetSpec,
    DatastreamInfo,
    DatastreamSpec,
    DeadLetter,
    FeatureSpec,
    LocationSpec,
    ObservationBatch,
    ObservationStore,
    ObservedPropertySpec,
    Quality,
    Rejection,
    RejectReason,
    SensorSpec,
    ThingSpec,
    Unit,
    Window,
    check_key,
    check_ucum,
    iso,
    percentile_of,
    to_ms,
    to_ms_array,
)

__all__ = [
    "AGGREGATES",
    "MS_PER_DAY",
    "MS_PER_HOUR",
    "MS_PER_SECOND",
    "OM_COUNT",
    "OM_MEASUREMENT",
    "AggregateQuery",
    "AppendResult",
    "DatasetSpec",
    "DatastreamInfo",
    "DatastreamSpec",
    "DeadLetter",
    "FeatureSpec",
    "LocationSpec",
    "ObservationBatch",
    "ObservationStore",
    "ObservedPropertySpec",
    "Quality",
    "RejectReason",
    "Rejection",
    "SensorSpec",
    "ThingSpec",
    "Unit",
    "Window",
    "check_key",
    "check_ucum",
    "describe_observations",
    "has_observations",
    "iso",
    "observations_path",
    "open_observations",
    "percentile_of",
    "to_ms",
    "to_ms_array",
]


def observations_path(store_path: Path) -> Path:
    """The observation store of the twin whose store is ``store_path`` (a file beside it)."""
    return store_path.with_name(store_path.stem + ".observations.sqlite")


def open_observations(
    where: StoreLocation | TwinConfig | Path, *, read_only: bool = False
) -> ObservationStore:
    """The observation store of a twin (created when missing, also when ``read_only``).

    ``where`` is the twin's configuration or store location: a twin stored in PostGIS keeps its
    observations in the same database (:mod:`civictwin.store.postgis_observations`), shared by every
    host; a DuckDB twin in ``<store>.observations.sqlite`` beside its file. A bare path is a DuckDB
    store file.
    """
    found = _located(where)
    if isinstance(found, str):
        from civictwin.store.postgis_observations import PostGISObservationStore

        return PostGISObservationStore.open(found, read_only=read_only)
    from civictwin.store.sqlite_observations import SQLiteObservationStore

    return SQLiteObservationStore.open(observations_path(found), read_only=read_only)


def has_observations(where: StoreLocation | TwinConfig | Path) -> bool:
    """Whether the twin at ``where`` has an observation store yet (serving never creates one)."""
    found = _located(where)
    if isinstance(found, str):
        from civictwin.store.postgis_observations import has_observations as in_database

        return in_database(found)
    return observations_path(found).is_file()


def describe_observations(where: StoreLocation | TwinConfig | Path) -> str:
    """Where the twin's observations are, as shown to people: the file, or the database URI (which
    holds no password) and the schema."""
    found = _located(where)
    if isinstance(found, str):
        from civictwin.store.postgis_observations import OBSERVATION_SCHEMA

        return f"{found} (schema {OBSERVATION_SCHEMA})"
    return str(observations_path(found))


def _located(where: StoreLocation | TwinConfig | Path) -> str | Path:
    """The database URI of a twin stored in PostGIS, or the store file of a DuckDB twin."""
    if isinstance(where, Path):
        return where
    location = where if isinstance(where, StoreLocation) else store_location(where)
    if location.dsn is not None:
        return location.dsn
    if location.path is None:
        raise StoreError("a store location names neither a file nor a database")
    return location.path
