"""Build a twin: config → sources → store → model, with catalogue, lineage and quality for every table.

The whole build writes to a staging store that replaces the previous twin only when everything
succeeded (see :func:`civictwin.store.opening.build_store`). A refresh (``refresh.py``) may hand the
build a :class:`Reuse`: the tables that depend on no changed source are then copied from the served
twin with their records instead of being read or derived again, in the same staging store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
from shapely.geometry.base import BaseGeometry

from civictwin.allocation import tuned_for_build
from civictwin.area import resolve_area
from civictwin.build_city import (
    BUILDING_DECISIONS,
    STREET_DECISIONS,
    CityStep,
    building_terrain,
    city_buildings,
    city_streets,
    has_city_buildings,
    network_terrain,
)
from civictwin.build_network import PartitionedNetwork, partitioned_network
from civictwin.build_sociodemo import sociodemographics_on_zones
from civictwin.catalog.lineage import LINEAGE, record_lineage
from civictwin.catalog.metadata import CATALOG, record_derived, record_source, sha256_of
from civictwin.catalog.personal import mark_personal
from civictwin.catalog.quality import QUALITY, quality_highlights, record_quality, record_source_quality
from civictwin.config import CONFIG_FILENAME, REMOTE_KINDS, SourceConfig, SourceKind, TwinConfig
from civictwin.errors import AreaError, ConfigError, StoreError
from civictwin.geometry import (
    WGS84,
    reproject,
    utm_crs_for,
    vertices_wgs84_extent,
    wgs84_extent,
    wkb_points,
    wkb_vertices,
)
from civictwin.governance.security import record_event
from civictwin.memory import BuildMemory
from civictwin.model.buildings import lod1_buildings
from civictwin.model.mobility import OUTSIDE, areal_weights, reaggregate_od, reaggregate_presence
from civictwin.model.network import (
    Network,
    NetworkArrays,
    build_network,
    network_arrays,
    ways_of_rows,
)
from civictwin.model.population import (
    estimate_population,
    landuse_of,
    place_grid_population,
    residential_floor_area,
    unbuildable_land,
)
from civictwin.model.signals import SIGNAL_REACH_M, SignalledNodes, signalled_nodes
from civictwin.model.transit import UNSNAPPED, snap_stops
from civictwin.model.zones import h3_zones, polygon_zones, summarise_zones
from civictwin.sources import mobility as mobility_source
from civictwin.sources import reader_for
from civictwin.sources.base import BuildContext, IngestResult
from civictwin.store.base import GEOMETRY, Bounds, Store, version_of
from civictwin.store.duckdb import connect, to_arrow
from civictwin.store.opening import build_store, open_store, store_location

if TYPE_CHECKING:
    from civictwin.sources.remote import Snapshot

StepCallback = Callable[[str, int, int], None]
"""Called as (description, step number, total steps) when a build step starts."""

DERIVED_STEPS: dict[str, tuple[str, ...]] = {
    "network": ("network_edges", "network_nodes", STREET_DECISIONS),
    "buildings": ("buildings_3d", BUILDING_DECISIONS, "population_land"),
    "transit": ("transit_stops_snapped",),
    "zones": ("zones",),
    "mobility": ("mobility_od", "mobility_presence"),
}
"""The model's derivation steps, in build order, and every table each writes whenever it runs."""


@dataclass(frozen=True)
class Reuse:
    """What a refresh takes over from the served twin instead of computing it again.

    ``tables`` are copied as stored, with their catalogue, lineage and quality records; only the
    sources in ``read`` are read and only the ``steps`` (keys of :data:`DERIVED_STEPS`) run.
    ``changed``: the sources found changed, for the record. ``served_version``: the version marker of
    the twin the plan was made against; if another build replaced it since, the refresh stops.
    """

    tables: tuple[str, ...]
    read: frozenset[str]
    steps: frozenset[str]
    changed: tuple[str, ...]
    served_version: str


@dataclass
class BuildSummary:
    """What a build produced, for the terminal and for tests."""

    name: str
    store_path: Path
    crs: str
    tables: dict[str, int]
    highlights: list[str]
    seconds: float
    totals: dict[str, float] = field(default_factory=dict)
    store: str = ""
    """Where the twin was stored, as shown to people: the DuckDB file or the PostGIS URI (no password)."""
    carried_over: list[str] = field(default_factory=list)
    """Tables a refresh copied from the previous twin unchanged (empty for a whole build)."""


@tuned_for_build()
def build_twin(
    config: TwinConfig,
    *,
    on_step: StepCallback | None = None,
    snapshots: dict[str, Snapshot] | None = None,
    reuse: Reuse | None = None,
) -> BuildSummary:
    """Build (or rebuild) the twin described by ``config``; the previous twin stays until success.

    ``snapshots``: remote sources already fetched (by ``civictwin refresh``), read instead of fetching.
    ``reuse``: what a refresh carries over from the served twin (None: build everything).
    """
    started = time.perf_counter()
    compute_connection = _OpenedEarly.for_reading(config, reuse)
    step = _Stepper(on_step, total=len(config.sources) + 5)
    step("resolving the area of interest")
    area_wgs84 = resolve_area(config)
    crs = config.twin.crs or utm_crs_for(*area_wgs84.centroid.coords[0])
    area = reproject(np.array([area_wgs84], dtype=object), WGS84, crs)[0]
    started_at = datetime.now(UTC)
    # before the store: a server that is down fails fast
    snapshots = _fetch_remote(config, have=snapshots or {})
    memory = BuildMemory.of(config)
    with (
        build_store(config, crs=crs, memory=memory, local_reads=True) as store,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="network") as pool,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="extents") as extents_pool,
        _set_on_failure(threading.Event()) as failed,
    ):
        store.put_record(
            "meta", "twin", {"crs": crs, "name": config.twin.name, "description": config.twin.description,
                             "area_wgs84": area_wgs84.wkt, "built_at": started_at.isoformat()}
        )  # fmt: skip
        steps = reuse.steps if reuse is not None else frozenset(DERIVED_STEPS)
        reading = [s for s in config.sources if reuse is None or s.name in reuse.read]
        early = _EarlyNetwork(store, config, memory=memory, pool=pool,
                              enabled="network" in steps and _one_road_reader(config, reading))  # fmt: skip
        extents = _LayerExtents(crs, pool=extents_pool)
        # the OSM extracts' SHA-256 (about 0.1 s each), beside the reader, for their catalogue records
        checksums = {path: extents_pool.submit(sha256_of, path) for path in _osm_paths(config, reuse)}

        def layer_written(table: str, rows: pa.Table) -> None:
            early(table, rows)
            extents(table, rows)

        ctx = BuildContext(config=config, store=store, area_wgs84=area_wgs84, area=area, crs=crs,
                           snapshots=snapshots, layer_written=layer_written,
                           compute_connection=compute_connection)  # fmt: skip
        refreshed = _carry_over(store, config, reuse) if reuse is not None else None
        results = []
        try:
            for source in config.sources:
                if reuse is not None and source.name not in reuse.read:
                    step(f"keeping {source.name} (unchanged)")
                    continue
                step(f"reading {source.name} ({source.kind.value})")
                results.append(reader_for(source.kind)(source, ctx))
        finally:
            early.sources_read(store)
        network = early.started or (
            _network(store, config, memory=memory, pool=pool, failed=failed)
            if "network" in steps and store.has_table("roads")
            else None
        )
        written_by: dict[str, list[str]] = {}  # table → the sources that wrote it, in order
        for result in results:
            source = result.source
            record_source(store, result, ingested_at=datetime.now(UTC), shared_tables=set(written_by),
                          extents_wgs84=extents.of(result, results),
                          checksum=checksums[result.path].result() if result.path in checksums else None)  # fmt: skip
            for layer in result.layers:
                earlier = written_by.setdefault(layer.table, [])
                record_source_quality(store, layer.table, layer.quality, layer.notes, source=source.name,
                                      earlier=list(earlier))  # fmt: skip
                earlier.append(source.name)
                record_lineage(store, layer.table, inputs=list(earlier), step=f"ingest {source.kind.value}",
                               parameters={"sources": earlier, "area_wgs84": area_wgs84.wkt, "crs": crs}
                               if len(earlier) > 1 else
                               {"source": source.name, "area_wgs84": area_wgs84.wkt, "crs": crs,
                                **result.lineage})  # fmt: skip
        _check_area_hit(store, area_wgs84)
        _derive_model(store, config, area_wgs84, datetime.now(UTC), step, memory=memory, steps=steps,
                      network=network)  # fmt: skip
        mark_personal(store, config)
        tables = {t.name: t.rows for t in store.tables()}
        highlights = quality_highlights(store)
        totals = _totals(store)
        seconds = round(time.perf_counter() - started, 2)
        build_record: dict[str, Any] = {"seconds": seconds}
        if reuse is not None and refreshed is not None:
            build_record["refresh"] = {
                **refreshed, "changed_sources": list(reuse.changed), "sources_read": sorted(reuse.read),
                "rebuilt": sorted(set(tables) - set(reuse.tables)), "carried_over": sorted(reuse.tables),
            }  # fmt: skip
        store.put_record("meta", "build", build_record)
    record_event(config.store_path, "rebuild", twin=config.twin.name, seconds=seconds, tables=len(tables))
    return BuildSummary(
        name=config.twin.name, store_path=config.store_path, crs=crs, tables=tables,
        highlights=highlights, seconds=seconds, totals=totals, store=store_location(config).describe(),
        carried_over=sorted(reuse.tables) if reuse is not None else [],
    )  # fmt: skip


@contextmanager
def _set_on_failure(event: threading.Event) -> Iterator[threading.Event]:
    """``event``, set if the block raises (before the build's worker threads are waited for): a network
    being built in partitions then stops at its next partition instead of finishing one the failed
    build will not keep (half a minute at 32×32, which an interrupted build would otherwise wait)."""
    try:
        yield event
    except BaseException:
        event.set()
        raise


def _osm_paths(config: TwinConfig, reuse: Reuse | None) -> set[Path]:
    """The files of the OSM sources this build reads."""
    return {
        config.resolve(source.path)
        for source in config.sources
        if source.kind == SourceKind.OSM and source.path and (reuse is None or source.name in reuse.read)
    }


def _carry_over(store: Store, config: TwinConfig, reuse: Reuse) -> dict[str, str]:
    """Copy ``reuse.tables`` and their records from the served twin into ``store``; the served twin's
    version and build time, as the refresh's record names them.

    A carried table's lineage gains ``carried_over``: the version and build time of the twin in which
    it was last computed (kept through later refreshes), so a reader can tell it was not recomputed.
    """
    with open_store(config) as served:
        meta = served.records("meta")
        origin = {"version": version_of(served), "built_at": str(meta.get("twin", {}).get("built_at", ""))}
        if origin["version"] != reuse.served_version:
            raise StoreError(
                "another build replaced the twin while it was being refreshed; run the refresh again",
                path=store_location(config).describe(),
            )
        records = {kind: served.records(kind) for kind in (CATALOG, LINEAGE, QUALITY)}
        for table in reuse.tables:
            store.carry_table(table, served)
            for kind, found in records.items():
                if table not in found:
                    continue
                record = dict(found[table])
                if kind == LINEAGE:
                    record["carried_over"] = record.get("carried_over") or origin
                store.put_record(kind, table, record)
    return {"previous_version": origin["version"], "previous_built_at": origin["built_at"]}


def _fetch_remote(config: TwinConfig, *, have: dict[str, Snapshot]) -> dict[str, Snapshot]:
    """``have`` plus a snapshot of every other remote source; the HTTP and GML readers (about 0.1 s of
    imports) are loaded only for a twin that has remote sources."""
    if not any(source.kind in REMOTE_KINDS and source.name not in have for source in config.sources):
        return dict(have)
    from civictwin.sources.platform import fetch_snapshots

    return fetch_snapshots(config, have=have)


class _OpenedEarly:
    """The OSM reader's in-memory DuckDB, opened on a thread of its own as the build starts.

    Loading DuckDB's spatial extension takes about 0.5 s per database, once for the twin's store and
    once for the reader's compute engine; opened here, the reader's loads while the build resolves
    its area and creates the store (whose own load runs meanwhile), instead of after it. Later
    connections (a second OSM source) are opened when asked for.
    """

    def __init__(self) -> None:
        opener = ThreadPoolExecutor(max_workers=1, thread_name_prefix="connect")
        self._opened: Future[duckdb.DuckDBPyConnection] | None = opener.submit(connect)
        opener.shutdown(wait=False)  # the thread ends once the connection is open

    @classmethod
    def for_reading(cls, config: TwinConfig, reuse: Reuse | None) -> Callable[[], duckdb.DuckDBPyConnection]:
        """What opens the readers' compute connections: one opened early when an OSM source is read."""
        reading = [s for s in config.sources if reuse is None or s.name in reuse.read]
        return cls() if any(source.kind == SourceKind.OSM for source in reading) else connect

    def __call__(self) -> duckdb.DuckDBPyConnection:
        opened, self._opened = self._opened, None
        return opened.result() if opened is not None else connect()


class _Stepper:
    def __init__(self, callback: StepCallback | None, total: int) -> None:
        self._callback = callback
        self._total = total
        self._done = 0

    def __call__(self, description: str) -> None:
        self._done += 1
        if self._callback:
            self._callback(description, self._done, self._total)


def _check_area_hit(store: Store, area_wgs84: BaseGeometry) -> None:
    if not any(t.rows for t in store.tables()):
        raise AreaError(f"the area of interest {area_wgs84.bounds} intersects none of the sources")


def _derive_model(
    store: Store,
    config: TwinConfig,
    area_wgs84: BaseGeometry,
    built_at: datetime,
    step: Callable[[str], None],
    *,
    memory: BuildMemory,
    steps: frozenset[str],
    network: Future[_SplitNetwork] | Future[_Partitioned] | int | None,
) -> None:
    """Run the derivation ``steps`` (keys of :data:`DERIVED_STEPS`); the others' tables were carried over.

    ``network`` (from :func:`_network`): a network being made on a worker thread since the sources
    were read (in one piece, or in spatial partitions through a connection of its own), or the
    number of spatial partitions to build it in here, through the store (None: no network step).
    The network's work is array work (NumPy, Shapely, Arrow) and this thread's meanwhile (the
    sources' catalogue extents, the buildings, population and zones, which need nothing from the
    network) largely DuckDB's, both of which release the GIL, so on two cores they overlap. The
    network's records are put on this thread, and its transit stops snapped, once both are done.
    """
    step("deriving the road network")
    if isinstance(network, int):
        _record_partitioned(store, _partitioned(store, memory=memory, partitions=network), built_at)
    step("deriving 3D buildings and population")
    area = reproject(np.array([area_wgs84], dtype=object), WGS84, store.crs)[0]
    if "buildings" in steps and (store.has_table("buildings") or has_city_buildings(config)):
        _buildings(store, config, area, built_at)
    step("summarising analysis zones")
    if "zones" in steps:
        _zones(store, config, area_wgs84, area, built_at)
    if isinstance(network, Future):
        made = network.result()
        if isinstance(made, _Partitioned):
            _record_partitioned(store, made, built_at)
        else:
            _save_network(store, config, made, built_at)
    step("snapping transit stops")
    if "transit" in steps and store.has_table("transit_stops") and store.has_table("network_edges"):
        _transit(store, built_at)
    if "mobility" in steps:
        mobility_on_zones(store, config, built_at)


def _save_derived(
    store: Store, table: str, frame: gpd.GeoDataFrame | pa.Table, *, title: str, description: str,
    inputs: list[str], step: str, parameters: dict[str, Any], quality: dict[str, Any], notes: list[str],
    built_at: datetime, extent_wgs84: Bounds | None = None,
) -> None:  # fmt: skip
    """Write a derived table and its catalogue, lineage and quality records; ``extent_wgs84``: its
    exact WGS84 extent when already known (else the store computes it from the written rows)."""
    store.write_table(table, frame)
    _record_written(store, table, title=title, description=description, inputs=inputs, step=step,
                    parameters=parameters, quality=quality, notes=notes, built_at=built_at,
                    extent_wgs84=extent_wgs84)  # fmt: skip


def _record_written(
    store: Store, table: str, *, title: str, description: str, inputs: list[str], step: str,
    parameters: dict[str, Any], quality: dict[str, Any], notes: list[str], built_at: datetime,
    extent_wgs84: Bounds | None = None,
) -> None:  # fmt: skip
    """The catalogue, lineage and quality records of a derived table already in the store."""
    record_derived(store, table, title=title, description=description, inputs=inputs, built_at=built_at,
                   extent_wgs84=extent_wgs84)  # fmt: skip
    record_lineage(store, table, inputs=inputs, step=step, parameters=parameters)
    record_quality(store, table, quality, notes)


@dataclass(frozen=True)
class _SplitNetwork:
    """What the worker thread made: the network in one piece, and the nodes its signals control when
    they could be placed there (None: placed on the saved edges, by :func:`_save_network`).

    When the edges are saved as split (no city street layer or terrain changes them), the worker
    also made ``edges_extent``, their exact WGS84 extent for the catalogue, and either wrote them
    (``edges_written``: through the store's :meth:`~civictwin.store.base.Store.thread_writer`) or
    made ``edges_arrow``, the edges as the store is given them (geometries as WKB). On the 8×8
    network's 596 k edges that is about 0.5 s of extent, 0.4 s of conversion and 1.5 s of writing
    the build's thread would otherwise spend after the split. A network kept as arrays
    (:class:`NetworkArrays`) has its nodes made ready (or written) the same way (``nodes_ready``).
    """

    network: Network | NetworkArrays
    """The network; as arrays (:class:`NetworkArrays`) when its edges are saved as split."""
    signalled: SignalledNodes | None
    edges_arrow: pa.Table | None = None
    edges_extent: Bounds | None = None
    edges_written: bool = False
    nodes_ready: _ReadyNodes | None = None
    """The nodes made ready too, when the network is kept as arrays."""


@dataclass(frozen=True)
class _ReadyNodes:
    """The network's nodes as the worker made them ready (flagged where signals control them):
    ``table`` as the store is given them (None: the worker wrote them), their exact WGS84 ``extent``,
    and the records of how the signals were placed."""

    table: pa.Table | None
    extent: Bounds | None
    signals: _SignalRecords


@dataclass(frozen=True)
class _Finish:
    """How the worker finishes the split: ``final``, the edges are saved as split (in ``crs``), so the
    worker makes them ready for the store, and writes them when it has a ``writer`` (which it closes)."""

    crs: str
    final: bool
    writer: Store | None

    @classmethod
    def of(cls, store: Store, config: TwinConfig) -> _Finish:
        """The finish of the network of ``config``'s twin, being built into ``store``."""
        final = not _needs_whole_network(config)
        return cls(crs=store.crs, final=final, writer=store.thread_writer() if final else None)


def _network(
    store: Store,
    config: TwinConfig,
    *,
    memory: BuildMemory,
    pool: ThreadPoolExecutor,
    failed: threading.Event,
) -> Future[_SplitNetwork] | Future[_Partitioned] | int:
    """The network in one piece, being split on ``pool`` (saved later by :func:`_save_network`); in
    spatial partitions, being built on ``pool`` through a connection of its own
    (:meth:`~civictwin.store.base.Store.thread_writer`; recorded later by :func:`_record_partitioned`);
    or, for a store without a second connection, the number of partitions to build it in later,
    through the store. ``failed``: set if the build fails meanwhile; the partitions then stop.

    The signals are placed on the worker thread too, unless a city street layer is conflated into the
    edges first (its attributes may change which edges cars use): the terrain adds columns only.
    """
    roads = next(t.rows for t in store.tables() if t.name == "roads")
    partitions = memory.network_partitions(roads)
    if partitions > 1 and not _needs_whole_network(config):
        own = store.thread_writer()
        if own is None:
            return partitions
        return pool.submit(_partitioned_apart, own, memory=memory, partitions=partitions, stop=failed)
    signals = (
        store.read_frame("traffic_signals")
        if store.has_table("traffic_signals")
        and not any(rule.layer == "streets" for rule in config.conflation)
        else None
    )
    return pool.submit(_split, store.read_frame("roads"), signals, _Finish.of(store, config))


def _one_road_reader(config: TwinConfig, reading: list[SourceConfig]) -> bool:
    """Whether the ``roads`` and ``traffic_signals`` tables come from one OSM source read in this build,
    and from nothing else: then the network can be split from that reader's ``roads`` as written."""
    osm = [source for source in reading if source.kind == SourceKind.OSM]
    named = [source for source in config.sources if source.name in ("roads", "traffic_signals")]
    return len(osm) == 1 and not named


class _EarlyNetwork:
    """Starts the network split on the worker thread as soon as the OSM reader has written ``roads``
    (:attr:`BuildContext.layer_written`), from the rows it wrote, instead of once every source is read.

    The split (NumPy and Shapely work, about 1.8 CPU s on the 8×8 extract) then runs beside the
    reader's other seven layers, which are DuckDB's work on a thread of their own, and nothing reads
    the roads back from the store. The traffic signals, written later by the same reader, reach the
    worker when they are written. Only for a network built in one piece from a single OSM source
    (:func:`_one_road_reader`); otherwise :func:`_network` starts it after the sources, as before.
    """

    def __init__(
        self,
        store: Store,
        config: TwinConfig,
        *,
        memory: BuildMemory,
        pool: ThreadPoolExecutor,
        enabled: bool,
    ) -> None:
        self._store = store
        self._config = config
        self._crs = store.crs
        self._memory = memory
        self._pool = pool
        self._enabled = enabled
        self._signals: _Handover | None = None
        self.started: Future[_SplitNetwork] | None = None

    def __call__(self, table: str, rows: pa.Table) -> None:
        if not self._enabled:
            return
        if table == "roads" and self.started is None:
            self._enabled = self._memory.network_partitions(rows.num_rows) == 1 or _needs_whole_network(
                self._config
            )
            if not self._enabled:
                return  # partitions: built once every source is read (_network)
            if not any(rule.layer == "streets" for rule in self._config.conflation):
                self._signals = _Handover()
            self.started = self._pool.submit(
                _split_written, rows, self._signals, _Finish.of(self._store, self._config)
            )
        elif table == "traffic_signals" and self._signals is not None and not self._signals.given:
            self._signals.give(_frame_of(rows, self._crs))

    def sources_read(self, store: Store) -> None:
        """Every source has been read (or reading failed): the worker gets the stored signals now if the
        reader did not hand them over, so that it never waits for them in vain."""
        if self._signals is not None and not self._signals.given:
            self._signals.give(
                store.read_frame("traffic_signals") if store.has_table("traffic_signals") else None
            )


class _LayerExtents:
    """The exact WGS84 extents of the layers a reader hands over (:attr:`BuildContext.layer_written`),
    each computed on a worker thread from the rows written while the reader goes on, for the sources'
    catalogue records; the store would otherwise transform every vertex again once all sources are
    read (about 0.8 s of the build's thread on the 8×8 extract)."""

    def __init__(self, crs: str, *, pool: ThreadPoolExecutor) -> None:
        self._crs = crs
        self._pool = pool
        self._found: dict[str, Future[Bounds | None]] = {}

    def __call__(self, table: str, rows: pa.Table) -> None:
        if GEOMETRY in rows.schema.names:
            self._found[table] = self._pool.submit(_extent_of, rows, self._crs)

    def of(self, result: IngestResult, results: list[IngestResult]) -> dict[str, Bounds | None]:
        """The extents of ``result``'s layers that were handed over and that no other source of the
        build (of ``results``) also wrote: the stored table then holds exactly the rows handed over."""
        return {
            layer.table: self._found[layer.table].result()
            for layer in result.layers
            if layer.table in self._found
            and sum(layer.table in (other.table for other in r.layers) for r in results) == 1
        }


def _extent_of(rows: pa.Table, crs: str) -> Bounds | None:
    """The exact WGS84 extent of rows as written (geometries as WKB in ``crs``): points and lines are
    read from their bytes, other geometries through Shapely."""
    vertices = wkb_vertices(rows[GEOMETRY])
    if vertices is None:
        return wgs84_extent(shapely.from_wkb(rows[GEOMETRY].to_numpy(zero_copy_only=False)), crs)
    return vertices_wgs84_extent(vertices[0], crs)


class _Handover:
    """A frame one thread gives and another waits for (given once)."""

    def __init__(self) -> None:
        self._given = threading.Event()
        self._frame: gpd.GeoDataFrame | None = None

    @property
    def given(self) -> bool:
        """Whether :meth:`give` has been called."""
        return self._given.is_set()

    def give(self, frame: gpd.GeoDataFrame | None) -> None:
        """Hand ``frame`` (None: there is none) to the waiting thread."""
        self._frame = frame
        self._given.set()

    def taken(self) -> gpd.GeoDataFrame | None:
        """The frame, once given (waits until then)."""
        self._given.wait()
        return self._frame


def _frame_of(rows: pa.Table, crs: str) -> gpd.GeoDataFrame:
    """Rows as written to the store (geometries as WKB) as the store reads them back: a GeoDataFrame."""
    frame = rows.drop_columns([GEOMETRY]).to_pandas()
    return gpd.GeoDataFrame(frame, geometry=shapely.from_wkb(rows[GEOMETRY].to_numpy()), crs=crs)


def _split_written(roads: pa.Table, signals: _Handover | None, finish: _Finish) -> _SplitNetwork:
    """:func:`_split` of the ``roads`` rows the reader wrote; the signals are waited for only once the
    network is split (the reader has written them by then, or the build has given up on them)."""
    try:
        arrays = network_arrays(ways_of_rows(roads))
        if not finish.final:
            return _placed(arrays.network(), signals.taken() if signals is not None else None, finish)
        return _placed_arrays(arrays, signals.taken() if signals is not None else None, finish)
    finally:
        if finish.writer is not None:
            finish.writer.close()


def _split(roads: gpd.GeoDataFrame, signals: gpd.GeoDataFrame | None, finish: _Finish) -> _SplitNetwork:
    """The worker thread's part: the split into edges and nodes, and the signals placed on them."""
    try:
        return _placed(build_network(roads), signals, finish)
    finally:
        if finish.writer is not None:
            finish.writer.close()


def _placed(network: Network, signals: gpd.GeoDataFrame | None, finish: _Finish) -> _SplitNetwork:
    """The split ``network`` with its signals placed, and, when final, its edges ready or written."""
    signalled = signalled_nodes(signals, network.edges) if signals is not None else None
    if not finish.final:
        return _SplitNetwork(network, signalled)
    edges, extent = to_arrow(network.edges), wgs84_extent(network.edges.geometry.to_numpy(), finish.crs)
    if finish.writer is None:
        return _SplitNetwork(network, signalled, edges_arrow=edges, edges_extent=extent)
    finish.writer.write_table("network_edges", edges)
    return _SplitNetwork(network, signalled, edges_extent=extent, edges_written=True)


def _placed_arrays(arrays: NetworkArrays, signals: gpd.GeoDataFrame | None, finish: _Finish) -> _SplitNetwork:
    """:func:`_placed` of a network saved as split, kept as arrays: GEOS lines are made for the car
    edges only (the signals are placed on them), the edges' and nodes' WKB straight from their
    vertices, the edges' extent from the vertices of the segments they run along (on the 8×8
    extract's 596 k edges about 1 CPU s less than making every line and its reverse, then encoding
    them); the nodes, flagged, are made ready (or written) here too, off the build's thread."""
    signalled = signalled_nodes(signals, arrays.car_edges()) if signals is not None else None
    edges = pa.Table.from_pandas(arrays.edges, preserve_index=False).append_column(
        GEOMETRY, arrays.lines.wkb()
    )
    extent = vertices_wgs84_extent(arrays.lines.vertices(), finish.crs)
    nodes, signal_records = (
        (arrays.nodes, _SignalRecords([], {}, {}, []))
        if signalled is None
        else _flagged(arrays.nodes, signalled)
    )  # no signals placed: the twin has none (the reader wrote none, and the build found none stored)
    nodes_table = _nodes_arrow(nodes)
    nodes_extent = vertices_wgs84_extent(nodes[["x", "y"]].to_numpy(dtype=np.float64), finish.crs)
    if finish.writer is None:
        return _SplitNetwork(
            arrays, signalled, edges_arrow=edges, edges_extent=extent,
            nodes_ready=_ReadyNodes(nodes_table, nodes_extent, signal_records),
        )  # fmt: skip
    finish.writer.write_table("network_edges", edges)
    finish.writer.write_table("network_nodes", nodes_table)
    return _SplitNetwork(
        arrays, signalled, edges_extent=extent, edges_written=True,
        nodes_ready=_ReadyNodes(None, nodes_extent, signal_records),
    )  # fmt: skip


def _save_network(store: Store, config: TwinConfig, split: _SplitNetwork, built_at: datetime) -> None:
    """The network in one piece with the city's street attributes, terrain and signals, and its records."""
    network = split.network
    nodes_extent: Bounds | None = None
    if isinstance(network, NetworkArrays):
        # saved as split (_Finish.final): no city street layer, no terrain; the edges and the nodes
        # (flagged) made ready, or written, by the worker
        ready = split.nodes_ready
        assert ready is not None
        city = CityStep(frame=gpd.GeoDataFrame())  # nothing conflated
        terrain: dict[str, Any] = {}
        terrain_notes: list[str] = []
        if not split.edges_written:
            assert split.edges_arrow is not None and ready.table is not None
            store.write_table("network_edges", split.edges_arrow)
            store.write_table("network_nodes", ready.table)
        nodes_extent, signals = ready.extent, ready.signals
    else:
        city = city_streets(store, config, network.edges.set_crs(store.crs, allow_override=True))
        edges, nodes, terrain, terrain_notes = network_terrain(
            store, config, city.frame, network.nodes.set_crs(store.crs, allow_override=True)
        )
        _record_decisions(store, STREET_DECISIONS, city.inputs, built_at)
        if not split.edges_written:
            store.write_table("network_edges", split.edges_arrow if split.edges_arrow is not None else edges)
        flagged, signals = (
            _signals(store, edges, nodes) if split.signalled is None else _flagged(nodes, split.signalled)
        )
        store.write_table("network_nodes", flagged)
    step = "model.network.build_network"
    terrain_inputs = [config.dem_source] if terrain and config.dem_source else []
    _record_written(
        store, "network_edges",
        title="Road network edges", description="Directed routable edges with per-mode permissions.",
        inputs=["roads", *city.inputs, *terrain_inputs], step=step,
        parameters={"split": "at shared OSM nodes", **city.parameters},
        quality={"connectivity": network.quality, **city.quality, **terrain},
        notes=[f"{network.quality['car_largest_component_share']:.0%} of car edges are in the largest "
               "strongly connected car component", *city.notes, *terrain_notes], built_at=built_at,
        extent_wgs84=split.edges_extent,
    )  # fmt: skip
    _record_written(
        store, "network_nodes",
        title="Road network nodes", description="Junctions and way ends of the routable network.",
        inputs=["roads", *terrain_inputs, *signals.inputs], step=step, parameters=signals.parameters,
        quality=signals.quality, notes=[*terrain_notes, *signals.notes], built_at=built_at,
        extent_wgs84=nodes_extent,
    )  # fmt: skip


def _nodes_arrow(nodes: pd.DataFrame) -> pa.Table:
    """Network nodes with their position as ``x``, ``y`` (:attr:`NetworkArrays.nodes`, perhaps flagged)
    as the store is given them: the other columns, then the points as WKB, made from the numbers."""
    xy = nodes[["x", "y"]].to_numpy(dtype=np.float64)
    table = pa.Table.from_pandas(nodes.drop(columns=["x", "y"]), preserve_index=False)
    return table.append_column(GEOMETRY, wkb_points(xy))


@dataclass(frozen=True)
class _SignalRecords:
    inputs: list[str]
    parameters: dict[str, Any]
    quality: dict[str, Any]
    notes: list[str]


def _signals(
    store: Store, edges: gpd.GeoDataFrame, nodes: gpd.GeoDataFrame
) -> tuple[gpd.GeoDataFrame, _SignalRecords]:
    """``nodes`` with ``traffic_signals`` (whether a signal controls the node) from the OSM
    ``traffic_signals`` layer, when the twin has one (``model/signals.py``)."""
    if not store.has_table("traffic_signals"):
        return nodes, _SignalRecords([], {}, {}, [])
    return _flagged(nodes, signalled_nodes(store.read_frame("traffic_signals"), edges))


def _flagged(nodes: pd.DataFrame, found: SignalledNodes) -> tuple[pd.DataFrame, _SignalRecords]:
    """``nodes`` (a frame of them, their geometry or ``x``, ``y`` columns) with the ``traffic_signals`` flag, and the records saying how the signals were placed."""
    flagged = nodes.assign(traffic_signals=nodes["node_id"].isin(found.node_ids).to_numpy())
    q = found.quality
    note = (
        f"{q['signalled_nodes']} nodes signal-controlled from {q['vehicle_signals']} OSM signal nodes: "
        f"{q['at_junction']} at a junction, {q['ahead_of_junction']} up to {SIGNAL_REACH_M:g} m ahead of one, "
        f"{q['mid_block_at_node']} mid-block at a node, {q['not_placed']} not placed (inside an edge "
        "with no junction in reach, or off the car network)"
    )
    return flagged, _SignalRecords(
        ["traffic_signals"], {"signal_reach_m": SIGNAL_REACH_M}, {"traffic_signals": q}, [note]
    )


def _needs_whole_network(config: TwinConfig) -> bool:
    """Whether the network must be built in one piece: conflating streets with a city layer and
    draping edges on a DEM work on the whole network at once."""
    return config.dem_source is not None or any(rule.layer == "streets" for rule in config.conflation)


@dataclass(frozen=True)
class _Partitioned:
    """The network built in spatial partitions and stored (edges, and nodes flagged where signals
    control them); its records not yet put."""

    network: PartitionedNetwork
    signals: _SignalRecords
    budget_mb: int


def _partitioned(
    store: Store, *, memory: BuildMemory, partitions: int, stop: threading.Event | None = None
) -> _Partitioned:
    """The network in spatial partitions (``build_network.py``) written through ``store``, the signals
    placed on its edges as they are made, and the nodes stored once, flagged (``stop``: see
    :func:`~civictwin.build_network.partitioned_network`)."""
    placing = store.read_frame("traffic_signals") if store.has_table("traffic_signals") else None
    with memory.spill_folder() as spill_to:
        network = partitioned_network(
            store, partitions=partitions, spill_to=spill_to, signals=placing, stop=stop
        )
    nodes, signals = network.nodes, _SignalRecords([], {}, {}, [])
    if network.signalled is not None:
        nodes, signals = _flagged(nodes, network.signalled)
    store.write_table("network_nodes", _nodes_arrow(nodes))
    return _Partitioned(network, signals, memory.budget_mb)


def _partitioned_apart(
    own: Store, *, memory: BuildMemory, partitions: int, stop: threading.Event
) -> _Partitioned:
    """:func:`_partitioned` on a worker thread through ``own``, the store's second connection (closed
    after): its records are held there and dropped, so :func:`_record_partitioned` puts them."""
    try:
        return _partitioned(own, memory=memory, partitions=partitions, stop=stop)
    finally:
        own.close()


def _record_partitioned(store: Store, made: _Partitioned, built_at: datetime) -> None:
    """The catalogue, lineage and quality records of a network built in partitions, the same as in one piece."""
    network, signals = made.network, made.signals
    step = "model.network.build_network (build_network.partitioned_network)"
    parameters = {"split": "at shared OSM nodes", "partitions": network.partitions,
                  "memory_mb": made.budget_mb}  # fmt: skip
    for table, title, description, quality, notes in (
        ("network_edges", "Road network edges", "Directed routable edges with per-mode permissions.",
         {"connectivity": network.quality},
         [f"{network.quality['car_largest_component_share']:.0%} of car edges are in the largest "
          "strongly connected car component"]),
        ("network_nodes", "Road network nodes", "Junctions and way ends of the routable network.",
         signals.quality, signals.notes),
    ):  # fmt: skip
        inputs = ["roads"] if table == "network_edges" else ["roads", *signals.inputs]
        extent = network.edges_extent if table == "network_edges" else network.nodes_extent
        record_derived(store, table, title=title, description=description, inputs=inputs, built_at=built_at,
                       extent_wgs84=extent)  # fmt: skip
        record_lineage(store, table, inputs=inputs, step=step,
                       parameters=parameters if table == "network_edges"
                       else {"partitions": network.partitions, **signals.parameters})  # fmt: skip
        record_quality(store, table, quality, notes)


def _record_decisions(store: Store, table: str, inputs: list[str], built_at: datetime) -> None:
    """Catalogue, lineage and quality for a conflation decisions table, when one was written."""
    if table not in inputs:
        return
    sources = [i for i in inputs if i not in (table, "buildings")]
    record_derived(store, table, title=f"Conflation decisions ({table.removeprefix('conflation_')})",
                   description="One row per OSM and city object: matched, only in one source, merged; "
                   "which side gave each attribute and which values conflicted.", inputs=sources, built_at=built_at)  # fmt: skip
    record_lineage(store, table, inputs=sources, step="model.conflation", parameters={})
    record_quality(store, table, {}, [])


def _buildings(store: Store, config: TwinConfig, area: BaseGeometry, built_at: datetime) -> None:
    osm = (
        lod1_buildings(store.read_frame("buildings"), config.buildings)
        if store.has_table("buildings")
        else None
    )
    city = city_buildings(store, config, osm)
    buildings = city.frame if city is not None else osm
    assert buildings is not None
    buildings, terrain_notes = building_terrain(store, config, buildings)
    residents = pd.to_numeric(buildings["population_est"], errors="coerce") if city is not None else None
    settings = config.population
    inputs = city.inputs if city is not None else ["buildings"]
    if city is not None:
        _record_decisions(store, BUILDING_DECISIONS, city.inputs, built_at)
        inputs = [i for i in inputs if i != BUILDING_DECISIONS] + [BUILDING_DECISIONS]
    if config.dem_source and terrain_notes:
        inputs.append(config.dem_source)
    if store.has_table("landuse"):
        buildings["landuse"] = landuse_of(buildings, store.read_frame("landuse"))
        inputs.append("landuse")
    grid_quality: dict[str, Any] = {}
    if settings.grid_source:
        notes, grid_quality = _grid_population(
            store, config, buildings, area, built_at, building_inputs=inputs
        )
        inputs.append(settings.grid_source)
    else:
        buildings["population_est"] = estimate_population(buildings, settings)
        notes = [f"population is an estimate (dasymetric: {1 / settings.persons_per_m2:.0f} m² of residential "
                 f"floor area per person; untyped buildings residential by the land use around them, "
                 f"{settings.mixed_use_residential_share:.0%} where no land use is mapped)"]  # fmt: skip
    if residents is not None and settings.grid_source:
        if residents.notna().any():
            notes.append(f"residents of {int(residents.notna().sum())} building(s) in the city building layer "
                         "not used: the population grid is authoritative")  # fmt: skip
    elif residents is not None:
        notes += _city_residents(buildings, residents)
    _save_derived(
        store, "buildings_3d", buildings, title="3D buildings (LoD1) with population",
        description="Footprints with heights, use classes, floor areas and residents.", inputs=inputs,
        step="model.buildings.lod1_buildings + model.population",
        parameters={**config.buildings.model_dump(), **settings.model_dump(), **(city.parameters if city else {})},
        quality={"population_total": round(float(buildings["population_est"].sum()), 1),
                 **grid_quality, **(city.quality if city else {})},
        notes=[*notes, *(city.notes if city else []), *terrain_notes], built_at=built_at,
    )  # fmt: skip


def _grid_population(
    store: Store, config: TwinConfig, buildings: gpd.GeoDataFrame, area: BaseGeometry, built_at: datetime,
    *, building_inputs: list[str],
) -> tuple[list[str], dict[str, Any]]:  # fmt: skip
    """Residents from the population grid, everyone placed; people on open land go to ``population_land``.

    ``building_inputs``: the catalogued tables the buildings came from (OSM, a city layer, decisions).
    """
    settings = config.population
    assert settings.grid_source is not None
    layers = {
        name: store.read_frame(name) if store.has_table(name) else None
        for name in ("landuse", "green", "water")
    }
    grid = store.read_frame(settings.grid_source)
    if settings.grid_column not in grid.columns or settings.grid_column == grid.geometry.name:
        available = ", ".join(str(c) for c in grid.columns if c != grid.geometry.name) or "(none)"
        raise ConfigError(f"the grid '{settings.grid_source}' has no column '{settings.grid_column}'; "
                          f"available: {available}", path=config.resolve(CONFIG_FILENAME),
                          field="population.grid_column")  # fmt: skip
    placement = place_grid_population(
        buildings, grid, column=settings.grid_column, settings=settings,
        area=area, unbuildable=unbuildable_land(buildings, **layers),
    )  # fmt: skip
    buildings["population_est"] = placement.residents
    quality = placement.quality()
    notes = [f"population from the grid '{settings.grid_source}': all {quality['total']:,.0f} people placed, "
             f"{quality['share_in_residential_floor_area']:.1%} in residential floor area, "
             f"{quality['share_on_buildable_land']:.1%} on the buildable land of "
             f"{quality['cells_on_buildable_land']} cell(s) without homes (table population_land)"]  # fmt: skip
    if placement.whole_cell_fallbacks:
        notes.append(f"{placement.whole_cell_fallbacks} cell(s) had no buildable land left; "
                     "their people are spread over the whole cell within the area")  # fmt: skip
    land_inputs = list(dict.fromkeys([
        settings.grid_source, *building_inputs, *[n for n, layer in layers.items() if layer is not None],
    ]))  # fmt: skip
    _save_derived(
        store, "population_land", placement.land, title="Grid population on buildable land",
        description="People of grid cells without residential floor area, spread evenly over the cell's "
        "buildable land (within the area, less water, green, non-residential land use and buildings).",
        inputs=land_inputs, step="model.population.place_grid_population",
        parameters={"grid_column": settings.grid_column}, quality={"population_grid": quality},
        notes=notes[1:], built_at=built_at,
    )  # fmt: skip
    return notes, {"population_grid": quality}


def _city_residents(buildings: gpd.GeoDataFrame, given: pd.Series) -> list[str]:
    """Residents the city layer gives replace the estimate for those buildings (conflation rules)."""
    if not given.notna().any():
        return []
    buildings["population_est"] = given.fillna(buildings["population_est"]).round(2)
    return [f"residents of {int(given.notna().sum())} building(s) from the city building layer"]


def _transit(store: Store, built_at: datetime) -> None:
    snapped = snap_stops(store.read_frame("transit_stops"), store.read_frame("network_edges"))
    _save_derived(
        store, "transit_stops_snapped", snapped, title="Transit stops snapped to the network",
        description="Each stop with its nearest walkable edge.", inputs=["transit_stops", "network_edges"],
        step="model.transit.snap_stops", parameters={"max_distance_m": 250.0},
        quality={"unsnapped": snapped.attrs[UNSNAPPED]}, notes=[], built_at=built_at,
    )  # fmt: skip


def _zones(
    store: Store, config: TwinConfig, area_wgs84: BaseGeometry, area: BaseGeometry, built_at: datetime
) -> None:
    zones_cfg = config.zones
    if zones_cfg.kind == "polygons":
        assert zones_cfg.source is not None
        zones = polygon_zones(store.read_frame(zones_cfg.source), zones_cfg.id_column)
        inputs = [zones_cfg.source]
    else:
        zones = h3_zones(area_wgs84, zones_cfg.resolution, store.crs)
        inputs = []
    has = {name: store.has_table(name) for name in ("buildings_3d", "pois", "green", "transit_stops")}
    buildings = _buildings_for_zones(store) if has["buildings_3d"] else None
    stops, peak = _stops_with_peak(store) if has["transit_stops"] else (None, None)
    grid_values = _grid_values(store, config, area)
    summary = summarise_zones(
        zones,
        buildings=buildings,
        residential_floor_m2=residential_floor_area(buildings, config.population)
        if buildings is not None
        else None,
        pois=store.read_frame("pois", columns=["category", GEOMETRY]) if has["pois"] else None,
        green=store.read_frame("green", columns=[GEOMETRY]) if has["green"] else None,
        stops=stops,
        stop_peak_departures=peak,
        population_land=store.read_frame("population_land") if store.has_table("population_land") else None,
        grid_values=grid_values,
    )
    inputs += [name for name, present in has.items() if present] + list(grid_values)
    if store.has_table("transit_stop_frequency"):
        inputs.append("transit_stop_frequency")
    quality: dict[str, Any] = {"zones": len(summary)}
    notes: list[str] = []
    parameters = zones_cfg.model_dump()
    if config.sociodemographics is not None:
        social = sociodemographics_on_zones(store, config.sociodemographics, summary)
        summary, quality["sociodemographics"], notes = social.zones, social.quality, social.notes
        inputs += [name for name in social.inputs if name not in inputs]
        parameters["sociodemographics"] = config.sociodemographics.model_dump()
    _save_derived(
        store, "zones", summary, title="Analysis zones",
        description="Zones with population, jobs proxy, POIs, green area and transit service.",
        inputs=inputs, step="model.zones.summarise_zones", parameters=parameters,
        quality=quality, notes=notes, built_at=built_at,
    )  # fmt: skip


def _buildings_for_zones(store: Store) -> gpd.GeoDataFrame:
    """The buildings' columns the zones' summary reads (people, floor area, use, land use and footprint),
    not the names, tags and heights it would otherwise turn into Python strings."""
    present = store.columns("buildings_3d")
    wanted = ("population_est", "floor_area_m2", "use", "landuse", GEOMETRY)
    return store.read_frame("buildings_3d", columns=[c for c in wanted if c in present])


def mobility_on_zones(store: Store, config: TwinConfig, built_at: datetime) -> None:
    """The phone-based mobility source's OD matrix and presence counts on the twin's zones."""
    sources = [s for s in config.sources if s.kind == SourceKind.MOBILITY]
    if not sources:
        return
    if len(sources) > 1:
        raise ConfigError(f"{len(sources)} sources of kind 'mobility'; give one operator's data at a time",
                          path=config.resolve(CONFIG_FILENAME), field="sources")  # fmt: skip
    name = sources[0].name
    zoning = f"{name}{mobility_source.ZONING_SUFFIX}"
    weights = areal_weights(store.read_frame(zoning), store.read_frame("zones"))
    method = "areal weighting: a provider zone's counts shared by the share of its area in each twin zone"
    for suffix, table, reaggregate, title in (
        (mobility_source.OD_SUFFIX, "mobility_od", reaggregate_od, "Phone-based OD matrix on the twin's zones"),
        (mobility_source.PRESENCE_SUFFIX, "mobility_presence", reaggregate_presence,
         "Phone-based presence counts on the twin's zones"),
    ):  # fmt: skip
        if not store.has_table(f"{name}{suffix}"):
            continue
        result = reaggregate(store.read_table(f"{name}{suffix}"), weights)
        store.write_table(table, result.frame)
        inputs = [f"{name}{suffix}", zoning, "zones"]
        record_derived(store, table, title=title, description=f"From source '{name}' after its disclosure "
                       f"control (cells under k dropped); {method}.", inputs=inputs, built_at=built_at)  # fmt: skip
        record_lineage(store, table, inputs=inputs, step="model.mobility", parameters={"method": method})
        notes = [f"{result.share_kept:.1%} of the provider's counts lie within the twin's zones"]
        if result.value_one_end_outside:
            notes.append(f"{result.value_one_end_outside:,.1f} trips with one end outside the twin's zones "
                         f"(zone '{OUTSIDE}')")  # fmt: skip
        record_quality(store, table, {"share_within_zones": round(result.share_kept, 4),
                                      "total_in": result.value_in, "total_out": result.value_out,
                                      "total_one_end_outside": result.value_one_end_outside}, notes)  # fmt: skip


def _grid_values(store: Store, config: TwinConfig, area: BaseGeometry) -> dict[str, gpd.GeoDataFrame]:
    """Per grid source, its cells within the area with every numeric column but the population one."""
    found: dict[str, gpd.GeoDataFrame] = {}
    for source in config.sources:
        if source.kind != SourceKind.GRID or not store.has_table(source.name):
            continue
        if config.sociodemographics is not None and source.name == config.sociodemographics.source:
            continue  # interpolated with its counts and averages told apart (build_sociodemo.py)
        cells = store.read_frame(source.name)
        skip = {config.population.grid_column} if source.name == config.population.grid_source else set()
        columns = [c for c in cells.columns if c != cells.geometry.name and c not in skip
                   and pd.api.types.is_numeric_dtype(cells[c])]  # fmt: skip
        if columns:
            clipped = cells.geometry.intersection(area)
            found[source.name] = gpd.GeoDataFrame(cells[columns], geometry=clipped.to_numpy(), crs=cells.crs)
    return found


def _stops_with_peak(store: Store) -> tuple[gpd.GeoDataFrame, pd.Series]:
    """Transit stops and their departures in the network-wide peak hour."""
    stops = store.read_frame("transit_stops")
    if not store.has_table("transit_stop_frequency"):
        return stops, pd.Series(0.0, index=stops.index)
    freq = store.read_table("transit_stop_frequency")
    if freq.empty:
        return stops, pd.Series(0.0, index=stops.index)
    peak_hour = freq.groupby("hour")["departures"].sum().idxmax()
    at_peak = freq[freq["hour"] == peak_hour].set_index(["feed", "stop_id"])["departures"]
    keys = pd.MultiIndex.from_arrays([stops["feed"], stops["stop_id"]])
    return stops, pd.Series(at_peak.reindex(keys).fillna(0).to_numpy(), index=stops.index)


def _totals(store: Store) -> dict[str, float]:
    totals: dict[str, float] = {}
    if store.has_table("zones"):
        zones = store.read_table("zones", columns=["population", "jobs_proxy_m2", "green_m2"])
        totals = {f"{c}": round(float(zones[c].sum()), 1) for c in zones.columns}
    return totals


def open_twin(config: TwinConfig) -> Store:
    """Open a built twin read-only."""
    return open_store(config)
