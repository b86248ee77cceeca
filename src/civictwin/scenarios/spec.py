"""Scenarios as data: a TOML file naming a baseline and a list of interventions of any engine.

Each intervention's ``type`` names a model declared by an installed engine (see
:class:`InterventionCatalog`); one scenario may combine interventions of several engines. The models
only describe interventions; each engine applies its own. Shared selection models live here too, so
every engine selects streets (:class:`StreetSelection`) and buildings (:class:`BuildingSelection`)
the same way. Every validation problem becomes one :class:`~civictwin.errors.ScenarioError` line
naming the file, the intervention (``interventions[2] (close_streets)``) and the key.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, model_validator

from civictwin.errors import ScenarioError
from civictwin.i18n import N_

BASELINE = "baseline"
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$"

LonLat = tuple[Annotated[float, Field(ge=-180, le=180)], Annotated[float, Field(ge=-90, le=90)]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Intervention(_Strict):
    """The base of every engine's intervention models: a ``type`` (narrowed to a ``Literal`` by each
    model) and a plain-words :meth:`describe` for reports."""

    type: str

    def describe(self) -> str:
        """The intervention's settings in a few words (models override this with better wording)."""
        values = self.model_dump(exclude={"type"}, exclude_defaults=True)
        return "; ".join(f"{key.replace('_', ' ')} {value}" for key, value in values.items()) or "defaults"


class StreetSelection(_Strict):
    """Which street edges an intervention touches: by street name, OSM id, edge id and/or polygon.

    Names, OSM ids and edge ids are united; a polygon restricts them (or, alone, selects the edges whose
    midpoint lies inside it). The polygon is WKT in WGS84 or a vector file path, relative to the scenario.
    Resolved by :func:`civictwin.scenarios.selection.select_edges`.
    """

    streets: list[Annotated[str, Field(min_length=1)]] | None = None
    osm_ids: list[int] | None = None
    edge_ids: list[Annotated[str, Field(min_length=1)]] | None = None
    polygon: Annotated[str, Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _something_selected(self) -> StreetSelection:
        if not any((self.streets, self.osm_ids, self.edge_ids, self.polygon)):
            raise ValueError(N_("select edges with at least one of streets, osm_ids, edge_ids or polygon"))
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


class BuildingSelection(_Strict):
    """Which buildings an intervention touches: in zones or a polygon, of some uses, built in a period.

    Every given criterion must hold (they intersect): ``zones`` (ids of the twin's ``zones``; a building
    belongs to the zone holding its footprint's representative point), ``polygon`` (WKT in WGS84 or a
    vector file path relative to the scenario; the representative point must lie inside), ``uses``
    (use classes of ``buildings_3d``: residential, commercial, ...), ``built_from`` / ``built_to``
    (construction years, inclusive; buildings without a known year are not selected), and ``osm_ids``
    (OSM ids of ``buildings_3d`` rows). Resolved by :func:`civictwin.scenarios.selection.select_buildings`.
    """

    zones: list[Annotated[str, Field(min_length=1)]] | None = None
    polygon: Annotated[str, Field(min_length=1)] | None = None
    uses: list[Annotated[str, Field(min_length=1)]] | None = None
    built_from: Annotated[int, Field(ge=1000, le=2200)] | None = None
    built_to: Annotated[int, Field(ge=1000, le=2200)] | None = None
    osm_ids: list[int] | None = None

    @model_validator(mode="after")
    def _something_selected(self) -> BuildingSelection:
        criteria = (self.zones, self.polygon, self.uses, self.built_from, self.built_to, self.osm_ids)
        if all(c is None or c == [] for c in criteria):
            raise ValueError(
                "select buildings with at least one of zones, polygon, uses, built_from, built_to or osm_ids"
            )
        if self.built_from is not None and self.built_to is not None and self.built_to < self.built_from:
            raise ValueError("built_to must not be before built_from")
        return self

    def describe(self) -> str:
        """A short human description, e.g. ``residential buildings built 1960–1979 in zones 8911aa``."""
        parts = [", ".join(self.uses) + " buildings" if self.uses else "buildings"]
        if self.built_from is not None or self.built_to is not None:
            low = self.built_from if self.built_from is not None else "…"
            high = self.built_to if self.built_to is not None else "…"
            parts.append(f"built {low}–{high}")
        if self.zones:
            parts.append("in zones " + ", ".join(self.zones))
        if self.polygon:
            parts.append("inside a polygon")
        if self.osm_ids:
            parts.append("with OSM ids " + ", ".join(map(str, self.osm_ids)))
        return " ".join(parts)


@dataclass(frozen=True)
class InterventionCatalog:
    """The intervention types the installed engines declare: ``type`` → model, and → engine name.

    Built by :func:`civictwin.engines.registry.intervention_catalog`; scenarios are parsed against it.
    """

    types: Mapping[str, type[BaseModel]]
    owners: Mapping[str, str]
    engines: tuple[str, ...]

    def parse(self, item: object, *, index: int, origin: str) -> Intervention:
        """Validate one ``[[interventions]]`` table; problems name ``origin`` and the intervention."""
        label = f"interventions[{index}]"
        if not isinstance(item, dict):
            raise ScenarioError("expected a table (use [[interventions]])", path=origin, field=label)
        kind = item.get("type")
        if not isinstance(kind, str):
            known = ", ".join(sorted(self.types)) or "none installed"
            raise ScenarioError(f"intervention needs a `type`: one of {known}", path=origin, field=label)
        label += f" ({kind})"
        model = self.types.get(kind)
        if model is None:
            installed = ", ".join(self.engines) or "none"
            raise ScenarioError(
                f"no installed engine knows the intervention type '{kind}' (installed engines: {installed})",
                path=origin,
                field=label,
            )
        try:
            parsed = model.model_validate(item)
        except ValidationError as exc:
            raise ScenarioError(_describe(exc, kind), path=origin, field=label) from None
        if not isinstance(parsed, Intervention):
            raise ScenarioError(
                f"engine '{self.owners[kind]}' declares a model that is not a civictwin Intervention",
                path=origin,
                field=label,
            )
        return parsed


class Scenario(_Strict):
    """One scenario: identity, the baseline it derives from, interventions, and the file it came from."""

    name: Annotated[str, Field(pattern=_NAME_PATTERN)]
    description: str = ""
    baseline: Annotated[str, Field(min_length=1)] = BASELINE
    interventions: list[SerializeAsAny[Intervention]] = Field(default_factory=list)
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
    data: dict[str, Any],
    catalog: InterventionCatalog,
    *,
    origin: str,
    path: Path | None = None,
    file_hash: str = "",
) -> Scenario:
    """Validate already-parsed TOML data against ``catalog``; errors name ``origin``, the intervention
    and the key."""
    items = data.get("interventions", [])
    if not isinstance(items, list):
        raise ScenarioError(
            "expected a list of tables (use [[interventions]])", path=origin, field="interventions"
        )
    try:
        scenario = Scenario.model_validate(
            {**data, "interventions": [], "path": path, "file_hash": file_hash}
        )
    except ValidationError as exc:
        raise ScenarioError(_describe(exc), path=origin) from None
    interventions = [catalog.parse(item, index=index, origin=origin) for index, item in enumerate(items)]
    return scenario.model_copy(update={"interventions": interventions})


def load_scenario(path: Path | str, catalog: InterventionCatalog) -> Scenario:
    """Read and validate a scenario TOML file against the installed engines' intervention types."""
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
    return parse_scenario(
        data, catalog, origin=str(path), path=path, file_hash=hashlib.sha256(raw).hexdigest()
    )


def _describe(exc: ValidationError, kind: str | None = None) -> str:
    """The first validation error as ``key: problem`` (``speed_kmh: Input should be greater than 0``).

    For an intervention, pydantic adds the discriminator tag ``kind`` as a location step; the label
    already names it.
    """
    err = exc.errors()[0]
    key = error_key(err["loc"], kind)
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    elif err["type"] == "missing":
        message = "required key is missing"
    message = message.removeprefix("Value error, ")
    return ": ".join(part for part in (key, message) if part)


def error_key(loc: Sequence[int | str], kind: str | None = None) -> str:
    """A pydantic error's location as a key path (``stops[1]``), without the discriminator tag ``kind``
    pydantic adds for an intervention."""
    steps = list(loc)
    if kind is not None and steps and steps[0] == kind:
        steps = steps[1:]
    return "".join(f"[{item}]" if isinstance(item, int) else f".{item}" for item in steps).lstrip(".")


_TEMPLATE = """\
# A civictwin scenario: a baseline plus interventions, applied in this order. An intervention's
# `type` says which engine applies it; one scenario may combine interventions of several engines.
# Docs: docs/engines.md and each engine's page. Check it with `civictwin scenario validate <file>`.

name = "{name}"
description = "What changes, in plain language, for the report."
baseline = "baseline"   # or the name of another scenario this one builds on
"""


def scenario_template(name: str = "my_plan", *, examples: Mapping[str, str] | None = None) -> str:
    """A commented TOML template for ``civictwin scenario new``, with each engine's commented
    ``examples`` (engine name → commented TOML lines)."""
    blocks = [_TEMPLATE.format(name=name)]
    blocks += [f"\n# ---- {engine} ----\n{text}" for engine, text in sorted((examples or {}).items())]
    return "".join(blocks)
