"""GEH, the fit summary and the k-fold split of sites against hand computation."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from sumolib.statistics import geh as sumolib_geh

from civictwin.engines.traffic.fit import fit, geh, kfold_sites, scatter


def test_geh_by_hand_and_as_sumolib() -> None:
    # sqrt(2·50²/250) = sqrt(20); sqrt(2·30²/50) = 6; both zero → 0
    values = geh([150, 10, 0], [100, 40, 0])
    assert values.tolist() == pytest.approx([math.sqrt(20.0), 6.0, 0.0])
    assert values[0] == pytest.approx(sumolib_geh(150, 100))
    assert values[1] == pytest.approx(sumolib_geh(10, 40))


def test_fit_summary_by_hand() -> None:
    result = fit(observed=[100, 40, 0], simulated=[150, 10, 0])
    assert result.site_hours == 3
    assert result.share_geh_ok == pytest.approx(2 / 3)  # GEH 4.47 and 0 pass, 6 fails
    assert result.mean_geh == pytest.approx((math.sqrt(20.0) + 6.0) / 3)
    assert result.max_geh == pytest.approx(6.0)
    assert result.rmse == pytest.approx(math.sqrt((2500 + 900) / 3))  # 33.665
    # SS_tot around the mean 46.67: 2844.44 + 44.44 + 2177.78 = 5066.67; SS_res = 3400
    assert result.r2 == pytest.approx(1 - 3400 / (15200 / 3))
    assert (result.observed_total, result.simulated_total) == (140.0, 160.0)
    assert not result.meets_dmrb
    assert fit([100, 200], [100, 210]).meets_dmrb


def test_fit_of_nothing_and_of_unequal_lengths() -> None:
    empty = fit([], [])
    assert empty.site_hours == 0 and math.isnan(empty.share_geh_ok) and not empty.meets_dmrb
    assert math.isnan(fit([5], [5]).r2)
    with pytest.raises(ValueError, match="differ in length"):
        fit([1, 2], [1])


def test_scatter_marks_each_site_hour() -> None:
    counts = pd.DataFrame(
        {"site": ["b", "a"], "hour": [8, 8], "observed": [40.0, 100.0], "simulated": [10.0, 150.0]}
    )
    frame = scatter(counts)
    assert frame["site"].tolist() == ["a", "b"]
    assert frame["geh"].tolist() == pytest.approx([math.sqrt(20.0), 6.0])
    assert frame["geh_ok"].tolist() == [True, False]


def test_kfold_split_is_a_deterministic_partition() -> None:
    sites = ["e", "a", "d", "b", "c", "a"]
    folds = kfold_sites(sites, folds=2, seed=7)
    assert sorted(len(f) for f in folds) == [2, 3]
    assert sorted(s for f in folds for s in f) == ["a", "b", "c", "d", "e"]
    assert kfold_sites(list(reversed(sites)), folds=2, seed=7) == folds
    assert {tuple(f) for s in range(20) for f in kfold_sites(sites, folds=2, seed=s)} != {
        tuple(f) for f in folds
    }
    with pytest.raises(ValueError, match="folds must be between 2 and the number of sites"):
        kfold_sites(["a", "b"], folds=3, seed=0)
