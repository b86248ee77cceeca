"""Catalogue records (``catalog/<table>``): what each table is, who publishes and stewards it, under
which licence and access level, where it came from (with a SHA-256 checksum) and where it lies.

The fields follow DCAT-AP in spirit (title, description, publisher, contact point, licence, access
rights, spatial extent, issue time); :mod:`civictwin.catalog.report` maps them to DCAT-AP terms.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from civictwin.config import AccessLevel
from civictwin.errors import SourceError, StoreError
from civictwin.sources.base import IngestResult
from civictwin.store.base import Bounds, Store

CATALOG = "catalog"
DERIVED = "derived"

# From least to most restrictive: a table derived from inputs gets the most restrictive of their levels.
ACCESS_ORDER: tuple[str, ...] = (
    AccessLevel.PUBLIC.value,
    AccessLevel.INTERNAL.value,
    AccessLevel.RESTRICTED.value,
)

_CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    """SHA-256 (hex) of a file, or of a directory's files.

    For a directory the checksum covers every file below it, sorted by relative path: it is the
    SHA-256 of the lines ``<file sha256>  <relative posix path>\\n`` (the output of ``sha256sum`` run
    on the sorted files from inside the directory), so a renamed, added or changed file changes it.
    """
    if path.is_file():
        return _file_sha256(path)
    if path.is_dir():
        files = sorted(
            (p for p in path.rglob("*") if p.is_file()), key=lambda p: p.relative_to(path).as_posix()
        )
        manifest = "".join(f"{_file_sha256(p)}  {p.relative_to(path).as_posix()}\n" for p in files)
        return hashlib.sha256(manifest.encode("utf-8")).hexdigest()
    raise SourceError("cannot compute checksum: no such file or directory", path=path)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def record_source(
    store: Store,
    result: IngestResult,
    *,
    ingested_at: datetime,
    shared_tables: Collection[str] = (),
    extents_wgs84: Mapping[str, Bounds | None] | None = None,
    checksum: str | None = None,
) -> None:
    """Write a ``catalog/<table>`` record for every layer one source contributed.

    The source file (or directory) is checksummed once; row counts come from the reader, the WGS84
    extent and CRS from the store. A table in ``shared_tables`` already holds the rows of earlier
    sources of this build (two GTFS feeds): its record then credits every source — publishers,
    stewards and licences combined, the most restrictive access, ``sources`` listing each source with
    its file, checksum, publisher, licence and rows — and ``rows`` counts the whole table.
    ``extents_wgs84``: the exact WGS84 extents of some of the layers when the build already has them
    from the rows written (:func:`civictwin.geometry.wgs84_extent`); the store computes the others.
    ``checksum``: the source file's :func:`sha256_of` when the build computed it already.
    """
    source = result.source
    checksum = checksum or sha256_of(result.path)
    known = extents_wgs84 or {}
    extents = _bboxes(store, [layer.table for layer in result.layers if layer.table not in known])
    extents.update({table: _rounded(found) if found is not None else None for table, found in known.items()})
    for layer in result.layers:
        record: dict[str, Any] = {
            "table": layer.table,
            "title": layer.title,
            "description": source.description,
            "kind": source.kind.value,
            "publisher": source.publisher,
            "steward": source.steward,
            "licence": source.licence,
            "access": source.access.value,
            "source": {"name": source.name, "path": str(result.path), "sha256": checksum},
            "issued": ingested_at.isoformat(),
            "rows": layer.rows,
            "bbox_wgs84": extents[layer.table],
            "crs": store.crs,
        }
        if layer.table in shared_tables:
            record = _credit_all(store.records(CATALOG)[layer.table], record, _row_count(store, layer.table))
        store.put_record(CATALOG, layer.table, record)


def _credit_all(earlier: dict[str, Any], latest: dict[str, Any], rows: int) -> dict[str, Any]:
    """One record for a table several sources wrote: each credited in ``sources``, ``rows`` in total."""
    credits = [*(earlier.get("sources") or [_credit(earlier)]), _credit(latest)]
    merged = {key: value for key, value in latest.items() if key != "source"}
    for key in ("publisher", "steward", "licence"):
        merged[key] = combine(credit[key] for credit in credits)
    merged["access"] = most_restrictive(credit["access"] for credit in credits)
    merged["rows"] = rows
    merged["sources"] = credits
    return merged


def _credit(record: dict[str, Any]) -> dict[str, Any]:
    """What one source gave a table: its file and checksum, governance metadata and row count."""
    keys = ("publisher", "steward", "licence", "access", "rows")
    return {**record["source"], **{key: record[key] for key in keys}}


def source_files(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The source files (``name``, ``path``, ``sha256``) of a catalogue record: one, several or none."""
    if record.get("sources"):
        return [{k: credit[k] for k in ("name", "path", "sha256")} for credit in record["sources"]]
    return [dict(record["source"])] if record.get("source") else []


def record_derived(
    store: Store,
    table: str,
    *,
    title: str,
    description: str,
    inputs: list[str],
    built_at: datetime,
    extent_wgs84: Bounds | None = None,
) -> None:
    """Write the ``catalog/<table>`` record of a model table derived from catalogued ``inputs``.

    Publisher, steward and licence combine those of the inputs (each distinct value once, in input
    order); the access level is the most restrictive of the inputs', since the derived table can
    reveal what they hold. ``extent_wgs84``: the table's exact WGS84 extent (degrees) when the caller
    already has it from the geometries it wrote (:func:`civictwin.geometry.wgs84_extent`), saving the
    store a pass that transforms every vertex again; computed from the stored table otherwise.
    """
    if not store.has_table(table):
        raise StoreError(f"cannot catalogue '{table}': no such table in this twin")
    catalogue = store.records(CATALOG)
    missing = [name for name in inputs if name not in catalogue]
    if missing:
        raise StoreError(
            f"cannot catalogue '{table}': input(s) {', '.join(missing)} have no catalogue record"
        )
    parents = [catalogue[name] for name in inputs]
    record: dict[str, Any] = {
        "table": table,
        "title": title,
        "description": description,
        "kind": DERIVED,
        "publisher": combine(p["publisher"] for p in parents),
        "steward": combine(p["steward"] for p in parents),
        "licence": combine(p["licence"] for p in parents),
        "access": most_restrictive(p["access"] for p in parents),
        "inputs": list(inputs),
        "issued": built_at.isoformat(),
        "rows": _row_count(store, table),
        "bbox_wgs84": _rounded(extent_wgs84) if extent_wgs84 is not None else _bbox(store, table),
        "crs": store.crs,
    }
    store.put_record(CATALOG, table, record)


def combine(values: Iterable[str]) -> str:
    """Distinct values in first-seen order, joined with ``"; "`` (e.g. two publishers of one table)."""
    seen: list[str] = []
    for value in values:
        for part in value.split("; "):
            if part and part not in seen:
                seen.append(part)
    return "; ".join(seen)


def most_restrictive(levels: Iterable[str]) -> str:
    """The most restrictive access level (public < internal < restricted); public for no input."""
    ranks = []
    for level in levels:
        if level not in ACCESS_ORDER:
            raise StoreError(f"unknown access level '{level}' in the catalogue")
        ranks.append(ACCESS_ORDER.index(level))
    return ACCESS_ORDER[max(ranks, default=0)]


def _bbox(store: Store, table: str) -> list[float] | None:
    return _bboxes(store, [table])[table]


def _bboxes(store: Store, tables: list[str]) -> dict[str, list[float] | None]:
    """Each table's WGS84 extent (degrees, rounded to 7 decimals: about 1 cm), computed together."""
    present = [table for table in tables if store.has_table(table)]
    bounds = store.tables_bounds(present, wgs84=True)
    return {table: _rounded(found) if (found := bounds.get(table)) is not None else None for table in tables}


def _rounded(extent: Bounds) -> list[float]:
    """An extent in degrees as the catalogue keeps it: rounded to 7 decimals (about 1 cm)."""
    return [round(v, 7) for v in extent]


def _row_count(store: Store, table: str) -> int:
    for info in store.tables():
        if info.name == table:
            return info.rows
    raise StoreError(f"no table '{table}' in this twin")
