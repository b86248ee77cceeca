"""Quality records (``quality/<table>``) and the plain-language highlights shown in reports.

A reader's quality numbers (geometry report, attribute completeness, duplicates) are stored as they
are, with its notes; for tables with a ``height_source`` column the share of each height source is
measured from the table itself, because "how many heights are real" is the first question a 3D
model gets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from civictwin.store.base import RecordReader, Store

QUALITY = "quality"
HEIGHT_SOURCE = "height_source"

# Completeness below this share is worth a highlight; at most this many attributes are named.
# Names are left out of highlights: most mapped features have none, and no analysis needs them
# (their completeness still appears in the full report).
LOW_COMPLETENESS = 0.5
_MAX_ATTRIBUTES = 3
_INCIDENTAL = frozenset({"name"})

# Values of ``height_source`` (see docs/data-model.md).
_TAGGED, _LEVELS = "height", "levels"


def record_quality(store: Store, table: str, quality: dict[str, Any], notes: list[str]) -> None:
    """Write ``quality/<table>``: the given numbers, the notes, and height-source counts if any."""
    record: dict[str, Any] = {
        "table": table,
        **json.loads(json.dumps(quality, default=str)),
        "notes": list(notes),
    }
    if HEIGHT_SOURCE not in record:
        counts = _height_sources(store, table)
        if counts is not None:
            record[HEIGHT_SOURCE] = counts
    store.put_record(QUALITY, table, record)


def record_source_quality(
    store: Store, table: str, quality: dict[str, Any], notes: list[str], *, source: str, earlier: list[str]
) -> None:
    """Write the quality of ``table`` as given by ``source``, keeping what ``earlier`` sources gave it.

    With no earlier source this is :func:`record_quality`. A table several sources wrote (two GTFS
    feeds) gets ``by_source``: each source's own numbers and notes, and ``notes`` naming the source.
    """
    if not earlier:
        record_quality(store, table, quality, notes)
        return
    previous = store.records(QUALITY).get(table, {})
    by_source: dict[str, Any] = dict(previous.get("by_source") or {earlier[0]: _own(previous)})
    by_source[source] = {**json.loads(json.dumps(quality, default=str)), "notes": list(notes)}
    record: dict[str, Any] = {
        "table": table,
        "by_source": by_source,
        "notes": [f"{name}: {note}" for name, own in by_source.items() for note in own.get("notes", [])],
    }
    store.put_record(QUALITY, table, record)


def quality_parts(table: str, record: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """A record as (label, numbers): itself, or one ``table (source)`` part per source of a shared table."""
    if not record.get("by_source"):
        return [(table, record)]
    return [(f"{table} ({name})", own) for name, own in record["by_source"].items()]


def _own(record: Mapping[str, Any]) -> dict[str, Any]:
    """A single-source quality record without its table name (for ``by_source``)."""
    return {key: value for key, value in record.items() if key != "table"}


def _height_sources(store: Store, table: str) -> dict[str, int] | None:
    """Rows per ``height_source`` value, or None when the table has no such column."""
    if HEIGHT_SOURCE not in store.columns(table):
        return None
    values = store.read_table(table, columns=[HEIGHT_SOURCE])[HEIGHT_SOURCE].fillna("unknown")
    return {str(k): int(v) for k, v in sorted(values.value_counts().items())}


def quality_highlights(store: RecordReader) -> list[str]:
    """Short plain-language lines about what a reader of the twin should know, table by table.

    Identical findings for several tables (say ``buildings`` and ``buildings_3d``) are merged into one
    line naming them all.
    """
    findings: dict[str, list[str]] = {}
    for table, record in store.records(QUALITY).items():
        for message in _findings_of(record):
            findings.setdefault(message, []).append(table)
    return [f"{', '.join(tables)}: {message}" for message, tables in findings.items()]


def _findings_of(record: Mapping[str, Any]) -> list[str]:
    """Findings of a record; for a table of several sources, each source's own, named."""
    if not record.get("by_source"):
        return table_findings(record)
    return [
        f"{name}: {message}" for name, own in record["by_source"].items() for message in table_findings(own)
    ]


def table_findings(record: Mapping[str, Any]) -> list[str]:
    """The noteworthy facts of one quality record, without the table name."""
    lines: list[str] = []
    geometry = record.get("geometry") or {}
    invalid = int(geometry.get("invalid_geometry", 0))
    if invalid:
        repaired = int(geometry.get("repaired_geometry", 0))
        dropped = int(geometry.get("dropped_unrepairable", 0))
        lines.append(
            f"{invalid} invalid {_plural(invalid, 'geometry', 'geometries')} "
            f"({repaired} repaired, {dropped} dropped)"
        )
    missing = int(geometry.get("missing_geometry", 0))
    if missing:
        lines.append(f"{missing} {_plural(missing, 'feature', 'features')} without geometry dropped")
    truncated = int(record.get("ways_with_missing_nodes") or 0)
    if truncated:
        lines.append(
            f"{truncated} {_plural(truncated, 'way has', 'ways have')} nodes missing from the extract or "
            "without a valid location (usually cut at its edge); kept with the nodes present"
        )
    duplicates = int(record.get("duplicates") or 0)
    if duplicates:
        lines.append(f"{duplicates} duplicate {_plural(duplicates, 'feature', 'features')}")
    sparse = _sparse_attributes(record.get("completeness") or {})
    if sparse:
        lines.append(sparse)
    heights = record.get(HEIGHT_SOURCE)
    if heights:
        lines.append(_height_line(heights))
    lines.extend(str(note) for note in record.get("notes", []))
    return lines


def _sparse_attributes(completeness: Mapping[str, float]) -> str | None:
    low = sorted(
        (share, name)
        for name, share in completeness.items()
        if share < LOW_COMPLETENESS and name not in _INCIDENTAL
    )
    if not low:
        return None
    named = ", ".join(f"{name} {percent(share)}" for share, name in low[:_MAX_ATTRIBUTES])
    more = f" (and {len(low) - _MAX_ATTRIBUTES} more)" if len(low) > _MAX_ATTRIBUTES else ""
    return f"sparse attributes, share of rows with a value: {named}{more}"


_CITY_HEIGHTS = ("measuredHeight", "geometry")
"""``height_source`` values of a 3D city model's own table (buildings_3d prefixes them with ``city:``)."""


def _height_line(counts: Mapping[str, int]) -> str:
    city = sum(n for k, n in counts.items() if k.startswith("city:") or k in _CITY_HEIGHTS)
    if city:
        share = f"{percent(city / sum(counts.values()))} of heights from the city's 3D model"
        rest = {k: n for k, n in counts.items() if not (k.startswith("city:") or k in _CITY_HEIGHTS)}
        return f"{share}; of the others: {_osm_height_line(rest)}" if rest else share
    return _osm_height_line(counts)


def _osm_height_line(counts: Mapping[str, int]) -> str:
    total = sum(counts.values())
    tagged, levels = counts.get(_TAGGED, 0), counts.get(_LEVELS, 0)
    if tagged + levels == total:
        return (
            f"every height is from a tag ({percent(tagged / total)} height, {percent(levels / total)} levels)"
        )
    if tagged + levels == 0:
        return "no building has a real height; all use defaults per building type"
    known = f"{percent(tagged / total)} have a real height"
    if levels:
        known += f", {percent(levels / total)} a height from their number of levels"
    return f"{known}; the rest use defaults per building type"


def percent(share: float) -> str:
    """A share 0..1 as a whole percentage that never rounds a non-zero share to 0% or a partial to 100%."""
    if 0 < share < 0.005:
        return "<1%"
    if 0.995 <= share < 1:
        return ">99%"
    return f"{round(share * 100)}%"


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many
