"""Calibrating a twin's traffic demand to its counts, validated on held-back sites, as a versioned record.

The method (docs/methods-calibration.md): the base person-trip matrix gets one factor per origin-
destination pair and, with ``[gateways]`` enabled, one factor per cell of the gateway matrix (each
gateway to each zone and to each other gateway, each zone to each gateway: traffic from outside the
area), estimated together by generalised least squares against the
counts and the prior (Cascetta & Nguyen 1988) and iterated with the simulation. The gateways' prior
flows come from counts on the gateway roads where they exist, else from the stated defaults. Each SUMO run tells, for every count
site-hour, how many vehicles of each pair it saw (SUMO's vehroute output); holding those paths fixed,
a count is linear in the factors, so each update is a bounded linear least-squares problem
(``scipy.optimize.lsq_linear``); the next run re-routes with the new demand. Each step is bounded (at
most ``max_demand_growth`` × the run's car trips added, shortened along its direction), a step whose
run fails the engine's quality check is halved and retried, and the loop's runs hold the prior run's
mode split fixed; with mode-choice feedback a final check run simulates the result as later runs will.
The sites are also split k-fold: each fold is calibrated without its held-back sites and scored on
them, the folds' loops side by side in threads.

The record (``<twin>/calibration/calibration-NNN.json``) keeps the inputs, the method and its
parameters, the factors, the fit before and after on the sites used and on the held-back sites, the
runs, and a statement in words of whether the fit meets the DMRB criterion; every later traffic run of
the twin uses the latest record (:func:`with_calibration`) and names it in its parameters.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from civictwin import durable
from civictwin.config import load_config
from civictwin.engines.traffic.demand import trip_pair
from civictwin.engines.traffic.fit import DMRB_SHARE, Fit, fit, kfold_sites
from civictwin.engines.traffic.gateways import (
    GATEWAY_PREFIX,
    IN,
    OUT,
    STATED_DEFAULT,
    GatewayCount,
    GatewayDemand,
    GatewayFlag,
    GatewayFlow,
    cell_kind,
    find_gateways,
    fitted_flows,
    gateway_flows,
    road_edges,
    scaled_demand,
)
from civictwin.engines.traffic.inputs import TwinInputs, load_twin
from civictwin.engines.traffic.modechoice import MODES, Mode, ModeChoiceParams, utilities
from civictwin.engines.traffic.modesplit import METHOD as SPLIT_METHOD
from civictwin.engines.traffic.modesplit import (
    ObservedSplit,
    SplitCalibration,
    calibrate_split,
    check_producible,
    producible_modes,
    split_record,
    with_constants,
)
from civictwin.engines.traffic.params import TrafficParams, load_params
from civictwin.engines.traffic.pivot import BaseModes
from civictwin.engines.traffic.prepare import PreparedScenario, prepare_scenario, with_od_factors
from civictwin.engines.traffic.simulate import FirstRound, SeedOutcome, first_round_of, simulate_seed
from civictwin.engines.traffic.sites import CalibrationSettings, CountSites, load_count_sites, no_site
from civictwin.engines.traffic.warmup import original_id
from civictwin.errors import EngineError, QualityCheckFailed
from civictwin.scenarios.spec import Scenario
from civictwin.store.observations import has_observations

RECORDS_DIR = "calibration"
METHOD = (
    "origin-destination factors by generalised least squares against the counts and the prior matrix "
    "(Cascetta & Nguyen 1988, Transportation Research B 22(6):437-455), iterated with SUMO "
    "(assignment re-simulated after each update), solved with scipy.optimize.lsq_linear"
)
GATEWAY_METHOD = (
    "; gateway flows (one factor per gateway and zone and per pair of gateways, on a prior from counts on "
    "the gateway roads or the stated defaults) estimated jointly as further unknowns, bounded by the "
    "gateway road's capacity"
)
MAX_FACTOR = 10.0
"""Upper bound of an OD factor: a pair may grow tenfold at most in one calibration."""
CONVERGED_CHANGE = 0.05
"""The loop has converged when the last update changed no factor by more than this share."""
NO_COUNTS = (
    "No usable count site: the demand is not calibrated to counts, only the mode choice's constants to "
    "the observed modal split (see `civictwin calibrate sites`)."
)
BASE_PREFIX = "t"
"""Trip ids of the base demand layer (events have their own prefixes and are not calibrated)."""

Pair = tuple[str, str]
Cell = tuple[str, str]
"""A cell of the gateway matrix: (start, end), ``in:<node>`` or a zone to ``out:<node>`` or a zone."""
ModeShares = dict[Mode, np.ndarray]
"""Each mode's share of every OD pair (what the loop's simulations hold fixed)."""
Step = Callable[[str], None]
"""Progress: told a short text before each simulation."""


@dataclass(frozen=True)
class Factors:
    """The unknowns of a calibration: OD factors on the base matrix and factors on the cells of the
    gateway matrix (both 1 where absent)."""

    od: dict[Pair, float] = dataclasses.field(default_factory=dict)
    gateways: dict[Cell, float] = dataclasses.field(default_factory=dict)

    def largest_change(self, earlier: Factors) -> float:
        """The largest relative change of any factor from ``earlier`` (a factor near 0 counts from 0.1)."""
        pairs = [(f, earlier.od.get(p, 1.0)) for p, f in self.od.items()]
        pairs += [(f, earlier.gateways.get(g, 1.0)) for g, f in self.gateways.items()]
        return max((abs(new - old) / max(old, 0.1) for new, old in pairs), default=0.0)

    def toward(self, target: Factors, share: float) -> Factors:
        """The factors ``share`` (0–1) of the way from these to ``target`` (absent factors are 1)."""

        def between(mine: dict[Any, float], theirs: dict[Any, float]) -> dict[Any, float]:
            return {
                key: mine.get(key, 1.0) + share * (theirs.get(key, 1.0) - mine.get(key, 1.0))
                for key in mine.keys() | theirs.keys()
            }

        return Factors(od=between(self.od, target.od), gateways=between(self.gateways, target.gateways))


Simulate = Callable[[Factors], SeedOutcome]
"""One simulation of the baseline with the given factors."""


@dataclass(frozen=True)
class Calibrated:
    """One calibration over a set of sites: its factors, its last simulation and how it went."""

    factors: Factors
    outcome: SeedOutcome
    shares: list[float]
    """Share of the fitted site-hours with GEH < 5 after each run (the prior run first)."""
    converged: bool
    halvings: int = 0
    """Steps halved because their simulation failed the engine's quality check."""
    stopped: str | None = None
    """Why the loop stopped before ``max_iterations`` (a step failed even when halved), or None."""
    check_halvings: int = 0
    """Halvings of the check run (:func:`_checked`): the factors it reports are then only
    ``0.5 ** check_halvings`` of the way from the prior to what the loop fitted."""
    check_reused_first_round: bool = False
    """The check run took the loop's last run as its first mode-choice round (:func:`_checked`), so it
    simulated ``iterations`` − 1 rounds of SUMO."""


def twin_count_sites(twin_dir: Path, params: TrafficParams | None = None) -> CountSites:
    """The count sites of the twin in ``twin_dir``, checked against its network and its
    ``[calibration]`` settings (``traffic.toml``), over the simulated demand window."""
    params = params or load_params(twin_dir)
    config = load_config(twin_dir)
    inputs = load_twin(twin_dir)
    return load_count_sites(config, inputs.edges, params.calibration, window_hours=window_hours(params))


def window_hours(params: TrafficParams) -> int:
    """Whole clock hours the demand window covers (a count is compared per hour)."""
    return max(1, math.ceil(params.demand_window_s / 3600.0 - 1e-9))


def calibrate_twin(twin_dir: Path, *, on_step: Step | None = None) -> tuple[Path, dict[str, Any]]:
    """Calibrate the twin in ``twin_dir`` to its counts and, with a ``[modal_split]`` in its
    ``twin.toml``, its mode-choice constants to that split; returns the record's path and the record."""
    params = load_params(twin_dir)
    config = load_config(twin_dir)
    section = config.modal_split
    no_counts = section is not None and not has_observations(config)
    sites = no_site() if no_counts else twin_count_sites(twin_dir, params)
    inputs = load_twin(twin_dir)
    folder = twin_dir / RECORDS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    split = ObservedSplit.from_config(section) if section is not None else None
    with tempfile.TemporaryDirectory(prefix=".work-", dir=folder) as work:
        record = calibrate(inputs, sites, params, Path(work), on_step=on_step, split=split)
    return save_record(twin_dir, record), record


def calibrate(
    inputs: TwinInputs,
    sites: CountSites,
    params: TrafficParams,
    workdir: Path,
    *,
    on_step: Step | None = None,
    split: ObservedSplit | None = None,
) -> dict[str, Any]:
    """Calibrate the baseline demand of ``inputs`` to the used ``sites``; the record as plain JSON.

    With an observed modal ``split`` the mode-choice constants are calibrated to it first
    (:mod:`~civictwin.engines.traffic.modesplit`) and every later simulation uses them; the run the
    split calibration kept is the prior run of the count calibration.

    Without a usable count site only the split is calibrated (a record without OD factors that says
    the demand is not calibrated to counts). Raises :class:`EngineError` when no site is usable and
    no split is given, :class:`~civictwin.errors.ConfigError` when the split gives a share to a mode
    the twin cannot produce (or none to one it produces), both before any simulation. The record says
    plainly when the fit does not meet the DMRB criterion or a loop did not converge; it is never
    stored as better than it is.
    """
    started = time.perf_counter()
    settings = params.calibration
    observed = sites.window(settings, window_hours(params))
    if observed.empty and split is None:
        raise EngineError(
            "no usable count site in the simulated hours (see `civictwin calibrate sites`)",
            field="calibration",
        )
    edges = tuple(sorted(set(observed["edge_id"].astype(str))))
    flows, flags = counted_gateway_flows(inputs.edges, sites, params)
    base = params.model_copy(
        update={
            "od_factors": (),
            "count_edges": edges,
            "calibration_record": None,
            "gateway_flows": tuple(flows),
        }
    )
    prepared = prepare_scenario(inputs, Scenario.baseline_scenario(), workdir / "network", base)
    if split is not None:
        check_producible(split, producible_modes(prepared.free_flow, prepared.person_trips, base.mode_choice))
    step: Step = on_step or (lambda text: None)
    runs = [0]
    counting = threading.Lock()

    def simulate_prepared(
        target: PreparedScenario,
        factors: Factors,
        fixed_shares: ModeShares | None = None,
        first_round: FirstRound | None = None,
    ) -> SeedOutcome:
        with counting:
            runs[0] += 1
            number = runs[0]
        step(f"simulation {number}")
        folder = workdir / f"run_{number}"
        return _simulate(
            target, factors, settings.seed, folder, fixed_shares=fixed_shares, first_round=first_round
        )

    mode_fit = None
    if split is not None:
        mode_fit = _fit_split(prepared, split, simulate_prepared)
        prepared = _with_mode_choice(prepared, mode_fit.params)
        if observed.empty:
            return _split_only_record(mode_fit, sites, base, started=started, runs=runs[0], flags=flags)
    prior = mode_fit.outcome if mode_fit is not None else simulate_prepared(prepared, Factors())
    calibrated_base = base.model_copy(update={"mode_choice": prepared.params.mode_choice})
    # the loop's simulations hold the prior run's mode split fixed: one SUMO run each (section 3)
    inner = dataclasses.replace(prepared, params=prepared.params.model_copy(update={"iterations": 1}))

    def simulate(factors: Factors) -> SeedOutcome:
        return simulate_prepared(inner, factors, prior.mode_shares)

    used = sorted(set(observed["site"]))
    k = min(settings.folds, len(used))
    chains = 1 + (k if k >= 2 else 0)
    with ThreadPoolExecutor(max_workers=max(1, min(chains, os.cpu_count() or 1))) as pool:
        pending = pool.submit(_calibrate, prepared, prior, observed, settings, simulate)
        fold_runs = _start_folds(prepared, prior, observed, used, settings, simulate, pool=pool)
        full = pending.result()
        base_modes = base_day(prepared, prior, full)
        pivoting = dataclasses.replace(
            prepared, params=prepared.params.model_copy(update={"base_modes": base_modes})
        )
        # the check run needs only the calibration on all sites: it runs while the folds finish
        checked = _checked(
            prepared,
            prior,
            full,
            settings,
            lambda f: simulate_prepared(pivoting, f),
            resume=lambda f: simulate_prepared(pivoting, f, first_round=first_round_of(full.outcome)),
        )
        folds = _fold_results(fold_runs, prior, observed, used)
    recorded_day = recorded_base_day(prepared, prior, full, checked)
    before, after = _fit(observed, prior), _fit(observed, checked.outcome)
    gateways = prepared.gateways
    mode_choice = _split_part(mode_fit, base, final_split=checked.outcome.modal_split) if mode_fit else None
    full = checked
    fit_statement = statement(
        before, after, full.converged, folds, stopped=full.stopped, check_halvings=full.check_halvings
    )
    return {
        "method": METHOD
        + (GATEWAY_METHOD if gateways is not None else "")
        + (f"; first the {SPLIT_METHOD}" if mode_choice else ""),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": {
            **settings.model_dump(mode="json"),
            "max_factor": MAX_FACTOR,
            "gateway_prior": [f.model_dump(mode="json") for f in flows],
            "converged_change": CONVERGED_CHANGE,
            "traffic": calibrated_base.model_dump(
                mode="json", exclude={"calibration", "count_edges", "gateway_flows"}
            ),
        },
        "inputs": {
            "sites": sites.sites.to_dict("records"),
            "used_sites": used,
            "site_hours": len(observed),
            # per gateway, where its prior flows came from: counts, the regional model (its twin and
            # that twin's store version) or stated defaults
            "gateway_sources": prepared.gateways.sources() if prepared.gateways is not None else [],
        },
        "count_edges": list(edges),
        "od_factors": [[o, d, round(f, 6)] for (o, d), f in sorted(full.factors.od.items())],
        "gateway_factors": [[s, e, round(f, 6)] for (s, e), f in sorted(full.factors.gateways.items())],
        "gateway_flows": _fitted_flows(gateways, full.factors),
        "gateway_flags": [dataclasses.asdict(f) for f in flags],
        "fit_before": before.as_dict(),
        "fit_after": after.as_dict(),
        "shares_by_run": [round(s, 4) for s in full.shares],
        "converged": full.converged,
        "max_demand_growth": settings.max_demand_growth,
        "halved_steps": full.halvings,
        "check_halved_steps": full.check_halvings,
        "check_first_round_reused": full.check_reused_first_round,
        "stopped": full.stopped,
        "kfold": folds,
        "scatter": _scatter(observed, prior, full.outcome),
        "mode_choice": mode_choice,
        "base_modes": recorded_day.as_record() if recorded_day is not None else None,
        "simulation_runs": runs[0],
        "wall_s": round(time.perf_counter() - started, 2),
        "statement": fit_statement + (" " + mode_choice["statement"] if mode_choice else ""),
    }


def _fit_split(
    prepared: PreparedScenario,
    split: ObservedSplit,
    simulate: Callable[[PreparedScenario, Factors], SeedOutcome],
) -> SplitCalibration:
    """The mode-choice constants calibrated to ``split`` with the baseline simulated (no factors)."""
    settings = prepared.params.calibration
    return calibrate_split(
        prepared.params.mode_choice,
        split,
        prepared.free_flow,
        prepared.person_trips,
        lambda choice: simulate(_with_mode_choice(prepared, choice), Factors()),
        tolerance=settings.split_tolerance,
        max_runs=settings.split_max_runs,
    )


def _split_part(
    mode_fit: SplitCalibration, base: TrafficParams, *, final_split: dict[str, float] | None
) -> dict[str, Any]:
    """The record's ``mode_choice`` part (:func:`~civictwin.engines.traffic.modesplit.split_record`)."""
    return split_record(
        mode_fit,
        before=base.mode_choice,
        tolerance=base.calibration.split_tolerance,
        max_runs=base.calibration.split_max_runs,
        final_split=final_split,
    )


def _split_only_record(
    mode_fit: SplitCalibration,
    sites: CountSites,
    base: TrafficParams,
    *,
    started: float,
    runs: int,
    flags: list[GatewayFlag],
) -> dict[str, Any]:
    """The record of a calibration with an observed split and no usable count site: the constants
    fitted, no OD or gateway factor, and a statement that says the demand is not calibrated to counts."""
    settings = base.calibration
    mode_choice = _split_part(mode_fit, base, final_split=None)
    none = fit([], []).as_dict()
    calibrated = base.model_copy(update={"mode_choice": mode_fit.params})
    return {
        "method": SPLIT_METHOD,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": {
            **settings.model_dump(mode="json"),
            "traffic": calibrated.model_dump(
                mode="json", exclude={"calibration", "count_edges", "gateway_flows"}
            ),
        },
        "inputs": {"sites": sites.sites.to_dict("records"), "used_sites": [], "site_hours": 0},
        "count_edges": [],
        "od_factors": [],
        "gateway_factors": [],
        "gateway_flows": [],
        "gateway_flags": [dataclasses.asdict(f) for f in flags],
        "fit_before": none,
        "fit_after": none,
        "shares_by_run": [],
        "converged": mode_fit.converged,
        "kfold": {"folds": [], "note": "no usable count site"},
        "scatter": [],
        "mode_choice": mode_choice,
        "simulation_runs": runs,
        "wall_s": round(time.perf_counter() - started, 2),
        "statement": f"{NO_COUNTS} {mode_choice['statement']}",
    }


def _with_mode_choice(prepared: PreparedScenario, choice: ModeChoiceParams) -> PreparedScenario:
    """``prepared`` with ``choice`` as its mode-choice parameters; only the constants may differ from
    those it was prepared with (its network and free-flow level of service do not depend on them)."""
    return dataclasses.replace(prepared, params=prepared.params.model_copy(update={"mode_choice": choice}))


@dataclass(frozen=True)
class Stepped:
    """A step simulated: the factors it reached (the proposal, or a share of it after halvings),
    their run (None when even the last halving failed the quality check) and the halvings."""

    factors: Factors
    outcome: SeedOutcome | None
    halvings: int
    failure: str | None = None
    """The quality check's message of the last failed attempt."""


def take_step(simulate: Simulate, start: Factors, proposal: Factors, *, retries: int) -> Stepped:
    """Simulate ``proposal``; when the run fails the engine's quality check (the step gridlocked the
    network), halve the step from ``start`` and try again, at most ``retries`` times (backtracking,
    as a trust region shrinks after a rejected step)."""
    share, failure = 1.0, None
    for halvings in range(retries + 1):
        factors = start.toward(proposal, share)
        try:
            return Stepped(factors, simulate(factors), halvings)
        except QualityCheckFailed as exc:
            failure = str(exc)
            share /= 2.0
    return Stepped(start, None, retries + 1, failure)


def _calibrate(
    prepared: PreparedScenario,
    prior: SeedOutcome,
    observed: pd.DataFrame,
    settings: CalibrationSettings,
    simulate: Simulate,
) -> Calibrated:
    """The loop over ``observed`` sites: update the factors from the last run, simulate, repeat; a
    step that gridlocks is halved and retried (:func:`take_step`), and when even that fails the loop
    stops with its last good factors."""
    factors = Factors()
    outcome = prior
    shares = [_fit(observed, prior).share_geh_ok]
    change, halvings = math.inf, 0
    for _ in range(settings.max_iterations):
        proposal = update_factors(
            prepared,
            outcome,
            observed,
            factors,
            prior_weight=settings.prior_weight,
            gateway_prior_weight=settings.gateway_prior_weight,
            max_growth=settings.max_demand_growth,
        )
        stepped = take_step(simulate, factors, proposal, retries=settings.step_retries)
        halvings += stepped.halvings
        if stepped.outcome is None:
            stopped = f"a step failed the quality check even when halved {settings.step_retries} times ({stepped.failure})"
            return Calibrated(factors, outcome, shares, converged=False, halvings=halvings, stopped=stopped)
        change = stepped.factors.largest_change(factors)
        factors, outcome = stepped.factors, stepped.outcome
        shares.append(_fit(observed, outcome).share_geh_ok)
    return Calibrated(factors, outcome, shares, converged=change <= CONVERGED_CHANGE, halvings=halvings)


def base_day(prepared: PreparedScenario, prior: SeedOutcome, full: Calibrated) -> BaseModes:
    """The calibrated base day later runs pivot on: the shares the loop held (the prior run's), at the
    utilities of the level of service the loop's last run showed and of the baseline's free flow."""
    return _day(prepared, prior, full.outcome)


def recorded_base_day(
    prepared: PreparedScenario, prior: SeedOutcome, full: Calibrated, checked: Calibrated
) -> BaseModes | None:
    """The base day the record keeps: None when nothing was calibrated; the check run's own day
    (its final shares at its final service) when it had to be halved, since its factors, which every
    later run simulates, are then a share of the loop's and the loop's day would be a more congested
    one than theirs; else the loop's (:func:`base_day`), which the check run pivoted on."""
    if not (checked.factors.od or checked.factors.gateways):
        return None
    if checked.check_halvings:
        return _day(prepared, checked.outcome, checked.outcome)
    return base_day(prepared, prior, full)


def _day(prepared: PreparedScenario, shares_of: SeedOutcome, service_of: SeedOutcome) -> BaseModes:
    """The mode shares of ``shares_of``'s last simulation at the utilities of ``service_of``'s."""
    assert shares_of.mode_shares is not None and service_of.service is not None  # calibration runs keep both
    choice = prepared.params.mode_choice
    return BaseModes(
        zones=prepared.layers[0].od.zones,
        shares=dict(shares_of.mode_shares),
        utility=utilities(service_of.service, choice),
        free_flow_utility=utilities(prepared.free_flow, choice),
    )


def _checked(
    prepared: PreparedScenario,
    prior: SeedOutcome,
    full: Calibrated,
    settings: CalibrationSettings,
    simulate: Simulate,
    *,
    resume: Simulate | None = None,
) -> Calibrated:
    """``full`` simulated as every later run of the twin simulates it (the mode choice evaluated again,
    ``iterations`` rounds), which gives the reported fit; with one round the loop's last run already
    is that run. A run that fails the quality check is halved toward the prior and retried; when
    that fails too, the record keeps the prior (no factor) and says so.

    At the loop's factors the check run's first round is the loop's last run again: the same shares
    (the pivot at free flow gives the held shares back, to float rounding), seed, trips and factors.
    So with ``resume`` (a simulation at given factors that takes the loop's last run as its first
    round) that attempt simulates only the later rounds; a halved attempt has other factors and is
    simulated in full by ``simulate``."""
    if prepared.params.iterations == 1 or not (full.factors.od or full.factors.gateways):
        return full
    whole = Factors().toward(full.factors, 1.0)  # take_step's first attempt: the loop's factors

    def check(factors: Factors) -> SeedOutcome:
        return resume(factors) if resume is not None and factors == whole else simulate(factors)

    stepped = take_step(check, Factors(), full.factors, retries=settings.step_retries)
    halvings = full.halvings + stepped.halvings
    if stepped.outcome is None:
        stopped = (
            "the calibrated demand failed the quality check when simulated with the mode choice "
            f"evaluated again, even when halved {settings.step_retries} times ({stepped.failure}): "
            "the prior is kept"
        )
        return Calibrated(
            Factors(),
            prior,
            full.shares,
            converged=False,
            halvings=halvings,
            stopped=stopped,
            check_halvings=stepped.halvings,
        )
    return dataclasses.replace(
        full,
        factors=stepped.factors,
        outcome=stepped.outcome,
        halvings=halvings,
        check_halvings=stepped.halvings,
        check_reused_first_round=resume is not None and stepped.factors == whole,
    )


Fold = tuple[list[str], Future[Calibrated]]
"""A fold's held-back sites and its calibration on the others, running in a pool."""


def _start_folds(
    prepared: PreparedScenario,
    prior: SeedOutcome,
    observed: pd.DataFrame,
    used: list[str],
    settings: CalibrationSettings,
    simulate: Simulate,
    *,
    pool: Executor,
) -> list[Fold]:
    """Each fold's calibration without its held-back sites, started in ``pool`` (the folds' loops run
    side by side: they are independent); none with fewer than two used sites or folds."""
    k = min(settings.folds, len(used))
    if k < 2:
        return []
    groups = kfold_sites(used, folds=k, seed=settings.seed)
    return [
        (
            held,
            pool.submit(
                _calibrate, prepared, prior, observed[~observed["site"].isin(held)], settings, simulate
            ),
        )
        for held in groups
    ]


def _fold_results(
    started: list[Fold], prior: SeedOutcome, observed: pd.DataFrame, used: list[str]
) -> dict[str, Any]:
    """Each started fold scored on its held-back sites, and pooled over the folds (waits for them)."""
    if not started:
        return {"folds": [], "note": f"{len(used)} site(s): too few to hold any back"}
    rows = []
    held_prior, held_after = [], []
    for held, future in started:
        result = future.result()
        fitted = observed[~observed["site"].isin(held)]
        back = observed[observed["site"].isin(held)]
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
                "halved_steps": result.halvings,
                "stopped": result.stopped,
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
    factors: Factors,
    *,
    prior_weight: float,
    gateway_prior_weight: float,
    max_growth: float | None = None,
) -> Factors:
    """One generalised least-squares update of the OD and gateway factors from the paths of the last run.

    Each unknown ``u`` (an OD pair of the base matrix, or a cell of the gateway matrix) has ``a[s, u]``, the
    vehicles of it the run counted at site-hour ``s`` (under factor ``g_u``; the warm-up's copies of
    its trips too, as the factor scales them as well), and ``b[s]`` is the rest of the count (event
    trips); new factors ``x`` give the count ``b[s] + Σ_u a[s, u] x_u / g_u``.
    Minimised: ``Σ_s (c_s − count_s)² / max(c_s, 1)`` (Poisson variance of a count)
    ``+ w_u Σ_u T_u (x_u − 1)²`` (``T_u`` the unknown's expected car trips in the prior, the same
    variance form; ``w_u`` is ``prior_weight`` for an OD pair, ``gateway_prior_weight`` for a gateway
    cell), with ``0 ≤ x_u ≤`` :data:`MAX_FACTOR` for an OD pair and ``0 ≤ x_u ≤``
    :func:`gateway_bounds` for a gateway cell. Unknowns no site saw keep their factor.

    With ``max_growth`` the step is a trust region on the demand: when the car trips it adds
    (``Σ_u T_u (x_u − g_u)``) exceed ``max_growth`` × the run's car trips, the step is shortened
    along its direction to that size, so the demand still grows where the counts are short.
    """
    passages = outcome.passages
    ids = passages["trip_id"].astype(str).map(original_id)  # a warm-up trip belongs to its copy's unknown
    od_seen = passages[ids.str.startswith(BASE_PREFIX)]
    zones = prepared.layers[0].od.zones
    od_keys: list[Pair] = [(zones[i], zones[j]) for i, j in map(trip_pair, od_seen["trip_id"].astype(str))]
    gateway_seen = passages[ids.str.startswith(GATEWAY_PREFIX)]
    gateway_keys: list[Cell] = []
    if prepared.gateways is not None:
        names = prepared.gateways.od.zones
        cells = (trip_pair(t) for t in gateway_seen["trip_id"].astype(str))
        gateway_keys = [(names[start], names[end]) for start, end in cells]
    pairs, flows = sorted(set(od_keys)), sorted(set(gateway_keys))
    if not pairs and not flows:
        return factors
    column = {key: n for n, key in enumerate([*pairs, *flows])}
    rows = observed[["edge_id", "hour", "observed"]].reset_index(drop=True)
    row = {(str(e), int(h)): n for n, (e, h) in enumerate(zip(rows["edge_id"], rows["hour"], strict=True))}
    a = np.zeros((len(rows), len(column)))
    for frame, keys in ((od_seen, od_keys), (gateway_seen, gateway_keys)):
        for edge, hour, key in zip(frame["edge_id"], frame["hour"], keys, strict=True):
            if (str(edge), int(hour)) in row:
                a[row[(str(edge), int(hour))], column[key]] += 1.0
    simulated = _paired(observed, outcome)["simulated"].to_numpy(dtype=float)
    background = np.maximum(simulated - a.sum(axis=1), 0.0)
    current = np.array(
        [factors.od.get(p, 1.0) for p in pairs] + [factors.gateways.get(f, 1.0) for f in flows]
    )
    counts = rows["observed"].to_numpy(dtype=float)
    weight = 1.0 / np.sqrt(np.maximum(counts, 1.0))
    prior_trips = np.concatenate(
        [prior_car_trips(prepared, outcome, pairs), prior_gateway_trips(prepared.gateways, flows)]
    )
    upper = np.concatenate(
        [np.full(len(pairs), MAX_FACTOR), gateway_bounds(prepared.gateways, prepared.edges, flows)]
    )
    weights = np.concatenate([np.full(len(pairs), prior_weight), np.full(len(flows), gateway_prior_weight)])
    design = np.vstack(
        [
            (a / np.where(current > 0, current, 1.0)) * weight[:, None],
            np.diag(np.sqrt(weights * prior_trips)),
        ]
    )
    target = np.concatenate([(counts - background) * weight, np.sqrt(weights * prior_trips)])
    # imported here: scipy.optimize takes ~0.3 s to import, which every seed worker would pay on start
    # (it imports this module for the records) although only a calibration solves anything
    from scipy.optimize import lsq_linear

    solved = lsq_linear(design, target, bounds=(np.zeros(len(column)), upper), method="bvls")
    values = [
        float(x)
        for x in within_growth(
            solved.x, current, prior_trips, trips=float(outcome.kpis.get("trips", 0.0)), max_growth=max_growth
        )
    ]
    return Factors(
        od={**factors.od, **dict(zip(pairs, values[: len(pairs)], strict=True))},
        gateways={**factors.gateways, **dict(zip(flows, values[len(pairs) :], strict=True))},
    )


def within_growth(
    solved: np.ndarray,
    current: np.ndarray,
    prior_trips: np.ndarray,
    *,
    trips: float,
    max_growth: float | None,
) -> np.ndarray:
    """Factors ``solved`` moved back along the step from ``current`` until the car trips the step
    adds (``prior_trips`` · (solved − current), ``prior_trips`` each unknown's car trips at factor 1)
    are at most ``max_growth`` × ``trips`` (the last run's car trips); unchanged without a limit or
    when within it."""
    added = float(np.dot(prior_trips, solved - current))
    allowed = (max_growth or 0.0) * trips
    if max_growth is None or added <= allowed:
        return solved
    shortened: np.ndarray = current + (solved - current) * (allowed / added)
    return shortened


def prior_car_trips(prepared: PreparedScenario, outcome: SeedOutcome, pairs: Sequence[Pair]) -> np.ndarray:
    """Expected car trips of each pair in the prior matrix: person trips × the run's car share ÷ occupancy."""
    od = prepared.layers[0].od
    index = {z: i for i, z in enumerate(od.zones)}
    per_car = outcome.modal_split.get("car", 0.0) / prepared.params.mode_choice.car_occupancy
    return np.array([od.trips[index[o], index[d]] * per_car for o, d in pairs])


def prior_gateway_trips(gateways: GatewayDemand | None, cells: Sequence[Cell]) -> np.ndarray:
    """Vehicles of each gateway cell in the prior over the demand window (its partial last hour in part)."""
    if gateways is None or not cells:
        return np.zeros(len(cells))
    od = gateways.od
    index = {name: i for i, name in enumerate(od.zones)}
    return np.array([od.trips[index[start], index[end]] for start, end in cells])


def gateway_bounds(gateways: GatewayDemand | None, edges: pd.DataFrame, cells: Sequence[Cell]) -> np.ndarray:
    """Upper bound of each gateway cell's factor: its gateway road's capacity over the prior's busiest
    hour on that road (the inbound and through cells of a gateway share the edge into the area, the
    outbound ones the edge out, so all at their bound fill it), at least 1 (the prior itself stays
    admissible). The road, not a multiple of an assumed default, limits a gateway's traffic;
    :data:`MAX_FACTOR` only where the road's capacity is unknown."""
    if gateways is None or not cells:
        return np.zeros(len(cells))
    capacity = dict(zip(edges["edge_id"].astype(str), edges["capacity_vph"].astype(float), strict=True))
    by_node = {f.node: f for f in gateways.flows}
    bounds = []
    for cell in cells:
        node, kind = cell_kind(cell)
        flow = by_node[node]
        if kind == "outbound":
            edge, peak = gateways.edges_by_zone.get(OUT + node, [""])[0], max(flow.outbound_vph)
        else:
            edge = gateways.edges_by_zone.get(IN + node, [""])[0]
            peak = max(i + t for i, t in zip(flow.inbound_vph, flow.through_vph, strict=True))
        limit = capacity.get(edge, math.nan)
        ratio = limit / peak if peak > 0 and math.isfinite(limit) else MAX_FACTOR
        bounds.append(max(1.0, ratio))
    return np.array(bounds)


def counted_gateway_flows(
    edges: pd.DataFrame, sites: CountSites, params: TrafficParams
) -> tuple[list[GatewayFlow], list[GatewayFlag]]:
    """Each gateway's flows from the used count ``sites`` on its road (else the stated defaults) over
    the demand window, and every count on a gateway road not used for it, with the reason (a site the
    calibration excludes is named with its own reasons). None without ``[gateways]`` enabled."""
    if not params.gateways.enabled:
        return [], []
    hours = window_hours(params)
    settings = params.calibration
    found = find_gateways(edges, boundary_m=params.gateways.boundary_m)
    observed = sites.window(settings, hours)
    counts = []
    for site, frame in observed.groupby("site"):
        vph = frame.set_index("hour")["observed"].reindex(range(hours)).to_numpy(dtype=float)
        heading = sites.sites.loc[sites.sites["site"] == site, "heading"]
        counts.append(
            GatewayCount(
                site=str(site),
                edge_id=str(frame["edge_id"].iloc[0]),
                heading=str(heading.iloc[0]) if len(heading) and isinstance(heading.iloc[0], str) else None,
                vph=tuple(vph),
            )
        )
    flows, flags = gateway_flows(found, counts, edges, params.gateways, hours=hours)
    on_roads = {e: g.node for g in found for e in road_edges(g, edges)}
    excluded = sites.sites[(sites.sites["status"] != "used") & sites.sites["edge_id"].isin(list(on_roads))]
    flags += [
        GatewayFlag(str(r["site"]), on_roads[str(r["edge_id"])], f"excluded as a count site: {r['reasons']}")
        for r in excluded.to_dict("records")
    ]
    return flows, flags


def _fitted_flows(gateways: GatewayDemand | None, factors: Factors) -> list[dict[str, Any]]:
    """Each gateway's inbound, through and outbound flows with the fitted cell factors applied, as
    plain JSON (what the report shows; later runs apply the cell factors themselves)."""
    if gateways is None:
        return []
    fitted = fitted_flows(gateways, scaled_demand(gateways, factors.gateways), source="fitted to the counts")
    return [f.model_dump(mode="json") for f in fitted]


def _simulate(
    prepared: PreparedScenario,
    factors: Factors,
    seed: int,
    workdir: Path,
    *,
    fixed_shares: ModeShares | None = None,
    first_round: FirstRound | None = None,
) -> SeedOutcome:
    """One seed of the baseline with ``factors`` on its base layer and its gateway flows, recording the
    passages at counts; with ``fixed_shares`` the mode split is held at them (no mode choice); with
    ``first_round`` that round is not simulated again (:func:`simulate_seed`)."""
    base, *events = prepared.layers
    scaled = with_od_factors(base.od, [(o, d, f) for (o, d), f in sorted(factors.od.items())])
    layers = (dataclasses.replace(base, od=scaled), *events)
    changed = dataclasses.replace(prepared, layers=layers)
    if prepared.gateways is not None and factors.gateways:
        changed = dataclasses.replace(changed, gateways=scaled_demand(prepared.gateways, factors.gateways))
    return simulate_seed(
        changed,
        seed,
        workdir,
        passages=True,
        fixed_shares=fixed_shares,
        keep_service=True,
        first_round=first_round,
    )


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


def statement(
    before: Fit,
    after: Fit,
    converged: bool,
    folds: dict[str, Any],
    *,
    stopped: str | None = None,
    check_halvings: int = 0,
) -> str:
    """The fit in words: the DMRB criterion met or not, before and after, and on held-back sites;
    with ``check_halvings`` that the check run could only simulate part of the fitted step."""
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
    if check_halvings and not stopped:
        share = 0.5**check_halvings
        text += (
            " The check run failed the engine's quality check at the fitted factors (the network "
            f"locked) and was halved {check_halvings} time(s) toward the prior: the fit above is of the "
            f"demand {share:.0%} of the way from the prior to what the loop fitted, and later runs use that."
        )
    if stopped:
        text += f" The calibration stopped early: {stopped}."
    elif not converged:
        text += " The calibration did not converge: its last update still changed an OD or gateway factor by more than 5 %."
    return text


def _record_versions(folder: Path, prefix: str) -> list[tuple[int, Path]]:
    """The ``<prefix>-NNN.json`` files in ``folder`` with their versions, oldest first."""
    if not folder.is_dir():
        return []
    name = re.compile(rf"{re.escape(prefix)}-(\d{{3,}})\.json")
    return sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := name.fullmatch(p.name)))


def next_record_path(twin_dir: Path, prefix: str) -> tuple[Path, int]:
    """Where the next version of the twin's ``<prefix>-NNN.json`` records goes (folder created), and
    its version: one above the highest there."""
    folder = twin_dir / RECORDS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    version = max((v for v, _ in _record_versions(folder, prefix)), default=0) + 1
    return folder / f"{prefix}-{version:03d}.json", version


def latest_record_path(twin_dir: Path, prefix: str) -> Path | None:
    """The twin's highest version of its ``<prefix>-NNN.json`` records, or None."""
    found = _record_versions(twin_dir / RECORDS_DIR, prefix)
    return found[-1][1] if found else None


def save_record(twin_dir: Path, record: dict[str, Any]) -> Path:
    """Write ``record`` as the next version (``calibration-NNN.json``) under the twin; returns its path."""
    path, version = next_record_path(twin_dir, "calibration")
    record = {"id": path.stem, "version": version, **record}
    text = json.dumps(_plain(record), indent=2, ensure_ascii=False, allow_nan=False)
    durable.write_text(path, text)
    return path


def latest_record(twin_dir: Path) -> dict[str, Any] | None:
    """The twin's latest calibration record, or None when it has none."""
    path = latest_record_path(twin_dir, "calibration")
    if path is None:
        return None
    try:
        record: Any = json.loads(path.read_text(encoding="utf-8"))
        core = _RecordCore.model_validate(record)
    except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise EngineError(f"unreadable calibration record: {_problem(exc)}", path=path) from None
    record["od_factors"] = [tuple(factor) for factor in core.od_factors]
    record["count_edges"] = list(core.count_edges)
    return dict(record)


def _as_text(value: object) -> object:
    """An integer id as text (zones and edges may be numbered); anything else as it is."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


_Id = Annotated[str, BeforeValidator(_as_text)]


class _RecordCore(BaseModel):
    """The members of a calibration record every later run reads, of the types it reads them as."""

    model_config = ConfigDict(extra="allow")

    od_factors: list[tuple[_Id, _Id, float]]
    count_edges: list[_Id]


def _problem(exc: OSError | ValueError) -> str:
    """What is wrong with a calibration record, in words: the member and the problem for a record of
    the wrong shape (``od_factors[0][2]: Input should be a valid number``)."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    problem = exc.errors()[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in problem["loc"]).lstrip(".")
    message = "expected a JSON object" if problem["type"] == "model_type" else problem["msg"]
    return f"{where}: {message}" if where else message


def with_calibration(params: TrafficParams, twin_dir: Path) -> TrafficParams:
    """``params`` with the twin's latest calibration (its OD factors, counting edges, mode-choice
    constants fitted to an observed split and, with ``[gateways]`` enabled, its gateway prior and the
    factors fitted on the gateway matrix's cells) applied. A record of an earlier version, which
    fitted one factor per gateway flow, gives its fitted flows instead; gateways no record fitted take
    their flows from the counts on their roads (:func:`with_gateway_counts`)."""
    record = latest_record(twin_dir)
    if record is None:
        return with_gateway_counts(params, twin_dir)
    base_modes = record.get("base_modes")
    fitted_constants = (record.get("mode_choice") or {}).get("constants_after") or {}
    calibrated = params.model_copy(
        update={
            "mode_choice": with_constants(
                params.mode_choice, {m: float(fitted_constants[m]) for m in MODES if m in fitted_constants}
            ),
            "od_factors": tuple(record["od_factors"]),
            "count_edges": tuple(record["count_edges"]),
            "calibration_record": str(record["id"]),
            "base_modes": BaseModes.from_record(base_modes) if base_modes else None,
        }
    )
    if not params.gateways.enabled:
        return calibrated
    cells = tuple(
        (str(start), str(end), float(f))
        for start, end, f in record.get("gateway_factors") or []
        if str(start).startswith(IN) or str(end).startswith(OUT)
    )
    if cells:
        prior = tuple(GatewayFlow.model_validate(f) for f in record["parameters"]["gateway_prior"])
        return calibrated.model_copy(update={"gateway_flows": prior, "gateway_factors": cells})
    fitted = tuple(GatewayFlow.model_validate(f) for f in record.get("gateway_flows") or [])
    if fitted:  # a record of one factor per gateway flow
        return calibrated.model_copy(update={"gateway_flows": fitted})
    return with_gateway_counts(calibrated, twin_dir)


def with_gateway_counts(params: TrafficParams, twin_dir: Path) -> TrafficParams:
    """``params`` with the flows of every gateway that has a usable count on its road (from the
    twin's observation store; :func:`counted_gateway_flows`); unchanged without ``[gateways]`` enabled
    or without an observation store."""
    if not params.gateways.enabled:
        return params
    config = load_config(twin_dir)
    if not has_observations(config):
        return params
    edges = load_twin(twin_dir).edges
    sites = load_count_sites(config, edges, params.calibration, window_hours=window_hours(params))
    flows, _ = counted_gateway_flows(edges, sites, params)
    counted = [f for f in flows if (f.inbound_source, f.outbound_source) != (STATED_DEFAULT, STATED_DEFAULT)]
    return params.model_copy(update={"gateway_flows": tuple(counted)})


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
