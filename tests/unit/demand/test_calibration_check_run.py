"""The calibration's check run takes the loop's last run as its first mode-choice round: SUMO simulates
only the later rounds, and the outcome is the check run simulated in full, to the vehicle."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from traffic_tiny_twin import PARAMS, tiny_inputs

import civictwin.engines.traffic.simulate as simulate_module
from civictwin.engines.traffic.calibration import (
    Calibrated,
    Factors,
    _checked,
    _simulate,
    base_day,
    update_factors,
)
from civictwin.engines.traffic.demand import DemandParams
from civictwin.engines.traffic.outputs import EDGE_COLUMNS, TRIP_COLUMNS, SimResult
from civictwin.engines.traffic.prepare import PreparedScenario, prepare_scenario
from civictwin.engines.traffic.run import CarTrip
from civictwin.engines.traffic.simulate import FirstRound, SeedOutcome, first_round_of, simulate_seed
from civictwin.engines.traffic.sites import CalibrationSettings
from civictwin.errors import QualityCheckFailed
from civictwin.scenarios.spec import Scenario

SEED = 7


def _prepared(tmp_path: Path, *, iterations: int) -> PreparedScenario:
    """The calibration tests' tiny twin (4 × 4 grid, four zones), counted on every third directed edge."""
    inputs = tiny_inputs(tmp_path)
    counted = tuple(sorted(inputs.edges["edge_id"].astype(str)))[::3]
    params = PARAMS.model_copy(
        update={
            "iterations": iterations,
            "demand": DemandParams(scale=4.0, distance="crowfly"),
            "count_edges": counted,
        }
    )
    return prepare_scenario(inputs, Scenario.baseline_scenario(), tmp_path / "net", params)


def test_the_check_run_from_the_loops_last_run_gives_the_full_check_runs_counts_and_kpis(
    tmp_path: Path,
) -> None:
    prepared = _prepared(tmp_path, iterations=2)
    prior = _simulate(prepared, Factors(), SEED, tmp_path / "prior")  # the mode choice evaluated
    first = prior.counts[prior.counts["hour"] == 0]
    busiest = str(first["edge_id"].iloc[int(np.argmax(first["vehicles"]))])
    observed = pd.DataFrame(
        {
            "site": "s/" + first["edge_id"],
            "edge_id": first["edge_id"],
            "hour": 0,
            "observed": first["vehicles"] * np.where(first["edge_id"] == busiest, 2.0, 1.0),
        }
    )
    factors = update_factors(prepared, prior, observed, Factors(), prior_weight=0.1, gateway_prior_weight=0.1)
    # the loop's run: one round, the prior's shares held
    inner = dataclasses.replace(prepared, params=prepared.params.model_copy(update={"iterations": 1}))
    loop = _simulate(inner, factors, SEED, tmp_path / "loop", fixed_shares=prior.mode_shares)
    fitted = Calibrated(factors, loop, [0.0, 1.0], converged=True)
    day = base_day(prepared, prior, fitted)
    pivoting = dataclasses.replace(prepared, params=prepared.params.model_copy(update={"base_modes": day}))
    called: list[str] = []

    def simulate(f: Factors) -> SeedOutcome:
        called.append("in full")
        return _simulate(pivoting, f, SEED, tmp_path / "full")

    def resume(f: Factors) -> SeedOutcome:
        called.append("resumed")
        return _simulate(pivoting, f, SEED, tmp_path / "resumed", first_round=first_round_of(loop))

    settings = CalibrationSettings()
    whole = _checked(prepared, prior, fitted, settings, simulate)
    reused = _checked(prepared, prior, fitted, settings, simulate, resume=resume)

    assert called == ["in full", "resumed"]
    assert max(factors.od.values()) > 1.2  # the check runs simulate a demand other than the prior's
    assert reused.check_reused_first_round and not whole.check_reused_first_round
    assert (reused.check_halvings, whole.check_halvings) == (0, 0)
    full_run, resumed_run = whole.outcome, reused.outcome
    assert resumed_run.counts["vehicles"].sum() == full_run.counts["vehicles"].sum() > 100
    pd.testing.assert_frame_equal(resumed_run.counts, full_run.counts)
    pd.testing.assert_frame_equal(resumed_run.passages, full_run.passages)
    assert resumed_run.kpis == pytest.approx(full_run.kpis, rel=0.0, abs=0.0, nan_ok=True)
    assert resumed_run.car_share_by_iteration == full_run.car_share_by_iteration
    assert len(resumed_run.car_share_by_iteration) == 2
    assert resumed_run.modal_split == full_run.modal_split


def _fake_run(calls: list[tuple[str, int]]) -> Any:
    """A stand-in for SUMO: every given trip arrives after 2 minutes of 1 km; records (iteration
    folder, car trips) of each run."""

    def run_sumo(network: Any, trips: list[CarTrip], *, seed: int, workdir: Path, **_: Any) -> SimResult:
        calls.append((workdir.name, len(trips)))
        frame = pd.DataFrame({c: pd.Series(dtype=float) for c in TRIP_COLUMNS})
        done = pd.DataFrame(
            {
                **{c: [0.0] * len(trips) for c in TRIP_COLUMNS},
                "trip_id": [t.trip_id for t in trips],
                "depart_s": [t.depart_s for t in trips],
                "duration_s": 120.0,
                "route_length_m": 1000.0,
                "arrived": True,
            }
        )
        edges = pd.DataFrame({c: pd.Series(dtype=float) for c in EDGE_COLUMNS}).astype({"edge_id": str})
        return SimResult(
            edges=edges,
            trips=done if trips else frame,
            teleports=0,
            loaded=len(trips),
            inserted=len(trips),
            unfinished=0,
            sumo_version="fake",
            wall_s=0.0,
            seed=seed,
            workdir=workdir,
        )

    return run_sumo


def test_a_given_first_round_is_not_simulated_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(simulate_module, "run_sumo", _fake_run(calls))
    prepared = _prepared(tmp_path, iterations=3)
    one_round = dataclasses.replace(prepared, params=prepared.params.model_copy(update={"iterations": 1}))

    full = simulate_seed(prepared, SEED, tmp_path / "full")
    first = simulate_seed(one_round, SEED, tmp_path / "first", keep_service=True)
    ran_first = len(calls)
    resumed = simulate_seed(prepared, SEED, tmp_path / "resumed", first_round=first_round_of(first))

    assert [name for name, _ in calls[:ran_first]] == [
        "iteration_0",
        "iteration_1",
        "iteration_2",
        "iteration_0",
    ]
    assert [name for name, _ in calls[ran_first:]] == ["iteration_1", "iteration_2"]  # round 1 not run again
    assert calls[ran_first:] == calls[1:3]  # the same trips as the full run's later rounds
    assert resumed.kpis == pytest.approx(full.kpis, rel=0.0, abs=0.0, nan_ok=True)
    assert resumed.car_share_by_iteration == full.car_share_by_iteration
    assert len(resumed.car_share_by_iteration) == 3


def test_a_first_round_that_cannot_be_this_seeds_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(simulate_module, "run_sumo", _fake_run(calls))
    prepared = _prepared(tmp_path, iterations=2)
    one_round = dataclasses.replace(prepared, params=prepared.params.model_copy(update={"iterations": 1}))
    first = first_round_of(simulate_seed(one_round, SEED, tmp_path / "first", keep_service=True))
    calls.clear()
    other = FirstRound(shares={**first.shares, "car": first.shares["car"] + 1e-6}, service=first.service)

    with pytest.raises(ValueError, match="split the car trips otherwise"):
        simulate_seed(prepared, SEED, tmp_path / "other", first_round=other)
    with pytest.raises(ValueError, match="at least two iterations"):
        simulate_seed(one_round, SEED, tmp_path / "one", first_round=first)
    with pytest.raises(ValueError, match="at least two iterations"):
        simulate_seed(prepared, SEED, tmp_path / "fixed", first_round=first, fixed_shares=first.shares)
    assert calls == []  # refused before any simulation
    with pytest.raises(ValueError, match="kept no level of service"):
        first_round_of(simulate_seed(one_round, SEED, tmp_path / "plain"))


def _fake_check(kind: str, called: list[tuple[str, float]]) -> Any:
    """A check run of ``kind`` that records its factor and gridlocks above a factor of 2."""

    def simulate(factors: Factors) -> SeedOutcome:
        called.append((kind, factors.od[("a", "b")]))
        if factors.od[("a", "b")] > 2.0:
            raise QualityCheckFailed("300 teleports for 5,000 trips exceed the allowed share 5%")
        return f"{kind} run"  # type: ignore[return-value]  # the check only passes the outcome on

    return simulate


def test_only_the_check_run_at_the_loops_factors_resumes_from_the_loops_last_run() -> None:
    called: list[tuple[str, float]] = []
    in_full, resumed = _fake_check("in full", called), _fake_check("resumed", called)
    prepared = SimpleNamespace(params=SimpleNamespace(iterations=3))
    settings = CalibrationSettings(step_retries=2)

    fitted = Calibrated(Factors(od={("a", "b"): 5.0}), "loop", [0.0, 0.6], converged=False)  # type: ignore[arg-type]
    halved = _checked(prepared, "prior", fitted, settings, in_full, resume=resumed)  # type: ignore[arg-type]
    # the loop's factors resume from its last run; halved, the factors differ: simulated in full
    assert called == [("resumed", 5.0), ("in full", 3.0), ("in full", 2.0)]
    assert (str(halved.outcome), halved.check_halvings, halved.check_reused_first_round) == (
        "in full run",
        2,
        False,
    )

    called.clear()
    within = Calibrated(Factors(od={("a", "b"): 1.5}), "loop", [0.0, 0.6], converged=True)  # type: ignore[arg-type]
    kept = _checked(prepared, "prior", within, settings, in_full, resume=resumed)  # type: ignore[arg-type]
    assert called == [("resumed", 1.5)]
    assert (str(kept.outcome), kept.check_halvings, kept.check_reused_first_round) == ("resumed run", 0, True)

    called.clear()
    one_round = SimpleNamespace(params=SimpleNamespace(iterations=1))
    assert _checked(one_round, "prior", within, settings, in_full, resume=resumed) is within  # type: ignore[arg-type]
    assert called == []  # with one round the loop's last run is the check run
