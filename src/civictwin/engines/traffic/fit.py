"""How well simulated counts match observed ones: GEH per site-hour, the DMRB share, RMSE, R², k-fold sites.

The GEH statistic compares a modelled hourly flow ``M`` with an observed one ``C`` (vehicles/hour):
``GEH = sqrt(2 (M − C)² / (M + C))`` (0 when both are 0; the same as ``sumolib.statistics.geh``). The
UK Design Manual for Roads and Bridges (DMRB, vol. 12 section 2 part 1, 1996) and the Department for
Transport's Transport Analysis Guidance (TAG unit M3.1, Highway Assignment Modelling) accept a model
whose hourly link flows have GEH < 5 at more than 85 % of count sites. Everything here is a pure
function of arrays; nothing reads or writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

GEH_OK = 5.0
"""GEH below which a site-hour counts as matched (DMRB / TAG M3.1)."""
DMRB_SHARE = 0.85
"""Share of site-hours with GEH < 5 a calibrated model must reach (DMRB / TAG M3.1)."""

FloatArray = npt.NDArray[np.float64]


def geh(modelled: npt.ArrayLike, observed: npt.ArrayLike) -> FloatArray:
    """GEH of each pair of hourly flows (vehicles/hour); 0 where both flows are 0."""
    m = np.asarray(modelled, dtype=float)
    c = np.asarray(observed, dtype=float)
    total = m + c
    squared: FloatArray = np.divide(
        2.0 * (m - c) ** 2, total, out=np.zeros(np.broadcast(m, c).shape), where=total > 0
    )
    return np.sqrt(squared)


@dataclass(frozen=True)
class Fit:
    """The fit of simulated to observed hourly counts over a set of site-hours.

    ``share_geh_ok`` is the share of site-hours with GEH < 5; ``rmse`` in vehicles/hour; ``r2`` the
    coefficient of determination of the simulated values as predictions of the observed ones
    (``1 − SS_res / SS_tot``; NaN with fewer than two site-hours or no spread in the observed ones).
    ``meets_dmrb`` says whether the share reaches 85 %.
    """

    site_hours: int
    share_geh_ok: float
    mean_geh: float
    max_geh: float
    rmse: float
    r2: float
    observed_total: float
    simulated_total: float

    @property
    def meets_dmrb(self) -> bool:
        """Whether GEH < 5 holds at 85 % of site-hours or more."""
        return self.site_hours > 0 and self.share_geh_ok >= DMRB_SHARE

    def as_dict(self) -> dict[str, float | int | bool]:
        """Plain JSON: every field and ``meets_dmrb``."""
        return {**asdict(self), "meets_dmrb": self.meets_dmrb}


def fit(observed: npt.ArrayLike, simulated: npt.ArrayLike) -> Fit:
    """The fit of ``simulated`` to ``observed`` hourly counts (same length, vehicles/hour)."""
    c = np.asarray(observed, dtype=float)
    m = np.asarray(simulated, dtype=float)
    if c.shape != m.shape:
        raise ValueError(f"observed ({c.shape}) and simulated ({m.shape}) counts differ in length")
    if c.size == 0:
        nan = float("nan")
        return Fit(0, nan, nan, nan, nan, nan, 0.0, 0.0)
    values = geh(m, c)
    residual = float(np.sum((c - m) ** 2))
    spread = float(np.sum((c - c.mean()) ** 2))
    return Fit(
        site_hours=int(c.size),
        share_geh_ok=float(np.mean(values < GEH_OK)),
        mean_geh=float(values.mean()),
        max_geh=float(values.max()),
        rmse=float(np.sqrt(residual / c.size)),
        r2=1.0 - residual / spread if c.size > 1 and spread > 0 else float("nan"),
        observed_total=float(c.sum()),
        simulated_total=float(m.sum()),
    )


def scatter(counts: pd.DataFrame) -> pd.DataFrame:
    """Observed vs simulated per site-hour with its GEH: ``counts`` (``site``, ``hour``, ``observed``,
    ``simulated``) plus ``geh`` and ``geh_ok``, sorted by site and hour."""
    frame = counts.sort_values(["site", "hour"], ignore_index=True).copy()
    frame["geh"] = geh(frame["simulated"], frame["observed"])
    frame["geh_ok"] = frame["geh"] < GEH_OK
    return frame


def kfold_sites(sites: Sequence[str], *, folds: int, seed: int) -> list[list[str]]:
    """Sites split into ``folds`` groups of near-equal size, the same for the same seed and sites.

    The sites are sorted, shuffled with ``numpy.random.default_rng(seed)`` and dealt round-robin, so
    a fold's held-back sites depend only on the set of sites, the seed and ``folds``.
    """
    unique = sorted(set(sites))
    if not 2 <= folds <= len(unique):
        raise ValueError(f"folds must be between 2 and the number of sites ({len(unique)}), not {folds}")
    order = np.random.default_rng(seed).permutation(len(unique))
    groups: list[list[str]] = [[] for _ in range(folds)]
    for position, index in enumerate(order):
        groups[position % folds].append(unique[index])
    return [sorted(group) for group in groups]
