"""The calibrated base day the mode choice pivots on: hand-computed incremental logit shares, the
record's round trip, and a calibrated twin's run that starts from the base day's shares."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from traffic_tiny_twin import PARAMS, tiny_inputs

from civictwin.engines.traffic.calibration import Calibrated, Factors, _simulate, base_day
from civictwin.engines.traffic.demand import DemandError, DemandParams
from civictwin.engines.traffic.modechoice import MODES, modal_split, mode_shares, utilities
from civictwin.engines.traffic.pivot import BaseModes
from civictwin.engines.traffic.prepare import prepare_scenario
from civictwin.engines.traffic.simulate import simulate_seed
from civictwin.scenarios.spec import Scenario

INF = -math.inf


def _one_pair(shares: dict[str, float], utility: dict[str, float], free_flow: dict[str, float]) -> BaseModes:
    """A base day of one zone pair (1 × 1 matrices)."""
    return BaseModes(
        zones=("a",),
        shares={m: np.array([[shares[m]]]) for m in MODES},
        utility={m: np.array([[utility[m]]]) for m in MODES},
        free_flow_utility={m: np.array([[free_flow[m]]]) for m in MODES},
    )


BASE = _one_pair(
    {"car": 0.5, "pt": 0.3, "bike": 0.1, "walk": 0.1},
    {"car": -2.0, "pt": -3.0, "bike": -4.0, "walk": -5.0},
    {"car": -1.0, "pt": -3.0, "bike": -4.0, "walk": -5.0},
)
ABSOLUTE = {m: np.array([[0.25]]) for m in MODES}


def _at(utility: dict[str, float], *, free_flow: bool = False) -> dict[str, float]:
    now = {m: np.array([[utility[m]]]) for m in MODES}
    return {m: float(v[0, 0]) for m, v in BASE.shares_at(now, absolute=ABSOLUTE, free_flow=free_flow).items()}


def test_the_base_day_is_reproduced_where_nothing_changed() -> None:
    assert _at({"car": -2.0, "pt": -3.0, "bike": -4.0, "walk": -5.0}) == pytest.approx(
        {"car": 0.5, "pt": 0.3, "bike": 0.1, "walk": 0.1}, abs=1e-12
    )
    # a first round compares free flow with the base day's free flow, not with its congested day
    assert _at({"car": -1.0, "pt": -3.0, "bike": -4.0, "walk": -5.0}, free_flow=True) == pytest.approx(
        {"car": 0.5, "pt": 0.3, "bike": 0.1, "walk": 0.1}, abs=1e-12
    )


def test_a_change_in_utility_moves_the_shares_by_the_incremental_logit() -> None:
    # the car's utility rises by ln 2: weights 0.5·2, 0.3, 0.1, 0.1 over their sum 1.5
    shares = _at({"car": -2.0 + math.log(2.0), "pt": -3.0, "bike": -4.0, "walk": -5.0})
    assert shares == pytest.approx(
        {"car": 1.0 / 1.5, "pt": 0.2, "bike": 0.1 / 1.5, "walk": 0.1 / 1.5}, abs=1e-12
    )
    # the same utility on the first round's free-flow reference is a fall of 1 - ln 2 for the car
    first = _at({"car": -2.0 + math.log(2.0), "pt": -3.0, "bike": -4.0, "walk": -5.0}, free_flow=True)
    car = 0.5 * math.exp(math.log(2.0) - 1.0)
    assert first["car"] == pytest.approx(car / (car + 0.5), abs=1e-12)


def test_a_pair_whose_available_modes_change_takes_the_absolute_logit() -> None:
    # the car cut off (a closure): no pivot on a mode the pair no longer has
    assert _at({"car": INF, "pt": -3.0, "bike": -4.0, "walk": -5.0}) == pytest.approx(
        {m: 0.25 for m in MODES}
    )
    walk_only = _one_pair(
        {"car": 0.0, "pt": 0.0, "bike": 0.0, "walk": 1.0},
        {"car": INF, "pt": INF, "bike": INF, "walk": -5.0},
        {"car": INF, "pt": INF, "bike": INF, "walk": -5.0},
    )
    served = {
        "car": np.array([[INF]]),
        "pt": np.array([[-3.0]]),
        "bike": np.array([[INF]]),
        "walk": np.array([[-5.0]]),
    }
    assert float(walk_only.shares_at(served, absolute=ABSOLUTE)["pt"][0, 0]) == 0.25  # a new line serves it


def test_the_record_round_trips_and_names_its_zones(tmp_path: Path) -> None:
    two = BaseModes(
        zones=("a", "b"),
        shares={m: np.full((2, 2), 0.25) for m in MODES},
        utility={m: np.array([[-1.0, INF], [-2.5, -3.0]]) for m in MODES},
        free_flow_utility={m: np.array([[-0.5, INF], [-2.0, -3.0]]) for m in MODES},
    )
    text = json.dumps(two.as_record(), allow_nan=False)  # strict JSON: -inf is null
    again = BaseModes.from_record(json.loads(text))
    assert again.zones == ("a", "b")
    for m in MODES:
        np.testing.assert_array_equal(again.shares[m], two.shares[m])
        np.testing.assert_array_equal(again.utility[m], two.utility[m])
        np.testing.assert_array_equal(again.free_flow_utility[m], two.free_flow_utility[m])
    again.check_zones(("a", "b"))
    with pytest.raises(DemandError, match="made for 2 zones and the twin has 3"):
        again.check_zones(("a", "b", "c"))


def test_a_calibrated_run_starts_from_the_base_day_and_an_uncalibrated_one_from_free_flow(
    tmp_path: Path,
) -> None:
    inputs = tiny_inputs(tmp_path)
    params = PARAMS.model_copy(
        update={"iterations": 1, "demand": DemandParams(scale=4.0, distance="crowfly")}
    )
    prepared = prepare_scenario(inputs, Scenario.baseline_scenario(), tmp_path / "net", params)
    prior = _simulate(prepared, Factors(), 7, tmp_path / "prior")
    # a base day whose shares are not the logit's: the car share halved on every pair
    held = dict(prior.mode_shares or {})
    held["walk"] = held["walk"] + held["car"] / 2.0
    held["car"] = held["car"] / 2.0
    base = base_day(
        prepared,
        dataclasses.replace(prior, mode_shares=held),
        Calibrated(Factors(), prior, [0.0], converged=True),
    )
    assert base.zones == prepared.layers[0].od.zones
    choice = prepared.params.mode_choice
    for m in MODES:
        np.testing.assert_array_equal(base.utility[m], utilities(prior.service, choice)[m])  # type: ignore[arg-type]
        np.testing.assert_array_equal(base.free_flow_utility[m], utilities(prepared.free_flow, choice)[m])

    pivoting = dataclasses.replace(
        prepared, params=prepared.params.model_copy(update={"iterations": 2, "base_modes": base})
    )
    calibrated = simulate_seed(pivoting, 7, tmp_path / "calibrated")
    held_car = modal_split(prepared.person_trips, held)["car"]
    assert calibrated.car_share_by_iteration[0] == pytest.approx(held_car, abs=1e-12)

    absolute = dataclasses.replace(prepared, params=prepared.params.model_copy(update={"iterations": 2}))
    uncalibrated = simulate_seed(absolute, 7, tmp_path / "uncalibrated")
    free_car = modal_split(prepared.person_trips, mode_shares(prepared.free_flow, choice))["car"]
    assert uncalibrated.car_share_by_iteration[0] == pytest.approx(free_car, abs=1e-12)
    assert free_car > held_car + 0.05  # the two starts differ: the base day is what a calibrated run keeps
