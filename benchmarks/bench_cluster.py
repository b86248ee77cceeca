"""Ensemble benchmark: the local process pool against a Dask LocalCluster, at 1 and 2 workers.

Reproduce (the numbers recorded in BENCHMARKS.md):

    .venv/bin/python benchmarks/bench_cluster.py --seeds 8 --workers 1 2 --repeat 3

It builds the demo twin in a temporary folder (or reads ``--twin DIR``), then runs the same traffic
ensemble (baseline × ``--seeds`` seeds, ``--set`` overrides as on the command line) through
``run_ensemble`` three ways with the same number of workers, one after the other so that a change of
load hits all alike: the local pool; ``--cluster local`` (a Dask ``LocalCluster`` started and stopped
by the run, its start counted); and a running cluster reached by its ``tcp://`` address (a
``LocalCluster`` started before the clock starts, as a city's standing cluster would be). Every run
is a fresh comparison id, so nothing is resumed. Each wall time includes preparing the scenario and
starting the run's own processes, as a user sees it.

The per-seed KPIs of every run are checked identical to the first run's. From the measured per-seed
time and the fixed part of a run (wall − seeds × per-seed time at 1 worker), the wall time at more
workers is extrapolated as ``fixed + ceil(seeds / n) × per-seed`` (on paper: it assumes as many cores
as workers). Prints markdown tables on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from civictwin.cli.scenario import engine_options
from civictwin.engines.base import TwinContext
from civictwin.engines.cluster import LOCAL, open_cluster
from civictwin.engines.ensemble import Ensemble, OpenExecutor, run_ensemble
from civictwin.engines.registry import load_engines
from civictwin.scenarios.spec import Scenario

KINDS = ("pool", "local", "running")
TITLES = {"pool": "local pool", "local": "--cluster local", "running": "running cluster (tcp://)"}


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
                with _executor(kind, workers) as executor:
                    result = _run(context, engine, executor, args.seeds, label=f"{kind}-{workers}")
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


@contextlib.contextmanager
def _executor(kind: str, workers: int) -> Iterator[tuple[int, OpenExecutor | None]]:
    """(workers, executor) of one kind; a running cluster is started here, before the clock starts."""
    if kind == "pool":
        yield workers, None
    elif kind == "local":
        yield workers, open_cluster(LOCAL, workers=workers)
    else:
        from distributed import LocalCluster

        with LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as running:
            yield workers, open_cluster(running.scheduler_address, workers=workers)


def _run(
    context: TwinContext, engine: Any, executor: tuple[int, OpenExecutor | None], seeds: int, *, label: str
) -> Ensemble:
    workers, opened = executor
    start = time.perf_counter()
    result = run_ensemble(
        context,
        [Scenario.baseline_scenario()],
        [engine],
        comparison_id=f"bench-{label}-{uuid.uuid4().hex[:8]}",
        seeds=seeds,
        workers=workers,
        executor=opened,
    )
    print(f"  {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return result


def _print(
    walls: dict[tuple[str, int], list[float]],
    per_seed: dict[tuple[str, int], list[float]],
    args: argparse.Namespace,
) -> None:
    median = {key: statistics.median(values) for key, values in walls.items()}
    seed_s = {key: statistics.median(values) for key, values in per_seed.items()}
    first = min(args.workers)
    print(f"#### baseline × {args.seeds} seeds, traffic engine, demo twin, median of {args.repeat}\n")
    print("| workers | " + " | ".join(f"{TITLES[k]} wall s (÷ pool)" for k in KINDS) + " | per-seed s |")
    print("|---:|" + "---:|" * len(KINDS) + "---|")
    for workers in args.workers:
        pool = median[("pool", workers)]
        cells = [f"{median[(k, workers)]:.1f} ({median[(k, workers)] / pool:.3f})" for k in KINDS]
        seeds = " / ".join(f"{seed_s[(k, workers)]:.2f}" for k in KINDS)
        print(f"| {workers} | {' | '.join(cells)} | {seeds} |")
    print(
        "\n#### scaling: speed-up over 1 worker, measured, then on paper (fixed + ceil(seeds / n) × per-seed)\n"
    )
    print("| workers | " + " | ".join(TITLES[k] for k in KINDS) + " |")
    print("|---:|" + "---:|" * len(KINDS))
    for workers in args.workers:
        print(f"| {workers} | " + " | ".join(
            f"{median[(k, first)] / median[(k, workers)]:.2f}×" for k in KINDS) + " |")  # fmt: skip
    for workers in args.extrapolate:
        cells = []
        for kind in KINDS:
            fixed = median[(kind, first)] - math.ceil(args.seeds / first) * seed_s[(kind, first)]
            cells.append(f"{fixed + math.ceil(args.seeds / workers) * seed_s[(kind, first)]:.1f} s")
        print(f"| {workers} (on paper) | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
