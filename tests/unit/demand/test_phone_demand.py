"""The traffic demand from the twin's phone-based OD matrix (``od_source = "phone"``) on the tiny twin."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
from traffic_tiny_twin import tiny_inputs

from civictwin.engines.traffic.demand import DemandError, DemandParams
from civictwin.engines.traffic.engine import TrafficEngine
from civictwin.engines.traffic.layers import base_od
from civictwin.engines.traffic.params import TrafficParams
from civictwin.engines.traffic.prepare import prepare_scenario
from civictwin.scenarios.spec import Scenario

# hour 8: 120 + 45 + 30 + 15.5 = 210.5 trips (the busiest) and 12 with one end outside; hour 7: 60 + 20 = 80
MOBILITY_OD = pd.DataFrame(
    {
        "origin": ["sw", "sw", "nw", "ne", "outside", "sw", "se"],
        "destination": ["ne", "se", "ne", "sw", "ne", "ne", "nw"],
        "hour": [8, 8, 8, 8, 8, 7, 7],
        "trips": [120.0, 45.0, 30.0, 15.5, 12.0, 60.0, 20.0],
    }
)
PHONE = TrafficParams(iterations=1, od_source="phone", demand=DemandParams(distance="crowfly"))


def test_prepared_demand_is_the_phone_matrix_of_its_busiest_hour(tmp_path: Path) -> None:
    inputs = dataclasses.replace(tiny_inputs(tmp_path), mobility_od=MOBILITY_OD)
    prepared = prepare_scenario(inputs, Scenario.baseline_scenario(), tmp_path / "p", PHONE)
    od = prepared.layers[0].od
    assert od.zones == ("sw", "se", "nw", "ne")
    assert od.total == pytest.approx(210.5)
    assert od.trips[0, 3] == pytest.approx(120.0)  # sw → ne
    assert od.trips[3, 0] == pytest.approx(15.5)  # ne → sw
    assert prepared.demand_source == (
        "the phone-based OD matrix (table mobility_od), hour 8:00; 12.0 trips with one end outside the area left out"
    )


def test_a_chosen_hour_and_a_twin_without_phone_data(tmp_path: Path) -> None:
    inputs = dataclasses.replace(tiny_inputs(tmp_path), mobility_od=MOBILITY_OD)
    chosen = base_od(inputs, PHONE.model_copy(update={"phone_od_hour": 7}))
    od, label = chosen.window.od, chosen.source
    assert od.total == pytest.approx(80.0) and od.trips[1, 2] == pytest.approx(20.0)
    assert label.endswith("hour 7:00")
    with pytest.raises(DemandError, match="no trips in hour 9"):
        base_od(inputs, PHONE.model_copy(update={"phone_od_hour": 9}))
    with pytest.raises(DemandError, match="has no phone-based OD matrix"):
        base_od(tiny_inputs(tmp_path), PHONE)
    assert base_od(tiny_inputs(tmp_path), TrafficParams()).source == "the gravity model"


def test_phone_prior_scales_the_gravity_rows_to_the_phone_origin_totals(tmp_path: Path) -> None:
    inputs = dataclasses.replace(tiny_inputs(tmp_path), mobility_od=MOBILITY_OD)
    gravity = base_od(inputs, TrafficParams(demand=PHONE.demand)).window.od
    chosen = base_od(inputs, PHONE.model_copy(update={"od_source": "phone_prior"}))
    prior, label = chosen.window.od, chosen.source
    # hour 8 origin totals: sw 165, se none (gravity row kept), nw 30, ne 15.5
    expected_rows = [165.0, gravity.trips[1].sum(), 30.0, 15.5]
    assert prior.trips.sum(axis=1) == pytest.approx(expected_rows)
    # destinations keep the gravity model's shares within each row
    shares = gravity.trips[0] / gravity.trips[0].sum()
    assert prior.trips[0] == pytest.approx(165.0 * shares)
    assert prior.trips[1] == pytest.approx(gravity.trips[1])
    assert label == (
        "the gravity model with origin totals from the phone-based OD matrix (table mobility_od), hour 8:00; "
        "12.0 trips with one end outside the area left out"
    )


def test_a_comparison_derived_from_phone_data_is_guarded_by_its_access_level() -> None:
    # the API shows a comparison only to callers who may read every layer its engines read
    assert "mobility_od" in TrafficEngine.reads
