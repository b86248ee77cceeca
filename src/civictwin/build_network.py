"""The build's road network step for a network larger than the memory budget: in spatial partitions.

Each road belongs to exactly one partition, the one holding the lower left corner of its bounding
box (:meth:`civictwin.store.base.Store.read_cell`), so every edge, which comes from one road, is
made exactly once, including the edges of roads that cross a partition border. The store first
counts every road's node references to find the nodes where roads meet, anywhere in the network (a
road is split at such a node even when the road meeting it lies in another partition); then each
partition's roads are split and their directed edges streamed into the store batch by batch. The
nodes (degrees summed over partitions) and the car network's connectivity are then computed from the
edges' ends, which are small; the build stores the nodes.
The result holds the same rows as the network built in one piece
(:func:`civictwin.model.network.build_network`), in partition order.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from civictwin.geometry import vertices_wgs84_extent
from civictwin.memory import grid_cells
from civictwin.model.network import (
    EdgeLines,
    NetworkPart,
    connectivity,
    merged_ends,
    network_part,
    ways_of_rows,
)
from civictwin.model.signals import SignalledNodes, SignalReach, signalled_nodes
from civictwin.store.base import GEOMETRY, Bounds, Store

ROAD_COLUMNS = (
    "osm_id", "highway", "name", "lanes", "maxspeed", "oneway", "oneway_bicycle", "junction", "access",
    "motor_vehicle", "motorcar", "vehicle", "bicycle", "foot", "busway", "node_refs", GEOMETRY,
)  # fmt: skip
"""The columns of ``roads`` the network is made from."""

EDGE_SCHEMA = pa.schema([
    ("edge_id", pa.string()), ("from_node", pa.int64()), ("to_node", pa.int64()), ("osm_id", pa.int64()),
    ("name", pa.string()), ("highway", pa.string()), ("lanes", pa.int64()), ("speed_kmh", pa.float64()),
    ("maxspeed_kmh", pa.float64()), ("capacity_vph", pa.int64()), ("capacity_class", pa.int64()),
    ("length_m", pa.float64()), ("car", pa.bool_()), ("bus", pa.bool_()), ("bike", pa.bool_()),
    ("walk", pa.bool_()), (GEOMETRY, pa.binary()),
])  # fmt: skip
"""The stored ``network_edges`` columns, fixed so that every partition's batch has the same types
(a partition whose roads are all unnamed would otherwise give ``name`` no type)."""


@dataclass
class PartitionedNetwork:
    """What the partitioned network step wrote and found."""

    edges: int
    nodes: pd.DataFrame
    """The network's nodes (``node_id``, ``degree``, position as ``x``, ``y``), not yet stored: the
    build flags the signal-controlled ones first, so that the table is written once (its points made
    as WKB from the numbers, without a GEOS point per node)."""
    partitions: int
    quality: dict[str, float]
    edges_extent: Bounds | None
    """The edges' exact WGS84 extent (degrees), from their vertices as they were made."""
    nodes_extent: Bounds | None
    """The nodes' exact WGS84 extent (degrees)."""
    signalled: SignalledNodes | None = None
    """The nodes the signals control, and how they were placed (None: no signals given)."""


class NetworkStopped(Exception):
    """The build the partitioned network was made for failed meanwhile: it stopped between partitions."""


def partitioned_network(
    store: Store,
    *,
    partitions: int,
    spill_to: Path,
    signals: gpd.GeoDataFrame | None = None,
    stop: threading.Event | None = None,
) -> PartitionedNetwork:
    """Write ``network_edges`` from ``roads``, in about ``partitions`` cells, make the nodes, and place
    ``signals`` (the ``traffic_signals`` layer; None: none placed) on the edges as they are made.
    ``stop``: set when the build has failed meanwhile: :class:`NetworkStopped` is raised before the
    next partition, instead of finishing a network nobody will keep.

    Each partition's edges are made into a record batch on a worker thread while the next partition
    is read and split (Arrow's, NumPy's and PROJ's work there releases the GIL; the order of the batches is
    kept), with their exact WGS84 extent for the catalogue (which would otherwise transform every
    stored vertex again: 5.4 s at 32×32) and their car edges near signals. The batches then go into the store as they come,
    through a second connection of the store's own (:meth:`Store.thread_writer`), so that the write
    overlaps the split instead of following it; a backend without one gets them through an Arrow
    file in ``spill_to``, read back batch by batch once the partitions are done. The car edges that
    come within reach of a vehicle signal (:class:`SignalReach`) are kept, with their lines, for the
    signal rule, applied to them once every partition is done.
    """
    bounds = store.table_bounds("roads")
    cells = grid_cells(bounds, partitions) if bounds is not None else [_PLANE]
    shared = store.shared_list_values("roads", "node_refs")  # shared_nodes, counted by the store
    made = _Made()
    reach = SignalReach(signals) if signals is not None else None
    with (
        _edge_sink(store, spill_to) as sink,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="network-batches") as batching,
    ):
        batch: Future[_Batched] | None = None  # the previous partition's batch, being made
        for cell in cells:
            if stop is not None and stop.is_set():
                raise NetworkStopped("the build stopped")
            roads = store.read_cell("roads", cell, columns=ROAD_COLUMNS)
            if not roads.num_rows:
                continue
            part = network_part(ways_of_rows(roads), shared=shared)
            del roads
            made.add(part)
            if batch is not None:
                made.batched(batch.result())
            batch = batching.submit(_batch_to, sink, part, store.crs, reach)
        if batch is not None:
            made.batched(batch.result())
        # while the sink writes the last batch, and the signal rule runs beside
        placing = (
            batching.submit(signalled_nodes, signals, made.near_signals()) if signals is not None else None
        )
        nodes = merged_ends(made.ends or [_NO_ENDS])
        nodes_extent = vertices_wgs84_extent(nodes[["x", "y"]].to_numpy(dtype=np.float64), store.crs)
        quality = connectivity(_joined(made.car_from), _joined(made.car_to))
        signalled = placing.result() if placing is not None else None
    return PartitionedNetwork(
        edges=sink.rows, nodes=nodes, partitions=len(cells), quality=quality,
        edges_extent=_union(made.extents), nodes_extent=nodes_extent, signalled=signalled,
    )  # fmt: skip


@dataclass(frozen=True)
class _Batched:
    """What the batching thread made of one partition besides its batch."""

    extent: Bounds | None
    near: gpd.GeoDataFrame | None
    """The car edges within reach of a vehicle signal (None: no signals to place)."""


@dataclass
class _Made:
    """What the partitions made that the network as a whole needs: every edge end (for the nodes),
    the car edges' ends (for connectivity), the car edges near signals, and the edges' extents."""

    ends: list[pd.DataFrame] = field(default_factory=list)
    car_from: list[npt.NDArray[np.int64]] = field(default_factory=list)
    car_to: list[npt.NDArray[np.int64]] = field(default_factory=list)
    near: list[gpd.GeoDataFrame] = field(default_factory=list)
    extents: list[Bounds | None] = field(default_factory=list)

    def add(self, part: NetworkPart) -> None:
        """Keep what the network needs of one partition's edges."""
        car = part.edges["car"].to_numpy()
        self.car_from.append(part.edges["from_node"].to_numpy()[car])
        self.car_to.append(part.edges["to_node"].to_numpy()[car])
        self.ends.append(part.ends)

    def batched(self, done: _Batched) -> None:
        """Keep what the batching thread made of a partition."""
        self.extents.append(done.extent)
        if done.near is not None:
            self.near.append(done.near)

    def near_signals(self) -> gpd.GeoDataFrame:
        """The car edges within reach of a vehicle signal, of every partition."""
        return pd.concat(self.near, ignore_index=True) if self.near else _NO_CAR_EDGES


_SIGNAL_COLUMNS = ["edge_id", "from_node", "to_node", "car"]
"""The edges' columns the signal rule reads, beside their lines."""
_NO_CAR_EDGES = gpd.GeoDataFrame(
    {"edge_id": pd.Series(dtype=str), "from_node": pd.Series(dtype=np.int64),
     "to_node": pd.Series(dtype=np.int64), "car": pd.Series(dtype=bool)},
    geometry=np.empty(0, dtype=object),
)  # fmt: skip


def _car_edges_near(part: NetworkPart, reach: SignalReach) -> gpd.GeoDataFrame:
    """The car edges of ``part`` within reach of a vehicle signal, with their lines (GEOS lines made
    for these edges only)."""
    car = np.flatnonzero(part.edges["car"].to_numpy(dtype=bool))
    kept = car[reach.near(part.lines.bounds(car))]
    return gpd.GeoDataFrame(
        part.edges[_SIGNAL_COLUMNS].iloc[kept].reset_index(drop=True), geometry=part.lines.geometries(kept)
    )


_PLANE: Bounds = (-np.inf, -np.inf, np.inf, np.inf)
_NO_ENDS = pd.DataFrame({"node_id": np.empty(0, np.int64), "degree": np.empty(0, np.int64),
                         "x": np.empty(0), "y": np.empty(0)})  # fmt: skip


def _batch_to(sink: _EdgeSink, part: NetworkPart, crs: str, reach: SignalReach | None) -> _Batched:
    """One partition's edges given to ``sink`` as a record batch; their exact WGS84 extent (None: no
    edges), from the vertices of the segments they run along, and their car edges near signals."""
    sink.put(_edge_batch(part.edges, part.lines))
    return _Batched(
        extent=vertices_wgs84_extent(part.lines.vertices(), crs),
        near=_car_edges_near(part, reach) if reach is not None else None,
    )


class _EdgeSink(ABC):
    """Where the partitions' edge batches go, in order; :attr:`rows` written once closed."""

    rows = 0

    @abstractmethod
    def put(self, batch: pa.RecordBatch) -> None:
        """Take the next partition's edges."""

    @abstractmethod
    def close(self, store: Store) -> None:
        """Every batch is given: finish writing ``network_edges`` (``store``: the build's own)."""

    @abstractmethod
    def abandon(self) -> None:
        """The build failed: stop, leave no ``network_edges`` written, free what is held."""


@contextmanager
def _edge_sink(store: Store, spill_to: Path) -> Iterator[_EdgeSink]:
    """A sink streaming into ``store`` on its thread writer, or spilling to ``spill_to`` without one;
    closed when the block ends, abandoned when it raises."""
    writer = store.thread_writer()
    sink: _EdgeSink = _StreamedEdges(writer) if writer is not None else _SpilledEdges(spill_to)
    try:
        yield sink
    except BaseException:
        sink.abandon()
        raise
    sink.close(store)


class _StreamedEdges(_EdgeSink):
    """Batches written to ``network_edges`` as they come, by a thread of their own on the store's
    second connection (DuckDB writes one table while another connection reads others). At most one
    batch waits beside the one being written, so memory holds two partitions' batches, not all."""

    _END = None

    def __init__(self, writer: Store) -> None:
        self._queue: queue.Queue[pa.RecordBatch | BaseException | None] = queue.Queue(maxsize=1)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="network-write")
        self._written = self._pool.submit(self._write, writer)

    def _write(self, writer: Store) -> int:
        try:
            return writer.write_table(
                "network_edges", pa.RecordBatchReader.from_batches(EDGE_SCHEMA, self._taken())
            )
        finally:
            writer.close()

    def _taken(self) -> Iterator[pa.RecordBatch]:
        while (item := self._queue.get()) is not self._END:
            if isinstance(item, BaseException):
                raise item  # abandoned: the writer drops what it staged
            yield item

    def put(self, batch: pa.RecordBatch) -> None:
        self._offer(batch)

    def _offer(self, item: pa.RecordBatch | BaseException | None) -> None:
        """Queue ``item`` for the writer, unless the writer has stopped (then its error is raised)."""
        while True:
            if self._written.done():
                self._written.result()  # raises the writer's error
                raise RuntimeError("the network's edge writer stopped early")
            with contextlib.suppress(queue.Full):
                self._queue.put(item, timeout=0.1)
                return

    def close(self, store: Store) -> None:
        try:
            self._offer(self._END)
            self.rows = self._written.result()
        finally:
            self._pool.shutdown()

    def abandon(self) -> None:
        with contextlib.suppress(BaseException):
            self._offer(_Abandoned())
        with contextlib.suppress(BaseException):
            self._written.result()
        self._pool.shutdown()


class _Abandoned(Exception):
    """Raised inside the edge writer when the build gave up on the network."""


class _SpilledEdges(_EdgeSink):
    """Batches spilled to an Arrow stream file, written to the store from it once all are given (for a
    backend with one connection, busy reading the partitions meanwhile)."""

    def __init__(self, spill_to: Path) -> None:
        self._path = spill_to / "network_edges.arrows"
        self._file = pa.OSFile(str(self._path), "wb")
        self._stream = pa.ipc.new_stream(self._file, EDGE_SCHEMA)

    def put(self, batch: pa.RecordBatch) -> None:
        self._stream.write_batch(batch)

    def close(self, store: Store) -> None:
        self._stream.close()
        self._file.close()
        with pa.memory_map(str(self._path)) as source:
            self.rows = store.write_table("network_edges", pa.ipc.open_stream(source))
        self._path.unlink()

    def abandon(self) -> None:
        self._stream.close()
        self._file.close()
        self._path.unlink(missing_ok=True)


def _union(extents: list[Bounds | None]) -> Bounds | None:
    """The extent holding every one of ``extents`` (None when all are None)."""
    found = [e for e in extents if e is not None]
    if not found:
        return None
    return (
        min(e[0] for e in found),
        min(e[1] for e in found),
        max(e[2] for e in found),
        max(e[3] for e in found),
    )


def _edge_batch(edges: pd.DataFrame, lines: EdgeLines) -> pa.RecordBatch:
    """One partition's edges as a record batch of :data:`EDGE_SCHEMA`, the lines' WKB made from their
    vertices (what :func:`shapely.to_wkb` gives for them)."""
    columns = [
        lines.wkb() if name == GEOMETRY
        else pa.array(edges[name].to_numpy(), type=EDGE_SCHEMA.field(name).type, from_pandas=True)
        for name in EDGE_SCHEMA.names
    ]  # fmt: skip
    return pa.RecordBatch.from_arrays(columns, schema=EDGE_SCHEMA)


def _joined(arrays: list[npt.NDArray[np.int64]]) -> npt.NDArray[np.int64]:
    return np.concatenate(arrays) if arrays else np.empty(0, np.int64)
