"""The traffic engine's intervention types: street-network edits and demand changes, as data.

Network edits select streets with the shared :class:`~civictwin.scenarios.spec.StreetSelection`;
:mod:`civictwin.engines.traffic.edits` applies them. Demand changes (transit frequency, growth,
events) pass through to the demand model. :data:`INTERVENTIONS` is what the engine declares.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import Field, model_validator

from civictwin.i18n import N_
from civictwin.scenarios.spec import Intervention, LonLat, StreetSelection

Mode = Literal["all", "car", "bus", "bike", "walk"]


def _modes(*modes: Mode) -> list[Mode]:
    """A fresh default list of modes."""
    return list(modes)


class CloseStreets(StreetSelection, Intervention):
    """Close the selected edges to some or all modes (``car`` = private cars; buses are ``bus``)."""

    type: Literal["close_streets"]
    modes: list[Mode] = Field(default_factory=lambda: _modes("all"), min_length=1)


class OneWay(StreetSelection, Intervention):
    """Cars and buses keep only one direction: ``forward`` (the OSM way direction) or ``reverse``."""

    type: Literal["one_way"]
    keep: Literal["forward", "reverse"] = "forward"


class Reverse(StreetSelection, Intervention):
    """A one-way street changes direction for cars and buses (edge ids are kept, see the docs)."""

    type: Literal["reverse"]


class SpeedLimit(StreetSelection, Intervention):
    """Set the speed limit; with ``only_lower`` edges that are already slower keep their speed."""

    type: Literal["speed_limit"]
    speed_kmh: Annotated[float, Field(gt=0, le=200)]
    only_lower: bool = True


class BusLane(StreetSelection, Intervention):
    """Reserve the rightmost ``lanes`` lanes for buses."""

    type: Literal["bus_lane"]
    lanes: Annotated[int, Field(ge=1, le=4)] = 1


class CycleLane(StreetSelection, Intervention):
    """A cycle lane on the selected edges: they open to bikes (a new link where bikes were barred,
    e.g. against a one-way street), and with ``from_cars`` the rightmost car lane becomes bike-only."""

    type: Literal["cycle_lane"]
    from_cars: bool = True


class ModalFilter(Intervention):
    """A low-traffic-neighbourhood filter: cars and buses cannot pass through the nearest node."""

    type: Literal["modal_filter"]
    at: LonLat
    radius_m: Annotated[float, Field(gt=0, le=1000)] = 50.0

    def describe(self) -> str:
        """Where the filter is."""
        return f"at lon {self.at[0]}, lat {self.at[1]}"


class Pedestrianise(StreetSelection, Intervention):
    """Cars and buses lose access, walking is allowed, bikes per ``allow_bikes``."""

    type: Literal["pedestrianise"]
    allow_bikes: bool = True


class WorksClosure(StreetSelection, Intervention):
    """A temporary closure (roadworks) between ``begin_s`` and ``end_s`` simulation seconds."""

    type: Literal["works_closure"]
    begin_s: Annotated[float, Field(ge=0)]
    end_s: Annotated[float, Field(gt=0)]
    modes: list[Mode] = Field(default_factory=lambda: _modes("car"), min_length=1)

    @model_validator(mode="after")
    def _window(self) -> WorksClosure:
        if self.end_s <= self.begin_s:
            raise ValueError(N_("end_s must be after begin_s"))
        return self


class TransitFrequency(Intervention):
    """Scale departures of a transit route (data for the demand side; no network change)."""

    type: Literal["transit_frequency"]
    route: Annotated[str, Field(min_length=1)]
    factor: Annotated[float, Field(gt=0, le=20)]

    def describe(self) -> str:
        """The route and factor."""
        return f"route {self.route} × {self.factor}"


class TransitLine(Intervention):
    """A new bus or tram line: its stops in order (lon, lat), one run every ``headway_min`` minutes
    from ``begin_s`` to ``end_s`` (default: the end of the demand window), simulated in street space."""

    type: Literal["transit_line"]
    name: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[^;]+$")]
    stops: Annotated[list[LonLat], Field(min_length=2)]
    headway_min: Annotated[float, Field(gt=0, le=240)]
    mode: Literal["bus", "tram"] = "bus"
    begin_s: Annotated[float, Field(ge=0)] = 0.0
    end_s: Annotated[float, Field(gt=0)] | None = None
    stop_radius_m: Annotated[float, Field(gt=0, le=500)] = 50.0

    @model_validator(mode="after")
    def _window(self) -> TransitLine:
        if self.end_s is not None and self.end_s <= self.begin_s:
            raise ValueError("end_s must be after begin_s")
        return self

    def describe(self) -> str:
        """The line, its stops and headway."""
        return f"{self.mode} line {self.name}: {len(self.stops)} stops every {self.headway_min:g} min"


class ScaleDemand(Intervention):
    """Scale all demand (``factor``) or add an event: ``extra_trips`` to/from a point in a time window."""

    type: Literal["scale_demand"]
    factor: Annotated[float, Field(gt=0, le=20)] | None = None
    at: LonLat | None = None
    extra_trips: Annotated[int, Field(gt=0)] | None = None
    radius_m: Annotated[float, Field(gt=0, le=5000)] = 300.0
    begin_s: Annotated[float, Field(ge=0)] = 0.0
    end_s: Annotated[float, Field(gt=0)] | None = None
    direction: Literal["to", "from", "both"] = "to"

    @model_validator(mode="after")
    def _factor_or_event(self) -> ScaleDemand:
        if (self.factor is None) == (self.at is None):
            raise ValueError("give either `factor`, or an event with `at` and `extra_trips`")
        if self.at is not None and self.extra_trips is None:
            raise ValueError("an event at `at` needs `extra_trips`")
        if self.at is None and self.extra_trips is not None:
            raise ValueError("`extra_trips` needs `at`, the event's location")
        if self.end_s is not None and self.end_s <= self.begin_s:
            raise ValueError("end_s must be after begin_s")
        return self

    def describe(self) -> str:
        """The factor, or the event."""
        if self.factor is not None:
            return f"demand × {self.factor}"
        return f"{self.extra_trips} extra trips {self.direction} lon {self.at[0]}, lat {self.at[1]}"  # type: ignore[index]


NetworkIntervention = (
    CloseStreets
    | OneWay
    | Reverse
    | SpeedLimit
    | BusLane
    | CycleLane
    | ModalFilter
    | Pedestrianise
    | WorksClosure
)
DemandIntervention = TransitFrequency | ScaleDemand | TransitLine

INTERVENTIONS: Mapping[str, type[Intervention]] = MappingProxyType(
    {
        "close_streets": CloseStreets,
        "one_way": OneWay,
        "reverse": Reverse,
        "speed_limit": SpeedLimit,
        "bus_lane": BusLane,
        "modal_filter": ModalFilter,
        "pedestrianise": Pedestrianise,
        "works_closure": WorksClosure,
        "transit_frequency": TransitFrequency,
        "scale_demand": ScaleDemand,
        "cycle_lane": CycleLane,
        "transit_line": TransitLine,
    }
)
"""Every intervention type of the traffic engine, by its ``type`` value."""

SCENARIO_EXAMPLES = """\
# Traffic (street selections: every network intervention except modal_filter needs one):
#   streets  = ["Mannerheimintie"]        street names, both directions
#   osm_ids  = [123456]                   OSM way ids, both directions
#   edge_ids = ["123456_0", "-123456_0"]  directed network edges
#   polygon  = "POLYGON ((lon lat, ...))" WKT in WGS84, or a file path relative to this file;
#                                         with other keys it restricts them to the area
# A selection that matches nothing is an error.

# [[interventions]]
# type = "close_streets"
# streets = ["Mannerheimintie"]
# modes = ["car"]                # all | car | bus | bike | walk

# [[interventions]]
# type = "one_way"
# streets = ["Fredrikinkatu"]
# keep = "forward"               # forward = the OSM way direction, reverse = the opposite one

# [[interventions]]
# type = "reverse"               # a one-way street changes direction
# streets = ["Annankatu"]

# [[interventions]]
# type = "speed_limit"
# polygon = "zones/zone30.geojson"
# speed_kmh = 30
# only_lower = true              # streets already slower keep their limit

# [[interventions]]
# type = "bus_lane"
# streets = ["Hämeentie"]
# lanes = 1                      # rightmost lanes reserved for buses

# [[interventions]]
# type = "cycle_lane"
# streets = ["Hämeentie"]
# from_cars = true               # the rightmost car lane becomes bike-only (false: a separate track)

# [[interventions]]
# type = "modal_filter"          # cars cannot pass through the nearest junction
# at = [24.9384, 60.1699]        # lon, lat (WGS84)
# radius_m = 50

# [[interventions]]
# type = "pedestrianise"
# polygon = "POLYGON ((24.940 60.168, 24.943 60.168, 24.943 60.170, 24.940 60.170, 24.940 60.168))"
# allow_bikes = true

# [[interventions]]
# type = "works_closure"         # temporary closure, in simulation seconds
# osm_ids = [123456]
# begin_s = 1800
# end_s = 3600
# modes = ["car"]

# [[interventions]]
# type = "transit_frequency"     # used by the demand model
# route = "4"
# factor = 1.5

# [[interventions]]
# type = "transit_line"          # a new line, simulated with the buses
# name = "X1"
# mode = "bus"                   # bus | tram (both run in street space)
# stops = [[24.9380, 60.1690], [24.9410, 60.1720], [24.9450, 60.1750]]   # lon, lat, in order
# headway_min = 7.5

# [[interventions]]
# type = "scale_demand"          # growth: factor; or an event: at + extra_trips
# factor = 1.1
"""
"""The commented traffic examples of ``civictwin scenario new``."""
