"""A demand window of several hours: the residents' hourly profile, the phone matrix hour by hour,
the phone matrix's trips with one end outside the area as gateway traffic, and the phone presence
counts in the plausibility check (tiny twin)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from traffic_tiny_twin import PARAMS, tiny_inputs, with_stubs

from civictwin.engines.traffic.demand import (
    NHTS_2001_WEEKDAY_DEPARTURES,
    DemandError,
    DemandParams,
    OdMatrix,
    hour_factors,
    profile_ratios,
    sample_car_trips,
)
from civictwin.engines.traffic.gateways import (
    PHONE_SOURCE,
    STATED_DEFAULT,
    Gateway,
    GatewayFlow,
    GatewaySettings,
    OutsideTrips,
    phone_flows,
    resolve_flows,
)
from civictwin.engines.traffic.inputs import TwinInputs
from civictwin.engines.traffic.layers import DemandLayer, base_od
from civictwin.engines.traffic.modechoice import mode_shares
from civictwin.engines.traffic.params import load_params
from civictwin.engines.traffic.plausibility import DemandFacts, demand_caveats
from civictwin.engines.traffic.prepare import prepare_scenario
from civictwin.engines.traffic.simulate import _car_trips, simulate_seed
from civictwin.errors import ConfigError
from civictwin.model.mobility import Presence, peak_presence
from civictwin.scenarios.spec import Scenario

# relative weights: 4 at 8:00, 2 at 9:00, 1 at 10:00 and every other hour
PROFILE = tuple(4.0 if h == 8 else 2.0 if h == 9 else 1.0 for h in range(24))
THREE_HOURS = PARAMS.model_copy(
    update={
        "demand_window_s": 3 * 3600.0,
        "demand": PARAMS.demand.model_copy(update={"hourly_profile": PROFILE}),
    }
)


def test_hour_factors_by_hand() -> None:
    assert hour_factors(PROFILE, start_hour=8, window_s=3 * 3600.0) == pytest.approx([1.0, 0.5, 0.25])
    # a last partial hour carries its share; a window past midnight goes on at 0:00
    assert hour_factors(PROFILE, start_hour=8, window_s=2.5 * 3600.0) == pytest.approx([1.0, 0.5, 0.125])
    assert hour_factors(PROFILE, start_hour=23, window_s=2 * 3600.0) == pytest.approx([1.0, 1.0])
    zero_at_seven = tuple(0.0 if h == 7 else 1.0 for h in range(24))
    with pytest.raises(DemandError, match="0 at the demand window's first hour 7:00"):
        hour_factors(zero_at_seven, start_hour=7, window_s=3600.0)


def test_the_default_profile_is_the_sourced_table() -> None:
    # BTS TSAR 2005 table 4-8, weekday trips by departure hour, the three age groups summed
    assert DemandParams().hourly_profile == NHTS_2001_WEEKDAY_DEPARTURES
    assert NHTS_2001_WEEKDAY_DEPARTURES[8] == 4_702.7 + 11_664.7 + 1_546.5
    assert NHTS_2001_WEEKDAY_DEPARTURES[17] == pytest.approx(6_207.1 + 16_825.5 + 1_549.7)
    assert sum(NHTS_2001_WEEKDAY_DEPARTURES) == pytest.approx(281_454.8)


def test_a_bad_profile_in_traffic_toml_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "traffic.toml").write_text("[demand]\nhourly_profile = [1.0, 2.0]\n")
    with pytest.raises(ConfigError, match=r"demand\.hourly_profile: .*24"):
        load_params(tmp_path)
    (tmp_path / "traffic.toml").write_text(f"[demand]\nhourly_profile = {[-1.0] + [1.0] * 23}\n")
    with pytest.raises(ConfigError, match="24 non-negative weights"):
        load_params(tmp_path)


def test_residents_trips_follow_the_profile_hour_by_hour(tmp_path: Path) -> None:
    prepared = prepare_scenario(
        tiny_inputs(tmp_path), Scenario.baseline_scenario(), tmp_path / "p", THREE_HOURS
    )
    # 1,200 residents × 2.7 trips/day × 0.10 in the peak hour × scale 2 = 648 person trips at 8:00,
    # then × 2/4 at 9:00 and × 1/4 at 10:00
    slices = prepared.layers[0].slices()
    assert [od.total for od, *_ in slices] == pytest.approx([648.0, 324.0, 162.0])
    assert [(begin, end, prefix) for _, begin, end, prefix in slices] == [
        (0.0, 3600.0, "t"),
        (3600.0, 7200.0, "t1h"),
        (7200.0, 10800.0, "t2h"),
    ]
    assert prepared.person_trips.total == pytest.approx(648.0 + 324.0 + 162.0)
    assert prepared.demand_source == "the gravity model over the 3 hours from 8:00 along the hourly profile"
    # every hour keeps the peak hour's destinations
    first, second = slices[0][0].trips, slices[1][0].trips
    assert second == pytest.approx(first * 0.5)
    # the sampled car trips depart in their hour, as many as the hour's car matrix holds
    shares = mode_shares(prepared.free_flow, THREE_HOURS.mode_choice)
    trips = _car_trips(prepared, shares, THREE_HOURS, 1, 0)
    occupancy = THREE_HOURS.mode_choice.car_occupancy
    for hour, (od, *_rest) in enumerate(slices):
        cars = od.trips * shares["car"] / occupancy
        departed = [t for t in trips if hour * 3600 <= t.depart_s < (hour + 1) * 3600]
        assert abs(len(departed) - cars.sum()) <= np.count_nonzero(cars % 1)
        if hour == 0:
            assert all(t.trip_id.startswith("t") and "h" not in t.trip_id for t in departed)
        else:
            assert all(t.trip_id.startswith(f"t{hour}h") for t in departed)


def test_one_hour_is_the_peak_hour_as_before(tmp_path: Path) -> None:
    prepared = prepare_scenario(tiny_inputs(tmp_path), Scenario.baseline_scenario(), tmp_path / "p", PARAMS)
    (od, begin, end, prefix), *more = prepared.layers[0].slices()
    assert (od.total, begin, end, prefix, more) == (pytest.approx(648.0), 0.0, 3600.0, "t", [])


def test_sampling_a_slice_gives_its_exact_integer_trips() -> None:
    edges = {"a": ["a1", "a2"], "b": ["b1", "b2"]}
    layer = DemandLayer(
        OdMatrix(("a", "b"), np.array([[0.0, 70.0], [0.0, 0.0]])),
        0.0,
        9000.0,
        "t",
        edges,
        tuple(np.asarray(s) for s in (0.5, 0.25, 0.25)),
    )
    counts = []
    for od, begin, end, prefix in layer.slices():
        trips = sample_car_trips(od, edges, seed=3, begin_s=begin, end_s=end, prefix=prefix)
        assert all(begin <= t.depart_s < end for t in trips)
        counts.append(len(trips))
    # 70 × 0.5 = 35 exactly; 70 × 0.25 = 17.5: 17 or 18 by stochastic rounding
    assert counts[0] == 35 and all(c in (17, 18) for c in counts[1:])
    assert [e for _, _, e, _ in layer.slices()] == [3600.0, 7200.0, 9000.0]  # the last hour: half


# hour 7: 60 + 20 = 80 trips within the area; hour 8: 100 within, 12 from outside to ne, 6 from se out
PHONE_OD = pd.DataFrame(
    {
        "origin": ["sw", "se", "sw", "outside", "se"],
        "destination": ["ne", "nw", "ne", "ne", "outside"],
        "hour": [7, 7, 8, 8, 8],
        "trips": [60.0, 20.0, 100.0, 12.0, 6.0],
    }
)
PHONE = PARAMS.model_copy(
    update={"od_source": "phone", "phone_od_hour": 7, "demand_window_s": 7200.0, "iterations": 1}
)


def _with_gateway_roads(tmp_path: Path) -> TwinInputs:
    inputs = tiny_inputs(tmp_path)
    edges, nodes = with_stubs(inputs.edges, inputs.nodes)
    return dataclasses.replace(inputs, edges=edges, nodes=nodes, mobility_od=PHONE_OD)


def test_the_phone_matrix_hour_by_hour(tmp_path: Path) -> None:
    inputs = dataclasses.replace(tiny_inputs(tmp_path), mobility_od=PHONE_OD)
    demand = base_od(inputs, PHONE)
    od = demand.window.od
    # scale 2: hour 7 gives sw→ne 120 and se→nw 40, hour 8 sw→ne 200
    assert od.total == pytest.approx(360.0)
    hour_7, hour_8 = (od.trips * share for share in demand.window.hour_shares)
    assert hour_7[0, 3] == pytest.approx(120.0) and hour_7[1, 2] == pytest.approx(40.0)
    assert hour_8[0, 3] == pytest.approx(200.0) and hour_8[1, 2] == pytest.approx(0.0)
    assert demand.source == (
        "the phone-based OD matrix (table mobility_od), the 2 hours from 7:00; "
        "18.0 trips with one end outside the area left out"
    )
    # a window hour the matrix does not have is an error naming it
    with pytest.raises(DemandError, match="no trips in hour 9"):
        base_od(inputs, PHONE.model_copy(update={"phone_od_hour": 8}))
    # a last partial hour carries its share
    half = base_od(inputs, PHONE.model_copy(update={"demand_window_s": 5400.0}))
    assert half.window.od.total == pytest.approx(160.0 + 0.5 * 200.0)


def test_phone_prior_hour_by_hour_follows_the_profile_where_the_phone_has_no_row(tmp_path: Path) -> None:
    inputs = dataclasses.replace(tiny_inputs(tmp_path), mobility_od=PHONE_OD)
    params = PHONE.model_copy(
        update={
            "od_source": "phone_prior",
            "demand": PARAMS.demand.model_copy(update={"hourly_profile": PROFILE}),
        }
    )
    gravity = base_od(inputs, PARAMS).window.od  # the peak-hour matrix (one-hour window)
    demand = base_od(inputs, params)
    hour_7, hour_8 = (demand.window.od.trips * s for s in demand.window.hour_shares)
    # phone origin totals × scale 2: hour 7 sw 120, se 40; hour 8 sw 200 (outside trips are not rows)
    assert hour_7.sum(axis=1)[:2] == pytest.approx([120.0, 40.0])
    assert hour_8.sum(axis=1)[0] == pytest.approx(200.0)
    # nw has no phone trips: the gravity row at the profile's 7:00 (weight 1) and 8:00 (weight 4) over
    # the window's first hour (7:00)
    assert hour_7[2] == pytest.approx(gravity.trips[2])
    assert hour_8[2] == pytest.approx(gravity.trips[2] * 4.0)


def test_phone_trips_with_one_end_outside_drive_through_the_gateways(tmp_path: Path) -> None:
    settings = GatewaySettings(enabled=True, inbound_vph_per_lane=100.0, outbound_vph_per_lane=50.0)
    params = PHONE.model_copy(update={"phone_od_hour": 8, "demand_window_s": 3600.0, "gateways": settings})
    prepared = prepare_scenario(
        _with_gateway_roads(tmp_path), Scenario.baseline_scenario(), tmp_path / "p", params
    )
    assert prepared.gateways is not None
    assert prepared.demand_source.endswith(
        "its 18.0 trips with one end outside the area enter or leave through the gateways"
    )
    flows = {f.node: f for f in prepared.gateways.flows}
    # 12 person trips in × scale 2 × car share 0.5 ÷ 1.2 persons per car = 10 cars, 5 per gateway
    # (one lane each); 6 out: 5 cars, 2.5 per gateway; through stays the stated 100 × 0.3
    assert flows["901"].inbound_vph == pytest.approx((5.0,))
    assert flows["902"].outbound_vph == pytest.approx((2.5,))
    assert flows["901"].through_vph == pytest.approx((30.0,))
    assert flows["901"].inbound_source == PHONE_SOURCE and flows["902"].outbound_source == PHONE_SOURCE
    od = prepared.gateways.od
    names = list(od.zones)
    # the phone data says where they go: all inbound cars to ne, all outbound from se
    assert od.trips[names.index("in:901"), names.index("ne")] == pytest.approx(5.0)
    assert od.trips[names.index("in:901"), names.index("sw")] == pytest.approx(0.0)
    assert od.trips[names.index("se"), names.index("out:902")] == pytest.approx(2.5)
    assert od.total == pytest.approx(10.0 + 5.0 + 2 * 30.0)


def test_a_counted_gateway_keeps_its_count() -> None:
    west, east = Gateway("w", "w_in", "w_out", 1, 1), Gateway("e", "e_in", "e_out", 3, 1)
    stated = GatewayFlow(
        node="e", inbound_vph=(100.0, 100.0), through_vph=(9.0, 9.0), outbound_vph=(7.0, 7.0)
    )
    counted = GatewayFlow(
        node="w",
        inbound_vph=(50.0, 40.0),
        through_vph=(1.0, 1.0),
        outbound_vph=(2.0, 2.0),
        inbound_source="c/1",
    )
    outside = OutsideTrips(
        inbound=(np.array([8.0, 4.0]), np.array([4.0, 0.0])),
        outbound=(np.array([1.0, 1.0]), np.array([0.0, 6.0])),
    )
    usable = {"w_in", "w_out", "e_in", "e_out"}
    w, e = phone_flows([west, east], [counted, stated], outside, usable=usable)
    # inbound by lanes 1 : 3, the counted west keeps its count; outbound 1 : 1
    assert w.inbound_vph == (50.0, 40.0) and w.inbound_source == "c/1"
    assert e.inbound_vph == pytest.approx((12.0 * 0.75, 4.0 * 0.75)) and e.inbound_source == PHONE_SOURCE
    assert w.outbound_vph == pytest.approx((1.0, 3.0)) and w.outbound_source == PHONE_SOURCE
    assert e.through_vph == (9.0, 9.0)
    # a gateway road not in the simulated network takes no share
    w2, e2 = phone_flows([west, east], [counted, stated], outside, usable={"w_in", "e_in", "e_out"})
    assert e2.outbound_vph == pytest.approx((2.0, 6.0)) and w2.outbound_source == STATED_DEFAULT
    # a matrix without any trip from outside (its zoning within the area) leaves the stated inbound
    none_in = dataclasses.replace(outside, inbound=(np.zeros(2), np.zeros(2)))
    _, e3 = phone_flows([west, east], [counted, stated], none_in, usable=usable)
    assert e3.inbound_vph == (100.0, 100.0) and e3.inbound_source == STATED_DEFAULT
    assert e3.outbound_source == PHONE_SOURCE


# people present: hour 8 in all zones 900 + 1,700 = 2,600; hour 9: 3,100; hour 12: 9,000 (outside the window)
PRESENCE = pd.DataFrame(
    {
        "zone_id": ["sw", "ne", "sw", "ne", "ne"],
        "hour": [8, 8, 9, 9, 12],
        "count": [900.0, 1_700.0, 1_000.0, 2_100.0, 9_000.0],
    }
)


def test_peak_presence_by_hand() -> None:
    assert peak_presence(PRESENCE, [8, 9]) == Presence(3_100.0, 9)
    assert peak_presence(PRESENCE, [8]) == Presence(2_600.0, 8)
    assert peak_presence(PRESENCE, [10, 11]) is None  # no statement about hours without data
    assert peak_presence(PRESENCE.assign(hour=None), [8]) == Presence(14_700.0, None)
    assert peak_presence(None, [8]) is None


def test_presence_decides_whether_residents_only_demand_misses_the_visitors() -> None:
    facts = DemandFacts(
        residents=1_200.0, jobs=10.0, expected_person_trips=324.0, person_trips=324.0, car_trips=50.0,
        gateways=False, present=3_100.0, present_hour=9,
    )  # fmt: skip
    # 3,100 present > 2 × 1,200 residents: the caveat, although the jobs alone would not raise it
    assert demand_caveats(facts) == [
        "Incomplete demand: the phone presence counts 3,100 people in the area at 9:00 for 1,200 "
        "residents, but only residents' trips are simulated (no gateways): the trips of the people who "
        "come from outside are missing, so car flows are underestimated."
    ]
    # 2,400 present is at most twice the residents: no caveat, although the jobs alone would raise it
    assert demand_caveats(dataclasses.replace(facts, present=2_400.0, jobs=5_000.0)) == []
    assert demand_caveats(dataclasses.replace(facts, gateways=True)) == []


def test_the_prepared_scenario_carries_the_presence_of_its_window(tmp_path: Path) -> None:
    inputs = dataclasses.replace(tiny_inputs(tmp_path), mobility_presence=PRESENCE)
    prepared = prepare_scenario(inputs, Scenario.baseline_scenario(), tmp_path / "p", THREE_HOURS)
    assert (prepared.first_hour, prepared.presence) == (8, Presence(3_100.0, 9))  # the window is 8:00–11:00
    # with the phone matrix the window starts at its first hour: 7:00–9:00 sees 8:00 only
    phone = dataclasses.replace(inputs, mobility_od=PHONE_OD)
    from_phone = prepare_scenario(phone, Scenario.baseline_scenario(), tmp_path / "q", PHONE)
    assert (from_phone.first_hour, from_phone.presence) == (7, Presence(2_600.0, 8))


def test_stated_gateway_flows_follow_the_profile_and_counts_stay_hour_by_hour() -> None:
    settings = GatewaySettings(enabled=True, inbound_vph_per_lane=100.0, outbound_vph_per_lane=50.0)
    west, east = Gateway("w", "w_in", "w_out", 2, 1), Gateway("e", "e_in", "e_out", 1, 1)
    ratios = profile_ratios(PROFILE, start_hour=8, hours=3)
    assert ratios == pytest.approx([1.0, 0.5, 0.25])
    counted = GatewayFlow(
        node="w",
        inbound_vph=(300.0, 10.0, 500.0),
        through_vph=(100.0, 5.0, 90.0),
        outbound_vph=(35.0, 35.0, 35.0),
        inbound_source="c/w/1",
    )
    w, e = resolve_flows([west, east], [counted], settings, hours=3, ratios=ratios)
    # the count keeps its hours; the stated outbound 50 × 1 lane × (1 − 0.3) = 35 follows the profile
    assert (w.inbound_vph, w.through_vph) == ((300.0, 10.0, 500.0), (100.0, 5.0, 90.0))
    assert w.outbound_vph == pytest.approx((35.0, 17.5, 8.75))
    # stated inbound: 100 × 1 lane × 0.7 = 70 to the zones and 30 through, in the first hour
    assert e.inbound_vph == pytest.approx((70.0, 35.0, 17.5))
    assert e.through_vph == pytest.approx((30.0, 15.0, 7.5))
    # without ratios: the same every hour, as before
    assert resolve_flows([east], [], settings, hours=2)[0].inbound_vph == pytest.approx((70.0, 70.0))


def test_a_prepared_three_hour_window_has_profiled_gateway_trips(tmp_path: Path) -> None:
    inputs = tiny_inputs(tmp_path)
    edges, nodes = with_stubs(inputs.edges, inputs.nodes)
    inputs = dataclasses.replace(inputs, edges=edges, nodes=nodes)
    settings = GatewaySettings(enabled=True, inbound_vph_per_lane=100.0, outbound_vph_per_lane=50.0)
    params = THREE_HOURS.model_copy(update={"gateways": settings})
    prepared = prepare_scenario(inputs, Scenario.baseline_scenario(), tmp_path / "p", params)
    assert prepared.gateways is not None
    # per hour: 2 gateways × 100 in + 2 × 35 out = 270 vehicles at 8:00, × 0.5 and × 0.25 after
    assert [h.total for h in prepared.gateways.hourly] == pytest.approx([270.0, 135.0, 67.5])


def test_a_three_hour_run_in_sumo_departs_each_hour_its_trips(tmp_path: Path) -> None:
    inputs = tiny_inputs(tmp_path)
    counted = tuple(inputs.edges.loc[inputs.edges["car"].fillna(False).astype(bool), "edge_id"].astype(str))
    params = THREE_HOURS.model_copy(update={"iterations": 1, "count_edges": counted})
    prepared = prepare_scenario(inputs, Scenario.baseline_scenario(), tmp_path / "p", params)
    outcome = simulate_seed(prepared, 2, tmp_path / "run")
    assert outcome.kpis["person_trips"] == pytest.approx(648.0 + 324.0 + 162.0)
    sampled = _car_trips(prepared, mode_shares(prepared.free_flow, params.mode_choice), params, 2, 0)
    assert outcome.kpis["trips"] == len(sampled) and outcome.kpis["finished_share"] == 1.0
    # SUMO counts the profile: vehicles on the counted streets fall from hour to hour (4 : 2 : 1)
    by_hour = outcome.counts.groupby("hour")["vehicles"].sum()
    assert by_hour.loc[0] > by_hour.loc[1] > by_hour.loc[2] > 0
