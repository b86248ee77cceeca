"""The toy engine: a per-zone "heat demand" that interventions scale, with seeded noise.

Per zone and seed: ``heat_kwh = base_kwh × factor + Normal(0, noise_sd)`` drawn with
``numpy.random.default_rng(seed)`` in zone order, where ``factor`` is the product of the scenario's
``toy_nudge`` factors (for the zones they select, or all). KPI ``toy_heat_mwh`` is their sum / 1000.
A second table, ``cells``, carries its own point geometry (the zone centroids, WKB in the twin CRS).
``toy_fail`` makes one seed raise; ``toy_gridlock`` makes the listed seeds (all when none are
listed) fail the quality check as a gridlocked traffic run does (``QualityCheckFailed`` with the
traffic engine's words, ``<seed>00 teleports for 5,390 trips``); the environment variable ``TOY_PAUSE=<scenario>:<seed>`` makes
that seed wait until interrupted, and ``TOY_HANG=1`` makes ``toy_hang`` seeds block signals (a hang
the worker's own alarm cannot end). ``TOY_BARRIER=<folder>`` makes every seed announce itself with
a file ``started-<scenario>-<seed>-<parent pid>`` there and wait until ``<folder>/go`` exists (the
cluster tests kill a worker while its seed waits). Each finished or gridlocked run appends
``<scenario> <seed>`` to ``<twin dir>/toy-runs.log``, so tests can count runs.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pydantic import Field

from civictwin.engines.base import EngineResult, Kpi, TableSpec, TwinContext
from civictwin.errors import QualityCheckFailed
from civictwin.scenarios.spec import Intervention, Scenario

CRS = "EPSG:32635"


class Nudge(Intervention):
    """Scale the heat demand of some zones (all when none are named)."""

    type: Literal["toy_nudge"]
    factor: float = Field(gt=0)
    zones: list[str] | None = None


class Fail(Intervention):
    """Make one seed raise."""

    type: Literal["toy_fail"]
    seed: int


class Gridlock(Intervention):
    """Make some seeds (all when none are listed) fail the quality check."""

    type: Literal["toy_gridlock"]
    seeds: list[int] | None = None


class Hang(Intervention):
    """Make one seed hang."""

    type: Literal["toy_hang"]
    seed: int


@dataclass(frozen=True)
class ToyInputs:
    """What a seed needs: zone ids, centroids, the factor per zone, and the seeds that fail or hang."""

    scenario: str
    zone_ids: tuple[str, ...]
    centroids: tuple[bytes, ...]
    factors: tuple[float, ...]
    base_kwh: float
    noise_sd: float
    fail_seeds: tuple[int, ...]
    hang_seeds: tuple[int, ...]
    gridlock_seeds: tuple[int, ...] | None
    """The seeds that gridlock: None for none, () for all."""
    log: str


def default_zones() -> gpd.GeoDataFrame:
    """Three 100 m squares along x, for a twin held only in memory."""
    return gpd.GeoDataFrame(
        {"zone_id": ["a", "b", "c"]},
        geometry=[shapely.box(385_000 + 200 * i, 6_672_000, 385_100 + 200 * i, 6_672_100) for i in range(3)],
        crs=CRS,
    )


class ToyEngine:
    """The toy engine (see the module docstring)."""

    name = "toy"
    version = "0.1.0"
    intervention_types: Mapping[str, type[Intervention]] = {
        "toy_nudge": Nudge,
        "toy_fail": Fail,
        "toy_hang": Hang,
        "toy_gridlock": Gridlock,
    }
    tables = (
        TableSpec("zones", ("zone_id",), "zones", (("heat_kwh", "kWh"),), label="Zones: toy heat demand"),
        TableSpec("cells", ("cell",), None, (("heat_kwh", "kWh"),), label="Toy cells"),
    )
    reads = ("zones",)

    def parameters(self, twin: TwinContext) -> Mapping[str, Any]:
        return {"base_kwh": 100.0, "noise_sd": 5.0}

    def prepare(self, twin: TwinContext, scenario: Scenario, *, workdir: Path) -> ToyInputs:
        zones = default_zones()
        if twin.config is not None:
            with twin.open_store() as store:
                zones = store.read_frame("zones")
        ids = [str(z) for z in zones["zone_id"]]
        factors = np.ones(len(ids))
        for item in scenario.interventions:
            if isinstance(item, Nudge):
                chosen = np.array([item.zones is None or z in item.zones for z in ids])
                factors = np.where(chosen, factors * item.factor, factors)
        params = self.parameters(twin)
        return ToyInputs(
            scenario=scenario.name,
            zone_ids=tuple(ids),
            centroids=tuple(shapely.to_wkb(zones.geometry.centroid.to_numpy())),
            factors=tuple(float(f) for f in factors),
            base_kwh=params["base_kwh"],
            noise_sd=params["noise_sd"],
            fail_seeds=tuple(i.seed for i in scenario.interventions if isinstance(i, Fail)),
            hang_seeds=tuple(i.seed for i in scenario.interventions if isinstance(i, Hang)),
            gridlock_seeds=_gridlock_seeds(scenario),
            log=str(twin.twin_dir / "toy-runs.log"),
        )

    def run(self, inputs: ToyInputs, *, seed: int, workdir: Path) -> EngineResult:
        if seed in inputs.fail_seeds:
            raise ValueError(f"toy failure on seed {seed}")
        if seed in inputs.hang_seeds:
            _hang()
        if inputs.gridlock_seeds is not None and (not inputs.gridlock_seeds or seed in inputs.gridlock_seeds):
            with open(inputs.log, "a", encoding="utf-8") as log:
                log.write(f"{inputs.scenario} {seed}\n")
            raise QualityCheckFailed(
                f"{seed}00 teleports for 5,390 trips exceed the allowed share 5%: the network is gridlocked "
                "or broken",
                field=f"quality check (seed {seed}, outputs in {workdir})",
            )
        if os.environ.get("TOY_PAUSE") == f"{inputs.scenario}:{seed}":
            time.sleep(3600)
        if os.environ.get("TOY_BARRIER"):
            _wait_at_barrier(Path(os.environ["TOY_BARRIER"]), f"{inputs.scenario}-{seed}")
        rng = np.random.default_rng(seed)
        heat = inputs.base_kwh * np.array(inputs.factors) + rng.normal(
            0.0, inputs.noise_sd, len(inputs.zone_ids)
        )
        zones = pd.DataFrame({"zone_id": list(inputs.zone_ids), "heat_kwh": heat})
        cells = pd.DataFrame(
            {"cell": list(range(len(heat))), "heat_kwh": heat, "geometry": list(inputs.centroids)}
        )
        with open(inputs.log, "a", encoding="utf-8") as log:
            log.write(f"{inputs.scenario} {seed}\n")
        return EngineResult(
            kpis=(
                Kpi(
                    "toy_heat_mwh", "MWh", float(heat.sum()) / 1000, "Toy heat demand", "lower", headline=True
                ),
            ),
            tables={"zones": zones, "cells": cells},
            notes=("Toy numbers, for tests only.",),
            details={"zones": len(heat)},
        )


def _gridlock_seeds(scenario: Scenario) -> tuple[int, ...] | None:
    """The seeds ``toy_gridlock`` names: None without one, () for all seeds."""
    chosen = [i for i in scenario.interventions if isinstance(i, Gridlock)]
    if not chosen:
        return None
    if any(i.seeds is None for i in chosen):
        return ()
    return tuple(seed for i in chosen for seed in i.seeds or ())


def _wait_at_barrier(folder: Path, name: str) -> None:
    """Say this seed started (and in which worker: the parent process), then wait for ``go``."""
    (folder / f"started-{name}-{os.getppid()}").write_text("", encoding="utf-8")
    while not (folder / "go").exists():
        time.sleep(0.02)


def _hang() -> None:
    """Wait forever; with ``TOY_HANG=1`` with the alarm and interrupts blocked, as a call into C might."""
    if os.environ.get("TOY_HANG") == "1":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGINT})
    while True:
        time.sleep(3600)
