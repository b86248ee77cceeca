"""The build's road network step for a network larger than the memory budget: in spatial partitions.

Each road belongs to exactly one partition, the one holding the lower left corner of its bounding
box (:meth:`civictwin.store.base.Store.read_cell`), so every edge, which comes from one road, is
made exactly once, including the edges of roads that cross a partition border. Two passes over the
partitions: the first counts every road's node references to find the nodes where roads meet,
anywhere in the network (a road is split at such a node even when the road meeting it lies in
another partition); the second splits each partition's roads and streams their directed edges into
the store batch by batch. The nodes (degrees summed over partitions) and the car network's
connectivity are then computed from the edges' ends, which are small; the build stores the nodes.
The result holds the same rows as the network built in one piece
(:func:`civictwin.model.network.build_network`), in partition order.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import shapely

from civictwin.geometry import vertices_wgs84_extent
from civictwin.memory import grid_cells
from civictwin.model.network import connectivity, merge_nodes, network_part, shared_nodes, usable_ways
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
    nodes: gpd.GeoDataFrame
    """The network's nodes (``node_id``, ``degree``, points), not yet stored: the build flags the
    signal-controlled ones first, so that the table is written once."""
    partitions: int
    quality: dict[str, float]
    edges_extent: Bounds | None
    """The edges' exact WGS84 extent (degrees), from their vertices as they were made."""
    nodes_extent: Bounds | None
    """The nodes' exact WGS84 extent (degrees)."""


def partitioned_network(store: Store, *, partitions: int, spill_to: Path) -> PartitionedNetwork:
    """Write ``network_edges`` from ``roads``, in about ``partitions`` cells, and make the nodes.

    Each partition's edges go to an Arrow file in ``spill_to`` as they are made (the store's
    connection is busy reading the partitions meanwhile), which the store then reads batch by batch.
    Their WKB encoding, spilling and WGS84 extent (for the catalogue, which would otherwise transform
    every stored vertex again: 5.4 s at 32×32) run on a worker thread while the next partition is
    read and split (Shapely's, Arrow's and PROJ's work releases the GIL; the order of the batches is
    kept).
    """
    bounds = store.table_bounds("roads")
    cells = grid_cells(bounds, partitions) if bounds is not None else [_PLANE]
    shared = shared_nodes(np.concatenate([_refs_of(store, cell) for cell in cells]))
    ends: list[pd.DataFrame] = []
    car_from: list[npt.NDArray[np.int64]] = []
    car_to: list[npt.NDArray[np.int64]] = []
    spilled = spill_to / "network_edges.arrows"
    with (
        pa.OSFile(str(spilled), "wb") as sink,
        pa.ipc.new_stream(sink, EDGE_SCHEMA) as writer,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="network-spill") as spilling,
    ):
        spilt: Future[Bounds | None] | None = None  # the previous partition's edges, being spilled
        extents: list[Bounds | None] = []
        for cell in cells:
            roads = store.read_cell("roads", cell, columns=ROAD_COLUMNS)
            if roads.empty:
                continue
            part = network_part(usable_ways(roads), shared=shared)
            del roads
            car = part.edges["car"].to_numpy()
            car_from.append(part.edges["from_node"].to_numpy()[car])
            car_to.append(part.edges["to_node"].to_numpy()[car])
            ends.append(part.ends)
            if spilt is not None:
                extents.append(spilt.result())
            spilt = spilling.submit(_spill, writer, part.edges, store.crs)
        if spilt is not None:
            extents.append(spilt.result())
    with pa.memory_map(str(spilled)) as source:
        edges = store.write_table("network_edges", pa.ipc.open_stream(source))
    spilled.unlink()
    nodes = merge_nodes(ends) if ends else merge_nodes([_NO_ENDS])
    quality = connectivity(_joined(car_from), _joined(car_to))
    return PartitionedNetwork(
        edges=edges, nodes=nodes, partitions=len(cells), quality=quality, edges_extent=_union(extents),
        nodes_extent=vertices_wgs84_extent(shapely.get_coordinates(nodes.geometry.to_numpy()), store.crs),
    )  # fmt: skip


_PLANE: Bounds = (-np.inf, -np.inf, np.inf, np.inf)
_NO_ENDS = pd.DataFrame({"node_id": np.empty(0, np.int64), "degree": np.empty(0, np.int64),
                         "x": np.empty(0), "y": np.empty(0)})  # fmt: skip


def _refs_of(store: Store, cell: Bounds) -> npt.NDArray[np.int64]:
    """The node references of the usable roads of one cell, flattened."""
    roads = store.read_cell("roads", cell, columns=["node_refs", GEOMETRY])
    return usable_ways(roads).refs if len(roads) else np.empty(0, np.int64)


def _spill(writer: pa.RecordBatchStreamWriter, edges: pd.DataFrame, crs: str) -> Bounds | None:
    """One partition's edges written to the spill stream; their exact WGS84 extent (None: no edges)."""
    writer.write_batch(_edge_batch(edges))
    return vertices_wgs84_extent(shapely.get_coordinates(edges.geometry.to_numpy()), crs)


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


def _edge_batch(edges: pd.DataFrame) -> pa.RecordBatch:
    """One partition's edges as a record batch of :data:`EDGE_SCHEMA` (geometry as WKB)."""
    columns = {name: edges[name].to_numpy() for name in EDGE_SCHEMA.names if name != GEOMETRY}
    columns[GEOMETRY] = shapely.to_wkb(edges.geometry.to_numpy())
    return pa.RecordBatch.from_pydict(
        {name: pa.array(values, type=EDGE_SCHEMA.field(name).type, from_pandas=True)
         for name, values in columns.items()}, schema=EDGE_SCHEMA,
    )  # fmt: skip


def _joined(arrays: list[npt.NDArray[np.int64]]) -> npt.NDArray[np.int64]:
    return np.concatenate(arrays) if arrays else np.empty(0, np.int64)
