"""A scenario made ready for its seeds: interventions applied, SUMO network built, demand and
free-flow service computed, each street placed in its analysis zone. Runs once per scenario."""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from civictwin.engines.traffic.busfiles import BusPlan
from civictwin.engines.traffic.demand import DemandError, OdMatrix, profile_ratios, zone_edges
from civictwin.engines.traffic.edits import ModifiedNetwork, apply_interventions, car_connected_edges
from civictwin.engines.traffic.gateways import (
    IN,
    OUT,
    Gateway,
    GatewayDemand,
    entering_gateways,
    find_gateways,
    gateway_demand,
    leaving_gateways,
    outside_vehicles,
    phone_flows,
    resolve_flows,
    scaled_demand,
    window_hours,
)
from civictwin.engines.traffic.inputs import TwinInputs, load_region
from civictwin.engines.traffic.interventions import TransitFrequency, TransitLine
from civictwin.engines.traffic.kpis import edge_zones
from civictwin.engines.traffic.layers import (
    DemandLayer,
    demand_layers,
    network_free_demand,
)
from civictwin.engines.traffic.modechoice import CarPaths, LevelOfService
from civictwin.engines.traffic.network import SumoNetwork, build_sumo_network
from civictwin.engines.traffic.params import TrafficParams
from civictwin.engines.traffic.region import (
    AreaBoundary,
    RegionalCells,
    regional_cells,
    regional_flows,
    regional_outside,
)
from civictwin.engines.traffic.transit import (
    GTFS_RUN_PREFIX,
    BusService,
    LineError,
    gtfs_service,
    line_service,
)
from civictwin.engines.traffic.transitpaths import LineTransit, transit_lines
from civictwin.errors import CivicTwinError, ScenarioError
from civictwin.model.mobility import Presence, peak_presence
from civictwin.scenarios.spec import Scenario, intervention_label

LINES_SOURCE = " + simulated lines"
"""Appended to the transit source when OD pairs take their times over the simulated lines."""


@dataclass(frozen=True)
class PreparedScenario:
    """Everything a seed of one scenario needs (picklable: it is sent to the worker processes)."""

    scenario: Scenario
    params: TrafficParams
    network: SumoNetwork
    zones: gpd.GeoDataFrame
    edges: gpd.GeoDataFrame
    changes: pd.DataFrame
    layers: tuple[DemandLayer, ...]
    has_car_edges: np.ndarray
    free_flow: LevelOfService
    car_paths: CarPaths
    transit_source: str
    placement: pd.DataFrame
    """``edge_id``, ``zone_id``, ``length_m``: the analysis zone of every street edge (its midpoint)."""
    gateways: GatewayDemand | None = None
    """Car trips per hour through the area's boundary, when ``[gateways]`` is enabled."""
    demand_source: str = "the gravity model"
    """Where the base person-trip matrix came from, in words (for the report's notes)."""
    calibration: dict[str, Any] | None = None
    """What the report shows of the calibration record the demand uses (None: uncalibrated)."""
    buses: BusPlan | None = None
    """The simulated transit runs (GTFS and new lines), when there are any."""
    line_transit: LineTransit | None = None
    """Their routes and headways for the transit times per OD pair, when there are runs."""
    bike_edges_by_zone: dict[str, list[str]] | None = None
    """Per zone, the simulated edges bikes may start and end on (``simulate_bikes`` only)."""
    presence: Presence | None = None
    """The most people the phone presence counts in the area in an hour of the window (None: no
    presence data for those hours), for the plausibility check."""
    first_hour: int = 8
    """The clock hour the demand window starts at (the phone matrix's first hour when the demand
    comes from it, else ``calibration.start_hour``)."""

    @property
    def person_trips(self) -> OdMatrix:
        """All layers together: the person trips over the whole demand window."""
        total = sum((layer.od.trips for layer in self.layers), np.zeros_like(self.layers[0].od.trips))
        return OdMatrix(self.layers[0].od.zones, total)


def with_od_factors(od: OdMatrix, factors: Sequence[tuple[str, str, float]]) -> OdMatrix:
    """``od`` with each (origin, destination, factor) cell multiplied; a zone ``od`` lacks is an error
    (the calibration was made for another zoning)."""
    if not factors:
        return od
    index = {zone: i for i, zone in enumerate(od.zones)}
    unknown = sorted({z for o, d, _ in factors for z in (o, d)} - set(index))
    if unknown:
        raise DemandError(
            f"the calibration names zone(s) {', '.join(unknown[:5])} the twin does not have: calibrate again",
            field="od_factors",
        )
    trips = od.trips.copy()
    for origin, destination, factor in factors:
        trips[index[origin], index[destination]] *= factor
    return OdMatrix(od.zones, trips)


def with_gateway_factors(demand: GatewayDemand, factors: Sequence[tuple[str, str, float]]) -> GatewayDemand:
    """``demand`` with each (start, end, factor) cell multiplied (:func:`scaled_demand`); a cell of a
    gateway the scenario does not use (its road closed) is skipped, a zone ``demand`` lacks is an
    error (the calibration was made for another zoning)."""
    if not factors:
        return demand
    names = set(demand.hourly[0].zones)
    unknown = sorted({z for s, e, _ in factors for z in (s, e) if not z.startswith((IN, OUT))} - names)
    if unknown:
        raise DemandError(
            f"the calibration names zone(s) {', '.join(unknown[:5])} the twin does not have: calibrate again",
            field="gateway_factors",
        )
    return scaled_demand(demand, {(s, e): f for s, e, f in factors})


def prepare_scenario(
    inputs: TwinInputs, scenario: Scenario, workdir: Path, params: TrafficParams
) -> PreparedScenario:
    """Apply the interventions, build the SUMO network and the demand of one scenario.

    The simulated edge set is the baseline's car edges for every scenario (a closed edge stays in the
    net with no car permission), so edge ids line up between scenarios; with ``simulate_bikes`` the
    baseline's bike edges too. The OD matrix is distributed on the baseline network: a plan changes
    how people travel, not where they go.
    """
    modified = apply_interventions(inputs.edges, scenario, crs=inputs.crs, zones=inputs.zones)
    carried = inputs.edges["car"].fillna(False).astype(bool)
    if params.simulate_bikes:  # the cycleways and contraflow directions bikes ride on too
        carried |= inputs.edges["bike"].fillna(False).astype(bool)
    simulated_ids = set(inputs.edges.loc[carried, "edge_id"].astype(str))
    simulated = modified.edges[modified.edges["edge_id"].astype(str).isin(simulated_ids)]
    service = bus_service(inputs, scenario, modified, params)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="netconvert") as pool:
        building = pool.submit(
            build_sumo_network,
            simulated,
            inputs.nodes,
            workdir,
            additionals=modified.additionals,
            count_edges=params.count_edges,
            reachable_from=modified.car_edges,
        )
        try:
            demand = network_free_demand(inputs, scenario, modified, params)
        except CivicTwinError:
            building.result()  # a broken network is reported first, as it is the first step
            raise
        network = building.result()
    usable = set(modified.car_edges) & set(network.edge_ids)
    by_zone = {zone: [e for e in ids if e in usable] for zone, ids in demand.car_edges_by_zone.items()}
    has_car = np.array([len(by_zone[str(z)]) > 0 for z in inputs.zones["zone_id"]])
    base = with_od_factors(demand.od, params.od_factors)
    if params.base_modes is not None:
        params.base_modes.check_zones(tuple(str(z) for z in base.zones))
    layers = demand_layers(inputs, modified, params, base, by_zone, demand.hour_shares)
    if sum(layer.od.total for layer in layers) <= 0:
        raise DemandError(
            "no trips to simulate: the zones have no residents or no destinations (check population, "
            "jobs_proxy_m2 and poi_* in the zones table, or give an OD matrix)",
            field="zones",
        )
    car_min = demand.car.minutes(has_car_edges=has_car)
    gateways = None
    if params.gateways.enabled:
        found = find_gateways(inputs.edges, boundary_m=params.gateways.boundary_m)
        # a one-way road cut by the boundary only leads into the connected network, or out of it
        entries, exits = modified.car_entries & network.edge_ids, modified.car_exits & network.edge_ids
        hours = len(window_hours(params.demand_window_s))
        ratios = profile_ratios(params.demand.hourly_profile, start_hour=demand.first_hour, hours=hours)
        flows = resolve_flows(found, params.gateway_flows, params.gateways, hours=hours, ratios=ratios)
        outside = None
        if demand.phone is not None:
            outside = outside_vehicles(
                demand.phone,
                scale=params.demand.scale,
                car_share=params.gateways.outside_car_share,
                occupancy=params.mode_choice.car_occupancy,
            )
            flows = phone_flows(found, flows, outside, usable=usable, entries=entries, exits=exits)
        regional = None
        if params.gateways.region is not None:
            regional = _regional_cells(inputs, params, modified, found, by_zone, usable, entries, exits)
            flows = regional_flows(flows, regional, ratios=ratios)
        # spread over the zones by the matrix before calibration: a calibration fits the gateway
        # matrix's cells on that spread (params.gateway_factors), so they give back what it fitted
        gateways = gateway_demand(
            found,
            demand.od.zones,
            demand.od.trips.sum(axis=1),
            demand.od.trips.sum(axis=0),
            by_zone,
            flows,
            usable=usable,
            entries=entries,
            exits=exits,
            window_s=params.demand_window_s,
            outside=outside,
            pattern=regional.cells if regional is not None else None,
            notes=(regional.note(),) if regional is not None else (),
        )
        gateways = with_gateway_factors(gateways, params.gateway_factors)
    simulated_service = service.keep_edges(network.edge_ids)
    free_flow = demand.service.with_car_times(car_min)
    line_transit = _line_transit(simulated_service, inputs, modified, params, free_flow)
    if line_transit is not None:
        free_flow = line_transit.applied(free_flow, inputs.zones, params.mode_choice)
    return PreparedScenario(
        scenario=scenario,
        params=params,
        network=network,
        zones=inputs.zones,
        edges=modified.edges,
        changes=modified.changes,
        layers=layers,
        has_car_edges=has_car,
        free_flow=free_flow,
        car_paths=demand.car,
        transit_source=demand.transit_source + (LINES_SOURCE if line_transit is not None else ""),
        placement=edge_zones(inputs.edges, inputs.zones),
        gateways=gateways,
        demand_source=demand.demand_source,
        buses=_bus_plan(simulated_service, modified, params),
        line_transit=line_transit,
        bike_edges_by_zone=_bike_edges(inputs, modified, network) if params.simulate_bikes else None,
        first_hour=demand.first_hour,
        presence=peak_presence(
            inputs.mobility_presence,
            [(demand.first_hour + h) % 24 for h in range(len(window_hours(params.demand_window_s)))],
        ),
    )


def _regional_cells(
    inputs: TwinInputs,
    params: TrafficParams,
    modified: ModifiedNetwork,
    found: Sequence[Gateway],
    by_zone: Mapping[str, Sequence[str]],
    usable: Set[str],
    entries: Set[str],
    exits: Set[str],
) -> RegionalCells:
    """The regional model's gateway trips on this scenario's open car edges (``[gateways] region``)."""
    assert params.gateways.region is not None
    outside = regional_outside(
        load_region(inputs.twin_dir, params.gateways.region),
        AreaBoundary(inputs.zones, inputs.edges, tuple(found)),
        demand=params.demand,
        vehicles_per_person=params.gateways.outside_car_share / params.mode_choice.car_occupancy,
    )
    open_edges = modified.edges[modified.edges["edge_id"].astype(str).isin(usable | entries | exits)]
    return regional_cells(
        outside,
        area_edges=open_edges,
        zones=inputs.zones,
        zone_open=np.array([bool(by_zone.get(str(z))) for z in inputs.zones["zone_id"]]),
        entering=[g.node for g in entering_gateways(found, usable, entries)],
        leaving=[g.node for g in leaving_gateways(found, usable, exits)],
    )


def bus_service(
    inputs: TwinInputs, scenario: Scenario, modified: ModifiedNetwork, params: TrafficParams
) -> BusService:
    """The scenario's transit runs: the twin's GTFS runs in the demand window (when ``[buses]`` is
    enabled and the twin has GTFS) and every new line's; a new line that cannot run is one line
    naming the file and the intervention. The window starts at ``mode_choice.peak_hour`` o'clock."""
    service = BusService()
    if params.buses.enabled and inputs.schedule is not None:
        service = gtfs_service(
            inputs.schedule,
            modified.edges,
            params.buses,
            clock_begin_s=params.mode_choice.peak_hour * 3600.0,
            window_s=params.demand_window_s,
        )
    for index, intervention in enumerate(scenario.interventions):
        if not isinstance(intervention, TransitLine):
            continue
        try:
            line = line_service(
                intervention,
                index,
                modified.edges,
                params.buses,
                crs=inputs.crs,
                window_s=params.demand_window_s,
            )
        except LineError as exc:
            raise ScenarioError(
                str(exc), path=scenario.origin, field=intervention_label(index, intervention)
            ) from None
        service = service.joined(line)
    return service


def _bike_edges(inputs: TwinInputs, modified: ModifiedNetwork, network: SumoNetwork) -> dict[str, list[str]]:
    """Per zone, the simulated edges a bike may start and end on: those in the largest strongly
    connected part of the bike network SUMO carries (elsewhere a bike could be stuck for good: the
    SUMO network holds the car streets only, not the cycleways that join them up for bikes)."""
    edges = modified.edges
    carried = edges[edges["edge_id"].astype(str).isin(network.edge_ids)]
    as_bikes = carried.assign(car=carried["bike"].fillna(False).astype(bool))
    return zone_edges(inputs.zones, as_bikes, present=set(car_connected_edges(as_bikes)))


def _line_transit(
    service: BusService,
    inputs: TwinInputs,
    modified: ModifiedNetwork,
    params: TrafficParams,
    free_flow: LevelOfService,
) -> LineTransit | None:
    """The simulated lines' routes over the transit times ``free_flow`` has without them; they stand
    for the area's street transit when the twin's GTFS runs are among them."""
    lines = transit_lines(
        service,
        modified.edges,
        window_s=params.demand_window_s,
        complete=any(run.run_id.startswith(GTFS_RUN_PREFIX) for run in service.runs),
        frequency_factors=line_frequency_factors(inputs, modified),
    )
    return None if lines is None else LineTransit.over(lines, free_flow)


def line_frequency_factors(inputs: TwinInputs, modified: ModifiedNetwork) -> dict[str, float]:
    """How many times as often each simulated line runs in the mode choice after the scenario's
    ``transit_frequency`` interventions, by line name (a GTFS route's short name, else its id; the
    intervention may name either). Two on one route add up as at its stops: ``1 + Σ (factor − 1)``."""
    routes = inputs.schedule.routes if inputs.schedule is not None else None
    factors: dict[str, float] = {}
    for item in (i for i in modified.demand if isinstance(i, TransitFrequency)):
        names = {item.route}
        if routes is not None:
            match = routes[
                (routes["route_id"].astype(str) == item.route)
                | (routes["route_short_name"].astype(str) == item.route)
            ]
            names = set(match["route_short_name"].fillna(match["route_id"]).astype(str)) or names
        for name in names:
            factors[name] = factors.get(name, 1.0) + item.factor - 1.0
    return factors


def _bus_plan(service: BusService, modified: ModifiedNetwork, params: TrafficParams) -> BusPlan | None:
    if not service.runs:
        return None
    edges = modified.edges
    cycle = edges.loc[edges["cycle_lanes"] > 0, ["edge_id", "cycle_lanes"]]
    lanes = dict(zip(cycle["edge_id"].astype(str), cycle["cycle_lanes"].astype(int), strict=True))
    return BusPlan(service, params.buses, lanes)
