"""The energy engine's interventions (scenario data) and how they change the building inputs.

Each intervention is a pydantic model (a :class:`~civictwin.scenarios.spec.Intervention`) whose
``type`` names it in a scenario file; the scenario's catalogue validates them. Building interventions
inherit the shared :class:`~civictwin.scenarios.spec.BuildingSelection`, so they select by zone,
polygon, use and construction period like every engine, resolved by
:func:`civictwin.scenarios.selection.select_buildings`; one that selects no building is a one-line
:class:`~civictwin.errors.ScenarioError` naming the scenario file and the intervention.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

import geopandas as gpd
from pydantic import Field, model_validator

from civictwin.engines.energy.archetypes import VARIANTS
from civictwin.errors import ScenarioError
from civictwin.scenarios.selection import select_buildings
from civictwin.scenarios.spec import BuildingSelection, Intervention, Scenario, intervention_label

HeatingSystem = Literal["district_heating", "heat_pump", "gas_boiler", "oil_boiler", "electric"]
CARRIERS = ("electricity", "district_heating", "gas", "oil")


class EnvelopeRetrofit(BuildingSelection, Intervention):
    """Refurbish the envelope of the selected buildings to a TABULA refurbishment level."""

    type: Literal["envelope_retrofit"]
    level: Literal["usual", "advanced"] = "usual"

    def describe(self) -> str:
        """The level and the buildings."""
        return f"{self.level} TABULA envelope refurbishment of {BuildingSelection.describe(self)}"


class HeatingSwitch(BuildingSelection, Intervention):
    """Switch the selected buildings' space heating and hot water to a heat pump or district heating."""

    type: Literal["heating_system"]
    system: Literal["heat_pump", "district_heating"]

    def describe(self) -> str:
        """The new system and the buildings."""
        return f"{self.system.replace('_', ' ')} for {BuildingSelection.describe(self)}"


class PvUptake(BuildingSelection, Intervention):
    """Cover ``share`` of the selected buildings' usable roof area with PV modules."""

    type: Literal["pv_uptake"]
    share: Annotated[float, Field(gt=0, le=1)]

    def describe(self) -> str:
        """The share and the buildings."""
        return f"PV on {self.share:.0%} of the usable roofs of {BuildingSelection.describe(self)}"


class EmissionFactors(Intervention):
    """Grid and fuel emission factors (kg CO2 per kWh of final energy) for a year, with their source.

    Carriers not given keep the twin's values.
    """

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


EnergyIntervention = EnvelopeRetrofit | HeatingSwitch | PvUptake | EmissionFactors
INTERVENTION_TYPES: dict[str, type[Intervention]] = {
    "envelope_retrofit": EnvelopeRetrofit,
    "heating_system": HeatingSwitch,
    "pv_uptake": PvUptake,
    "emission_factors": EmissionFactors,
}


def energy_interventions(scenario: Scenario) -> list[tuple[int, EnergyIntervention]]:
    """The scenario's energy interventions with their index in the file (others' are left out)."""
    return [
        (index, item)
        for index, item in enumerate(scenario.interventions)
        if isinstance(item, EnvelopeRetrofit | HeatingSwitch | PvUptake | EmissionFactors)
    ]


def apply_interventions(
    buildings: gpd.GeoDataFrame,
    interventions: Sequence[tuple[int, EnergyIntervention]],
    *,
    zones: gpd.GeoDataFrame,
    factors: dict[str, float],
    scenario: Scenario,
) -> tuple[gpd.GeoDataFrame, dict[str, float], list[str]]:
    """The buildings (columns ``variant``, ``system``, ``pv_share``) and emission factors after the
    interventions, in order, with one line per intervention saying what it changed.

    ``buildings`` and ``zones`` are in the twin's metric CRS; ``interventions`` pairs each model with
    its index in ``scenario``'s file, for error messages.
    """
    out = buildings.copy()
    factors = dict(factors)
    lines: list[str] = []
    for index, item in interventions:
        label = intervention_label(index, item)
        if isinstance(item, EmissionFactors):
            factors.update({c: getattr(item, c) for c in CARRIERS if getattr(item, c) is not None})
            lines.append(f"{label}: emission factors {item.describe()}")
            continue
        try:
            mask = select_buildings(
                out, item, crs=str(out.crs), base_dir=scenario.base_dir, zones=zones
            ).to_numpy()
        except ScenarioError as exc:
            field = label + (f": {exc.field}" if exc.field else "")
            raise ScenarioError(exc.message, path=scenario.origin, field=field) from None
        lines.append(f"{label}: {int(mask.sum())} buildings ({item.describe()})")
        if isinstance(item, EnvelopeRetrofit):
            out.loc[mask, "variant"] = VARIANTS[item.level]
        elif isinstance(item, HeatingSwitch):
            out.loc[mask, "system"] = item.system
        elif isinstance(item, PvUptake):
            out.loc[mask, "pv_share"] = item.share
    return out, factors, lines


SCENARIO_EXAMPLES = """\
# Energy (building selections: every criterion given must hold, at least one is needed):
#   zones      = ["891126d3307ffff"]      ids of the twin's analysis zones
#   polygon    = "POLYGON ((lon lat, ...))" WKT in WGS84, or a file path relative to this file
#   uses       = ["residential"]          use classes of buildings_3d
#   built_from = 1900, built_to = 1979    construction years, inclusive (unknown years never match)
# A selection that matches no building is an error.

# [[interventions]]
# type = "envelope_retrofit"     # TABULA refurbishment of walls, roof, floor and windows
# uses = ["residential"]
# built_to = 1979
# level = "usual"                # usual | advanced

# [[interventions]]
# type = "heating_system"
# zones = ["891126d3307ffff"]
# system = "heat_pump"           # heat_pump | district_heating

# [[interventions]]
# type = "pv_uptake"
# uses = ["residential"]
# share = 0.5                    # share of the usable roof area covered with modules

# [[interventions]]
# type = "emission_factors"      # a target year's factors, kg CO2 per kWh of final energy
# year = 2040
# source = "Helen: zero-emission energy by 2040"
# electricity = 0.0
# district_heating = 0.0
"""
