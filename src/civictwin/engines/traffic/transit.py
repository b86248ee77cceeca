"""Buses in the simulation: the twin's GTFS runs and a scenario's new lines as stops on edges and runs.

Nothing here knows SUMO (:mod:`~civictwin.engines.traffic.busfiles` writes it). A *run* is one
vehicle of a line leaving its first stop in the simulated window; its stops are matched to the
directed edges open to buses. SUMO's own ``gtfs2pt.py`` is not used: it needs the raw feed file, a
date and the ``rtree`` package, and routes on a network of its own making, where the twin holds the
feed as tables clipped to its area and the network is the scenario's.

GTFS runs come from the busiest service day (the day the twin's ``transit_stop_frequency`` counts):
every trip of a bus or tram route (GTFS ``route_type`` 0 or 3, extended 700–799 and 900–999) whose
first stop in the area is left within ``[clock_begin_s, clock_begin_s + window_s)``, and every run of
a ``frequencies.txt`` trip (``start_time``, ``start_time + headway`` … before ``end_time``) in that
window. Simulation second 0 is ``clock_begin_s`` on the service day.

A stop is matched, per stop pattern (the ordered stops of a trip), to the edge within
``match_radius_m`` that runs the way the line goes (the edge's heading against the direction from
the previous to the next stop), else to the nearest; a stop with no edge open to buses that near is
left out of the run (counted), and a run keeping fewer than two stops is dropped (counted).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pydantic import BaseModel, ConfigDict, Field
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order

from civictwin.engines.traffic.interventions import TransitLine
from civictwin.errors import ScenarioError
from civictwin.geometry import WGS84, reproject
from civictwin.scenarios.spec import Scenario, intervention_label
from civictwin.sources.gtfs import active_services, busiest_service_day

GTFS_RUN_PREFIX = "pt"
"""How the ids of the twin's GTFS runs begin (a new line's begin with ``new``)."""

STREET_ROUTE_TYPES = frozenset({0, 3})
"""GTFS ``route_type`` values that run in street space: tram (0) and bus (3)."""


class BusSettings(BaseModel):
    """How buses are simulated (the ``[buses]`` table of ``traffic.toml``; sources in
    docs/methods-transit.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    """Simulate the twin's GTFS bus and tram runs (a scenario's new lines are simulated either way)."""
    stop_duration_s: Annotated[float, Field(ge=0, le=600)] = 10.0
    """Dwell time at each stop: ``gtfs2pt.py --duration`` default (SUMO's GTFS import)."""
    bus_stop_length_m: Annotated[float, Field(gt=0, le=200)] = 13.0
    """Length of a bus stop on its lane: ``gtfs2pt.py --bus-stop-length`` default."""
    tram_stop_length_m: Annotated[float, Field(gt=0, le=200)] = 60.0
    """Length of a tram stop: ``gtfs2pt.py --tram-stop-length`` default."""
    match_radius_m: Annotated[float, Field(gt=0, le=500)] = 50.0
    """Farthest a GTFS stop may lie from an edge open to buses (farther: not a street stop)."""


@dataclass(frozen=True)
class BusStop:
    """A stop on a directed twin edge, ``pos_m`` metres from its start, ``length_m`` long; ``xy`` is
    the stop's point in the twin's CRS (for maps)."""

    stop_id: str
    edge_id: str
    pos_m: float
    length_m: float
    xy: tuple[float, float]


@dataclass(frozen=True)
class BusRun:
    """One vehicle of ``line`` leaving its first stop ``depart_s`` seconds into the simulation."""

    run_id: str
    line: str
    depart_s: float
    stops: tuple[str, ...]
    """Ids of :class:`BusStop`\\ s in the order served."""


@dataclass(frozen=True)
class BusService:
    """Every simulated stop and run of one scenario, and what could not be matched."""

    stops: tuple[BusStop, ...] = ()
    runs: tuple[BusRun, ...] = ()
    unmatched_stops: int = 0
    dropped_runs: int = 0
    sources: tuple[str, ...] = field(default=())
    """In words, where the runs came from (``GTFS feed 'hsl'``, ``new line 'X'``)."""

    def joined(self, other: BusService) -> BusService:
        """Both services together (stop ids must not clash: GTFS stops and new lines' are prefixed)."""
        return BusService(
            self.stops + other.stops,
            self.runs + other.runs,
            self.unmatched_stops + other.unmatched_stops,
            self.dropped_runs + other.dropped_runs,
            self.sources + other.sources,
        )

    def keep_edges(self, present: frozenset[str]) -> BusService:
        """The service on a network carrying only ``present`` edges: stops elsewhere are left out."""
        kept = tuple(s for s in self.stops if s.edge_id in present)
        if len(kept) == len(self.stops):
            return self
        ids = {s.stop_id for s in kept}
        runs, dropped = _runs_on(self.runs, ids)
        lost = len(self.stops) - len(kept)
        return BusService(kept, runs, self.unmatched_stops + lost, self.dropped_runs + dropped, self.sources)


@dataclass(frozen=True)
class GtfsSchedule:
    """The twin's GTFS tables a bus simulation needs (as stored: ``docs/data-model.md``)."""

    stops: gpd.GeoDataFrame
    stop_times: pd.DataFrame
    trips: pd.DataFrame
    routes: pd.DataFrame
    calendar: pd.DataFrame
    frequencies: pd.DataFrame | None = None


# ------------------------------------------------------------------------------------------ GTFS runs


def gtfs_departures(schedule: GtfsSchedule, *, clock_begin_s: float, window_s: float) -> pd.DataFrame:
    """Runs leaving their first stop in the window: ``feed``, ``trip_id``, ``line``, ``depart_s``
    (seconds from ``clock_begin_s``), one row per run, on each feed's busiest service day (the day
    whose services run the most runs of the area's trips, every route type, as the build counts)."""
    trips = schedule.trips.merge(schedule.routes, on=["feed", "route_id"], how="inner")
    trips = trips.assign(line=trips["route_short_name"].fillna(trips["route_id"]).astype(str))
    starts = _run_starts(_first_times(schedule.stop_times, trips), schedule.frequencies)
    active = _active_trips(schedule, trips, starts.groupby(["feed", "trip_id"]).size())
    street = trips[trips["route_type"].map(_street_route).astype(bool)]
    street = street[_keys(street).isin(active)]
    window = starts[_keys(starts).isin(_keys(street))]
    window = window.assign(depart_s=window["time_s"] - clock_begin_s)
    window = window[(window["depart_s"] >= 0) & (window["depart_s"] < window_s)]
    window = window.join(street.set_index(["feed", "trip_id"])["line"], on=["feed", "trip_id"])
    ordered = window.sort_values(["depart_s", "feed", "trip_id"], ignore_index=True)
    return ordered[["feed", "trip_id", "line", "depart_s"]]


def _keys(frame: pd.DataFrame) -> pd.MultiIndex:
    """The (feed, trip_id) pairs of a frame's rows."""
    return pd.MultiIndex.from_frame(frame[["feed", "trip_id"]])


def _street_route(route_type: object) -> bool:
    """Whether a GTFS route type runs on streets (tram, bus; extended 700–799 bus, 900–999 tram)."""
    try:
        value = int(route_type)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False
    return value in STREET_ROUTE_TYPES or 700 <= value <= 799 or 900 <= value <= 999


def _active_trips(schedule: GtfsSchedule, trips: pd.DataFrame, runs_per_trip: pd.Series) -> pd.MultiIndex:
    """(feed, trip_id) of the trips running on each feed's busiest service day (``runs_per_trip``,
    indexed by feed and trip_id, weighs each trip)."""
    keys: list[tuple[str, str]] = []
    calendar = schedule.calendar
    for feed, group in trips.groupby("feed"):
        rows = calendar[calendar["feed"] == feed]
        regular = _dated(
            rows[rows["date"].isna()].drop(columns=["date", "exception_type"]), ["start_date", "end_date"]
        )
        exceptions = _dated(
            rows.loc[rows["date"].notna(), ["service_id", "date", "exception_type"]], ["date"]
        )
        weights = runs_per_trip.reindex(pd.MultiIndex.from_frame(group[["feed", "trip_id"]])).fillna(0.0)
        runs = (
            pd.Series(weights.to_numpy(dtype=float), index=group["service_id"].to_numpy())
            .groupby(level=0)
            .sum()
        )
        busiest = busiest_service_day(regular, exceptions, runs)
        if busiest is None:
            continue
        services = active_services(regular, exceptions, busiest[0])
        chosen = group[group["service_id"].astype(str).isin(services)]
        keys.extend((str(feed), str(t)) for t in chosen["trip_id"])
    return pd.MultiIndex.from_tuples(keys, names=["feed", "trip_id"]) if keys else _no_keys()


def _no_keys() -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([[], []], names=["feed", "trip_id"])


def _dated(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame`` with ``columns`` as datetimes (the store keeps dates)."""
    return frame.assign(**{c: pd.to_datetime(frame[c]) for c in columns})


def _first_times(stop_times: pd.DataFrame, trips: pd.DataFrame) -> pd.DataFrame:
    """Each trip's time at its first stop in the area: ``feed``, ``trip_id``, ``time_s``."""
    times = stop_times.merge(trips[["feed", "trip_id"]], on=["feed", "trip_id"], how="inner")
    times = times.sort_values(["feed", "trip_id", "stop_sequence"])
    times = times.assign(time_s=times["departure_s"].fillna(times["arrival_s"]))
    first = times.groupby(["feed", "trip_id"], as_index=False).first()
    return first.loc[first["time_s"].notna(), ["feed", "trip_id", "time_s"]]


def _run_starts(first: pd.DataFrame, frequencies: pd.DataFrame | None) -> pd.DataFrame:
    """Scheduled trips once at their time; ``frequencies.txt`` trips once per headway in each period,
    shifted by the first stop's offset in the area from the trip's template start."""
    if frequencies is None or frequencies.empty:
        return first.assign(run=0)
    keyed = frequencies.merge(first, on=["feed", "trip_id"], how="inner")
    headway_trips = set(zip(keyed["feed"], keyed["trip_id"], strict=True))
    scheduled = first[
        [(f, t) not in headway_trips for f, t in zip(first["feed"], first["trip_id"], strict=True)]
    ]
    rows: list[tuple[str, str, int, float]] = []
    for (feed, trip_id), group in keyed.groupby(["feed", "trip_id"], sort=True):
        bounds = group[["start_s", "end_s", "headway_s"]].to_numpy(dtype=float)
        starts = np.unique(np.concatenate([np.arange(a, b, h) for a, b, h in bounds]))
        rows.extend((str(feed), str(trip_id), run, float(s)) for run, s in enumerate(starts))
    expanded = pd.DataFrame(rows, columns=["feed", "trip_id", "run", "time_s"])
    return pd.concat([scheduled.assign(run=0), expanded], ignore_index=True)


def gtfs_service(
    schedule: GtfsSchedule,
    edges: gpd.GeoDataFrame,
    settings: BusSettings,
    *,
    clock_begin_s: float,
    window_s: float,
) -> BusService:
    """The GTFS runs in the window with their stops matched to ``edges`` open to buses."""
    departures = gtfs_departures(schedule, clock_begin_s=clock_begin_s, window_s=window_s)
    if departures.empty:
        return BusService(sources=("GTFS: no bus or tram run in the simulated window",))
    patterns = _patterns(schedule.stop_times, departures)
    located = schedule.stops.set_index(["feed", "stop_id"]).geometry
    candidates = bus_edges(edges)
    stops: dict[str, BusStop] = {}
    matched: dict[tuple[tuple[str, str], ...], tuple[str, ...]] = {}
    unmatched = 0
    for pattern in sorted(set(patterns.values())):
        points = [located.loc[key] for key in pattern]
        places = match_points(points, candidates, radius_m=settings.match_radius_m)
        chosen: list[str] = []
        for (feed, stop_id), point, place in zip(pattern, points, places, strict=True):
            if place is None:
                unmatched += 1
                continue
            stop_key = f"{feed}:{stop_id}@{place[0]}"
            stops.setdefault(
                stop_key,
                BusStop(stop_key, place[0], place[1], settings.bus_stop_length_m, (point.x, point.y)),
            )
            chosen.append(stop_key)
        matched[pattern] = _forward_only(chosen, stops)
    runs: list[BusRun] = []
    dropped = 0
    for index, row in enumerate(departures.itertuples(index=False)):
        served = matched[patterns[(str(row.feed), str(row.trip_id))]]
        if len(served) < 2:
            dropped += 1
            continue
        runs.append(BusRun(f"{GTFS_RUN_PREFIX}{index}", str(row.line), float(row.depart_s), served))  # type: ignore[arg-type]
    used = {s for run in runs for s in run.stops}
    feeds = ", ".join(sorted(departures["feed"].astype(str).unique()))
    return BusService(
        tuple(stops[s] for s in sorted(used)), tuple(runs), unmatched, dropped, (f"GTFS feed(s) {feeds}",)
    )


def _patterns(
    stop_times: pd.DataFrame, departures: pd.DataFrame
) -> dict[tuple[str, str], tuple[tuple[str, str], ...]]:
    """Each departing trip's stops in the area, in order, as (feed, stop_id) pairs."""
    wanted = departures[["feed", "trip_id"]].drop_duplicates()
    times = stop_times.merge(wanted, on=["feed", "trip_id"], how="inner")
    times = times.sort_values(["feed", "trip_id", "stop_sequence"])
    out: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}
    for (feed, trip_id), group in times.groupby(["feed", "trip_id"], sort=False):
        out[(str(feed), str(trip_id))] = tuple((str(feed), str(s)) for s in group["stop_id"])
    return out


# -------------------------------------------------------------------------------------- new lines


class LineError(ValueError):
    """A new line that cannot run on the network; the message is one line for the scenario error."""


def line_stops(
    line: TransitLine, index: int, edges: gpd.GeoDataFrame, settings: BusSettings, *, crs: str
) -> tuple[BusStop, ...]:
    """A new line's stops on the edges open to buses (``index``: the intervention's place in its file).

    Raises :class:`LineError` when a stop has no edge open to buses within ``stop_radius_m`` or when
    no street route open to buses joins two consecutive stops.
    """
    points = list(reproject(np.array([shapely.Point(*p) for p in line.stops], dtype=object), WGS84, crs))
    candidates = bus_edges(edges)
    places = match_points(points, candidates, radius_m=line.stop_radius_m)
    length = settings.tram_stop_length_m if line.mode == "tram" else settings.bus_stop_length_m
    stops: list[BusStop] = []
    for number, (point, place) in enumerate(zip(points, places, strict=True), start=1):
        if place is None:
            raise LineError(f"stop {number}: no street open to buses within {line.stop_radius_m:g} m")
        stops.append(
            BusStop(f"new{index}:{number}@{place[0]}", place[0], place[1], length, (point.x, point.y))
        )
    _check_connected(candidates, [s.edge_id for s in stops])
    return tuple(stops)


def line_service(
    line: TransitLine,
    index: int,
    edges: gpd.GeoDataFrame,
    settings: BusSettings,
    *,
    crs: str,
    window_s: float,
) -> BusService:
    """A new line's stops (:func:`line_stops`) and one run per headway from ``begin_s`` until
    ``end_s`` or the end of the window; :class:`LineError` also when no run leaves in the window."""
    stops = line_stops(line, index, edges, settings, crs=crs)
    end_s = min(line.end_s if line.end_s is not None else window_s, window_s)
    departures = np.arange(line.begin_s, end_s, line.headway_min * 60.0)
    if len(departures) == 0:
        raise LineError(f"no run leaves between {line.begin_s:g} s and {end_s:g} s (the simulated window)")
    ids = tuple(s.stop_id for s in stops)
    label = f"{line.name} (new)"
    runs = tuple(BusRun(f"new{index}.{k}", label, float(t), ids) for k, t in enumerate(departures))
    return BusService(stops, runs, sources=(f"new {line.mode} line '{line.name}'",))


def _check_connected(candidates: gpd.GeoDataFrame, stop_edges: Sequence[str]) -> None:
    """Raise :class:`LineError` when an edge of ``stop_edges`` cannot be reached from the one before."""
    frame = candidates.set_index("edge_id")
    nodes, index = np.unique(
        np.concatenate([frame["from_node"].astype(str).to_numpy(), frame["to_node"].astype(str).to_numpy()]),
        return_inverse=True,
    )
    starts, ends = index[: len(frame)], index[len(frame) :]
    graph = csr_matrix((np.ones(len(frame)), (starts, ends)), shape=(len(nodes), len(nodes)))
    position = {str(e): k for k, e in enumerate(frame.index)}
    for number, (a, b) in enumerate(itertools.pairwise(stop_edges), start=1):
        if a == b:
            continue
        reached = breadth_first_order(graph, ends[position[a]], directed=True, return_predecessors=False)
        if starts[position[b]] not in set(reached.tolist()):
            raise LineError(f"no street route open to buses from stop {number} to stop {number + 1}")


def line_window_problems(scenario: Scenario, window_s: float) -> list[str]:
    """One line (file, intervention, problem) per new line of ``scenario`` no run of which leaves
    within the simulated window ``[0, window_s)``."""
    problems: list[str] = []
    for index, line in enumerate(scenario.interventions):
        if not isinstance(line, TransitLine):
            continue
        end_s = min(line.end_s if line.end_s is not None else window_s, window_s)
        if line.begin_s >= end_s:
            message = f"no run leaves between {line.begin_s:g} s and {end_s:g} s (the simulated window)"
            label = intervention_label(index, line)
            problems.append(ScenarioError(message, path=scenario.origin, field=label).user_message())
    return problems


def line_shapes(service: BusService) -> dict[str, bytes]:
    """Each line's shape for maps (WKB, twin CRS): a line through the stops of its longest run."""
    points = {stop.stop_id: stop.xy for stop in service.stops}
    longest: dict[str, BusRun] = {}
    for run in service.runs:
        if run.line not in longest or len(run.stops) > len(longest[run.line].stops):
            longest[run.line] = run
    return {
        line: shapely.to_wkb(shapely.LineString([points[s] for s in run.stops]))
        for line, run in longest.items()
    }


# -------------------------------------------------------------------------------------- matching


def bus_edges(edges: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The edges open to buses (``bus`` column, else ``car``), with ``length_m`` set."""
    column = "bus" if "bus" in edges.columns else "car"
    open_to_bus = edges[column].fillna(False).astype(bool)
    chosen = edges.loc[open_to_bus, ["edge_id", "from_node", "to_node", "length_m", "geometry"]].copy()
    chosen["edge_id"] = chosen["edge_id"].astype(str)
    measured = shapely.length(chosen.geometry.to_numpy())
    given = pd.to_numeric(chosen["length_m"], errors="coerce").to_numpy(dtype=float)
    chosen["length_m"] = np.where(given > 0, given, measured)
    return chosen.reset_index(drop=True)


def match_points(
    points: Sequence[shapely.Point], candidates: gpd.GeoDataFrame, *, radius_m: float
) -> list[tuple[str, float] | None]:
    """For each point of a line's ordered stops: (edge id, metres along it) or None.

    Among the edges within ``radius_m``, the nearest one heading the way the line goes (positive
    dot product of the edge's direction at the stop with the vector from the previous to the next
    stop that has an edge within reach) wins; without one heading that way, the nearest edge.
    """
    geoms = candidates.geometry.to_numpy()
    tree = shapely.STRtree(geoms)
    ids = candidates["edge_id"].to_numpy()
    lengths = candidates["length_m"].to_numpy(dtype=float)
    nearby = [tree.query(point, predicate="dwithin", distance=radius_m) for point in points]
    served = [k for k, near in enumerate(nearby) if len(near)]
    out: list[tuple[str, float] | None] = [None] * len(points)
    for order, k in enumerate(served):
        before = points[served[max(order - 1, 0)]]
        after = points[served[min(order + 1, len(served) - 1)]]
        travel = np.array([after.x - before.x, after.y - before.y])
        row = int(nearby[k][_best_edge(points[k], geoms[nearby[k]], travel)])
        along = float(shapely.line_locate_point(geoms[row], points[k]))
        scale = lengths[row] / max(float(shapely.length(geoms[row])), 1e-9)
        out[k] = (str(ids[row]), along * scale)
    return out


def _best_edge(point: shapely.Point, lines: np.ndarray, travel: np.ndarray) -> int:
    distance = shapely.distance(lines, point)
    along = shapely.line_locate_point(lines, point)
    ahead = shapely.line_interpolate_point(lines, along + 1.0)
    behind = shapely.line_interpolate_point(lines, np.maximum(along - 1.0, 0.0))
    heading = shapely.get_coordinates(ahead) - shapely.get_coordinates(behind)
    forward = heading @ travel > 0 if np.any(travel) else np.ones(len(lines), dtype=bool)
    score = np.where(forward, distance, distance + 1e6)
    return int(np.argmin(score))


def _forward_only(chosen: list[str], stops: dict[str, BusStop]) -> tuple[str, ...]:
    """Stops in order, dropping one on the same edge as the one before and not beyond it (a bus
    cannot reach it without a loop) and repeated stops."""
    kept: list[str] = []
    for key in chosen:
        if kept:
            last = stops[kept[-1]]
            here = stops[key]
            if here.edge_id == last.edge_id and here.pos_m <= last.pos_m:
                continue
        kept.append(key)
    return tuple(kept)


def _runs_on(runs: Iterable[BusRun], stop_ids: set[str]) -> tuple[tuple[BusRun, ...], int]:
    kept: list[BusRun] = []
    dropped = 0
    for run in runs:
        served = tuple(s for s in run.stops if s in stop_ids)
        if len(served) < 2:
            dropped += 1
        else:
            kept.append(BusRun(run.run_id, run.line, run.depart_s, served))
    return tuple(kept), dropped
