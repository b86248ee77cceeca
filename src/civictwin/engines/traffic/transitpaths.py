"""Per-OD transit times over the simulated lines' own routes: a frequency-based shortest path.

Each simulated line (the twin's GTFS bus and tram runs and a scenario's new lines, as
:class:`~civictwin.engines.traffic.transit.BusService` runs) is one *route* per stop pattern: its stops
in order, the street distance between consecutive stops along the streets open to buses, and its
headway, the window's length over the runs of that pattern in it (Visum's "headway from the mean
headway according to the timetable"). A traveller from a zone walks to a stop within
``pt_access_max_m`` of the zone's centre, waits half the headway of the line boarded (capped at
``pt_max_wait_min``: passengers arriving at random at a regular service), rides along the line's
route at *that line's* speed (the planned ``pt_speed_kmh`` until a simulation gave the line's own
commercial speed), may alight and board another line at the same stop (each boarding after the first
costs ``pt_transfer_penalty_min``), and walks from the last stop to the destination zone's centre.
The path taken is the one of least generalised time (the mode choice's weights for walking and
waiting). Method and sources: docs/methods-transit.md, "Transit times in the mode choice".

Unlike the optimal strategies of Spiess & Florian (1989), one line is boarded at a time: lines
running side by side do not pool their frequencies into a shorter wait.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from civictwin.engines.traffic.demand import FloatMatrix, IntArray
from civictwin.engines.traffic.modechoice import LevelOfService, ModeChoiceParams
from civictwin.engines.traffic.transit import BusService, BusStop, bus_edges

SOURCES_PER_SEARCH = 64
"""Origin zones per shortest-path search (bounds the memory of one search's node matrix)."""
STREET_DETOUR_LIMIT = 5.0
"""With :data:`STREET_SLACK_M`: a street route between consecutive stops is searched up to 5 × their
straight distance + 2 km (civictwin's bound on the search, not a model parameter); a longer one, or
none, counts as the straight line (SUMO routed the run otherwise)."""
STREET_SLACK_M = 2000.0
_ZERO = 1e-9
"""Weight of a cost-free link (alighting, staying at the stop): SciPy reads a stored zero as no link."""


@dataclass(frozen=True)
class LineRoute:
    """One stop pattern of a line: its stops in order, the metres between consecutive stops along
    the streets open to buses, and its headway (minutes)."""

    line: str
    stops: tuple[str, ...]
    segment_m: tuple[float, ...]
    headway_min: float


@dataclass(frozen=True)
class TransitLines:
    """The routes of a scenario's simulated lines and where their stops are (twin CRS, metres).

    ``complete``: the twin's GTFS street lines are among them, so the lines stand for the area's
    street transit; otherwise (no GTFS, or ``[buses]`` off) they are only a scenario's new lines,
    which add to the transit the mode choice otherwise assumes and never replace it.
    """

    routes: tuple[LineRoute, ...]
    stop_xy: Mapping[str, tuple[float, float]]
    complete: bool


@dataclass(frozen=True)
class LineTimes:
    """Per OD pair of the least generalised-time path over the lines (``inf``: no path): minutes in
    vehicles, waiting, walking to and from stops, and of transfer penalties."""

    in_vehicle_min: FloatMatrix
    wait_min: FloatMatrix
    walk_min: FloatMatrix
    transfer_min: FloatMatrix


def transit_lines(
    service: BusService,
    edges: gpd.GeoDataFrame,
    *,
    window_s: float,
    complete: bool,
    frequency_factors: Mapping[str, float] | None = None,
) -> TransitLines | None:
    """The routes of ``service``'s runs (one per line and stop pattern) on ``edges``; None without runs.

    A pattern's headway is ``window_s`` over its runs in the window (minutes), divided by its line's
    ``frequency_factors`` entry (a ``transit_frequency`` intervention: the line runs that many times as
    often in the mode choice).
    """
    factors = frequency_factors or {}
    if not service.runs:
        return None
    runs: dict[tuple[str, tuple[str, ...]], int] = {}
    for run in service.runs:
        runs[(run.line, run.stops)] = runs.get((run.line, run.stops), 0) + 1
    stops = {stop.stop_id: stop for stop in service.stops}
    metres = _street_metres(edges, [(stops[a], stops[b]) for _, pattern in runs for a, b in _pairs(pattern)])
    routes = tuple(
        LineRoute(
            line=line,
            stops=pattern,
            segment_m=tuple(metres[(a, b)] for a, b in _pairs(pattern)),
            headway_min=window_s / 60.0 / count / factors.get(line, 1.0),
        )
        for (line, pattern), count in sorted(runs.items())
    )
    return TransitLines(routes, {s.stop_id: s.xy for s in service.stops}, complete)


def _pairs(pattern: Sequence[str]) -> list[tuple[str, str]]:
    return list(itertools.pairwise(pattern))


def _street_metres(
    edges: gpd.GeoDataFrame, pairs: Sequence[tuple[BusStop, BusStop]]
) -> dict[tuple[str, str], float]:
    """Metres from each stop of ``pairs`` to the next along the edges open to buses: the rest of the
    first stop's edge, the shortest path to the second's edge, and the way along it; the straight line
    where no such path exists (a run SUMO routed otherwise)."""
    frame = bus_edges(edges).set_index("edge_id")
    nodes, index = np.unique(
        np.concatenate([frame["from_node"].astype(str).to_numpy(), frame["to_node"].astype(str).to_numpy()]),
        return_inverse=True,
    )
    starts, ends = index[: len(frame)], index[len(frame) :]
    lengths = frame["length_m"].to_numpy(dtype=float)
    graph = csr_matrix((np.maximum(lengths, _ZERO), (starts, ends)), shape=(len(nodes), len(nodes)))
    row = {str(e): k for k, e in enumerate(frame.index)}
    out: dict[tuple[str, str], float] = {}
    searched: list[tuple[BusStop, BusStop, float]] = []
    for a, b in {(a.stop_id, b.stop_id): (a, b) for a, b in pairs}.values():
        straight = float(np.hypot(b.xy[0] - a.xy[0], b.xy[1] - a.xy[1]))
        if a.edge_id == b.edge_id and b.pos_m >= a.pos_m:
            out[(a.stop_id, b.stop_id)] = b.pos_m - a.pos_m
        elif a.edge_id not in row or b.edge_id not in row:
            out[(a.stop_id, b.stop_id)] = straight
        else:
            searched.append((a, b, straight))
    for first in range(0, len(searched), SOURCES_PER_SEARCH):
        chunk = searched[first : first + SOURCES_PER_SEARCH]
        sources = [int(ends[row[a.edge_id]]) for a, _, _ in chunk]
        targets = [int(starts[row[b.edge_id]]) for _, b, _ in chunk]
        # consecutive stops are near: searching farther than this only costs time
        reach = max(STREET_DETOUR_LIMIT * straight + STREET_SLACK_M for _, _, straight in chunk)
        found = dijkstra(graph, directed=True, indices=sources, limit=reach)
        for k, (a, b, straight) in enumerate(chunk):
            between = float(found[k, targets[k]])
            rest = lengths[row[a.edge_id]] - a.pos_m
            out[(a.stop_id, b.stop_id)] = rest + between + b.pos_m if np.isfinite(between) else straight
    return out


def line_times(
    lines: TransitLines,
    zones: gpd.GeoDataFrame,
    params: ModeChoiceParams,
    *,
    line_speed_kmh: Mapping[str, float] | None = None,
) -> LineTimes:
    """The least generalised-time path between every pair of zone centres over ``lines``.

    ``line_speed_kmh`` gives a line's simulated commercial speed; lines without one ride at
    ``pt_speed_kmh``. Intrazonal pairs have no transit (``inf``), as in the mode choice's fallback.
    """
    graph = _graph(lines, zones, params, line_speed_kmh or {})
    n = len(zones)
    parts = [np.full((n, n), np.inf) for _ in range(4)]
    for first in range(0, n, SOURCES_PER_SEARCH):
        origins = np.arange(first, min(first + SOURCES_PER_SEARCH, n))
        for k, values in enumerate(graph.sums_to_destinations(origins)):
            parts[k][origins] = values
    boardings = parts[3]
    transfer = np.where(np.isfinite(boardings), (boardings - 1.0) * params.pt_transfer_penalty_min, np.inf)
    for matrix in (*parts[:3], transfer):
        np.fill_diagonal(matrix, np.inf)
    return LineTimes(parts[0], parts[1], parts[2], transfer)


@dataclass(frozen=True)
class _Graph:
    """The search graph: origin nodes ``0..n-1``, destination nodes ``n..2n-1``, then stop and route
    nodes; every link with its generalised minutes and its parts (in-vehicle, wait, walk minutes and
    boardings)."""

    zones: int
    matrix: csr_matrix
    link_keys: IntArray
    """``from * nodes + to`` of every link, sorted (finds a link's parts from its two ends)."""
    link_parts: FloatMatrix
    """Shape (links, 4): in-vehicle minutes, waiting minutes, walking minutes, boardings."""

    def sums_to_destinations(self, origins: IntArray) -> list[FloatMatrix]:
        """For ``origins``, each part summed along the least-cost path to every destination node."""
        nodes = self.matrix.shape[0]
        cost, previous = dijkstra(self.matrix, directed=True, indices=origins, return_predecessors=True)
        rows = np.arange(len(origins))[:, None]
        here = np.broadcast_to(np.arange(self.zones, 2 * self.zones), (len(origins), self.zones)).copy()
        totals = np.zeros((len(origins), self.zones, 4))
        # walk every path back from its destination to its origin at once, a link per round
        while (going := previous[rows, here] >= 0).any():
            back = np.where(going, previous[rows, here], here)
            links = np.searchsorted(self.link_keys, back * nodes + here)
            totals += np.where(going[..., None], self.link_parts[np.where(going, links, 0)], 0.0)
            here = back
        unreachable = ~np.isfinite(cost[:, self.zones : 2 * self.zones])
        return [np.where(unreachable, np.inf, totals[..., k]) for k in range(4)]


def _graph(
    lines: TransitLines, zones: gpd.GeoDataFrame, params: ModeChoiceParams, speeds: Mapping[str, float]
) -> _Graph:
    """The search graph of ``lines`` between the centres of ``zones`` (see :class:`_Graph`), each line
    riding at its ``speeds`` entry (km/h) or ``pt_speed_kmh``."""
    n = len(zones)
    stop_ids = sorted(lines.stop_xy)
    platform = {s: 2 * n + 2 * k for k, s in enumerate(stop_ids)}  # boarding side; +1: alighting side
    nodes = 2 * n + 2 * len(stop_ids)
    links: list[tuple[int, int, float, float, float, float]] = []  # from, to, ivt, wait, walk, boardings
    walk_m_per_min = params.walk_speed_kmh * 1000.0 / 60.0
    centres = shapely.get_coordinates(zones.geometry.centroid.to_numpy())
    xy = np.array([lines.stop_xy[s] for s in stop_ids], dtype=float).reshape(-1, 2)
    distance = np.hypot(centres[:, 0, None] - xy[None, :, 0], centres[:, 1, None] - xy[None, :, 1])
    for zone, stop in zip(*np.nonzero(distance <= params.pt_access_max_m), strict=True):
        walk = float(distance[zone, stop]) * params.pt_detour_factor / walk_m_per_min
        board_side = platform[stop_ids[stop]]
        links.append((int(zone), board_side, 0.0, 0.0, walk, 0.0))
        links.append((board_side + 1, n + int(zone), 0.0, 0.0, walk, 0.0))
    for side in platform.values():
        links.append((side + 1, side, 0.0, 0.0, 0.0, 0.0))  # alight, then board another line here
    for route in lines.routes:
        m_per_min = speeds.get(route.line, params.pt_speed_kmh) * 1000.0 / 60.0
        wait = min(route.headway_min / 2.0, params.pt_max_wait_min)
        # per stop of the route a node for leaving it (boarded or stayed on) and one for arriving at
        # it (alight or stay on), so no path boards and alights at one stop without riding
        leave, arrive = nodes, nodes + len(route.stops)
        nodes += 2 * len(route.stops)
        for k, stop in enumerate(route.stops):
            if k < len(route.stops) - 1:
                links.append((platform[stop], leave + k, 0.0, wait, 0.0, 1.0))
                links.append((leave + k, arrive + k + 1, route.segment_m[k] / m_per_min, 0.0, 0.0, 0.0))
            if k > 0:
                links.append((arrive + k, platform[stop] + 1, 0.0, 0.0, 0.0, 0.0))
            if 0 < k < len(route.stops) - 1:
                links.append((arrive + k, leave + k, 0.0, 0.0, 0.0, 0.0))
    table = np.array(links, dtype=float).reshape(-1, 6)
    parts = table[:, 2:]
    weights = (
        parts[:, 0]
        + params.wait_weight * parts[:, 1]
        + params.access_walk_weight * parts[:, 2]
        + params.pt_transfer_penalty_min * parts[:, 3]
    )
    start, end = table[:, 0].astype(np.int64), table[:, 1].astype(np.int64)
    keys = start * nodes + end
    order = np.argsort(keys, kind="stable")
    matrix = csr_matrix((np.maximum(weights, _ZERO), (start, end)), shape=(nodes, nodes))
    return _Graph(n, matrix, keys[order], parts[order])


def line_speeds(bus_trips: pd.DataFrame | None) -> dict[str, float]:
    """Each line's commercial speed (km/h) in a simulation: the summed route length of its runs that
    arrived over their summed travel time (dwell and any wait to enter included); lines none of whose
    runs arrived are absent."""
    if bus_trips is None or bus_trips.empty or "line" not in bus_trips:
        return {}
    done = bus_trips[bus_trips["arrived"].astype(bool)]
    sums = done.groupby("line")[["route_length_m", "duration_s"]].sum()
    sums = sums[(sums["duration_s"] > 0) & (sums["route_length_m"] > 0)]
    return {str(line): float(m / s * 3.6) for line, m, s in sums.itertuples()}


@dataclass(frozen=True)
class LineTransit:
    """A scenario's simulated lines and the transit times the mode choice has without them (the
    GTFS stop frequencies' or the fallback's), which the lines' times overlay."""

    lines: TransitLines
    assumed_in_vehicle_min: FloatMatrix
    assumed_wait_min: FloatMatrix
    assumed_access_min: FloatMatrix

    @classmethod
    def over(cls, lines: TransitLines, service: LevelOfService) -> LineTransit:
        """The lines over the transit times of ``service`` (a service without line-based times)."""
        return cls(lines, service.pt_in_vehicle_min, service.pt_wait_min, service.pt_access_min)

    def applied(
        self,
        service: LevelOfService,
        zones: gpd.GeoDataFrame,
        params: ModeChoiceParams,
        *,
        line_speed_kmh: Mapping[str, float] | None = None,
        assumed_factor: float = 1.0,
    ) -> LevelOfService:
        """``service`` with the assumed transit times (in-vehicle minutes × ``assumed_factor``, the
        scenario-wide speed factor) overlaid by the lines' (:func:`with_line_times`) at
        ``line_speed_kmh`` (``pt_speed_kmh`` for lines without a simulated speed)."""
        assumed = dataclasses.replace(
            service,
            pt_in_vehicle_min=self.assumed_in_vehicle_min * assumed_factor,
            pt_wait_min=self.assumed_wait_min,
            pt_access_min=self.assumed_access_min,
            pt_transfer_min=None,
        )
        times = line_times(self.lines, zones, params, line_speed_kmh=line_speed_kmh)
        return with_line_times(assumed, times, params, replace=self.lines.complete)


def with_line_times(
    service: LevelOfService, times: LineTimes, params: ModeChoiceParams, *, replace: bool
) -> LevelOfService:
    """``service`` with the line-based transit times of every OD pair the lines connect.

    ``replace`` (the lines hold the twin's street transit): such pairs take the lines' times.
    Otherwise (the lines are a plan's new ones added to an assumed service) a pair takes them only
    where their generalised time beats the one it had.
    """
    connected = np.isfinite(times.in_vehicle_min)
    if not replace:
        before = _generalised_pt(
            service.pt_in_vehicle_min,
            service.pt_wait_min,
            service.pt_access_min,
            service.pt_transfer_min,
            params,
        )
        after = _generalised_pt(
            times.in_vehicle_min, times.wait_min, times.walk_min, times.transfer_min, params
        )
        connected &= after < before
    old_transfer = (
        service.pt_transfer_min if service.pt_transfer_min is not None else np.zeros(connected.shape)
    )
    return dataclasses.replace(
        service,
        pt_in_vehicle_min=np.where(connected, times.in_vehicle_min, service.pt_in_vehicle_min),
        pt_wait_min=np.where(connected, times.wait_min, service.pt_wait_min),
        pt_access_min=np.where(connected, times.walk_min, service.pt_access_min),
        pt_transfer_min=np.where(connected, times.transfer_min, old_transfer),
    )


def _generalised_pt(
    in_vehicle: FloatMatrix,
    wait: FloatMatrix,
    walk: FloatMatrix,
    transfer: FloatMatrix | None,
    params: ModeChoiceParams,
) -> FloatMatrix:
    """Transit's generalised minutes without the fare (the same on either side of a comparison)."""
    total = in_vehicle + params.wait_weight * wait + params.access_walk_weight * walk
    return total if transfer is None else total + transfer
