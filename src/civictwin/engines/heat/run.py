"""The heat engine's two steps as plain functions: prepare inputs from the twin's layers, run one seed.

:func:`prepare_inputs` rasterises the twin, applies a scenario's heat interventions and finds every
home's walking distance to green; the result is plain picklable data. :func:`run_seed` samples the
uncertain parameters for a seed, runs the Urban Cooling model, SOLWEIG and UTCI, and returns KPIs and
tables (per zone, and per block of cells for maps).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from civictwin.engines.base import Kpi
from civictwin.engines.heat import params as P
from civictwin.engines.heat.access import qualifying_green, walk_distance_to_green
from civictwin.engines.heat.comfort import stress_class_threshold
from civictwin.engines.heat.interventions import HeatIntervention, Place, apply_all
from civictwin.engines.heat.model import CANOPY_MIN_HEIGHT_M, at_nearest_outdoor_cell, simulate, zone_table
from civictwin.engines.heat.rasters import Surface, build_surface
from civictwin.engines.heat.settings import HeatSettings
from civictwin.engines.heat.weather import HotDay
from civictwin.errors import EngineError, StoreError
from civictwin.store.base import Store


@dataclass(frozen=True)
class Layers:
    """The twin layers the heat engine reads, as GeoDataFrames in the twin's CRS."""

    buildings: gpd.GeoDataFrame
    trees: gpd.GeoDataFrame
    green: gpd.GeoDataFrame
    water: gpd.GeoDataFrame
    landuse: gpd.GeoDataFrame
    edges: gpd.GeoDataFrame
    nodes: gpd.GeoDataFrame
    zones: gpd.GeoDataFrame
    crs: str


LAYERS = ("buildings_3d", "trees", "green", "water", "landuse", "network_edges", "network_nodes", "zones")


def read_layers(store: Store) -> Layers:
    """The layers the heat engine reads from a twin's store (a missing one is a StoreError line)."""
    missing = [name for name in LAYERS if not store.has_table(name)]
    if missing:
        raise StoreError(
            f"the twin lacks the layer(s) {', '.join(missing)} the heat engine needs; rebuild it"
        )
    frames = {name: store.read_frame(name) for name in LAYERS}
    return Layers(
        buildings=frames["buildings_3d"],
        trees=frames["trees"],
        green=frames["green"],
        water=frames["water"],
        landuse=frames["landuse"],
        edges=frames["network_edges"],
        nodes=frames["network_nodes"],
        zones=frames["zones"],
        crs=store.crs,
    )


@dataclass(frozen=True)
class HeatInputs:
    """Everything one seed needs (picklable): the surface after the scenario, the day, green access."""

    surface: Surface
    day: HotDay
    hours: tuple[int, ...]
    settings: HeatSettings
    green_access_residents: np.ndarray  # residents per cell with green access
    changed_cells: int
    tmrt_cache: Path | None = None
    """Where the seeds of this scenario share SOLWEIG's Tmrt (None: each seed computes its own)."""


def prepare_inputs(
    layers: Layers,
    day: HotDay,
    interventions: list[tuple[int, HeatIntervention]],
    *,
    settings: HeatSettings,
    origin: str,
    base_dir: Path,
) -> HeatInputs:
    """Rasterise, apply the interventions, compute green access; errors are one line each."""
    surface = build_surface(
        buildings=layers.buildings,
        trees=layers.trees,
        green=layers.green,
        water=layers.water,
        landuse=layers.landuse,
        edges=layers.edges,
        zones=layers.zones,
        cell_m=settings.cell_m,
        crs=layers.crs,
        tree_crown_radius_m=settings.tree_crown_radius_m,
        tree_height_m=settings.tree_height_m,
    )
    place = Place(
        edges=layers.edges, buildings=layers.buildings, crs=layers.crs, base_dir=base_dir, zones=layers.zones
    )
    surface, changed = apply_all(surface, interventions, place, origin=origin)
    hours = tuple(day.hours(settings.first_hour, settings.last_hour))
    if not hours:
        raise EngineError(
            f"no hour of the hot day between {settings.first_hour}:00 and {settings.last_hour}:00"
        )
    return HeatInputs(
        surface=surface,
        day=day,
        hours=hours,
        settings=settings,
        green_access_residents=green_access_grid(surface, layers),
        changed_cells=int(changed.sum()),
    )


def green_access_grid(surface: Surface, layers: Layers) -> np.ndarray:
    """Residents per cell who live within 300 m walk of a public green space of at least 0.5 ha."""
    rows, cols = np.nonzero(surface.public_green)
    grid = surface.grid
    cells = shapely.box(
        grid.west + cols * grid.cell_m,
        grid.north - (rows + 1) * grid.cell_m,
        grid.west + (cols + 1) * grid.cell_m,
        grid.north - rows * grid.cell_m,
    )
    green = qualifying_green(np.asarray(shapely.get_parts(shapely.union_all(cells)), dtype=object))
    home_rows, home_cols = np.nonzero(surface.residents > 0)
    xs, ys = grid.cell_centres()
    doors = shapely.points(xs[home_rows, home_cols], ys[home_rows, home_cols])
    distance = walk_distance_to_green(edges=layers.edges, nodes=layers.nodes, doors=doors, green=green)
    result = np.zeros(grid.shape)
    reached = np.isfinite(distance)
    result[home_rows[reached], home_cols[reached]] = surface.residents[home_rows[reached], home_cols[reached]]
    return result


def run_seed(
    inputs: HeatInputs, *, seed: int | None, workdir: Path
) -> tuple[tuple[Kpi, ...], dict[str, pd.DataFrame]]:
    """KPIs and tables (``zones``, ``cells``) of one seed (``None``: central parameter values)."""
    surface, settings = inputs.surface, inputs.settings
    values = P.sample(seed, assumed=settings.sample_assumed_ranges)
    grids = simulate(
        surface, inputs.day, list(inputs.hours), values, workdir=workdir, tmrt_cache=inputs.tmrt_cache
    )
    door_utci = at_nearest_outdoor_cell(surface, grids.utci_peak_c)
    exposed = door_utci >= stress_class_threshold(settings.stress_class)
    zones = zone_table(surface, grids, exposed=exposed, green_access=inputs.green_access_residents)
    outdoor = np.isfinite(grids.air_temp_peak_c)
    residents = float(surface.residents.sum())
    canopy = float(np.mean(surface.canopy_height_m >= CANOPY_MIN_HEIGHT_M))
    kpis = (
        Kpi(
            f"residents_utci_{settings.stress_class}_heat",
            "persons",
            float(surface.residents[exposed].sum()),
            f"Residents facing UTCI {settings.stress_class.replace('_', ' ')} heat stress or worse at home on the hottest day",
            "lower",
        ),
        Kpi(
            "heat_air_temp_c",
            "°C",
            float(np.mean(grids.air_temp_peak_c[outdoor])),
            "Mean outdoor air temperature at the hottest hour",
            "lower",
        ),
        Kpi(
            "heat_cooling_c",
            "°C",
            float(np.mean(grids.cooling_c[outdoor])),
            "Mean air temperature reduction by shade, albedo and evapotranspiration",
            "higher",
        ),
        Kpi(
            "heat_utci_peak_c",
            "°C",
            float(np.nanmean(grids.utci_peak_c)),
            "Mean outdoor peak UTCI on the hottest day",
            "lower",
        ),
        Kpi("canopy_cover", "share", canopy, "Tree canopy cover of the area", "higher"),
        Kpi(
            "residents_green_access",
            "persons",
            float(inputs.green_access_residents.sum()),
            "Residents within 300 m walk of a public green space of at least 0.5 ha",
            "higher",
        ),
        Kpi(
            "residents_green_access_share",
            "share",
            float(inputs.green_access_residents.sum()) / residents if residents else float("nan"),
            "Share of residents with green access (WHO indicator)",
            "higher",
        ),
    )
    headline = {kpis[0].name, "heat_air_temp_c", "canopy_cover", "residents_green_access_share"}
    marked = tuple(replace(k, headline=k.name in headline) for k in kpis)
    return marked, {"zones": zones, "cells": block_table(surface, grids, settings.block_cells)}


def block_table(surface: Surface, grids: object, block: int) -> pd.DataFrame:
    """Means over square blocks of ``block`` × ``block`` cells, with each block's WKB polygon, for maps."""
    grid = surface.grid
    rows, cols = grid.shape
    brow, bcol = np.divmod(np.arange(rows), block)[0], np.divmod(np.arange(cols), block)[0]
    block_id = brow[:, None] * (bcol[-1] + 1) + bcol[None, :]
    count = (brow[-1] + 1) * (bcol[-1] + 1)

    def mean(values: np.ndarray) -> np.ndarray:
        ok = np.isfinite(values)
        total = np.bincount(block_id[ok], weights=values[ok], minlength=count)
        n = np.bincount(block_id[ok], minlength=count)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(total / n)

    canopy = (surface.canopy_height_m >= CANOPY_MIN_HEIGHT_M).astype(float)
    ids = np.arange(count)
    b_r, b_c = np.divmod(ids, bcol[-1] + 1)
    size = block * grid.cell_m
    boxes = shapely.box(
        grid.west + b_c * size,
        grid.north - np.minimum((b_r + 1) * size, rows * grid.cell_m),
        grid.west + np.minimum((b_c + 1) * size, cols * grid.cell_m),
        grid.north - b_r * size,
    )
    frame = pd.DataFrame(
        {
            "cell_id": ids.astype(np.int64),
            "air_temp_peak_c": mean(grids.air_temp_peak_c),  # type: ignore[attr-defined]
            "utci_peak_c": mean(grids.utci_peak_c),  # type: ignore[attr-defined]
            "canopy_share": mean(canopy),
            "geometry": shapely.to_wkb(boxes),
        }
    )
    return frame
