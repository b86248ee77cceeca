"""Aggregate a KPI over seeds: mean with a 95% t interval, and differences with a 95% interval.

Runs of a stochastic simulation differ by seed; a change between scenarios counts as detectable only
when the 95% interval of the difference excludes zero. Every scenario runs the same seed numbers, and a
seed draws the same uncertain parameters in each (common random numbers), so where both scenarios have
a value for the same seeds the interval is the paired t interval of the per-seed differences
(:func:`difference_by_seed`); otherwise it is Welch's (unequal variances) on the two samples. The
``words`` of a :class:`Difference` say so in one plain sentence for the report, and whether the
change is an improvement when the KPI says which direction is better. :func:`key_differences` does the
same for every key of a table at once (per street, building, zone or grid cell).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A KPI over ``n`` seeds: mean, 95% interval of the mean (NaN for n < 2), standard deviation."""

    mean: float
    ci_low: float
    ci_high: float
    n: int
    sd: float


@dataclass(frozen=True)
class Difference:
    """Plan − base: mean difference, its 95% interval, and whether it stands out from noise.

    ``relative`` is the mean difference as a fraction of the base mean (NaN when the base mean is 0).
    """

    mean: float
    ci_low: float
    ci_high: float
    distinguishable: bool
    words: str
    relative: float
    base_mean: float
    plan_mean: float


def summarise(values: Sequence[float]) -> Estimate:
    """Mean and t-distribution 95% interval of ``values`` (one per seed)."""
    data = _clean(values, "values")
    n = data.size
    mean = float(data.mean())
    if n < 2:
        return Estimate(mean, math.nan, math.nan, n, math.nan)
    sd = float(data.std(ddof=1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * sd / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n, sd)


NEGLIGIBLE = 0.01
"""A detectable change smaller than this share of the base mean is called negligible in words."""


Better = Literal["lower", "higher", "neither"]

SHARE_UNITS: dict[str, float] = {"share": 100.0, "%": 1.0}
"""KPI units whose values are shares, with the factor that turns a value into percent: their changes
are said in percentage points, never only relative to the base (which a reader takes for points)."""


def difference_by_seed(
    base: Mapping[int, float],
    plan: Mapping[int, float],
    *,
    label: str = "The value",
    better: Better = "neither",
    unit: str = "",
) -> Difference:
    """Plan − base from values by seed number (NaN values left out): paired by seed when both scenarios
    have a value for exactly the same seeds, Welch's interval otherwise (see :func:`difference`)."""
    a = {seed: float(v) for seed, v in base.items() if math.isfinite(float(v))}
    b = {seed: float(v) for seed, v in plan.items() if math.isfinite(float(v))}
    if a.keys() == b.keys():
        seeds = sorted(a)
        return difference([a[s] for s in seeds], [b[s] for s in seeds], label=label, better=better,
                          unit=unit, paired=True)  # fmt: skip
    return difference(list(a.values()), list(b.values()), label=label, better=better, unit=unit)


def difference(
    base: Sequence[float],
    plan: Sequence[float],
    *,
    label: str = "The value",
    better: Better = "neither",
    unit: str = "",
    paired: bool = False,
) -> Difference:
    """Plan − base with a t 95% interval; ``words`` describes it for a non-technical reader.

    ``paired``: ``base[i]`` and ``plan[i]`` come from the same seed, and the interval is the t interval
    of their differences (n − 1 degrees of freedom); otherwise Welch's interval of the difference of
    the means. With ``better`` (the direction that is an improvement) a detectable, non-negligible
    change is also called an improvement or a worsening. A share (``unit`` in :data:`SHARE_UNITS`) is
    said from its base to its plan value in percent and changed by percentage points.
    """
    a, b = _clean(base, "base"), _clean(plan, "plan")
    if paired and a.size != b.size:
        raise ValueError(f"paired values need as many plan as base values, got {b.size} and {a.size}")
    base_mean, plan_mean = float(a.mean()), float(b.mean())
    diff = plan_mean - base_mean
    low, high = _paired_interval(b - a, diff) if paired else _welch_interval(a, b, diff)
    distinguishable = bool(not math.isnan(low) and (low > 0 or high < 0))
    relative = diff / base_mean if base_mean != 0 else math.nan
    n_min = min(a.size, b.size)
    if unit in SHARE_UNITS:
        words = _share_words(
            label, (base_mean, plan_mean), (diff, low, high), SHARE_UNITS[unit], distinguishable,
            n_min=n_min, better=better,
        )  # fmt: skip
    else:
        words = _words(label, diff, low, high, base_mean, distinguishable, n_min=n_min, better=better)
    return Difference(diff, low, high, distinguishable, words, relative, base_mean, plan_mean)


def _paired_interval(d: np.ndarray, diff: float) -> tuple[float, float]:
    """The t 95% interval of the mean of per-seed differences ``d``, around ``diff`` (their mean, as the
    difference of the two means: the same number, without a rounding apart)."""
    if d.size < 2:
        return math.nan, math.nan
    sd = float(d.std(ddof=1))
    if sd == 0:
        return diff, diff
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, d.size - 1)) * sd / math.sqrt(d.size)
    return diff - half, diff + half


def _welch_interval(a: np.ndarray, b: np.ndarray, diff: float) -> tuple[float, float]:
    if a.size < 2 or b.size < 2:
        return math.nan, math.nan
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, diff
    dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, dof)) * se
    return diff - half, diff + half


def _words(
    label: str,
    diff: float,
    low: float,
    high: float,
    base_mean: float,
    distinguishable: bool,
    *,
    n_min: int,
    better: Better = "neither",
) -> str:
    if n_min < 2:
        return f"{label}: too few runs (fewer than 2 seeds) to tell a change from run-to-run noise."
    extra = _extra_decimals(low, high, base_mean)
    interval = f"95% CI {_amount(low, base_mean, extra)} to {_amount(high, base_mean, extra)}"
    if not distinguishable:
        return f"{label}: within run-to-run noise, no detectable change ({interval})."
    direction = "up" if diff > 0 else "down"
    change = f"{label}: {direction} {_amount(abs(diff), base_mean, extra)} ({interval})"
    return _judged(change, diff, base_mean, better)


def _share_words(
    label: str,
    means: tuple[float, float],
    change: tuple[float, float, float],
    to_percent: float,
    distinguishable: bool,
    *,
    n_min: int,
    better: Better,
) -> str:
    """``Car share: from 18.6% to 16.2%, down 2.4 points (95% CI -3.1 to -1.7 points), an improvement.``"""
    (base_mean, plan_mean), (diff, low, high) = means, change
    start = f"{label}: from {base_mean * to_percent:.1f}% to {plan_mean * to_percent:.1f}%"
    if n_min < 2:
        return f"{start}; too few runs (fewer than 2 seeds) to tell a change from run-to-run noise."
    decimals = 1 + next(
        (
            extra
            for extra in (0, 1)
            if f"{low * to_percent:.{1 + extra}f}" != f"{high * to_percent:.{1 + extra}f}"
        ),
        0,
    )
    interval = f"95% CI {low * to_percent:+.{decimals}f} to {high * to_percent:+.{decimals}f} points"
    if not distinguishable:
        return f"{start}: within run-to-run noise, no detectable change ({interval})."
    direction = "up" if diff > 0 else "down"
    said = f"{start}, {direction} {abs(diff) * to_percent:.{decimals}f} points ({interval})"
    return _judged(said, diff, base_mean, better, of_what=" of its value")


def _judged(said: str, diff: float, base_mean: float, better: Better, *, of_what: str = "") -> str:
    """``said`` (a detectable change) with its verdict: negligible when under :data:`NEGLIGIBLE` of the
    base mean, otherwise an improvement or a worsening when ``better`` names a direction."""
    if base_mean != 0 and abs(diff / base_mean) < NEGLIGIBLE:
        return f"{said}: detectable, but under {NEGLIGIBLE:.0%}{of_what} and negligible in practice."
    if better == "neither":
        return f"{said}."
    improves = (diff < 0) == (better == "lower")
    return f"{said}, {'an improvement' if improves else 'a worsening'}."


def _extra_decimals(low: float, high: float, base_mean: float) -> int:
    """Decimals beyond the plain rounding (up to two) needed for the interval's ends to print apart.

    The change itself is printed with the same decimals, so it never seems to fall outside its own
    interval ("down 13% (95% CI -12.9% to -12.6%)"). An interval narrower than that keeps the plain
    rounding.
    """
    for extra in (0, 1, 2):
        if _amount(low, base_mean, extra) != _amount(high, base_mean, extra):
            return extra
    return 0


def _amount(value: float, base_mean: float, extra_decimals: int = 0) -> str:
    """A change as a percentage of the base mean (one decimal below 1%), or a number when the base is 0."""
    if base_mean == 0:
        return f"{value:.{3 + extra_decimals}g}"
    percent = 100 * value / abs(base_mean)
    decimals = (1 if abs(percent) < 1 else 0) + extra_decimals
    return f"{percent:.{decimals}f}%"


def _clean(values: Sequence[float], name: str) -> np.ndarray:
    data = np.asarray(values, dtype=float)
    if data.size == 0 or np.isnan(data).any():
        raise ValueError(f"{name}: need at least one value and no NaN")
    return data


@dataclass(frozen=True)
class KeyDifferences:
    """Plan − base for many keys at once (one row per key): arrays of length ``keys``.

    Values per key and seed may be NaN (a seed without a value for that key); they are left out, and
    a key with fewer than two values on either side has no interval and is never ``real``.
    """

    base_mean: np.ndarray
    plan_mean: np.ndarray
    diff: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    real: np.ndarray


def key_differences(base: np.ndarray, plan: np.ndarray, *, paired: bool = False) -> KeyDifferences:
    """The 95% interval of plan − base for every row of ``base`` (keys × seeds) and ``plan``.

    ``paired``: the columns of both are the same seeds, in the same order; a row whose values are
    present for exactly the same seeds on both sides then gets the paired interval, as
    :func:`difference_by_seed` does. Every other row gets Welch's. Row by row the same numbers as
    :func:`difference_by_seed` on that row's values.
    """
    a_mean, a_var, a_n = _row_stats(base)
    b_mean, b_var, b_n = _row_stats(plan)
    diff = b_mean - a_mean
    with np.errstate(divide="ignore", invalid="ignore"):
        va, vb = a_var / a_n, b_var / b_n
        se = np.sqrt(va + vb)
        dof = (va + vb) ** 2 / (va**2 / (a_n - 1) + vb**2 / (b_n - 1))
        half = stats.t.ppf(0.5 + CONFIDENCE / 2, dof) * se
    if paired:
        same_seeds = (np.isfinite(base) == np.isfinite(plan)).all(axis=1)
        _, d_var, d_n = _row_stats(np.asarray(plan, dtype=float) - np.asarray(base, dtype=float))
        with np.errstate(divide="ignore", invalid="ignore"):
            d_se = np.sqrt(d_var / d_n)
            d_half = stats.t.ppf(0.5 + CONFIDENCE / 2, d_n - 1) * d_se
        se = np.where(same_seeds, d_se, se)
        half = np.where(same_seeds, d_half, half)
    enough = (a_n >= 2) & (b_n >= 2)
    half = np.where(enough & (se == 0), 0.0, np.where(enough, half, np.nan))
    low, high = diff - half, diff + half
    real = enough & ((low > 0) | (high < 0))
    return KeyDifferences(a_mean, b_mean, diff, low, high, real)


def _row_stats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: mean and sample variance of the finite values, and how many there are."""
    data = np.asarray(values, dtype=float)
    finite = np.isfinite(data)
    n = finite.sum(axis=1).astype(float)
    filled = np.where(finite, data, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = filled.sum(axis=1) / n
        squares = np.where(finite, (data - mean[:, None]) ** 2, 0.0).sum(axis=1)
        var = squares / (n - 1)
    return mean, var, n
