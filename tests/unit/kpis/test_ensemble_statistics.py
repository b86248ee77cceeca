"""Ensemble statistics against hand-computed values and scipy.stats."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from civictwin.kpis.ensemble import difference, difference_by_seed, key_differences, summarise

BASE = [10.0, 12.0, 11.0, 13.0, 9.0]  # mean 11, sample variance 2.5
PLAN = [14.0, 15.0, 13.0, 16.0, 17.0]  # mean 15, sample variance 2.5


def test_summarise_by_hand() -> None:
    est = summarise([1, 2, 3, 4, 5])
    # sd = sqrt(2.5) = 1.5811388; t(0.975, 4) = 2.7764451; half width = 2.7764451 * 1.5811388 / sqrt(5)
    assert (est.mean, est.n) == (3.0, 5)
    assert est.sd == pytest.approx(1.5811388, abs=1e-7)
    assert (est.ci_low, est.ci_high) == pytest.approx((1.0367568, 4.9632432), abs=1e-6)
    low, high = stats.t.interval(0.95, 4, loc=3, scale=stats.sem([1, 2, 3, 4, 5]))
    assert (est.ci_low, est.ci_high) == pytest.approx((low, high), rel=1e-12)


def test_summarise_one_value_has_no_interval() -> None:
    est = summarise([42.0])
    assert est.mean == 42.0 and est.n == 1 and math.isnan(est.ci_low) and math.isnan(est.sd)


def test_summarise_refuses_nan() -> None:
    with pytest.raises(ValueError, match="no NaN"):
        summarise([1.0, float("nan")])


def test_difference_by_hand_and_against_scipy() -> None:
    diff = difference(BASE, PLAN, label="Mean travel time")
    # se = sqrt(2.5/5 + 2.5/5) = 1; Welch df = 1 / (0.25/4 + 0.25/4) = 8; t(0.975, 8) = 2.3060041
    assert diff.mean == 4.0 and (diff.base_mean, diff.plan_mean) == (11.0, 15.0)
    assert (diff.ci_low, diff.ci_high) == pytest.approx((4 - 2.3060041, 4 + 2.3060041), abs=1e-6)
    scipy_ci = stats.ttest_ind(PLAN, BASE, equal_var=False).confidence_interval(0.95)
    assert (diff.ci_low, diff.ci_high) == pytest.approx((scipy_ci.low, scipy_ci.high), rel=1e-12)
    assert diff.distinguishable and diff.relative == pytest.approx(4 / 11)
    assert diff.words == "Mean travel time: up 36% (95% CI 15% to 57%)."


def test_unequal_variances_match_scipy() -> None:
    base, plan = [348.0, 330.0, 371.0, 352.0], [543.0, 420.0, 690.0, 510.0, 560.0]
    diff = difference(base, plan)
    scipy_ci = stats.ttest_ind(plan, base, equal_var=False).confidence_interval(0.95)
    assert (diff.ci_low, diff.ci_high) == pytest.approx((scipy_ci.low, scipy_ci.high), rel=1e-12)


def test_a_fall() -> None:
    diff = difference(PLAN, BASE, label="CO2")
    assert diff.distinguishable and diff.mean == -4.0
    assert diff.words == "CO2: down 27% (95% CI -42% to -11%)."


def test_a_narrow_interval_gets_the_decimals_it_needs() -> None:
    # -13 ± t(0.975, 4)·√(0.02/3) = -13 ± 0.227: both ends are "-13%" when rounded to whole percent
    diff = difference([100.0, 100.1, 99.9], [87.0, 87.1, 86.9], label="Car share of trips")
    assert (diff.ci_low, diff.ci_high) == pytest.approx((-13.2267, -12.7733), abs=1e-4)
    assert diff.words == "Car share of trips: down 13.0% (95% CI -13.2% to -12.8%)."  # the change too
    same = difference([10.0, 10.0], [8.0, 8.0], label="Zero width")  # no spread at all: one number is right
    assert same.words == "Zero width: down 20% (95% CI -20% to -20%)."


def test_within_noise_says_so() -> None:
    diff = difference(BASE, [11.0, 12.0, 10.0, 13.0, 10.0], label="Mean travel time")
    assert not diff.distinguishable and diff.ci_low < 0 < diff.ci_high
    assert diff.words.startswith("Mean travel time: within run-to-run noise, no detectable change (95% CI -")


def test_single_runs_cannot_be_compared() -> None:
    diff = difference([10.0], [20.0], label="Delay")
    assert not diff.distinguishable and math.isnan(diff.ci_low)
    assert diff.words == "Delay: too few runs (fewer than 2 seeds) to tell a change from run-to-run noise."


def test_deterministic_runs_give_a_point_interval() -> None:
    diff = difference([5.0, 5.0, 5.0], [6.0, 6.0, 6.0])
    assert (diff.ci_low, diff.ci_high) == (1.0, 1.0) and diff.distinguishable
    same = difference([5.0, 5.0], [5.0, 5.0])
    assert not same.distinguishable and same.mean == 0.0


def test_detectable_but_tiny_changes_are_called_negligible() -> None:
    diff = difference([100.0, 100.1, 99.9], [100.5, 100.6, 100.4], label="Noise level")
    assert diff.distinguishable
    assert diff.words == (
        "Noise level: up 0.5% (95% CI 0.3% to 0.7%): detectable, but under 1% and negligible in practice."
    )


def test_zero_base_uses_absolute_numbers() -> None:
    diff = difference([0.0, 0.0, 0.0], [2.0, 3.0, 4.0], label="Teleports")
    assert math.isnan(diff.relative)
    assert diff.words.startswith("Teleports: up 3 (95% CI ")


def test_a_share_changes_by_points_said_from_and_to() -> None:
    # base 0.18/0.19/0.20 (mean 19%), plan 0.15/0.16/0.17 (16%): both sample variances 0.0001, so
    # se = sqrt(2 * 0.0001 / 3) = 0.008165 with 4 degrees of freedom, t = 2.7764: half-width 2.267 points
    d = difference(
        [0.18, 0.19, 0.20], [0.15, 0.16, 0.17], label="Car share of trips", better="lower", unit="share"
    )
    assert d.words == (
        "Car share of trips: from 19.0% to 16.0%, down 3.0 points (95% CI -5.3 to -0.7 points), an improvement."
    )
    # 0.16/0.17/0.18: -2.0 points, interval -4.3 to +0.3 points crosses zero
    d = difference([0.18, 0.19, 0.20], [0.16, 0.17, 0.18], label="Car share of trips", unit="share")
    assert d.words == (
        "Car share of trips: from 19.0% to 17.0%: within run-to-run noise, no detectable change "
        "(95% CI -4.3 to +0.3 points)."
    )
    # a KPI already in percent: the same points, without scaling
    d = difference([18.0, 19.0, 20.0], [15.0, 16.0, 17.0], label="PV self-sufficiency", unit="%")
    assert d.words.startswith("PV self-sufficiency: from 19.0% to 16.0%, down 3.0 points")


def test_paired_by_hand_and_against_scipy() -> None:
    # per seed: PLAN − BASE = 4, 3, 2, 3, 8: mean 4, sample variance 5.5, t(0.975, 4) = 2.7764451
    d = difference(BASE, PLAN, paired=True)
    half = 2.7764451 * math.sqrt(5.5 / 5)
    assert d.mean == pytest.approx(4.0)
    assert (d.ci_low, d.ci_high) == pytest.approx((4.0 - half, 4.0 + half), abs=1e-6)
    low, high = stats.t.interval(0.95, 4, loc=4.0, scale=stats.sem([4, 3, 2, 3, 8]))
    assert (d.ci_low, d.ci_high) == pytest.approx((low, high), rel=1e-12)


def test_pairing_narrows_what_seeds_share() -> None:
    """A parameter drawn per seed moves both scenarios alike: Welch's interval sees that spread, the
    paired one only the plan's own effect (here exactly 1 in every seed)."""
    base = [100.0, 130.0, 90.0, 120.0]
    plan = [101.0, 131.0, 91.0, 121.0]
    assert not difference(base, plan).distinguishable
    paired = difference(base, plan, paired=True)
    assert paired.distinguishable and (paired.ci_low, paired.ci_high) == pytest.approx((1.0, 1.0))


def test_values_by_seed_are_paired_only_when_the_seeds_agree() -> None:
    base = {1: 100.0, 2: 110.0, 3: 120.0}
    same = difference_by_seed(base, {3: 170.0, 1: 150.0, 2: 160.0})  # in any order: paired by seed
    assert (same.ci_low, same.ci_high) == pytest.approx((50.0, 50.0))
    # seed 3 missing (or NaN) on one side: Welch on 100, 110, 120 against 150, 160
    # va = 100/3, vb = 50/2; dof = (va + vb)² / (va²/2 + vb²/1)
    va, vb = 100 / 3, 25.0
    half = stats.t.ppf(0.975, (va + vb) ** 2 / (va**2 / 2 + vb**2)) * math.sqrt(va + vb)
    for plan in ({1: 150.0, 2: 160.0}, {1: 150.0, 2: 160.0, 3: math.nan}):
        welch = difference_by_seed(base, plan)
        assert (welch.mean, welch.ci_low, welch.ci_high) == pytest.approx((45.0, 45.0 - half, 45.0 + half))


def test_per_key_differences_pair_the_keys_with_the_same_seeds() -> None:
    base = np.array([[100.0, 130.0, 90.0], [10.0, 20.0, 30.0]])
    plan = np.array([[101.0, 131.0, 91.0], [15.0, math.nan, 35.0]])  # key 2 lacks seed 2 in the plan
    paired = key_differences(base, plan, paired=True)
    assert paired.real.tolist() == [True, False]
    assert (paired.ci_low[0], paired.ci_high[0]) == pytest.approx((1.0, 1.0))
    # key 2 falls back to Welch: 10, 20, 30 (variance 100) against 15, 35 (variance 200)
    va, vb = 100 / 3, 200 / 2
    half = stats.t.ppf(0.975, (va + vb) ** 2 / (va**2 / 2 + vb**2)) * math.sqrt(va + vb)
    assert (paired.ci_low[1], paired.ci_high[1]) == pytest.approx((5.0 - half, 5.0 + half))
    assert not key_differences(base, plan).real[0]  # unpaired, key 1 is within the seeds' spread
