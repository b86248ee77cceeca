"""The SUMO network built from the twin's edges: ids, permissions, speeds, lanes, directions, additionals."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import sumolib

from civictwin.engines.registry import intervention_catalog
from civictwin.engines.traffic.edits import ModifiedNetwork, apply_interventions
from civictwin.engines.traffic.engine import TrafficEngine
from civictwin.engines.traffic.network import SumoNetwork, build_sumo_network, net_edge_ids
from civictwin.errors import EngineError
from civictwin.scenarios.spec import parse_scenario

CATALOG = intervention_catalog([TrafficEngine()])

CRS = "EPSG:32635"
Grid = tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]
MAIN = ["101_0", "-101_0", "101_1", "-101_1"]


def plan(edges: gpd.GeoDataFrame, *interventions: dict[str, Any]) -> ModifiedNetwork:
    scenario = parse_scenario(
        {"name": "plan", "interventions": list(interventions)}, CATALOG, origin="plan.toml"
    )
    return apply_interventions(edges, scenario, crs=CRS)


def build(grid: Grid, tmp_path: Path, *interventions: dict[str, Any]) -> tuple[SumoNetwork, Any]:
    edges, nodes = grid
    modified = plan(edges, *interventions)
    network = build_sumo_network(modified.edges, nodes, tmp_path / "net", additionals=modified.additionals)
    return network, sumolib.net.readNet(str(network.net_file))


def test_baseline_keeps_ids_speeds_lanes_and_directions(grid: Grid, tmp_path: Path) -> None:
    edges, _ = grid
    network, net = build(grid, tmp_path)
    assert network.edge_ids == frozenset(edges["edge_id"]) and network.dropped_edges == frozenset()
    main = net.getEdge("101_0")
    assert main.getLaneNumber() == 2 and main.getSpeed() == pytest.approx(50 / 3.6, abs=0.01)
    assert (main.getFromNode().getID(), main.getToNode().getID()) == ("4", "5")
    assert net.getEdge("-101_0").getFromNode().getID() == "5"
    assert main.getLength() == pytest.approx(200.0)
    assert main.getPriority() == 11 and net.getEdge("200_0").getPriority() == 7
    residential = net.getEdge("200_0")
    assert residential.getLaneNumber() == 1 and residential.getSpeed() == pytest.approx(30 / 3.6, abs=0.01)
    lane = residential.getLanes()[0]
    assert {v for v in ("passenger", "bus", "bicycle", "pedestrian") if lane.allows(v)} == {
        "passenger",
        "bus",
        "bicycle",
        "pedestrian",
    }
    assert main.getName() == "Main Street"
    # coordinates stay in the twin's CRS
    x, y = net.getNode("1").getCoord()
    assert (x, y) == pytest.approx((385_000.0, 6_671_000.0))


def test_closed_to_cars(grid: Grid, tmp_path: Path) -> None:
    _, net = build(grid, tmp_path, {"type": "close_streets", "streets": ["Main Street"], "modes": ["car"]})
    for edge_id in MAIN:
        for lane in net.getEdge(edge_id).getLanes():
            assert not lane.allows("passenger")
            assert lane.allows("bus") and lane.allows("bicycle") and lane.allows("pedestrian")
    assert net.getEdge("100_0").getLanes()[0].allows("passenger")


def test_closed_to_everything_keeps_the_edge(grid: Grid, tmp_path: Path) -> None:
    network, net = build(grid, tmp_path, {"type": "close_streets", "edge_ids": ["200_0"]})
    assert "200_0" in network.edge_ids
    assert net.getEdge("200_0").getLanes()[0].getPermissions() == set()


def test_one_way_and_reverse(grid: Grid, tmp_path: Path) -> None:
    _, net = build(
        grid,
        tmp_path,
        {"type": "one_way", "streets": ["Main Street"]},
        {"type": "reverse", "streets": ["Main Street"]},
    )
    assert all(not lane.allows("passenger") for lane in net.getEdge("101_0").getLanes())
    assert all(lane.allows("passenger") for lane in net.getEdge("-101_0").getLanes())


def test_reverse_without_twin_flips_the_direction_in_sumo(grid: Grid, tmp_path: Path) -> None:
    edges, nodes = grid
    one_way = edges[edges["edge_id"] != "-202_0"].reset_index(drop=True)
    build_grid = (one_way, nodes)
    _, net = build(build_grid, tmp_path, {"type": "reverse", "edge_ids": ["202_0"]})
    edge = net.getEdge("202_0")
    assert (edge.getFromNode().getID(), edge.getToNode().getID()) == ("6", "3")


def test_speed_limit(grid: Grid, tmp_path: Path) -> None:
    _, net = build(grid, tmp_path, {"type": "speed_limit", "streets": ["Main Street"], "speed_kmh": 30})
    assert {round(net.getEdge(e).getSpeed(), 2) for e in MAIN} == {round(30 / 3.6, 2)}
    assert net.getEdge("100_0").getSpeed() == pytest.approx(30 / 3.6, abs=0.01)


def test_bus_lane_is_lane_zero_for_buses_only(grid: Grid, tmp_path: Path) -> None:
    _, net = build(grid, tmp_path, {"type": "bus_lane", "streets": ["Main Street"]})
    for edge_id in MAIN:
        right, left = net.getEdge(edge_id).getLanes()
        assert right.getPermissions() == {"bus"}
        assert left.allows("passenger") and left.allows("bus")


def test_pedestrianised_edges_allow_walking_only(grid: Grid, tmp_path: Path) -> None:
    _, net = build(grid, tmp_path, {"type": "pedestrianise", "osm_ids": [201], "allow_bikes": False})
    for edge_id in ("201_0", "-201_0", "201_1", "-201_1"):
        assert net.getEdge(edge_id).getLanes()[0].getPermissions() == {"pedestrian"}


def test_modal_filter_withdraws_cars_from_connections_through_the_node(
    grid: Grid, tmp_path: Path, lonlat: Callable[..., Any], net_connections: Callable[..., Any]
) -> None:
    network, net = build(grid, tmp_path, {"type": "modal_filter", "at": lonlat(200, 200), "radius_m": 10})
    into_five = {e.getID() for e in net.getNode("5").getIncoming()}
    through = [c for c in net_connections(network.net_file) if c["from"] in into_five]
    assert through, "node 5 has connections"
    for con in through:
        u_turn = con["to"] == (con["from"][1:] if con["from"].startswith("-") else "-" + con["from"])
        banned = set(con.get("disallow", "").split())
        if u_turn:
            assert not banned
        else:
            assert {"passenger", "bus"} <= banned, con
    others = [c for c in net_connections(network.net_file) if c["from"] not in into_five]
    assert all("disallow" not in c for c in others)
    assert network.edge_ids == frozenset(grid[0]["edge_id"])


def test_works_closure_becomes_a_rerouter(grid: Grid, tmp_path: Path) -> None:
    network, _ = build(
        grid, tmp_path, {"type": "works_closure", "edge_ids": ["101_1"], "begin_s": 60, "end_s": 600}
    )
    (add_file,) = network.additional_files
    rerouter = ET.parse(add_file).getroot().find("rerouter")
    assert rerouter is not None and rerouter.get("id") == "works_0"
    # the closed edge and every edge leading into its start node (5)
    assert set(rerouter.get("edges", "").split()) == {"101_1", "101_0", "-101_1", "201_0", "-201_1"}
    interval = rerouter.find("interval")
    assert interval is not None and (interval.get("begin"), interval.get("end")) == ("60", "600")
    closings = [(c.get("id"), c.get("disallow")) for c in interval.iter("closingReroute")]
    assert closings == [("101_1", "passenger")]


def test_missing_node_is_an_engine_error(grid: Grid, tmp_path: Path) -> None:
    edges, nodes = grid
    with pytest.raises(EngineError, match=r"network_nodes: edges reference node\(s\) 5 missing"):
        build_sumo_network(edges, nodes[nodes["node_id"] != 5], tmp_path)


def test_netconvert_failure_quotes_sumo(grid: Grid, tmp_path: Path) -> None:
    edges, nodes = grid
    broken = edges.copy()
    broken.loc[0, "edge_id"] = "bad id\u0001"  # a control character XML cannot hold
    with pytest.raises(EngineError) as info:
        build_sumo_network(broken, nodes, tmp_path)
    message = info.value.user_message()
    assert message.startswith("building the SUMO network: netconvert failed (exit 1): Error:")
    assert "invalid character 0x1 in attribute value 'id'" in message and "\n" not in message


def test_duplicate_edge_ids_are_refused(grid: Grid, tmp_path: Path) -> None:
    edges, nodes = grid
    edges.loc[0, "edge_id"] = "-100_1"
    with pytest.raises(EngineError, match="network_edges: duplicate edge id"):
        build_sumo_network(edges, nodes, tmp_path)


def test_names_with_markup_characters_and_missing_values_reach_sumo(grid: Grid, tmp_path: Path) -> None:
    edges, nodes = grid
    edges = edges.astype({"lanes": float})
    edges.loc[edges["edge_id"] == "101_0", "name"] = 'Main & "Market" <Street>'
    edges.loc[edges["edge_id"] == "100_0", ["lanes", "highway"]] = [float("nan"), None]
    net = sumolib.net.readNet(str(build_sumo_network(edges, nodes, tmp_path).net_file))
    assert net.getEdge("101_0").getName() == 'Main & "Market" <Street>'
    plain = net.getEdge("100_0")  # no lane count or class: one lane, the lowest priority
    assert plain.getLaneNumber() == 1 and plain.getPriority() == 4


def test_net_edge_ids_lists_normal_edges_and_refuses_other_layouts(tmp_path: Path) -> None:
    net_file = tmp_path / "x.net.xml"
    net_file.write_text(
        '<net>\n    <edge id=":J1_0" function="internal">\n    </edge>\n'
        '    <edge id="a&amp;b" from="J0" to="J1" priority="7">\n    </edge>\n'
        '    <edge id="-a_0" from="J1" to="J0" priority="7">\n    </edge>\n</net>\n',
        encoding="utf-8",
    )
    assert net_edge_ids(net_file) == frozenset({"a&b", "-a_0"})
    net_file.write_text('<net>\n    <edge from="J0" id="a" to="J1">\n    </edge>\n</net>\n', encoding="utf-8")
    with pytest.raises(EngineError, match=r"x\.net\.xml: edges not written as"):
        net_edge_ids(net_file)
