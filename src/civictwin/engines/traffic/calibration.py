"""Calibrating a twin's traffic demand to its counts, validated on held-back sites, as a versioned record.

The method (docs/methods-calibration.md): the base person-trip matrix gets one factor per origin-
destination pair, estimated by generalised least squares against the counts and the prior matrix
(Cascetta & Nguyen 1988) and iterated with the simulation. Each SUMO run tells, for every count
site-hour, how many vehicles of each pair it saw (SUMO's vehroute output); holding those paths fixed,
a count is linear in the factors, so each update is a bounded linear least-squares problem
(``scipy.optimize.lsq_linear``); the next run re-routes with the new demand. The sites are also split
k-fold: each fold is calibrated without its held-back sites and scored on them.

The record (``<twin>/calibration/calibration-NNN.json``) keeps the inputs, the method and its
parameters, the factors, the fit before and after on the sites used and on the held-back sites, the
runs, and a statement in words of whether the fit meets the DMRB criterion; every later traffic run of
the twin uses the latest record (:func:`with_calibration`) and names it in its parameters.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import lsq_linear

from civictwin import durable
from civictwin.config import load_config
from civictwin.engines.traffic.demand import trip_pair
from civictwin.engines.traffic.fit import DMRB_SHARE, Fit, fit, kfold_sites
from civictwin.engines.traffic.inputs import TwinInputs, load_twin
from civictwin.engines.traffic.params import TrafficParams, load_params
from civictwin.engines.traffic.prepare import PreparedScenario, prepare_scenario, with_od_factors
from civictwin.engines.traffic.simulate import SeedOutcome, simulate_seed
from civictwin.engines.traffic.sites import CalibrationSettings, CountSites, load_count_sites
from civictwin.errors import EngineError
from civictwin.scenarios.spec import Scenario

RECORDS_DIR = "calibration"
METHOD = (
    "origin-destination factors by generalised least squares against the counts and the prior matrix "
    "(Cascetta & Nguyen 1988, Transportation Research B 22(6):437-455), iterated with SUMO "
    "(assignment re-simulated after each update), solved with scipy.optimize.lsq_linear"
)
MAX_FACTOR = 10.0
"""Upper bound of an OD factor: a pair may grow tenfold at most in one calibration."""
CONVERGED_CHANGE = 0.05
"""The loop has converged when the last update changed no factor by more than this share."""
BASE_PREFIX = "t"
"""Trip ids of the base demand layer (events have their own prefixes and are not calibrated)."""
_RECORD_NAME = re.compile(r"calibration-(\d{3,})\.json$")

Pair = tuple[str, str]
Step = Callable[[str], None]
"""Progress: told a short text before each simulation."""
Simulate = Callable[[dict[Pair, float]], SeedOutcome]
"""One simulation of the baseline with the given OD factors."""


@dataclass(frozen=True)
class Calibrated:
    """One calibration over a set of sites: its factors, its last simulation and how it went."""

    factors: dict[Pair, float]
    outcome: SeedOutcome
    shares: list[float]
    """Share of the fitted site-hours with GEH < 5 after each run (the prior run first)."""
    converged: bool


def twin_count_sites(twin_dir: Path, params: TrafficParams | None = None) -> CountSites:
    """The count sites of the twin in ``twin_dir``, checked against its network and its
    ``[calibration]`` settings (``traffic.toml``), over the simulated demand window."""
    params = params or load_params(twin_dir)
    config = load_config(twin_dir)
    inputs = load_twin(twin_dir)
    return load_count_sites(
        config.store_path, inputs.edges, params.calibration, window_hours=window_hours(params)
    )


def window_hours(params: TrafficParams) -> int:
    """Whole clock hours the demand window covers (a count is compared per hour)."""
    return max(1, math.ceil(params.demand_window_s / 3600.0 - 1e-9))


def calibrate_twin(twin_dir: Path, *, on_step: Step | None = None) -> tuple[Path, dict[str, Any]]:
    """Calibrate the twin in ``twin_dir`` to its counts; returns the record's path and the record."""
    params = load_params(twin_dir)
    sites = twin_count_sites(twin_dir, params)
    inputs = load_twin(twin_dir)
    folder = twin_dir / RECORDS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".work-", dir=folder) as work:
        record = calibrate(inputs, sites, params, Path(work), on_step=on_step)
    return save_record(twin_dir, record), record


def calibrate(
    inputs: TwinInputs,
    sites: CountSites,
    params: TrafficParams,
    workdir: Path,
    *,
    on_step: Step | None = None,
) -> dict[str, Any]:
    """Calibrate the baseline demand of ``inputs`` to the used ``sites``; the record as plain JSON.

    Raises :class:`EngineError` when no site is usable. The record says plainly when the fit does not
    meet the DMRB criterion or the loop did not converge; it is never stored as better than it is.
    """
    started = time.perf_counter()
    settings = params.calibration
    observed = sites.window(settings, window_hours(params))
    if observed.empty:
        raise EngineError(
            "no usable count site in the simulated hours (see `civictwin calibrate sites`)",
            field="calibration",
        )
    edges = tuple(sorted(set(observed["edge_id"].astype(str))))
    base = params.model_copy(update={"od_factors": (), "count_edges": edges, "calibration_record": None})
    prepared = prepare_scenario(inputs, Scenario.baseline_scenario(), workdir / "network", base)
    step: Step = on_step or (lambda text: None)
    runs = [0]

    def simulate(factors: dict[Pair, float]) -> SeedOutcome:
        runs[0] += 1
        step(f"simulation {runs[0]}")
        return _simulate(prepared, factors, settings.seed, workdir / f"run_{runs[0]}")

    prior = simulate({})
    used = sorted(set(observed["site"]))
    full = _calibrate(prepared, prior, observed, settings, simulate)
    folds = _folds(prepared, prior, observed, used, settings, simulate)
    before, after = _fit(observed, prior), _fit(observed, full.outcome)
    return {
        "method": METHOD,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": {
            **settings.model_dump(mode="json"),
            "max_factor": MAX_FACTOR,
            "converged_change": CONVERGED_CHANGE,
            "traffic": base.model_dump(mode="json", exclude={"calibration", "count_edges"}),
        },
        "inputs": {
            "sites": sites.sites.to_dict("records"),
            "used_sites": used,
            "site_hours": len(observed),
        },
        "count_edges": list(edges),
        "od_factors": [[o, d, round(f, 6)] for (o, d), f in sorted(full.factors.items())],
        "fit_before": before.as_dict(),
        "fit_after": after.as_dict(),
        "shares_by_run": [round(s, 4) for s in full.shares],
        "converged": full.converged,
        "kfold": folds,
        "scatter": _scatter(observed, prior, full.outcome),
        "simulation_runs": runs[0],
        "wall_s": round(time.perf_counter() - started, 2),
        "statement": statement(before, after, full.converged, folds),
    }


def _calibrate(
    prepared: PreparedScenario,
    prior: SeedOutcome,
    observed: pd.DataFrame,
    settings: CalibrationSettings,
    simulate: Simulate,
) -> Calibrated:
    """The loop over ``observed`` sites: update the factors from the last run, simulate, repeat."""
    factors: dict[Pair, float] = {}
    outcome = prior
    shares = [_fit(observed, prior).share_geh_ok]
    change = math.inf
    for _ in range(settings.max_iterations):
        updated = update_factors(prepared, outcome, observed, factors, prior_weight=settings.prior_weight)
        change = max(
            (abs(updated[p] - factors.get(p, 1.0)) / max(factors.get(p, 1.0), 0.1) for p in updated),
            default=0.0,
        )
        factors = updated
        outcome = simulate(factors)
        shares.append(_fit(observed, outcome).share_geh_ok)
    return Calibrated(factors, outcome, shares, converged=change <= CONVERGED_CHANGE)


def _folds(
    prepared: PreparedScenario,
    prior: SeedOutcome,
    observed: pd.DataFrame,
    used: list[str],
    settings: CalibrationSettings,
    simulate: Simulate,
) -> dict[str, Any]:
    """Each fold calibrated without its held-back sites and scored on them; pooled over the folds."""
    k = min(settings.folds, len(used))
    if k < 2:
        return {"folds": [], "note": f"{len(used)} site(s): too few to hold any back"}
    rows = []
    held_prior, held_after = [], []
    for held in kfold_sites(used, folds=k, seed=settings.seed):
        fitted = observed[~observed["site"].isin(held)]
        back = observed[observed["site"].isin(held)]
        result = _calibrate(prepared, prior, fitted, settings, simulate)
        held_prior.append(_paired(back, prior))
        held_after.append(_paired(back, result.outcome))
        rows.append(
            {
                "held_back": held,
                "used_before": _fit(fitted, prior).as_dict(),
                "used_after": _fit(fitted, result.outcome).as_dict(),
                "held_back_before": _fit(back, prior).as_dict(),
                "held_back_after": _fit(back, result.outcome).as_dict(),
                "converged": result.converged,
            }
        )
    before = pd.concat(held_prior, ignore_index=True)
    after = pd.concat(held_after, ignore_index=True)
    return {
        "folds": rows,
        "held_back_before": fit(before["observed"], before["simulated"]).as_dict(),
        "held_back_after": fit(after["observed"], after["simulated"]).as_dict(),
    }


def update_factors(
    prepared: PreparedScenario,
    outcome: SeedOutcome,
    observed: pd.DataFrame,
    factors: dict[Pair, float],
    *,
    prior_weight: float,
) -> dict[Pair, float]:
    """One generalised least-squares update of the OD factors from the paths of the last run.

    With ``a[s, p]`` the vehicles of pair ``p`` the run counted at site-hour ``s`` (under factor
    ``g_p``) and ``b[s]`` the rest of its count (event trips), a new factor ``x_p`` gives the count
    ``b[s] + Σ_p a[s, p] x_p / g_p``. Minimised: ``Σ_s (c_s − count_s)² / max(c_s, 1)`` (Poisson
    variance of a count) ``+ prior_weight Σ_p T_p (x_p − 1)²`` (``T_p`` the pair's expected car trips in
    the prior matrix, the same variance form), with ``0 ≤ x_p ≤`` :data:`MAX_FACTOR`. Pairs no site saw
    keep their factor.
    """
    zones = prepared.layers[0].od.zones
    seen = outcome.passages[outcome.passages["trip_id"].astype(str).str.startswith(BASE_PREFIX)]
    seen_pairs: list[Pair] = [(zones[i], zones[j]) for i, j in map(trip_pair, seen["trip_id"].astype(str))]
    pairs = sorted(set(seen_pairs))
    if not pairs:
        return dict(factors)
    column = {p: n for n, p in enumerate(pairs)}
    rows = observed[["edge_id", "hour", "observed"]].reset_index(drop=True)
    row = {(str(e), int(h)): n for n, (e, h) in enumerate(zip(rows["edge_id"], rows["hour"], strict=True))}
    a = np.zeros((len(rows), len(pairs)))
    for edge, hour, pair in zip(seen["edge_id"], seen["hour"], seen_pairs, strict=True):
        if (str(edge), int(hour)) in row:
            a[row[(str(edge), int(hour))], column[pair]] += 1.0
    simulated = _paired(observed, outcome)["simulated"].to_numpy(dtype=float)
    background = np.maximum(simulated - a.sum(axis=1), 0.0)
    current = np.array([factors.get(p, 1.0) for p in pairs])
    counts = rows["observed"].to_numpy(dtype=float)
    weight = 1.0 / np.sqrt(np.maximum(counts, 1.0))
    prior_trips = _prior_car_trips(prepared, outcome, pairs)
    design = np.vstack(
        [
            (a / np.where(current > 0, current, 1.0)) * weight[:, None],
            np.diag(np.sqrt(prior_weight * prior_trips)),
        ]
    )
    target = np.concatenate([(counts - background) * weight, np.sqrt(prior_weight * prior_trips)])
    solved = lsq_linear(design, target, bounds=(0.0, MAX_FACTOR), method="bvls")
    return {**factors, **{p: float(x) for p, x in zip(pairs, solved.x, strict=True)}}


def _prior_car_trips(prepared: PreparedScenario, outcome: SeedOutcome, pairs: Sequence[Pair]) -> np.ndarray:
    """Expected car trips of each pair in the prior matrix: person trips × the run's car share ÷ occupancy."""
    od = prepared.layers[0].od
    index = {z: i for i, z in enumerate(od.zones)}
    per_car = outcome.modal_split.get("car", 0.0) / prepared.params.mode_choice.car_occupancy
    return np.array([od.trips[index[o], index[d]] * per_car for o, d in pairs])


def _simulate(
    prepared: PreparedScenario, factors: dict[Pair, float], seed: int, workdir: Path
) -> SeedOutcome:
    """One seed of the baseline with ``factors`` on its base layer, recording the passages at counts."""
    base, *events = prepared.layers
    scaled = with_od_factors(base.od, [(o, d, f) for (o, d), f in sorted(factors.items())])
    layers = (dataclasses.replace(base, od=scaled), *events)
    return simulate_seed(dataclasses.replace(prepared, layers=layers), seed, workdir, passages=True)


def _paired(observed: pd.DataFrame, outcome: SeedOutcome) -> pd.DataFrame:
    """``observed`` with the run's count at each site-hour (0 where it counted nothing) as ``simulated``."""
    counts = outcome.counts.rename(columns={"vehicles": "simulated"})
    counts = counts.assign(edge_id=counts["edge_id"].astype(str), hour=counts["hour"].astype(int))
    frame = observed.assign(edge_id=observed["edge_id"].astype(str), hour=observed["hour"].astype(int))
    paired = frame.merge(counts, on=["edge_id", "hour"], how="left")
    paired["simulated"] = paired["simulated"].fillna(0.0).astype(float)
    return paired


def _fit(observed: pd.DataFrame, outcome: SeedOutcome) -> Fit:
    paired = _paired(observed, outcome)
    return fit(paired["observed"], paired["simulated"])


def _scatter(observed: pd.DataFrame, prior: SeedOutcome, after: SeedOutcome) -> list[dict[str, Any]]:
    """Per site-hour: observed, simulated before and after (the scatter the report draws)."""
    frame = _paired(observed, prior).rename(columns={"simulated": "before"})
    frame["after"] = _paired(observed, after)["simulated"].to_numpy()
    return [
        {
            "site": str(r["site"]),
            "edge_id": str(r["edge_id"]),
            "hour": int(r["hour"]),
            "observed": float(r["observed"]),
            "before": float(r["before"]),
            "after": float(r["after"]),
        }
        for r in frame.to_dict("records")
    ]


def statement(before: Fit, after: Fit, converged: bool, folds: dict[str, Any]) -> str:
    """The fit in words: the DMRB criterion met or not, before and after, and on held-back sites."""
    verdict = "meets" if after.meets_dmrb else "does not meet"
    text = (
        f"After calibration GEH < 5 holds at {after.share_geh_ok:.0%} of {after.site_hours} count "
        f"site-hours ({before.share_geh_ok:.0%} before): the model {verdict} the DMRB / TAG M3.1 "
        f"criterion of {DMRB_SHARE:.0%}."
    )
    held = folds.get("held_back_after")
    if held:
        text += (
            f" On sites held back from the calibration (k-fold) GEH < 5 holds at "
            f"{held['share_geh_ok']:.0%} of {held['site_hours']} site-hours "
            f"({folds['held_back_before']['share_geh_ok']:.0%} before)."
        )
    else:
        text += f" No held-back validation: {folds.get('note', 'no folds')}."
    if not converged:
        text += (
            " The calibration did not converge: its last update still changed an OD factor by more than 5 %."
        )
    return text


def save_record(twin_dir: Path, record: dict[str, Any]) -> Path:
    """Write ``record`` as the next version (``calibration-NNN.json``) under the twin; returns its path."""
    folder = twin_dir / RECORDS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    taken = [int(m.group(1)) for p in folder.iterdir() if (m := _RECORD_NAME.fullmatch(p.name))]
    version = max(taken, default=0) + 1
    path = folder / f"calibration-{version:03d}.json"
    record = {"id": path.stem, "version": version, **record}
    text = json.dumps(_plain(record), indent=2, ensure_ascii=False, allow_nan=False)
    durable.write_text(path, text)
    return path


def latest_record(twin_dir: Path) -> dict[str, Any] | None:
    """The twin's latest calibration record, or None when it has none."""
    folder = twin_dir / RECORDS_DIR
    if not folder.is_dir():
        return None
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _RECORD_NAME.fullmatch(p.name)))
    if not found:
        return None
    path = found[-1][1]
    try:
        record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        record["od_factors"] = [(str(o), str(d), float(f)) for o, d, f in record["od_factors"]]
        record["count_edges"] = [str(e) for e in record["count_edges"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EngineError(f"unreadable calibration record: {exc}", path=path) from None
    return record


def with_calibration(params: TrafficParams, twin_dir: Path) -> TrafficParams:
    """``params`` with the twin's latest calibration (its OD factors and counting edges) applied."""
    record = latest_record(twin_dir)
    if record is None:
        return params
    return params.model_copy(
        update={
            "od_factors": tuple(record["od_factors"]),
            "count_edges": tuple(record["count_edges"]),
            "calibration_record": str(record["id"]),
        }
    )


def _plain(value: Any) -> Any:
    """``value`` as strict JSON data: NaN as null, numpy scalars as Python ones, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
