"""Mode choice: a multinomial logit over car, public transport, bike and walk, per OD pair.

Each mode's utility is an alternative-specific constant plus a (negative) coefficient times its
*generalised time* in minutes: weighted times (waiting and walking to a stop weigh more than sitting in
a vehicle) plus money costs turned into minutes with the value of time. Car times come from the traffic
simulation (mean trip durations per OD pair, else shortest paths over the simulated edge speeds), so a
closure that slows cars shifts trips to other modes. Transit times come from the twin's GTFS tables when
present (waiting = half the headway at the best stop within reach), otherwise from a documented fallback.

Parameters and their sources: ``docs/methods-demand.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from civictwin.engines.traffic.demand import (
    FloatMatrix,
    IntArray,
    ModeGraph,
    OdMatrix,
    crowfly_distances,
    intrazonal_distance_m,
    mode_graph,
    network_distances,
    path_costs,
    zone_path_costs,
)

Mode = Literal["car", "pt", "bike", "walk"]
MODES: tuple[Mode, ...] = ("car", "pt", "bike", "walk")

_DEFAULT_SPEED_KMH = 30.0
_MIN_OBSERVED_SPEED_MS = 0.5


class ModeChoiceParams(BaseModel):
    """Utility parameters and speed assumptions (defaults and sources: ``docs/methods-demand.md``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    beta_time_per_min: Annotated[float, Field(lt=0)] = -0.05
    """Utility of one minute of in-vehicle time; every other term is expressed in such minutes."""
    value_of_time_eur_h: Annotated[float, Field(gt=0)] = 10.0
    """Turns money into time: one euro costs 60 / value_of_time minutes."""
    wait_weight: Annotated[float, Field(gt=0)] = 1.5
    """A minute waiting for transit, in in-vehicle minutes."""
    access_walk_weight: Annotated[float, Field(gt=0)] = 1.5
    """A minute walking to/from a stop or a parked car, in in-vehicle minutes."""
    walk_weight: Annotated[float, Field(gt=0)] = 1.5
    """A minute of walking as the main mode, in in-vehicle minutes."""
    bike_weight: Annotated[float, Field(gt=0)] = 1.2
    """A minute of cycling, in in-vehicle minutes."""
    asc_car: float = 0.0
    """Alternative-specific constants (car is the reference)."""
    asc_pt: float = 0.0
    asc_bike: float = -1.5
    asc_walk: float = 0.5
    car_cost_per_km_eur: Annotated[float, Field(ge=0)] = 0.20
    parking_cost_eur: Annotated[float, Field(ge=0)] = 3.0
    car_access_min: Annotated[float, Field(ge=0)] = 3.0
    """Finding a parking place and walking from it."""
    pt_fare_eur: Annotated[float, Field(ge=0)] = 3.0
    car_occupancy: Annotated[float, Field(ge=1)] = 1.2
    """Persons per car: turns car person trips into vehicle trips."""
    walk_speed_kmh: Annotated[float, Field(gt=0)] = 4.8
    bike_speed_kmh: Annotated[float, Field(gt=0)] = 15.0
    cycle_lane_time_factor: Annotated[float, Field(gt=0, le=1)] = 1.0
    """Perceived cycling minutes per minute ridden where bikes ride apart from cars (a cycle lane taken
    from a car lane, a cycleway): 1 (no effect) unless a city sets a value from a route-choice study
    (docs/methods-transit.md, "Cycle lanes")."""
    pt_speed_kmh: Annotated[float, Field(gt=0)] = 18.0
    """Average in-vehicle speed of urban buses and trams, stops included."""
    pt_detour_factor: Annotated[float, Field(ge=1)] = 1.3
    """Transit line length over the shortest walking path."""
    pt_access_max_m: Annotated[float, Field(gt=0)] = 800.0
    """Farthest stop a zone centre uses; zones without one have no transit."""
    pt_max_wait_min: Annotated[float, Field(gt=0)] = 30.0
    pt_fallback_headway_min: Annotated[float, Field(gt=0)] = 10.0
    """Headway assumed everywhere when the twin has no GTFS tables."""
    pt_fallback_access_m: Annotated[float, Field(ge=0)] = 300.0
    pt_transfer_penalty_min: Annotated[float, Field(ge=0)] = 15.0
    """Each boarding after the first, in in-vehicle minutes, besides its walk and wait (the "pure transfer
    penalty"; Jara-Díaz et al. 2022 propose 13–18 minutes for planning): lines only."""
    peak_hour: Annotated[int, Field(ge=0, le=30)] = 8
    """Hour of the GTFS service day whose departures set the headways."""

    def asc(self, mode: Mode) -> float:
        """The constant of ``mode``."""
        return float(getattr(self, f"asc_{mode}"))

    def minutes_per_eur(self) -> float:
        """Minutes of in-vehicle time worth one euro."""
        return 60.0 / self.value_of_time_eur_h


@dataclass(frozen=True)
class LevelOfService:
    """Times (minutes) and car distances per OD pair; ``inf`` marks a mode unavailable for the pair."""

    zones: tuple[str, ...]
    car_min: FloatMatrix
    car_km: FloatMatrix
    pt_in_vehicle_min: FloatMatrix
    pt_wait_min: FloatMatrix
    pt_access_min: FloatMatrix
    walk_min: FloatMatrix
    bike_min: FloatMatrix
    car_availability: FloatMatrix | None = None
    """Share (0–1) of each origin zone's travellers with a car available; None: everyone has one."""
    pt_transfer_min: FloatMatrix | None = None
    """Transfer penalties (in-vehicle minutes) of the transit path over the simulated lines; None: no
    line-based paths (docs/methods-transit.md)."""

    def with_car_times(self, car_min: FloatMatrix) -> LevelOfService:
        """The same service with new car times (after a simulation)."""
        return dataclasses.replace(self, car_min=car_min)

    def with_pt_speed(self, simulated_kmh: float, *, planned_kmh: float) -> LevelOfService:
        """The same service with transit in-vehicle times at the simulated bus speed instead of the
        planned ``pt_speed_kmh`` (times scale with ``planned_kmh / simulated_kmh``)."""
        factor = planned_kmh / simulated_kmh
        return dataclasses.replace(self, pt_in_vehicle_min=self.pt_in_vehicle_min * factor)

    def with_bike_speed(self, simulated_kmh: float, *, planned_kmh: float) -> LevelOfService:
        """The same service with cycling times at the simulated bike speed instead of the planned
        ``bike_speed_kmh`` (times scale with ``planned_kmh / simulated_kmh``)."""
        return dataclasses.replace(self, bike_min=self.bike_min * (planned_kmh / simulated_kmh))


# --------------------------------------------------------------------------------------------- the logit


def generalised_minutes(los: LevelOfService, params: ModeChoiceParams) -> dict[Mode, FloatMatrix]:
    """Each mode's generalised time in in-vehicle minutes (``inf`` where unavailable)."""
    per_eur = params.minutes_per_eur()
    car = (
        los.car_min
        + params.access_walk_weight * params.car_access_min
        + per_eur * (params.car_cost_per_km_eur * los.car_km + params.parking_cost_eur)
    )
    pt = (
        los.pt_in_vehicle_min
        + params.wait_weight * los.pt_wait_min
        + params.access_walk_weight * los.pt_access_min
        + per_eur * params.pt_fare_eur
    )
    if los.pt_transfer_min is not None:
        pt = pt + los.pt_transfer_min
    return {
        "car": car,
        "pt": pt,
        "bike": params.bike_weight * los.bike_min,
        "walk": params.walk_weight * los.walk_min,
    }


def utilities(los: LevelOfService, params: ModeChoiceParams) -> dict[Mode, FloatMatrix]:
    """Systematic utility per mode and OD pair (``-inf`` where the mode is unavailable)."""
    return {
        mode: np.where(np.isfinite(minutes), params.asc(mode) + params.beta_time_per_min * minutes, -np.inf)
        for mode, minutes in generalised_minutes(los, params).items()
    }


def logit_shares(utility: Mapping[Mode, FloatMatrix]) -> dict[Mode, FloatMatrix]:
    """Logit probabilities ``exp(U_m) / Σ_k exp(U_k)`` per OD pair (all zero when no mode is available)."""
    stacked = np.stack([utility[m] for m in MODES])
    best = stacked.max(axis=0)
    safe_best = np.where(np.isfinite(best), best, 0.0)
    weights = np.exp(stacked - safe_best)  # exp(-inf) = 0 for unavailable modes
    total = weights.sum(axis=0)
    shares = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
    return {mode: shares[k] for k, mode in enumerate(MODES)}


def mode_shares(los: LevelOfService, params: ModeChoiceParams) -> dict[Mode, FloatMatrix]:
    """The logit split of every OD pair given its level of service.

    With ``los.car_availability`` (share ``a`` per origin zone) the travellers with a car choose among
    all modes and the others among the rest: ``a · P(m | car) + (1 − a) · P(m | no car)``
    (docs/methods-sociodemographics.md).
    """
    utility = utilities(los, params)
    with_car = logit_shares(utility)
    if los.car_availability is None:
        return with_car
    without_car = logit_shares({**utility, "car": np.full_like(utility["car"], -np.inf)})
    available = np.clip(np.asarray(los.car_availability, dtype=float), 0.0, 1.0)[:, None]
    return {m: available * with_car[m] + (1.0 - available) * without_car[m] for m in MODES}


def msa_update(
    previous: Mapping[Mode, FloatMatrix], new: Mapping[Mode, FloatMatrix], iteration: int
) -> dict[Mode, FloatMatrix]:
    """Method of successive averages: ``s_k = s_{k-1} + (new - s_{k-1}) / (k + 1)`` (iteration k from 0)."""
    step = 1.0 / (iteration + 1)
    return {m: previous[m] + step * (new[m] - previous[m]) for m in MODES}


def split_by_mode(od: OdMatrix, shares: Mapping[Mode, FloatMatrix]) -> dict[Mode, OdMatrix]:
    """Person trips per mode."""
    return {m: OdMatrix(od.zones, od.trips * shares[m]) for m in MODES}


def modal_split(od: OdMatrix, shares: Mapping[Mode, FloatMatrix]) -> dict[Mode, float]:
    """Share of all person trips per mode (zeros when there is no demand)."""
    totals = {m: float((od.trips * shares[m]).sum()) for m in MODES}
    grand = sum(totals.values())
    return {m: (v / grand if grand > 0 else 0.0) for m, v in totals.items()}


# -------------------------------------------------------------------------------------- level of service


@dataclass(frozen=True)
class CarPaths:
    """The car network between zones, built once so each simulation round only re-runs one search.

    Holds the car graph, each graph edge's free-flow speed (m/s), the graph node nearest each zone
    centre, the free-flow zone-to-zone seconds, the car distances (km; they do not depend on speeds)
    and the intrazonal seconds at the median free-flow speed.
    """

    graph: ModeGraph
    free_speed_ms: FloatMatrix
    origins: IntArray
    free_s: FloatMatrix
    km: FloatMatrix
    intrazonal_s: FloatMatrix

    def minutes(
        self,
        *,
        edge_speed_ms: Mapping[str, float] | None = None,
        observed_min: FloatMatrix | None = None,
        has_car_edges: np.ndarray | None = None,
    ) -> FloatMatrix:
        """Car minutes per OD pair (see :func:`car_times` for how the arguments enter)."""
        seconds = self.free_s.copy()
        if edge_speed_ms:
            speed = self.free_speed_ms.copy()
            simulated = np.array([edge_speed_ms.get(e, np.nan) for e in self.graph.edge_ids], dtype=float)
            ok = np.isfinite(simulated) & (simulated > _MIN_OBSERVED_SPEED_MS)
            speed[ok] = simulated[ok]
            seconds = path_costs(self.graph, self.origins, self.graph.length_m / speed)
            np.fill_diagonal(seconds, self.intrazonal_s)
        minutes = seconds / 60.0
        if observed_min is not None:
            minutes = np.where(np.isfinite(observed_min), observed_min, minutes)
        if has_car_edges is not None:
            blocked = ~np.asarray(has_car_edges, dtype=bool)
            minutes[blocked, :] = np.inf
            minutes[:, blocked] = np.inf
        return minutes


def free_speeds_ms(graph: ModeGraph, edges: pd.DataFrame) -> FloatMatrix:
    """Each edge of ``graph``'s free-flow speed (m/s): its ``speed_kmh`` in ``edges``, 30 km/h where
    missing."""
    unique = edges.drop_duplicates("edge_id")
    by_id = unique.set_index(unique["edge_id"].astype(str))
    speeds: FloatMatrix = (
        by_id.loc[list(graph.edge_ids), "speed_kmh"].fillna(_DEFAULT_SPEED_KMH).to_numpy(float)
    )
    return speeds / 3.6


def car_paths(zones: gpd.GeoDataFrame, edges: gpd.GeoDataFrame) -> CarPaths:
    """The :class:`CarPaths` of ``edges`` (free-flow speed: ``speed_kmh``, 30 km/h where missing)."""
    graph = mode_graph(edges, "car")
    free = free_speeds_ms(graph, edges)
    origins = graph.nearest_nodes(zones.geometry.centroid)
    intrazonal = intrazonal_distance_m(zones)
    intrazonal_s = intrazonal / float(np.median(free))
    seconds = path_costs(graph, origins, graph.length_m / free)
    np.fill_diagonal(seconds, intrazonal_s)
    metres = np.maximum(path_costs(graph, origins, graph.length_m), crowfly_distances(zones))
    np.fill_diagonal(metres, intrazonal)
    return CarPaths(graph, free, origins, seconds, metres / 1000.0, intrazonal_s)


def car_times(
    zones: gpd.GeoDataFrame,
    edges: gpd.GeoDataFrame,
    *,
    edge_speed_ms: Mapping[str, float] | None = None,
    observed_min: FloatMatrix | None = None,
    has_car_edges: np.ndarray | None = None,
) -> tuple[FloatMatrix, FloatMatrix]:
    """Car minutes and kilometres per OD pair.

    Edge times are ``length / speed`` with the simulated mean speed where the edge saw traffic (and
    moved faster than 0.5 m/s), otherwise its free-flow speed. Pairs with simulated trips use their
    observed mean duration (``observed_min``, NaN elsewhere). Zones without a car edge
    (``has_car_edges`` false) cannot start or end a car trip. Repeated calls on one network are
    cheaper through :func:`car_paths` and :meth:`CarPaths.minutes`.
    """
    paths = car_paths(zones, edges)
    minutes = paths.minutes(
        edge_speed_ms=edge_speed_ms, observed_min=observed_min, has_car_edges=has_car_edges
    )
    return minutes, paths.km


@dataclass(frozen=True)
class TransitAccess:
    """Per zone: minutes to walk to the stop used and minutes of waiting there (``inf``: no transit)."""

    access_min: FloatMatrix
    wait_min: FloatMatrix
    source: str
    """``gtfs`` or ``fallback``: where the numbers came from, for the report."""


def transit_access(
    zones: gpd.GeoDataFrame,
    stops: gpd.GeoDataFrame | None,
    stop_departures: pd.DataFrame | None,
    params: ModeChoiceParams,
    stop_factors: Mapping[tuple[str, str], float] | None = None,
) -> TransitAccess:
    """Walk time to, and wait at, the most frequent stop within reach of each zone centre.

    ``stop_departures`` has ``feed``, ``stop_id``, ``hour``, ``departures`` (the twin's
    ``transit_stop_frequency``); ``stop_factors`` scales a stop's departures (transit-frequency
    interventions), keyed by (feed, stop_id). Waiting is half the headway ``60 / departures``, capped at
    ``pt_max_wait_min``. Without GTFS tables every zone gets the fallback headway and access distance.
    """
    walk_m_per_min = params.walk_speed_kmh * 1000.0 / 60.0
    n = len(zones)
    if stops is None or stop_departures is None or stops.empty:
        return TransitAccess(
            access_min=np.full(n, params.pt_fallback_access_m / walk_m_per_min),
            wait_min=np.full(n, min(params.pt_fallback_headway_min / 2.0, params.pt_max_wait_min)),
            source="fallback",
        )
    hourly = stop_departures[stop_departures["hour"] == params.peak_hour]
    departures = hourly.groupby(["feed", "stop_id"])["departures"].sum()
    if stop_factors:
        factors = pd.Series(stop_factors, dtype=float).reindex(departures.index).fillna(1.0)
        departures = departures * factors
    served = stops.join(departures.rename("departures"), on=["feed", "stop_id"], how="inner")
    served = served[served["departures"] > 0]
    access = np.full(n, np.inf)
    wait = np.full(n, np.inf)
    centres = zones.geometry.centroid
    for k, centre in enumerate(centres):
        distance = served.geometry.distance(centre)
        near = served[distance <= params.pt_access_max_m]
        if near.empty:
            continue
        best = near["departures"].idxmax()
        access[k] = float(distance.loc[best]) * params.pt_detour_factor / walk_m_per_min
        wait[k] = min(30.0 / float(near.loc[best, "departures"]), params.pt_max_wait_min)
    return TransitAccess(access_min=access, wait_min=wait, source="gtfs")


def level_of_service(
    zones: gpd.GeoDataFrame,
    edges: gpd.GeoDataFrame,
    transit: TransitAccess,
    params: ModeChoiceParams,
    *,
    has_car_edges: np.ndarray | None = None,
    car: CarPaths | None = None,
) -> LevelOfService:
    """Free-flow level of service: the start of the simulation ↔ mode-choice loop.

    ``car``: the :func:`car_paths` of ``edges`` if already built (they are computed otherwise).
    """
    walk_m = network_distances(zones, edges, "walk")
    bike_m = network_distances(zones, edges, "bike") if bool(edges["bike"].fillna(False).any()) else walk_m
    bike_m = bike_m * perceived_cycling_share(zones, edges, params.cycle_lane_time_factor)
    car = car or car_paths(zones, edges)
    car_min, car_km = car.minutes(has_car_edges=has_car_edges), car.km
    pt_ivt = walk_m * params.pt_detour_factor / (params.pt_speed_kmh * 1000.0 / 60.0)
    np.fill_diagonal(pt_ivt, np.inf)  # nobody takes transit inside one zone
    access = transit.access_min[:, None] + transit.access_min[None, :]
    wait = np.broadcast_to(transit.wait_min[:, None], pt_ivt.shape).copy()
    return LevelOfService(
        zones=tuple(str(z) for z in zones["zone_id"]),
        car_min=car_min,
        car_km=car_km,
        pt_in_vehicle_min=pt_ivt,
        pt_wait_min=wait,
        pt_access_min=access,
        walk_min=walk_m / (params.walk_speed_kmh * 1000.0 / 60.0),
        bike_min=bike_m / (params.bike_speed_kmh * 1000.0 / 60.0),
        car_availability=zone_car_availability(zones),
    )


def separate_from_cars(edges: gpd.GeoDataFrame) -> pd.Series:
    """Which edges let bikes ride apart from cars: a cycle lane (``cycle_lanes`` > 0, a lane taken from
    cars) or a cycleway (OSM ``highway = cycleway``)."""
    lanes = pd.to_numeric(edges.get("cycle_lanes", pd.Series(0, index=edges.index)), errors="coerce")
    cycleway = edges.get("highway", pd.Series("", index=edges.index)).astype(str) == "cycleway"
    apart: pd.Series = (lanes.fillna(0) > 0) | cycleway
    return apart


def perceived_cycling_share(zones: gpd.GeoDataFrame, edges: gpd.GeoDataFrame, factor: float) -> FloatMatrix:
    """Per OD pair, the perceived over the ridden length of the best bike path: each metre apart from
    cars (:func:`separate_from_cars`) counts ``factor`` metres, the rest one; the path may change to use
    such streets. 1 everywhere when ``factor`` is 1, on the diagonal, and for pairs without a bike path.
    """
    n = len(zones)
    bikes = edges["bike"].fillna(False).astype(bool)
    apart = separate_from_cars(edges) & bikes
    if factor == 1.0 or not bool(apart.any()):
        return np.ones((n, n))
    graph = mode_graph(edges, "bike")
    flags = dict(zip(edges["edge_id"].astype(str), apart, strict=True))
    weights = np.where([flags[e] for e in graph.edge_ids], factor, 1.0) * graph.length_m
    ridden = zone_path_costs(graph, zones, graph.length_m)
    perceived = zone_path_costs(graph, zones, weights)
    usable = np.isfinite(ridden) & np.isfinite(perceived) & (ridden > 0)
    share = np.divide(perceived, ridden, out=np.ones((n, n)), where=usable)
    np.fill_diagonal(share, 1.0)
    return share


def zone_car_availability(zones: gpd.GeoDataFrame) -> FloatMatrix | None:
    """The zones' ``car_availability`` (share 0–1, from ``[sociodemographics]``); zones without a value
    count as all having a car; None when the column is absent."""
    if "car_availability" not in zones.columns:
        return None
    shares = pd.to_numeric(zones["car_availability"], errors="coerce").fillna(1.0).clip(0.0, 1.0)
    return np.asarray(shares.to_numpy(dtype=float))
