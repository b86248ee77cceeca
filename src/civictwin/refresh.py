"""``civictwin refresh``: ask every source whether it changed since the served twin was built; rebuild only then.

Remote sources (OGC API – Features, WFS, SensorThings) are asked page by page with the validators
their last snapshot recorded (``If-None-Match``/``If-Modified-Since``): 304 on every page means
unchanged, without downloading anything. A server that sent no validators is read again and the new
snapshot's SHA-256 compared with the last one. File sources are checksummed and compared with the
catalogue. When nothing changed, the twin is left as it is; otherwise a new version of the twin is
built (atomically, as ``civictwin build`` does) from the snapshots just checked, so no source is
downloaded twice, and only what depends on a changed source is computed again:

- the changed sources are read again, and with them every source that writes into a table one of
  them writes (two GTFS feeds share ``transit_stops``);
- a derived table is stale when its lineage names a stale table or a source read again, and every
  derivation step (``build.DERIVED_STEPS``) with a stale table runs again;
- every other table is copied from the served twin as it is stored, with its catalogue, lineage and
  quality records (lineage marked ``carried_over`` with the build it was computed in).

When the sources configured differ from those the served twin was built from (one added or removed),
or a stale table belongs to no known step, the whole twin is rebuilt. ``twin.toml`` itself is not
compared: after editing it, run ``civictwin build``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from civictwin.build import DERIVED_STEPS, BuildSummary, Reuse, StepCallback, build_twin, open_twin
from civictwin.catalog.lineage import LINEAGE
from civictwin.catalog.metadata import CATALOG, sha256_of, source_files
from civictwin.config import REMOTE_KINDS, SourceConfig, TwinConfig
from civictwin.sources.platform import fetch_snapshot
from civictwin.sources.remote import Snapshot, open_client, unchanged, where
from civictwin.store.base import version_of
from civictwin.store.opening import store_location


@dataclass(frozen=True)
class SourceCheck:
    """What the refresh found for one source, in one line for the user."""

    source: str
    changed: bool
    line: str


@dataclass(frozen=True)
class RefreshResult:
    """Every source's check and, when something changed, the rebuild's summary."""

    checks: list[SourceCheck]
    summary: BuildSummary | None


def refresh_twin(config: TwinConfig, *, on_step: StepCallback | None = None) -> RefreshResult:
    """Check every source against the served twin; rebuild it only if one changed."""
    location = store_location(config)
    if (
        location.path is not None and not location.path.is_file()
    ):  # a PostGIS twin not built says so on opening
        first = [SourceCheck(s.name, True, "no built twin yet: read") for s in config.sources]
        return RefreshResult(first, build_twin(config, on_step=on_step))
    with open_twin(config) as store:
        lineage, catalogue = store.records(LINEAGE), store.records(CATALOG)
        tables, served_version = [t.name for t in store.tables()], version_of(store)
    checks: list[SourceCheck] = []
    snapshots: dict[str, Snapshot] = {}
    for source in config.sources:
        if source.kind in REMOTE_KINDS:
            check, snapshot = _check_remote(source, config, lineage.get(source.name) or {})
            snapshots[source.name] = snapshot
        else:
            check = _check_file(source, config, catalogue)
        checks.append(check)
    if not any(check.changed for check in checks):
        return RefreshResult(checks, None)
    changed = [check.source for check in checks if check.changed]
    reuse = plan_reuse(
        config, changed, tables=tables, catalogue=catalogue, lineage=lineage, served_version=served_version
    )
    return RefreshResult(checks, build_twin(config, on_step=on_step, snapshots=snapshots, reuse=reuse))


def plan_reuse(
    config: TwinConfig,
    changed: list[str],
    *,
    tables: list[str],
    catalogue: dict[str, dict[str, Any]],
    lineage: dict[str, dict[str, Any]],
    served_version: str,
) -> Reuse | None:
    """What the new version can take from the served twin when the ``changed`` sources changed (see
    the module docstring); None when the whole twin must be rebuilt."""
    written = {table: {f["name"] for f in source_files(record)} for table, record in catalogue.items()}
    written = {table: names for table, names in written.items() if names}
    if {s.name for s in config.sources} != set().union(*written.values()):
        return None
    read = set(changed)
    while True:  # every source sharing a table with one read again is read again too
        more = set().union(read, *(names for names in written.values() if names & read))
        if more == read:
            break
        read = more
    stale = {table for table, names in written.items() if names & read}
    derived = [table for table in tables if table not in written]
    while True:
        more = {
            table for table in derived if table not in stale and _is_stale(lineage.get(table), stale, read)
        }
        if not more:
            break
        stale |= more
    steps = {step for step, outputs in DERIVED_STEPS.items() if stale.intersection(outputs)}
    known = {table for outputs in DERIVED_STEPS.values() for table in outputs}
    if any(table not in known for table in stale.intersection(derived)):
        return None
    rewritten = stale | {table for step in steps for table in DERIVED_STEPS[step]}
    return Reuse(
        tables=tuple(table for table in tables if table not in rewritten),
        read=frozenset(read), steps=frozenset(steps), changed=tuple(changed), served_version=served_version,
    )  # fmt: skip


def _is_stale(record: dict[str, Any] | None, stale: set[str], read: set[str]) -> bool:
    """Whether a derived table's lineage names a stale table, a source read again, or an untraced file."""
    if record is None:
        return True
    for given in record.get("inputs") or []:
        if given.get("type") == "table" and given.get("table") in stale:
            return True
        if given.get("type") == "file" and (given.get("source") is None or given.get("source") in read):
            return True
    return False


def _check_remote(
    source: SourceConfig, config: TwinConfig, record: dict[str, Any]
) -> tuple[SourceCheck, Snapshot]:
    previous = Snapshot.from_lineage(source.name, record.get("parameters") or {})
    if previous is None:
        fetched = fetch_snapshot(source, config)
        return SourceCheck(
            source.name, True, f"no earlier snapshot: read {fetched.features} feature(s)"
        ), fetched
    with open_client(source, accept="*/*") as client:
        verdict = unchanged(client, previous.pages, label=where(source))
    if verdict:
        line = f"unchanged: 304 Not Modified for all {len(previous.pages)} page(s); snapshot of {previous.retrieved_at} kept"
        return SourceCheck(source.name, False, line), previous
    fetched = fetch_snapshot(source, config)
    if fetched.sha256 == previous.sha256:
        how = "a page answered 200" if verdict is False else "the server sends no ETag/Last-Modified"
        line = f"unchanged: read again ({how}), same SHA-256 {fetched.sha256[:12]} as the snapshot of {previous.retrieved_at}"
        return SourceCheck(source.name, False, line), fetched
    line = f"changed: {fetched.features} feature(s) (were {previous.features}), SHA-256 {fetched.sha256[:12]}"
    return SourceCheck(source.name, True, line), fetched


def _check_file(
    source: SourceConfig, config: TwinConfig, catalogue: dict[str, dict[str, Any]]
) -> SourceCheck:
    known = {
        f["sha256"] for record in catalogue.values() for f in source_files(record) if f["name"] == source.name
    }
    checksum = sha256_of(config.resolve(source.path))
    if not known:
        return SourceCheck(source.name, True, "not in the built twin: read")
    if checksum in known:
        return SourceCheck(source.name, False, f"unchanged: same SHA-256 {checksum[:12]}")
    return SourceCheck(source.name, True, f"changed: SHA-256 {checksum[:12]} (was {sorted(known)[0][:12]})")
