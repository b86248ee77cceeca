"""The NetZero buildings engine behind the engine seam: prepare from the twin and a scenario, run a seed.

Registered like any third-party engine (``pyproject.toml``, entry point group ``civictwin.engines``).
:meth:`EnergyEngine.prepare` reads the twin (``buildings_3d``, ``zones``, an optional LoD2
``building_surfaces`` table) and the files ``[energy]`` in ``twin.toml`` names, applies the
scenario's energy interventions and hands plain :class:`~civictwin.engines.energy.model.EnergyInputs`
on; :meth:`EnergyEngine.run` simulates one seed and returns its KPIs and the per-building (mapped onto
``buildings_3d``) and per-zone (mapped onto ``zones``) tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pydantic import ValidationError

from civictwin import __version__
from civictwin.config import CONFIG_FILENAME, DataFileConfig, EnergySection, TwinConfig
from civictwin.engines.base import EngineResult, TableSpec, TwinContext
from civictwin.engines.energy import params
from civictwin.engines.energy.archetypes import load_use_profiles, read_typology
from civictwin.engines.energy.geometry import envelope_geometry, flat_roof_pv_area
from civictwin.engines.energy.interventions import (
    INTERVENTION_TYPES,
    SCENARIO_EXAMPLES,
    apply_interventions,
    energy_interventions,
)
from civictwin.engines.energy.model import EnergyInputs, archetype_rows, building_inputs, simulate_city
from civictwin.engines.energy.pv import RoofPlanes, flat_roof_planes, surface_roof_planes
from civictwin.engines.energy.results import (
    BUILDING_VALUES,
    ZONE_VALUES,
    building_table,
    city_kpis,
    zone_table,
)
from civictwin.engines.energy.weather import Weather, facade_irradiance, read_weather
from civictwin.errors import CivicTwinError, ConfigError, EngineError, ScenarioError
from civictwin.i18n import N_
from civictwin.scenarios.spec import Intervention, Scenario

MODEL_VERSION = "1.0"
"""The energy model's own version: raise it when the numbers change for the same inputs."""

BUILDINGS = TableSpec(
    name="buildings",
    key=("osm_type", "osm_id"),
    layer="buildings_3d",
    values=BUILDING_VALUES,
    label=N_("Buildings: heating need, final energy, CO2 and rooftop PV"),
)
ZONES = TableSpec(
    name="zones",
    key=("zone_id",),
    layer="zones",
    values=ZONE_VALUES,
    label=N_("Analysis zones: buildings' heating need, energy, CO2 and PV"),
)


class EnergyEngine:
    """NetZero buildings: ISO 13790 5R1C demand, TABULA archetypes, pvlib rooftop PV, CO2."""

    name = "energy"
    version = f"{__version__} (energy model {MODEL_VERSION})"
    intervention_types: Mapping[str, type[Intervention]] = INTERVENTION_TYPES
    tables = (BUILDINGS, ZONES)
    reads = ("buildings_3d", "zones", "building_surfaces")

    def settings(self, twin: TwinContext) -> EnergySection:
        """``[energy]`` of ``twin.toml`` with the command line's overrides (``--set energy.KEY=VALUE``)."""
        config = _config(twin)
        overrides = dict(twin.options_for(self.name))
        if not overrides:
            return config.energy
        try:
            return EnergySection.model_validate({**config.energy.model_dump(), **overrides})
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(part) for part in err["loc"]) or "energy"
            message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            raise ConfigError(
                message, path=config.base_dir / CONFIG_FILENAME, field=f"energy.{key}"
            ) from None

    def parameters(self, twin: TwinContext) -> Mapping[str, Any]:
        """``[energy]`` (files, fallback year, heating system, emission factors) and the uncertain
        parameters with their ranges, central values, sources and whether seeds draw them."""
        settings = self.settings(twin)
        drawn = set(params.sampled(assumed=settings.sample_assumed_ranges))
        uncertain = {
            name: {"low": r.low, "high": r.high, "central": None if np.isnan(r.central) else r.central,
                   "sampled": name in drawn, "source": r.source}
            for name, r in params.RANGES.items()
        }  # fmt: skip
        return {"energy": settings.model_dump(mode="json"), "uncertain": uncertain}

    def prepare(self, twin: TwinContext, scenario: Scenario, *, workdir: Path) -> EnergyInputs:
        """Read the twin, apply the scenario's energy interventions; picklable inputs for :meth:`run`."""
        config = _config(twin)
        settings = self.settings(twin)
        weather_file = _required(config, settings.weather, "weather", "an EPW weather file")
        typology_file = _required(config, settings.typology, "typology", "a TABULA typology CSV")
        weather, irradiance = _weather_year(config.resolve(weather_file.path))
        typology = read_typology(config.resolve(typology_file.path))
        with twin.open_store() as store:
            frame = store.read_frame("buildings_3d")
            zones = store.read_frame("zones")
            surfaces = store.read_frame("building_surfaces") if store.has_table("building_surfaces") else None
        if frame.empty:
            raise EngineError("the twin has no buildings (buildings_3d is empty)", field="energy")
        frame = _with_zones(frame, zones)
        inputs, notes = _inputs(
            config,
            settings,
            frame,
            typology=typology,
            weather_surfaces=(weather, surfaces),
            irradiance=irradiance,
        )
        buildings = gpd.GeoDataFrame(inputs.buildings, geometry=frame.geometry.to_numpy(), crs=frame.crs)
        changed, factors, lines = apply_interventions(
            buildings, energy_interventions(scenario), zones=zones, factors=inputs.emission_factors,
            scenario=scenario,
        )  # fmt: skip
        table = pd.DataFrame(changed.drop(columns="geometry"))
        table["archetype_row"] = archetype_rows(
            typology, table["size_class"].to_numpy(), table["year"].to_numpy(), table["variant"].to_numpy()
        )
        notes += lines
        notes.append(_uncertainty_note(settings.sample_assumed_ranges))
        return EnergyInputs(
            buildings=table, facade_m2=inputs.facade_m2, roof_planes=inputs.roof_planes, typology=typology,
            use_profiles=inputs.use_profiles, weather=weather, irradiance=inputs.irradiance,
            emission_factors=factors, notes=tuple(notes), sample_assumed_ranges=settings.sample_assumed_ranges,
        )  # fmt: skip

    def run(self, inputs: EnergyInputs, *, seed: int, workdir: Path) -> EngineResult:
        """One seed: the year simulated, KPIs and the per-building and per-zone tables."""
        result = simulate_city(inputs, seed=seed)
        tables = {BUILDINGS.name: building_table(result), ZONES.name: zone_table(result)}
        details = {
            "buildings": len(result.buildings),
            "heated_buildings": int(result.buildings["heated"].sum()),
            "weather_station": inputs.weather.station,
        }
        return EngineResult(kpis=city_kpis(result), tables=tables, notes=inputs.notes, details=details)

    def check(self, twin: TwinContext, scenario: Scenario) -> list[str]:
        """Problems of the scenario's energy interventions on this twin: every selection is resolved
        against its buildings and zones by preparing the scenario (without simulating it), so the
        first problem met is the one line reported."""
        if not energy_interventions(scenario):
            return []
        try:
            self.prepare(twin, scenario, workdir=twin.twin_dir)
        except ScenarioError as exc:
            return [exc.user_message()]
        except CivicTwinError as exc:
            return [f"energy: {exc.user_message()}"]
        return []

    def scenario_examples(self) -> str:
        """The commented energy interventions for ``civictwin scenario new``."""
        return SCENARIO_EXAMPLES


def _weather_year(path: Path) -> tuple[Weather, np.ndarray]:
    """The EPW year and its façade and roof irradiance, computed once per file version in a process
    (every scenario of a comparison is prepared from the same year)."""
    stamp = path.stat().st_mtime_ns if path.is_file() else -1
    return _weather_year_of(path, stamp)


@lru_cache(maxsize=2)
def _weather_year_of(path: Path, stamp: int) -> tuple[Weather, np.ndarray]:
    weather = read_weather(path)
    return weather, facade_irradiance(weather)


def _config(twin: TwinContext) -> TwinConfig:
    if twin.config is None:
        raise ConfigError(
            "the energy engine needs a twin with its twin.toml", path=twin.twin_dir / CONFIG_FILENAME
        )
    return twin.config


def _uncertainty_note(assumed: bool) -> str:
    drawn = params.sampled(assumed=assumed)
    fixed = [name for name in params.RANGES if name not in drawn]
    if not drawn:
        return (
            "uncertainty: no uncertain parameter has a published range and energy.sample_assumed_ranges = "
            f"false holds the assumed ones at their central values ({', '.join(fixed)}): seeds agree exactly "
            "and intervals are zero"
        )
    text = f"uncertainty: each seed draws {', '.join(drawn)}"
    if assumed:
        text += " (ranges that are assumptions, docs/methods-energy.md; energy.sample_assumed_ranges = false holds them)"
    return text + (f"; held at central values: {', '.join(fixed)}" if fixed else "")


def _required(config: TwinConfig, value: DataFileConfig | None, key: str, what: str) -> DataFileConfig:
    if value is None:
        origin = config.base_dir / CONFIG_FILENAME
        raise ConfigError(f"not set: the energy engine needs {what}", path=origin, field=f"energy.{key}")
    return value


def _with_zones(frame: gpd.GeoDataFrame, zones: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The buildings with ``zone_id``: the zone holding each footprint's representative point."""
    points = shapely.point_on_surface(frame.geometry.to_numpy())
    tree = shapely.STRtree(zones.geometry.to_numpy())
    point_index, zone_index = tree.query(points, predicate="within")
    zone_id = np.full(len(frame), "", dtype=object)
    zone_id[point_index] = zones["zone_id"].astype(str).to_numpy()[zone_index]
    return frame.assign(zone_id=np.where(zone_id == "", "outside", zone_id))


@dataclass(frozen=True)
class _Prepared:
    buildings: pd.DataFrame
    facade_m2: np.ndarray
    roof_planes: RoofPlanes
    use_profiles: dict[str, Any]
    irradiance: np.ndarray
    emission_factors: dict[str, float]


def _inputs(
    config: TwinConfig,
    settings: EnergySection,
    frame: gpd.GeoDataFrame,
    *,
    typology: pd.DataFrame,
    weather_surfaces: tuple[Any, Any],
    irradiance: np.ndarray,
) -> tuple[_Prepared, list[str]]:
    weather, surfaces = weather_surfaces
    footprints = frame.geometry.to_numpy()
    geometry = envelope_geometry(footprints, frame["height_m"].to_numpy(dtype=float))
    fallback, fallback_note = _fallback_year(frame, settings.fallback_year, config)
    buildings = building_inputs(
        frame, geometry, typology=typology, fallback_year=fallback, system=settings.heating_system
    )
    if surfaces is not None:
        position = pd.Series(
            np.arange(len(frame)), index=pd.MultiIndex.from_frame(frame[["osm_type", "osm_id"]])
        )
        roofs = surfaces[surfaces["surface"] == "roof"] if "surface" in surfaces else surfaces
        index = pd.Series(
            position.reindex(pd.MultiIndex.from_frame(roofs[["osm_type", "osm_id"]])).to_numpy()
        )
        planes = surface_roof_planes(roofs.reset_index(drop=True), index, latitude=weather.latitude)
        roof_note = f"roofs for PV from building_surfaces (LoD2, {len(roofs)} roof planes)"
    else:
        usable = flat_roof_pv_area(footprints, setback_m=params.PV_SETBACK_M)
        planes = flat_roof_planes(usable, latitude=weather.latitude)
        roof_note = (
            f"roofs for PV from LoD1 footprints, all taken as flat: modules at {15:g}° towards the equator "
            f"on half the roof left after a {params.PV_SETBACK_M:g} m edge setback"
        )
    names: set[str] = {str(n) for n in buildings["use_condition"].dropna()}
    factors: dict[str, float] = dict(params.DEFAULT_EMISSION_FACTORS)
    factors.update({str(k): float(v) for k, v in settings.emission_factors.items()})
    source = settings.emission_factors_source if settings.emission_factors else params.DEFAULT_EMISSION_SOURCE
    notes = [
        f"weather: {weather.station}, {Path(weather.path).name} ({_cite(settings.weather)})",
        f"typology: {Path(settings.typology.path).name if settings.typology else ''} ({_cite(settings.typology)})",
        fallback_note,
        _share_note(
            frame["height_source"].eq("default").to_numpy(),
            "without a tagged height or storeys, given the default storeys of their building type",
        ),
        _share_note(
            buildings["use_condition"].isna().to_numpy(), "unheated (garages, sheds, farm buildings)"
        ),
        "emission factors (kg CO2/kWh): "
        + ", ".join(f"{k} {v:g}" for k, v in sorted(factors.items()))
        + f"; source: {source}",
        roof_note,
        f"heating system of every building unless a scenario switches it: {settings.heating_system}",
    ]
    prepared = _Prepared(
        buildings=buildings, facade_m2=geometry.facade_m2, roof_planes=planes,
        use_profiles=load_use_profiles(names), irradiance=irradiance, emission_factors=factors,
    )  # fmt: skip
    return prepared, notes


def _fallback_year(frame: gpd.GeoDataFrame, configured: int | None, config: TwinConfig) -> tuple[int, str]:
    from civictwin.engines.energy.model import construction_year

    years = frame["start_date"].map(construction_year) if "start_date" in frame else pd.Series(dtype=float)
    known = years.dropna()
    missing = len(frame) - len(known)
    if configured is not None:
        year, how = configured, "energy.fallback_year"
    elif len(known):
        year, how = round(float(known.median())), f"the median of the {len(known)} known years"
    else:
        raise ConfigError(
            "no building has a construction year (OSM start_date); set energy.fallback_year",
            path=config.base_dir / CONFIG_FILENAME, field="energy.fallback_year",
        )  # fmt: skip
    share = 100 * missing / len(frame)
    return (
        year,
        f"{missing} of {len(frame)} buildings ({share:.0f}%) without a construction year took {year} ({how})",
    )


def _share_note(mask: np.ndarray, what: str) -> str:
    return f"{int(mask.sum())} of {len(mask)} buildings ({100 * mask.mean():.0f}%) {what}"


def _cite(item: DataFileConfig | None) -> str:
    if item is None:
        return ""
    text = f"{item.publisher}, {item.licence}"
    return f"{text}; {item.note}" if item.note else text
