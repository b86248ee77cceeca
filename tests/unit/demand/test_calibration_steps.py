"""The calibration's steps: demand grows on the routes through short counts, a step is bounded, and
a step that gridlocks is halved and retried instead of ending the calibration."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from traffic_tiny_twin import PARAMS, tiny_inputs

from civictwin.engines.traffic.calibration import (
    Calibrated,
    Factors,
    _calibrate,
    _checked,
    _simulate,
    statement,
    take_step,
    update_factors,
    within_growth,
)
from civictwin.engines.traffic.demand import DemandParams, trip_pair
from civictwin.engines.traffic.fit import fit
from civictwin.engines.traffic.prepare import PreparedScenario, prepare_scenario
from civictwin.engines.traffic.simulate import SeedOutcome
from civictwin.engines.traffic.sites import CalibrationSettings
from civictwin.errors import QualityCheckFailed
from civictwin.scenarios.spec import Scenario


def _prior(tmp_path: Path) -> tuple[PreparedScenario, SeedOutcome]:
    """The tiny twin's baseline counted on every third directed edge, simulated once (factors 1)."""
    inputs = tiny_inputs(tmp_path)
    counted = tuple(sorted(inputs.edges["edge_id"].astype(str)))[::3]
    params = PARAMS.model_copy(
        update={
            "iterations": 1,
            "demand": DemandParams(scale=4.0, distance="crowfly"),
            "count_edges": counted,
            "calibration": CalibrationSettings(folds=2, max_iterations=1, seed=3),
        }
    )
    prepared = prepare_scenario(inputs, Scenario.baseline_scenario(), tmp_path / "net", params)
    return prepared, _simulate(prepared, Factors(), 7, tmp_path / "prior")


def _observed(outcome: SeedOutcome, *, short: str, missing: float) -> pd.DataFrame:
    """The run's own first-hour counts as observations, with ``missing`` vehicles more at ``short``."""
    first = outcome.counts[outcome.counts["hour"] == 0]
    observed = first["vehicles"].astype(float) + np.where(first["edge_id"] == short, missing, 0.0)
    return pd.DataFrame(
        {"site": "s/" + first["edge_id"], "edge_id": first["edge_id"], "hour": 0, "observed": observed}
    )


def _pairs_at(prepared: PreparedScenario, outcome: SeedOutcome, edges: set[str]) -> set[tuple[str, str]]:
    """The base matrix's OD pairs whose trips the run counted at any of ``edges`` in hour 0."""
    seen = outcome.passages[outcome.passages["edge_id"].isin(edges) & (outcome.passages["hour"] == 0)]
    zones = prepared.layers[0].od.zones
    ids = [t for t in seen["trip_id"].astype(str) if t.startswith("t")]
    return {(zones[i], zones[j]) for i, j in map(trip_pair, ids)}


def test_the_update_grows_demand_only_on_the_pairs_that_pass_the_short_site(tmp_path: Path) -> None:
    prepared, prior = _prior(tmp_path)
    busiest = prior.passages[prior.passages["hour"] == 0]["edge_id"].value_counts()
    short = str(busiest.index[0])  # the counted edge most trips pass: the one observed short
    observed = _observed(prior, short=short, missing=float(busiest.iloc[0]))  # twice its simulated count
    through_short = _pairs_at(prepared, prior, {short})
    elsewhere = _pairs_at(prepared, prior, set(observed["edge_id"])) - through_short

    updated = update_factors(prepared, prior, observed, Factors(), prior_weight=1.0, gateway_prior_weight=1.0)

    assert len(through_short) == 8 and len(elsewhere) == 7  # the case has both kinds of pairs
    assert all(updated.od[p] > 1.0 for p in through_short)  # demand grows where the count is short
    assert max(updated.od[p] for p in through_short) > 1.15
    # and nowhere else: the pairs seen only at matched sites give way to the growth passing them
    assert all(updated.od[p] < 1.0 for p in elsewhere)
    unseen = {(o, d) for o in prepared.layers[0].od.zones for d in prepared.layers[0].od.zones}
    assert not (unseen - through_short - elsewhere) & set(updated.od)  # pairs no count saw keep 1


def test_the_update_is_bounded_by_the_demand_growth_it_may_add(tmp_path: Path) -> None:
    prepared, prior = _prior(tmp_path)
    busiest = prior.passages[prior.passages["hour"] == 0]["edge_id"].value_counts()
    observed = _observed(prior, short=str(busiest.index[0]), missing=10 * float(busiest.iloc[0]))
    free = update_factors(prepared, prior, observed, Factors(), prior_weight=0.01, gateway_prior_weight=0.01)
    bounded = update_factors(
        prepared, prior, observed, Factors(), prior_weight=0.01, gateway_prior_weight=0.01, max_growth=0.05
    )
    # the bounded step points the same way, shortened to the same share for every pair
    shares = {p: (bounded.od[p] - 1.0) / (free.od[p] - 1.0) for p in free.od if abs(free.od[p] - 1.0) > 1e-3}
    assert shares and max(shares.values()) == pytest.approx(min(shares.values()), rel=1e-9)
    assert 0.0 < next(iter(shares.values())) < 1.0


def test_within_growth_shortens_the_step_to_the_allowed_trips() -> None:
    # one pair of 10 car trips would go from factor 1 to 3 (+20 trips); 40 trips × 0.25 allow +10
    solved, current, trips_at_1 = np.array([3.0, 1.0]), np.array([1.0, 1.0]), np.array([10.0, 10.0])
    assert within_growth(solved, current, trips_at_1, trips=40.0, max_growth=0.25).tolist() == [2.0, 1.0]
    assert within_growth(solved, current, trips_at_1, trips=80.0, max_growth=0.25).tolist() == [3.0, 1.0]
    assert within_growth(solved, current, trips_at_1, trips=40.0, max_growth=None).tolist() == [3.0, 1.0]
    fewer = np.array([0.5, 1.0])  # reductions cannot gridlock: never limited
    assert within_growth(fewer, current, trips_at_1, trips=40.0, max_growth=0.01).tolist() == [0.5, 1.0]


def test_a_step_that_fails_the_quality_check_is_halved_and_retried() -> None:
    tried: list[float] = []

    def simulate(factors: Factors) -> SeedOutcome:
        tried.append(factors.od[("a", "b")])
        if factors.od[("a", "b")] > 2.0:
            raise QualityCheckFailed("900 of 1,000 trips did not arrive by 5400 s")
        return "ran"  # type: ignore[return-value]  # the step only passes the outcome on

    proposal = Factors(od={("a", "b"): 5.0})
    stepped = take_step(simulate, Factors(), proposal, retries=2)
    assert tried == [5.0, 3.0, 2.0]  # 1 + 4, then 1 + 4/2, then 1 + 4/4
    assert (stepped.factors.od, stepped.outcome, stepped.halvings) == ({("a", "b"): 2.0}, "ran", 2)

    tried.clear()
    failed = take_step(simulate, Factors(), proposal, retries=1)
    assert tried == [5.0, 3.0]
    assert failed.outcome is None and failed.factors == Factors() and failed.halvings == 2
    assert failed.failure is not None and "did not arrive" in failed.failure


def test_the_loop_goes_on_with_the_halved_step_after_a_gridlock(tmp_path: Path) -> None:
    prepared, prior = _prior(tmp_path)
    busiest = prior.passages[prior.passages["hour"] == 0]["edge_id"].value_counts()
    observed = _observed(prior, short=str(busiest.index[0]), missing=3 * float(busiest.iloc[0]))
    attempts: list[float] = []

    def simulate(factors: Factors) -> SeedOutcome:
        largest = max(factors.od.values())
        attempts.append(largest)
        if len(attempts) == 1:  # the full step "gridlocks"
            raise QualityCheckFailed("500 teleports for 600 trips exceed the allowed share 5%")
        return _simulate(prepared, factors, 7, tmp_path / f"run_{len(attempts)}")

    settings = CalibrationSettings(max_iterations=1, prior_weight=0.01, max_demand_growth=2.0, step_retries=2)
    result = _calibrate(prepared, prior, observed, settings, simulate)

    assert len(attempts) == 2 and attempts[1] == pytest.approx(1.0 + (attempts[0] - 1.0) / 2)
    assert result.halvings == 1 and result.stopped is None
    assert max(result.factors.od.values()) == pytest.approx(attempts[1])
    assert len(result.shares) == 2  # the prior and the halved step's run


def test_a_check_run_that_gridlocks_is_halved_and_the_statement_says_so() -> None:
    tried: list[float] = []

    def simulate(factors: Factors) -> SeedOutcome:
        tried.append(factors.od[("a", "b")])
        if factors.od[("a", "b")] > 2.0:
            raise QualityCheckFailed("300 teleports for 5,000 trips exceed the allowed share 5%")
        return "checked"  # type: ignore[return-value]  # the check only passes the outcome on

    fitted = Calibrated(Factors(od={("a", "b"): 5.0}), "loop", [0.0, 0.6], converged=False, halvings=1)  # type: ignore[arg-type]
    prepared = SimpleNamespace(params=SimpleNamespace(iterations=3))
    checked = _checked(prepared, "prior", fitted, CalibrationSettings(step_retries=2), simulate)  # type: ignore[arg-type]
    assert tried == [5.0, 3.0, 2.0]  # the fitted factors, then 1 + 4/2, then 1 + 4/4
    assert (checked.outcome, checked.factors.od, checked.check_halvings, checked.halvings) == (
        "checked", {("a", "b"): 2.0}, 2, 3,
    )  # fmt: skip
    none = fit([], [])
    words = statement(none, none, False, {"note": "x"}, check_halvings=checked.check_halvings)
    assert "was halved 2 time(s) toward the prior" in words and "25% of the way" in words
    assert "halved" not in statement(none, none, False, {"note": "x"})


def test_the_recorded_base_day_is_the_check_runs_own_when_the_check_run_was_halved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import civictwin.engines.traffic.calibration as calibration

    def utilities(service: str, choice: str) -> dict[str, str]:
        return {"car": f"U({service})"}

    monkeypatch.setattr(calibration, "utilities", utilities)
    prepared = SimpleNamespace(
        params=SimpleNamespace(mode_choice="logit"),
        layers=[SimpleNamespace(od=SimpleNamespace(zones=("a", "b")))],
        free_flow="free flow",
    )

    def run(name: str) -> SeedOutcome:
        return SimpleNamespace(mode_shares={"car": f"shares of {name}"}, service=name)  # type: ignore[return-value]

    prior, loop, check = run("prior"), run("loop"), run("check")
    fitted = Calibrated(Factors(od={("a", "b"): 5.0}), loop, [0.0, 0.6], converged=False)
    as_loop = dataclasses.replace(fitted, outcome=check)  # the check run at the loop's factors
    halved = dataclasses.replace(
        fitted, factors=Factors(od={("a", "b"): 2.0}), outcome=check, check_halvings=2
    )
    kept_prior = dataclasses.replace(fitted, factors=Factors(), outcome=prior, check_halvings=3)

    day = calibration.recorded_base_day(prepared, prior, fitted, as_loop)  # type: ignore[arg-type]
    assert day is not None
    # the shares the loop held (the prior run's) at the loop's last service
    assert (day.shares, day.utility, day.free_flow_utility, day.zones) == (
        {"car": "shares of prior"}, {"car": "U(loop)"}, {"car": "U(free flow)"}, ("a", "b"),
    )  # fmt: skip
    day = calibration.recorded_base_day(prepared, prior, fitted, halved)  # type: ignore[arg-type]
    assert day is not None and (day.shares, day.utility) == ({"car": "shares of check"}, {"car": "U(check)"})
    assert calibration.recorded_base_day(prepared, prior, fitted, kept_prior) is None  # type: ignore[arg-type]
