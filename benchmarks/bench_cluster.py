"""Ensemble benchmark: the local process pool against a Dask LocalCluster, at 1 and 2 workers.

Reproduce (the numbers recorded in BENCHMARKS.md):

    .venv/bin/python benchmarks/bench_cluster.py --seeds 8 --workers 1 2 --repeat 3

It builds the demo twin in a temporary folder (or reads ``--twin DIR``), then runs the same traffic
ensemble (baseline × ``--seeds`` seeds, ``--set`` overrides as on the command line) through
``run_ensemble`` three ways with the same number of workers, one after the other so that a change of
load hits all alike: the local pool; ``--cluster local`` (a Dask ``LocalCluster`` started and stopped
by the run, its start counted); and a running cluster reached by its ``tcp://`` address (a
``LocalCluster`` started before the clock starts, as a city's standing cluster would be, with the
settings docs/cluster.md recommends, ``cluster.WORKER_CONFIG``, or Dask's defaults with
``--running-defaults``). Every run is a fresh comparison id, so nothing is resumed. Each wall time
includes preparing the scenario and starting the run's own processes, as a user sees it. Beside the
wall times it prints the CPU seconds of the driving process (with ``--cluster local`` and the
running cluster also its scheduler and nannies, which live in it) and of the running cluster's worker
processes themselves (not their seed processes), which a loaded machine stretches far less than wall
time.

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
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from civictwin.cli.scenario import engine_options
from civictwin.engines.base import TwinContext
from civictwin.engines.cluster import LOCAL, WORKER_CONFIG, open_cluster
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
    parser.add_argument(
        "--running-defaults", action="store_true", help="start the running cluster with Dask's own settings"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as scratch:
        twin = args.twin or _demo(Path(scratch) / "demo")
        walls, per_seed, cpu = _measure(twin, args)
    _print(walls, per_seed, args)
    _print_cpu(cpu, args)


def _demo(folder: Path) -> Path:
    from civictwin.demo import build_demo

    print("building the demo twin ...", file=sys.stderr)
    build_demo(folder)
    return folder


Series = dict[tuple[str, int], list[float]]
"""Per (kind, workers), one value per round."""


@dataclass
class Executor:
    """One kind of run: its worker count, its executor (None: the local pool), and the process ids
    of a running cluster's workers."""

    workers: int
    opened: OpenExecutor | None
    worker_pids: tuple[int, ...] = ()


def _measure(twin: Path, args: argparse.Namespace) -> tuple[Series, Series, dict[str, Series]]:
    """Wall seconds, mean per-seed seconds and CPU seconds (``driver``, ``workers``) of each
    (kind, workers) run; KPIs checked identical."""
    context = TwinContext.load(twin, options=engine_options(args.settings))
    engine = load_engines()["traffic"].engine
    walls: Series = {}
    per_seed: Series = {}
    cpu: dict[str, Series] = {"driver": {}, "workers": {}}
    reference: dict[int, Any] | None = None
    for round_ in range(args.repeat):
        for workers in args.workers:
            for kind in KINDS:
                print(f"round {round_ + 1}: {kind}, {workers} worker(s) ...", file=sys.stderr)
                with _executor(kind, workers, dask_defaults=args.running_defaults) as executor:
                    driver, dask_workers = _cpu_s(executor.worker_pids)
                    result = _run(context, engine, executor, args.seeds, label=f"{kind}-{workers}")
                    driver_after, dask_workers_after = _cpu_s(executor.worker_pids)
                kpis = {r.seed: [k.model_dump() for k in r.kpis] for r in result.runs["traffic"]["baseline"]}
                reference = reference or kpis
                if kpis != reference:
                    raise SystemExit(f"{kind} with {workers} worker(s) gave other per-seed KPIs")
                walls.setdefault((kind, workers), []).append(result.wall_s)
                per_seed.setdefault((kind, workers), []).append(
                    statistics.fmean(r.wall_s for r in result.runs["traffic"]["baseline"])
                )
                cpu["driver"].setdefault((kind, workers), []).append(driver_after - driver)
                cpu["workers"].setdefault((kind, workers), []).append(dask_workers_after - dask_workers)
                shutil.rmtree(result.directory)
    return walls, per_seed, cpu


def _cpu_s(pids: tuple[int, ...]) -> tuple[float, float]:
    """CPU seconds (user + system) so far of this process, and of the processes ``pids`` together."""
    import psutil

    own = resource.getrusage(resource.RUSAGE_SELF)
    times = [psutil.Process(pid).cpu_times() for pid in pids]
    return own.ru_utime + own.ru_stime, sum(t.user + t.system for t in times)


@contextlib.contextmanager
def _executor(kind: str, workers: int, *, dask_defaults: bool) -> Iterator[Executor]:
    """One kind of run; a running cluster is started here, before the clock starts, with
    :data:`WORKER_CONFIG` unless ``dask_defaults``."""
    if kind == "pool":
        yield Executor(workers, None)
    elif kind == "local":
        yield Executor(workers, open_cluster(LOCAL, workers=workers))
    else:
        import dask.config
        from distributed import Client, LocalCluster

        with dask.config.set({} if dask_defaults else WORKER_CONFIG):
            running = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},  # as --cluster local: not port 8787
                silence_logs=logging.ERROR,
            )
        with running, Client(running, set_as_default=False) as client:
            pids = tuple(client.run(os.getpid).values())
            yield Executor(workers, open_cluster(running.scheduler_address, workers=workers), pids)


def _run(context: TwinContext, engine: Any, executor: Executor, seeds: int, *, label: str) -> Ensemble:
    workers, opened = executor.workers, executor.opened
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


def _print(walls: Series, per_seed: Series, args: argparse.Namespace) -> None:
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


def _print_cpu(cpu: dict[str, Series], args: argparse.Namespace) -> None:
    """CPU seconds per run (median): the driving process, and the running cluster's worker processes."""
    print(
        f"\n#### CPU seconds per run, median of {args.repeat} (driving process; running cluster's workers)\n"
    )
    print("| workers | " + " | ".join(TITLES[k] for k in KINDS) + " |")
    print("|---:|" + "---:|" * len(KINDS))
    for workers in args.workers:
        cells = []
        for kind in KINDS:
            driver = statistics.median(cpu["driver"][(kind, workers)])
            dask_workers = statistics.median(cpu["workers"][(kind, workers)])
            cells.append(f"{driver:.2f}" + (f"; {dask_workers:.2f}" if kind == "running" else ""))
        print(f"| {workers} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
