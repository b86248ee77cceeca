"""Travel demand for one peak hour: who wants to go where, before any mode is chosen.

The origin–destination (OD) matrix comes from the twin's ``zones`` through a doubly-constrained
gravity model (productions from residents, attractions from jobs and points of interest, exponential
deterrence over distance, balanced with the Furness method), or from a user-supplied CSV. The matrix
holds *person trips of all modes* per hour; over a window of several hours the residents' trips
follow an hourly profile (:func:`hour_factors`) and a phone-based matrix is taken hour by hour
(:func:`phone_hours`); :mod:`civictwin.engines.traffic.modechoice` splits it by mode and
:func:`sample_car_trips` turns the car part into concrete, seeded SUMO trips.

Parameters and their sources are documented in ``docs/methods-demand.md``; every default is a
starting point to be calibrated against a local travel survey.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from civictwin.engines.traffic.run import CarTrip
from civictwin.errors import CivicTwinError
from civictwin.model.mobility import OUTSIDE

FloatMatrix = npt.NDArray[np.float64]

_POI_PREFIX = "poi_"
_TRIP_ID = re.compile(r"(\d+)_(\d+)_\d+$")


class DemandError(CivicTwinError):
    """Demand cannot be built: zones lack the needed columns, or an OD matrix file is invalid."""


HOURS_PER_DAY = 24
NHTS_2001_WEEKDAY_DEPARTURES: tuple[float, ...] = (
    906.7, 459.8, 310.6, 183.7, 1273.1, 3414.9, 9387.5, 22503.9, 17913.9, 13080.4, 15153.5, 18037.3,
    20060.2, 17579.4, 20834.3, 25557.5, 23234.0, 24582.3, 15586.8, 11723.9, 8923.8, 5942.0, 3098.2, 1707.1,
)  # fmt: skip
"""Weekday person trips (all modes, all ages; millions a year) by hour of departure 0–23 in the US
2001 National Household Travel Survey: BTS, *Transportation Statistics Annual Report 2005*, table
4-8 (the sum of its three age groups). A US profile, the one checked source at hand: replace it with
a local travel survey's (docs/methods-demand.md)."""


class DemandParams(BaseModel):
    """Parameters of the peak-hour gravity model (defaults: see ``docs/methods-demand.md``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trips_per_resident_day: Annotated[float, Field(gt=0, le=10)] = 2.7
    """Person trips per resident and day, all modes (national travel survey order of magnitude)."""
    peak_hour_share: Annotated[float, Field(gt=0, le=1)] = 0.10
    """Share of a day's trips made in the simulated peak hour."""
    floor_area_per_job_m2: Annotated[float, Field(gt=0)] = 35.0
    """Non-residential floor area per job, turning ``jobs_proxy_m2`` into jobs."""
    poi_weight: Annotated[float, Field(ge=0)] = 5.0
    """Attraction of one point of interest, in jobs-equivalents."""
    resident_weight: Annotated[float, Field(ge=0)] = 0.1
    """Attraction of one resident (trips to homes in the peak hour), in jobs-equivalents."""
    beta_per_km: Annotated[float, Field(ge=0, le=5)] = 0.3
    """Deterrence exp(-beta · d): the larger, the shorter the trips."""
    distance: Literal["network", "crowfly"] = "network"
    """Zone-to-zone distance: shortest walkable path between zone centres, or straight line."""
    scale: Annotated[float, Field(gt=0, le=100)] = 1.0
    """Overall factor on the matrix (e.g. 0.2 for quick tests, >1 for external traffic)."""
    furness_tolerance: Annotated[float, Field(gt=0)] = 1e-6
    furness_max_iterations: Annotated[int, Field(ge=1)] = 200
    hourly_profile: Annotated[
        tuple[float, ...], Field(min_length=HOURS_PER_DAY, max_length=HOURS_PER_DAY)
    ] = NHTS_2001_WEEKDAY_DEPARTURES
    """Relative weight of each clock hour 0–23 in a day's trip departures (any unit: only ratios
    count). Hour ``h`` of the demand window carries ``peak_hour_share`` times the ratio of its clock
    hour's weight to the window's first hour's (see :func:`hour_factors`)."""

    @field_validator("hourly_profile")
    @classmethod
    def _profile_has_trips(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not math.isfinite(v) or v < 0 for v in value) or sum(value) <= 0:
            raise ValueError("24 non-negative weights, not all zero")
        return value


@dataclass(frozen=True)
class OdMatrix:
    """Person trips per hour between zones: ``trips[i, j]`` from ``zones[i]`` to ``zones[j]``."""

    zones: tuple[str, ...]
    trips: FloatMatrix

    @property
    def total(self) -> float:
        """All trips in the matrix."""
        return float(self.trips.sum())

    def scaled(self, factor: float) -> OdMatrix:
        """The same matrix times ``factor`` (demand growth)."""
        return OdMatrix(self.zones, self.trips * factor)

    def to_frame(self) -> pd.DataFrame:
        """Long form: origin, destination, trips (non-zero cells only)."""
        rows, cols = np.nonzero(self.trips)
        return pd.DataFrame(
            {
                "origin": [self.zones[i] for i in rows],
                "destination": [self.zones[j] for j in cols],
                "trips": self.trips[rows, cols],
            }
        )


# ---------------------------------------------------------------------------------------------- gravity


def productions_attractions(zones: pd.DataFrame, params: DemandParams) -> tuple[FloatMatrix, FloatMatrix]:
    """Peak-hour trip productions (from residents) and attraction weights (jobs, POIs, homes) per zone."""
    missing = [c for c in ("zone_id", "population", "jobs_proxy_m2") if c not in zones.columns]
    if missing:
        raise DemandError(f"zones table lacks column(s) {', '.join(missing)}", field="zones")
    population = zones["population"].fillna(0).to_numpy(dtype=float)
    jobs = zones["jobs_proxy_m2"].fillna(0).to_numpy(dtype=float) / params.floor_area_per_job_m2
    poi_columns = [c for c in zones.columns if c.startswith(_POI_PREFIX)]
    pois = zones[poi_columns].fillna(0).to_numpy(dtype=float).sum(axis=1) if poi_columns else 0.0
    productions = population * params.trips_per_resident_day * params.peak_hour_share
    attractions = jobs + params.poi_weight * pois + params.resident_weight * population
    return productions, np.asarray(attractions, dtype=float)


def gravity(
    productions: FloatMatrix,
    attractions: FloatMatrix,
    distance_m: FloatMatrix,
    *,
    beta_per_km: float,
    tolerance: float = 1e-6,
    max_iterations: int = 200,
) -> FloatMatrix:
    """Doubly-constrained gravity model balanced with the Furness method (iterative proportional fitting).

    ``T[i, j] = a_i · b_j · P_i · A_j · exp(-beta · d_ij)``, with ``a`` and ``b`` chosen so that rows sum
    to the productions ``P`` and columns to the attractions rescaled to the same total. Zones that cannot
    reach one another (infinite distance) exchange no trips.
    """
    total = float(productions.sum())
    if total <= 0 or float(attractions.sum()) <= 0:
        return np.zeros_like(distance_m, dtype=float)
    targets = attractions * (total / float(attractions.sum()))
    deterrence = np.where(np.isfinite(distance_m), np.exp(-beta_per_km * distance_m / 1000.0), 0.0)
    trips = np.outer(productions, targets) * deterrence
    for _ in range(max_iterations):
        trips = _fit_rows(trips, productions)
        trips = _fit_rows(trips.T, targets).T
        if np.allclose(trips.sum(axis=1), productions, rtol=tolerance, atol=tolerance * max(total, 1.0)):
            break
    return trips


def _fit_rows(matrix: FloatMatrix, targets: FloatMatrix) -> FloatMatrix:
    sums = matrix.sum(axis=1)
    factor = np.divide(targets, sums, out=np.zeros_like(sums), where=sums > 0)
    fitted: FloatMatrix = matrix * factor[:, None]
    return fitted


def gravity_od(
    zones: gpd.GeoDataFrame, params: DemandParams, edges: gpd.GeoDataFrame | None = None
) -> OdMatrix:
    """The peak-hour OD matrix of person trips from the twin's zones (see :func:`gravity`)."""
    productions, attractions = productions_attractions(zones, params)
    if params.distance == "network" and edges is not None:
        distance = network_distances(zones, edges, mode="walk")
    else:
        distance = crowfly_distances(zones)
    trips = gravity(
        productions,
        attractions,
        distance,
        beta_per_km=params.beta_per_km,
        tolerance=params.furness_tolerance,
        max_iterations=params.furness_max_iterations,
    )
    return OdMatrix(tuple(str(z) for z in zones["zone_id"]), trips * params.scale)


# ----------------------------------------------------------------------------------- hours of a window

HOUR_S = 3600.0


def window_hours(window_s: float) -> list[float]:
    """The share of each clock hour of a demand window of ``window_s`` seconds that lies in it
    (``[1, 1, 0.5]`` for 2.5 hours)."""
    count = max(1, math.ceil(window_s / HOUR_S - 1e-9))
    return [min(1.0, window_s / HOUR_S - h) for h in range(count)]


def profile_ratios(profile: Sequence[float], *, start_hour: int, hours: int) -> list[float]:
    """Per hour of a window of ``hours`` hours starting at clock hour ``start_hour``, the profile's
    weight of that clock hour over the first hour's (the first hour is the peak hour
    ``peak_hour_share`` describes). A window past midnight continues with hour 0."""
    first = profile[start_hour % HOURS_PER_DAY]
    if first <= 0:
        raise DemandError(
            f"hourly_profile is 0 at the demand window's first hour {start_hour}:00, so no hour can be "
            "scaled from its peak-hour share",
            field="demand.hourly_profile",
        )
    return [profile[(start_hour + hour) % HOURS_PER_DAY] / first for hour in range(hours)]


def hour_factors(profile: Sequence[float], *, start_hour: int, window_s: float) -> list[float]:
    """Per hour of a demand window of ``window_s`` seconds starting at clock hour ``start_hour``, the
    factor on the peak-hour matrix: :func:`profile_ratios` times the share of the hour inside the
    window (a last partial hour)."""
    parts = window_hours(window_s)
    ratios = profile_ratios(profile, start_hour=start_hour, hours=len(parts))
    return [ratio * part for ratio, part in zip(ratios, parts, strict=True)]


@dataclass(frozen=True)
class WindowOd:
    """Person trips over a whole demand window (``od``) and, per hour of the window, the share of each
    cell's trips that depart in that hour (a 0-d array when every cell has the same share)."""

    od: OdMatrix
    hour_shares: tuple[FloatMatrix, ...]


def profiled(od: OdMatrix, factors: Sequence[float]) -> WindowOd:
    """``od`` (trips per hour) over a window whose hour ``h`` carries ``factors[h]`` times it."""
    total = float(sum(factors))
    return WindowOd(od.scaled(total), tuple(np.asarray(f / total) for f in factors))


def stacked(hourly: Sequence[OdMatrix]) -> WindowOd:
    """The hours' matrices (trips departing in each hour of the window) as one window's trips."""
    total = np.sum([h.trips for h in hourly], axis=0)
    shares = tuple(np.divide(h.trips, total, out=np.zeros_like(total), where=total > 0) for h in hourly)
    return WindowOd(OdMatrix(hourly[0].zones, total), shares)


# -------------------------------------------------------------------------------------------- distances


def intrazonal_distance_m(zones: gpd.GeoDataFrame) -> FloatMatrix:
    """Typical length of a trip inside a zone: half the side of a square of the zone's area."""
    area = zones.geometry.area.to_numpy(dtype=float)
    half_side: FloatMatrix = 0.5 * np.sqrt(area)
    return half_side


def crowfly_distances(zones: gpd.GeoDataFrame) -> FloatMatrix:
    """Straight-line distances between zone centroids (metres), intrazonal on the diagonal."""
    points = zones.geometry.centroid
    xy = np.column_stack([points.x.to_numpy(), points.y.to_numpy()])
    distance: FloatMatrix = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2))
    np.fill_diagonal(distance, intrazonal_distance_m(zones))
    return distance


IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ModeGraph:
    """A directed graph of the edges one mode may use, for scipy's shortest-path routines.

    ``pair_from``/``pair_to`` list each distinct (from, to) node pair once, sorted; ``edge_pair`` gives
    every edge's pair, so parallel edges fold into one matrix entry without a group-by per call.
    """

    node_ids: IntArray
    node_xy: FloatMatrix
    edge_from: IntArray
    edge_to: IntArray
    edge_ids: tuple[str, ...]
    length_m: FloatMatrix
    pair_from: IntArray
    pair_to: IntArray
    edge_pair: IntArray

    def matrix(self, weights: FloatMatrix) -> csr_matrix:
        """A sparse adjacency matrix with ``weights`` per edge (parallel edges: the smallest weight)."""
        n = len(self.node_ids)
        # csr construction would sum parallel edges; a zero weight would read as "no edge"
        best = np.full(len(self.pair_from), np.inf)
        np.minimum.at(best, self.edge_pair, np.maximum(weights, 1e-3))
        return csr_matrix((best, (self.pair_from, self.pair_to)), shape=(n, n))

    def nearest_nodes(self, points: gpd.GeoSeries) -> npt.NDArray[np.int64]:
        """Index of the graph node nearest to each point."""
        from scipy.spatial import cKDTree

        tree = cKDTree(self.node_xy)
        _, index = tree.query(np.column_stack([points.x.to_numpy(), points.y.to_numpy()]))
        return np.asarray(index, dtype=np.int64)


def mode_graph(edges: gpd.GeoDataFrame, mode: Literal["car", "bike", "walk"]) -> ModeGraph:
    """The graph of the edges that allow ``mode`` (node positions from the edge end points)."""
    usable = edges[edges[mode].fillna(False).astype(bool)]
    if usable.empty:
        raise DemandError(f"no edge of the network allows {mode}", field="network_edges")
    starts = shapely.get_point(usable.geometry.to_numpy(), 0)
    ends = shapely.get_point(usable.geometry.to_numpy(), -1)
    ends_nodes = np.concatenate([usable["from_node"].to_numpy(), usable["to_node"].to_numpy()]).astype(
        np.int64
    )
    ends_points = np.concatenate([starts, ends])
    node_ids, first = np.unique(ends_nodes, return_index=True)
    node_xy = shapely.get_coordinates(ends_points[first])
    edge_from = np.searchsorted(node_ids, usable["from_node"].to_numpy(dtype=np.int64))
    edge_to = np.searchsorted(node_ids, usable["to_node"].to_numpy(dtype=np.int64))
    pairs, edge_pair = np.unique(edge_from * len(node_ids) + edge_to, return_inverse=True)
    return ModeGraph(
        node_ids=node_ids,
        node_xy=node_xy,
        edge_from=edge_from,
        edge_to=edge_to,
        edge_ids=tuple(usable["edge_id"].astype(str).tolist()),
        length_m=usable["length_m"].to_numpy(dtype=float),
        pair_from=pairs // len(node_ids),
        pair_to=pairs % len(node_ids),
        edge_pair=edge_pair.reshape(-1),
    )


def zone_path_costs(graph: ModeGraph, zones: gpd.GeoDataFrame, weights: FloatMatrix) -> FloatMatrix:
    """Least-cost path between the graph nodes nearest to the zone centroids (inf: unreachable)."""
    return path_costs(graph, graph.nearest_nodes(zones.geometry.centroid), weights)


def path_costs(graph: ModeGraph, nodes: IntArray, weights: FloatMatrix) -> FloatMatrix:
    """Least-cost path between every pair of the graph nodes ``nodes`` (inf: unreachable).

    The searches run :data:`SOURCES_PER_SEARCH` origins at a time, keeping only the columns of
    ``nodes``: SciPy returns every origin's cost to every graph node, which for all 1,492 zones of the
    8×8 twin's walk network (228,000 nodes) would be a 2.7 GB matrix at once.
    """
    return search_costs(graph.matrix(weights), nodes, nodes)


def search_costs(matrix: csr_matrix, sources: IntArray, targets: IntArray) -> FloatMatrix:
    """Least-cost path from each of the graph nodes ``sources`` to each of ``targets`` on the weighted
    adjacency ``matrix`` (inf: unreachable), :data:`SOURCES_PER_SEARCH` sources at a time."""
    costs = np.empty((len(sources), len(targets)), dtype=float)
    for first in range(0, len(sources), SOURCES_PER_SEARCH):
        chunk = sources[first : first + SOURCES_PER_SEARCH]
        costs[first : first + len(chunk)] = dijkstra(matrix, directed=True, indices=chunk)[:, targets]
    return costs


SOURCES_PER_SEARCH = 64
"""Origins per shortest-path search in :func:`path_costs` (64 × 228,000 graph nodes × 8 bytes: 117 MB)."""


def network_distances(
    zones: gpd.GeoDataFrame, edges: gpd.GeoDataFrame, mode: Literal["car", "bike", "walk"]
) -> FloatMatrix:
    """Shortest-path distances (metres) between zones on the ``mode`` network, intrazonal on the diagonal.

    A path is never shorter than the straight line between the zone centroids (the snapping of
    centroids to nodes can otherwise shorten it).
    """
    key = network_key(zones, edges, mode)
    with _DISTANCES_LOCK:
        cached = _DISTANCES.get(key)
    if cached is None:
        graph = mode_graph(edges, mode)
        cached = np.maximum(zone_path_costs(graph, zones, graph.length_m), crowfly_distances(zones))
        np.fill_diagonal(cached, intrazonal_distance_m(zones))
    with _DISTANCES_LOCK:  # the API may prepare scenarios in several threads
        _DISTANCES.pop(key, None)
        _DISTANCES[key] = cached  # the most recent last; the oldest goes first
        while len(_DISTANCES) > _DISTANCES_KEPT:
            _DISTANCES.pop(next(iter(_DISTANCES)))
    return cached.copy()


_DISTANCES: dict[bytes, FloatMatrix] = {}
"""Zone-to-zone network distances already computed in this process, by :func:`network_key`: a
scenario needs the walk distances twice (the gravity model and the free-flow level of service), and
on a region-sized twin each all-zones shortest-path search takes minutes."""
_DISTANCES_KEPT = 4
_DISTANCES_LOCK = threading.Lock()


def network_key(zones: gpd.GeoDataFrame, edges: gpd.GeoDataFrame, mode: str) -> bytes:
    """A digest of everything :func:`network_distances` reads (and the regional model takes from the
    area): the zones' centroids and areas, and the ends, lengths and ``mode`` permission of every edge."""
    digest = hashlib.blake2b(mode.encode(), digest_size=20)
    centroids = zones.geometry.centroid
    for values in (
        centroids.x.to_numpy(dtype=float),
        centroids.y.to_numpy(dtype=float),
        zones.geometry.area.to_numpy(dtype=float),
        edges["from_node"].to_numpy(dtype=np.int64),
        edges["to_node"].to_numpy(dtype=np.int64),
        edges["length_m"].to_numpy(dtype=float),
        edges[mode].fillna(False).to_numpy(dtype=bool),
    ):
        digest.update(np.ascontiguousarray(values).tobytes())
    return digest.digest()


# ------------------------------------------------------------------------------------------ OD from CSV


def load_od_csv(path: Path, zone_ids: Sequence[str]) -> OdMatrix:
    """A user-supplied OD matrix (CSV with ``origin``, ``destination``, ``trips`` person trips per hour).

    Every origin and destination must be a zone of the twin; trips must be finite and non-negative;
    repeated pairs are summed.
    """
    try:
        frame = pd.read_csv(path, dtype={"origin": str, "destination": str})
    except FileNotFoundError:
        raise DemandError("OD matrix file not found", path=path) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DemandError(f"not a readable CSV file: {str(exc).splitlines()[0]}", path=path) from None
    missing = [c for c in ("origin", "destination", "trips") if c not in frame.columns]
    if missing:
        raise DemandError(
            f"missing column(s) {', '.join(missing)} (need origin, destination, trips)", path=path
        )
    trips = pd.to_numeric(frame["trips"], errors="coerce")
    bad = frame.index[trips.isna() | ~np.isfinite(trips.fillna(0)) | (trips < 0)]
    if len(bad):
        row = int(bad[0]) + 2  # header is line 1
        raise DemandError(
            f"line {row}: trips must be a non-negative number, got {frame['trips'].iloc[bad[0]]!r}",
            path=path,
            field="trips",
        )
    index = {z: i for i, z in enumerate(zone_ids)}
    for column in ("origin", "destination"):
        unknown = sorted(set(frame[column].astype(str)) - set(index))
        if unknown:
            shown = ", ".join(unknown[:3]) + (" …" if len(unknown) > 3 else "")
            raise DemandError(f"{len(unknown)} unknown zone id(s): {shown}", path=path, field=column)
    matrix = np.zeros((len(index), len(index)))
    np.add.at(
        matrix,
        (
            frame["origin"].astype(str).map(index).to_numpy(),
            frame["destination"].astype(str).map(index).to_numpy(),
        ),
        trips.to_numpy(dtype=float),
    )
    return OdMatrix(tuple(zone_ids), matrix)


# ------------------------------------------------------------------------------------ OD from phone data


@dataclass(frozen=True)
class PhoneHours:
    """The phone-based OD matrix over the hours of a demand window (person trips per hour, hour ``h``
    of the window at clock hour ``first_hour + h``), with the trips that have one end outside the
    area kept apart per zone, and words saying which hours were used."""

    first_hour: int | None
    """The clock hour of the window's first hour (None: the matrix has no time bands)."""
    hourly: tuple[OdMatrix, ...]
    from_outside: tuple[FloatMatrix, ...]
    """Per hour, person trips per hour from outside the area to each zone."""
    to_outside: tuple[FloatMatrix, ...]
    """Per hour, person trips per hour from each zone to outside the area."""
    label: str


def phone_hours(
    table: pd.DataFrame | None, zone_ids: Sequence[str], *, first_hour: int | None, hours: int = 1
) -> PhoneHours:
    """The twin's phone-based OD matrix (table ``mobility_od``) as person trips, hour by hour.

    Operators count people's movements of every mode, so the matrix stands in for the gravity model's
    person trips and the mode choice splits it as usual. With time bands, the window's ``hours`` clock
    hours from ``first_hour`` (by default the busiest hour; past 23 the day continues at 0) are
    used, and an hour of the window without any trip is an error; a matrix without hours is used whole
    in every hour. Trips with one end outside the twin's zones (zone ``outside``) are kept apart.
    """
    if table is None or table.empty:
        raise DemandError(
            "od_source = 'phone' but the twin has no phone-based OD matrix (a source of kind 'mobility')",
            field="od_source",
        )
    clock = pd.to_numeric(table["hour"], errors="coerce")
    if clock.notna().any():
        by_hour = table.groupby(clock)["trips"].sum()
        first = first_hour if first_hour is not None else int(by_hour.index[int(by_hour.to_numpy().argmax())])
        wanted = [(first + h) % HOURS_PER_DAY for h in range(hours)]
        chosen = [table[clock.eq(hour).to_numpy()] for hour in wanted]
        for hour, frame in zip(wanted, chosen, strict=True):
            if frame.empty:
                raise DemandError(f"the phone OD matrix has no trips in hour {hour}", field="phone_od_hour")
        label = f"the phone-based OD matrix (table mobility_od), hour {first}:00"
        if hours > 1:
            label = f"the phone-based OD matrix (table mobility_od), the {hours} hours from {first}:00"
    elif first_hour is not None:
        raise DemandError(
            "the phone OD matrix has no hours; leave phone_od_hour unset", field="phone_od_hour"
        )
    else:
        first, chosen = None, [table] * hours
        label = "the phone-based OD matrix (table mobility_od), no time bands"
    parts = [_phone_hour(frame, zone_ids) for frame in chosen]
    return PhoneHours(
        first, tuple(p[0] for p in parts), tuple(p[1] for p in parts), tuple(p[2] for p in parts), label
    )


def _phone_hour(frame: pd.DataFrame, zone_ids: Sequence[str]) -> tuple[OdMatrix, FloatMatrix, FloatMatrix]:
    """One hour's trips within the zones, and its trips from outside to and from each zone to outside."""
    index = {z: i for i, z in enumerate(zone_ids)}
    origin = frame["origin"].astype(str)
    destination = frame["destination"].astype(str)
    trips = frame["trips"].to_numpy(dtype=float)
    starts_outside, ends_outside = origin.eq(OUTSIDE).to_numpy(), destination.eq(OUTSIDE).to_numpy()
    within = ~(starts_outside | ends_outside)
    from_outside, to_outside = starts_outside & ~ends_outside, ends_outside & ~starts_outside
    origins, destinations = origin.map(index), destination.map(index)
    if origins[~starts_outside].isna().any() or destinations[~ends_outside].isna().any():
        raise DemandError(
            "the phone OD matrix names zones the twin lacks: rebuild the twin", field="mobility_od"
        )
    matrix = np.zeros((len(index), len(index)))
    np.add.at(matrix, (origins[within].to_numpy(int), destinations[within].to_numpy(int)), trips[within])
    inbound, outbound = np.zeros(len(index)), np.zeros(len(index))
    np.add.at(inbound, destinations[from_outside].to_numpy(int), trips[from_outside])
    np.add.at(outbound, origins[to_outside].to_numpy(int), trips[to_outside])
    return OdMatrix(tuple(zone_ids), matrix), inbound, outbound


def with_origin_totals(od: OdMatrix, totals: FloatMatrix) -> OdMatrix:
    """``od`` with each origin's row scaled to ``totals`` (trips per origin, e.g. the phone matrix's).

    The destinations keep ``od``'s shares (the gravity model as the distribution, the phone data as the
    productions). A row whose total is 0 (no phone trips from that origin: its cells were all under k,
    or it has no data) keeps ``od``'s trips; a target for a row ``od`` leaves empty cannot be placed.
    """
    sums = od.trips.sum(axis=1)
    factor = np.where((totals > 0) & (sums > 0), totals / np.where(sums > 0, sums, 1.0), 1.0)
    return OdMatrix(od.zones, od.trips * factor[:, None])


# ------------------------------------------------------------------------------- interventions on demand


def add_event(
    od: OdMatrix,
    zones: gpd.GeoDataFrame,
    location_xy: tuple[float, float],
    trips: float,
    *,
    direction: Literal["to", "from", "both"] = "to",
) -> OdMatrix:
    """An event's extra person trips: to (or from, or half each way) the zone holding ``location_xy``.

    ``location_xy`` is in the twin's CRS. The extra trips are spread over the other ends in proportion
    to the zone's existing trips in that direction (evenly when it has none), so an event draws people
    from where that place already draws them. Returns the extra trips only.
    """
    point = shapely.Point(location_xy)
    inside = np.flatnonzero(zones.geometry.contains(point).to_numpy())
    if len(inside) == 0:
        raise DemandError("the event location lies in no zone of the twin", field="scale_demand.at")
    target = int(inside[0])
    extra = np.zeros_like(od.trips)
    inbound_share = {"to": 1.0, "from": 0.0, "both": 0.5}[direction]
    extra[:, target] += _spread(od.trips[:, target]) * trips * inbound_share
    extra[target, :] += _spread(od.trips[target, :]) * trips * (1.0 - inbound_share)
    return OdMatrix(od.zones, extra)


def _spread(existing: FloatMatrix) -> FloatMatrix:
    total = float(existing.sum())
    return existing / total if total > 0 else np.full(len(existing), 1.0 / len(existing))


# ------------------------------------------------------------------------------------ concrete car trips


def zone_edges(
    zones: gpd.GeoDataFrame, edges: gpd.GeoDataFrame, present: set[str] | None = None
) -> dict[str, list[str]]:
    """Per zone, the car-usable edges whose midpoint lies inside it (optionally only ``present`` ones).

    These are where sampled car trips start and end; a zone without any has no car trips.
    """
    usable = edges[edges["car"].fillna(False).astype(bool)]
    if present is not None:
        usable = usable[usable["edge_id"].astype(str).isin(present)]
    mids = gpd.GeoDataFrame(
        {"edge_id": usable["edge_id"].astype(str).to_numpy()},
        geometry=usable.geometry.interpolate(0.5, normalized=True).to_numpy(),
        crs=edges.crs,
    )
    joined = gpd.sjoin(mids, zones[["zone_id", "geometry"]], predicate="within", how="inner")
    result: dict[str, list[str]] = {str(z): [] for z in zones["zone_id"]}
    for zone, edge_id in zip(joined["zone_id"].astype(str), joined["edge_id"], strict=True):
        result[zone].append(edge_id)
    return {z: sorted(ids) for z, ids in result.items()}


def sample_car_trips(
    vehicle_trips: OdMatrix,
    edges_by_zone: Mapping[str, Sequence[str]],
    *,
    seed: int,
    iteration: int = 0,
    begin_s: float = 0.0,
    end_s: float = 3600.0,
    prefix: str = "t",
) -> list[CarTrip]:
    """Concrete car trips for one seed: integer counts per OD pair, departure times and edges.

    Fractional cell values are rounded stochastically (floor plus one with probability equal to the
    fraction), departures are uniform over ``[begin_s, end_s)``, and start/end edges are drawn uniformly
    among the zone's car edges (never the same edge for start and end). The same ``seed`` and
    ``iteration`` always give the same trips; pairs whose zone has no car edge are skipped. Trip ids are
    ``<prefix><origin index>_<destination index>_<n>`` (see :func:`trip_pair`).
    """
    rng = np.random.default_rng([seed, iteration, zlib.crc32(prefix.encode())])
    trips: list[CarTrip] = []
    matrix = vehicle_trips.trips
    noise = rng.random(matrix.shape)
    counts = np.floor(matrix).astype(np.int64) + (noise < matrix - np.floor(matrix))
    for i, j in zip(*np.nonzero(counts), strict=True):
        sources = list(edges_by_zone.get(vehicle_trips.zones[i], ()))
        sinks = list(edges_by_zone.get(vehicle_trips.zones[j], ()))
        if not sources or not sinks or (len(sources) == 1 and sources == sinks):
            continue
        for _ in range(int(counts[i, j])):
            origin = sources[int(rng.integers(len(sources)))]
            choices = [edge for edge in sinks if edge != origin] or sinks
            destination = choices[int(rng.integers(len(choices)))]
            if destination == origin:  # the only sink is the origin: start elsewhere in the zone
                origin = next(edge for edge in sources if edge != destination)
            depart = float(math.floor(begin_s + rng.random() * (end_s - begin_s)))
            trip_id = f"{prefix}{i}_{j}_{len(trips)}"
            trips.append(CarTrip(trip_id, origin, destination, depart))
    trips.sort(key=lambda t: (t.depart_s, t.trip_id))
    return trips


def trip_pair(trip_id: str) -> tuple[int, int]:
    """The (origin, destination) zone indexes encoded in a trip id made by :func:`sample_car_trips`."""
    found = _TRIP_ID.search(trip_id)
    if found is None:
        raise ValueError(f"not a sampled trip id: {trip_id!r}")
    return int(found.group(1)), int(found.group(2))
