"""Ensemble benchmark: the local process pool against a Dask LocalCluster, at 1 and 2 workers.

Reproduce (the numbers recorded in BENCHMARKS.md):

    .venv/bin/python benchmarks/bench_cluster.py --seeds 8 --workers 1 2 --repeat 3

It builds the demo twin in a temporary folder (or reads ``--twin DIR``), then runs the same traffic
ensemble (baseline × ``--seeds`` seeds, ``--set`` overrides as on the command line) through
``run_ensemble`` on the local pool and on a Dask ``LocalCluster`` (``--cluster local``) of the same
number of workers, alternating the two so that a change of load hits both alike. Every run is a
fresh comparison id, so nothing is resumed. Each run's wall time includes starting its workers (the
pool's processes, the cluster's scheduler and workers) and preparing the scenario, as a user sees it.

The per-seed KPIs of every run are checked identical to the first run's. From the measured per-seed
time and the fixed part of a run (wall − seeds × per-seed time at 1 worker), the wall time at more
workers is extrapolated as ``fixed + ceil(seeds / n) × per-seed`` (on paper: it assumes as many cores
as workers). Prints markdown tables on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from civictwin.cli.scenario import engine_options
from civictwin.engines.base import TwinContext
from civictwin.engines.cluster import LOCAL, open_cluster
from civictwin.engines.ensemble import Ensemble, run_ensemble
from civictwin.engines.registry import load_engines
from civictwin.scenarios.spec import Scenario

KINDS = ("pool", "dask")


def main() -> None:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--twin", type=Path, default=None, help="a built twin (default: build the demo)")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=1, help="runs per kind and worker count (median)")
    parser.add_argument("--set", dest="settings", action="append", default=[], help="ENGINE.KEY=VALUE")
    parser.add_argument("--extrapolate", type=int, nargs="*", default=[4, 8, 16])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as scratch:
        twin = args.twin or _demo(Path(scratch) / "demo")
        walls, per_seed = _measure(twin, args)
    _print(walls, per_seed, args)


def _demo(folder: Path) -> Path:
    from civictwin.demo import build_demo

    print("building the demo twin ...", file=sys.stderr)
    build_demo(folder)
    return folder


def _measure(
    twin: Path, args: argparse.Namespace
) -> tuple[dict[tuple[str, int], list[float]], dict[tuple[str, int], list[float]]]:
    """Wall seconds and mean per-seed seconds of each (kind, workers) run; KPIs checked identical."""
    context = TwinContext.load(twin, options=engine_options(args.settings))
    engine = load_engines()["traffic"].engine
    walls: dict[tuple[str, int], list[float]] = {}
    per_seed: dict[tuple[str, int], list[float]] = {}
    reference: dict[int, Any] | None = None
    for round_ in range(args.repeat):
        for workers in args.workers:
            for kind in KINDS:
                print(f"round {round_ + 1}: {kind}, {workers} worker(s) ...", file=sys.stderr)
                result = _run(context, engine, kind, workers, args.seeds)
                kpis = {r.seed: [k.model_dump() for k in r.kpis] for r in result.runs["traffic"]["baseline"]}
                reference = reference or kpis
                if kpis != reference:
                    raise SystemExit(f"{kind} with {workers} worker(s) gave other per-seed KPIs")
                walls.setdefault((kind, workers), []).append(result.wall_s)
                per_seed.setdefault((kind, workers), []).append(
                    statistics.fmean(r.wall_s for r in result.runs["traffic"]["baseline"])
                )
                shutil.rmtree(result.directory)
    return walls, per_seed


def _run(context: TwinContext, engine: Any, kind: str, workers: int, seeds: int) -> Ensemble:
    executor = open_cluster(LOCAL, workers=workers) if kind == "dask" else None
    start = time.perf_counter()
    result = run_ensemble(
        context,
        [Scenario.baseline_scenario()],
        [engine],
        comparison_id=f"bench-{kind}-{workers}-{uuid.uuid4().hex[:8]}",
        seeds=seeds,
        workers=workers,
        executor=executor,
    )
    print(f"  {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return result


def _print(
    walls: dict[tuple[str, int], list[float]],
    per_seed: dict[tuple[str, int], list[float]],
    args: argparse.Namespace,
) -> None:
    print(f"#### baseline × {args.seeds} seeds, traffic engine, demo twin, median of {args.repeat}\n")
    print("| workers | local pool wall s | Dask LocalCluster wall s | Dask ÷ pool | pool speed-up | Dask speed-up "
          "| per-seed s (pool / Dask) |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|")
    median = {key: statistics.median(values) for key, values in walls.items()}
    seed_s = {key: statistics.median(values) for key, values in per_seed.items()}
    first = min(args.workers)
    for workers in args.workers:
        pool, dask = median[("pool", workers)], median[("dask", workers)]
        print(
            f"| {workers} | {pool:.1f} | {dask:.1f} | {dask / pool:.3f} | "
            f"{median[('pool', first)] / pool:.2f}× | {median[('dask', first)] / dask:.2f}× | "
            f"{seed_s[('pool', workers)]:.2f} / {seed_s[('dask', workers)]:.2f} |"
        )
    print("\n#### on paper: fixed + ceil(seeds / n) × per-seed, from the 1-worker runs\n")
    print("| workers | local pool s (if the machine had the cores) | Dask s |")
    print("|---:|---:|---:|")
    for workers in args.extrapolate:
        cells = []
        for kind in KINDS:
            fixed = median[(kind, first)] - math.ceil(args.seeds / first) * seed_s[(kind, first)]
            cells.append(f"{fixed + math.ceil(args.seeds / workers) * seed_s[(kind, first)]:.1f}")
        print(f"| {workers} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
