"""Gateways: the open boundary of the area, where traffic from outside drives in, out and through.

A twin's network is cut at the area's boundary, so every drivable road that crosses it ends in a dead
end near the boundary. Such a node is a **gateway** (:func:`find_gateways`): its edge leading into the
area carries inbound traffic, its edge leading out carries outbound traffic. Each gateway's flows per
hour of the demand window (:class:`GatewayFlow`) come from a count on the gateway road where one
exists (:func:`gateway_flows`: a count site on its inbound or outbound edge, or on the one edge that
continues it inside the area), else from the stated defaults per lane (``[gateways]`` of
``traffic.toml``, in the window's first hour, later hours along the residents' hourly profile); each
flow says which. The inbound vehicles are split by ``through_share``:

- **through** trips from each gateway to every other, in proportion to their outbound lanes;
- **inbound** trips from each gateway to the zones, in proportion to the zones' attractions;
- **outbound** trips from the zones to each gateway, in proportion to the zones' productions.

With a phone-based OD matrix (``od_source = "phone"`` or ``"phone_prior"``), its trips with one end
outside the area become the inbound and outbound flows of the gateways that have no count
(:func:`outside_vehicles`, :func:`phone_flows`: split over the gateway roads by their lanes) and
spread over the zones as the phone data says, hour by hour.

They are car trips (drivers from outside make no mode choice here), sampled per seed and per hour
(:func:`gateway_car_trips`) with ids starting with :data:`GATEWAY_PREFIX`; a calibration scales the
cells of their matrix (:func:`scaled_demand`: one factor per gateway and zone, or pair of gateways).
Everything here is a pure function of plain data.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pydantic import BaseModel, ConfigDict, Field

from civictwin.engines.traffic.demand import HOUR_S, DemandError, OdMatrix, PhoneHours, sample_car_trips
from civictwin.engines.traffic.demand import window_hours as window_hours  # re-exported
from civictwin.engines.traffic.run import CarTrip

GATEWAY_PREFIX = "g"
"""Trip ids of gateway trips start with this (residents' trips with ``t``, events with ``e``)."""
IN, OUT = "in:", "out:"
STATED_DEFAULT = "stated default"
"""The source of a flow taken from ``[gateways]`` rather than from a count."""
PHONE_SOURCE = "phone-based OD matrix"
"""The source of a flow taken from the phone matrix's trips with one end outside the area."""
Kind = Literal["inbound", "through", "outbound"]
KINDS: tuple[Kind, ...] = ("inbound", "through", "outbound")
"""The three flows of a gateway: from it to the zones, from it across the area to the other
gateways, and from the zones out through it."""
Cell = tuple[str, str]
"""A cell of a gateway matrix (:attr:`GatewayDemand.od`): its start and end names, ``in:<node>`` or a
zone to ``out:<node>`` or a zone (never zone to zone)."""


class GatewaySettings(BaseModel):
    """``[gateways]`` of ``traffic.toml``: traffic entering, leaving and crossing the area."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    inbound_vph_per_lane: Annotated[float, Field(ge=0)] = 200.0
    """Vehicles per hour entering the area per lane of a gateway road: an assumption (no source) to
    replace with counts on the gateway roads."""
    outbound_vph_per_lane: Annotated[float, Field(ge=0)] = 200.0
    """Vehicles per hour leaving from the zones per lane of a gateway road: an assumption likewise."""
    through_share: Annotated[float, Field(ge=0, le=1)] = 0.3
    """Share of the inbound vehicles that cross the area to another gateway: an assumption."""
    boundary_m: Annotated[float, Field(gt=0)] = 50.0
    """A dead end this close (m) to the network's outline is a gateway."""
    outside_car_share: Annotated[float, Field(ge=0, le=1)] = 0.5
    """Share of the person trips with one end outside the area (the phone matrix's, or the regional
    model's) made by car (they become gateway vehicles at ``mode_choice.car_occupancy`` persons per
    car): an assumption, to replace with a travel survey's car share of trips crossing the area's
    boundary."""
    region: str | None = None
    """A twin directory built from a larger OSM extract that holds the area (relative to this twin's
    directory): its roads and residents give the flows of gateways without a count
    (:mod:`~civictwin.engines.traffic.region`)."""


@dataclass(frozen=True)
class Gateway:
    """A road crossing the boundary: its end node, the edge into the area and the edge out of it."""

    node: str
    inbound_edge: str | None
    outbound_edge: str | None
    inbound_lanes: int
    outbound_lanes: int


class GatewayFlow(BaseModel):
    """One gateway's car flows (vehicles/hour), one value per hour of the demand window, and where the
    inbound and outbound ones came from (a count site's id or :data:`STATED_DEFAULT`; a calibration
    adds its record's name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node: str
    inbound_vph: tuple[Annotated[float, Field(ge=0)], ...]
    """From the gateway to the zones."""
    through_vph: tuple[Annotated[float, Field(ge=0)], ...]
    """From the gateway across the area to the other gateways."""
    outbound_vph: tuple[Annotated[float, Field(ge=0)], ...]
    """From the zones out through the gateway."""
    inbound_source: str = STATED_DEFAULT
    outbound_source: str = STATED_DEFAULT
    through_source: str | None = None
    """Where the through flow came from when not from where the inbound one did (the regional model
    beside a phone-based inbound flow)."""


@dataclass(frozen=True)
class GatewayCount:
    """A count site's hourly counts (vehicles/hour, NaN where missing) over the demand window's hours,
    on one directed edge; ``heading`` is ``inbound``/``outbound`` (towards or away from the centre)
    where the matching knows it."""

    site: str
    edge_id: str
    heading: str | None
    vph: tuple[float, ...]


@dataclass(frozen=True)
class GatewayFlag:
    """A count on a gateway road that was not used for it, and why."""

    site: str
    node: str
    reason: str


@dataclass(frozen=True)
class GatewayDemand:
    """Gateway car trips per hour of the demand window, each hour an OD matrix over ``in:<node>``,
    ``out:<node>`` and the zones, with the edges each of them starts or ends on and the flows they
    came from."""

    hourly: tuple[OdMatrix, ...]
    edges_by_zone: dict[str, list[str]]
    flows: tuple[GatewayFlow, ...]
    window_s: float = HOUR_S
    """The demand window (s); its last hour may be partial."""
    notes: tuple[str, ...] = ()
    """What the report says about where the flows came from beyond each gateway's source (the
    regional model's totals)."""

    @property
    def od(self) -> OdMatrix:
        """All hours together (vehicles in the demand window)."""
        return OdMatrix(
            self.hourly[0].zones, sum((h.trips for h in self.hourly), np.zeros_like(self.hourly[0].trips))
        )

    def sources(self) -> list[dict[str, str]]:
        """Per gateway: its node and where its inbound and outbound flows came from (for the report)."""
        return [
            {
                "node": f.node,
                "inbound": f.inbound_source,
                "through": f.through_source or f.inbound_source,
                "outbound": f.outbound_source,
            }
            for f in self.flows
        ]


def find_gateways(edges: gpd.GeoDataFrame, *, boundary_m: float) -> list[Gateway]:
    """Dead ends of the car network within ``boundary_m`` of its outline (its convex hull), sorted."""
    car = edges[edges["car"].fillna(False).astype(bool)]
    if car.empty:
        return []
    starts = car["from_node"].astype(str).tolist()
    ends = car["to_node"].astype(str).tolist()
    neighbours: dict[str, set[str]] = {}
    points: dict[str, shapely.Point] = {}
    for a, b, line in zip(starts, ends, car.geometry, strict=True):
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
        points[a] = shapely.Point(line.coords[0])
        points[b] = shapely.Point(line.coords[-1])
    outline = shapely.MultiPoint(list(points.values())).convex_hull.boundary
    lanes = car["lanes"].fillna(1).astype(int).clip(lower=1).tolist() if "lanes" in car else [1] * len(car)
    ids = car["edge_id"].astype(str).tolist()
    gateways = []
    for node in sorted(n for n, near in neighbours.items() if len(near) == 1):
        if points[node].distance(outline) > boundary_m:
            continue
        leaving = [(e, n) for e, s, n in zip(ids, starts, lanes, strict=True) if s == node]
        entering = [(e, n) for e, t, n in zip(ids, ends, lanes, strict=True) if t == node]
        gateways.append(
            Gateway(
                node=node,
                inbound_edge=leaving[0][0] if leaving else None,
                outbound_edge=entering[0][0] if entering else None,
                inbound_lanes=leaving[0][1] if leaving else 0,
                outbound_lanes=entering[0][1] if entering else 0,
            )
        )
    return gateways


def stated_flow(
    gateway: Gateway, settings: GatewaySettings, *, hours: int, ratios: Sequence[float] = ()
) -> GatewayFlow:
    """The flows ``[gateways]`` states for ``gateway``: inbound and outbound vehicles per lane ×
    lanes in the window's first hour, ``through_share`` of the inbound crossing the area and the same
    share taken off the outbound (those vehicles leave as other gateways' through traffic); hour
    ``h`` times ``ratios[h]`` (the residents' hourly profile relative to the first hour:
    :func:`~civictwin.engines.traffic.demand.profile_ratios`), or the same every hour without."""
    inbound = settings.inbound_vph_per_lane * gateway.inbound_lanes
    outbound = settings.outbound_vph_per_lane * gateway.outbound_lanes
    share = settings.through_share
    factor = list(ratios) if ratios else [1.0] * hours
    return GatewayFlow(
        node=gateway.node,
        inbound_vph=tuple(inbound * (1 - share) * r for r in factor[:hours]),
        through_vph=tuple(inbound * share * r for r in factor[:hours]),
        outbound_vph=tuple(outbound * (1 - share) * r for r in factor[:hours]),
    )


def road_edges(gateway: Gateway, edges: pd.DataFrame) -> dict[str, Literal["inbound", "outbound"]]:
    """The edges whose count is a gateway's flow: its inbound and outbound edges, and the one edge that
    continues each inside the area (when the road does not branch at its first node; no U-turn)."""
    starts = edges["from_node"].astype(str)
    ends = edges["to_node"].astype(str)
    ids = edges["edge_id"].astype(str)
    node = dict(zip(ids, zip(starts, ends, strict=True), strict=True))
    found: dict[str, Literal["inbound", "outbound"]] = {}
    if gateway.inbound_edge in node:
        found[gateway.inbound_edge] = "inbound"
        inner = node[gateway.inbound_edge][1]
        onward = ids[(starts == inner) & (ends != gateway.node)].tolist()
        if len(onward) == 1:
            found[onward[0]] = "inbound"
    if gateway.outbound_edge in node:
        found[gateway.outbound_edge] = "outbound"
        inner = node[gateway.outbound_edge][0]
        feeding = ids[(ends == inner) & (starts != gateway.node)].tolist()
        if len(feeding) == 1:
            found[feeding[0]] = "outbound"
    return found


def gateway_flows(
    gateways: Sequence[Gateway],
    counts: Sequence[GatewayCount],
    edges: pd.DataFrame,
    settings: GatewaySettings,
    *,
    hours: int,
) -> tuple[list[GatewayFlow], list[GatewayFlag]]:
    """Each gateway's flows: from a count on its road (:func:`road_edges`) where a usable one exists,
    else :func:`stated_flow`; with every count on a gateway road that was not used and why.

    A count is not used when its heading contradicts the edge (a count towards the centre on the edge
    leaving the area, or away from it on the edge entering), when an hour of the window is missing, or
    when its busiest hour is above the edge's ``capacity_vph``. Of several usable counts in one
    direction the first by site id is taken. A counted inbound flow is split by ``through_share`` like
    a stated one; a counted outbound flow has the same share taken off (it includes through traffic).
    """
    capacity = dict(zip(edges["edge_id"].astype(str), edges["capacity_vph"].astype(float), strict=True))
    by_edge: dict[str, list[GatewayCount]] = {}
    for count in sorted(counts, key=lambda c: c.site):
        by_edge.setdefault(count.edge_id, []).append(count)
    flows, flags = [], []
    share = settings.through_share
    for gateway in gateways:
        flow = stated_flow(gateway, settings, hours=hours)
        chosen: dict[str, GatewayCount] = {}
        for edge, direction in road_edges(gateway, edges).items():
            for count in by_edge.get(edge, []):
                reason = _unusable(count, direction, capacity.get(edge, math.nan), hours)
                if reason:
                    flags.append(GatewayFlag(count.site, gateway.node, reason))
                elif direction not in chosen:
                    chosen[direction] = count
        if "inbound" in chosen:
            vph = np.asarray(chosen["inbound"].vph[:hours], dtype=float)
            flow = flow.model_copy(
                update={
                    "inbound_vph": tuple(vph * (1 - share)),
                    "through_vph": tuple(vph * share),
                    "inbound_source": chosen["inbound"].site,
                }
            )
        if "outbound" in chosen:
            vph = np.asarray(chosen["outbound"].vph[:hours], dtype=float)
            flow = flow.model_copy(
                update={"outbound_vph": tuple(vph * (1 - share)), "outbound_source": chosen["outbound"].site}
            )
        flows.append(flow)
    return flows, flags


def _unusable(count: GatewayCount, direction: str, capacity_vph: float, hours: int) -> str | None:
    """Why a count cannot be the gateway's ``direction`` flow, or None."""
    if count.heading in ("inbound", "outbound") and count.heading != direction:
        return (
            f"counts {count.heading} traffic on edge {count.edge_id}, which carries the gateway's "
            f"{direction} traffic: the direction contradicts the edge"
        )
    vph = np.asarray(count.vph[:hours], dtype=float)
    if len(vph) < hours or not np.isfinite(vph).all():
        return "missing hours in the demand window"
    if np.isfinite(capacity_vph) and float(vph.max()) > capacity_vph:
        return (
            f"busiest hour {float(vph.max()):.0f} veh/h above the capacity {capacity_vph:.0f} veh/h of "
            f"edge {count.edge_id}"
        )
    return None


def resolve_flows(
    gateways: Sequence[Gateway],
    given: Sequence[GatewayFlow],
    settings: GatewaySettings,
    *,
    hours: int,
    ratios: Sequence[float] = (),
) -> list[GatewayFlow]:
    """One flow per gateway: the ``given`` one (counted or calibrated) for its node, else the stated
    defaults (:func:`stated_flow` with the hourly ``ratios``). A direction of a given flow that is
    itself a stated default (its source :data:`STATED_DEFAULT`: inbound with through, or outbound)
    is stated again with the ``ratios``. A given flow covering fewer hours than the window is an
    error (it was made for another window)."""
    by_node = {f.node: f for f in given}
    flows = []
    for gateway in gateways:
        stated = stated_flow(gateway, settings, hours=hours, ratios=ratios)
        flow = by_node.get(gateway.node)
        if flow is None:
            flows.append(stated)
            continue
        if min(len(flow.inbound_vph), len(flow.through_vph), len(flow.outbound_vph)) < hours:
            raise DemandError(
                f"the flows of gateway {gateway.node} cover fewer hours than the {hours}-hour demand "
                "window: calibrate again",
                field="gateway_flows",
            )
        update: dict[str, object] = {}
        if flow.inbound_source == STATED_DEFAULT:
            update |= {"inbound_vph": stated.inbound_vph, "through_vph": stated.through_vph}
        if flow.outbound_source == STATED_DEFAULT:
            update["outbound_vph"] = stated.outbound_vph
        flows.append(flow.model_copy(update=update))
    return flows


def scaled_flows(
    flows: Sequence[GatewayFlow], factors: Mapping[tuple[str, str], float], *, source: str | None = None
) -> list[GatewayFlow]:
    """``flows`` with each (node, kind) factor applied to every hour of that flow; with ``source``
    (e.g. ``fitted to the counts``) appended to the scaled flows' sources."""
    scaled = []
    for flow in flows:
        update: dict[str, object] = {}
        for kind in KINDS:
            factor = factors.get((flow.node, kind))
            if factor is not None:
                update[f"{kind}_vph"] = tuple(v * factor for v in getattr(flow, f"{kind}_vph"))
        if update and source is not None:
            update["inbound_source"] = f"{flow.inbound_source}, {source}"
            update["outbound_source"] = f"{flow.outbound_source}, {source}"
        scaled.append(flow.model_copy(update=update))
    return scaled


def scaled_demand(demand: GatewayDemand, factors: Mapping[Cell, float]) -> GatewayDemand:
    """``demand`` with each cell's factor applied to that cell in every hour (cells ``demand`` lacks,
    such as those of a gateway a plan closes, are skipped); its flows become the scaled matrix's
    (:func:`fitted_flows`)."""
    names = demand.hourly[0].zones
    index = {name: i for i, name in enumerate(names)}
    cell_factor = np.ones((len(names), len(names)))
    for (start, end), factor in factors.items():
        if start in index and end in index:
            cell_factor[index[start], index[end]] = factor
    hourly = tuple(OdMatrix(names, od.trips * cell_factor) for od in demand.hourly)
    scaled = dataclasses.replace(demand, hourly=hourly)
    return dataclasses.replace(scaled, flows=tuple(fitted_flows(demand, scaled)))


def fitted_flows(
    prior: GatewayDemand, scaled: GatewayDemand, *, source: str | None = None
) -> list[GatewayFlow]:
    """``prior``'s flows with each gateway's inbound, through and outbound vehicles scaled as its cells
    in ``scaled`` sum up against ``prior``'s (all hours together: a cell's factor is the same in every
    hour); with ``source`` (e.g. ``fitted to the counts``) appended to a scaled flow's sources."""
    before, after = _flow_totals(prior.od), _flow_totals(scaled.od)
    ratios = {key: after[key] / total for key, total in before.items() if total > 0 and after[key] != total}
    return scaled_flows(prior.flows, ratios, source=source)


def _flow_totals(od: OdMatrix) -> dict[tuple[str, str], float]:
    """Vehicles of each gateway's inbound, through and outbound flow in the gateway matrix ``od``."""
    names = od.zones
    entering = np.array([n.startswith(IN) for n in names])
    leaving = np.array([n.startswith(OUT) for n in names])
    zone = ~(entering | leaving)
    totals: dict[tuple[str, str], float] = {}
    for i in np.flatnonzero(entering):
        node = names[i].removeprefix(IN)
        totals[(node, "inbound")] = float(od.trips[i, zone].sum())
        totals[(node, "through")] = float(od.trips[i, leaving].sum())
    for j in np.flatnonzero(leaving):
        totals[(names[j].removeprefix(OUT), "outbound")] = float(od.trips[zone, j].sum())
    return totals


def cell_kind(cell: Cell) -> tuple[str, Kind]:
    """The gateway and kind of flow a cell of a gateway matrix (its start and end names, those of
    :attr:`GatewayDemand.od`) belongs to."""
    start, end = cell
    if start.startswith(IN):
        return start.removeprefix(IN), "through" if end.startswith(OUT) else "inbound"
    return end.removeprefix(OUT), "outbound"


def gateway_car_trips(demand: GatewayDemand, *, seed: int, iteration: int) -> list[CarTrip]:
    """The gateway trips of one seed and iteration: each hour's matrix sampled
    (:func:`~civictwin.engines.traffic.demand.sample_car_trips`) with departures in that hour of the
    window; ids ``g…`` in the first hour, ``g<h>h…`` in hour ``h``."""
    trips: list[CarTrip] = []
    for hour, od in enumerate(demand.hourly):
        trips += sample_car_trips(
            od,
            demand.edges_by_zone,
            seed=seed,
            iteration=iteration,
            begin_s=hour * HOUR_S,
            end_s=min(demand.window_s, (hour + 1) * HOUR_S),
            prefix=GATEWAY_PREFIX if hour == 0 else f"{GATEWAY_PREFIX}{hour}h",
        )
    return trips


@dataclass(frozen=True)
class OutsideTrips:
    """Per hour of the demand window, car trips per hour between outside the area and each zone:
    ``inbound[h][i]`` from outside to zone ``i``, ``outbound[h][i]`` from zone ``i`` out."""

    inbound: tuple[np.ndarray, ...]
    outbound: tuple[np.ndarray, ...]


def outside_vehicles(phone: PhoneHours, *, scale: float, car_share: float, occupancy: float) -> OutsideTrips:
    """The phone matrix's person trips with one end outside as car trips: person trips × ``scale``
    (``[demand] scale``) × ``car_share`` ÷ ``occupancy`` (persons per car)."""
    factor = scale * car_share / occupancy
    return OutsideTrips(
        tuple(np.asarray(v, dtype=float) * factor for v in phone.from_outside),
        tuple(np.asarray(v, dtype=float) * factor for v in phone.to_outside),
    )


def phone_flows(
    gateways: Sequence[Gateway],
    flows: Sequence[GatewayFlow],
    outside: OutsideTrips,
    *,
    usable: Collection[str],
    entries: Collection[str] = (),
    exits: Collection[str] = (),
) -> list[GatewayFlow]:
    """``flows`` with every inbound or outbound flow that is a stated default replaced by the phone
    matrix's outside trips: each hour's car trips from outside (to outside) split over the gateways
    whose inbound (outbound) edge is ``usable``, in proportion to its lanes. A counted or calibrated
    flow is kept: the count replaces its road's share of the phone trips. Through flows are kept
    (the phone matrix leaves out trips with both ends outside). A direction in which the matrix has
    no trip at all over the window keeps the stated defaults: its zoning then does not reach beyond
    the area, which says nothing about the traffic crossing the boundary."""
    into = {g.node: g.inbound_lanes for g in entering_gateways(gateways, usable, entries)}
    out_of = {g.node: g.outbound_lanes for g in leaving_gateways(gateways, usable, exits)}
    in_lanes = sum(into.values()) if any(v.sum() > 0 for v in outside.inbound) else 0
    out_lanes = sum(out_of.values()) if any(v.sum() > 0 for v in outside.outbound) else 0
    replaced = []
    for flow in flows:
        update: dict[str, object] = {}
        if flow.inbound_source == STATED_DEFAULT and flow.node in into and in_lanes > 0:
            share = into[flow.node] / in_lanes
            update["inbound_vph"] = tuple(float(v.sum()) * share for v in outside.inbound)
            update["inbound_source"] = PHONE_SOURCE
        if flow.outbound_source == STATED_DEFAULT and flow.node in out_of and out_lanes > 0:
            share = out_of[flow.node] / out_lanes
            update["outbound_vph"] = tuple(float(v.sum()) * share for v in outside.outbound)
            update["outbound_source"] = PHONE_SOURCE
        replaced.append(flow.model_copy(update=update))
    return replaced


def gateway_demand(
    gateways: Sequence[Gateway],
    zones: Sequence[str],
    productions: np.ndarray,
    attractions: np.ndarray,
    edges_by_zone: Mapping[str, Sequence[str]],
    flows: Sequence[GatewayFlow],
    *,
    usable: Collection[str],
    entries: Collection[str] = (),
    exits: Collection[str] = (),
    window_s: float = HOUR_S,
    outside: OutsideTrips | None = None,
    pattern: Mapping[Cell, float] | None = None,
    notes: Sequence[str] = (),
) -> GatewayDemand:
    """Through, inbound and outbound car trips in each hour of the window (see the module docstring).

    ``flows`` (one per gateway, by node; vehicles/hour, one value per hour) are scaled in a last partial hour by the
    share of it in the window of ``window_s`` seconds. ``productions`` and ``attractions`` (one per
    zone in ``zones``) weigh the zones; zones without a car edge in ``edges_by_zone`` get no gateway
    trips; a gateway whose edge is not ``usable`` (not in the simulated network's connected part, or
    closed to cars by the scenario) carries none either, unless its inbound edge is one of ``entries``
    (only leading into that part: a one-way road in) or its outbound edge one of ``exits``. With
    ``outside`` (the phone matrix's trips with one end outside), each hour's inbound and outbound
    vehicles spread over the zones as its trips from and to outside do that hour, where it has any to
    zones with a car edge. With ``pattern`` (the regional model's vehicles per cell of the gateway
    matrix: :func:`~civictwin.engines.traffic.region.regional_cells`), each gateway's through flow
    spreads over the other gateways, and its inbound (outbound) flow over the zones where ``outside``
    does not, as its row (column) of the pattern does, where it has any trips. ``notes`` go to the
    report.
    """
    by_node = {f.node: f for f in flows}
    entering, leaving = (
        entering_gateways(gateways, usable, entries),
        leaving_gateways(gateways, usable, exits),
    )
    names = (*(IN + g.node for g in entering), *(OUT + g.node for g in leaving), *zones)
    index = {name: i for i, name in enumerate(names)}
    reachable = np.array([bool(edges_by_zone.get(z)) for z in zones])
    attract = np.where(reachable, np.asarray(attractions, dtype=float), 0.0)
    produce = np.where(reachable, np.asarray(productions, dtype=float), 0.0)
    out_lanes = np.array([g.outbound_lanes for g in leaving], dtype=float)
    first_zone = len(entering) + len(leaving)
    hourly = []
    cells = pattern or {}
    across = {
        g.node: _observed_or(
            np.array([cells.get((IN + g.node, OUT + h.node), 0.0) for h in leaving]),
            np.array([h.node != g.node for h in leaving]) * out_lanes,
        )
        for g in entering
    }
    into_zones = {g.node: np.array([cells.get((IN + g.node, z), 0.0) for z in zones]) for g in entering}
    from_zones = {g.node: np.array([cells.get((z, OUT + g.node), 0.0) for z in zones]) for g in leaving}
    for hour, part in enumerate(window_hours(window_s)):
        trips = np.zeros((len(names), len(names)))
        into = out_of = None
        if outside is not None:
            into = _observed_or(np.where(reachable, outside.inbound[hour], 0.0), attract)
            out_of = _observed_or(np.where(reachable, outside.outbound[hour], 0.0), produce)
        for entry in entering:
            flow = by_node[entry.node]
            others = across[entry.node]
            row = index[IN + entry.node]
            if others.sum() > 0:
                trips[row, len(entering) : first_zone] += (
                    part * flow.through_vph[hour] * others / others.sum()
                )
            weights = into if into is not None else _observed_or(reachable * into_zones[entry.node], attract)
            if weights.sum() > 0:
                trips[row, first_zone:] += part * flow.inbound_vph[hour] * weights / weights.sum()
        for exit_ in leaving:
            weights = (
                out_of if out_of is not None else _observed_or(reachable * from_zones[exit_.node], produce)
            )
            if weights.sum() > 0:
                outbound = part * by_node[exit_.node].outbound_vph[hour]
                trips[first_zone:, index[OUT + exit_.node]] += outbound * weights / weights.sum()
        hourly.append(OdMatrix(names, trips))
    edges = {
        **{IN + g.node: [str(g.inbound_edge)] for g in entering},
        **{OUT + g.node: [str(g.outbound_edge)] for g in leaving},
        **{z: list(edges_by_zone.get(z, [])) for z in zones},
    }
    used = {g.node for g in (*entering, *leaving)}
    return GatewayDemand(
        tuple(hourly), edges, tuple(f for f in flows if f.node in used), window_s, notes=tuple(notes)
    )


def entering_gateways(
    gateways: Sequence[Gateway], usable: Collection[str], entries: Collection[str]
) -> list[Gateway]:
    """The gateways whose inbound edge is ``usable`` (in the connected car network) or one of its
    ``entries`` (leading into it only)."""
    return [g for g in gateways if g.inbound_edge in usable or g.inbound_edge in entries]


def leaving_gateways(
    gateways: Sequence[Gateway], usable: Collection[str], exits: Collection[str]
) -> list[Gateway]:
    """The gateways whose outbound edge is ``usable`` or one of its ``exits`` (reached from it only)."""
    return [g for g in gateways if g.outbound_edge in usable or g.outbound_edge in exits]


def _observed_or(observed: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """``observed`` zone weights where they hold any trips, else ``fallback``."""
    return observed if float(observed.sum()) > 0 else fallback
