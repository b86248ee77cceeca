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
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

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


def _split_points(refs: npt.NDArray[np.int64], offsets: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Vertices where a way must be split: its ends, shared nodes, and the middle of closed loops."""
    _, inverse, counts = np.unique(refs, return_inverse=True, return_counts=True)
    split = counts[inverse] >= 2
    starts, ends = offsets[:-1], offsets[1:] - 1
    split[starts] = True
    split[ends] = True
    loops = refs[starts] == refs[ends]
    split[(starts + (ends - starts) // 2)[loops]] = True
    return split


def _segments(
    refs: npt.NDArray[np.int64], coords: npt.NDArray[np.float64], offsets: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.object_]]:
    """Cut every way at its split points: (way index, sequence within way, vertex rows, lines)."""
    split = _split_points(refs, offsets)
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
    segment_index = np.cumsum(boundary) - 1
    lines = shapely.linestrings(coords[rows], indices=segment_index)
    first = np.flatnonzero(boundary)
    last = np.append(first[1:] - 1, len(rows) - 1)
    return seg_way[first], seq[first], np.column_stack([rows[first], rows[last]]), lines


def build_network(roads: gpd.GeoDataFrame) -> Network:
    """Directed, routable edges and nodes from the ``roads`` layer (which keeps ``node_refs``)."""
    roads = roads.reset_index(drop=True)
    ref_lists = roads["node_refs"].to_numpy()
    lengths = np.fromiter((len(r) for r in ref_lists), dtype=np.int64, count=len(roads))
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
    way_idx, seq, end_rows, lines = _segments(refs, coords, offsets)
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
    base["length_m"] = shapely.length(lines).round(2)
    edges = _directed(base, lines)
    nodes = _nodes(edges, refs, coords)
    return Network(edges=edges, nodes=nodes, quality=_connectivity(edges))


def _directed(base: pd.DataFrame, lines: npt.NDArray[np.object_]) -> gpd.GeoDataFrame:
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
    fwd_geom, bwd_geom = lines, shapely.reverse(lines)
    keep_f = (forward[["car", "bus", "bike", "walk"]].any(axis=1)).to_numpy()
    keep_b = (backward[["car", "bus", "bike", "walk"]].any(axis=1)).to_numpy()
    edges = pd.concat([forward[keep_f], backward[keep_b]], ignore_index=True)
    geometry = np.concatenate([fwd_geom[keep_f], bwd_geom[keep_b]])
    order = ["edge_id", "from_node", "to_node", *common, "car", "bus", "bike", "walk"]
    return gpd.GeoDataFrame(edges[order], geometry=geometry, crs=None)


def _nodes(
    edges: gpd.GeoDataFrame, refs: npt.NDArray[np.int64], coords: npt.NDArray[np.float64]
) -> gpd.GeoDataFrame:
    ends = np.concatenate([edges["from_node"].to_numpy(), edges["to_node"].to_numpy()])
    node_ids, degree = np.unique(ends, return_counts=True)
    first_vertex = pd.Series(np.arange(len(refs))).groupby(refs).first()
    xy = coords[first_vertex.loc[node_ids].to_numpy()]
    return gpd.GeoDataFrame({"node_id": node_ids, "degree": degree}, geometry=shapely.points(xy), crs=None)


def _connectivity(edges: gpd.GeoDataFrame) -> dict[str, float]:
    """Share of car edges inside the largest strongly connected car component."""
    car = edges[edges["car"]]
    if car.empty:
        return {"car_edges": 0, "car_largest_component_share": 0.0, "car_components": 0}
    ids, codes = np.unique(np.concatenate([car["from_node"], car["to_node"]]), return_inverse=True)
    n = len(car)
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
