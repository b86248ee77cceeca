"""Traffic across the area's boundary from a larger region: the trips of a twin built from a larger
OSM extract that start or end outside the area, routed on its roads to the area's gateways.

Two steps, both pure functions of plain data. :func:`regional_outside` runs once per region and area:
the region's gravity matrix (the area's own demand parameters on the region's zones), as car trips,
and the free-flow times on the region's roads *outside* the area (the ways the area's network holds
removed, but for each gateway's own road) from each outside zone to each gateway and back, and between
outside zones.
:func:`regional_cells` runs once per scenario, on the scenario's own network inside the area: each
trip takes the gateway (or pair of gateways) of its least free-flow time, and a trip between two
outside zones crosses the area only where that is quicker than staying outside. See
``docs/methods-demand.md`` ("Gateways").
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from scipy.sparse import csr_matrix

from civictwin.engines.traffic.demand import (
    DemandError,
    DemandParams,
    FloatMatrix,
    ModeGraph,
    gravity_od,
    mode_graph,
    network_key,
    search_costs,
)
from civictwin.engines.traffic.gateways import (
    IN,
    KINDS,
    OUT,
    PHONE_SOURCE,
    STATED_DEFAULT,
    Cell,
    Gateway,
    GatewayFlow,
    cell_kind,
)
from civictwin.engines.traffic.modechoice import free_speeds_ms

FIELD = "gateways.region"
REGION_SOURCE = "regional model"
"""The source of a flow the regional model gave (followed by the region twin's name)."""
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class RegionTables:
    """The region twin's roads and zones, and the words that name it in the report."""

    label: str
    """E.g. ``twin 'Helsinki region' at ../region (version …)``."""
    edges: gpd.GeoDataFrame
    zones: gpd.GeoDataFrame


@dataclass(frozen=True)
class RegionalOutside:
    """What the region says about the area's outside, whatever the scenario inside.

    Car trips are vehicles/hour in the demand window's first hour; times are free-flow seconds on the
    region's roads outside the area; ``gateways`` are the area's gateway nodes those roads reach.
    """

    label: str
    gateways: tuple[str, ...]
    inbound: FloatMatrix
    """(outside zones × area zones): car trips from outside into each of the area's zones."""
    outbound: FloatMatrix
    """(area zones × outside zones)."""
    between: FloatMatrix
    """(outside × outside zones): car trips with both ends outside, which may cross the area."""
    to_gateway_s: FloatMatrix
    """(outside zones × gateways): from each outside zone to each gateway node."""
    from_gateway_s: FloatMatrix
    """(gateways × outside zones)."""
    outside_s: FloatMatrix
    """(outside × outside zones): between outside zones without entering the area."""


@dataclass(frozen=True)
class RegionalCells:
    """One scenario's regional gateway trips: vehicles/hour in the window's first hour per cell of the
    gateway matrix (``in:<node>`` to a zone, a zone to ``out:<node>``, ``in:`` to ``out:``), and the
    vehicles/hour the model left out, for the report."""

    label: str
    cells: dict[Cell, float]
    reached_in: frozenset[str]
    """Gateways whose inbound edge the region's roads reach: their regional inbound flow is the
    model's answer, zero included."""
    reached_out: frozenset[str]
    avoiding: float
    """Trips between outside zones whose quickest path stays outside the area."""
    unreached: float
    """Trips with one end in the area that reach it through no open gateway."""

    def note(self) -> str:
        """What the model assigned and left out, in words."""
        by_kind = {kind: 0.0 for kind in KINDS}
        for cell, vph in self.cells.items():
            by_kind[cell_kind(cell)[1]] += vph
        inbound, through, outbound = by_kind["inbound"], by_kind["through"], by_kind["outbound"]
        return (
            f"The regional model ({self.label}) gives {inbound:.0f} car trips/hour into the area, "
            f"{outbound:.0f} out of it and {through:.0f} across it in the window's first hour; "
            f"{self.avoiding:.0f} more between outside zones go around it, and {self.unreached:.0f} with "
            "one end in the area reach it through no open gateway (left out)."
        )


@dataclass(frozen=True)
class AreaBoundary:
    """What the regional model takes from the area's twin: its zones, its network and its gateways."""

    zones: gpd.GeoDataFrame
    edges: gpd.GeoDataFrame
    gateways: tuple[Gateway, ...]

    def key(self) -> bytes:
        """A digest of the zones' centroids and areas, the network's car edges and the gateways."""
        return network_key(self.zones, self.edges, "car") + repr(self.gateways).encode()


def regional_outside(
    region: RegionTables, area: AreaBoundary, *, demand: DemandParams, vehicles_per_person: float
) -> RegionalOutside:
    """The scenario-independent part of the regional model (kept for the next call in this process).

    A region zone is in the area when its centroid lies in one of the area's zones (its trips are the
    area's own, which the area's demand model makes; the region gives the rest). Person trips of the
    region's gravity matrix (:func:`~civictwin.engines.traffic.demand.gravity_od`) times
    ``vehicles_per_person`` are car trips. The roads outside the area are the region's car edges of
    every OSM way the area's network does not hold (the area keeps every way that touches it whole)
    and those along a gateway's edge (:func:`_gateway_roads`), so a trip reaches the area's network
    only at a gateway; zones join them by centroid connectors (:func:`_zone_connectors`). Raises
    :class:`DemandError` naming ``gateways.region`` when the region does not reach beyond the area,
    does not cover it, or shares no gateway with it.
    """
    digest = hashlib.blake2b(region.label.encode(), digest_size=20)
    for part in (area.key(), demand.model_dump_json().encode(), repr(vehicles_per_person).encode()):
        digest.update(part)
    key = digest.digest()
    with _LOCK:
        cached = _CACHE.get(key)
    if cached is None:
        cached = _outside(region, area, demand, vehicles_per_person)
        with _LOCK:
            _CACHE.clear()  # one region and area per process in practice; never grow without bound
            _CACHE[key] = cached
    return cached


_CACHE: dict[bytes, RegionalOutside] = {}
"""The last :func:`regional_outside` answer, by a digest of its region's label (which names the
region store's version), the area and the parameters."""
_LOCK = threading.Lock()


def _outside(
    region: RegionTables, area: AreaBoundary, demand: DemandParams, vehicles_per_person: float
) -> RegionalOutside:
    area_zones, area_edges, gateways = area.zones, area.edges, area.gateways
    zones = region.zones.to_crs(area_zones.crs)
    edges = region.edges.to_crs(area_zones.crs)
    area_of = _area_zone_of(zones.geometry.centroid, area_zones)
    inside = area_of >= 0
    if not inside.any():
        raise DemandError(
            f"the region ({region.label}) does not cover the area: none of its zones lies in it", field=FIELD
        )
    if inside.all():
        raise DemandError(f"the region ({region.label}) has no zone outside the area", field=FIELD)
    _check_osm_ids(edges, area_edges)
    try:
        vehicles = gravity_od(zones, demand, edges).trips * vehicles_per_person
    except DemandError as exc:  # the region's own tables: say which twin they belong to
        raise DemandError(f"the region ({region.label}): {exc.user_message()}", field=FIELD) from None
    if float(vehicles[~inside].sum()) <= 0:
        raise DemandError(
            f"the region's zones outside the area ({region.label}) have no residents", field=FIELD
        )
    roads = _gateway_roads(edges, area_edges, gateways)
    try:
        graph = mode_graph(_outside_edges(edges, area_edges, roads), "car")
    except DemandError as exc:
        raise DemandError(
            f"the region ({region.label}) outside the area: {exc.message}", field=FIELD
        ) from None
    on_road = {node: _node_indices(graph, road_nodes) for node, road_nodes in roads.items()}
    found = [g.node for g in gateways if len(on_road.get(g.node, ())) > 0]
    if not found:
        raise DemandError(
            f"none of the area's {len(gateways)} gateways is a node of the region's roads outside the area "
            f"({region.label}): build both twins from the same OpenStreetMap data",
            field=FIELD,
        )
    ends = [(on_road[g], np.full(len(on_road[g]), 1e-3)) for g in found]
    ends += _zone_connectors(graph, zones.geometry[~inside])
    matrix = _with_ends(graph.matrix(graph.length_m / free_speeds_ms(graph, edges)), ends)
    sinks = np.arange(len(graph.node_ids), len(graph.node_ids) + len(ends))
    sources = sinks + len(ends)
    gateway_count = len(found)
    from_zones = search_costs(matrix, sources[gateway_count:], sinks)
    to_area = _one_hot(area_of[inside], len(area_zones))
    return RegionalOutside(
        label=region.label,
        gateways=tuple(found),
        inbound=vehicles[np.ix_(~inside, inside)] @ to_area,
        outbound=to_area.T @ vehicles[np.ix_(inside, ~inside)],
        between=vehicles[np.ix_(~inside, ~inside)],
        to_gateway_s=from_zones[:, :gateway_count],
        from_gateway_s=search_costs(matrix, sources[:gateway_count], sinks[gateway_count:]),
        outside_s=from_zones[:, gateway_count:],
    )


def _gateway_roads(
    edges: gpd.GeoDataFrame, area_edges: gpd.GeoDataFrame, gateways: Sequence[Gateway]
) -> dict[str, set[int]]:
    """Per gateway, the region's nodes on its road: the gateway node and the ends of the region's
    edges along its inbound or outbound edge (same OSM way, midpoint within :data:`ON_ROAD_M`). A
    street joining the road there joins the simulated gateway edge, so traffic from it enters and
    leaves the area through that gateway."""
    by_id = area_edges.drop_duplicates("edge_id").set_index(
        area_edges.drop_duplicates("edge_id")["edge_id"].astype(str)
    )
    midpoints = shapely.line_interpolate_point(edges.geometry.to_numpy(), 0.5, normalized=True)
    ways = edges["osm_id"].to_numpy(dtype=np.int64)
    starts, ends = edges["from_node"].to_numpy(dtype=np.int64), edges["to_node"].to_numpy(dtype=np.int64)
    roads: dict[str, set[int]] = {}
    for gateway in gateways:
        road = {int(gateway.node)} if gateway.node.lstrip("-").isdigit() else set()
        for edge_id in (gateway.inbound_edge, gateway.outbound_edge):
            if edge_id is None or edge_id not in by_id.index:
                continue
            area_edge = by_id.loc[edge_id]
            on_way = np.flatnonzero(ways == int(area_edge["osm_id"]))
            near = shapely.distance(midpoints[on_way], area_edge.geometry) <= ON_ROAD_M
            road |= set(starts[on_way[near]].tolist()) | set(ends[on_way[near]].tolist())
        roads[gateway.node] = road
    return roads


ON_ROAD_M = 1.0
"""A region edge whose midpoint lies this close (m) to a gateway edge of the same way runs along it."""


def _outside_edges(
    edges: gpd.GeoDataFrame, area_edges: pd.DataFrame, roads: dict[str, set[int]]
) -> gpd.GeoDataFrame:
    """The region's edges on OSM ways the area's network does not hold, and those along a gateway's
    road (between two of its nodes)."""
    area_ways = set(area_edges["osm_id"].dropna().astype(np.int64))
    on_roads = np.zeros(len(edges), dtype=bool)
    starts, ends = edges["from_node"].to_numpy(dtype=np.int64), edges["to_node"].to_numpy(dtype=np.int64)
    for road in roads.values():
        members = np.fromiter(road, dtype=np.int64, count=len(road))
        on_roads |= np.isin(starts, members) & np.isin(ends, members)
    kept: gpd.GeoDataFrame = edges[~edges["osm_id"].astype(np.int64).isin(area_ways) | on_roads]
    return kept


def _check_osm_ids(edges: pd.DataFrame, area_edges: pd.DataFrame) -> None:
    """Raise :class:`DemandError` unless both networks have the OSM way ids the model matches them by."""
    for frame, which in ((edges, "the region's"), (area_edges, "the area's")):
        if "osm_id" not in frame.columns:
            raise DemandError(
                f"{which} network_edges lack the osm_id column the regional model needs", field=FIELD
            )


def _node_indices(graph: ModeGraph, nodes: set[int]) -> IntArray:
    """The indices in ``graph`` of those of ``nodes`` it holds."""
    wanted = np.fromiter(nodes, dtype=np.int64, count=len(nodes))
    held = wanted[np.isin(wanted, graph.node_ids)]
    return np.asarray(np.searchsorted(graph.node_ids, held), dtype=np.int64)


def _zone_connectors(graph: ModeGraph, zones: gpd.GeoSeries) -> list[tuple[IntArray, FloatMatrix]]:
    """Per zone (polygons), at most :data:`CONNECTORS` graph nodes: the one nearest its centroid and the
    next nearest within the zone's radius (of the circle of its area), with the seconds to each in a straight line at
    :data:`CONNECTOR_SPEED_MS`: the one nearest node may lie on a stub that the region's edge or a
    one-way street cuts off."""
    from scipy.spatial import cKDTree

    count = min(CONNECTORS, len(graph.node_ids))
    centroids = zones.centroid
    metres, index = cKDTree(graph.node_xy).query(np.column_stack([centroids.x, centroids.y]), k=count)
    metres, index = np.reshape(metres, (len(zones), count)), np.reshape(index, (len(zones), count))
    radius = np.sqrt(zones.area.to_numpy(dtype=float) / np.pi)
    ends = []
    for near, distance, reach in zip(index, metres, radius, strict=True):
        kept = distance <= max(reach, distance[0])
        ends.append(
            (np.asarray(near[kept], dtype=np.int64), np.maximum(distance[kept] / CONNECTOR_SPEED_MS, 1e-3))
        )
    return ends


CONNECTORS = 8
"""The most graph nodes an outside zone connects to (centroid connectors, as zone-based assignment
models use them)."""
CONNECTOR_SPEED_MS = 30 / 3.6
"""The speed on a connector: the 30 km/h the network takes for an edge without ``speed_kmh``."""


def _with_ends(matrix: csr_matrix, ends: Sequence[tuple[IntArray, FloatMatrix]]) -> csr_matrix:
    """``matrix`` with two virtual nodes per end after its own nodes, all sinks first, then all
    sources: each end's nodes lead to its sink, and its source leads to each of them, at the end's
    seconds. Nothing leaves a sink or enters a source, so no other path runs through them.

    A gateway's end is every node of its road at no cost (the simulation drives the road); a zone's
    are its centroid connectors (:func:`_zone_connectors`)."""
    nodes, count = matrix.shape[0], len(ends)
    coo = matrix.tocoo()
    rows, columns, weights = [coo.row], [coo.col], [coo.data]
    for k, (members, seconds) in enumerate(ends):
        rows += [members, np.full(len(members), nodes + count + k)]
        columns += [np.full(len(members), nodes + k), members]
        weights += [seconds, seconds]
    size = nodes + 2 * count
    return csr_matrix(
        (np.concatenate(weights), (np.concatenate(rows), np.concatenate(columns))), shape=(size, size)
    )


def _area_zone_of(points: gpd.GeoSeries, area_zones: gpd.GeoDataFrame) -> IntArray:
    """For each point, the index of the area zone holding it, or -1 outside every zone."""
    tree = shapely.STRtree(area_zones.geometry.to_numpy())
    found = np.full(len(points), -1, dtype=np.int64)
    point_index, zone_index = tree.query(points.to_numpy(), predicate="within")
    found[point_index] = zone_index  # a point on a shared border takes the last zone
    return found


def _one_hot(index: IntArray, size: int) -> FloatMatrix:
    """A (len(index) × size) matrix with a 1 at each row's index: sums rows into their area zones."""
    matrix = np.zeros((len(index), size))
    matrix[np.arange(len(index)), index] = 1.0
    return matrix


def _node_index(graph: ModeGraph, node: str) -> int | None:
    """The index of the node with OSM id ``node`` in ``graph``, or None."""
    try:
        wanted = int(node)
    except ValueError:
        return None
    index = int(np.searchsorted(graph.node_ids, wanted))
    return index if index < len(graph.node_ids) and int(graph.node_ids[index]) == wanted else None


def regional_cells(
    outside: RegionalOutside,
    *,
    area_edges: gpd.GeoDataFrame,
    zones: gpd.GeoDataFrame,
    zone_open: npt.NDArray[np.bool_],
    entering: Sequence[str],
    leaving: Sequence[str],
) -> RegionalCells:
    """Each regional trip on one scenario's network: from an outside zone into zone ``a`` through the
    entering gateway ``g`` that minimises (outside time to ``g``) + (time from ``g`` to ``a`` on
    ``area_edges``), out likewise, and between two outside zones through the pair of gateways of least
    time where that beats the time outside (a tie stays outside). Free-flow times (``speed_kmh``) on
    ``area_edges``, the scenario's car edges open to traffic (a 30 km/h zone slows the way across).
    ``entering``/``leaving`` are the gateway nodes whose inbound/outbound edge the scenario simulates;
    zones with ``zone_open`` false (no car edge) take no trip."""
    graph = mode_graph(area_edges, "car")
    matrix = graph.matrix(graph.length_m / free_speeds_ms(graph, area_edges))
    column = {g: i for i, g in enumerate(outside.gateways)}
    ins = [g for g in entering if g in column and _node_index(graph, g) is not None]
    outs = [g for g in leaving if g in column and _node_index(graph, g) is not None]
    in_nodes = np.array([_node_index(graph, g) for g in ins], dtype=np.int64)
    out_nodes = np.array([_node_index(graph, g) for g in outs], dtype=np.int64)
    zone_nodes = graph.nearest_nodes(zones.geometry.centroid)
    from_entries = search_costs(matrix, in_nodes, np.concatenate([zone_nodes, out_nodes]))
    from_entries[:, : len(zone_nodes)][:, ~zone_open] = np.inf
    across = from_entries[:, len(zone_nodes) :]
    across[in_nodes[:, None] == out_nodes[None, :]] = np.inf  # in and out by one road is no crossing
    to_exits = search_costs(csr_matrix(matrix.T), out_nodes, zone_nodes).T
    to_exits[~zone_open, :] = np.inf
    to_in = outside.to_gateway_s[:, [column[g] for g in ins]]
    from_out = outside.from_gateway_s[[column[g] for g in outs], :]
    names = [str(z) for z in zones["zone_id"]]
    entry, _ = _best_gateway(to_in, from_entries[:, : len(zone_nodes)])
    origin, zone = np.nonzero(entry >= 0)
    inbound = _summed(outside.inbound[origin, zone], entry[origin, zone], zone, (len(ins), len(names)))
    exit_, _ = _best_gateway(to_exits, from_out)
    zone, destination = np.nonzero(exit_ >= 0)
    outbound = _summed(
        outside.outbound[zone, destination], zone, exit_[zone, destination], (len(names), len(outs))
    )
    entry_for_exit, via_entry = _best_gateway(to_in, across)
    exit_across, via = _best_gateway(via_entry, from_out)
    crossing = np.where(via < outside.outside_s, exit_across, -1)  # a tie stays outside
    origin, destination = np.nonzero(crossing >= 0)
    leaves = crossing[origin, destination]
    through = _summed(
        outside.between[origin, destination], entry_for_exit[origin, leaves], leaves, (len(ins), len(outs))
    )
    cells: dict[Cell, float] = {}
    for (g, z), vph in np.ndenumerate(inbound):
        if vph > 0:
            cells[(IN + ins[g], names[z])] = float(vph)
    for (g, h), vph in np.ndenumerate(through):
        if vph > 0:
            cells[(IN + ins[g], OUT + outs[h])] = float(vph)
    for (z, h), vph in np.ndenumerate(outbound):
        if vph > 0:
            cells[(names[z], OUT + outs[h])] = float(vph)
    return RegionalCells(
        label=outside.label,
        cells=cells,
        reached_in=frozenset(ins[i] for i in np.flatnonzero(np.isfinite(to_in).any(axis=0))),
        reached_out=frozenset(outs[i] for i in np.flatnonzero(np.isfinite(from_out).any(axis=1))),
        avoiding=float(outside.between[crossing < 0].sum()),
        unreached=float(outside.inbound[entry < 0].sum() + outside.outbound[exit_ < 0].sum()),
    )


CELLS_PER_STEP = 4_000_000
"""Sums held at once by :func:`_best_gateway` (32 MB of float64)."""


def _best_gateway(first: FloatMatrix, second: FloatMatrix) -> tuple[IntArray, FloatMatrix]:
    """For each (row, column): the gateway ``g`` minimising ``first[row, g] + second[g, column]``, -1
    where every sum is infinite, and that least sum."""
    rows, gateways, columns = first.shape[0], first.shape[1], second.shape[1]
    best = np.full((rows, columns), -1, dtype=np.int64)
    least = np.full((rows, columns), np.inf)
    if gateways == 0:
        return best, least
    step = max(1, CELLS_PER_STEP // (gateways * max(columns, 1)))
    for start in range(0, rows, step):
        sums = first[start : start + step, :, None] + second[None, :, :]
        best[start : start + step] = sums.argmin(axis=1)
        least[start : start + step] = sums.min(axis=1)
    best[~np.isfinite(least)] = -1
    return best, least


def _summed(trips: FloatMatrix, rows: IntArray, columns: IntArray, shape: tuple[int, int]) -> FloatMatrix:
    """``trips`` summed into a matrix of ``shape`` at (``rows``, ``columns``)."""
    flat = np.bincount(rows * shape[1] + columns, weights=trips, minlength=shape[0] * shape[1])
    return np.asarray(flat, dtype=float).reshape(shape)


def regional_flows(
    flows: Sequence[GatewayFlow], regional: RegionalCells, *, ratios: Sequence[float]
) -> list[GatewayFlow]:
    """``flows`` with the regional model's totals (its cells summed per gateway, hour ``h`` times
    ``ratios[h]``) wherever a gateway's flow is a stated default and the region's roads reach it: its
    inbound with its through flow, its outbound flow. A counted or calibrated flow is kept; beside a
    phone-based inbound flow the region gives the through flow, which phone data cannot show."""
    source = f"{REGION_SOURCE} ({regional.label})"
    totals: dict[tuple[str, str], float] = {}
    for cell, vph in regional.cells.items():
        key = cell_kind(cell)
        totals[key] = totals.get(key, 0.0) + vph

    def hourly(node: str, kind: str) -> tuple[float, ...]:
        return tuple(totals.get((node, kind), 0.0) * r for r in ratios)

    replaced = []
    for flow in flows:
        update: dict[str, object] = {}
        if flow.node in regional.reached_in and flow.inbound_source == STATED_DEFAULT:
            update |= {
                "inbound_vph": hourly(flow.node, "inbound"),
                "through_vph": hourly(flow.node, "through"),
                "inbound_source": source,
            }
        elif flow.node in regional.reached_in and flow.inbound_source == PHONE_SOURCE:
            update |= {"through_vph": hourly(flow.node, "through"), "through_source": source}
        if flow.node in regional.reached_out and flow.outbound_source == STATED_DEFAULT:
            update |= {"outbound_vph": hourly(flow.node, "outbound"), "outbound_source": source}
        replaced.append(flow.model_copy(update=update))
    return replaced
