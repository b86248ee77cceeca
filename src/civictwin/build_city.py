"""The build steps that bring the city's own data into the model: city buildings, city streets, terrain.

Called by :mod:`civictwin.build` at three points: when the buildings are derived (OSM's LoD1
buildings conflated with the city's building layer, or the city's alone), after the network is
built (city road attributes, terrain heights and gradient-aware walking/cycling times), and for the
buildings' base elevation. Each returns plain frames plus what the lineage and quality records need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import pandas as pd

from civictwin.config import CONFIG_FILENAME, ConflationRule, SourceKind, TwinConfig
from civictwin.model.terrain import Terrain, building_bases, edge_slopes, node_heights
from civictwin.store.base import Store

if TYPE_CHECKING:
    from civictwin.model.conflation import Conflated

BUILDING_DECISIONS = "conflation_buildings"
STREET_DECISIONS = "conflation_streets"


@dataclass
class CityStep:
    """What a city step changed: the frame, the inputs it read, parameters, quality and notes."""

    frame: gpd.GeoDataFrame
    inputs: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def has_city_buildings(config: TwinConfig) -> bool:
    """Whether a city building layer is configured (a 3D city model, or a buildings conflation rule)."""
    return any(s.kind in (SourceKind.CITYJSON, SourceKind.CITYGML) for s in config.sources) or any(
        r.layer == "buildings" for r in config.conflation
    )


def buildings_rule(config: TwinConfig) -> tuple[ConflationRule, list[str]] | None:
    """The buildings rule and the source tables forming the city layer (all 3D models by default)."""
    for rule in config.conflation:
        if rule.layer == "buildings":
            return rule, [rule.source]
    models = [s.name for s in config.sources if s.kind in (SourceKind.CITYJSON, SourceKind.CITYGML)]
    if not models:
        return None
    return ConflationRule(layer="buildings", source=models[0]), models


def city_buildings(store: Store, config: TwinConfig, osm: gpd.GeoDataFrame | None) -> CityStep | None:
    """OSM's LoD1 buildings (or None) merged with the city's building layer; records the decisions."""
    found = buildings_rule(config)
    if found is None:
        return None
    from civictwin.model.conflation import conflate_buildings, rule_columns  # only for a city layer (SciPy)

    rule, tables = found
    city = pd.concat([store.read_frame(t) for t in tables], ignore_index=True)
    city = gpd.GeoDataFrame(city, geometry="geometry", crs=store.crs)
    index = next((n for n, r in enumerate(config.conflation) if r is rule), 0)
    columns = rule_columns(rule, config.source(tables[0]).kind, [str(c) for c in city.columns if c != "geometry"],
                           origin=str(config.base_dir / CONFIG_FILENAME), index=index)  # fmt: skip
    result = conflate_buildings(osm, city, rule, columns, storey_height_m=config.buildings.storey_height_m)
    _save_decisions(store, BUILDING_DECISIONS, result)
    inputs = (["buildings"] if osm is not None else []) + tables + [BUILDING_DECISIONS]
    return CityStep(frame=result.frame, inputs=inputs, parameters={"conflation": result.quality["rules"]},
                    quality={"conflation": result.quality}, notes=result.notes)  # fmt: skip


def city_streets(store: Store, config: TwinConfig, edges: gpd.GeoDataFrame) -> CityStep:
    """The network's edges with the city road layers' attributes applied (unchanged without a rule)."""
    step = CityStep(frame=edges)
    for index, rule in enumerate(config.conflation):
        if rule.layer != "streets":
            continue
        from civictwin.model.conflation import conflate_streets, rule_columns  # only for a city layer (SciPy)

        city = store.read_frame(rule.source)
        columns = rule_columns(rule, config.source(rule.source).kind, [str(c) for c in city.columns if c != "geometry"],
                               origin=str(config.base_dir / CONFIG_FILENAME), index=index)  # fmt: skip
        result: Conflated = conflate_streets(step.frame, city, rule, columns)
        _save_decisions(store, STREET_DECISIONS, result)
        step.frame = result.frame
        step.inputs += [rule.source, STREET_DECISIONS]
        step.parameters.setdefault("conflation", []).append(result.quality["rules"])
        step.quality.setdefault("conflation", []).append(result.quality)
        step.notes += result.notes
    return step


def terrain_of(store: Store, config: TwinConfig) -> Terrain | None:
    """The twin's terrain from its DEM source (None without one)."""
    name = config.dem_source
    if name is None or not store.has_table(name):
        return None
    return Terrain.from_blocks(store.read_table(name))


def network_terrain(
    store: Store, config: TwinConfig, edges: gpd.GeoDataFrame, nodes: gpd.GeoDataFrame
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, dict[str, Any], list[str]]:
    """Node heights and edge grades with walking/cycling times, when the twin has a DEM."""
    terrain = terrain_of(store, config)
    if terrain is None:
        return edges, nodes, {}, []
    nodes = nodes.copy()
    nodes["elevation_m"] = node_heights(nodes, terrain)
    edges = pd.concat([edges, edge_slopes(edges, terrain, config.terrain)], axis=1)
    missing = int(nodes["elevation_m"].isna().sum())
    quality = {"terrain": {"source": config.dem_source, "nodes_without_height": missing,
                           "max_abs_grade": float(edges["grade"].abs().max()) if len(edges) else 0.0}}  # fmt: skip
    notes = [f"node heights from the DEM '{config.dem_source}'; walking times by Tobler's hiking function, cycling "
             "times by Valhalla's grade factors (docs/methods-terrain.md)"]  # fmt: skip
    return edges, nodes, quality, notes


def building_terrain(
    store: Store, config: TwinConfig, buildings: gpd.GeoDataFrame
) -> tuple[gpd.GeoDataFrame, list[str]]:
    """Each building's base elevation from the DEM (``base_elevation_m``), when the twin has one."""
    terrain = terrain_of(store, config)
    if terrain is None:
        return buildings, []
    buildings = buildings.copy()
    buildings["base_elevation_m"] = building_bases(buildings, terrain)
    return buildings, [
        f"base elevations from the DEM '{config.dem_source}' (lowest terrain under each footprint)"
    ]


def _save_decisions(store: Store, table: str, result: Conflated) -> None:
    store.write_table(table, result.decisions)
