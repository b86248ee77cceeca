"""Heat engine benchmark: the demo area at 2 m resolution, one hot day, one seed. Target < 60 s.

Reproduce (the numbers recorded in BENCHMARKS.md):

    .venv/bin/python benchmarks/bench_heat.py --epw ../shared/data/weather/FIN_Helsinki.029740_IWEC.epw

It builds the demo twin in a temporary folder (or reads ``--twin DIR``), then times each step of one
baseline run at ``--cell`` metres over the local hours ``--first``..``--last`` of the EPW's hottest day:
reading the layers, rasterising and green access (prepare), and one seed (Urban Cooling, SOLWEIG, UTCI
and the indicators). Prints a markdown table on stdout; progress on stderr. With ``--repeat N`` the seed
is run N times and the median reported (the first run in a process also pays numba's compilation of
the UTCI polynomial, reported separately).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from civictwin.config import load_config
from civictwin.engines.heat.run import prepare_inputs, read_layers, run_seed
from civictwin.engines.heat.settings import HeatSettings
from civictwin.engines.heat.weather import read_hot_day
from civictwin.store.duckdb import DuckDBStore


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epw", type=Path, required=True)
    parser.add_argument(
        "--twin", type=Path, default=None, help="a built twin folder (default: build the demo)"
    )
    parser.add_argument("--cell", type=float, default=2.0)
    parser.add_argument("--first", type=int, default=9)
    parser.add_argument("--last", type=int, default=18)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-heat-") as scratch:
        twin = args.twin or _demo(Path(scratch) / "demo")
        rows = _measure(twin, args, Path(scratch))
    print(
        f"| step | seconds | (cell {args.cell:g} m, hours {args.first}–{args.last}, {os.cpu_count()} cores) |"
    )
    print("| --- | ---: | --- |")
    for name, seconds, note in rows:
        print(f"| {name} | {seconds:.1f} | {note} |")


def _demo(folder: Path) -> Path:
    from civictwin.demo import build_demo

    print("building the demo twin ...", file=sys.stderr)
    build_demo(folder)
    return folder


def _measure(twin: Path, args: argparse.Namespace, scratch: Path) -> list[tuple[str, float, str]]:
    config = load_config(twin)
    start = time.perf_counter()
    with DuckDBStore.open(config.store_path, read_only=True) as store:
        layers = read_layers(store)
    read_s = time.perf_counter() - start
    day = read_hot_day(args.epw)
    settings = HeatSettings(cell_m=args.cell, first_hour=args.first, last_hour=args.last)
    start = time.perf_counter()
    inputs = prepare_inputs(layers, day, [], settings=settings, origin="bench", base_dir=twin)
    prepare_s = time.perf_counter() - start
    shape = inputs.surface.grid.shape
    runs = []
    for index in range(args.repeat):
        workdir = scratch / f"seed{index}"
        workdir.mkdir()
        start = time.perf_counter()
        run_seed(inputs, seed=index, workdir=workdir)
        runs.append(time.perf_counter() - start)
        print(f"seed {index}: {runs[-1]:.1f} s", file=sys.stderr)
    cells = (
        f"{shape[0]} × {shape[1]} = {shape[0] * shape[1]:,} cells, {len(inputs.hours)} hours of {day.date}"
    )
    rows = [
        ("read the twin's layers", read_s, ""),
        ("prepare (rasterise, green access)", prepare_s, cells),
        ("one seed, first in the process", runs[0], "includes numba compiling UTCI"),
    ]
    if len(runs) > 1:
        rows.append(("one seed, median of the others", statistics.median(runs[1:]), f"{len(runs) - 1} runs"))
    rows.append(("total (read + prepare + first seed)", read_s + prepare_s + runs[0], "target < 60 s"))
    return rows


if __name__ == "__main__":
    main()
