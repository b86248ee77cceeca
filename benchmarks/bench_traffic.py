"""Traffic engine benchmarks: overhead, the seam's cost, ensemble speed-up, the demo comparison, growth,
bare SUMO cost.

Reproduce (all seven sections at their defaults, the numbers recorded in BENCHMARKS.md):

    .venv/bin/python benchmarks/bench_traffic.py

One section at a time with ``--only overhead``, ``--only seam``, ``--only speedup``, ``--only demo``,
``--only scaling``, ``--only bare`` or ``--only growth`` (or a comma-separated list). Smallest
settings, a smoke test of every section:

    .venv/bin/python benchmarks/bench_traffic.py --seeds 2 --scale 0.2 --repeat 1 \\
        --scales 0.2 --sizes 1 --growth-sizes 1 --iterations 1

Sections (each prints a markdown table on stdout; progress goes to stderr):

- ``overhead``: one scenario (baseline) × one seed with mode-choice feedback on the demo twin. The
  whole :func:`~civictwin.engines.traffic.simulate.run_scenario` call (load the twin, prepare the
  scenario, :func:`simulate_seed`) is timed and set against the summed wall time of the ``sumo``
  processes it launched (``SeedOutcome.sumo_wall_s``, the sum of ``SimResult.wall_s``). netconvert's
  time (``SumoNetwork.wall_s``) is not returned by ``run_scenario``, so it is measured by an identical
  :func:`prepare_scenario` call on the same inputs right after, and reported separately. Target: the
  orchestration (everything but SUMO's own processes) ≤ 5% of the wall time. The first run reads the
  twin from disk; later runs in the same process reuse :func:`load_twin`'s in-memory copy, so the table
  also times a read from disk after every run.
- ``seam``: what the engine seam costs. One scenario (baseline) × one seed through the generic driver
  (:func:`civictwin.engines.ensemble.run_ensemble` with the installed ``traffic`` engine, one worker,
  as ``civictwin compare --engine traffic`` runs it) against the same seed in this process through
  :func:`load_twin`, :func:`prepare_scenario` and :func:`simulate_seed` directly, ``repeat`` times,
  alternating which goes first. The ensemble's time is split at its progress reports: before the
  scenario is prepared (worker pool started, the twin's data fingerprint read from its store,
  parameters, resume check), the preparation, the seed (sent to the worker process, simulated, its
  tables checked and saved atomically) and the shutdown. Both must give identical KPIs. Target: the
  ensemble's wall time within 2% of the direct path's (median over the repeats); the difference
  outside SUMO's own processes (sumo and netconvert) is shown too, as it is not blurred by SUMO's
  run-to-run variation.
- ``speedup``: the same seeds of the baseline through the generic :func:`run_ensemble` with the
  ``traffic`` engine, ``workers=1`` and then ``workers=2`` (two comparison ids, so nothing is
  resumed). Target ≥ 1.7× on this 2-core machine. Also checks that both give identical KPIs per seed,
  and measures the machine's own ceiling: the last simulation of each seed (kept under the seed's
  ``work/`` folder) re-run as bare ``sumo`` processes, one at a time and two at a time.
- ``demo``: ``civictwin compare baseline close_main_street zone_30 --seeds 5 --workers 2`` on a fresh
  demo twin (:func:`civictwin.demo.build_demo`), timed as a subprocess. Target < 10 min.
- ``scaling``: one seed of the baseline and of a plan (``close_main_street``) per network size (the
  demo extract tiled N×N with ``../shared/tools/tile_osm.py``, one twin per size), demand scale and
  SUMO mode (micro, meso). Records wall time, SUMO time, car trips and the plan's effect on mean
  travel time and delay, so meso's documented trade-off (faster, smaller effects; see
  ``../shared/notes/facts.md``) shows with our numbers. A run SUMO cannot finish within the quality
  limits (teleports, unfinished trips) is listed as failed, not dropped.
- ``bare``: one demo iteration (the baseline's last simulation of seed 1: its car trips, recovered on
  the twin's edges) as bare ``sumo`` processes, side by side and alternating, ``repeat`` times each:
  main's network and run options (one SUMO edge per twin edge, edge speeds refreshed every step, a
  fixed end), then each change of issue 11 part 8 added in turn (edge speeds every 10 s, the run ending
  with its last vehicle, chains of twin edges merged, parts of the street network no trip reaches left
  out), each with SUMO seeds 1 to ``--bare-seeds`` (default 5) on the same trips. Records SUMO's wall
  and CPU seconds (the ``sumo`` child's user + system time: the fairer measure on a shared machine),
  vehicles and vehicle-hours simulated, each variant's KPIs over the seeds (mean and 95% interval), and
  main → today per KPI with Welch's 95% interval (within run-to-run noise or not). Target: today's
  run at least 3× faster than main's at equal KPIs (within noise).
- ``growth``: the same before/after pair on the demo extract tiled 1×1, 2×2 and 4×4 (``--growth-sizes``),
  one baseline iteration each: SUMO seconds against the vehicle-seconds simulated, to show that a
  run's time now grows with its traffic rather than with its network and fixed period.

Everything is written in a temporary folder that is removed at the end.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from civictwin.build import build_twin
from civictwin.config import load_config
from civictwin.demo import DEMO_BBOX, build_demo, demo_pbf, write_demo_config
from civictwin.engines.base import Engine, TwinContext
from civictwin.engines.ensemble import Ensemble, run_ensemble
from civictwin.engines.registry import intervention_catalog, load_engines
from civictwin.engines.traffic.demand import zone_edges
from civictwin.engines.traffic.edits import apply_interventions
from civictwin.engines.traffic.inputs import TwinInputs, load_twin, needs_routes
from civictwin.engines.traffic.kpis import run_kpis
from civictwin.engines.traffic.network import SumoNetwork, build_sumo_network
from civictwin.engines.traffic.params import TrafficParams, load_params
from civictwin.engines.traffic.prepare import prepare_scenario
from civictwin.engines.traffic.run import CarTrip, SimOptions, run_sumo
from civictwin.engines.traffic.simulate import SeedOutcome, run_scenario, simulate_seed
from civictwin.engines.traffic.sumo import binary, sumo_env
from civictwin.errors import CivicTwinError
from civictwin.kpis.ensemble import difference, summarise
from civictwin.runs import SeedKpi, SeedRecord
from civictwin.scenarios.library import find_scenario
from civictwin.scenarios.spec import Scenario
from civictwin.store.duckdb import DuckDBStore

ROOT = Path(__file__).resolve().parents[1]
TILER = ROOT.parent / "shared" / "tools" / "tile_osm.py"
CIVICTWIN = Path(sys.executable).parent / "civictwin"
SECTIONS = ("overhead", "seam", "speedup", "demo", "scaling", "bare", "growth")
TRAFFIC = "traffic"
DEMO_PLANS = ("close_main_street", "zone_30")
OVERHEAD_TARGET = 0.05
SEAM_TARGET = 0.02
SEAM_SEED = 1
SPEEDUP_TARGET = 1.7
DEMO_TARGET_S = 600.0
BARE_TARGET = 3.0
BARE_KPIS = ("mean_travel_time_s", "total_delay_h", "vehicle_km", "co2_kg", "mean_noise_db")


@dataclass(frozen=True)
class Settings:
    """The command-line choices, typed."""

    sections: tuple[str, ...]
    speedup_seeds: int
    demo_seeds: int
    scaling_seeds: int
    workers: int
    scale: float
    iterations: int | None
    repeat: int
    scales: tuple[float, ...]
    sizes: tuple[int, ...]
    modes: tuple[str, ...]
    plan: str
    growth_sizes: tuple[int, ...] = (1, 2, 4)
    bare_seeds: int = 5

    def options(self, *, scale: float | None = None, meso: bool = False) -> dict[str, dict[str, Any]]:
        """This run's traffic overrides as ``civictwin compare`` passes them (``--scale``,
        ``--iterations``, ``--meso``); ``None`` values are left to the twin's ``traffic.toml``."""
        return {
            TRAFFIC: {
                "demand": {"scale": self.scale if scale is None else scale},
                "iterations": self.iterations,
                "mesoscopic": meso or None,
            }
        }

    def params(self, twin: Path, *, scale: float | None = None, meso: bool = False) -> TrafficParams:
        """The twin's traffic parameters with this run's overrides, as the engine reads them."""
        return load_params(twin, **self.options(scale=scale, meso=meso)[TRAFFIC])


def log(message: str) -> None:
    """Progress on stderr, so stdout holds only the tables."""
    print(message, file=sys.stderr, flush=True)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print a markdown table."""
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(flush=True)


def builtin_scenario(twin: Path, name: str) -> Scenario:
    """One of the demo's ready-made plans, found and resolved as ``civictwin compare`` does."""
    return find_scenario(twin, name, intervention_catalog(load_engines()))


def traffic_engine() -> Engine:
    """The installed ``traffic`` engine, loaded through its entry point as the CLI loads it."""
    return load_engines([TRAFFIC])[TRAFFIC].engine


def kpi_values(kpis: Sequence[SeedKpi]) -> dict[str, float]:
    """A saved seed's KPIs by name."""
    return {kpi.name: kpi.value for kpi in kpis}


def same_kpis(first: dict[str, float], second: dict[str, float]) -> bool:
    """Whether two seeds' KPIs are identical: the same names and values (NaN equal to NaN)."""
    return first.keys() == second.keys() and all(
        first[k] == second[k] or (math.isnan(first[k]) and math.isnan(second[k])) for k in first
    )


# ------------------------------------------------------------------------------------------- overhead


def bench_overhead(twin: Path, work: Path, settings: Settings) -> None:
    """Whole ``run_scenario`` wall time vs its SUMO processes, ``repeat`` times."""
    params = settings.params(twin)
    baseline = Scenario.baseline_scenario()
    rows: list[list[str]] = []
    shares: list[float] = []
    for index in range(settings.repeat):
        log(f"overhead: run {index + 1}/{settings.repeat}")
        start = time.perf_counter()
        run = run_scenario(twin, baseline, 1, work / f"overhead_{index}", params)
        wall = time.perf_counter() - start
        load_s, inputs = uncached_load(twin)
        start = time.perf_counter()
        prepared = prepare_scenario(inputs, baseline, work / f"overhead_{index}_network", params)
        prepare_s = time.perf_counter() - start
        netconvert = prepared.network.wall_s
        outside_sumo = wall - run.sumo_wall_s
        outside_all = outside_sumo - netconvert
        shares.append(outside_all / wall)
        rows.append(
            [
                str(index + 1),
                f"{run.kpis['trips']:.0f}",
                f"{wall:.2f}",
                f"{run.sumo_wall_s:.2f}",
                f"{outside_sumo:.2f} ({outside_sumo / wall:.1%})",
                f"{netconvert:.2f}",
                f"{outside_all:.2f} ({outside_all / wall:.1%})",
                f"{load_s:.2f}",
                f"{prepare_s - netconvert:.2f}",
            ]
        )
    iterations = params.iterations
    print(
        f"### Orchestration overhead: baseline × seed 1, {iterations} simulation ↔ mode-choice "
        f"iteration(s), demand scale {settings.scale:g}, demo twin\n"
    )
    table(
        [
            "run",
            "car trips (last iteration)",
            "run_scenario wall s",
            f"sumo processes s ({iterations})",
            "outside sumo s (share)",
            "netconvert s",
            "outside all SUMO binaries s (share)",
            "load twin s (from disk)",
            "of which: prepare w/o netconvert s",
        ],
        rows,
    )
    print(
        "run_scenario reads the twin from disk in run 1 only: later runs in the same process reuse the "
        "tables `load_twin` keeps in memory (read again whenever the store file changes). The load "
        "column times a read from disk after each run.\n"
    )
    median = statistics.median(shares)
    verdict = "meets" if median <= OVERHEAD_TARGET else "misses"
    print(
        f"Median orchestration share (wall − sumo − netconvert) / wall: {median:.1%}, "
        f"{verdict} the ≤ {OVERHEAD_TARGET:.0%} target.\n",
        flush=True,
    )


def uncached_load(twin: Path) -> tuple[float, TwinInputs]:
    """Seconds to read the twin's tables from its store (bypassing ``load_twin``'s in-memory copy)."""
    start = time.perf_counter()
    with DuckDBStore.open(load_config(twin).store_path) as store:
        inputs = load_twin(store, twin_dir=twin)
    return time.perf_counter() - start, inputs


# ------------------------------------------------------------------------------------------------ seam


@dataclass(frozen=True)
class DirectSeed:
    """One seed in this process, straight through the traffic engine's functions."""

    wall_s: float
    prepare_s: float
    simulate_s: float
    sumo_s: float
    netconvert_s: float
    kpis: dict[str, float]


@dataclass(frozen=True)
class SeamSeed:
    """The same seed through the generic ensemble, its wall time split at the progress reports."""

    wall_s: float
    before_prepare_s: float
    prepare_s: float
    seed_s: float
    """From the prepared scenario to the seed's result back in the driving process."""
    in_worker_s: float
    """The seed inside its worker process: simulated, tables checked and saved (``SeedRecord.wall_s``)."""
    after_s: float
    sumo_s: float
    netconvert_s: float
    kpis: dict[str, float]


def direct_seed(twin: Path, scenario: Scenario, params: TrafficParams, workdir: Path) -> DirectSeed:
    """``load_twin`` + ``prepare_scenario`` + ``simulate_seed`` in this process, timed."""
    start = time.perf_counter()
    inputs = load_twin(twin, need_routes=needs_routes([scenario]))
    prepared = prepare_scenario(inputs, scenario, workdir / "network", params)
    prepared_at = time.perf_counter()
    outcome = simulate_seed(prepared, SEAM_SEED, workdir / "sumo")
    end = time.perf_counter()
    return DirectSeed(
        wall_s=end - start,
        prepare_s=prepared_at - start,
        simulate_s=end - prepared_at,
        sumo_s=outcome.sumo_wall_s,
        netconvert_s=prepared.network.wall_s,
        kpis=outcome.kpis,
    )


def seam_seed(
    twin: Path, scenario: Scenario, options: dict[str, dict[str, Any]], comparison_id: str
) -> SeamSeed:
    """The seed through ``run_ensemble`` with the installed traffic engine and one worker, as
    ``civictwin compare --engine traffic --seeds 1 --workers 1`` runs it (engine loading and reading
    ``twin.toml`` are not timed; they are the same few milliseconds either way)."""
    engine = traffic_engine()
    context = TwinContext.load(twin, options=options)
    marks: list[tuple[float, int, int]] = []

    def progress(message: str, done: int, total: int) -> None:
        marks.append((time.perf_counter(), done, total))

    start = time.perf_counter()
    ensemble = run_ensemble(
        context,
        [scenario],
        [engine],
        comparison_id=comparison_id,
        seeds=[SEAM_SEED],
        workers=1,
        progress=progress,
    )
    end = time.perf_counter()
    if ensemble.resumed or len(ensemble.computed) != 1:
        raise RuntimeError(f"comparison '{comparison_id}' reused a saved seed; the seam was not measured")
    prepare_from = marks[0][0]  # "preparing …" (total 0), then "0 … complete, 1 to run", then "… done"
    prepared_at = next(when for when, _, total in marks if total > 0)
    done_at = next(when for when, done, total in marks if total > 0 and done == total)
    record = ensemble.runs[TRAFFIC][scenario.name][0]
    return SeamSeed(
        wall_s=end - start,
        before_prepare_s=prepare_from - start,
        prepare_s=prepared_at - prepare_from,
        seed_s=done_at - prepared_at,
        in_worker_s=record.wall_s,
        after_s=end - done_at,
        sumo_s=float(record.details["sumo_wall_s"]),
        netconvert_s=float(record.details["netconvert_s"]),
        kpis=kpi_values(record.kpis),
    )


def bench_seam(twin: Path, work: Path, settings: Settings) -> None:
    """One seed through the generic ensemble against the same seed straight through the engine."""
    scenario = Scenario.baseline_scenario()
    options = settings.options()
    params = settings.params(twin)
    load_twin(twin)  # both paths reuse this in-memory copy of the twin's tables (the ensemble's prepare too)
    rows: list[list[str]] = []
    wall_shares: list[float] = []
    outside_shares: list[float] = []
    for index in range(settings.repeat):
        seam_first = index % 2 == 1
        log(f"seam: run {index + 1}/{settings.repeat} ({'ensemble' if seam_first else 'direct'} first)")
        comparison_id, workdir = f"bench-seam-{index}", work / f"seam_direct_{index}"
        if seam_first:
            seam = seam_seed(twin, scenario, options, comparison_id)
            direct = direct_seed(twin, scenario, params, workdir)
        else:
            direct = direct_seed(twin, scenario, params, workdir)
            seam = seam_seed(twin, scenario, options, comparison_id)
        difference = seam.wall_s - direct.wall_s
        outside = (seam.wall_s - seam.sumo_s - seam.netconvert_s) - (
            direct.wall_s - direct.sumo_s - direct.netconvert_s
        )
        wall_shares.append(difference / direct.wall_s)
        outside_shares.append(outside / direct.wall_s)
        rows.append(
            [
                f"{index + 1} ({'ensemble' if seam_first else 'direct'} first)",
                f"{direct.prepare_s:.2f} + {direct.simulate_s:.2f} = {direct.wall_s:.2f}",
                f"{seam.before_prepare_s:.2f} + {seam.prepare_s:.2f} + {seam.seed_s:.2f} + {seam.after_s:.2f} "
                f"= {seam.wall_s:.2f}",
                f"{seam.in_worker_s:.2f}",
                f"{direct.sumo_s:.2f} / {seam.sumo_s:.2f}",
                f"{direct.netconvert_s:.2f} / {seam.netconvert_s:.2f}",
                f"{difference:+.2f} ({difference / direct.wall_s:+.1%})",
                f"{outside:+.2f} ({outside / direct.wall_s:+.1%})",
                "yes" if same_kpis(direct.kpis, seam.kpis) else "NO",
            ]
        )
    print(
        f"### The engine seam's cost: baseline × seed {SEAM_SEED}, {params.iterations} simulation ↔ mode-choice "
        f"iteration(s), demand scale {settings.scale:g}, demo twin, one worker\n"
    )
    table(
        [
            "run",
            "direct: prepare + simulate_seed = wall s",
            "ensemble: before prepare + prepare + seed + shutdown = wall s",
            "seed in its worker s",
            "sumo processes s: direct / ensemble",
            "netconvert s: direct / ensemble",
            "ensemble − direct, wall s (share)",
            "ensemble − direct, outside SUMO's processes s (share)",
            "KPIs identical",
        ],
        rows,
    )
    median = statistics.median(wall_shares)
    verdict = "meets" if abs(median) < SEAM_TARGET else "misses"
    print(
        f"Median difference in wall time, ensemble against direct: {median:+.1%}, {verdict} the "
        f"< {SEAM_TARGET:.0%} target; outside SUMO's own processes: {statistics.median(outside_shares):+.1%} "
        "of the direct wall time. Direct: the twin's tables from `load_twin`'s in-memory copy, "
        "`prepare_scenario`, `simulate_seed`. Ensemble: `run_ensemble` with the installed traffic engine "
        "(worker pool, the twin's data fingerprint from its store, preparation, the seed in a worker "
        "process, its tables checked and saved atomically, shutdown).\n",
        flush=True,
    )


# -------------------------------------------------------------------------------------------- speed-up


def bench_speedup(twin: Path, settings: Settings) -> None:
    """The same seeds through the generic ensemble serially and with ``workers`` processes."""
    iterations = settings.params(twin).iterations
    context = TwinContext.load(twin, options=settings.options())
    baseline = Scenario.baseline_scenario()
    measured: dict[int, Ensemble] = {}
    for workers in (1, settings.workers):
        log(f"speedup: {settings.speedup_seeds} seeds with {workers} worker(s)")
        measured[workers] = run_ensemble(
            context,
            [baseline],
            [traffic_engine()],
            comparison_id=f"bench-speedup-w{workers}",
            seeds=settings.speedup_seeds,
            workers=workers,
        )
    serial = measured[1].wall_s
    rows = []
    for workers, ensemble in measured.items():
        runs = ensemble.runs[TRAFFIC][baseline.name]
        rows.append(
            [
                str(workers),
                str(len(runs)),
                f"{ensemble.wall_s:.1f}",
                f"{sum(r.wall_s for r in runs):.1f}",
                f"{sum(float(r.details['sumo_wall_s']) for r in runs):.1f}",
                f"{serial / ensemble.wall_s:.2f}×",
            ]
        )
    print(
        f"### Ensemble speed-up: baseline × {settings.speedup_seeds} seeds, demand scale "
        f"{settings.scale:g}, {iterations} iteration(s) per seed, demo twin, {os.cpu_count()} CPUs\n"
    )
    table(
        ["workers", "seeds", "ensemble wall s", "sum of seed runs s", "sum of sumo processes s", "speed-up"],
        rows,
    )
    first, second = (measured[w].runs[TRAFFIC][baseline.name] for w in (1, settings.workers))
    same = all(same_kpis(kpi_values(a.kpis), kpi_values(b.kpis)) for a, b in zip(first, second, strict=True))
    speedup = serial / measured[settings.workers].wall_s
    verdict = "meets" if speedup >= SPEEDUP_TARGET else "misses"
    print(
        f"Speed-up {speedup:.2f}× with {settings.workers} workers, {verdict} the ≥ {SPEEDUP_TARGET}× target; "
        f"KPIs per seed identical serial vs parallel: {'yes' if same else 'NO'}.\n",
        flush=True,
    )
    configs = sorted(config for record in first for config in last_sumo_configs(record))
    alone, together = (bare_sumo_wall(configs, at_once) for at_once in (1, settings.workers))
    print(
        f"The machine's own ceiling: the last simulation of each of the {len(configs)} seeds re-run as bare "
        f"`sumo` processes took {alone:.1f} s one at a time and {together:.1f} s {settings.workers} at a time "
        f"({alone / together:.2f}×).\n",
        flush=True,
    )


def last_sumo_configs(record: SeedRecord) -> list[Path]:
    """The ``run.sumocfg`` of a saved seed's last simulation (kept under the seed's ``work/`` folder)."""
    if record.directory is None:
        raise RuntimeError(f"seed {record.seed} of '{record.scenario}' has no folder")
    return sorted(record.directory.glob("work/iteration_*/run.sumocfg"))


def bare_sumo_wall(configs: Sequence[Path], at_once: int) -> float:
    """Wall seconds to run ``sumo -c`` on every config, ``at_once`` processes at a time."""

    def simulate(config: Path) -> None:
        subprocess.run([str(binary("sumo")), "-c", config.name], cwd=config.parent, env=sumo_env(), check=True,
                       capture_output=True)  # fmt: skip

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=at_once) as pool:
        list(pool.map(simulate, configs))
    return time.perf_counter() - start


# ------------------------------------------------------------------------------------------------ demo


def bench_demo(twin: Path, build_s: float, settings: Settings) -> None:
    """The demo comparison through the CLI, as a user runs it."""
    args = ["compare", "baseline", *DEMO_PLANS, "--seeds", str(settings.demo_seeds)]
    args += ["--workers", str(settings.workers)]
    if settings.scale != 1.0:
        args += ["--scale", f"{settings.scale:g}"]
    if settings.iterations is not None:
        args += ["--iterations", str(settings.iterations)]
    shown = "civictwin " + " ".join(args)
    log(f"demo: {shown}")
    start = time.perf_counter()
    done = subprocess.run(
        [str(CIVICTWIN), *args, "--twin", str(twin)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    wall = time.perf_counter() - start
    print("### The demo comparison (demo twin, mode-choice feedback)\n")
    if done.returncode != 0:
        table(["command", "result"], [[f"`{shown}`", f"failed (exit {done.returncode}) after {wall:.1f} s"]])
        print("```\n" + "\n".join(done.stderr.splitlines()[-15:]) + "\n```\n", flush=True)
        return
    runs = (1 + len(DEMO_PLANS)) * settings.demo_seeds
    verdict = "meets" if wall < DEMO_TARGET_S else "misses"
    table(
        ["command", "seed runs", "wall s", "target", "twin build s (not counted)"],
        [[f"`{shown}`", str(runs), f"{wall:.1f}", f"< {DEMO_TARGET_S:.0f} s: {verdict}", f"{build_s:.1f}"]],
    )
    report = [line for line in done.stdout.splitlines() if line.startswith("Report:")]
    log(report[-1] if report else "demo: no report line in the output")


# --------------------------------------------------------------------------------------------- scaling


@dataclass(frozen=True)
class Reach:
    """How much of a twin's car network the traffic engine can use (its largest strongly connected part)."""

    car_edges: int
    connected_edges: int
    zones: int
    car_zones: int

    @classmethod
    def of(cls, inputs: TwinInputs) -> Reach:
        """Count car edges and zones as :func:`prepare_scenario` sees them for the baseline."""
        modified = apply_interventions(
            inputs.edges, Scenario.baseline_scenario(), crs=inputs.crs, zones=inputs.zones
        )
        by_zone = zone_edges(inputs.zones, modified.edges, present=set(modified.car_edges))
        return cls(
            car_edges=int(inputs.edges["car"].fillna(False).astype(bool).sum()),
            connected_edges=len(modified.car_edges),
            zones=len(inputs.zones),
            car_zones=sum(1 for ids in by_zone.values() if ids),
        )


@dataclass(frozen=True)
class Outcome:
    """A scaling run: the baseline and plan runs over the seeds, or why they failed."""

    tiles: int
    reach: Reach
    scale: float
    mode: str
    base: list[tuple[SeedOutcome, float]]
    plan: list[tuple[SeedOutcome, float]]
    failure: str = ""


def extent(n: int) -> str:
    """The bbox covering n×n tiled copies (the tiler shifts each copy by the extent × 1.02)."""
    x0, y0, x1, y1 = DEMO_BBOX
    corners = (x0 - 0.001, y0 - 0.001, x0 + (x1 - x0) * 1.02 * n + 0.001, y0 + (y1 - y0) * 1.02 * n + 0.001)
    return ", ".join(f"{v:.6f}" for v in corners)


def tiled_twin(n: int, work: Path) -> tuple[Path, float]:
    """A twin built from the demo extract tiled n×n, with the demo's settings; and its build time."""
    work.mkdir(parents=True, exist_ok=True)
    pbf = work / f"helsinki_{n}x{n}.osm.pbf"
    subprocess.run([sys.executable, str(TILER), str(demo_pbf()), str(pbf), "--n", str(n)], check=True)
    twin = work / f"twin_{n}x{n}"
    config = write_demo_config(twin)
    text, found = re.subn(r"(?m)^bbox = \[.*\]$", f"bbox = [{extent(n)}]", config.read_text(encoding="utf-8"))
    if found != 1 or str(demo_pbf()) not in text:
        raise RuntimeError(f"the demo config changed shape; cannot retarget {config} to {pbf}")
    config.write_text(text.replace(str(demo_pbf()), str(pbf)), encoding="utf-8")
    start = time.perf_counter()
    build_twin(load_config(config))
    return twin, time.perf_counter() - start


def timed_run(
    inputs: TwinInputs, scenario: Scenario, seed: int, workdir: Path, params: TrafficParams
) -> tuple[SeedOutcome, float]:
    """``run_scenario`` on loaded inputs, with its wall time."""
    start = time.perf_counter()
    run = run_scenario(inputs, scenario, seed, workdir, params)
    return run, time.perf_counter() - start


def scaling_case(
    inputs: TwinInputs,
    reach: Reach,
    twin: Path,
    tiles: int,
    scale: float,
    mode: str,
    work: Path,
    settings: Settings,
) -> Outcome:
    """Baseline and plan over the scaling seeds at one size, demand scale and mode."""
    params = settings.params(twin, scale=scale, meso=mode == "meso")
    base: list[tuple[SeedOutcome, float]] = []
    plan: list[tuple[SeedOutcome, float]] = []
    scenarios = (Scenario.baseline_scenario(), builtin_scenario(twin, settings.plan))
    try:
        for seed in range(1, settings.scaling_seeds + 1):
            for scenario, runs in zip(scenarios, (base, plan), strict=True):
                log(f"scaling: {tiles}×{tiles}, scale {scale:g}, {mode}, {scenario.name}, seed {seed}")
                folder = work / f"scaling_{tiles}_{scale:g}_{mode}_{scenario.name}_{seed}"
                runs.append(timed_run(inputs, scenario, seed, folder, params))
    except CivicTwinError as exc:
        return Outcome(tiles, reach, scale, mode, base, plan, failure=exc.user_message())
    return Outcome(tiles, reach, scale, mode, base, plan)


def mean_kpi(runs: Sequence[tuple[SeedOutcome, float]], key: str) -> float:
    """The mean of one KPI over the seeds."""
    return statistics.fmean(run.kpis[key] for run, _ in runs)


def change(base: float, plan: float) -> str:
    """Relative change in percent."""
    return f"{(plan - base) / base:+.1%}" if base else "–"


def scaling_row(outcome: Outcome, micro_wall: dict[tuple[int, float], float]) -> list[str]:
    """One table row; meso rows carry their speed-up over the micro row of the same size and demand."""
    reach = outcome.reach
    head = [
        f"{outcome.tiles}×{outcome.tiles}",
        f"{reach.connected_edges} / {reach.car_edges}",
        f"{reach.car_zones} / {reach.zones}",
        f"{outcome.scale:g}",
        outcome.mode,
    ]
    if outcome.failure:
        return [*head, *["–"] * 10, f"failed: {outcome.failure}"]
    wall = statistics.fmean(w for _, w in outcome.base)
    sumo = statistics.fmean(r.sumo_wall_s for r, _ in outcome.base)
    reference = micro_wall.get((outcome.tiles, outcome.scale))
    faster = f"{reference / wall:.1f}×" if outcome.mode == "meso" and reference else "–"
    travel = [mean_kpi(runs, "mean_travel_time_s") for runs in (outcome.base, outcome.plan)]
    delay = [mean_kpi(runs, "total_delay_h") for runs in (outcome.base, outcome.plan)]
    car = [mean_kpi(runs, "share_car") for runs in (outcome.base, outcome.plan)]
    return [
        *head,
        f"{mean_kpi(outcome.base, 'person_trips'):.0f}",
        f"{mean_kpi(outcome.base, 'trips'):.0f}",
        f"{wall:.1f}",
        f"{sumo:.1f}",
        faster,
        f"{travel[0]:.0f}",
        change(*travel),
        f"{delay[0]:.1f}",
        change(*delay),
        f"{100 * (car[1] - car[0]):+.1f} pp",
        "ok",
    ]


def bench_scaling(demo_twin: Path, work: Path, settings: Settings) -> None:
    """Growth with network size and demand, micro vs meso, and the plan's effect in each."""
    outcomes: list[Outcome] = []
    built: list[str] = []
    for tiles in settings.sizes:
        if tiles == 1:
            twin = demo_twin
        else:
            log(f"scaling: tiling and building the {tiles}×{tiles} twin")
            twin, build_s = tiled_twin(tiles, work)
            built.append(f"{tiles}×{tiles} twin built in {build_s:.1f} s (not counted)")
        inputs = load_twin(twin)
        reach = Reach.of(inputs)
        for scale in settings.scales:
            for mode in settings.modes:
                outcomes.append(scaling_case(inputs, reach, twin, tiles, scale, mode, work, settings))
    micro_wall = {
        (o.tiles, o.scale): statistics.fmean(w for _, w in o.base)
        for o in outcomes
        if o.mode == "micro" and not o.failure
    }
    rows = [scaling_row(o, micro_wall) for o in outcomes]
    iterations = settings.params(demo_twin).iterations
    print(
        f"### Growth with network size and demand, micro vs meso: baseline and `{settings.plan}`, "
        f"{settings.scaling_seeds} seed(s), {iterations} iteration(s) per run\n"
    )
    table(
        [
            "tiles",
            "car edges: connected / all",
            "zones with car access / all",
            "demand scale",
            "mode",
            "person trips",
            "car trips",
            "baseline wall s",
            "of which sumo s",
            "meso speed-up",
            "mean travel time s",
            "plan Δ travel time",
            "total delay h",
            "plan Δ delay",
            "plan Δ car share",
            "status",
        ],
        rows,
    )
    for line in built:
        print(line)
    if built:
        print(
            "\nThe tiler joins neighbouring copies by two-way roads, so a tiled twin is one street "
            "network; cars are driven in its largest strongly connected part (the `connected / all` "
            "column; most of the rest are footways and steps that `access=permissive` opens to cars, "
            "and pieces that can be entered or left only one way).\n"
        )


# ----------------------------------------------------------------------------------- bare SUMO, growth


@dataclass(frozen=True)
class Variant:
    """One way of running SUMO on the same trips: main's, today's, or a step between."""

    name: str
    network: str
    """Which of :attr:`Iteration.networks`: ``single`` (main's), ``merged`` or ``today``."""
    options: SimOptions


def variants(end_s: float) -> list[Variant]:
    """Main's network and options, then each change added in turn (the last one is today's)."""
    main = SimOptions(end_s=end_s, rerouting_adaptation_s=1.0, stop_when_done=False)
    faster_weights = SimOptions(end_s=end_s, stop_when_done=False)
    return [
        Variant("main: one SUMO edge per twin edge, weights every 1 s, fixed end", "single", main),
        Variant("+ edge speeds refreshed every 10 s (same 180 s window)", "single", faster_weights),
        Variant("+ run ends with its last vehicle", "single", SimOptions(end_s=end_s)),
        Variant("+ chains of twin edges merged", "merged", SimOptions(end_s=end_s)),
        Variant("+ parts no trip reaches left out (today)", "today", SimOptions(end_s=end_s)),
    ]


@dataclass(frozen=True)
class Iteration:
    """One demo-like iteration to re-run bare: its trips on the twin's edges and the networks of
    :func:`variants`."""

    trips: list[CarTrip]
    networks: dict[str, SumoNetwork]
    end_s: float


def iteration_of(twin: Path, work: Path, params: TrafficParams) -> Iteration:
    """The baseline's last simulation of seed 1 on ``twin``: its trips; main's network (every car
    edge, one SUMO edge per twin edge), every car edge with chains merged, and today's."""
    inputs = load_twin(twin)
    baseline = Scenario.baseline_scenario()
    prepared = prepare_scenario(inputs, baseline, work / "network", params)
    simulate_seed(prepared, 1, work / "sumo")
    trips_file = sorted((work / "sumo").glob("iteration_*/trips.rou.xml"))[-1]
    trips = twin_trips(trips_file, prepared.network)
    car = inputs.edges["car"].fillna(False).astype(bool)
    modified = apply_interventions(inputs.edges, baseline, crs=inputs.crs)
    simulated = modified.edges[modified.edges["edge_id"].isin(set(inputs.edges.loc[car, "edge_id"]))]
    single = build_sumo_network(simulated, inputs.nodes, work / "network_single", merge_chains=False)
    merged = build_sumo_network(simulated, inputs.nodes, work / "network_merged")
    networks = {"single": single, "merged": merged, "today": prepared.network}
    return Iteration(trips, networks, params.sim_options().end_s)


def twin_trips(trips_file: Path, network: SumoNetwork) -> list[CarTrip]:
    """The car trips of a ``trips.rou.xml`` written on ``network``, back on the twin's edges.

    A trip on a merged SUMO edge names the twin edge by its position: ``departPos`` falls inside its
    first twin edge, ``arrivalPos`` is the end of its last (absent: the SUMO edge's first, last one).
    """
    chains = network.chains
    members = {edge: group for edge, group in chains.groupby("sumo_edge", sort=False)}
    trips = []
    for trip in ET.parse(trips_file).getroot().iter("trip"):
        start, end = members[trip.get("from", "")], members[trip.get("to", "")]
        depart, arrive = trip.get("departPos"), trip.get("arrivalPos")
        first = start.iloc[0] if depart is None else start[start["start_m"] < float(depart)].iloc[-1]
        last = end.iloc[-1] if arrive is None else end[end["start_m"] < float(arrive)].iloc[-1]
        trips.append(
            CarTrip(
                str(trip.get("id")), str(first["edge_id"]), str(last["edge_id"]), float(trip.get("depart", 0))
            )
        )
    return trips


@dataclass(frozen=True)
class BareRun:
    """One bare SUMO run: wall and CPU seconds of the sumo process, KPIs, vehicles and vehicle-seconds."""

    wall_s: float
    cpu_s: float
    kpis: dict[str, float]
    vehicles: int
    vehicle_s: float


def bare_run(iteration: Iteration, variant: Variant, workdir: Path, *, seed: int = 1) -> BareRun:
    """``run_sumo`` once; CPU time is the sumo child's user + system time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run_sumo(iteration.networks[variant.network], iteration.trips, seed=seed, workdir=workdir,
                      options=variant.options)  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    arrived = result.trips[result.trips["arrived"]]
    return BareRun(result.wall_s, cpu, run_kpis(result), len(arrived), float(arrived["duration_s"].sum()))


def bench_bare(twin: Path, work: Path, settings: Settings) -> None:
    """Main's SUMO network and options against today's on one demo iteration: every variant on the
    same trips for each seed, alternating, so the speed-up and the KPIs' run-to-run noise come from
    the same runs."""
    params = settings.params(twin)
    log("bare: one baseline run of seed 1 for its trips")
    iteration = iteration_of(twin, work / "bare", params)
    chosen = variants(iteration.end_s)
    runs: dict[str, list[BareRun]] = {v.name: [] for v in chosen}
    for seed in range(1, settings.bare_seeds + 1):
        for number, variant in enumerate(chosen):
            log(f"bare: seed {seed}/{settings.bare_seeds}, {variant.name}")
            folder = work / "bare" / f"v{number}_{seed}"
            runs[variant.name].append(bare_run(iteration, variant, folder, seed=seed))
    print(
        f"### Bare SUMO on one demo iteration: the {len(iteration.trips)} car trips of the baseline's last "
        f"simulation (seed 1), each variant run with SUMO seeds 1–{settings.bare_seeds}, alternating\n"
    )
    bare_cost_table(iteration, chosen, runs)
    bare_kpi_tables(chosen, runs)


def bare_cost_table(iteration: Iteration, chosen: Sequence[Variant], runs: dict[str, list[BareRun]]) -> None:
    """Wall and CPU seconds per variant (summed over the seeds), vehicles and the speed-up vs main."""
    main = runs[chosen[0].name]
    main_wall, main_cpu = sum(r.wall_s for r in main), sum(r.cpu_s for r in main)
    rows = []
    for variant in chosen:
        done = runs[variant.name]
        wall, cpu = sum(r.wall_s for r in done), sum(r.cpu_s for r in done)
        vehicle_s = sum(r.vehicle_s for r in done)
        rows.append(
            [
                variant.name,
                str(iteration.networks[variant.network].chains["sumo_edge"].nunique()),
                f"{statistics.mean(r.vehicles for r in done):.0f}",
                f"{vehicle_s / len(done) / 3600:.1f}",
                ", ".join(f"{r.wall_s:.1f}" for r in done),
                ", ".join(f"{r.cpu_s:.1f}" for r in done),
                f"{wall:.1f} / {cpu:.1f}",
                f"{vehicle_s / cpu:,.0f}",
                f"{main_wall / wall:.1f}× / {main_cpu / cpu:.1f}×",
            ]
        )
    table(
        [
            "network and run options",
            "SUMO edges",
            "vehicles arrived (mean)",
            "vehicle-hours simulated (mean)",
            "wall s (each seed)",
            "CPU s (each seed)",
            "total wall / CPU s",
            "vehicle-seconds per CPU s",
            "speed-up vs main (wall / CPU)",
        ],
        rows,
    )
    today = runs[chosen[-1].name]
    by_cpu = main_cpu / sum(r.cpu_s for r in today)
    verdict = "meets" if by_cpu >= BARE_TARGET else "misses"
    print(
        f"Today's runs take {by_cpu:.1f}× less CPU than main's ({main_wall / sum(r.wall_s for r in today):.1f}× "
        f"less wall time), {verdict} the ≥ {BARE_TARGET:g}× target on this machine at its load.\n",
        flush=True,
    )


def bare_kpi_tables(chosen: Sequence[Variant], runs: dict[str, list[BareRun]]) -> None:
    """Each variant's KPIs over the seeds (mean and 95% interval), then main → today with Welch's
    interval: a change inside it is run-to-run noise."""
    print("KPIs over the seeds (mean [95% interval]):\n")
    rows = []
    for variant in chosen:
        done = runs[variant.name]
        cells = []
        for key in BARE_KPIS:
            estimate = summarise([r.kpis[key] for r in done])
            cells.append(f"{estimate.mean:.4g} [{estimate.ci_low:.4g}, {estimate.ci_high:.4g}]")
        rows.append([variant.name, *cells])
    table(["network and run options", *BARE_KPIS], rows)
    print("Main → today, per KPI (Welch's 95% interval over the seeds):\n")
    main, today = runs[chosen[0].name], runs[chosen[-1].name]
    rows = []
    for key in BARE_KPIS:
        change = difference([r.kpis[key] for r in main], [r.kpis[key] for r in today], label=key)
        rows.append(
            [
                key,
                f"{change.base_mean:.4g}",
                f"{change.plan_mean:.4g}",
                f"{change.mean:+.4g} [{change.ci_low:+.4g}, {change.ci_high:+.4g}]",
                f"{100 * change.relative:+.1f}%",
                "no: within run-to-run noise" if not change.distinguishable else "yes",
            ]
        )
    table(["KPI", "main", "today", "today − main [95% interval]", "relative", "distinguishable"], rows)


def bench_growth(demo_twin: Path, work: Path, settings: Settings) -> None:
    """Main's and today's SUMO runs on the 1×1, 2×2 and 4×4 tiled demo: time against traffic."""
    params = settings.params(demo_twin).model_copy(update={"iterations": 1})
    rows = []
    for tiles in settings.growth_sizes:
        if tiles == 1:
            twin = demo_twin
        else:
            log(f"growth: tiling and building the {tiles}×{tiles} twin")
            twin, _ = tiled_twin(tiles, work / "growth")
        log(f"growth: {tiles}×{tiles}, one baseline iteration for its trips")
        iteration = iteration_of(twin, work / "growth" / f"run_{tiles}", params)
        pair = (variants(iteration.end_s)[0], variants(iteration.end_s)[-1])
        done = []
        for variant in pair:
            log(f"growth: {tiles}×{tiles}, {variant.name}")
            done.append(bare_run(iteration, variant, work / "growth" / f"bare_{tiles}_{variant.network}"))
        main, today = done
        rows.append(
            [
                f"{tiles}×{tiles}",
                f"{iteration.networks['single'].chains['sumo_edge'].nunique()} / "
                f"{iteration.networks['today'].chains['sumo_edge'].nunique()}",
                str(len(iteration.trips)),
                f"{today.vehicle_s / 3600:.1f}",
                f"{main.wall_s:.1f} / {main.cpu_s:.1f}",
                f"{today.wall_s:.1f} / {today.cpu_s:.1f}",
                f"{main.wall_s / today.wall_s:.1f}× / {main.cpu_s / today.cpu_s:.1f}×",
                f"{1e6 * today.cpu_s / max(today.vehicle_s, 1.0):.0f}",
                f"{today.kpis['mean_travel_time_s']:.0f} / {main.kpis['mean_travel_time_s']:.0f}",
            ]
        )
    print(
        "### Growth: one baseline iteration per tiled twin (demo settings, 1 simulation), bare SUMO, main "
        "against today\n"
    )
    table(
        [
            "tiles",
            "SUMO edges main / today",
            "car trips",
            "vehicle-hours simulated",
            "main wall / CPU s",
            "today wall / CPU s",
            "speed-up (wall / CPU)",
            "today CPU µs per vehicle-second",
            "mean travel time s today / main",
        ],
        rows,
    )


# ------------------------------------------------------------------------------------------------ main


def parse(argv: Sequence[str] | None = None) -> Settings:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated: " + ",".join(SECTIONS))
    parser.add_argument("--seeds", type=int, help="seeds in speedup (default 4) and demo (default 5)")
    parser.add_argument("--scaling-seeds", type=int, default=1, help="seeds per scaling case")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes (speedup, demo)")
    parser.add_argument("--scale", type=float, default=1.0, help="demand scale: all but scaling")
    parser.add_argument(
        "--iterations",
        type=int,
        help="simulation ↔ mode-choice rounds (default: the twin's traffic.toml, else 3)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="overhead, seam and bare repetitions (median)")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.5, 1.0, 2.0], help="scaling demand")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2], help="scaling tiles per axis")
    parser.add_argument("--modes", nargs="+", choices=["micro", "meso"], default=["micro", "meso"])
    parser.add_argument("--plan", choices=DEMO_PLANS, default="close_main_street", help="scaling plan")
    parser.add_argument(
        "--growth-sizes", type=int, nargs="+", default=[1, 2, 4], help="growth: tiles per axis"
    )
    parser.add_argument("--bare-seeds", type=int, default=5, help="bare: SUMO seeds per variant")
    args = parser.parse_args(argv)
    sections = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown or not sections:
        parser.error(f"--only: unknown section(s) {', '.join(unknown) or '(none given)'}")
    return Settings(
        sections=sections,
        speedup_seeds=args.seeds or 4,
        demo_seeds=args.seeds or 5,
        scaling_seeds=args.scaling_seeds,
        workers=args.workers,
        scale=args.scale,
        iterations=args.iterations,
        repeat=args.repeat,
        scales=tuple(args.scales),
        sizes=tuple(args.sizes),
        modes=tuple(args.modes),
        plan=args.plan,
        growth_sizes=tuple(args.growth_sizes),
        bare_seeds=args.bare_seeds,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Build the demo twin in a temporary folder and run the chosen sections."""
    settings = parse(argv)
    load = os.getloadavg()[0]
    print(f"Machine: {os.cpu_count()} CPUs, 1-minute load average {load:.1f} at the start.\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_traffic_") as tmp:
        work = Path(tmp)
        log("building the demo twin")
        start = time.perf_counter()
        twin = work / "demo"
        build_demo(twin)
        build_s = time.perf_counter() - start
        if "overhead" in settings.sections:
            bench_overhead(twin, work, settings)
        if "seam" in settings.sections:
            bench_seam(twin, work, settings)
        if "speedup" in settings.sections:
            bench_speedup(twin, settings)
        if "demo" in settings.sections:
            bench_demo(twin, build_s, settings)
        if "scaling" in settings.sections:
            bench_scaling(twin, work, settings)
        if "bare" in settings.sections:
            bench_bare(twin, work, settings)
        if "growth" in settings.sections:
            bench_growth(twin, work, settings)


if __name__ == "__main__":
    main()
