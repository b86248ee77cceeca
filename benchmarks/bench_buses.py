"""Buses in the simulation: what simulating them adds to a run's time (issue 11, part 6).

Reproduce (the numbers recorded in BENCHMARKS.md):

    .venv/bin/python benchmarks/bench_buses.py
    .venv/bin/python benchmarks/bench_buses.py --twin path/to/demo-twin --repeat 5

The demo twin (built fresh in a temporary folder unless ``--twin`` names one) has no GTFS feed, so its
buses are ``--lines`` new lines drawn on it (``transit_line`` interventions): each runs between two car
edges chosen with a fixed seed at least ``--min-length-m`` apart, along the shortest street route open
to buses, with a stop every ``--stop-spacing-m`` and a run every ``--headway-min`` minutes. The
baseline and the same twin with those lines are prepared once each, then one seed of each is simulated
``--repeat`` times, alternating which goes first. With one feedback iteration (the default) the
mode choice does not see simulated bus speeds, but the new lines give the OD pairs they connect
better transit times (their own routes and headways, docs/methods-transit.md), so some car trips
move to the bus (427 → 408 on the demo): the car trips printed for both say how far the comparison
is from like for like. Reported: the median wall time of a seed and of its
``sumo`` processes, the vehicle-hours simulated with and without the buses (a run's time grows with
them), and the added time against the target (under 25%). The KPIs of the cars are printed for both so the comparison is of like with like.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely
from pyproj import Transformer
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from civictwin.demo import build_demo
from civictwin.engines.registry import intervention_catalog
from civictwin.engines.traffic.engine import TrafficEngine
from civictwin.engines.traffic.inputs import TwinInputs, load_twin
from civictwin.engines.traffic.params import load_params
from civictwin.engines.traffic.prepare import PreparedScenario, prepare_scenario
from civictwin.engines.traffic.simulate import SeedOutcome, simulate_seed
from civictwin.engines.traffic.transit import bus_edges
from civictwin.scenarios.spec import Scenario, parse_scenario

TARGET = 0.25
SEED = 1


def log(message: str) -> None:
    """Progress on stderr, so stdout holds only the tables."""
    print(message, file=sys.stderr, flush=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--twin", type=Path, help="an existing demo twin (default: build one in a temp folder)"
    )
    parser.add_argument("--lines", type=int, default=6, help="new lines drawn on the twin")
    parser.add_argument("--headway-min", type=float, default=5.0, help="minutes between runs of a line")
    parser.add_argument("--stop-spacing-m", type=float, default=400.0, help="metres between stops")
    parser.add_argument("--min-length-m", type=float, default=1500.0, help="shortest line (m)")
    parser.add_argument("--repeat", type=int, default=3, help="seeds of each scenario, alternating")
    parser.add_argument("--iterations", type=int, default=1, help="feedback iterations per seed")
    return parser.parse_args(argv)


def drawn_lines(
    inputs: TwinInputs, *, count: int, spacing_m: float, min_length_m: float
) -> list[dict[str, object]]:
    """``count`` ``transit_line`` interventions along shortest bus routes between random car edges."""
    edges = bus_edges(inputs.edges)
    nodes, index = np.unique(
        np.concatenate([edges["from_node"].astype(str), edges["to_node"].astype(str)]), return_inverse=True
    )
    starts, ends = index[: len(edges)], index[len(edges) :]
    graph = csr_matrix((edges["length_m"].to_numpy(float), (starts, ends)), shape=(len(nodes), len(nodes)))
    to_lonlat = Transformer.from_crs(inputs.crs, "EPSG:4326", always_xy=True)
    rng = np.random.default_rng(0)
    lines: list[dict[str, object]] = []
    for _attempt in range(200 * count):
        if len(lines) == count:
            break
        a, b = rng.integers(len(edges), size=2)
        dist, pred = dijkstra(graph, indices=ends[a], return_predecessors=True)
        if not np.isfinite(dist[starts[b]]) or dist[starts[b]] < min_length_m:
            continue
        path = _path_edges(pred, ends[a], starts[b], starts, ends)
        route = shapely.line_merge(
            shapely.MultiLineString(
                [edges.geometry.iloc[a], *edges.geometry.iloc[path], edges.geometry.iloc[b]]
            )
        )
        if not isinstance(route, shapely.LineString):
            continue
        marks = np.arange(10.0, route.length - 10.0, spacing_m)
        points = [route.interpolate(m) for m in marks]
        stops = [list(to_lonlat.transform(p.x, p.y)) for p in points]
        if len(stops) >= 3:
            lines.append(
                {"type": "transit_line", "name": f"B{len(lines) + 1}", "stops": stops, "headway_min": 0.0}
            )
    return lines


def _path_edges(pred: np.ndarray, start: int, end: int, starts: np.ndarray, ends: np.ndarray) -> list[int]:
    """Edge rows of the shortest path from node ``start`` to node ``end`` (first edge found per hop)."""
    hops: list[tuple[int, int]] = []
    node = end
    while node != start:
        hops.append((int(pred[node]), int(node)))
        node = int(pred[node])
    rows: list[int] = []
    for u, v in reversed(hops):
        rows.append(int(np.flatnonzero((starts == u) & (ends == v))[0]))
    return rows


def timed_seed(prepared: PreparedScenario, work: Path) -> tuple[float, float, SeedOutcome]:
    """One seed's wall time (s), its SUMO processes' CPU time (s, user + system: the fairer measure on
    a shared machine) and outcome."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    outcome = simulate_seed(prepared, SEED, work)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, outcome


def main(argv: list[str] | None = None) -> None:
    """Build or open the twin, draw the lines, time both scenarios side by side, print the table."""
    args = parse(argv)
    with tempfile.TemporaryDirectory(prefix="bench_buses_") as temp:
        work = Path(temp)
        twin = args.twin
        if twin is None:
            log("building the demo twin ...")
            twin = work / "demo"
            build_demo(twin)
        inputs = load_twin(twin)
        params = load_params(twin, iterations=args.iterations)
        lines = drawn_lines(
            inputs, count=args.lines, spacing_m=args.stop_spacing_m, min_length_m=args.min_length_m
        )
        for line in lines:
            line["headway_min"] = args.headway_min
        catalog = intervention_catalog([TrafficEngine()])
        buses = parse_scenario(
            {"name": "buses", "description": "Drawn bus lines.", "interventions": lines},
            catalog,
            origin="bench",
        )
        prepared = {
            "baseline": prepare_scenario(inputs, Scenario.baseline_scenario(), work / "net_base", params),
            "buses": prepare_scenario(inputs, buses, work / "net_buses", params),
        }
        walls: dict[str, list[float]] = {name: [] for name in prepared}
        sumo: dict[str, list[float]] = {name: [] for name in prepared}
        cpu: dict[str, list[float]] = {name: [] for name in prepared}
        outcomes: dict[str, SeedOutcome] = {}
        for k in range(args.repeat):
            order = list(prepared) if k % 2 == 0 else list(reversed(prepared))
            for name in order:
                wall, seconds, outcome = timed_seed(prepared[name], work / f"{name}_{k}")
                walls[name].append(wall)
                cpu[name].append(seconds)
                sumo[name].append(outcome.sumo_wall_s)
                outcomes[name] = outcome
                log(f"{name} repeat {k + 1}: {wall:.2f} s (sumo {outcome.sumo_wall_s:.2f} s)")
        report(args, lines, {"seed wall": walls, "sumo wall": sumo, "sumo CPU": cpu}, outcomes)


def report(
    args: argparse.Namespace,
    lines: list[dict[str, object]],
    times: dict[str, dict[str, list[float]]],
    outcomes: dict[str, SeedOutcome],
) -> None:
    """The markdown table."""
    base, bus = outcomes["baseline"], outcomes["buses"]
    runs = bus.kpis.get("bus_runs", 0.0)
    print(f"### Simulating buses: demo twin, {len(lines)} drawn lines every {args.headway_min:g} min\n")
    print(f"seed {SEED}, {args.iterations} iteration(s), {args.repeat} repeat(s) each, alternating\n")
    print("| | baseline (cars only) | with buses |")
    print("| --- | --- | --- |")
    print(f"| car trips | {base.kpis['trips']:.0f} | {bus.kpis['trips']:.0f} |")
    print(f"| bus runs | 0 | {runs:.0f} |")
    print(
        f"| mean car travel time (s) | {base.kpis['mean_travel_time_s']:.1f} | {bus.kpis['mean_travel_time_s']:.1f} |"
    )
    print(f"| mean bus travel time (s) | – | {bus.kpis.get('bus_mean_travel_time_s', float('nan')):.1f} |")
    print(f"| bus runs finished | – | {bus.kpis.get('bus_finished_share', float('nan')):.0%} |")
    car_h = base.kpis["total_travel_time_h"]
    bus_h = car_h + bus.kpis.get("bus_mean_travel_time_s", 0.0) * runs / 3600.0
    print(
        f"| vehicle-hours simulated (cars + arrived buses) | {car_h:.1f} | {bus_h:.1f} ({bus_h / car_h - 1:+.0%}) |"
    )
    for label, values in times.items():
        base_s, bus_s = statistics.median(values["baseline"]), statistics.median(values["buses"])
        print(f"| median {label} (s) | {base_s:.2f} | {bus_s:.2f} ({bus_s / base_s - 1:+.0%}) |")
    walls = times["seed wall"]
    added = statistics.median(walls["buses"]) / statistics.median(walls["baseline"]) - 1.0
    verdict = "under" if added < TARGET else "over"
    print(
        f"\nBuses add {added:+.1%} to a seed's wall time on this machine ({verdict} the {TARGET:.0%} target)."
    )


if __name__ == "__main__":
    main()
