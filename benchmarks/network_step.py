"""The build's partitioned network step alone, on a copy of a built twin's store: where its time goes.

Copies the DuckDB store of a twin built before (``bench_build.py --region`` or ``build_steps.py``
leave one), runs the network step in the given number of spatial partitions on it, as a build would
on the network worker (``civictwin.build._partitioned``: edges and flagged nodes written, signals
placed), and prints its wall and CPU seconds, then each inner call's count, wall seconds and its own
thread's CPU seconds, slowest first. Nothing else runs meanwhile, so the times are the step's own,
not its share of a build's two cores.

    .venv/bin/python benchmarks/network_step.py /tmp/region/r32/region.duckdb --partitions 10
"""

from __future__ import annotations

import argparse
import functools
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import civictwin.build as build
import civictwin.build_network as build_network
import civictwin.store.duckdb as duckdb_store
from civictwin.allocation import tuned_for_build
from civictwin.memory import BuildMemory

STORE_CALLS = ("write_table", "read_cell", "read_frame", "table_bounds", "shared_list_values")
"""The store's calls timed (:class:`~civictwin.store.duckdb.DuckDBStore`)."""
NETWORK_CALLS = ("network_part", "ways_of_rows", "_batch_to", "_edge_batch", "_car_edges_near", "merged_ends",
                 "vertices_wgs84_extent", "connectivity", "signalled_nodes")  # fmt: skip
"""The calls of ``civictwin.build_network`` timed."""

_TIMED: dict[str, list[float]] = {}
"""Per call name: count, wall seconds, the calling thread's CPU seconds."""


def _timed(owner: Any, attribute: str) -> None:
    """Replace ``owner.attribute`` by a call of itself that adds to :data:`_TIMED`."""
    inner: Callable[..., Any] = getattr(owner, attribute)

    @functools.wraps(inner)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return inner(*args, **kwargs)
        finally:
            total = _TIMED.setdefault(attribute, [0, 0.0, 0.0])
            total[0] += 1
            total[1] += time.perf_counter() - started
            total[2] += time.thread_time() - cpu

    setattr(owner, attribute, timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path, help="a built twin's DuckDB file (copied, not changed)")
    parser.add_argument("--partitions", type=int, default=10)
    parser.add_argument("--memory-mb", type=int, default=4096)
    args = parser.parse_args()
    for name in STORE_CALLS:
        _timed(duckdb_store.DuckDBStore, name)
    for name in NETWORK_CALLS:
        _timed(build_network, name)
    with tempfile.TemporaryDirectory(dir=args.store.parent) as folder:
        copy = Path(folder) / "network.duckdb"
        shutil.copy(args.store, copy)
        store = duckdb_store.DuckDBStore.open(copy, read_only=False)
        memory = BuildMemory(budget_mb=args.memory_mb, temp_dir=Path(folder))
        started, cpu = time.perf_counter(), time.process_time()
        with tuned_for_build():
            build._partitioned(store, memory=memory, partitions=args.partitions)
        print(f"network step: {time.perf_counter() - started:.1f} s, {time.process_time() - cpu:.1f} CPU s "
              f"(every thread), {args.partitions} partitions requested")  # fmt: skip
        store.close()
    print("| call | calls | wall s | its thread's CPU s |\n|---|---|---|---|")
    for name, (calls, wall, own) in sorted(_TIMED.items(), key=lambda item: -item[1][1]):
        print(f"| {name} | {calls:.0f} | {wall:.2f} | {own:.2f} |")


if __name__ == "__main__":
    main()
