"""The mode choice's alternative-specific constants calibrated to an observed modal split.

A twin's ``[modal_split]`` (``twin.toml``) gives the share of its residents' trips per mode, e.g. from
a travel survey. The constants are recalibrated as Train describes (*Discrete Choice Methods with
Simulation*, 2nd ed., 2009, section 2.8 "Recalibration of constants"): predict the shares, then
``α_m ← α_m + ln(S_obs,m / S_model,m)`` for every mode, and repeat until the predicted shares are close
enough. Only differences of utility matter, so after each update every constant is shifted by the
same amount to give the reference mode (car where the split has it) its configured constant back:
the shares are those of the unshifted update.

Car times respond to how many people drive, so the predicted split comes from the simulation (SUMO
and the mode choice's feedback rounds): the update is iterated with it, as the count calibration is.
The first guess is cheap: the same update iterated on the free-flow level of service alone, with no
simulation. Method and settings: docs/methods-calibration.md, section 6.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from civictwin.config import CONFIG_FILENAME, SHARE_SUM_TOLERANCE, ModalSplitSection
from civictwin.engines.traffic.demand import OdMatrix
from civictwin.engines.traffic.modechoice import (
    MODES,
    LevelOfService,
    Mode,
    ModeChoiceParams,
    modal_split,
    mode_shares,
)
from civictwin.engines.traffic.simulate import SeedOutcome
from civictwin.errors import ConfigError

METHOD = (
    "alternative-specific constants recalibrated to the observed modal split, "
    "α_m ← α_m + ln(S_obs,m / S_model,m) for every mode, then all shifted so the reference mode keeps its "
    "constant (Train 2009, Discrete Choice Methods with Simulation, 2nd ed., section 2.8); first guess on "
    "the free-flow level of service, then iterated with the simulation (car times respond to the car share)"
)
FIELD = "modal_split.shares"
"""The ``twin.toml`` key every problem with the observed split is reported under."""
FREE_FLOW_ROUNDS = 50
"""Most updates of the first guess on the free-flow service (each a logit evaluation, no simulation)."""

Simulate = Callable[[ModeChoiceParams], SeedOutcome]
"""One simulation of the baseline with the given mode-choice parameters."""


@dataclass(frozen=True)
class ObservedSplit:
    """An observed modal split: the shares as configured, the same normalised to sum to 1, and where
    they come from."""

    given: dict[str, float]
    shares: dict[Mode, float]
    source: str

    @classmethod
    def from_config(cls, section: ModalSplitSection) -> ObservedSplit:
        """The split of a validated ``[modal_split]`` (known modes, positive shares summing to 1 within
        :data:`~civictwin.config.SHARE_SUM_TOLERANCE`), normalised to sum to exactly 1."""
        total = sum(section.shares.values())
        shares: dict[Mode, float] = {m: section.shares[m] / total for m in MODES if m in section.shares}
        return cls(given=dict(section.shares), shares=shares, source=section.source)


@dataclass(frozen=True)
class SplitRun:
    """One simulation of the calibration: the constants it used and the split it produced."""

    constants: dict[Mode, float]
    modelled: dict[Mode, float]
    gap: float
    """Largest absolute difference between the modelled and the observed share of any mode."""


@dataclass(frozen=True)
class SplitCalibration:
    """The outcome: the constants kept (those of the run closest to the observed split), that run,
    every run, and whether the closest came within the tolerance."""

    observed: ObservedSplit
    params: ModeChoiceParams
    outcome: SeedOutcome
    runs: list[SplitRun]
    first_guess: dict[Mode, float]
    best: int
    """Index in ``runs`` of the run whose constants are kept."""
    converged: bool


def producible_modes(los: LevelOfService, od: OdMatrix, params: ModeChoiceParams) -> set[Mode]:
    """The modes the mode choice gives any trip of ``od`` under ``los``: a mode unavailable for every
    pair with trips (e.g. transit with no stop within reach of a zone) cannot be calibrated."""
    split = modal_split(od, mode_shares(los, params))
    return {mode for mode in MODES if split[mode] > 0.0}


def check_producible(observed: ObservedSplit, producible: set[Mode]) -> None:
    """Raise :class:`ConfigError` naming ``twin.toml``'s field when the observed split gives a share to
    a mode the twin cannot produce, or none to a mode it does produce."""
    impossible = [m for m in observed.shares if m not in producible]
    if impossible:
        mode = impossible[0]
        raise ConfigError(
            f"observed share {observed.given[mode]:g} for '{mode}', a mode the twin's mode choice gives no "
            f"trip (it produces {', '.join(m for m in MODES if m in producible) or 'none'})",
            path=CONFIG_FILENAME,
            field=FIELD,
        )
    missing = [m for m in MODES if m in producible and m not in observed.shares]
    if missing:
        raise ConfigError(
            f"no share for '{missing[0]}', which the twin's mode choice produces: give every mode it "
            "produces a share",
            path=CONFIG_FILENAME,
            field=FIELD,
        )


def reference_mode(observed: ObservedSplit) -> Mode:
    """The mode whose constant stays fixed: car where the split has it, else the first mode it has."""
    return "car" if "car" in observed.shares else next(iter(observed.shares))


def constants(params: ModeChoiceParams) -> dict[Mode, float]:
    """Every mode's alternative-specific constant."""
    return {mode: params.asc(mode) for mode in MODES}


def with_constants(params: ModeChoiceParams, values: Mapping[Mode, float]) -> ModeChoiceParams:
    """``params`` with the given modes' constants replaced (validated again)."""
    update = {f"asc_{mode}": float(value) for mode, value in values.items()}
    return ModeChoiceParams.model_validate({**params.model_dump(), **update})


def recalibrated(
    current: Mapping[Mode, float],
    observed: Mapping[Mode, float],
    modelled: Mapping[Mode, float],
    *,
    reference: Mode,
) -> dict[Mode, float]:
    """One update: ``α_m + ln(S_obs,m / S_model,m) − ln(S_obs,ref / S_model,ref)`` for every observed
    mode (the shift keeps the reference's constant; shares depend only on differences). Modes without
    an observed share keep their constant."""
    step = {m: math.log(observed[m] / modelled[m]) for m in observed}
    return {m: current[m] + step[m] - step[reference] if m in step else current[m] for m in current}


def split_gap(observed: Mapping[Mode, float], modelled: Mapping[Mode, float] | Mapping[str, float]) -> float:
    """Largest absolute difference between an observed share and the modelled one (shares 0–1)."""
    return max(abs(float(modelled.get(m, 0.0)) - share) for m, share in observed.items())


def fit_to_service(
    los: LevelOfService,
    od: OdMatrix,
    params: ModeChoiceParams,
    observed: ObservedSplit,
    *,
    tolerance: float,
    max_rounds: int = FREE_FLOW_ROUNDS,
) -> tuple[ModeChoiceParams, int]:
    """The constants recalibrated against a fixed level of service (the logit alone, no simulation)
    until every share is within ``tolerance`` or after ``max_rounds`` updates; with the updates made."""
    reference = reference_mode(observed)
    for done in range(max_rounds):
        modelled = modal_split(od, mode_shares(los, params))
        if split_gap(observed.shares, modelled) <= tolerance:
            return params, done
        params = with_constants(
            params, recalibrated(constants(params), observed.shares, modelled, reference=reference)
        )
    return params, max_rounds


def calibrate_split(
    params: ModeChoiceParams,
    observed: ObservedSplit,
    free_flow: LevelOfService,
    od: OdMatrix,
    simulate: Simulate,
    *,
    tolerance: float,
    max_runs: int,
) -> SplitCalibration:
    """The constants calibrated to ``observed`` with the simulation in the loop.

    The first guess fits the free-flow service (:func:`fit_to_service`); then each run simulates the
    current constants, compares the split of its person trips with the observed one and, while some
    share is off by more than ``tolerance``, updates the constants (:func:`recalibrated`) for the next
    run, at most ``max_runs`` runs. The constants kept are those of the run closest to the observed
    split (smallest largest gap): never an update no simulation has tried. Not converged when even
    that run is off by more than ``tolerance``.
    """
    reference = reference_mode(observed)
    current, _ = fit_to_service(free_flow, od, params, observed, tolerance=tolerance)
    first_guess = constants(current)
    runs: list[SplitRun] = []
    outcomes: list[SeedOutcome] = []
    for _ in range(max_runs):
        outcome = simulate(current)
        modelled: dict[Mode, float] = {m: float(outcome.modal_split.get(m, 0.0)) for m in MODES}
        gap = split_gap(observed.shares, outcome.modal_split)
        runs.append(SplitRun(constants(current), modelled, gap))
        outcomes.append(outcome)
        if gap <= tolerance:
            break
        current = with_constants(
            current, recalibrated(constants(current), observed.shares, modelled, reference=reference)
        )
    best = int(np.argmin([run.gap for run in runs]))
    return SplitCalibration(
        observed=observed,
        params=with_constants(params, runs[best].constants),
        outcome=outcomes[best],
        runs=runs,
        first_guess=first_guess,
        best=best,
        converged=runs[best].gap <= tolerance,
    )


def split_record(
    calibration: SplitCalibration,
    *,
    before: ModeChoiceParams,
    tolerance: float,
    max_runs: int,
    final_split: Mapping[str, float] | None,
) -> dict[str, Any]:
    """The record's ``mode_choice`` part: inputs, method, constants before and after, every run, and
    the observed vs modelled share per mode (in the run kept, and in the calibration's last run, after
    the count calibration changed the demand: ``final_split``; None without a count calibration)."""
    observed = calibration.observed
    kept = calibration.runs[calibration.best]
    final_gap = None if final_split is None else split_gap(observed.shares, final_split)
    return {
        "method": METHOD,
        "inputs": {
            "shares": observed.given,
            "normalised": observed.shares,
            "source": observed.source,
            "sum_tolerance": SHARE_SUM_TOLERANCE,
        },
        "parameters": {
            "reference": reference_mode(observed),
            "tolerance": tolerance,
            "max_runs": max_runs,
        },
        "constants_before": constants(before),
        "first_guess": calibration.first_guess,
        "constants_after": kept.constants,
        "runs": [
            {"constants": run.constants, "modelled": run.modelled, "gap": round(run.gap, 6)}
            for run in calibration.runs
        ],
        "kept_run": calibration.best + 1,
        "fit": [
            {
                "mode": mode,
                "observed": round(observed.shares[mode], 6) if mode in observed.shares else None,
                "modelled": round(kept.modelled[mode], 6),
                "final": None if final_split is None else round(float(final_split.get(mode, 0.0)), 6),
            }
            for mode in MODES
        ],
        "gap": round(kept.gap, 6),
        "final_gap": None if final_gap is None else round(final_gap, 6),
        "converged": calibration.converged,
        "statement": split_statement(
            kept.gap, final_gap, calibration.converged, tolerance, len(calibration.runs)
        ),
    }


def split_statement(gap: float, final_gap: float | None, converged: bool, tolerance: float, runs: int) -> str:
    """The split's fit in words (differences in percentage points): within the tolerance or not, and
    after the count calibration (``final_gap``; None without one)."""
    if converged:
        text = (
            f"The mode choice's constants reproduce the observed modal split within {tolerance * 100:g} "
            f"percentage point(s) per mode (largest difference {gap * 100:.1f}, after {runs} simulation(s))."
        )
    else:
        text = (
            f"The mode-choice constants did not converge to the observed modal split: after {runs} "
            f"simulation(s) the closest run is still {gap * 100:.1f} percentage points off in one mode "
            f"(tolerance {tolerance * 100:g})."
        )
    if final_gap is not None and final_gap > tolerance:
        text += (
            " After the calibration to the counts changed the demand, the modelled split is "
            f"{final_gap * 100:.1f} percentage points off in one mode, outside the tolerance."
        )
    return text
