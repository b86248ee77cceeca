"""The plain data every observation reader returns: an :class:`ObservationFeed` (and count sites)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from civictwin.config import SensorSourceConfig
from civictwin.store.observations import DatastreamSpec

FEED_COLUMNS = ["datastream", "phenomenon_time", "phenomenon_end", "result", "quality"]
"""Columns of :attr:`ObservationFeed.observations`: key, start ms, end ms (-1 none), result, flag."""


@dataclass(frozen=True)
class CountSite:
    """A traffic counting point as its file describes it, before it is matched to the network.

    ``directions`` maps the file's direction label (``"1"``, ``"2"``, or ``"both"`` where the file
    gives none) to the keys of its datastreams; ``am_pm_ratio`` is that direction's morning-peak
    count divided by its afternoon-peak count (all years, all motor vehicles), evidence of which way
    is inbound; ``totals`` its total count.
    """

    key: str
    name: str
    lon: float
    lat: float
    directions: dict[str, list[str]]
    am_pm_ratio: dict[str, float]
    totals: dict[str, float]


@dataclass
class ObservationFeed:
    """What a reader found in one ``[[sensors]]`` source."""

    source: SensorSourceConfig
    origin: Path | str
    """The file or directory read (or the server's URL)."""
    datastreams: list[DatastreamSpec]
    observations: pd.DataFrame
    """One row per observation, columns :data:`FEED_COLUMNS`."""
    rejected: dict[str, dict[str, int]] = field(default_factory=dict)
    """Rows the reader could not turn into observations: per datastream key, count by reason."""
    expected: dict[str, int] = field(default_factory=dict)
    """Observations each datastream should have had (for completeness), where the format says."""
    notes: list[str] = field(default_factory=list)
    count_sites: list[CountSite] = field(default_factory=list)

    def reject(self, datastream: str, reason: str, count: int = 1) -> None:
        """Count ``count`` rows of ``datastream`` the reader had to refuse for ``reason``."""
        if count:
            reasons = self.rejected.setdefault(datastream, {})
            reasons[reason] = reasons.get(reason, 0) + count
