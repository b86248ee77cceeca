"""Where to count next: candidate count sites ranked by how much a count there would narrow a plan KPI.

The method (docs/methods-countnext.md): the calibration's unknowns (one factor per OD pair of the base
matrix and per cell of the gateway matrix, :mod:`civictwin.engines.traffic.calibration`) are linearised at the
calibrated demand. Relative to it each unknown ``y_u`` (1 = as calibrated) has a prior variance (the
calibration's own prior term) and each used count site-hour is a linear observation of them (the
vehicles of each unknown the baseline run counted there, with the count's Poisson variance), which
gives their posterior covariance ``P``. The difference of a KPI between two plans is linear in them
too: ``D ≈ Σ_u s_u y_u`` with ``s_u`` the KPI the trips of ``u`` cause in plan B minus in plan A
(each vehicle charged the per-vehicle CO2, delay or distance of the edges it used, from the plans'
runs). A count at a candidate edge adds one observation per hour of the window (rows ``a``, variances
``R``) and removes ``(Pa'ᵀ s)ᵀ (R + a P aᵀ)⁻¹ (a P s)`` from ``Var D = sᵀ P s`` (the rank-one
Kalman / Bayesian update for one hour). Candidates are ranked by that reduction: the value of the
information a count there would bring to the decision between the two plans.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from civictwin import durable
from civictwin.engines.traffic.calibration import (
    BASE_PREFIX,
    RECORDS_DIR,
    Factors,
    latest_record,
    latest_record_path,
    next_record_path,
    prior_car_trips,
    prior_gateway_trips,
    twin_count_sites,
    window_hours,
    with_calibration,
)
from civictwin.engines.traffic.demand import trip_pair
from civictwin.engines.traffic.gateways import GATEWAY_PREFIX
from civictwin.engines.traffic.inputs import TwinInputs, load_twin, needs_routes
from civictwin.engines.traffic.params import TrafficParams, load_params
from civictwin.engines.traffic.prepare import PreparedScenario, prepare_scenario
from civictwin.engines.traffic.simulate import SeedOutcome, simulate_seed
from civictwin.errors import EngineError
from civictwin.scenarios.spec import Scenario

FloatArray = npt.NDArray[np.float64]
Unknown = tuple[str, str, str]
"""A calibration unknown: (``od``, origin, destination) or (``gateway``, start, end) of a gateway cell."""
Step = Callable[[str], None]

KPIS: dict[str, str] = {
    "co2_kg": "kg",
    "total_delay_h": "h",
    "vehicle_km": "km",
}
"""The plan KPIs a count can narrow, with their units: each is a sum over the vehicles' edges."""
RECORD_PREFIX = "where-next"


@dataclass(frozen=True)
class CountDesign:
    """The linearised calibration and a plan KPI difference, ready to rank candidate sites.

    ``prior_variance`` (n): each unknown's variance before any count (relative factor, 1 = as
    calibrated); ``counted`` (m × n) and ``counted_variance`` (m): the used count site-hours as
    observations (vehicles of each unknown at factor 1; Poisson variance, vehicles²);
    ``sensitivity`` (n): the KPI difference (plan B − plan A, KPI units) per unit of each factor;
    ``candidates``: per candidate edge its rows (k hours × n) and their variances (k).
    """

    unknowns: tuple[str, ...]
    prior_variance: FloatArray
    counted: FloatArray
    counted_variance: FloatArray
    sensitivity: FloatArray
    candidates: Mapping[str, tuple[FloatArray, FloatArray]]


def posterior_covariance(prior_variance: FloatArray, rows: FloatArray, variances: FloatArray) -> FloatArray:
    """Covariance of the unknowns after observing ``rows`` (m × n) with noise ``variances`` (m):
    ``(diag(1 / prior_variance) + rowsᵀ diag(1 / variances) rows)⁻¹``."""
    precision = np.diag(1.0 / prior_variance) + rows.T @ (rows / variances[:, None])
    covariance = np.asarray(np.linalg.inv(precision), dtype=float)
    symmetric: FloatArray = (covariance + covariance.T) / 2.0
    return symmetric


def kpi_variance(covariance: FloatArray, sensitivity: FloatArray) -> float:
    """Variance of the linear KPI ``sensitivity · y`` under ``covariance`` (KPI units²)."""
    return float(sensitivity @ covariance @ sensitivity)


def variance_reduction(
    covariance: FloatArray, sensitivity: FloatArray, rows: FloatArray, variances: FloatArray
) -> float:
    """How much observing ``rows`` (k × n, noise ``variances``) removes from the KPI's variance:
    ``vᵀ (diag(variances) + rows P rowsᵀ)⁻¹ v`` with ``v = rows P s`` (for one row the rank-one
    ``(aᵀ P s)² / (σ² + aᵀ P a)``)."""
    if rows.size == 0:
        return 0.0
    shared = rows @ covariance @ sensitivity
    innovation = np.diag(variances) + rows @ covariance @ rows.T
    return float(shared @ np.linalg.solve(innovation, shared))


def rank_sites(design: CountDesign) -> tuple[float, pd.DataFrame]:
    """The KPI difference's variance with today's counts, and every candidate ranked by the variance
    a count there would remove (``edge_id``, ``reduction``, ``sd_after``, ``share_removed``,
    ``predicted_vph`` (the busiest hour's vehicles), ``rank``)."""
    covariance = posterior_covariance(design.prior_variance, design.counted, design.counted_variance)
    variance = kpi_variance(covariance, design.sensitivity)
    rows = []
    for edge, (candidate, noise) in design.candidates.items():
        reduction = min(variance_reduction(covariance, design.sensitivity, candidate, noise), variance)
        rows.append(
            {
                "edge_id": edge,
                "reduction": reduction,
                "sd_after": math.sqrt(max(variance - reduction, 0.0)),
                "share_removed": reduction / variance if variance > 0 else 0.0,
                "predicted_vph": float(candidate.sum(axis=1).max()) if candidate.size else 0.0,
            }
        )
    frame = pd.DataFrame(rows, columns=["edge_id", "reduction", "sd_after", "share_removed", "predicted_vph"])
    frame = frame.sort_values(["reduction", "edge_id"], ascending=[False, True], ignore_index=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    return variance, frame


def updated_covariance(covariance: FloatArray, rows: FloatArray, variances: FloatArray) -> FloatArray:
    """``covariance`` after observing ``rows`` (k × n) with noise ``variances`` (k):
    ``P − P Aᵀ (R + A P Aᵀ)⁻¹ A P``."""
    gain = covariance @ rows.T
    innovation = np.diag(variances) + rows @ gain
    updated = covariance - gain @ np.linalg.solve(innovation, gain.T)
    symmetric: FloatArray = (updated + updated.T) / 2.0
    return symmetric


def sequence_sites(design: CountDesign, *, count: int) -> pd.DataFrame:
    """The next ``count`` counters chosen one after another, each the candidate that removes most of the
    variance the counters before it leave (the sequential heuristic of the sensor-location
    literature; neighbouring edges of one road carry the same trips, so after one of them is chosen
    the others score little): ``order``, ``edge_id``, ``reduction`` (of the variance left before it),
    ``sd_after`` (with it and the ones before, KPI units)."""
    covariance = posterior_covariance(design.prior_variance, design.counted, design.counted_variance)
    remaining = dict(design.candidates)
    chosen = []
    for order in range(1, min(count, len(remaining)) + 1):
        scores = {
            edge: variance_reduction(covariance, design.sensitivity, rows, noise)
            for edge, (rows, noise) in remaining.items()
        }
        edge = min(scores, key=lambda e: (-scores[e], e))
        rows, noise = remaining.pop(edge)
        covariance = updated_covariance(covariance, rows, noise)
        left = max(kpi_variance(covariance, design.sensitivity), 0.0)
        chosen.append(
            {"order": order, "edge_id": edge, "reduction": scores[edge], "sd_after": math.sqrt(left)}
        )
    return pd.DataFrame(chosen, columns=["order", "edge_id", "reduction", "sd_after"])


# ---------------------------------------------------------------------------------- from simulations


def unknown_of(prepared: PreparedScenario, trip_id: str) -> Unknown | None:
    """The calibration unknown a trip belongs to (its OD pair or gateway cell); None for event trips."""
    if trip_id.startswith(BASE_PREFIX):
        zones = prepared.layers[0].od.zones
        origin, destination = trip_pair(trip_id)
        return ("od", zones[origin], zones[destination])
    if trip_id.startswith(GATEWAY_PREFIX) and prepared.gateways is not None:
        names = prepared.gateways.od.zones
        start, end = trip_pair(trip_id)
        return ("gateway", names[start], names[end])
    return None


def labelled_passages(
    prepared: PreparedScenario, outcome: SeedOutcome
) -> tuple[pd.DataFrame, dict[str, Unknown]]:
    """The run's passages (``trip_id``, ``edge_id``, ``hour``) with the text key of each trip's
    ``unknown`` (passages of trips no unknown scales, events, left out), and the unknown of each key.
    A trip's ids index its own plan's zones (a plan may close a gateway), so each plan is labelled
    with its own ``prepared``."""
    passages = outcome.passages
    keys: dict[str, Unknown] = {}
    labels = []
    for trip in passages["trip_id"].astype(str):
        unknown = unknown_of(prepared, trip)
        label = "" if unknown is None else " ".join(unknown)
        if unknown is not None:
            keys[label] = unknown
        labels.append(label)
    frame = passages.assign(
        edge_id=passages["edge_id"].astype(str), hour=passages["hour"].astype(int), unknown=labels
    )
    return frame[frame["unknown"] != ""].reset_index(drop=True), keys


def per_vehicle_cost(outcome: SeedOutcome, edges: pd.DataFrame, kpi: str) -> pd.Series:
    """What one vehicle on each edge adds to ``kpi`` in this run (KPI units, by ``edge_id``):
    CO2 the edge's emissions over its vehicles; delay its length at the run's mean speed minus at its
    speed limit (never below 0); vehicle-km its length."""
    run = outcome.edges.assign(edge_id=outcome.edges["edge_id"].astype(str)).set_index("edge_id")
    network = edges.assign(edge_id=edges["edge_id"].astype(str)).set_index("edge_id")
    length = network["length_m"].astype(float).reindex(run.index)
    if kpi == "vehicle_km":
        return (length / 1000.0).fillna(0.0)
    if kpi == "co2_kg":
        flow = run["flow"].astype(float)
        return (run["co2_g"].astype(float) / 1000.0 / flow.where(flow > 0)).fillna(0.0)
    if kpi == "total_delay_h":
        free = network["speed_kmh"].astype(float).reindex(run.index) / 3.6
        speed = run["speed_ms"].astype(float)
        delay = (length / speed.where(speed > 0) - length / free.where(free > 0)).clip(lower=0.0)
        return (delay / 3600.0).fillna(0.0)
    raise EngineError(f"unknown KPI '{kpi}' (one of {', '.join(KPIS)})", field="kpi")


def kpi_by_unknown(passages: pd.DataFrame, cost: pd.Series) -> dict[str, float]:
    """Each unknown's share of the KPI: the per-vehicle cost of every edge its trips used, summed."""
    charged = passages["edge_id"].map(cost).fillna(0.0)
    return {str(k): float(v) for k, v in charged.groupby(passages["unknown"]).sum().items()}


Tally = Mapping[tuple[str, int], Mapping[str, float]]
"""Vehicles of each unknown a run counted, by (edge, hour)."""


def tally(passages: pd.DataFrame) -> Tally:
    """The labelled ``passages`` (``edge_id``, ``hour``, ``unknown``) tallied by (edge, hour)."""
    found: dict[tuple[str, int], dict[str, float]] = {}
    for edge, hour, unknown in zip(passages["edge_id"], passages["hour"], passages["unknown"], strict=True):
        at = found.setdefault((str(edge), int(hour)), {})
        at[str(unknown)] = at.get(str(unknown), 0.0) + 1.0
    return found


def observation_rows(seen: Tally, places: Sequence[tuple[str, int]], unknowns: Sequence[str]) -> FloatArray:
    """Vehicles of each unknown (columns) the run counted at each (edge, hour) of ``places`` (rows)."""
    column = {u: n for n, u in enumerate(unknowns)}
    matrix = np.zeros((len(places), len(unknowns)))
    for n, place in enumerate(places):
        for unknown, vehicles in seen.get(place, {}).items():
            if unknown in column:
                matrix[n, column[unknown]] += vehicles
    return matrix


@dataclass(frozen=True)
class PlanRun:
    """One plan simulated with passages at every candidate edge."""

    prepared: PreparedScenario
    outcome: SeedOutcome


def count_design(
    *,
    passages: pd.DataFrame,
    counts: pd.DataFrame,
    observed: pd.DataFrame,
    prior_variance: Mapping[str, float],
    sensitivity: Mapping[str, float],
    hours: int,
) -> CountDesign:
    """The design from the baseline run: its labelled ``passages`` (``edge_id``, ``hour``,
    ``unknown``) and ``counts`` (``edge_id``, ``hour``, ``vehicles``: every candidate edge), the used
    ``observed`` site-hours (``edge_id``, ``hour``, ``observed``), each unknown's ``prior_variance``
    and ``sensitivity`` (KPI units per unit factor). Candidates: every counted edge without a used
    site, observed over ``hours`` (a count's variance its predicted vehicles, at least 1)."""
    unknowns = tuple(sorted(prior_variance))
    seen = tally(passages)
    places = [(str(e), int(h)) for e, h in zip(observed["edge_id"], observed["hour"], strict=True)]
    used_edges = {e for e, _ in places}
    candidates: dict[str, tuple[FloatArray, FloatArray]] = {}
    for edge in sorted(set(counts["edge_id"].astype(str)) - used_edges):
        edge_places = [(edge, h) for h in range(hours)]
        rows = observation_rows(seen, edge_places, unknowns)
        candidates[edge] = (rows, np.maximum(_counted_vehicles(counts, edge_places), 1.0))
    return CountDesign(
        unknowns=unknowns,
        prior_variance=np.array([prior_variance[u] for u in unknowns], dtype=float),
        counted=observation_rows(seen, places, unknowns),
        counted_variance=np.maximum(observed["observed"].to_numpy(dtype=float), 1.0),
        sensitivity=np.array([sensitivity.get(u, 0.0) for u in unknowns], dtype=float),
        candidates=candidates,
    )


def plan_design(
    baseline: PlanRun,
    plan_a: PlanRun,
    plan_b: PlanRun,
    observed: pd.DataFrame,
    *,
    kpi: str,
    factors: Factors,
    edges: pd.DataFrame,
    hours: int,
) -> CountDesign:
    """:func:`count_design` from the runs: the unknowns and their prior variances from the baseline's
    calibrated demand (``factors``), the sensitivity from the plans' per-vehicle edge costs."""
    settings = baseline.prepared.params.calibration
    if settings.prior_weight <= 0 or settings.gateway_prior_weight <= 0:
        raise EngineError(
            "ranking count sites needs a prior: prior_weight and gateway_prior_weight must be > 0",
            field="calibration",
        )
    seen, keys = labelled_passages(baseline.prepared, baseline.outcome)
    in_a, keys_a = labelled_passages(plan_a.prepared, plan_a.outcome)
    in_b, keys_b = labelled_passages(plan_b.prepared, plan_b.outcome)
    prior = _prior_variance(baseline, dict(sorted({**keys_b, **keys_a, **keys}.items())), factors)
    finite = {k: v for k, v in prior.items() if math.isfinite(v)}
    cost_a = kpi_by_unknown(in_a, per_vehicle_cost(plan_a.outcome, edges, kpi))
    cost_b = kpi_by_unknown(in_b, per_vehicle_cost(plan_b.outcome, edges, kpi))
    return count_design(
        passages=seen,
        counts=baseline.outcome.counts,
        observed=observed,
        prior_variance=finite,
        sensitivity={u: cost_b.get(u, 0.0) - cost_a.get(u, 0.0) for u in finite},
        hours=hours,
    )


def _prior_variance(baseline: PlanRun, keyed: Mapping[str, Unknown], factors: Factors) -> dict[str, float]:
    """Each unknown's prior variance relative to the calibrated demand: ``1 / (w g T)`` (``w`` the
    prior weight, ``g`` the calibrated factor, ``T`` its calibrated car trips); the calibration's
    prior term ``w T₀ (x − 1)²`` with ``T₀ = T / g`` and ``x = g y``. Infinite where it has no trips
    today, e.g. a gateway only a plan opens: no count of today's traffic can narrow it."""
    prepared, outcome = baseline.prepared, baseline.outcome
    settings = prepared.params.calibration
    simulated = set(prepared.gateways.od.zones) if prepared.gateways is not None else set()
    variance: dict[str, float] = {}
    for key, (kind, first, second) in keyed.items():
        if kind == "gateway" and not {first, second} <= simulated:
            trips, factor, weight = 0.0, 1.0, settings.gateway_prior_weight
        elif kind == "gateway":
            trips = float(prior_gateway_trips(prepared.gateways, [(first, second)])[0])
            factor, weight = factors.gateways.get((first, second), 1.0), settings.gateway_prior_weight
        else:
            trips = float(prior_car_trips(prepared, outcome, [(first, second)])[0])
            factor, weight = factors.od.get((first, second), 1.0), settings.prior_weight
        precision = weight * factor * trips
        variance[key] = 1.0 / precision if precision > 0 else math.inf
    return variance


def _counted_vehicles(counts: pd.DataFrame, places: Sequence[tuple[str, int]]) -> FloatArray:
    """The run's count (all vehicles) at each (edge, hour), 0 where it counted none."""
    lookup = {
        (str(e), int(h)): float(v)
        for e, h, v in zip(counts["edge_id"], counts["hour"], counts["vehicles"], strict=True)
    }
    return np.array([lookup.get(place, 0.0) for place in places])


# ---------------------------------------------------------------------------------------- the twin


def where_to_count(
    twin_dir: Path,
    plan_a: Scenario,
    plan_b: Scenario,
    *,
    kpi: str,
    sequence: int = 5,
    on_step: Step | None = None,
) -> dict[str, Any]:
    """Rank the twin's uncounted directed edges by how much a count there would narrow the
    difference of ``kpi`` between ``plan_a`` and ``plan_b``, each alone and as a ``sequence`` of
    counters chosen one after another; the result as plain JSON."""
    if kpi not in KPIS:
        raise EngineError(f"unknown KPI '{kpi}' (one of {', '.join(KPIS)})", field="kpi")
    record = latest_record(twin_dir)
    if record is None:
        raise EngineError(
            "no calibration record: run `civictwin calibrate run TWIN` first", path=twin_dir / RECORDS_DIR
        )
    if not record["count_edges"]:
        raise EngineError(
            f"calibration record {record['id']} has no count site (only the modal split was calibrated): "
            "the ranking needs a calibration to counts",
            path=twin_dir / RECORDS_DIR,
        )
    params = with_calibration(load_params(twin_dir), twin_dir)
    inputs = load_twin(twin_dir, need_routes=needs_routes([plan_a, plan_b]))
    observed = twin_count_sites(twin_dir, params).window(params.calibration, window_hours(params))
    factors = Factors(
        od={(o, d): f for o, d, f in record["od_factors"]},
        gateways={(start, end): float(f) for start, end, f in record.get("gateway_factors") or []},
    )
    folder = twin_dir / RECORDS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".work-", dir=folder) as work:
        runs = plan_runs(inputs, params, (plan_a, plan_b), Path(work), on_step=on_step)
    baseline, run_a, run_b = runs
    design = plan_design(
        baseline,
        run_a,
        run_b,
        observed,
        kpi=kpi,
        factors=factors,
        edges=inputs.edges,
        hours=window_hours(params),
    )
    variance, ranked = rank_sites(design)
    names = inputs.edges.assign(edge_id=inputs.edges["edge_id"].astype(str)).set_index("edge_id")["name"]
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "calibration_record": str(record["id"]),
        "kpi": kpi,
        "unit": KPIS[kpi],
        "plan_a": plan_a.name,
        "plan_b": plan_b.name,
        "difference": _finite(run_b.outcome.kpis.get(kpi, math.nan) - run_a.outcome.kpis.get(kpi, math.nan)),
        "linearised_difference": float(design.sensitivity.sum()),
        "sd_now": math.sqrt(variance),
        "unknowns": len(design.unknowns),
        "counted_site_hours": len(design.counted),
        "sequence": [
            {
                **{k: (round(float(v), 6) if k in ("reduction", "sd_after") else v) for k, v in row.items()},
                "street": _text(names.get(row["edge_id"])),
            }
            for row in sequence_sites(design, count=sequence).to_dict("records")
        ],
        "sites": [{**row, "street": _text(names.get(row["edge_id"]))} for row in _plain_rows(ranked)],
    }


def plan_runs(
    inputs: TwinInputs,
    params: TrafficParams,
    plans: tuple[Scenario, Scenario],
    workdir: Path,
    *,
    on_step: Step | None = None,
) -> list[PlanRun]:
    """The baseline and both plans, one seed each, with passages at every car edge (the baseline's run
    reused for a plan that is the baseline)."""
    car_edges = tuple(sorted(inputs.edges.loc[inputs.edges["car"].astype(bool), "edge_id"].astype(str)))
    counting = params.model_copy(update={"count_edges": car_edges})
    seed = params.calibration.seed
    step: Step = on_step or (lambda text: None)
    done: dict[str, PlanRun] = {}
    for scenario in (Scenario.baseline_scenario(), *plans):
        if scenario.name in done:
            continue
        step(f"simulating {scenario.name}")
        folder = workdir / f"plan_{len(done)}"
        prepared = prepare_scenario(inputs, scenario, folder / "network", counting)
        done[scenario.name] = PlanRun(prepared, simulate_seed(prepared, seed, folder, passages=True))
    baseline = done[Scenario.baseline_scenario().name]
    return [baseline, done[plans[0].name], done[plans[1].name]]


def _plain_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {
            "rank": int(r["rank"]),
            "edge_id": str(r["edge_id"]),
            "reduction": round(float(r["reduction"]), 6),
            "sd_after": round(float(r["sd_after"]), 6),
            "share_removed": round(float(r["share_removed"]), 6),
            "predicted_vph": float(r["predicted_vph"]),
        }
        for r in frame.to_dict("records")
    ]


def _finite(value: float) -> float | None:
    """``value`` as JSON can hold it: None when it is not a finite number."""
    return float(value) if math.isfinite(value) else None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def save_ranking(twin_dir: Path, ranking: Mapping[str, Any]) -> Path:
    """Write ``ranking`` as the next ``where-next-NNN.json`` beside the calibration records."""
    path, _ = next_record_path(twin_dir, RECORD_PREFIX)
    durable.write_text(
        path, json.dumps({"id": path.stem, **ranking}, indent=2, ensure_ascii=False, allow_nan=False)
    )
    return path


def latest_ranking(twin_dir: Path) -> dict[str, Any] | None:
    """The twin's latest where-to-count ranking, or None."""
    path = latest_record_path(twin_dir, RECORD_PREFIX)
    if path is None:
        return None
    try:
        ranking: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EngineError(f"unreadable where-to-count ranking: {exc}", path=path) from None
    return ranking
