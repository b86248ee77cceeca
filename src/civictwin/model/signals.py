"""Traffic signals on the road network: which junctions OSM's signal nodes control.

OSM maps a signalised junction either with ``highway=traffic_signals`` on the junction node itself,
or with one signal node on each approach where vehicles stop, a few metres before the junction,
optionally with ``traffic_signals:direction=forward|backward`` saying which direction of the way it
signals (OSM wiki, Tag:highway=traffic_signals and Key:traffic_signals:direction). netconvert's
``--tls.guess-signals`` reads the second pattern the same way: a signal node up to
``--tls.guess-signals.dist`` (25 m by default) ahead of an intersection is that intersection's signal
(SUMO documentation, Networks/Import/OpenStreetMap, "Traffic Lights"). The rule is applied here, on the
twin's own data, so that the result is a plain flag on ``network_nodes`` that a scenario or a city's
road layer can edit, and so that signal nodes lying inside a twin edge (the twin splits ways only
where they meet) count too.

A signal at a node where three or more car-connected neighbours meet controls that junction. Any
other signal on a car road is followed in the direction(s) it signals, along the car edges through
nodes where the street only continues, to the first such junction within :data:`SIGNAL_REACH_M`.
A signal with no junction in reach is a mid-block signal (typically a signalised pedestrian
crossing): it controls its own node when it is one of the network's nodes, and is left out (and
counted) when it lies inside an edge. Signalised pedestrian crossings mapped as their own
``highway=crossing`` node are kept in the ``traffic_signals`` layer but control nothing here: the
signal for vehicles at such a crossing is mapped as ``highway=traffic_signals`` (OSM wiki).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely

SIGNAL_REACH_M = 25.0
"""How far ahead of a junction (metres along the road) a signal node still belongs to it: the default
of netconvert's ``--tls.guess-signals.dist`` (``netconvert --save-template``, SUMO 1.28)."""

ON_VERTEX_M = 0.01
"""A signal node lies on an edge when it is this close (metres) to the edge's line: it is one of the
line's vertices, projected with the same transformation."""


@dataclass(frozen=True)
class SignalledNodes:
    """``node_id`` of every node a signal controls, and the counts for the quality report."""

    node_ids: frozenset[int]
    quality: dict[str, int]


def signalled_nodes(signals: pd.DataFrame, edges: gpd.GeoDataFrame) -> SignalledNodes:
    """The network nodes the vehicle signals among ``signals`` control (see the module docstring).

    ``signals`` follows the ``traffic_signals`` layer (``osm_id``, ``highway``, ``direction``,
    geometry); ``edges`` follows ``network_edges`` (``edge_id``, ``from_node``, ``to_node``, ``car``,
    geometry; only the car edges are used), in the same CRS. A mid-block signal controls its own
    node when it is a car edge's end: every such node is a network node, so the nodes themselves are
    not needed.
    """
    vehicle = signals[signals["highway"] == "traffic_signals"].reset_index(drop=True)
    graph = _CarGraph.of(edges)
    on_edges = _edges_through(vehicle, graph)
    controlled: set[int] = set()
    counts = dict.fromkeys(_PLACEMENTS, 0)
    osm_ids = vehicle["osm_id"].astype(np.int64).to_numpy()
    for row, osm_id, direction in zip(
        range(len(vehicle)), osm_ids.tolist(), _directions(vehicle), strict=True
    ):
        if graph.is_junction(osm_id):
            controlled.add(osm_id)
            counts["at_junction"] += 1
            continue
        starts = graph.leaving(osm_id, direction) if osm_id in graph.on_network else on_edges.get(row, [])
        reached = {j for edge, ahead in starts if (j := graph.junction_ahead(edge, ahead)) is not None}
        if reached:
            controlled |= reached
            counts["ahead_of_junction"] += 1
        elif osm_id in graph.on_network:
            controlled.add(osm_id)
            counts["mid_block_at_node"] += 1
        else:
            counts["not_placed"] += 1
    quality = {
        "signals": len(signals),
        "vehicle_signals": len(vehicle),
        "pedestrian_crossings": int((signals["highway"] == "crossing").sum()),
        **counts,
        "signalled_nodes": len(controlled),
    }
    return SignalledNodes(node_ids=frozenset(controlled), quality=quality)


class SignalReach:
    """Where the vehicle signals among ``signals`` reach: for a network built in partitions, which
    keeps of each partition only the car edges the rule may look at.

    Every car edge the rule looks at for a signal comes within :data:`SIGNAL_REACH_M` of it (the
    junction ahead and the nodes on the way lie within reach, and so does every edge at them), so
    the rule applied to those edges alone places the signals exactly as on the whole network.
    """

    def __init__(self, signals: pd.DataFrame) -> None:
        vehicle = signals[signals["highway"] == "traffic_signals"]
        self._tree = shapely.STRtree(vehicle.geometry.to_numpy())

    def near(self, boxes: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """Which of the edges given by their bounding ``boxes`` (rows of ``xmin, ymin, xmax, ymax``)
        come within reach (and a metre) of a vehicle signal: a superset, since a box may come near a
        signal its line does not."""
        found = np.zeros(len(boxes), dtype=bool)
        if not len(boxes) or not len(self._tree.geometries):
            return found
        margin = SIGNAL_REACH_M + 1.0
        near = self._tree.query(shapely.box(boxes[:, 0] - margin, boxes[:, 1] - margin,
                                            boxes[:, 2] + margin, boxes[:, 3] + margin))  # fmt: skip
        found[near[0]] = True
        return found


_PLACEMENTS = ("at_junction", "ahead_of_junction", "mid_block_at_node", "not_placed")


def _directions(signals: pd.DataFrame) -> list[str]:
    """``forward``, ``backward`` or ``both`` per signal (a missing or any other value counts as both)."""
    values = signals["direction"].tolist() if "direction" in signals.columns else [None] * len(signals)
    return [v if isinstance(v, str) and v in ("forward", "backward") else "both" for v in values]


@dataclass(frozen=True)
class _CarGraph:
    """The car edges (``edge_id``, ``from_node``, ``to_node``, ``length``, geometry) and their nodes.

    Built with array operations, and the per-edge values kept as plain lists by edge row: the rule
    walks the graph one edge at a time, and indexing a list costs a fraction of indexing a pandas
    column (with pandas lookups and a dictionary of neighbour sets built edge by edge, the rule took
    1.8 CPU seconds of an 8×8 build; now 0.4 s).
    """

    edges: gpd.GeoDataFrame
    edge_ids: list[str]
    starts: list[int]
    ends: list[int]
    lengths: list[float]
    junctions: frozenset[int]
    """Nodes with three or more distinct car-connected neighbours."""
    on_network: frozenset[int]
    """Nodes at either end of a car edge."""
    by_start: list[int]
    """Edge rows ordered by their start node (rows of one start node in ascending order)."""
    sorted_starts: list[int]

    @classmethod
    def of(cls, edges: gpd.GeoDataFrame) -> _CarGraph:
        car = edges[edges["car"].fillna(False).astype(bool)].reset_index(drop=True)
        car = car.assign(
            from_node=car["from_node"].astype(np.int64),
            to_node=car["to_node"].astype(np.int64),
            length=shapely.length(car.geometry.to_numpy()),
        )
        starts, ends = car["from_node"].to_numpy(), car["to_node"].to_numpy()
        nodes, index = np.unique(np.r_[starts, ends], return_inverse=True)
        a, b = index[: len(starts)], index[len(starts) :]  # each edge's ends as positions in ``nodes``
        linked = np.unique(np.r_[a * len(nodes) + b, b * len(nodes) + a])  # each neighbour pair once
        neighbours = np.bincount(linked // max(len(nodes), 1), minlength=len(nodes))
        by_start = np.argsort(starts, kind="stable")
        return cls(
            edges=car, edge_ids=[str(e) for e in car["edge_id"].tolist()], starts=starts.tolist(),
            ends=ends.tolist(), lengths=car["length"].tolist(),
            junctions=frozenset(nodes[neighbours >= 3].tolist()), on_network=frozenset(nodes.tolist()),
            by_start=by_start.tolist(), sorted_starts=starts[by_start].tolist(),
        )  # fmt: skip

    def is_junction(self, node: int) -> bool:
        return node in self.junctions

    def out_of(self, node: int) -> list[int]:
        """The rows of the car edges starting at ``node``, in ascending order."""
        first = bisect_left(self.sorted_starts, node)
        return self.by_start[first : bisect_right(self.sorted_starts, node, lo=first)]

    def leaving(self, node: int, direction: str) -> list[tuple[int, float]]:
        """The car edges leaving ``node`` in ``direction`` of their way, each with its full length ahead."""
        rows = [r for r in self.out_of(node) if _signals(self.edge_ids[r], direction)]
        return [(r, self.lengths[r]) for r in rows]

    def junction_ahead(self, row: int, ahead_m: float) -> int | None:
        """The first junction reached from ``ahead_m`` before the end of edge ``row``, within reach."""
        travelled, previous = ahead_m, self.starts[row]
        while travelled <= SIGNAL_REACH_M:
            node = self.ends[row]
            if node in self.junctions:
                return node
            onward = [r for r in self.out_of(node) if self.ends[r] != previous]
            if len(onward) != 1:
                return None
            previous, row = node, onward[0]
            travelled += self.lengths[row]
        return None


def _signals(edge_id: str, direction: str) -> bool:
    """Whether a signal of ``direction`` applies to travel along ``edge_id`` (``-`` marks the way's reverse)."""
    if direction == "both":
        return True
    return edge_id.startswith("-") == (direction == "backward")


def _edges_through(signals: pd.DataFrame, graph: _CarGraph) -> dict[int, list[tuple[int, float]]]:
    """Per signal row, the car edges whose line passes through it (in the direction it signals) and
    the metres from it to each edge's end."""
    car = graph.edges
    if signals.empty or car.empty:
        return {}
    points = signals.geometry.to_numpy()
    lines = car.geometry.to_numpy()
    hits = shapely.STRtree(lines).query(points, predicate="dwithin", distance=ON_VERTEX_M)
    directions = _directions(signals)
    rows, edges = hits[0].tolist(), hits[1].tolist()
    wanted = np.array(
        [_signals(graph.edge_ids[edge], directions[row]) for row, edge in zip(rows, edges, strict=True)],
        dtype=bool,
    )
    kept_rows, kept_edges = hits[0][wanted], hits[1][wanted]
    to_end = shapely.length(lines[kept_edges]) - shapely.line_locate_point(
        lines[kept_edges], points[kept_rows]
    )
    found: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for row, edge, metres in zip(kept_rows.tolist(), kept_edges.tolist(), to_end.tolist(), strict=True):
        found[row].append((edge, metres))
    return dict(found)
