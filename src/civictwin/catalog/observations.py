"""Catalogue, lineage and quality records of datastreams, kept in the observation store.

Each datastream appears in the twin's catalogue like a layer (``kind = "datastream"``): its dataset's
publisher, steward, licence and access level, the source file with its SHA-256, the observation
count and the location's extent. Its quality record measures what an analyst asks first of a sensor:

- **completeness**: results (non-null) over the observations expected: the format's own count where
  it has one (the Helsinki counts: 24 a year), else one per sampling interval from the first to the
  last observation, else the share of observations with a result;
- **gaps**: stretches between consecutive results longer than the sampling interval (count, longest);
- **out of range**: observations rejected for lying outside the datastream's valid range;
- **stuck**: runs of at least :data:`STUCK_RUN` consecutive identical non-zero results (a sensor that
  stopped updating; zeros are left out, since an empty road at night counts zero for hours).

The records live in the observation store (not in the twin's store, which a rebuild replaces).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from civictwin.catalog.lineage import tool_versions
from civictwin.catalog.metadata import CATALOG
from civictwin.catalog.quality import QUALITY, percent
from civictwin.store.base import RecordReader
from civictwin.store.observations import (
    MS_PER_HOUR,
    MS_PER_SECOND,
    DatasetSpec,
    DatastreamInfo,
    ObservationStore,
    RejectReason,
    iso,
)

LINEAGE = "lineage"
DATASTREAM = "datastream"
STUCK_RUN = 6
"""Identical consecutive non-zero results that count as a stuck run (6 hours of hourly data)."""
LOW_COMPLETENESS = 0.9


def datastream_quality(
    info: DatastreamInfo,
    observations: pd.DataFrame,
    *,
    rejected: Mapping[str, int],
    expected: int | None = None,
) -> dict[str, Any]:
    """The quality record of one datastream from its stored observations and its rejections."""
    ordered = observations.sort_values("phenomenon_time")
    values = ordered["result"].to_numpy(np.float64)
    times = ordered["phenomenon_time"].to_numpy(np.int64)
    present = ~np.isnan(values)
    results = int(present.sum())
    interval_ms = info.interval_s * MS_PER_SECOND if info.interval_s else None
    record: dict[str, Any] = {
        "table": info.key,
        "observations": len(values),
        "results": results,
        "missing": int(len(values) - results),
        "first": iso(int(times[0])) if len(times) else None,
        "last": iso(int(times[-1])) if len(times) else None,
        "completeness": {"result": _completeness(results, times, interval_ms, expected)},
        "gaps": _gaps(times[present], interval_ms),
        "out_of_range": int(rejected.get(RejectReason.OUT_OF_RANGE.value, 0)),
        "rejected": dict(sorted(rejected.items())),
        "stuck": _stuck(values[present]),
    }
    record["notes"] = _notes(record)
    return record


def _completeness(results: int, times: np.ndarray, interval_ms: int | None, expected: int | None) -> float:
    if expected:
        return round(min(results / expected, 1.0), 4)
    if interval_ms and len(times):
        slots = int((times.max() - times.min()) // interval_ms) + 1
        return round(min(results / slots, 1.0), 4)
    return round(results / len(times), 4) if len(times) else 0.0


def _gaps(times: np.ndarray, interval_ms: int | None) -> dict[str, Any]:
    """Gaps between consecutive results longer than the interval: count and longest (hours)."""
    if interval_ms is None or len(times) < 2:
        return {"count": 0, "longest_hours": 0.0}
    steps = np.diff(np.sort(times)) - interval_ms
    holes = steps[steps > 0]
    return {"count": len(holes), "longest_hours": round(float(holes.max(initial=0)) / MS_PER_HOUR, 2)}


def _stuck(values: np.ndarray) -> dict[str, int]:
    """Runs of at least :data:`STUCK_RUN` identical non-zero consecutive results."""
    if len(values) < STUCK_RUN:
        return {"runs": 0, "values": 0}
    change = np.flatnonzero(np.diff(values) != 0) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [len(values)]]))
    long_runs = (lengths >= STUCK_RUN) & (values[starts] != 0)
    return {"runs": int(long_runs.sum()), "values": int(lengths[long_runs].sum())}


def _notes(record: Mapping[str, Any]) -> list[str]:
    notes = []
    share = record["completeness"]["result"]
    if share < LOW_COMPLETENESS:
        notes.append(f"completeness {percent(share)} of the expected observations have a result")
    gaps = record["gaps"]
    if gaps["count"]:
        notes.append(f"{gaps['count']} gap(s) in the series, the longest {gaps['longest_hours']:g} h")
    if record["out_of_range"]:
        notes.append(f"{record['out_of_range']} observation(s) outside the valid range were rejected")
    other = {k: v for k, v in record["rejected"].items() if k != RejectReason.OUT_OF_RANGE.value}
    if other:
        notes.append("rejected: " + ", ".join(f"{v} {k}" for k, v in other.items()))
    if record["stuck"]["runs"]:
        notes.append(
            f"{record['stuck']['runs']} run(s) of {STUCK_RUN} or more identical values "
            f"({record['stuck']['values']} values): a stuck sensor?"
        )
    return notes


def record_datastreams(
    store: ObservationStore,
    dataset: DatasetSpec,
    infos: list[DatastreamInfo],
    *,
    source: Mapping[str, Any],
    step: str,
    parameters: Mapping[str, Any],
    import_rejections: Mapping[str, Mapping[str, int]],
    expected: Mapping[str, int],
    notes: list[str],
    imported_at: datetime,
    bboxes: Mapping[str, list[float]],
) -> None:
    """Write catalogue, lineage and quality records for ``infos`` (the datastreams one import touched)
    and the dataset's own records (its notes, its datastreams, its totals)."""
    stored_rejections = store.rejections()
    counts = store.counts()
    records: list[tuple[str, str, Mapping[str, Any]]] = []
    for info in infos:
        rejected = dict(stored_rejections.get(info.id, {}))
        for reason, count in import_rejections.get(info.key, {}).items():
            rejected[reason] = rejected.get(reason, 0) + count
        quality = datastream_quality(
            info, store.observations(info.id), rejected=rejected, expected=expected.get(info.key)
        )
        catalog = _catalog(info, dataset, source, counts.get(info.id, 0), imported_at, bboxes.get(info.key))
        records += [
            (QUALITY, info.key, quality),
            (CATALOG, info.key, catalog),
            (LINEAGE, info.key, _lineage(info.key, source, step, parameters)),
        ]
    total = int(sum(counts.get(i.id, 0) for i in infos))
    summary = {"table": dataset.name, "datastreams": len(infos), "observations": total, "notes": list(notes)}
    store.put_records([*records, (QUALITY, dataset.name, summary)])


def _catalog(
    info: DatastreamInfo,
    dataset: DatasetSpec,
    source: Mapping[str, Any],
    rows: int,
    imported_at: datetime,
    bbox: list[float] | None,
) -> dict[str, Any]:
    return {
        "table": info.key,
        "title": info.name,
        "description": f"Datastream of {dataset.title}: {info.observed_property} in {info.unit.symbol} "
        f"(UCUM {info.unit.code})",
        "kind": DATASTREAM,
        "dataset": dataset.name,
        "publisher": dataset.publisher,
        "steward": dataset.steward,
        "licence": dataset.licence,
        "access": dataset.access,
        "source": dict(source),
        "issued": imported_at.isoformat(),
        "rows": rows,
        "bbox_wgs84": bbox,
        "crs": "EPSG:4326",
        "unit": info.unit.code,
        "observed_property": info.observed_property,
    }


def _lineage(key: str, source: Mapping[str, Any], step: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "table": key,
        "step": step,
        "inputs": [{"type": "file", **source}],
        "parameters": dict(parameters),
        "tools": tool_versions(),
    }


class CombinedRecords:
    """The twin's governance records together with its datastreams' (for the catalogue and quality
    reports): the twin store's records first, the observation store's added under their own keys."""

    def __init__(self, twin: RecordReader, observations: RecordReader) -> None:
        self._twin = twin
        self._observations = observations

    def records(self, kind: str) -> dict[str, dict[str, Any]]:
        """All records of ``kind`` from both stores."""
        return {**self._twin.records(kind), **self._observations.records(kind)}
