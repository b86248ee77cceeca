"""The demand of one scenario as layers of person trips: the base matrix (grown or shrunk by
``scale_demand`` factors) plus one layer per event, each with the car edges its trips start and end on.

Also the demand-side effect of ``transit_frequency``: departure factors per stop for the mode choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import geopandas as gpd
from pyproj import Transformer

from civictwin.engines.traffic.demand import (
    OdMatrix,
    add_event,
    gravity_od,
    load_od_csv,
    phone_od,
    with_origin_totals,
    zone_edges,
)
from civictwin.engines.traffic.edits import ModifiedNetwork
from civictwin.engines.traffic.inputs import TwinInputs
from civictwin.engines.traffic.interventions import ScaleDemand, TransitFrequency
from civictwin.engines.traffic.modechoice import (
    CarPaths,
    LevelOfService,
    car_paths,
    level_of_service,
    transit_access,
)
from civictwin.engines.traffic.params import TrafficParams
from civictwin.errors import ScenarioError
from civictwin.scenarios.spec import Scenario


@dataclass(frozen=True)
class DemandLayer:
    """Person trips departing uniformly within ``[begin_s, end_s)``; events get a layer of their own."""

    od: OdMatrix
    begin_s: float
    end_s: float
    prefix: str
    edges_by_zone: dict[str, list[str]]


@dataclass(frozen=True)
class NetworkFreeDemand:
    """What can be computed while netconvert runs: nothing here needs the SUMO net."""

    od: OdMatrix
    car_edges_by_zone: dict[str, list[str]]
    car: CarPaths
    service: LevelOfService
    """Free-flow service before zones without a simulated car edge are barred from car trips."""
    transit_source: str
    demand_source: str
    """In words, where the base person-trip matrix came from (gravity model, OD file, phone data)."""


def network_free_demand(
    inputs: TwinInputs, scenario: Scenario, modified: ModifiedNetwork, params: TrafficParams
) -> NetworkFreeDemand:
    """The base OD matrix, each zone's car edges, car paths and the free-flow level of service."""
    od, demand_source = base_od(inputs, params)
    by_zone = zone_edges(inputs.zones, modified.edges, present=set(modified.car_edges))
    transit = transit_access(
        inputs.zones,
        inputs.stops,
        inputs.stop_frequency,
        params.mode_choice,
        stop_factors(inputs, scenario, modified),
    )
    car = car_paths(inputs.zones, modified.edges)
    return NetworkFreeDemand(
        od=od,
        car_edges_by_zone=by_zone,
        car=car,
        service=level_of_service(inputs.zones, modified.edges, transit, params.mode_choice, car=car),
        transit_source=transit.source,
        demand_source=demand_source,
    )


def base_od(inputs: TwinInputs, params: TrafficParams) -> tuple[OdMatrix, str]:
    """The user's OD matrix (``od_csv``), the phone-based one, the gravity model's, or the gravity model's
    rows scaled to the phone-based origin totals (person trips per hour), with words saying which."""
    zone_ids = [str(z) for z in inputs.zones["zone_id"]]
    if params.od_csv is not None:
        od = load_od_csv(inputs.twin_dir / params.od_csv, zone_ids).scaled(params.demand.scale)
        return od, f"the OD matrix file {params.od_csv}"
    if params.od_source == "gravity":
        return gravity_od(inputs.zones, params.demand, inputs.edges), "the gravity model"
    phone, label = phone_od(inputs.mobility_od, zone_ids, hour=params.phone_od_hour)
    if params.od_source == "phone":
        return phone.scaled(params.demand.scale), label
    gravity = gravity_od(inputs.zones, params.demand, inputs.edges)
    totals = phone.trips.sum(axis=1) * params.demand.scale
    prior = f"the gravity model with origin totals from {label}"
    return with_origin_totals(gravity, totals), prior


def demand_layers(
    inputs: TwinInputs,
    modified: ModifiedNetwork,
    params: TrafficParams,
    od: OdMatrix,
    by_zone: dict[str, list[str]],
) -> tuple[DemandLayer, ...]:
    """The base layer (scaled by each growth factor, in file order) followed by one layer per event."""
    window = params.demand_window_s
    events: list[DemandLayer] = []
    to_twin = Transformer.from_crs("EPSG:4326", inputs.crs, always_xy=True)
    for item in (i for i in modified.demand if isinstance(i, ScaleDemand)):
        if item.factor is not None:
            od = od.scaled(item.factor)
            continue
        assert item.at is not None and item.extra_trips is not None  # checked by the scenario model
        xy = to_twin.transform(*item.at)
        extra = add_event(od, inputs.zones, xy, float(item.extra_trips), direction=item.direction)
        events.append(
            DemandLayer(
                od=extra,
                begin_s=item.begin_s,
                end_s=item.end_s if item.end_s is not None else window,
                prefix=f"e{len(events)}x",
                edges_by_zone=_event_edges(inputs, modified, by_zone, xy, item.radius_m),
            )
        )
    return (DemandLayer(od, 0.0, window, "t", by_zone), *events)


def _event_edges(
    inputs: TwinInputs,
    modified: ModifiedNetwork,
    by_zone: dict[str, list[str]],
    xy: tuple[float, float],
    radius_m: float,
) -> dict[str, list[str]]:
    """Car edges of the event's zone narrowed to those within ``radius_m`` of the event (if any are)."""
    from shapely.geometry import Point

    point = Point(xy)
    zone = str(inputs.zones.loc[inputs.zones.geometry.contains(point), "zone_id"].iloc[0])
    edges: gpd.GeoDataFrame = modified.edges.set_index(modified.edges["edge_id"].astype(str))
    candidates = by_zone[zone]
    near = [e for e in candidates if edges.geometry.loc[e].distance(point) <= radius_m]
    return {**by_zone, zone: near or candidates}


def stop_factors(
    inputs: TwinInputs, scenario: Scenario, modified: ModifiedNetwork
) -> dict[tuple[str, str], float]:
    """Departure factors per (feed, stop) from ``transit_frequency`` interventions.

    A route running ``factor`` times as often changes a stop's departures by ``(factor - 1)`` times that
    route's share of the stop's scheduled trips.
    """
    wanted = [i for i in modified.demand if isinstance(i, TransitFrequency)]
    if not wanted:
        return {}
    routes = inputs.stop_routes
    if routes is None or routes.empty:
        raise ScenarioError(
            "transit_frequency needs the twin's GTFS tables (none found)", path=scenario.origin
        )
    factors: dict[tuple[str, str], float] = {}
    per_stop = routes.groupby(["feed", "stop_id"])["trips"].sum()
    for item in wanted:
        match = routes[
            (routes["route_short_name"].astype(str) == item.route)
            | (routes["route_id"].astype(str) == item.route)
        ]
        if match.empty:
            raise ScenarioError(
                f"transit_frequency: route '{item.route}' is not in the twin's GTFS routes",
                path=scenario.origin,
                field="route",
            )
        share = match.groupby(["feed", "stop_id"])["trips"].sum() / per_stop
        for key, value in share.dropna().items():
            feed, stop = cast(tuple[str, str], key)
            factors[(feed, stop)] = factors.get((feed, stop), 1.0) + (item.factor - 1.0) * float(value)
    return factors
