"""Readers of observation files, one per ``[[sensors]]`` format, each returning an :class:`ObservationFeed`.

A reader parses and validates its input into plain data: the datastreams it found (SensorThings
entities as :class:`~civictwin.store.observations.DatastreamSpec`) and their observations as one
long frame keyed by datastream key. It never opens a store: :mod:`civictwin.ingest` writes the feed
into the observation store, matches count sites to the network, and records quality and lineage.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from shapely.geometry.base import BaseGeometry

from civictwin.config import SensorFormat, SensorSourceConfig
from civictwin.sources.observations.feed import FEED_COLUMNS, CountSite, ObservationFeed

__all__ = ["FEED_COLUMNS", "CountSite", "ObservationFeed", "Reader", "reader_for"]

Reader = Callable[[SensorSourceConfig, Path | str, BaseGeometry | None], ObservationFeed]
"""A reader: (source config, resolved path or URL, the twin's WGS84 area when clipping) → feed."""


def reader_for(fmt: SensorFormat) -> Reader:
    """The reader of an observation format."""
    if fmt is SensorFormat.UBA:
        from civictwin.sources.observations.uba import read_uba

        return read_uba
    if fmt is SensorFormat.HELSINKI_COUNTS:
        from civictwin.sources.observations.helsinki import read_helsinki_counts

        return read_helsinki_counts
    if fmt is SensorFormat.CSV:
        from civictwin.sources.observations.csv import read_csv_observations

        return read_csv_observations
    from civictwin.sources.observations.sensorthings import read_sensorthings

    return read_sensorthings
