"""The NetZero buildings engine behind the engine seam: prepare from the twin and a scenario, run a seed.

Thin on purpose: :meth:`EnergyEngine.prepare` reads the twin (``buildings_3d``, ``zones``, an optional
LoD2 ``building_surfaces`` table) and the files ``[energy]`` in ``twin.toml`` names, applies the
scenario's energy interventions and hands plain :class:`~civictwin.engines.energy.model.EnergyInputs`
on; :meth:`EnergyEngine.run` simulates one seed and turns the result into KPIs and tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pydantic import BaseModel

from civictwin.config import CONFIG_FILENAME, DataFileConfig, TwinConfig
from civictwin.engines.energy import params
from civictwin.engines.energy.archetypes import load_use_profiles, read_typology
from civictwin.engines.energy.geometry import envelope_geometry, flat_roof_pv_area
from civictwin.engines.energy.interventions import INTERVENTION_TYPES, apply_interventions, parse_intervention
from civictwin.engines.energy.model import EnergyInputs, archetype_rows, building_inputs, simulate_city
from civictwin.engines.energy.pv import RoofPlanes, flat_roof_planes, surface_roof_planes
from civictwin.engines.energy.results import (
    BUILDING_VALUES,
    ZONE_VALUES,
    KpiValue,
    building_table,
    city_kpis,
    zone_table,
)
from civictwin.engines.energy.weather import facade_irradiance, read_weather
from civictwin.errors import ConfigError, EngineError
from civictwin.store.base import Store

ENGINE_VERSION = "1.0"


class TwinLike(Protocol):
    """What the engine needs of the twin: its configuration and a read-only store."""

    config: TwinConfig

    def open_store(self) -> AbstractContextManager[Store]:
        """The twin's store, read-only."""
        ...


class ScenarioLike(Protocol):
    """What the engine needs of a scenario: its interventions and where it came from."""

    interventions: Sequence[Any]

    @property
    def origin(self) -> str:
        """The file name for error messages."""
        ...

    @property
    def base_dir(self) -> Path:
        """The folder polygon files are relative to."""
        ...


@dataclass(frozen=True)
class EnergyTable:
    """A table the engine returns for every seed (the engine seam's TableSpec fields)."""

    name: str
    key: tuple[str, ...]
    layer: str | None
    values: tuple[tuple[str, str], ...]
    label: str


@dataclass(frozen=True)
class EnergyRun:
    """One seed's KPIs, tables and notes (the engine seam's EngineResult fields)."""

    kpis: tuple[KpiValue, ...]
    tables: Mapping[str, pd.DataFrame]
    notes: tuple[str, ...] = ()


class EnergyEngine:
    """NetZero buildings: ISO 13790 5R1C demand, TABULA archetypes, pvlib rooftop PV, CO2."""

    name = "energy"
    version = ENGINE_VERSION
    intervention_types: Mapping[str, type[BaseModel]] = INTERVENTION_TYPES
    tables = (
        EnergyTable("buildings", ("osm_type", "osm_id"), "buildings_3d", BUILDING_VALUES, "Buildings"),
        EnergyTable("zones", ("zone_id",), "zones", ZONE_VALUES, "Zones"),
    )
    reads = ("buildings_3d", "zones", "building_surfaces")

    def prepare(self, twin: TwinLike, scenario: ScenarioLike, *, workdir: Path | None = None) -> EnergyInputs:
        """Read the twin, apply the scenario's energy interventions; picklable inputs for :meth:`run`."""
        config = twin.config
        settings = config.energy
        weather_file = _required(config, settings.weather, "weather", "an EPW weather file")
        typology_file = _required(config, settings.typology, "typology", "a TABULA typology CSV")
        weather = read_weather(config.resolve(weather_file.path))
        typology = read_typology(config.resolve(typology_file.path))
        with twin.open_store() as store:
            frame = store.read_frame("buildings_3d")
            zones = store.read_frame("zones")
            surfaces = store.read_frame("building_surfaces") if store.has_table("building_surfaces") else None
        if frame.empty:
            raise EngineError("the twin has no buildings (buildings_3d is empty)", field="energy")
        frame = _with_zones(frame, zones)
        inputs, notes = _inputs(config, frame, typology=typology, weather_surfaces=(weather, surfaces))
        interventions = [
            (i, parse_intervention(item, origin=scenario.origin, index=i))
            for i, item in enumerate(scenario.interventions)
            if _type_of(item) in INTERVENTION_TYPES
        ]
        buildings = gpd.GeoDataFrame(inputs.buildings, geometry=frame.geometry.to_numpy(), crs=frame.crs)
        changed, factors, lines = apply_interventions(
            buildings, interventions, factors=inputs.emission_factors, crs=config_crs(frame),
            origin=scenario.origin, base_dir=scenario.base_dir,
        )  # fmt: skip
        table = pd.DataFrame(changed.drop(columns="geometry"))
        table["archetype_row"] = archetype_rows(
            typology, table["size_class"].to_numpy(), table["year"].to_numpy(), table["variant"].to_numpy()
        )
        notes += [f"{line}" for line in lines]
        return EnergyInputs(
            buildings=table, facade_m2=inputs.facade_m2, roof_planes=inputs.roof_planes, typology=typology,
            use_profiles=inputs.use_profiles, weather=weather, irradiance=inputs.irradiance,
            emission_factors=factors, notes=tuple(notes),
        )  # fmt: skip

    def run(self, inputs: EnergyInputs, *, seed: int, workdir: Path | None = None) -> EnergyRun:
        """One seed: the year simulated, KPIs and the per-building and per-zone tables."""
        result = simulate_city(inputs, seed=seed)
        tables = {"buildings": building_table(result), "zones": zone_table(result)}
        return EnergyRun(kpis=city_kpis(result), tables=tables, notes=inputs.notes)


def config_crs(frame: gpd.GeoDataFrame) -> str:
    """The twin's CRS as text (the buildings are stored in it)."""
    return str(frame.crs)


def _type_of(item: Any) -> str | None:
    kind = item.get("type") if isinstance(item, Mapping) else getattr(item, "type", None)
    return kind if isinstance(kind, str) else None


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
    config: TwinConfig, frame: gpd.GeoDataFrame, *, typology: pd.DataFrame, weather_surfaces: tuple[Any, Any]
) -> tuple[_Prepared, list[str]]:
    weather, surfaces = weather_surfaces
    settings = config.energy
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
        use_profiles=load_use_profiles(names), irradiance=facade_irradiance(weather), emission_factors=factors,
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
