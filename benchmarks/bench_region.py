"""Region-sized traffic (issue 14 part 5): a whole tiled city mesoscopically, and micro against meso.

Reproduce (every section at its defaults, the numbers recorded in BENCHMARKS.md under #14 part 5):

    .venv/bin/python benchmarks/bench_region.py

Sections (each prints a markdown table on stdout; progress goes to stderr):

- ``city``: the demo extract tiled N×N (``--tiles``, default 8; ``../shared/tools/tile_osm.py`` joins
  neighbouring copies by roads, so it is one street network) built into a twin as the growth benchmark
  of ``bench_traffic.py`` builds its tiled twins (or ``--city-twin``, one already built), then the
  baseline with its residents' demand (and with ``--gateways`` the ``[gateways]`` flows at their
  defaults, which gridlock a tiled twin), simulated mesoscopically through the engine's own
  :func:`prepare_scenario` and :func:`simulate_seed` (what ``civictwin compare --engine traffic`` runs
  per seed), one seed, one simulation ↔ mode-choice round unless ``--city-iterations`` says more. With
  ``--focus`` the zones of the middle tile are re-simulated microscopically (``focus_zones``). Records
  person and car trips, the preparation's and the seed's wall time, SUMO's own seconds, the CPU seconds
  of this process and of its SUMO children, the peak memory of this process and of the largest SUMO
  child process, and the city-wide (meso) and focus (micro) KPIs.
- ``levels``: the demo twin, baseline and ``close_main_street`` over ``--seeds`` seeds (default 5) with
  ``--iterations`` rounds (default 3, the engine's), micro and meso
  (the engine's meso options, ``run.MESO_OPTIONS``): mean travel time and total delay with their 95%
  intervals over the seeds, and the plan's effect on each with Welch's 95% interval.
- ``routing``: the demo twin, baseline and ``close_main_street`` over ``--seeds`` seeds with
  ``--iterations`` rounds, mesoscopic, routed by A* (the meso runs' routing before CCH, recreated by
  swapping ``run.MESO_OPTIONS`` for these runs only) and by CCH (today's ``run.MESO_OPTIONS``): the
  same KPIs as ``levels`` plus vehicle-km, to show the choice of router leaves them within noise.

Everything is written in a temporary folder that is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from bench_traffic import builtin_scenario, log, table, tiled_twin

from civictwin.demo import build_demo
from civictwin.engines.traffic import run as sumo_run
from civictwin.engines.traffic.inputs import TwinInputs, load_twin
from civictwin.engines.traffic.params import TrafficParams, load_params
from civictwin.engines.traffic.prepare import prepare_scenario
from civictwin.engines.traffic.simulate import SeedOutcome, run_scenario, simulate_seed
from civictwin.kpis.ensemble import difference, summarise
from civictwin.scenarios.spec import Scenario

SECTIONS = ("city", "levels", "routing")
PLAN = "close_main_street"
LEVEL_KPIS = ("mean_travel_time_s", "total_delay_h")
ROUTING_KPIS = ("mean_travel_time_s", "total_delay_h", "vehicle_km")
ROUTERS = ("astar", "CCH")


@dataclass(frozen=True)
class Settings:
    """The command-line choices, typed."""

    sections: tuple[str, ...]
    tiles: int
    city_iterations: int
    iterations: int
    scale: float
    focus: bool
    seeds: int
    city_twin: Path | None = None
    gateways: bool = False


def peak_mb(who: int) -> float:
    """Peak resident memory (MB) of this process (``RUSAGE_SELF``) or of its largest finished child."""
    return resource.getrusage(who).ru_maxrss / 1024.0


def middle_tile_zones(inputs: TwinInputs, tiles: int) -> tuple[str, ...]:
    """The zones whose centroid lies in the middle tile of a tiles × tiles twin (by the zones' extent)."""
    zones = inputs.zones
    x0, y0, x1, y1 = zones.total_bounds
    col = row = tiles // 2
    width, height = (x1 - x0) / tiles, (y1 - y0) / tiles
    centres = zones.geometry.centroid
    inside = (
        (centres.x >= x0 + col * width)
        & (centres.x < x0 + (col + 1) * width)
        & (centres.y >= y0 + row * height)
        & (centres.y < y0 + (row + 1) * height)
    )
    return tuple(zones.loc[inside, "zone_id"].astype(str))


def cpu_s(who: int) -> float:
    """CPU seconds (user + system) of this process (``RUSAGE_SELF``) or its finished children: the fairer
    measure on a shared machine, where wall time depends on the other jobs."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def bench_city(work: Path, settings: Settings) -> None:
    """The whole tiled city, mesoscopically, with an optional microscopic focus on its middle tile."""
    if settings.city_twin is None:
        log(f"city: tiling and building the {settings.tiles}×{settings.tiles} twin")
        twin, build_s = tiled_twin(settings.tiles, work / "city")
    else:
        twin, build_s = settings.city_twin, float("nan")
    start = time.perf_counter()
    inputs = load_twin(twin)
    load_s = time.perf_counter() - start
    focus = middle_tile_zones(inputs, settings.tiles) if settings.focus else ()
    params = load_params(
        twin,
        iterations=settings.city_iterations,
        mesoscopic=True,
        focus_zones=focus or None,
        demand={"scale": settings.scale},  # as ``civictwin compare --scale`` passes it
        gateways={"enabled": True} if settings.gateways else None,
    )
    cpu_before = cpu_s(resource.RUSAGE_SELF), cpu_s(resource.RUSAGE_CHILDREN)
    log(f"city: preparing the baseline ({len(inputs.zones)} zones, {len(inputs.edges)} edges)")
    start = time.perf_counter()
    prepared = prepare_scenario(inputs, Scenario.baseline_scenario(), work / "city" / "network", params)
    prepare_s = time.perf_counter() - start
    log("city: simulating seed 1")
    start = time.perf_counter()
    outcome = simulate_seed(prepared, 1, work / "city" / "seed")
    seed_s = time.perf_counter() - start
    python_cpu = cpu_s(resource.RUSAGE_SELF) - cpu_before[0]
    children_cpu = cpu_s(resource.RUSAGE_CHILDREN) - cpu_before[1]
    kpis = outcome.kpis
    print(
        f"### Whole city, mesoscopic: the demo extract tiled {settings.tiles}×{settings.tiles}, baseline, "
        f"1 seed, {settings.city_iterations} round(s), demand scale {settings.scale:g}\n"
    )
    rows = [
        ["twin build s (not counted)", "given" if settings.city_twin else f"{build_s:.0f}"],
        ["zones / edges in the twin", f"{len(inputs.zones)} / {len(inputs.edges)}"],
        ["person trips (all modes)", f"{kpis['person_trips']:.0f}"],
        ["car trips simulated (residents + gateways)", f"{kpis['trips']:.0f}"],
        ["load twin s", f"{load_s:.1f}"],
        ["prepare scenario s (network, demand, free-flow service)", f"{prepare_s:.1f}"],
        ["of which netconvert s", f"{prepared.network.wall_s:.1f}"],
        ["simulate seed s (all rounds, focus run included)", f"{seed_s:.1f}"],
        ["of which sumo s (city runs)", f"{outcome.sumo_wall_s:.1f}"],
        [
            "vehicle-seconds per sumo second (arrived cars' driving time / city runs' sumo s)",
            f"{kpis['total_travel_time_h'] * 3600 / outcome.sumo_wall_s:,.0f}",
        ],
        ["CPU s, this process (prepare + seed)", f"{python_cpu:.0f}"],
        ["CPU s, SUMO processes (netconvert, sumo, cutRoutes.py)", f"{children_cpu:.0f}"],
        ["peak memory, this process MB", f"{peak_mb(resource.RUSAGE_SELF):.0f}"],
        ["peak memory, largest SUMO process MB", f"{peak_mb(resource.RUSAGE_CHILDREN):.0f}"],
        ["city-wide (meso) mean travel time s", f"{kpis['mean_travel_time_s']:.0f}"],
        ["city-wide (meso) total delay h", f"{kpis['total_delay_h']:.1f}"],
        ["city-wide (meso) finished share", f"{kpis['finished_share']:.3f}"],
        ["city-wide (meso) teleports", f"{kpis['teleports']:.0f}"],
    ]
    if focus:
        rows += [
            ["focus zones (middle tile)", str(len(focus))],
            ["focus (micro) cars entering", f"{kpis['focus_trips']:.0f}"],
            ["focus (micro) mean time to cross s", f"{kpis['focus_mean_travel_time_s']:.0f}"],
            ["focus (micro) total delay h", f"{kpis['focus_total_delay_h']:.1f}"],
        ]
    table(["measure", "value"], rows)


def level_runs(
    twin: Path, inputs: TwinInputs, params: TrafficParams, seeds: int, work: Path, mode: str
) -> dict[str, list[SeedOutcome]]:
    """Baseline and plan over the seeds at one level."""
    runs: dict[str, list[SeedOutcome]] = {}
    for scenario in (Scenario.baseline_scenario(), builtin_scenario(twin, PLAN)):
        runs[scenario.name] = []
        for seed in range(1, seeds + 1):
            log(f"levels: {mode}, {scenario.name}, seed {seed}")
            folder = work / f"levels_{mode}_{scenario.name}_{seed}"
            runs[scenario.name].append(run_scenario(inputs, scenario, seed, folder, params))
    return runs


def bench_levels(twin: Path, work: Path, settings: Settings) -> None:
    """Micro against meso on the demo: the KPIs and the plan's effect, with intervals over the seeds."""
    inputs = load_twin(twin)
    rows = []
    for mode in ("micro", "meso"):
        params = load_params(twin, iterations=settings.iterations, mesoscopic=mode == "meso")
        start = time.perf_counter()
        runs = level_runs(twin, inputs, params, settings.seeds, work, mode)
        per_run = (time.perf_counter() - start) / (2 * settings.seeds)
        sumo = statistics.fmean(r.sumo_wall_s for rs in runs.values() for r in rs)
        for key in LEVEL_KPIS:
            base = [r.kpis[key] for r in runs["baseline"]]
            plan = [r.kpis[key] for r in runs[PLAN]]
            level = summarise(base)
            change = difference(base, plan, label=key)
            rows.append([
                mode,
                key,
                f"{level.mean:.2f} [{level.ci_low:.2f}, {level.ci_high:.2f}]",
                f"{change.mean:+.2f} [{change.ci_low:+.2f}, {change.ci_high:+.2f}]",
                f"{change.relative:+.1%}",
                "yes" if change.distinguishable else "no",
                f"{per_run:.1f}",
                f"{sumo:.1f}",
            ])  # fmt: skip
    print(
        f"### Micro and meso on the demo: baseline and `{PLAN}`, {settings.seeds} seeds, "
        f"{settings.iterations} round(s) per run\n"
    )
    table(
        ["level", "KPI", "baseline mean [95% CI]", f"{PLAN} − baseline [95% CI]", "relative",
         "beyond noise", "wall s per run", "sumo s per run"],
        rows,
    )  # fmt: skip


@contextlib.contextmanager
def meso_router(algorithm: str) -> Iterator[None]:
    """Meso runs routed by ``algorithm`` while inside (SUMO's ``--routing-algorithm``), by swapping
    :data:`run.MESO_OPTIONS`, which :func:`run.sumo_options` reads at every run."""
    saved = sumo_run.MESO_OPTIONS
    sumo_run.MESO_OPTIONS = MappingProxyType({**saved, "routing-algorithm": algorithm})
    try:
        yield
    finally:
        sumo_run.MESO_OPTIONS = saved


def bench_routing(twin: Path, work: Path, settings: Settings) -> None:
    """Meso runs on the demo routed by A* and by CCH: KPIs, the plan's effect and SUMO seconds."""
    inputs = load_twin(twin)
    params = load_params(twin, iterations=settings.iterations, mesoscopic=True)
    rows = []
    for algorithm in ROUTERS:
        with meso_router(algorithm):
            runs = level_runs(twin, inputs, params, settings.seeds, work, f"meso-{algorithm}")
        sumo = statistics.fmean(r.sumo_wall_s for rs in runs.values() for r in rs)
        for key in ROUTING_KPIS:
            base = [r.kpis[key] for r in runs["baseline"]]
            level = summarise(base)
            change = difference(base, [r.kpis[key] for r in runs[PLAN]], label=key)
            rows.append([
                algorithm,
                key,
                f"{level.mean:.2f} [{level.ci_low:.2f}, {level.ci_high:.2f}]",
                f"{change.mean:+.2f} [{change.ci_low:+.2f}, {change.ci_high:+.2f}]",
                f"{sumo:.1f}",
            ])  # fmt: skip
    print(
        f"### Meso on the demo routed by A* and by CCH: baseline and `{PLAN}`, {settings.seeds} seeds, "
        f"{settings.iterations} round(s) per run\n"
    )
    table(
        ["router", "KPI", "baseline mean [95% CI]", f"{PLAN} − baseline [95% CI]", "sumo s per run"],
        rows,
    )


def parse(argv: Sequence[str] | None = None) -> Settings:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated: " + ",".join(SECTIONS))
    parser.add_argument("--tiles", type=int, default=8, help="city: copies of the demo extract per axis")
    parser.add_argument(
        "--city-iterations", type=int, default=1, help="city: simulation ↔ mode-choice rounds"
    )
    parser.add_argument(
        "--iterations", type=int, default=3, help="levels, routing: simulation ↔ mode-choice rounds"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="city: demand scale")
    parser.add_argument("--focus", action="store_true", help="city: the middle tile micro (focus_zones)")
    parser.add_argument("--seeds", type=int, default=5, help="levels, routing: seeds per scenario and level")
    parser.add_argument(
        "--gateways",
        action="store_true",
        help="city: add [gateways] at its default flows (they gridlock a tiled twin: BENCHMARKS.md)",
    )
    parser.add_argument(
        "--city-twin",
        type=Path,
        help="city: an already built tiled twin (of --tiles tiles) instead of a new one",
    )
    args = parser.parse_args(argv)
    sections = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown or not sections:
        parser.error(f"--only: unknown section(s) {', '.join(unknown) or '(none given)'}")
    return Settings(
        sections=sections,
        tiles=args.tiles,
        city_iterations=args.city_iterations,
        iterations=args.iterations,
        scale=args.scale,
        focus=args.focus,
        seeds=args.seeds,
        city_twin=args.city_twin,
        gateways=args.gateways,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the chosen sections in a temporary folder."""
    settings = parse(argv)
    load = os.getloadavg()[0]
    print(f"Machine: {os.cpu_count()} CPUs, 1-minute load average {load:.1f} at the start.\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_region_") as tmp:
        work = Path(tmp)
        if {"levels", "routing"} & set(settings.sections):
            log("building the demo twin")
            twin = work / "demo"
            build_demo(twin)
            if "levels" in settings.sections:
                bench_levels(twin, work, settings)
            if "routing" in settings.sections:
                bench_routing(twin, work, settings)
        if "city" in settings.sections:
            bench_city(work, settings)


if __name__ == "__main__":
    main()
