"""Areal re-aggregation of phone-based counts from 2 provider zones onto 3 twin zones, by hand.

Provider zones P1 = [0, 200] × [0, 100] and P2 = [200, 400] × [0, 100] (metres); twin zones
Z1 = [0, 100], Z2 = [100, 300] and Z3 = [300, 350] (same heights). Weights: P1 → Z1 ½, Z2 ½;
P2 → Z2 ½, Z3 ¼ (a quarter of P2 lies outside the twin).
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import box

from civictwin.model.mobility import OUTSIDE, areal_weights, reaggregate_od, reaggregate_presence

CRS = "EPSG:32635"


def _zones(ids: list[str], xs: list[tuple[float, float]]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"zone_id": ids}, geometry=[box(a, 0, b, 100) for a, b in xs], crs=CRS)


PROVIDER = _zones(["P1", "P2"], [(0, 200), (200, 400)])
TWIN = _zones(["Z1", "Z2", "Z3"], [(0, 100), (100, 300), (300, 350)])


def test_areal_weights() -> None:
    weights = areal_weights(PROVIDER, TWIN).sort_values(["provider", "zone_id"])
    assert list(zip(weights["provider"], weights["zone_id"], strict=True)) == [
        ("P1", "Z1"), ("P1", "Z2"), ("P2", "Z2"), ("P2", "Z3"),
    ]  # fmt: skip
    assert weights["weight"].tolist() == pytest.approx([0.5, 0.5, 0.5, 0.25])


def test_od_and_presence_reaggregated_by_hand() -> None:
    weights = areal_weights(PROVIDER, TWIN)
    od = pd.DataFrame(
        {
            "origin": ["P1", "P2", "P1"],
            "destination": ["P2", "P1", "P1"],
            "hour": [8, 8, 8],
            "trips": [40.0, 20.0, 10.0],
        }
    )
    result = reaggregate_od(od, weights)
    # P1→P2 40: Z1Z2 10, Z1Z3 5, Z2Z2 10, Z2Z3 5, and P2's outside quarter: Z1→out 5, Z2→out 5;
    # P2→P1 20: Z2Z1 5, Z2Z2 5, Z3Z1 2.5, Z3Z2 2.5, out→Z1 2.5, out→Z2 2.5;
    # P1→P1 10: Z1Z1, Z1Z2, Z2Z1, Z2Z2 2.5 each
    expected = {
        ("Z1", "Z1"): 2.5, ("Z1", "Z2"): 12.5, ("Z1", "Z3"): 5.0, ("Z1", OUTSIDE): 5.0,
        ("Z2", "Z1"): 7.5, ("Z2", "Z2"): 17.5, ("Z2", "Z3"): 5.0, ("Z2", OUTSIDE): 5.0,
        ("Z3", "Z1"): 2.5, ("Z3", "Z2"): 2.5, (OUTSIDE, "Z1"): 2.5, (OUTSIDE, "Z2"): 2.5,
    }  # fmt: skip
    got = {
        (o, d): t
        for o, d, t in zip(
            result.frame["origin"], result.frame["destination"], result.frame["trips"], strict=True
        )
    }
    assert got == pytest.approx(expected)
    assert set(result.frame["hour"]) == {8}
    assert (result.value_in, result.value_out, result.value_one_end_outside) == pytest.approx(
        (70.0, 55.0, 15.0)
    )
    assert result.share_kept == pytest.approx(55 / 70)

    presence = pd.DataFrame({"zone_id": ["P1", "P2"], "hour": [pd.NA, pd.NA], "count": [100.0, 40.0]})
    # P2 → P2 trips (both ends outside the twin for the outside quarter ...) keep only their inside parts
    both = reaggregate_od(
        pd.DataFrame({"origin": ["P2"], "destination": ["P2"], "hour": [8], "trips": [16.0]}), weights
    )
    # weights P2: Z2 ½, Z3 ¼, outside ¼: out→out 1 left out; Z2Z2 4, Z2Z3 2, Z3Z2 2, Z3Z3 1; one end out 2+2+1+1
    assert (both.value_out, both.value_one_end_outside) == pytest.approx((9.0, 6.0))
    assert len(both.frame) == 8

    people = reaggregate_presence(presence, weights).frame.set_index("zone_id")["count"]
    assert people.to_dict() == pytest.approx({"Z1": 50.0, "Z2": 70.0, "Z3": 10.0})
