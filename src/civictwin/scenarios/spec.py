"""Scenarios as data: a TOML file naming a baseline and a list of interventions.

The models here only describe interventions; :mod:`civictwin.scenarios.interventions` applies them to a
network. Every validation problem becomes one :class:`~civictwin.errors.ScenarioError` line naming the
file, the intervention (``interventions[2] (close_streets)``) and the key.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from civictwin.errors import ScenarioError

if TYPE_CHECKING:
    import geopandas as gpd

BASELINE = "baseline"
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$"

Mode = Literal["all", "car", "bus", "bike", "walk"]
LonLat = tuple[Annotated[float, Field(ge=-180, le=180)], Annotated[float, Field(ge=-90, le=90)]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Selection(_Strict):
    """Which edges an intervention touches: by street name, OSM id, edge id and/or polygon.

    Names, OSM ids and edge ids are united; a polygon restricts them (or, alone, selects the edges whose
    midpoint lies inside it). The polygon is WKT in WGS84 or a vector file path, relative to the scenario.
    """

    streets: list[Annotated[str, Field(min_length=1)]] | None = None
    osm_ids: list[int] | None = None
    edge_ids: list[Annotated[str, Field(min_length=1)]] | None = None
    polygon: Annotated[str, Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _something_selected(self) -> Selection:
        if not any((self.streets, self.osm_ids, self.edge_ids, self.polygon)):
            raise ValueError("select edges with at least one of streets, osm_ids, edge_ids or polygon")
        return self

    def describe(self) -> str:
        """A short human description, e.g. ``streets Mannerheimintie``."""
        parts = []
        if self.streets:
            parts.append("streets " + ", ".join(self.streets))
        if self.osm_ids:
            parts.append("OSM ways " + ", ".join(map(str, self.osm_ids)))
        if self.edge_ids:
            parts.append("edges " + ", ".join(self.edge_ids))
        if self.polygon:
            parts.append("inside a polygon")
        return "; ".join(parts)


class CloseStreets(Selection):
    """Close the selected edges to some or all modes (``car`` = private cars; buses are ``bus``)."""

    type: Literal["close_streets"]
    modes: Annotated[list[Mode], Field(min_length=1)] = ["all"]


class OneWay(Selection):
    """Cars and buses keep only one direction: ``forward`` (the OSM way direction) or ``reverse``."""

    type: Literal["one_way"]
    keep: Literal["forward", "reverse"] = "forward"


class Reverse(Selection):
    """A one-way street changes direction for cars and buses (edge ids are kept, see the docs)."""

    type: Literal["reverse"]


class SpeedLimit(Selection):
    """Set the speed limit; with ``only_lower`` edges that are already slower keep their speed."""

    type: Literal["speed_limit"]
    speed_kmh: Annotated[float, Field(gt=0, le=200)]
    only_lower: bool = True


class BusLane(Selection):
    """Reserve the rightmost ``lanes`` lanes for buses."""

    type: Literal["bus_lane"]
    lanes: Annotated[int, Field(ge=1, le=4)] = 1


class ModalFilter(_Strict):
    """A low-traffic-neighbourhood filter: cars and buses cannot pass through the nearest node."""

    type: Literal["modal_filter"]
    at: LonLat
    radius_m: Annotated[float, Field(gt=0, le=1000)] = 50.0

    def describe(self) -> str:
        """Where the filter is."""
        return f"at lon {self.at[0]}, lat {self.at[1]}"


class Pedestrianise(Selection):
    """Cars and buses lose access, walking is allowed, bikes per ``allow_bikes``."""

    type: Literal["pedestrianise"]
    allow_bikes: bool = True


class WorksClosure(Selection):
    """A temporary closure (roadworks) between ``begin_s`` and ``end_s`` simulation seconds."""

    type: Literal["works_closure"]
    begin_s: Annotated[float, Field(ge=0)]
    end_s: Annotated[float, Field(gt=0)]
    modes: Annotated[list[Mode], Field(min_length=1)] = ["car"]

    @model_validator(mode="after")
    def _window(self) -> WorksClosure:
        if self.end_s <= self.begin_s:
            raise ValueError("end_s must be after begin_s")
        return self


class TransitFrequency(_Strict):
    """Scale departures of a transit route (data for the demand side; no network change)."""

    type: Literal["transit_frequency"]
    route: Annotated[str, Field(min_length=1)]
    factor: Annotated[float, Field(gt=0, le=20)]

    def describe(self) -> str:
        """The route and factor."""
        return f"route {self.route} × {self.factor}"


class ScaleDemand(_Strict):
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


Intervention = Annotated[
    CloseStreets
    | OneWay
    | Reverse
    | SpeedLimit
    | BusLane
    | ModalFilter
    | Pedestrianise
    | WorksClosure
    | TransitFrequency
    | ScaleDemand,
    Field(discriminator="type"),
]
NetworkIntervention = (
    CloseStreets | OneWay | Reverse | SpeedLimit | BusLane | ModalFilter | Pedestrianise | WorksClosure
)
DemandIntervention = TransitFrequency | ScaleDemand


class Scenario(_Strict):
    """One scenario: identity, the baseline it derives from, interventions, and the file it came from."""

    name: Annotated[str, Field(pattern=_NAME_PATTERN)]
    description: str = ""
    baseline: Annotated[str, Field(min_length=1)] = BASELINE
    interventions: list[Intervention] = Field(default_factory=list)
    path: Path | None = Field(default=None, exclude=True)
    file_hash: str = Field(default="", exclude=True)

    @property
    def origin(self) -> str:
        """The file name used in error messages (or ``scenario '<name>'`` when built in code)."""
        return str(self.path) if self.path is not None else f"scenario '{self.name}'"

    @property
    def base_dir(self) -> Path:
        """The folder relative polygon paths are resolved against."""
        return self.path.parent if self.path is not None else Path.cwd()

    @staticmethod
    def baseline_scenario() -> Scenario:
        """The twin as built: no interventions."""
        return Scenario(name=BASELINE, description="The twin as built, no interventions.")


def intervention_label(index: int, intervention: Intervention) -> str:
    """How error messages and reports name an intervention: ``interventions[2] (close_streets)``."""
    return f"interventions[{index}] ({intervention.type})"


def parse_scenario(
    data: dict[str, Any], *, origin: str, path: Path | None = None, file_hash: str = ""
) -> Scenario:
    """Validate already-parsed TOML data; errors name ``origin``, the intervention and the key."""
    try:
        return Scenario.model_validate({**data, "path": path, "file_hash": file_hash})
    except ValidationError as exc:
        raise ScenarioError(_describe(exc, data), path=origin) from None


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario TOML file."""
    path = Path(path)
    if not path.is_file():
        raise ScenarioError("scenario file not found", path=path)
    raw = path.read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ScenarioError("not UTF-8 text", path=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"not valid TOML: {exc}", path=path) from None
    return parse_scenario(data, origin=str(path), path=path, file_hash=hashlib.sha256(raw).hexdigest())


def validate_scenario(scenario: Scenario, edges: gpd.GeoDataFrame, *, crs: str) -> list[str]:
    """Every problem with ``scenario`` on this network, one line each (empty: valid).

    Each selection is resolved on its own so that all bad selections are listed; then the whole
    scenario is applied, which finds problems that only appear in combination (no lane left for a bus
    lane, a reversal of a two-way street).
    """
    from civictwin.scenarios.interventions import apply_interventions
    from civictwin.scenarios.selection import resolve_intervention

    problems: list[str] = []
    for index in range(len(scenario.interventions)):
        try:
            resolve_intervention(edges, scenario, index, crs=crs)
        except ScenarioError as exc:
            problems.append(exc.user_message())
    if problems:
        return problems
    try:
        apply_interventions(edges, scenario, crs=crs)
    except ScenarioError as exc:
        problems.append(exc.user_message())
    return problems


def _describe(exc: ValidationError, data: dict[str, Any]) -> str:
    """The first validation error as ``where: problem``, naming interventions by index and type.

    ``interventions[1] (speed_limit): speed_kmh: Input should be greater than 0``.
    """
    err = exc.errors()[0]
    loc = list(err["loc"])
    label = ""
    if len(loc) >= 2 and loc[0] == "interventions" and isinstance(loc[1], int):
        index = loc[1]
        label = f"interventions[{index}]" + _type_suffix(data, index)
        loc = loc[2:]
        # pydantic adds the discriminator tag as a location step; the label already names it
        if loc and loc[0] == _type_of(data, index):
            loc = loc[1:]
    key = "".join(f"[{item}]" if isinstance(item, int) else f".{item}" for item in loc).lstrip(".")
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    elif err["type"] == "missing":
        message = "required key is missing"
    elif err["type"] == "union_tag_invalid":
        given = err["input"].get("type") if isinstance(err["input"], dict) else None
        message = f"unknown intervention type {given!r}; expected one of " + ", ".join(INTERVENTION_TYPES)
    elif err["type"] == "union_tag_not_found":
        message = "intervention needs a `type`: one of " + ", ".join(INTERVENTION_TYPES)
    message = message.removeprefix("Value error, ")
    return ": ".join(part for part in (label, key, message) if part)


def _type_of(data: dict[str, Any], index: int) -> str | None:
    items = data.get("interventions")
    if isinstance(items, list) and 0 <= index < len(items) and isinstance(items[index], dict):
        kind = items[index].get("type")
        return kind if isinstance(kind, str) else None
    return None


def _type_suffix(data: dict[str, Any], index: int) -> str:
    kind = _type_of(data, index)
    return f" ({kind})" if kind else ""


INTERVENTION_TYPES = (
    "close_streets",
    "one_way",
    "reverse",
    "speed_limit",
    "bus_lane",
    "modal_filter",
    "pedestrianise",
    "works_closure",
    "transit_frequency",
    "scale_demand",
)

_TEMPLATE = """\
# A civictwin scenario: a baseline plus interventions, applied in this order.
# Docs: docs/traffic-engine.md. Check it with `civictwin scenario validate <file>`.

name = "{name}"
description = "What changes, in plain language, for the report."
baseline = "baseline"   # or the name of another scenario this one builds on

# Selections (every network intervention except modal_filter needs at least one):
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
# type = "scale_demand"          # growth: factor; or an event: at + extra_trips
# factor = 1.1
"""


def scenario_template(name: str = "my_plan") -> str:
    """A commented TOML template with every intervention type, for ``civictwin scenario new``."""
    return _TEMPLATE.format(name=name)
