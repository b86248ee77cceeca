"""The heat and green engine behind the engine seam: prepare from the twin and a scenario, run a seed.

Registered like any third-party engine (``pyproject.toml``, entry point group ``civictwin.engines``).
:meth:`HeatEngine.prepare` reads the twin's layers, picks the EPW's hottest day, rasterises the twin,
applies the scenario's heat interventions and finds every home's walk to green
(:func:`~civictwin.engines.heat.run.prepare_inputs`); :meth:`HeatEngine.run` runs one seed (Urban
Cooling, SOLWEIG, UTCI) and returns its KPIs, the per-zone table (mapped onto ``zones``) and the table
of map blocks, which carries its own polygons.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from civictwin import __version__
from civictwin.config import CONFIG_FILENAME
from civictwin.engines.base import EngineResult, TableSpec, TwinContext
from civictwin.engines.heat import params
from civictwin.engines.heat.interventions import INTERVENTION_TYPES, SCENARIO_EXAMPLES, heat_interventions
from civictwin.engines.heat.run import LAYERS, HeatInputs, prepare_inputs, read_layers, run_seed
from civictwin.engines.heat.settings import SETTINGS_FILE, HeatSettings, load_settings
from civictwin.engines.heat.weather import read_hot_day
from civictwin.errors import ConfigError
from civictwin.i18n import N_
from civictwin.scenarios.spec import Intervention, Scenario

MODEL_VERSION = "1.0"
"""The heat model's own version: raise it when the numbers change for the same inputs."""

ZONES = TableSpec(
    name="zones",
    key=("zone_id",),
    layer="zones",
    values=(
        ("residents", "persons"),
        ("residents_heat_exposed", "persons"),
        ("residents_green_access", "persons"),
        ("air_temp_peak_c", "°C"),
        ("cooling_c", "°C"),
        ("utci_peak_c", "°C"),
        ("canopy_share", "share"),
    ),
    label=N_("Analysis zones: heat stress, air temperature, canopy and green access"),
)
CELLS = TableSpec(
    name="cells",
    key=("cell_id",),
    layer=None,
    values=(("air_temp_peak_c", "°C"), ("utci_peak_c", "°C"), ("canopy_share", "share")),
    label=N_("Blocks of grid cells: peak air temperature, peak UTCI and canopy"),
)


class HeatEngine:
    """Heat and green: InVEST Urban Cooling, SOLWEIG Tmrt and UTCI on the hottest day, WHO green access."""

    name = "heat"
    intervention_types: Mapping[str, type[Intervention]] = INTERVENTION_TYPES
    tables = (ZONES, CELLS)
    reads = LAYERS

    @cached_property
    def version(self) -> str:
        """civictwin's version with the heat model's and SOLWEIG's (a new SOLWEIG recomputes seeds)."""
        try:
            solweig = version("solweig")
        except PackageNotFoundError:
            solweig = "not installed"
        return f"{__version__} (heat model {MODEL_VERSION}, solweig {solweig})"

    def settings(self, twin: TwinContext) -> HeatSettings:
        """``heat.toml`` in the twin folder (defaults when absent) with the command line's overrides."""
        return load_settings(twin.twin_dir, twin.options_for(self.name))

    def weather_file(self, twin: TwinContext, settings: HeatSettings) -> Path:
        """The EPW: ``heat.toml``'s ``epw``, else ``[energy].weather`` of ``twin.toml``."""
        if settings.epw:
            return settings.epw_path(twin.twin_dir)
        if twin.config is not None and twin.config.energy.weather is not None:
            return twin.config.resolve(twin.config.energy.weather.path)
        raise ConfigError(
            f"no weather file: set epw in {SETTINGS_FILE} or [energy].weather in {CONFIG_FILENAME} "
            "(an EPW of a typical year; see docs/methods-heat.md)",
            path=twin.twin_dir / SETTINGS_FILE,
            field="epw",
        )

    def parameters(self, twin: TwinContext) -> Mapping[str, Any]:
        """The settings, the weather file, and the uncertain parameters with ranges and sources."""
        settings = self.settings(twin)
        drawn = set(params.sampled(assumed=settings.sample_assumed_ranges))
        uncertain = {
            p.name: {"low": p.low, "high": p.high, "central": p.central, "unit": p.unit,
                     "sampled": p.name in drawn, "source": p.source}
            for p in params.UNCERTAIN
        }  # fmt: skip
        return {
            "heat": settings.model_dump(mode="json"),
            "epw": str(self.weather_file(twin, settings)),
            "uncertain": uncertain,
        }

    def prepare(self, twin: TwinContext, scenario: Scenario, *, workdir: Path) -> HeatInputs:
        """Read the layers and the hottest day, rasterise, apply the heat interventions, walk to green."""
        settings = self.settings(twin)
        day = read_hot_day(self.weather_file(twin, settings))
        with twin.open_store() as store:
            layers = read_layers(store)
        inputs = prepare_inputs(
            layers,
            day,
            heat_interventions(scenario),
            settings=settings,
            origin=scenario.origin,
            base_dir=scenario.base_dir,
        )
        # SOLWEIG's Tmrt depends on the scenario's surface, not on the seed's draw unless the body's
        # absorption is sampled: the scenario's seeds share it (computed once, by the first to need it)
        return dataclasses.replace(inputs, tmrt_cache=workdir / "tmrt")

    def run(self, inputs: HeatInputs, *, seed: int, workdir: Path) -> EngineResult:
        """One seed: cooling, radiation and UTCI on the grid; KPIs, zones and map blocks.

        SOLWEIG's own rasters (per-hour Tmrt and summaries, about 35 MB per seed on the demo twin at
        2 m) are read into the tables and then removed, so a comparison's folder stays small.
        """
        scratch = workdir / "solweig"
        try:
            kpis, tables = run_seed(inputs, seed=seed, workdir=scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        settings = inputs.settings
        grid = inputs.surface.grid
        notes = (
            f"weather: the hottest day of {Path(inputs.day.source).name} ({inputs.day.date}, "
            f"{inputs.day.max_temp_c:.1f} °C), hours {settings.first_hour}–{settings.last_hour} local standard time",
            f"grid: {grid.shape[0]} × {grid.shape[1]} cells of {grid.cell_m:g} m; "
            f"{inputs.changed_cells} cells changed by the scenario",
            _uncertainty_note(settings.sample_assumed_ranges),
        )
        details = {"hot_day": inputs.day.date, "cells": int(grid.shape[0] * grid.shape[1]),
                   "changed_cells": inputs.changed_cells}  # fmt: skip
        return EngineResult(kpis=kpis, tables=tables, notes=notes, details=details)

    def scenario_examples(self) -> str:
        """The commented heat and green interventions for ``civictwin scenario new``."""
        return SCENARIO_EXAMPLES


def _uncertainty_note(assumed: bool) -> str:
    drawn = params.sampled(assumed=assumed)
    fixed = [p.name for p in params.UNCERTAIN if p.name not in drawn]
    text = f"uncertainty: each seed draws {', '.join(drawn)}"
    if assumed:
        text += " (ranges that are assumptions included: sample_assumed_ranges = true in heat.toml)"
    return text + (f"; held at central values (ranges not published): {', '.join(fixed)}" if fixed else "")
