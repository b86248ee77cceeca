"""The demand of one scenario as layers of person trips: the base matrix over the demand window
(hour by hour: the residents' hourly profile or the phone matrix's hours; grown or shrunk by
``scale_demand`` factors) plus one layer per event, each with the car edges its trips start and end on.

Also the demand-side effect of ``transit_frequency``: departure factors per stop for the mode choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import geopandas as gpd
from pyproj import Transformer

from civictwin.engines.traffic.demand import (
    HOUR_S,
    FloatMatrix,
    OdMatrix,
    PhoneHours,
    WindowOd,
    add_event,
    gravity_od,
    hour_factors,
    load_od_csv,
    phone_hours,
    profiled,
    stacked,
    window_hours,
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
    """Person trips departing within ``[begin_s, end_s)``; events get a layer of their own.

    ``od`` holds the layer's trips over the whole of it. With ``hour_shares`` (one per hour from
    ``begin_s``) hour ``h`` carries ``od × hour_shares[h]`` cell by cell, departing uniformly within
    that hour; without, the trips depart uniformly over the whole layer.
    """

    od: OdMatrix
    begin_s: float
    end_s: float
    prefix: str
    edges_by_zone: dict[str, list[str]]
    hour_shares: tuple[FloatMatrix, ...] = ()

    def slices(self, prefix: str | None = None) -> list[tuple[OdMatrix, float, float, str]]:
        """The trips to sample, each with its departure interval and trip-id prefix: the layer's
        ``prefix`` (or the given one) in its first hour, ``<prefix><h>h`` in hour ``h``."""
        first = self.prefix if prefix is None else prefix
        if not self.hour_shares:
            return [(self.od, self.begin_s, self.end_s, first)]
        return [
            (
                OdMatrix(self.od.zones, self.od.trips * share),
                self.begin_s + hour * HOUR_S,
                min(self.end_s, self.begin_s + (hour + 1) * HOUR_S),
                first if hour == 0 else f"{first}{hour}h",
            )
            for hour, share in enumerate(self.hour_shares)
        ]


@dataclass(frozen=True)
class NetworkFreeDemand:
    """What can be computed while netconvert runs: nothing here needs the SUMO net."""

    od: OdMatrix
    """The base person trips over the whole demand window."""
    hour_shares: tuple[FloatMatrix, ...]
    """Per hour of the window, the share of each cell of ``od`` departing in it."""
    phone: PhoneHours | None
    """The phone matrix's hours, whose trips with one end outside become gateway traffic."""
    first_hour: int
    """The clock hour the demand window starts at."""
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
    base = base_od(inputs, params)
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
        od=base.window.od,
        hour_shares=base.window.hour_shares,
        phone=base.phone,
        first_hour=base.first_hour,
        car_edges_by_zone=by_zone,
        car=car,
        service=level_of_service(inputs.zones, modified.edges, transit, params.mode_choice, car=car),
        transit_source=transit.source,
        demand_source=base.source,
    )


@dataclass(frozen=True)
class BaseDemand:
    """The base person trips over the demand window, where they came from in words, and the phone
    matrix's hours when they came from it (``od_source = "phone"`` or ``"phone_prior"``)."""

    window: WindowOd
    source: str
    first_hour: int
    """The clock hour the window starts at (the phone matrix's first hour, else
    ``calibration.start_hour``)."""
    phone: PhoneHours | None = None


def base_od(inputs: TwinInputs, params: TrafficParams) -> BaseDemand:
    """The base person trips over the demand window, hour by hour, with words saying where they came from.

    The user's OD matrix (``od_csv``) and the gravity model's are peak-hour matrices: hour ``h`` of
    the window carries :func:`~civictwin.engines.traffic.demand.hour_factors` times them (the
    residents' hourly profile, from ``calibration.start_hour`` o'clock). The phone-based matrix is
    taken hour by hour (from ``phone_od_hour``, by default its busiest hour); with ``phone_prior``
    each hour is the gravity model's at that clock hour's profile with its origin totals from that
    hour of the phone matrix. A last partial hour carries its share of the hour.
    """
    zone_ids = [str(z) for z in inputs.zones["zone_id"]]
    start = params.calibration.start_hour
    parts = window_hours(params.demand_window_s)
    profile = (
        f" over the {len(parts)} hours from {start}:00 along the hourly profile" if len(parts) > 1 else ""
    )
    if params.od_csv is not None:
        od = load_od_csv(inputs.twin_dir / params.od_csv, zone_ids).scaled(params.demand.scale)
        label = f"the OD matrix file {params.od_csv}{profile}"
        return BaseDemand(profiled(od, _factors(params, start)), label, start)
    if params.od_source == "gravity":
        gravity = gravity_od(inputs.zones, params.demand, inputs.edges)
        return BaseDemand(profiled(gravity, _factors(params, start)), f"the gravity model{profile}", start)
    phone = phone_hours(inputs.mobility_od, zone_ids, first_hour=params.phone_od_hour, hours=len(parts))
    label = phone.label + _outside_words(phone, parts, gateways=params.gateways.enabled)
    start = start if phone.first_hour is None else phone.first_hour
    scale = params.demand.scale
    if params.od_source == "phone":
        hourly = [od.scaled(scale * part) for od, part in zip(phone.hourly, parts, strict=True)]
        return BaseDemand(stacked(hourly), label, start, phone)
    gravity = gravity_od(inputs.zones, params.demand, inputs.edges)
    prior = [
        with_origin_totals(gravity.scaled(factor), od.trips.sum(axis=1) * scale * part)
        for od, factor, part in zip(phone.hourly, _factors(params, start), parts, strict=True)
    ]
    return BaseDemand(stacked(prior), f"the gravity model with origin totals from {label}", start, phone)


def _factors(params: TrafficParams, start_hour: int) -> list[float]:
    """The residents' hourly profile over the window from ``start_hour`` o'clock:
    :func:`~civictwin.engines.traffic.demand.hour_factors`."""
    return hour_factors(params.demand.hourly_profile, start_hour=start_hour, window_s=params.demand_window_s)


def _outside_words(phone: PhoneHours, parts: list[float], *, gateways: bool) -> str:
    """What became of the phone trips with one end outside the area, in words ('' when none)."""
    trips = sum(
        part * float(a.sum() + b.sum())
        for a, b, part in zip(phone.from_outside, phone.to_outside, parts, strict=True)
    )
    if trips <= 0:
        return ""
    if gateways:
        return f"; its {trips:,.1f} trips with one end outside the area enter or leave through the gateways"
    return f"; {trips:,.1f} trips with one end outside the area left out"


def demand_layers(
    inputs: TwinInputs,
    modified: ModifiedNetwork,
    params: TrafficParams,
    od: OdMatrix,
    by_zone: dict[str, list[str]],
    hour_shares: tuple[FloatMatrix, ...] = (),
) -> tuple[DemandLayer, ...]:
    """The base layer (scaled by each growth factor, in file order; ``hour_shares`` per hour of the
    window) followed by one layer per event."""
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
    return (DemandLayer(od, 0.0, window, "t", by_zone, hour_shares), *events)


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
