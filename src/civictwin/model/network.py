"""The routable road network: OSM ways split at junctions into directed edges with per-mode access.

Ways are split wherever an OSM node is shared by two ways (or twice by one), so the topology is the
one mappers drew, not one guessed from coordinates. Every edge gets a stable id
(``<way>_<seq>`` forward, ``-<way>_<seq>`` reverse), a length, a speed, a capacity and car/bike/walk
permissions for its direction. Defaults and tag rules are documented in docs/methods-network.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import shapely

from civictwin.geometry import wkb_linestrings, wkb_vertices

CAR_HIGHWAYS = frozenset({
    "motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link", "secondary",
    "secondary_link", "tertiary", "tertiary_link", "unclassified", "residential", "living_street",
    "service", "road",
})  # fmt: skip
NO_BIKE_HIGHWAYS = frozenset({"motorway", "motorway_link", "steps", "footway", "pedestrian", "corridor"})
NO_WALK_HIGHWAYS = frozenset({"motorway", "motorway_link"})
IMPLIED_ONEWAY = frozenset({"motorway", "motorway_link"})

# Urban default speeds (km/h) where maxspeed is untagged.
DEFAULT_SPEED_KMH: dict[str, float] = {
    "motorway": 100, "motorway_link": 60, "trunk": 70, "trunk_link": 50, "primary": 50,
    "primary_link": 40, "secondary": 50, "secondary_link": 40, "tertiary": 40, "tertiary_link": 30,
    "unclassified": 40, "residential": 30, "living_street": 20, "service": 20, "road": 40,
    "busway": 50,
}  # fmt: skip
NON_VEHICLE_SPEED_KMH = 15.0
# Saturation flow per lane (vehicles/hour) and the resulting capacity class (1 = highest).
LANE_CAPACITY_VPH: dict[str, tuple[int, int]] = {
    "motorway": (2000, 1), "trunk": (1800, 1), "motorway_link": (1500, 2), "trunk_link": (1500, 2),
    "primary": (1500, 2), "primary_link": (1200, 3), "secondary": (1200, 3), "secondary_link": (1000, 3),
    "tertiary": (1000, 3), "tertiary_link": (800, 4), "unclassified": (800, 4), "road": (800, 4),
    "residential": (600, 4), "busway": (800, 4), "living_street": (300, 5), "service": (300, 5),
}  # fmt: skip
_ZONE_SPEEDS = {"urban": 50, "rural": 80, "motorway": 120, "living_street": 20, "trunk": 100, "zone30": 30}
_YES = frozenset({"yes", "designated", "permissive", "destination", "delivery", "customers", "official"})
_NO = frozenset({"no", "private", "use_sidepath", "dismount", "discouraged", "agricultural", "forestry"})


@dataclass(frozen=True)
class Network:
    """The directed edges and their end nodes, plus connectivity numbers for the quality report."""

    edges: gpd.GeoDataFrame
    nodes: gpd.GeoDataFrame
    quality: dict[str, float]


def parse_maxspeed(value: object) -> float | None:
    """km/h from an OSM ``maxspeed`` ("50", "30 mph", "FI:urban", "walk"); None when unusable."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if text == "walk":
        return 7.0
    if text == "none":
        return 130.0
    zone = re.match(r"^[a-z]{2}:(\w+)$", text)
    if zone:
        return float(_ZONE_SPEEDS[zone.group(1)]) if zone.group(1) in _ZONE_SPEEDS else None
    number = re.match(r"^(\d+(?:\.\d+)?)\s*(mph|km/h|kmh)?$", text.split(";")[0].strip())
    if not number:
        return None
    speed = float(number.group(1)) * (1.609344 if number.group(2) == "mph" else 1.0)
    return speed if 0 < speed <= 200 else None


def _parse_lanes(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    match = re.match(r"^\s*(\d+)", value)
    lanes = int(match.group(1)) if match else 0
    return lanes if 0 < lanes <= 12 else None


def _allowed(default: pd.Series, *overrides: pd.Series) -> npt.NDArray[np.bool_]:
    """Apply access tags in order of increasing specificity: yes-like opens, no-like closes."""
    result = default.to_numpy(dtype=bool).copy()
    for tag in overrides:
        values = tag.fillna("").str.lower().to_numpy(dtype=object)
        result = np.where(np.isin(values, list(_YES)), True, result)
        result = np.where(np.isin(values, list(_NO)), False, result)
    return result


def _per_distinct(values: pd.Series, fn: Callable[[object], float | None]) -> npt.NDArray[np.float64]:
    """``fn`` of every value, computed once per distinct value: tag values repeat across many ways."""
    codes, uniques = pd.factorize(values)
    results = [fn(u) for u in uniques] + [fn(None)]  # the last one serves missing values (code -1)
    return np.array([np.nan if r is None else r for r in results], dtype=np.float64)[codes]


def _way_attributes(roads: pd.DataFrame) -> pd.DataFrame:
    """Per-way permissions by direction, speed, lanes and capacity."""
    hw = roads["highway"].fillna("road")
    access = roads["access"]
    car = _allowed(hw.isin(CAR_HIGHWAYS), access, roads["vehicle"], roads["motor_vehicle"], roads["motorcar"])
    bike = _allowed(~hw.isin(NO_BIKE_HIGHWAYS) & ~hw.eq("busway"), access, roads["vehicle"], roads["bicycle"])
    walk = _allowed(~hw.isin(NO_WALK_HIGHWAYS) & ~hw.eq("busway"), access, roads["foot"])
    oneway_tag = roads["oneway"].fillna("").str.lower()
    junction = roads["junction"].fillna("").str.lower()
    forward_only = (
        oneway_tag.isin(["yes", "true", "1"])
        | (junction.isin(["roundabout", "circular"]) & ~oneway_tag.eq("no"))
        | (hw.isin(IMPLIED_ONEWAY) & ~oneway_tag.eq("no"))
    ).to_numpy()
    backward_only = oneway_tag.isin(["-1", "reverse"]).to_numpy()
    bike_contraflow = roads["oneway_bicycle"].fillna("").str.lower().eq("no").to_numpy()

    tagged_speed = _per_distinct(roads["maxspeed"], parse_maxspeed)
    default_speed = _per_distinct(hw, lambda h: DEFAULT_SPEED_KMH.get(str(h), NON_VEHICLE_SPEED_KMH))
    lanes_total = _per_distinct(roads["lanes"], _parse_lanes)
    one_direction = forward_only | backward_only
    default_lanes = np.where(hw.isin(["motorway", "trunk"]).to_numpy(), 2.0, 1.0)
    lanes_dir = np.where(
        np.isnan(lanes_total),
        default_lanes,
        np.where(one_direction, lanes_total, np.maximum(1.0, np.floor(lanes_total / 2))),
    )
    lane_capacity = _per_distinct(hw, lambda h: LANE_CAPACITY_VPH.get(str(h), (0, 6))[0])
    capacity_class = _per_distinct(hw, lambda h: LANE_CAPACITY_VPH.get(str(h), (0, 6))[1]).astype(int)
    bus = car | hw.eq("busway").to_numpy() | roads["busway"].notna().to_numpy()
    return pd.DataFrame({
        "car_fwd": car & ~backward_only, "car_bwd": car & ~forward_only,
        "bus_fwd": bus & ~backward_only, "bus_bwd": bus & ~forward_only,
        "bike_fwd": bike & (~backward_only | bike_contraflow), "bike_bwd": bike & (~forward_only | bike_contraflow),
        "walk": walk,
        "maxspeed_kmh": tagged_speed,
        "speed_kmh": np.where(np.isnan(tagged_speed), default_speed, tagged_speed),
        "lanes": lanes_dir.astype(int),
        "capacity_vph": (lanes_dir * lane_capacity).astype(int),
        "capacity_class": capacity_class,
    }, index=roads.index)  # fmt: skip


def shared_nodes(refs: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The node ids (sorted) that occur at least twice among ``refs``: where ways meet or cross themselves.

    ``refs`` are the node references of every usable way of the whole network, concatenated: a node
    shared by two ways in different partitions is found only by counting over all of them.
    """
    ids, counts = np.unique(refs, return_counts=True)
    shared: npt.NDArray[np.int64] = ids[counts >= 2]
    return shared


def _split_points(
    refs: npt.NDArray[np.int64], offsets: npt.NDArray[np.int64], shared: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    """Vertices where a way must be split: its ends, shared nodes, and the middle of closed loops."""
    position = np.minimum(np.searchsorted(shared, refs), max(len(shared) - 1, 0))
    split = shared[position] == refs if len(shared) else np.zeros(len(refs), dtype=bool)
    starts, ends = offsets[:-1], offsets[1:] - 1
    split[starts] = True
    split[ends] = True
    loops = refs[starts] == refs[ends]
    split[(starts + (ends - starts) // 2)[loops]] = True
    return split


def _segments(
    ways: Ways, shared: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64],
           npt.NDArray[np.int64]]:  # fmt: skip
    """Cut every way at its split points: (way index, sequence within way, end vertex rows, and the
    segments' vertices, one segment after the other, with each segment's offset into them)."""
    refs, coords, offsets = ways.refs, ways.coords, ways.offsets
    split = _split_points(refs, offsets, shared)
    way = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    before: npt.NDArray[np.int64] = np.cumsum(split) - split  # split vertices strictly before each vertex
    local: npt.NDArray[np.int64] = before - before[offsets[:-1]][way]  # ...within its way
    is_last = np.zeros(len(refs), dtype=bool)
    is_last[offsets[1:] - 1] = True
    ends_here = local >= 1  # vertex closes segment `local`
    starts_here = split & ~is_last  # vertex opens segment `local + 1`
    rows = np.concatenate([np.flatnonzero(ends_here), np.flatnonzero(starts_here)])
    seq = np.concatenate([local[ends_here], local[starts_here] + 1])
    order = np.lexsort((rows, seq, way[rows]))
    rows, seq = rows[order], seq[order]
    seg_way = way[rows]
    boundary = np.ones(len(rows), dtype=bool)
    boundary[1:] = (seg_way[1:] != seg_way[:-1]) | (seq[1:] != seq[:-1])
    first = np.flatnonzero(boundary)
    vertex_offsets = np.append(first, len(rows)).astype(np.int64)
    last = vertex_offsets[1:] - 1  # (none without segments)
    return (
        seg_way[first],
        seq[first],
        np.column_stack([rows[first], rows[last]]),
        coords[rows],
        vertex_offsets,
    )


def line_lengths(coords: npt.NDArray[np.float64], offsets: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """The length (in the coordinates' unit) of each line whose vertices are ``coords[offsets[i]:
    offsets[i + 1]]``, summed vertex by vertex from the first as GEOS sums a line's length (so the
    same to the bit as :func:`shapely.length` of the lines, without making them)."""
    counts = np.diff(offsets)
    step = np.diff(coords, axis=0)
    steps = np.sqrt(step[:, 0] * step[:, 0] + step[:, 1] * step[:, 1])
    lengths = np.zeros(len(counts))
    active = np.flatnonzero(counts >= 2)
    k = 0
    while len(active):  # one pass per vertex position: as many passes as the longest line has steps
        lengths[active] += steps[offsets[active] + k]
        k += 1
        active = active[counts[active] - 1 > k]
    return lengths


@dataclass(frozen=True)
class EdgeLines:
    """The lines of directed edges as vertex arrays, without a GEOS object per edge: edge ``e`` runs
    along segment ``segment[e]`` of a way, against the way's direction where ``reversed[e]``; segment
    ``s``'s vertices are ``coords[offsets[s]:offsets[s + 1]]`` (x, y in the network's CRS)."""

    coords: npt.NDArray[np.float64]
    offsets: npt.NDArray[np.int64]
    segment: npt.NDArray[np.int64]
    reversed: npt.NDArray[np.bool_]

    def _vertex_rows(
        self, edges: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The rows of ``coords`` of ``edges``' vertices in each edge's direction, one edge after the
        other, and each edge's number of vertices."""
        segment = self.segment[edges]
        counts = np.diff(self.offsets)[segment]
        position = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        backwards = np.repeat(self.reversed[edges], counts)
        along = np.where(backwards, np.repeat(counts, counts) - 1 - position, position)
        return np.repeat(self.offsets[segment], counts) + along, counts

    def geometries(self, edges: npt.NDArray[np.int64]) -> npt.NDArray[np.object_]:
        """Shapely lines of ``edges`` (positions), in their direction."""
        if not len(edges):
            return np.empty(0, dtype=object)
        rows, counts = self._vertex_rows(edges)
        lines: npt.NDArray[np.object_] = shapely.linestrings(
            self.coords[rows], indices=np.repeat(np.arange(len(edges)), counts)
        )
        return lines

    def wkb(self) -> pa.Array:
        """Every edge's line as WKB (what :func:`shapely.to_wkb` gives for it), made from the vertices."""
        rows, counts = self._vertex_rows(np.arange(len(self.segment)))
        return wkb_linestrings(self.coords[rows], counts)

    def bounds(self, edges: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """The bounding boxes of ``edges`` (positions): one row of ``xmin, ymin, xmax, ymax`` each."""
        starts = self.offsets[:-1]  # every segment has two vertices or more
        low = np.column_stack([np.minimum.reduceat(self.coords[:, i], starts) for i in (0, 1)])
        high = np.column_stack([np.maximum.reduceat(self.coords[:, i], starts) for i in (0, 1)])
        segment = self.segment[edges]
        return np.column_stack([low[segment], high[segment]])

    def vertices(self) -> npt.NDArray[np.float64]:
        """The vertices of the segments some edge runs along (each segment's once, whichever way)."""
        used = np.zeros(len(self.offsets) - 1, dtype=bool)
        used[self.segment] = True
        picked: npt.NDArray[np.float64] = self.coords[np.repeat(used, np.diff(self.offsets))]
        return picked


@dataclass(frozen=True)
class Ways:
    """The usable ways of a ``roads`` frame: their rows, node references and vertices, flattened.

    A way is usable when it has at least two vertices and one node reference per vertex (the
    reader keeps only the nodes found in the extract, so the two always agree unless a geometry
    was repaired).
    """

    roads: pd.DataFrame
    refs: npt.NDArray[np.int64]
    coords: npt.NDArray[np.float64]
    offsets: npt.NDArray[np.int64]


def usable_ways(roads: gpd.GeoDataFrame) -> Ways:
    """The usable ways of ``roads`` (the layer keeps ``node_refs``), with their references flattened; a
    way without references is not usable."""
    roads = roads.reset_index(drop=True)
    ref_lists = roads["node_refs"].to_numpy()
    lengths = np.fromiter((0 if r is None else len(r) for r in ref_lists), dtype=np.int64, count=len(roads))
    coords, owner = shapely.get_coordinates(roads.geometry.to_numpy(), return_index=True)
    vertex_counts = np.bincount(owner, minlength=len(roads))
    usable = (lengths == vertex_counts) & (lengths >= 2)
    roads = roads[usable].reset_index(drop=True)
    coords = coords[np.isin(owner, np.flatnonzero(usable))]
    refs = (
        np.concatenate([np.asarray(r, dtype=np.int64) for r in roads["node_refs"]])
        if len(roads)
        else (np.empty(0, dtype=np.int64))
    )
    offsets = np.concatenate([[0], np.cumsum(lengths[usable])]).astype(np.int64)
    attributes = pd.DataFrame(roads.drop(columns=["node_refs", roads.geometry.name]))
    return Ways(roads=attributes, refs=refs, coords=coords, offsets=offsets)


@dataclass(frozen=True)
class NetworkPart:
    """The directed edges of some of the ways, their lines, and the ends of those edges (for the nodes)."""

    edges: pd.DataFrame
    """The columns of ``network_edges`` but the geometry, as :attr:`Network.edges` has them."""
    lines: EdgeLines
    """The edges' lines as vertex arrays (no GEOS object per edge): their WKB for the store, their
    vertices for the extent, and GEOS lines of only the edges that need them."""
    ends: pd.DataFrame
    """One row per node at an end of these edges: ``node_id`` (sorted), ``degree`` (edge ends there),
    ``x``, ``y``."""


def network_part(ways: Ways, *, shared: npt.NDArray[np.int64]) -> NetworkPart:
    """The directed edges of ``ways``, split at their ends, loops' middles and the ``shared`` nodes.

    ``shared`` must come from every way of the network (:func:`shared_nodes`), so that a way in this
    part is split where a way elsewhere meets it; each way then gives the same edges whichever part
    it is built in.
    """
    edges, lines = _edges(ways, shared)
    return NetworkPart(edges=edges, lines=lines, ends=_ends(edges, ways.refs, ways.coords))


def _edges(ways: Ways, shared: npt.NDArray[np.int64]) -> tuple[pd.DataFrame, EdgeLines]:
    """The directed edges of ``ways`` (as :func:`network_part` splits them): their columns but the
    geometry, and their lines as vertex arrays."""
    roads, refs = ways.roads, ways.refs
    way_idx, seq, end_rows, coords, offsets = _segments(ways, shared)
    attrs = _way_attributes(roads).iloc[way_idx].reset_index(drop=True)
    base = pd.DataFrame(
        {
            "osm_id": roads["osm_id"].to_numpy()[way_idx],
            "seq": seq,
            "name": roads["name"].to_numpy()[way_idx],
            "highway": roads["highway"].to_numpy()[way_idx],
            "from_node": refs[end_rows[:, 0]],
            "to_node": refs[end_rows[:, 1]],
        }
    )
    base = pd.concat([base, attrs], axis=1)
    base["length_m"] = line_lengths(coords, offsets).round(2)
    edges, segment, backwards = _directed(base)
    return edges, EdgeLines(coords=coords, offsets=offsets, segment=segment, reversed=backwards)


def ways_of_rows(rows: pa.Table) -> Ways:
    """The usable ways of ``roads`` rows as Arrow (``node_refs`` lists, the line as WKB in ``geometry``),
    as :func:`usable_ways` finds them in a frame: node references from the lists, vertices from the WKB
    lines' bytes, without a Python object per way (about 0.6 CPU s less than a GeoDataFrame of the 8×8
    extract's 158 k roads). Rows whose lines are not all plain 2D lines (a repaired one), or that lack
    references, go through a GeoDataFrame instead, with the same result."""
    vertices = wkb_vertices(rows["geometry"]) if rows.num_rows else None
    node_refs = rows["node_refs"].combine_chunks()
    if vertices is None or node_refs.null_count:
        lines = shapely.from_wkb(rows["geometry"].to_numpy(zero_copy_only=False))
        return usable_ways(gpd.GeoDataFrame(rows.drop_columns(["geometry"]).to_pandas(), geometry=lines))
    coords, vertex_counts = vertices
    ref_offsets = node_refs.offsets.to_numpy()
    return usable_of_arrays(
        rows.drop_columns(["node_refs", "geometry"]).to_pandas(),
        refs=node_refs.values.to_numpy()[ref_offsets[0] : ref_offsets[-1]].astype(np.int64),
        ref_counts=np.diff(ref_offsets).astype(np.int64),
        coords=coords,
        vertex_counts=vertex_counts,
    )


def usable_of_arrays(
    attributes: pd.DataFrame,
    *,
    refs: npt.NDArray[np.int64],
    ref_counts: npt.NDArray[np.int64],
    coords: npt.NDArray[np.float64],
    vertex_counts: npt.NDArray[np.int64],
) -> Ways:
    """The usable ways of a ``roads`` layer given as flat arrays, as :func:`usable_ways` finds them in
    a frame: ``attributes`` (one row per way: its columns but ``node_refs`` and the geometry), the
    node ``refs`` of every way one after the other, ``ref_counts`` per way, and the vertices
    ``coords`` (x, y) of every way's line, ``vertex_counts`` per way. The build hands over the rows
    the OSM reader wrote this way, without a Python object per way."""
    usable = (ref_counts == vertex_counts) & (ref_counts >= 2)
    return Ways(
        roads=attributes[usable].reset_index(drop=True),
        refs=refs[np.repeat(usable, ref_counts)],
        coords=coords[np.repeat(usable, vertex_counts)],
        offsets=np.concatenate([[0], np.cumsum(ref_counts[usable])]).astype(np.int64),
    )


def build_network(roads: gpd.GeoDataFrame) -> Network:
    """Directed, routable edges and nodes from the ``roads`` layer (which keeps ``node_refs``), in one piece."""
    return network_of(usable_ways(roads))


@dataclass(frozen=True)
class NetworkArrays:
    """The network in one piece with its lines as vertex arrays (:class:`EdgeLines`) and its nodes'
    positions as numbers: :class:`Network` without a GEOS object per edge and node, for a build that
    writes the edges as they are split (their WKB made from the vertices) and needs GEOS lines of
    only some of them (the car edges, to place the signals)."""

    edges: pd.DataFrame
    """The columns of :attr:`Network.edges` but the geometry, in the same order."""
    lines: EdgeLines
    nodes: pd.DataFrame
    """``node_id`` (sorted), ``degree``, ``x``, ``y``: :attr:`Network.nodes` before its points are made."""
    quality: dict[str, float]

    def network(self) -> Network:
        """The same network with Shapely lines and points."""
        geometry = self.lines.geometries(np.arange(len(self.edges)))
        return Network(
            edges=gpd.GeoDataFrame(self.edges, geometry=geometry, crs=None),
            nodes=merge_nodes([self.nodes]),
            quality=self.quality,
        )

    def car_edges(self) -> gpd.GeoDataFrame:
        """The edges open to cars, in order, with their Shapely lines (the signals are placed on them)."""
        car = np.flatnonzero(self.edges["car"].to_numpy(dtype=bool))
        return gpd.GeoDataFrame(
            self.edges.iloc[car].reset_index(drop=True), geometry=self.lines.geometries(car), crs=None
        )


def network_of(ways: Ways) -> Network:
    """:func:`build_network` of the usable ways of a ``roads`` layer."""
    return network_arrays(ways).network()


def network_arrays(ways: Ways) -> NetworkArrays:
    """:func:`network_of` with the lines and node positions left as arrays (:class:`NetworkArrays`)."""
    edges, lines = _edges(ways, shared_nodes(ways.refs))
    car = edges["car"].to_numpy(dtype=bool)
    return NetworkArrays(
        edges=edges,
        lines=lines,
        nodes=_ends(edges, ways.refs, ways.coords),
        quality=connectivity(edges["from_node"].to_numpy()[car], edges["to_node"].to_numpy()[car]),
    )


def _directed(base: pd.DataFrame) -> tuple[pd.DataFrame, npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """The directed edges of the segments in ``base`` (one row per segment, its way's attributes):
    their columns, each edge's segment and whether it runs against its way."""
    common = ["osm_id", "name", "highway", "lanes", "speed_kmh", "maxspeed_kmh", "capacity_vph",
              "capacity_class", "length_m"]  # fmt: skip
    way_seq = base["osm_id"].astype(str) + "_" + base["seq"].astype(str)
    forward = base[common].assign(
        edge_id=way_seq, from_node=base["from_node"], to_node=base["to_node"],
        car=base["car_fwd"], bus=base["bus_fwd"], bike=base["bike_fwd"], walk=base["walk"],
    )  # fmt: skip
    backward = base[common].assign(
        edge_id="-" + way_seq, from_node=base["to_node"], to_node=base["from_node"],
        car=base["car_bwd"], bus=base["bus_bwd"], bike=base["bike_bwd"], walk=base["walk"],
    )  # fmt: skip
    keep_f = (forward[["car", "bus", "bike", "walk"]].any(axis=1)).to_numpy()
    keep_b = (backward[["car", "bus", "bike", "walk"]].any(axis=1)).to_numpy()
    edges = pd.concat([forward[keep_f], backward[keep_b]], ignore_index=True)
    segment = np.concatenate([np.flatnonzero(keep_f), np.flatnonzero(keep_b)]).astype(np.int64)
    backwards = np.repeat([False, True], [int(keep_f.sum()), int(keep_b.sum())])
    order = ["edge_id", "from_node", "to_node", *common, "car", "bus", "bike", "walk"]
    return edges[order], segment, backwards


def _ends(edges: pd.DataFrame, refs: npt.NDArray[np.int64], coords: npt.NDArray[np.float64]) -> pd.DataFrame:
    """The nodes at the ends of ``edges``: id, how many edge ends meet there, and the node's position."""
    ends = np.concatenate([edges["from_node"].to_numpy(), edges["to_node"].to_numpy()])
    node_ids, degree = np.unique(ends, return_counts=True)
    first_vertex = pd.Series(np.arange(len(refs))).groupby(refs).first()
    xy = coords[first_vertex.loc[node_ids].to_numpy()]
    return pd.DataFrame({"node_id": node_ids, "degree": degree, "x": xy[:, 0], "y": xy[:, 1]})


def merged_ends(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The network's nodes from the edge ends of its parts (``node_id``, ``degree``, ``x``, ``y``):
    degrees summed, sorted by node id.

    A node on a partition border is the end of edges in several parts; it has the same position in
    each (it is one OSM node), so the first one is kept.
    """
    if len(parts) == 1:
        return parts[0]
    return (
        pd.concat(parts, ignore_index=True)
        .groupby("node_id", sort=True)
        .agg(degree=("degree", "sum"), x=("x", "first"), y=("y", "first"))
        .reset_index()
    )


def merge_nodes(parts: list[pd.DataFrame]) -> gpd.GeoDataFrame:
    """:func:`merged_ends` with the nodes' points."""
    ends = merged_ends(parts)
    xy = np.column_stack([ends["x"].to_numpy(dtype=np.float64), ends["y"].to_numpy(dtype=np.float64)])
    return gpd.GeoDataFrame(
        {"node_id": ends["node_id"].to_numpy(), "degree": ends["degree"].to_numpy()},
        geometry=shapely.points(xy),
        crs=None,
    )


def connectivity(from_nodes: npt.NDArray[np.int64], to_nodes: npt.NDArray[np.int64]) -> dict[str, float]:
    """Share of car edges (given by their end nodes, in any order) inside the largest strongly
    connected car component."""
    n = len(from_nodes)
    if n == 0:
        return {"car_edges": 0, "car_largest_component_share": 0.0, "car_components": 0}
    # imported here, by the thread that splits the network: SciPy's graph module takes about 0.1 s to
    # load, which a build's main thread would otherwise spend before it reads anything
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ids, codes = np.unique(np.concatenate([from_nodes, to_nodes]), return_inverse=True)
    graph = coo_matrix((np.ones(n), (codes[:n], codes[n:])), shape=(len(ids), len(ids)))
    count, labels = connected_components(graph, directed=True, connection="strong")
    edge_component = labels[codes[:n]]
    same = edge_component == labels[codes[n:]]
    largest = np.bincount(edge_component[same]).max() if same.any() else 0
    return {
        "car_edges": n,
        "car_largest_component_share": round(float(largest) / n, 4),
        "car_components": int(count),
    }
