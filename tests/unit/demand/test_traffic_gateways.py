"""Gateways on a hand-made network: found where roads cross the boundary, flows split by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from traffic_tiny_twin import PARAMS, tiny_inputs, with_stubs

from civictwin.engines.traffic.calibration import counted_gateway_flows
from civictwin.engines.traffic.demand import DemandError, trip_pair
from civictwin.engines.traffic.edits import apply_interventions
from civictwin.engines.traffic.gateways import (
    STATED_DEFAULT,
    Gateway,
    GatewayCount,
    GatewayFlag,
    GatewayFlow,
    GatewaySettings,
    cell_kind,
    find_gateways,
    fitted_flows,
    gateway_car_trips,
    gateway_demand,
    gateway_flows,
    road_edges,
    scaled_demand,
    stated_flow,
)
from civictwin.engines.traffic.modechoice import mode_shares
from civictwin.engines.traffic.prepare import prepare_scenario, with_gateway_factors
from civictwin.engines.traffic.report import _gateway_note
from civictwin.engines.traffic.simulate import _car_trips
from civictwin.engines.traffic.sites import CountSites
from civictwin.scenarios.spec import Scenario


def test_gateways_are_the_dead_ends_at_the_outline(tmp_path: Path) -> None:
    inputs = tiny_inputs(tmp_path)
    edges, _ = with_stubs(inputs.edges, inputs.nodes)
    found = find_gateways(edges, boundary_m=50.0)
    assert found == [
        Gateway("901", inbound_edge="900_0", outbound_edge="-900_0", inbound_lanes=1, outbound_lanes=1),
        Gateway("902", inbound_edge="901_0", outbound_edge="-901_0", inbound_lanes=1, outbound_lanes=1),
    ]
    assert find_gateways(inputs.edges, boundary_m=50.0) == []  # a closed grid has no dead end


def test_gateway_flows_by_hand() -> None:
    west = Gateway("w", "w_in", "w_out", 1, 1)
    east = Gateway("e", "e_in", "e_out", 2, 1)
    settings = GatewaySettings(
        enabled=True, inbound_vph_per_lane=100, outbound_vph_per_lane=60, through_share=0.5
    )
    demand = gateway_demand(
        [west, east],
        ["a", "b"],
        productions=np.array([2.0, 2.0]),
        attractions=np.array([1.0, 3.0]),
        edges_by_zone={"a": ["a1"], "b": ["b1", "b2"]},
        flows=[stated_flow(g, settings, hours=1) for g in (west, east)],
        usable={"w_in", "w_out", "e_in", "e_out", "a1", "b1", "b2"},
    )
    od = demand.od
    assert od.zones == ("in:w", "in:e", "out:w", "out:e", "a", "b")
    cell = {(o, d): od.trips[i, j] for i, o in enumerate(od.zones) for j, d in enumerate(od.zones)}
    # west: 100 in, half through to the only other gateway, half to a:b as 1:3
    assert (cell[("in:w", "out:e")], cell[("in:w", "a")], cell[("in:w", "b")]) == (50.0, 12.5, 37.5)
    assert cell[("in:w", "out:w")] == 0.0  # no U-turn through the area
    # east: 2 lanes = 200 in
    assert (cell[("in:e", "out:w")], cell[("in:e", "a")], cell[("in:e", "b")]) == (100.0, 25.0, 75.0)
    # outbound from the zones: 60 per lane × (1 − 0.5), by productions 2:2
    assert (cell[("a", "out:w")], cell[("b", "out:w")], cell[("a", "out:e")]) == (15.0, 15.0, 15.0)
    assert od.total == pytest.approx(300.0 + 60.0)
    assert demand.edges_by_zone["in:e"] == ["e_in"] and demand.edges_by_zone["out:w"] == ["w_out"]
    # a calibration scales cells; a cell of a gateway the matrix lacks (a closed road) is skipped
    scaled = scaled_demand(demand, {("in:w", "b"): 2.0, ("a", "out:e"): 0.0, ("in:gone", "a"): 5.0})
    cell = {(o, d): scaled.od.trips[i, j] for i, o in enumerate(od.zones) for j, d in enumerate(od.zones)}
    assert (cell[("in:w", "a")], cell[("in:w", "b")], cell[("a", "out:e")]) == (12.5, 75.0, 0.0)
    assert scaled.od.total == pytest.approx(360.0 + 37.5 - 15.0)
    # the flows say what the cells add up to: the west's inbound 12.5 + 75 of 50, the east's outbound half
    west_flow, east_flow = scaled.flows
    assert (west_flow.inbound_vph, west_flow.through_vph) == ((87.5,), (50.0,))
    assert (east_flow.inbound_vph, east_flow.outbound_vph) == ((100.0,), (15.0,))
    assert fitted_flows(demand, scaled, source="fitted")[0].inbound_source == "stated default, fitted"
    # later runs: a cell of a closed gateway is skipped, a zone the twin lacks means calibrate again
    assert with_gateway_factors(demand, [("in:gone", "a", 5.0)]).od.total == pytest.approx(360.0)
    with pytest.raises(DemandError, match=r"zone\(s\) c the twin does not have: calibrate again"):
        with_gateway_factors(demand, [("in:w", "c", 2.0)])
    closed = gateway_demand(
        [west, east], ["a", "b"], np.array([2.0, 2.0]), np.array([1.0, 3.0]),
        {"a": ["a1"], "b": ["b1"]}, [stated_flow(g, settings, hours=1) for g in (west, east)],
        usable={"w_in", "w_out", "a1", "b1"},
    )  # fmt: skip
    assert closed.od.zones == ("in:w", "out:w", "a", "b")  # the east road is closed: no trips there
    # outside the connected part: the east's inbound edge only leads into it (a one-way road in), the
    # west's inbound edge is only reached from it (a dead end behind a one-way road out): east in only
    one_way = gateway_demand(
        [west, east], ["a", "b"], np.array([2.0, 2.0]), np.array([1.0, 3.0]),
        {"a": ["a1"], "b": ["b1"]}, [stated_flow(g, settings, hours=1) for g in (west, east)],
        usable={"a1", "b1"}, entries={"e_in"}, exits={"w_in", "w_out"},
    )  # fmt: skip
    assert one_way.od.zones == ("in:e", "out:w", "a", "b")


def test_prepared_scenario_carries_gateway_trips(tmp_path: Path) -> None:
    inputs = tiny_inputs(tmp_path)
    edges, nodes = with_stubs(inputs.edges, inputs.nodes)
    inputs = type(inputs)(**{**inputs.__dict__, "edges": edges, "nodes": nodes})
    params = PARAMS.model_copy(
        update={"gateways": GatewaySettings(enabled=True, inbound_vph_per_lane=100, outbound_vph_per_lane=50)}
    )
    prepared = prepare_scenario(inputs, Scenario.baseline_scenario(), tmp_path / "net", params)
    assert prepared.gateways is not None
    od = prepared.gateways.od
    assert od.zones[:4] == ("in:901", "in:902", "out:901", "out:902")
    # 2 × 100 in; 2 × 50 × (1 − 0.3) out from the zones
    assert od.total == pytest.approx(200.0 + 70.0)
    assert od.trips[0, 3] == pytest.approx(30.0)  # 30 % of the west's 100 cross to the east
    # each seed samples them with the residents' trips: ids "g…", starting on the gateway's edge
    trips = _car_trips(prepared, mode_shares(prepared.free_flow, params.mode_choice), params, 1, 0)
    through = [t for t in trips if t.trip_id.startswith("g0_3_")]
    assert len(through) == 30 and {(t.from_edge, t.to_edge) for t in through} == {("900_0", "-901_0")}
    gateway = [t for t in trips if t.trip_id.startswith("g")]
    assert abs(len(gateway) - 270) <= np.count_nonzero(od.trips % 1)  # stochastic rounding, cell by cell
    assert not PARAMS.gateways.enabled  # off unless configured
    # the run's notes in the report say where each gateway's flows came from
    assert prepared.gateways.sources()[0] == {
        "node": "901",
        "inbound": STATED_DEFAULT,
        "through": STATED_DEFAULT,
        "outbound": STATED_DEFAULT,
    }
    assert _gateway_note(prepared.gateways.sources()) == (
        " Traffic from outside through 2 gateway(s) (901, 902: in from stated default, out from stated default)."
    )


def test_one_way_gateway_roads_carry_traffic_in_or_out(tmp_path: Path) -> None:
    """A one-way road cut by the boundary lies outside the strongly connected network (no way back),
    yet its traffic enters (or leaves) the area: the west stub only enters, the east one only leaves."""
    inputs = tiny_inputs(tmp_path)
    edges, nodes = with_stubs(inputs.edges, inputs.nodes)
    edges = edges[~edges["edge_id"].isin(["-900_0", "901_0"])].reset_index(drop=True)
    inputs = type(inputs)(**{**inputs.__dict__, "edges": edges, "nodes": nodes})
    params = PARAMS.model_copy(
        update={"gateways": GatewaySettings(enabled=True, inbound_vph_per_lane=100, outbound_vph_per_lane=50)}
    )
    modified = apply_interventions(edges, Scenario.baseline_scenario(), crs=str(edges.crs))
    assert {"900_0", "-901_0"}.isdisjoint(modified.car_edges)
    assert (modified.car_entries, modified.car_exits) == (frozenset({"900_0"}), frozenset({"-901_0"}))
    prepared = prepare_scenario(inputs, Scenario.baseline_scenario(), tmp_path / "net", params)
    assert prepared.gateways is not None
    od = prepared.gateways.od
    assert od.zones[:2] == ("in:901", "out:902")
    # 100 in at the west (30 of them through to the east's exit), 50 × (1 − 0.3) out at the east
    assert od.trips[0, 1] == pytest.approx(30.0)
    assert od.total == pytest.approx(100.0 + 35.0)
    trips = _car_trips(prepared, mode_shares(prepared.free_flow, params.mode_choice), params, 1, 0)
    assert {t.from_edge for t in trips if t.trip_id.startswith("g0_")} == {"900_0"}
    assert {t.to_edge for t in trips if t.trip_id.startswith("g") and trip_pair(t.trip_id)[1] == 1} == {
        "-901_0"
    }


def test_gateway_flows_come_from_counts_on_the_gateway_road_and_bad_counts_are_flagged(
    tmp_path: Path,
) -> None:
    inputs = tiny_inputs(tmp_path)
    edges, _ = with_stubs(inputs.edges, inputs.nodes)
    west, east = find_gateways(edges, boundary_m=50.0)
    settings = GatewaySettings(enabled=True, inbound_vph_per_lane=100, outbound_vph_per_lane=50)
    counts = [
        GatewayCount("c/west/1", "900_0", "inbound", (300.0, 150.0)),  # into the area at 901: used
        GatewayCount("c/east/2", "901_0", "outbound", (80.0, 90.0)),  # heading out on the edge coming in
        GatewayCount("c/east/1", "-901_0", "outbound", (2000.0, 100.0)),  # above the edge's 900 veh/h
    ]
    flows, flags = gateway_flows([west, east], counts, edges, settings, hours=2)
    by_node = {f.node: f for f in flows}
    # west: the count's 300 and 150 split by the through share 0.3; outbound the stated 50 × 1 × 0.7
    assert by_node["901"].inbound_vph == pytest.approx((210.0, 105.0))
    assert by_node["901"].through_vph == pytest.approx((90.0, 45.0))
    assert by_node["901"].outbound_vph == pytest.approx((35.0, 35.0))
    assert (by_node["901"].inbound_source, by_node["901"].outbound_source) == ("c/west/1", STATED_DEFAULT)
    # east: both counts rejected, so the stated defaults: 100 × 0.7 in, 100 × 0.3 through
    assert by_node["902"] == stated_flow(east, settings, hours=2)
    assert by_node["902"].inbound_vph == pytest.approx((70.0, 70.0))
    assert [(f.site, f.node) for f in flags] == [("c/east/2", "902"), ("c/east/1", "902")]
    assert "contradicts the edge" in flags[0].reason
    assert "above the capacity 900 veh/h of edge -901_0" in flags[1].reason
    assert road_edges(west, edges) == {"900_0": "inbound", "-900_0": "outbound"}  # node 5 branches
    # a road that goes on unbranched past its first node: the next edge's count is the gateway's too
    road = pd.DataFrame(
        {
            "edge_id": ["in", "next", "back", "out"],
            "from_node": ["1", "2", "3", "2"],
            "to_node": ["2", "3", "2", "1"],
        }
    )
    assert road_edges(Gateway("1", "in", "out", 1, 1), road) == {
        "in": "inbound",
        "next": "inbound",
        "out": "outbound",
        "back": "outbound",
    }


def test_gateway_trips_follow_the_hourly_flows(tmp_path: Path) -> None:
    west = Gateway("w", "w_in", "w_out", 1, 1)
    east = Gateway("e", "e_in", "e_out", 1, 1)
    flows = [
        GatewayFlow(node="w", inbound_vph=(0.0, 0.0), through_vph=(40.0, 10.0), outbound_vph=(0.0, 0.0)),
        GatewayFlow(node="e", inbound_vph=(0.0, 0.0), through_vph=(0.0, 0.0), outbound_vph=(0.0, 0.0)),
    ]
    usable = {"w_in", "w_out", "e_in", "e_out", "a1"}
    args = ([west, east], ["a"], np.array([1.0]), np.array([1.0]), {"a": ["a1"]}, flows)
    demand = gateway_demand(*args, usable=usable, window_s=5400.0)  # 1.5 hours
    through = [(od.trips[0, 3]) for od in demand.hourly]  # in:w → out:e
    assert through == pytest.approx([40.0, 5.0])  # the second hour counts half
    trips = gateway_car_trips(demand, seed=1, iteration=0)
    first = [t for t in trips if t.trip_id.startswith("g0_")]
    second = [t for t in trips if t.trip_id.startswith("g1h0_")]
    assert len(first) == 40 and all(0 <= t.depart_s < 3600 for t in first)
    assert len(second) == 5 and all(3600 <= t.depart_s < 5400 for t in second)
    assert cell_kind((demand.od.zones[0], demand.od.zones[3])) == ("w", "through")
    doubled = scaled_demand(demand, {("in:w", "out:e"): 2.0})
    assert [od.trips[0, 3] for od in doubled.hourly] == pytest.approx([80.0, 10.0])
    assert doubled.flows[0].through_vph == pytest.approx((80.0, 20.0))


def test_count_sites_on_gateway_roads_give_the_prior_flows_over_a_two_hour_window(tmp_path: Path) -> None:
    inputs = tiny_inputs(tmp_path)
    edges, _ = with_stubs(inputs.edges, inputs.nodes)
    hourly = pd.DataFrame(
        {
            "site": ["c/w/1"] * 3 + ["c/e/2"] * 3,
            "edge_id": ["900_0"] * 3 + ["-901_0"] * 3,
            "hour": [8, 9, 10] * 2,  # clock hours; the window is 08:00–10:00
            "observed": [400.0, 200.0, 999.0, 50.0, 60.0, 70.0],
        }
    )
    sites = pd.DataFrame(
        {
            "site": ["c/w/1", "c/e/2"],
            "edge_id": ["900_0", "-901_0"],
            "heading": ["inbound", "outbound"],
            "status": ["used", "excluded"],
            "reasons": ["", "ambiguous match: another street within 10 m"],
        }
    )
    params = PARAMS.model_copy(
        update={"demand_window_s": 7200.0, "gateways": GatewaySettings(enabled=True, through_share=0.25)}
    )
    flows, flags = counted_gateway_flows(edges, CountSites(sites=sites, hourly=hourly), params)
    west = {f.node: f for f in flows}["901"]
    assert west.inbound_vph == pytest.approx((300.0, 150.0))  # 400 and 200 × (1 − 0.25)
    assert west.through_vph == pytest.approx((100.0, 50.0))
    assert west.inbound_source == "c/w/1" and west.outbound_source == STATED_DEFAULT
    assert flags == [
        GatewayFlag("c/e/2", "902", "excluded as a count site: ambiguous match: another street within 10 m")
    ]
    assert counted_gateway_flows(edges, CountSites(sites=sites, hourly=hourly), PARAMS) == ([], [])  # off
