"""The energy engine's interventions (scenario data) and how they change the building inputs.

Each intervention is a pydantic model whose ``type`` names it in a scenario file. Building
interventions inherit :class:`~civictwin.engines.energy.selection.BuildingSelection`, so they select by
zone, polygon, use and construction period like every building engine; one that selects no building
is a one-line :class:`~civictwin.errors.ScenarioError` naming the intervention.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import geopandas as gpd
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from civictwin.engines.energy.archetypes import VARIANTS
from civictwin.engines.energy.selection import BuildingSelection, select_buildings
from civictwin.errors import ScenarioError

HeatingSystem = Literal["district_heating", "heat_pump", "gas_boiler", "oil_boiler", "electric"]
CARRIERS = ("electricity", "district_heating", "gas", "oil")


class EnvelopeRetrofit(BuildingSelection):
    """Refurbish the envelope of the selected buildings to a TABULA refurbishment level."""

    type: Literal["envelope_retrofit"]
    level: Literal["usual", "advanced"] = "usual"


class HeatingSwitch(BuildingSelection):
    """Switch the selected buildings' space heating and hot water to a heat pump or district heating."""

    type: Literal["heating_system"]
    system: Literal["heat_pump", "district_heating"]


class PvUptake(BuildingSelection):
    """Cover ``share`` of the selected buildings' usable roof area with PV modules."""

    type: Literal["pv_uptake"]
    share: Annotated[float, Field(gt=0, le=1)]


class EmissionFactors(BaseModel):
    """Grid and fuel emission factors (kg CO2 per kWh of final energy) for a year, with their source.

    Carriers not given keep the twin's values.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["emission_factors"]
    year: Annotated[int, Field(ge=1990, le=2100)]
    source: Annotated[str, Field(min_length=1)]
    electricity: Annotated[float, Field(ge=0, le=2)] | None = None
    district_heating: Annotated[float, Field(ge=0, le=2)] | None = None
    gas: Annotated[float, Field(ge=0, le=2)] | None = None
    oil: Annotated[float, Field(ge=0, le=2)] | None = None

    @model_validator(mode="after")
    def _some_factor(self) -> EmissionFactors:
        if all(getattr(self, c) is None for c in CARRIERS):
            raise ValueError(f"give at least one factor: {', '.join(CARRIERS)}")
        return self

    def describe(self) -> str:
        """The year and the factors given."""
        given = ", ".join(f"{c} {getattr(self, c):g}" for c in CARRIERS if getattr(self, c) is not None)
        return f"{self.year}: {given} kg/kWh ({self.source})"


EnergyIntervention = Annotated[
    EnvelopeRetrofit | HeatingSwitch | PvUptake | EmissionFactors, Field(discriminator="type")
]
INTERVENTION_TYPES: dict[str, type[BaseModel]] = {
    "envelope_retrofit": EnvelopeRetrofit,
    "heating_system": HeatingSwitch,
    "pv_uptake": PvUptake,
    "emission_factors": EmissionFactors,
}
_ADAPTER: TypeAdapter[Any] = TypeAdapter(EnergyIntervention)


def parse_intervention(data: BaseModel | Mapping[str, Any], *, origin: str, index: int) -> BaseModel:
    """One intervention as this engine's model (already-built models pass through)."""
    if isinstance(data, (EnvelopeRetrofit, HeatingSwitch, PvUptake, EmissionFactors)):
        return data
    raw = data.model_dump() if isinstance(data, BaseModel) else dict(data)
    try:
        model: BaseModel = _ADAPTER.validate_python(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"][1:])
        label = f"interventions[{index}] ({raw.get('type')})" + (f": {key}" if key else "")
        raise ScenarioError(err["msg"].removeprefix("Value error, "), path=origin, field=label) from None
    return model


def apply_interventions(
    buildings: gpd.GeoDataFrame,
    interventions: Sequence[tuple[int, BaseModel]],
    *,
    factors: dict[str, float],
    crs: str,
    origin: str,
    base_dir: Path,
) -> tuple[gpd.GeoDataFrame, dict[str, float], list[str]]:
    """The buildings (columns ``variant``, ``system``, ``pv_share``) and emission factors after the
    interventions, in order, with one line per intervention saying what it changed.

    ``interventions`` pairs each model with its index in the scenario file for error messages.
    """
    out = buildings.copy()
    factors = dict(factors)
    lines: list[str] = []
    for index, item in interventions:
        label = f"interventions[{index}] ({getattr(item, 'type', '?')})"
        if isinstance(item, EmissionFactors):
            factors.update({c: getattr(item, c) for c in CARRIERS if getattr(item, c) is not None})
            lines.append(f"{label}: emission factors {item.describe()}")
            continue
        assert isinstance(item, BuildingSelection)
        try:
            mask = select_buildings(out, item, crs=crs, base_dir=base_dir)
        except ScenarioError as exc:
            field = label + (f": {exc.field}" if exc.field else "")
            raise ScenarioError(exc.message, path=origin, field=field) from None
        lines.append(f"{label}: {int(mask.sum())} buildings ({item.describe()})")
        if isinstance(item, EnvelopeRetrofit):
            out.loc[mask, "variant"] = VARIANTS[item.level]
        elif isinstance(item, HeatingSwitch):
            out.loc[mask, "system"] = item.system
        elif isinstance(item, PvUptake):
            out.loc[mask, "pv_share"] = item.share
    return out, factors, lines
