"""Gateways on a hand-made network: found where roads cross the boundary, flows split by hand."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from traffic_tiny_twin import ORIGIN, PARAMS, tiny_inputs

from civictwin.engines.traffic.gateways import Gateway, GatewaySettings, find_gateways, gateway_demand
from civictwin.engines.traffic.modechoice import mode_shares
from civictwin.engines.traffic.prepare import prepare_scenario
from civictwin.engines.traffic.simulate import _car_trips
from civictwin.scenarios.spec import Scenario

X0, Y0 = ORIGIN


def with_stubs(edges: gpd.GeoDataFrame, nodes: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """The 4 × 4 grid (200 m blocks) with two roads leaving it: west of node 5 (row 1, column 0) and
    east of node 12 (row 2, column 3), 100 m long, two-way, one lane each way."""
    template = edges.iloc[0].to_dict()
    stubs = []
    for way, (inner, outer, xy_in, xy_out) in enumerate(
        [
            (5, 901, (X0, Y0 + 200), (X0 - 100, Y0 + 200)),
            (12, 902, (X0 + 600, Y0 + 400), (X0 + 700, Y0 + 400)),
        ]
    ):
        line = shapely.LineString([xy_out, xy_in])
        common = {**template, "osm_id": 900 + way, "name": f"Stub {way}", "length_m": 100.0, "lanes": 1}
        stubs.append(
            {**common, "edge_id": f"{900 + way}_0", "from_node": outer, "to_node": inner, "geometry": line}
        )
        stubs.append(
            {
                **common,
                "edge_id": f"-{900 + way}_0",
                "from_node": inner,
                "to_node": outer,
                "geometry": shapely.reverse(line),
            }
        )
    more_nodes = gpd.GeoDataFrame(
        {"node_id": [901, 902], "degree": [1, 1]},
        geometry=[shapely.Point(X0 - 100, Y0 + 200), shapely.Point(X0 + 700, Y0 + 400)],
        crs=nodes.crs,
    )
    added = gpd.GeoDataFrame(stubs, geometry="geometry", crs=edges.crs)
    return (
        pd.concat([edges, added], ignore_index=True),
        pd.concat([nodes, more_nodes], ignore_index=True),
    )


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
        settings=settings,
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
    closed = gateway_demand(
        [west, east], ["a", "b"], np.array([2.0, 2.0]), np.array([1.0, 3.0]),
        {"a": ["a1"], "b": ["b1"]}, settings, usable={"w_in", "w_out", "a1", "b1"},
    )  # fmt: skip
    assert closed.od.zones == ("in:w", "out:w", "a", "b")  # the east road is closed: no trips there


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
