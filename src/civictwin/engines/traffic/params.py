"""The traffic engine's parameters: demand, mode choice, feedback rounds and SUMO settings.

A twin's values live in ``<twin dir>/traffic.toml`` (the :class:`TrafficParams` fields, with
``[demand]`` and ``[mode_choice]`` tables); command-line options override top-level values.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from civictwin.engines.traffic.demand import DemandParams
from civictwin.engines.traffic.gateways import GatewayFlow, GatewaySettings
from civictwin.engines.traffic.modechoice import ModeChoiceParams
from civictwin.engines.traffic.pivot import BaseModes
from civictwin.engines.traffic.run import SimOptions
from civictwin.engines.traffic.sites import CalibrationSettings
from civictwin.engines.traffic.transit import BusSettings
from civictwin.errors import ConfigError

PARAMS_FILENAME = "traffic.toml"


class TrafficParams(BaseModel):
    """Everything besides the scenario and the seed that shapes a traffic run's numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    demand: DemandParams = DemandParams()
    mode_choice: ModeChoiceParams = ModeChoiceParams()
    iterations: Annotated[int, Field(ge=1, le=20)] = 3
    """Simulations per seed; between them the mode choice sees the simulated car times."""
    od_csv: str | None = None
    """A user OD matrix (person trips per hour) replacing the gravity model."""
    od_source: Literal["gravity", "phone", "phone_prior"] = "gravity"
    """The base person-trip matrix: the gravity model, the twin's phone-based ``mobility_od`` table in
    its place, or the gravity model with each origin's total from ``mobility_od`` (``phone_prior``)."""
    phone_od_hour: Annotated[int, Field(ge=0, le=23)] | None = None
    """With ``od_source = "phone"`` or ``"phone_prior"``: the clock hour of the phone OD matrix that is
    the demand window's first hour, the next hours following it (default: its busiest hour)."""
    demand_window_s: Annotated[float, Field(gt=0)] = 3600.0
    clearance_s: Annotated[float, Field(ge=0)] = 1800.0
    """Simulated time after the demand window for the last trips to arrive."""
    warmup_s: Annotated[float, Field(ge=0, le=3600)] = 0.0
    """Simulated time before the demand window (s), at the window's first-hour demand, so the
    streets are not empty when counting and the KPIs begin (:mod:`~civictwin.engines.traffic.warmup`);
    at most the demand window. Nothing in the warm-up enters a KPI or a count."""
    time_to_impatience_s: Annotated[float, Field(gt=0)] = 180.0
    """Waiting time (s) over which a driver at a junction grows impatient enough to impede traffic
    with priority (SUMO's ``--time-to-impatience``; 180 s is SUMO's default). Under heavy demand a
    shorter time (30 s on the demo, an assumption tested there: docs/methods-calibration.md, section
    4) keeps the centre from locking up on queues waiting for gaps at its unsignalled junctions."""
    ignore_junction_blocker_s: Annotated[float, Field(gt=0)] | None = None
    """Seconds after which vehicles pass one that stands blocking a junction (SUMO's
    ``--ignore-junction-blocker``; unset, SUMO's default: never). A turning queue standing inside a
    junction whose exit is jammed holds every foe stream until SUMO teleports them; on the calibrated
    demo one seed of the baseline locked up that way (60 s there, an assumption tested on it:
    docs/methods-calibration.md, section 4)."""
    mesoscopic: bool = False
    focus_zones: tuple[str, ...] = ()
    """Analysis zones re-simulated microscopically on the city run's traffic entering them (a focus area
    inside a mesoscopic run: docs/traffic-engine.md, "Micro and meso"); their KPIs are ``focus_*``."""
    max_teleport_share: Annotated[float, Field(ge=0, le=1)] = 0.05
    max_unfinished_share: Annotated[float, Field(ge=0, le=1)] = 0.05
    count_edges: tuple[str, ...] = ()
    """Directed edges with a counting point: the simulation counts vehicles on them hour by hour."""
    od_factors: tuple[tuple[str, str, Annotated[float, Field(ge=0)]], ...] = ()
    """(origin zone, destination zone, factor) on the base person-trip matrix, from a calibration."""
    calibration_record: str | None = None
    """The calibration record (``<twin>/calibration/``) ``count_edges`` and ``od_factors`` come from."""
    base_modes: BaseModes | None = Field(default=None, exclude=True)
    """The calibrated base day's mode shares the mode choice pivots on (from the calibration record,
    set by the twin, not in ``traffic.toml``; not dumped: ``calibration_record`` names it)."""
    calibration: CalibrationSettings = CalibrationSettings()
    """How to calibrate (the ``[calibration]`` table; see docs/methods-calibration.md)."""
    gateways: GatewaySettings = GatewaySettings()
    """Traffic entering, leaving and crossing the area at its boundary (the ``[gateways]`` table)."""
    simulate_bikes: bool = False
    """Ride the mode choice's bike trips in SUMO as ``bicycle`` vehicles (docs/methods-transit.md)."""
    buses: BusSettings = BusSettings()
    """How the twin's GTFS buses and a scenario's new lines are simulated (the ``[buses]`` table)."""
    gateway_flows: tuple[GatewayFlow, ...] = ()
    """Gateway flows from counts or a calibration record (set by the twin, not in ``traffic.toml``);
    gateways without one take the ``[gateways]`` defaults."""
    gateway_factors: tuple[tuple[str, str, Annotated[float, Field(ge=0)]], ...] = ()
    """(start, end, factor) on cells of the gateway matrix (``in:<node>`` or a zone to ``out:<node>``
    or a zone), from a calibration record: applied to the flows above (set by the twin)."""

    def sim_options(self) -> SimOptions:
        """The SUMO options these parameters imply."""
        return SimOptions(
            end_s=self.demand_window_s + self.clearance_s,
            mesoscopic=self.mesoscopic,
            max_teleport_share=self.max_teleport_share,
            max_unfinished_share=self.max_unfinished_share,
            count_edges=self.count_edges,
            warmup_s=self.warmup_s,
            time_to_impatience_s=self.time_to_impatience_s,
            ignore_junction_blocker_s=self.ignore_junction_blocker_s,
            write_routes=bool(self.focus_zones),
        )

    @field_validator("warmup_s")
    @classmethod
    def _warmup_within_window(cls, value: float, info: ValidationInfo) -> float:
        window = info.data.get("demand_window_s")
        if window is not None and value > window:
            raise ValueError(f"longer than the demand window ({window:g} s) whose first seconds it replays")
        return value

    @field_validator("focus_zones")
    @classmethod
    def _focus_without_warmup(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        # The focus cut takes the city run's routes on SUMO's clock, which a warm-up shifts; the two
        # were built side by side and have not been made to agree yet.
        if value and info.data.get("warmup_s"):
            raise ValueError("a focus area cannot be combined with a warm-up (warmup_s) yet")
        return value


def load_params(twin_dir: Path, **overrides: Any) -> TrafficParams:
    """The twin's traffic parameters: ``<twin dir>/traffic.toml`` if present, else the defaults.

    ``overrides`` (e.g. ``iterations=2`` from the command line) replace top-level values; ``None`` values
    are ignored.
    """
    path = twin_dir / PARAMS_FILENAME
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"not valid TOML: {exc}", path=path) from None
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrafficParams.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise ConfigError(f"{key}: {message}", path=path if path.is_file() else "parameters") from None
