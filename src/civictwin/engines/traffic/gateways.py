"""Gateways: the open boundary of the area, where traffic from outside drives in, out and through.

A twin's network is cut at the area's boundary, so every drivable road that crosses it ends in a dead
end near the boundary. Such a node is a **gateway** (:func:`find_gateways`): its edge leading into the
area carries inbound traffic, its edge leading out carries outbound traffic. The flows are stated
defaults per lane (``[gateways]`` of ``traffic.toml``, to be replaced by the city's counts on those
roads), split by ``through_share``:

- **through** trips from each gateway to every other, in proportion to their outbound lanes;
- **inbound** trips from each gateway to the zones, in proportion to the zones' attractions;
- **outbound** trips from the zones to each gateway, in proportion to the zones' productions.

They are car trips (drivers from outside make no mode choice here), sampled per seed like the
residents' trips (:func:`~civictwin.engines.traffic.demand.sample_car_trips`) with ids starting with
:data:`GATEWAY_PREFIX`. Everything here is a pure function of plain data.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

import geopandas as gpd
import numpy as np
import shapely
from pydantic import BaseModel, ConfigDict, Field

from civictwin.engines.traffic.demand import OdMatrix

GATEWAY_PREFIX = "g"
"""Trip ids of gateway trips start with this (residents' trips with ``t``, events with ``e``)."""
IN, OUT = "in:", "out:"


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


@dataclass(frozen=True)
class Gateway:
    """A road crossing the boundary: its end node, the edge into the area and the edge out of it."""

    node: str
    inbound_edge: str | None
    outbound_edge: str | None
    inbound_lanes: int
    outbound_lanes: int


@dataclass(frozen=True)
class GatewayDemand:
    """Gateway car trips per hour as an OD matrix over ``in:<node>``, ``out:<node>`` and the zones,
    with the edges each of them starts or ends on."""

    od: OdMatrix
    edges_by_zone: dict[str, list[str]]


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


def gateway_demand(
    gateways: Sequence[Gateway],
    zones: Sequence[str],
    productions: np.ndarray,
    attractions: np.ndarray,
    edges_by_zone: Mapping[str, Sequence[str]],
    settings: GatewaySettings,
    *,
    usable: Collection[str],
) -> GatewayDemand:
    """Through, inbound and outbound car trips per hour (see the module docstring).

    ``productions`` and ``attractions`` (one per zone in ``zones``) weigh the zones; zones without a
    car edge in ``edges_by_zone`` get no gateway trips; a gateway whose edge is not ``usable`` (not in
    the simulated network, or closed to cars by the scenario) carries none either.
    """
    entries = [g for g in gateways if g.inbound_edge in usable]
    exits = [g for g in gateways if g.outbound_edge in usable]
    names = (*(IN + g.node for g in entries), *(OUT + g.node for g in exits), *zones)
    index = {name: i for i, name in enumerate(names)}
    trips = np.zeros((len(names), len(names)))
    reachable = np.array([bool(edges_by_zone.get(z)) for z in zones])
    attract = np.where(reachable, np.asarray(attractions, dtype=float), 0.0)
    produce = np.where(reachable, np.asarray(productions, dtype=float), 0.0)
    out_lanes = np.array([g.outbound_lanes for g in exits], dtype=float)
    first_zone = len(entries) + len(exits)
    for entry in entries:
        inbound = settings.inbound_vph_per_lane * entry.inbound_lanes
        others = np.array([g.node != entry.node for g in exits]) * out_lanes
        row = index[IN + entry.node]
        if others.sum() > 0:
            through = inbound * settings.through_share * others / others.sum()
            trips[row, len(entries) : first_zone] += through
        if attract.sum() > 0:
            trips[row, first_zone:] += inbound * (1 - settings.through_share) * attract / attract.sum()
    if produce.sum() > 0:
        for exit_ in exits:
            outbound = settings.outbound_vph_per_lane * exit_.outbound_lanes * (1 - settings.through_share)
            trips[first_zone:, index[OUT + exit_.node]] += outbound * produce / produce.sum()
    edges = {
        **{IN + g.node: [str(g.inbound_edge)] for g in entries},
        **{OUT + g.node: [str(g.outbound_edge)] for g in exits},
        **{z: list(edges_by_zone.get(z, [])) for z in zones},
    }
    return GatewayDemand(OdMatrix(names, trips), edges)
