"""Calibration benchmarks: synthetic truth against SUMO's routeSampler, and a twin calibrated to its counts.

Reproduce (the numbers recorded in BENCHMARKS.md):

    .venv/bin/python benchmarks/bench_calibration.py
    .venv/bin/python benchmarks/bench_calibration.py --only twin --twin path/to/demo-twin
    .venv/bin/python benchmarks/bench_calibration.py --only sampler --twin path/to/demo-twin

Sections (each prints a markdown table on stdout; progress goes to stderr):

- ``synthetic``: a known demand (the gravity prior of a ``--grid`` × ``--grid`` street grid with six
  OD pairs scaled by 0.25–4) is simulated and counted on every third directed edge; the calibration
  (:func:`civictwin.engines.traffic.calibration.calibrate`) starts from the prior and is timed, with
  its simulation runs, the share of site-hours with GEH < 5 before and after, and on held-back sites.
  Side by side, SUMO's own tool chain alone: ``routeSampler.py`` (shipped in the eclipse-sumo wheel,
  ``tools/routeSampler.py``) samples routes from the prior run's routes so that the edge counts are
  met, and the sampled routes are simulated once with ``sumo``; its fit is scored the same way
  (routeSampler fits the counts directly, with no demand model behind it, so a scenario cannot reuse
  it: it is the floor of what matching counts costs).
- ``prior``: the same synthetic truth with a demand ``--congested-scale`` times the gravity prior's
  base (12: the grid's busiest edges near their capacity), calibrated with each of
  ``--prior-weights`` as the OD pairs' ``prior_weight``: the fit on used and held-back sites and the
  share by run, to show how much the prior's assumed variance (methods-calibration.md) holds the
  estimate back when the prior is off by factors of 0.25–4.
- ``twin``: ``calibrate_twin`` on a copy of an existing twin (``--twin``, e.g. the demo twin after
  ``civictwin sensors import``): sites used, simulation runs, wall and CPU time (this process and
  its SUMO children) and the fit before, after and on held-back sites; with ``[gateways]`` enabled in
  the twin's ``traffic.toml``, the gateways, how many took a flow from a count and the fitted flows'
  total against the prior's; each site-hour's counts before and after (``--record-out`` keeps the
  record). The copy is removed at the end; the twin itself is not touched.
- ``sampler``: SUMO's ``routeSampler.py`` on the prior run of a twin (``--twin``; its baseline as the
  calibration prepares it, read only), the sampled routes simulated with plain ``sumo``: whether
  the twin's network carries its counts at all when the routes are chosen to match them.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pandas as pd

from civictwin.engines.traffic.calibration import (
    Factors,
    _simulate,
    calibrate,
    calibrate_twin,
    counted_gateway_flows,
    twin_count_sites,
    window_hours,
)
from civictwin.engines.traffic.demand import DemandParams
from civictwin.engines.traffic.fit import Fit, fit, geh
from civictwin.engines.traffic.inputs import TwinInputs, load_twin
from civictwin.engines.traffic.outputs import read_counts
from civictwin.engines.traffic.params import TrafficParams, load_params
from civictwin.engines.traffic.prepare import PreparedScenario, prepare_scenario
from civictwin.engines.traffic.run import CAR_DEPARTURE
from civictwin.engines.traffic.sites import CalibrationSettings, CountSites
from civictwin.engines.traffic.sumo import binary, sumo_home
from civictwin.engines.traffic.synthetic import grid_network
from civictwin.scenarios.spec import Scenario

TRUTH = {
    ("z0", "z3"): 4.0,
    ("z0", "z1"): 3.0,
    ("z1", "z2"): 3.0,
    ("z2", "z0"): 0.25,
    ("z3", "z0"): 3.0,
    ("z2", "z3"): 3.0,
}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def grid_inputs(size: int, twin_dir: Path) -> TwinInputs:
    """A ``size`` × ``size`` grid (200 m blocks) in four quadrant zones with residents, jobs and shops."""
    import geopandas as gpd
    from shapely.geometry import box

    origin = (385_000.0, 6_671_000.0)
    edges, nodes = grid_network(size, size, 200.0, origin=origin)
    half = (size - 1) * 200.0 / 2
    x0, y0 = origin
    cells = [
        box(
            x0 - 100 + i * (half + 100),
            y0 - 100 + j * (half + 100),
            x0 + half + i * (half + 100),
            y0 + half + j * (half + 100),
        )
        for j in range(2)
        for i in range(2)
    ]
    zones = gpd.GeoDataFrame(
        {
            "zone_id": ["z0", "z1", "z2", "z3"],
            "population": [500.0, 300.0, 300.0, 100.0],
            "jobs_proxy_m2": [0.0, 7_000.0, 3_500.0, 10_000.0],
            "poi_shop": [1, 5, 2, 10],
        },
        geometry=cells,
        crs=edges.crs,
    )
    return TwinInputs(twin_dir, str(edges.crs), edges, nodes, zones, None, None, None, {"zones": {"rows": 4}})


def synthetic(args: argparse.Namespace, work: Path) -> None:
    inputs = grid_inputs(args.grid, work)
    counted = tuple(sorted(inputs.edges["edge_id"].astype(str)))[::3]
    params = TrafficParams(
        iterations=1,
        demand=DemandParams(scale=args.scale, distance="crowfly"),
        count_edges=counted,
        calibration=CalibrationSettings(folds=args.folds, max_iterations=args.max_iterations, seed=3),
    )
    prepared = prepare_scenario(inputs, Scenario.baseline_scenario(), work / "truth_net", params)
    log("simulating the truth")
    truth = _simulate(prepared, Factors(od=TRUTH), 7, work / "truth").counts
    first = truth[truth["hour"] == 0]
    hourly = pd.DataFrame(
        {
            "site": "synthetic/" + first["edge_id"],
            "edge_id": first["edge_id"],
            "hour": 8,
            "observed": first["vehicles"].astype(float),
        }
    )
    sites = CountSites(sites=pd.DataFrame({"site": hourly["site"], "status": "used"}), hourly=hourly)
    log("calibrating")
    start = time.perf_counter()
    record = calibrate(inputs, sites, params, work / "calibration")
    ours_s = time.perf_counter() - start
    log("routeSampler")
    sampler_s, sampler_fit, prior_fit = route_sampler(prepared, hourly, work / "sampler")
    held = record["kfold"]["held_back_after"]
    print(f"\n### Synthetic truth: {args.grid}×{args.grid} grid, {len(hourly)} count sites, one hour\n")
    print("| method | wall s | simulations | GEH < 5 before | after | held back before | held back after |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| civictwin (GLS OD factors × SUMO, {args.folds}-fold) | {ours_s:.1f} | {record['simulation_runs']} | "
        f"{record['fit_before']['share_geh_ok']:.0%} | {record['fit_after']['share_geh_ok']:.0%} | "
        f"{record['kfold']['held_back_before']['share_geh_ok']:.0%} | {held['share_geh_ok']:.0%} |"
    )
    print(
        f"| routeSampler.py on the prior run's routes, then sumo | {sampler_s:.1f} | 1 (+ the prior run) | "
        f"{prior_fit.share_geh_ok:.0%} | {sampler_fit.share_geh_ok:.0%} | — | — |"
    )


def prior_weights(args: argparse.Namespace, work: Path) -> None:
    inputs = grid_inputs(args.grid, work)
    counted = tuple(sorted(inputs.edges["edge_id"].astype(str)))[::3]
    base = TrafficParams(
        iterations=1,
        demand=DemandParams(scale=args.congested_scale, distance="crowfly"),
        count_edges=counted,
    )
    prepared = prepare_scenario(inputs, Scenario.baseline_scenario(), work / "truth_net", base)
    log("simulating the congested truth")
    truth = _simulate(prepared, Factors(od=TRUTH), 7, work / "truth").counts
    first = truth[truth["hour"] == 0]
    hourly = pd.DataFrame(
        {
            "site": "synthetic/" + first["edge_id"],
            "edge_id": first["edge_id"],
            "hour": 8,
            "observed": first["vehicles"].astype(float),
        }
    )
    sites = CountSites(sites=pd.DataFrame({"site": hourly["site"], "status": "used"}), hourly=hourly)
    print(
        f"\n### Synthetic truth, congested: demand scale {args.congested_scale:g}, {len(hourly)} count sites "
        f"({hourly['observed'].sum():,.0f} vehicles counted), {args.folds}-fold, "
        f"{args.max_iterations} updates\n"
    )
    print(
        "| prior_weight | wall s | simulations | GEH < 5 before → after | RMSE after | held back before → after | held-back RMSE after | share by run |"
    )
    print("| ---: | ---: | ---: | --- | ---: | --- | ---: | --- |")
    for weight in (float(w) for w in args.prior_weights.split(",")):
        log(f"calibrating with prior_weight {weight:g}")
        settings = CalibrationSettings(
            folds=args.folds, max_iterations=args.max_iterations, seed=3, prior_weight=weight
        )
        params = base.model_copy(update={"calibration": settings})
        start = time.perf_counter()
        record = calibrate(inputs, sites, params, work / f"calibration_{weight:g}")
        wall = time.perf_counter() - start
        before, after = record["fit_before"], record["fit_after"]
        held_before, held = record["kfold"]["held_back_before"], record["kfold"]["held_back_after"]
        shares = " → ".join(f"{share:.0%}" for share in record["shares_by_run"])
        print(
            f"| {weight:g} | {wall:.1f} | {record['simulation_runs']} | {before['share_geh_ok']:.0%} → "
            f"{after['share_geh_ok']:.0%} | {after['rmse']:.1f} | {held_before['share_geh_ok']:.0%} → "
            f"{held['share_geh_ok']:.0%} | {held['rmse']:.1f} | {shares} |"
        )


def route_sampler(prepared: PreparedScenario, hourly: pd.DataFrame, work: Path) -> tuple[float, Fit, Fit]:
    """SUMO's tool chain alone: the prior run's routes sampled by routeSampler to the counts, simulated.

    With a warm-up (``warmup_s`` in the twin's parameters) the counts are for SUMO's hour from the
    warm-up's end, and the sampled vehicles of its first ``warmup_s`` seconds run once more in the
    warm-up (:func:`warmup_copies`), as the engine's own runs do; sumo gets the twin's
    ``time_to_impatience_s`` and the engine's departure lane and speed too.
    """
    work.mkdir(parents=True)
    warmup_s = float(prepared.params.warmup_s)
    prior = _simulate(prepared, Factors(), 7, work / "prior")
    paired = hourly.merge(prior.counts[prior.counts["hour"] == 0], on="edge_id")
    prior_fit = fit(paired["observed"], paired["vehicles"])
    routes = next((work / "prior").glob("iteration_*/vehroutes.xml"))
    data = ET.Element("data")
    interval = ET.SubElement(data, "interval", id="counts", begin=f"{warmup_s:g}", end=f"{warmup_s + 3600:g}")
    for edge, count in zip(hourly["edge_id"], hourly["observed"], strict=True):
        ET.SubElement(interval, "edge", id=str(edge), entered=f"{count:g}")
    ET.ElementTree(data).write(work / "counts.xml")
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            str(sumo_home() / "tools" / "routeSampler.py"),
            "-r",
            str(routes),
            "--edgedata-files",
            "counts.xml",
            "-o",
            "sampled.rou.xml",
            "--seed",
            "7",
        ],
        cwd=work,
        check=True,
        capture_output=True,
    )
    route_files = "sampled.rou.xml"
    if warmup_s > 0:
        warmup_copies(work / "sampled.rou.xml", work / "warmup.rou.xml", warmup_s=warmup_s)
        route_files += ",warmup.rou.xml"
    edges = " ".join(sorted(hourly["edge_id"]))
    (work / "out.add.xml").write_text(
        f'<additional><edgeData id="c" file="counts.csv" begin="{warmup_s:g}" period="3600" '
        f'edges="{edges}"/></additional>'
    )
    network = prepared.network
    done = subprocess.run(
        [
            str(binary("sumo")),
            "-n",
            str(network.net_file.resolve()),
            "-r",
            route_files,
            "--additional-files",
            "out.add.xml",
            "--no-step-log",
            "true",
            "--no-warnings",
            "true",
            "--end",
            f"{warmup_s + 5400:g}",
            "--duration-log.statistics",
            "true",
            "--time-to-impatience",
            f"{prepared.params.time_to_impatience_s:g}",
            "--default.departlane",
            CAR_DEPARTURE["departLane"],
            "--default.departspeed",
            CAR_DEPARTURE["departSpeed"],
        ],
        cwd=work,
        check=True,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    log(done.stdout[done.stdout.find("Performance:") :].strip())
    counts = read_counts(
        work / "counts.csv", list(hourly["edge_id"]), interval_s=3600.0, period_s=5400.0, offset_s=warmup_s
    )
    merged = hourly.merge(counts[counts["interval"] == 0], on="edge_id")
    return elapsed, fit(merged["observed"], merged["vehicles"]), prior_fit


def warmup_copies(sampled: Path, path: Path, *, warmup_s: float) -> None:
    """The sampled vehicles departing in the counted hour's first ``warmup_s`` seconds once more,
    ``warmup_s`` earlier (ids ``w<id>``): the warm-up replays the hour's start, as the engine's does."""
    root = ET.parse(sampled).getroot()
    copies = ET.Element("routes")
    for vehicle in root.iter("vehicle"):
        depart = float(vehicle.get("depart", "0"))
        if depart < 2 * warmup_s:
            copy = ET.SubElement(copies, "vehicle", {**vehicle.attrib, "id": "w" + str(vehicle.get("id"))})
            copy.set("depart", f"{depart - warmup_s:.2f}")
            copy.extend(list(vehicle))
    ET.ElementTree(copies).write(path)


def twin(args: argparse.Namespace, work: Path) -> None:
    if args.twin is None:
        log("twin: skipped (no --twin)")
        return
    copy = work / "twin"
    shutil.copytree(args.twin, copy, ignore=shutil.ignore_patterns("runs", "calibration", "*.lock"))
    start, cpu_start = time.perf_counter(), _cpu_s()
    _, record = calibrate_twin(copy, on_step=log)
    elapsed, cpu = time.perf_counter() - start, _cpu_s() - cpu_start
    kfold = record["kfold"]
    print(f"\n### {args.twin}: calibrated to its counts\n")
    print(
        "| sites used | site-hours | simulations | wall s | GEH < 5 before | after | held back before | held back after |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    held_before = kfold.get("held_back_before", {}).get("share_geh_ok")
    held_after = kfold.get("held_back_after", {}).get("share_geh_ok")
    print(
        f"| {len(record['inputs']['used_sites'])} | {record['inputs']['site_hours']} | {record['simulation_runs']} | "
        f"{elapsed:.0f} | {record['fit_before']['share_geh_ok']:.0%} | {record['fit_after']['share_geh_ok']:.0%} | "
        f"{'—' if held_before is None else f'{held_before:.0%}'} | {'—' if held_after is None else f'{held_after:.0%}'} |"
    )
    print(f"\nCPU {cpu:.0f} s (this process and its SUMO children).")
    fitted = record.get("gateway_flows", [])
    simulated = {f["node"] for f in fitted}
    prior = [f for f in record["parameters"].get("gateway_prior", []) if f["node"] in simulated]
    if fitted:
        counted = sum(
            f["inbound_source"] != "stated default" or f["outbound_source"] != "stated default" for f in prior
        )
        print(
            f"Gateways in the simulated network: {len(prior)} of {len(record['parameters']['gateway_prior'])}, "
            f"{counted} with a flow from a count; first-hour flows {_first_hour_vph(prior):.0f} veh/h in "
            f"the prior, {_first_hour_vph(fitted):.0f} fitted; {len(record.get('gateway_flags', []))} "
            "count(s) on gateway roads flagged."
        )
    print(
        f"\nShare of used site-hours with GEH < 5 by run: {', '.join(f'{v:.0%}' for v in record['shares_by_run'])}; "
        f"halved steps {record['halved_steps']}; stopped early: {record['stopped'] or 'no'}."
    )
    print(
        "\n| site | hour | observed | before | after | GEH after |\n| --- | ---: | ---: | ---: | ---: | ---: |"
    )
    for row in record["scatter"]:
        after_geh = float(geh(row["after"], row["observed"]))
        print(
            f"| {row['site']} | {row['hour']} | {row['observed']:.0f} | {row['before']:.0f} | {row['after']:.0f} | {after_geh:.1f} |"
        )
    if args.record_out is not None:
        args.record_out.write_text(json.dumps(record, indent=1, default=str), encoding="utf-8")
    print(f"\n{record['statement']}")


def twin_sampler(args: argparse.Namespace, work: Path) -> None:
    """routeSampler on the twin's prior run, simulated: can the twin's network carry its counts at all?"""
    if args.twin is None:
        log("sampler: skipped (no --twin)")
        return
    params = load_params(args.twin)
    sites = twin_count_sites(args.twin, params)
    inputs = load_twin(args.twin)
    observed = sites.window(params.calibration, window_hours(params)).reset_index(drop=True)
    flows, _ = counted_gateway_flows(inputs.edges, sites, params)
    base = params.model_copy(
        update={
            "od_factors": (),
            "count_edges": tuple(sorted(set(observed["edge_id"].astype(str)))),
            "calibration_record": None,
            "gateway_flows": tuple(flows),
        }
    )
    prepared = prepare_scenario(inputs, Scenario.baseline_scenario(), work / "network", base)
    log("routeSampler on the twin's prior run")
    elapsed, sampled, prior = route_sampler(prepared, observed[["edge_id", "observed"]], work / "sampler")
    print(f"\n### {args.twin}: routeSampler.py on the prior run's routes, simulated with sumo\n")
    print(
        "| site-hours | GEH < 5 prior → sampled | RMSE prior → sampled | observed | simulated prior → sampled |"
    )
    print("| ---: | --- | --- | ---: | --- |")
    print(
        f"| {sampled.site_hours} | {prior.share_geh_ok:.0%} → {sampled.share_geh_ok:.0%} | "
        f"{prior.rmse:.0f} → {sampled.rmse:.0f} | {sampled.observed_total:.0f} | "
        f"{prior.simulated_total:.0f} → {sampled.simulated_total:.0f} |"
    )
    print(f"\nrouteSampler and sumo: {elapsed:.0f} s wall.")


def _first_hour_vph(flows: list[dict[str, Any]]) -> float:
    """Inbound, through and outbound gateway flows of the first hour, summed (vehicles/hour)."""
    return sum(sum(f[f"{kind}_vph"][0] for kind in ("inbound", "through", "outbound")) for f in flows)


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process and its finished children (the SUMO runs)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="synthetic,prior,twin", help="comma-separated sections")
    parser.add_argument("--grid", type=int, default=4, help="synthetic: grid size (junctions per side)")
    parser.add_argument("--scale", type=float, default=4.0, help="synthetic: demand scale")
    parser.add_argument("--congested-scale", type=float, default=12.0, help="prior: demand scale")
    parser.add_argument("--prior-weights", default="1,0.1,0.01", help="prior: OD prior weights to compare")
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--max-iterations", type=int, default=2)
    parser.add_argument(
        "--twin", type=Path, default=None, help="twin: the twin directory to calibrate a copy of"
    )
    parser.add_argument(
        "--record-out", type=Path, default=None, help="twin: also write the calibration record (JSON) here"
    )
    args = parser.parse_args()
    sections = {"synthetic": synthetic, "prior": prior_weights, "twin": twin, "sampler": twin_sampler}
    with tempfile.TemporaryDirectory(prefix="bench-calibration-") as folder:
        for name in args.only.split(","):
            sections[name](args, Path(folder) / name)


if __name__ == "__main__":
    main()
