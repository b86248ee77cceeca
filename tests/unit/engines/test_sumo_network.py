"""The SUMO network built from the twin's edges: ids, permissions, speeds, lanes, directions, additionals."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
import shapely
import sumolib

from civictwin.engines.registry import intervention_catalog
from civictwin.engines.traffic.edits import ModifiedNetwork, apply_interventions
from civictwin.engines.traffic.engine import TrafficEngine
from civictwin.engines.traffic.network import (
    SumoNetwork,
    build_sumo_network,
    chain_edges,
    connected_parts,
    net_edge_ids,
)
from civictwin.engines.traffic.synthetic import grid_network
from civictwin.errors import EngineError
from civictwin.scenarios.spec import parse_scenario

CATALOG = intervention_catalog([TrafficEngine()])

CRS = "EPSG:32635"
ORIGIN = (385_000.0, 6_671_000.0)
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


def carrier(network: SumoNetwork, net: Any, edge_id: str) -> Any:
    """The SUMO edge carrying a twin edge (itself, or the merged chain it belongs to)."""
    return net.getEdge(network.chains.set_index("edge_id").at[edge_id, "sumo_edge"])


def test_baseline_keeps_ids_speeds_lanes_and_directions(grid: Grid, tmp_path: Path) -> None:
    edges, _ = grid
    network, net = build(grid, tmp_path)
    assert network.edge_ids == frozenset(edges["edge_id"]) and network.dropped_edges == frozenset()
    main = net.getEdge("101_0")
    assert main.getLaneNumber() == 2 and main.getSpeed() == pytest.approx(50 / 3.6, abs=0.01)
    assert (main.getFromNode().getID(), main.getToNode().getID()) == ("4", "5")
    assert net.getEdge("-101_0").getFromNode().getID() == "5"
    assert main.getLength() == pytest.approx(200.0)
    assert main.getPriority() == 11 and carrier(network, net, "200_0").getPriority() == 7
    residential = carrier(network, net, "200_0")
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
    x, y = net.getNode("4").getCoord()
    assert (x, y) == pytest.approx((385_000.0, 6_671_200.0))


def test_closed_to_cars(grid: Grid, tmp_path: Path) -> None:
    network, net = build(
        grid, tmp_path, {"type": "close_streets", "streets": ["Main Street"], "modes": ["car"]}
    )
    for edge_id in MAIN:
        for lane in net.getEdge(edge_id).getLanes():
            assert not lane.allows("passenger")
            assert lane.allows("bus") and lane.allows("bicycle") and lane.allows("pedestrian")
    assert carrier(network, net, "100_0").getLanes()[0].allows("passenger")


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
    network, net = build(grid, tmp_path, {"type": "speed_limit", "streets": ["Main Street"], "speed_kmh": 30})
    assert {round(net.getEdge(e).getSpeed(), 2) for e in MAIN} == {round(30 / 3.6, 2)}
    assert carrier(network, net, "100_0").getSpeed() == pytest.approx(30 / 3.6, abs=0.01)


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
    broken.loc[broken["edge_id"] == "101_0", "edge_id"] = "bad id\u0001"  # a character XML cannot hold
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


def street(rows: list[tuple[str, int, int, float]], points: dict[int, tuple[float, float]]) -> Grid:
    """A hand-made network: (edge id, from node, to node, speed km/h) rows over node coordinates."""
    edges = gpd.GeoDataFrame(
        {
            "edge_id": [r[0] for r in rows],
            "from_node": [r[1] for r in rows],
            "to_node": [r[2] for r in rows],
            "speed_kmh": [r[3] for r in rows],
            "highway": "residential",
            "lanes": 1,
            "car": True,
            "length_m": [math.dist(points[r[1]], points[r[2]]) for r in rows],
        },
        geometry=[shapely.LineString([points[r[1]], points[r[2]]]) for r in rows],
        crs=CRS,
    )
    nodes = gpd.GeoDataFrame(
        {"node_id": list(points)}, geometry=[shapely.Point(p) for p in points.values()], crs=CRS
    )
    return edges, nodes


# A street 1–2–3–4 (split at 2 and 3, which join nothing else), a crossing street 5–4–6, and a one-way
# spur 4→7→8 (7 joins nothing else).
POINTS = {1: (0.0, 0.0), 2: (10.0, 0.0), 3: (30.0, 0.0), 4: (60.0, 0.0), 5: (60.0, 50.0), 6: (60.0, -50.0)}
POINTS |= {7: (90.0, 0.0), 8: (110.0, 0.0), 9: (130.0, 20.0)}
ROWS = [
    ("a_0", 1, 2, 30.0),
    ("-a_0", 2, 1, 30.0),
    ("a_1", 2, 3, 30.0),
    ("-a_1", 3, 2, 30.0),
    ("a_2", 3, 4, 30.0),
    ("-a_2", 4, 3, 30.0),
    ("b_0", 5, 4, 30.0),
    ("-b_0", 4, 5, 30.0),
    ("b_1", 4, 6, 30.0),
    ("-b_1", 6, 4, 30.0),
    ("c_0", 4, 7, 30.0),
    ("c_1", 7, 8, 30.0),
    ("c_2", 8, 9, 30.0),
]


def test_chains_merge_runs_through_nodes_that_join_nothing_else() -> None:
    edges, _ = street(ROWS, POINTS)
    merged, chains = chain_edges(edges)
    by_edge = chains.set_index("edge_id")
    assert by_edge.loc[["a_0", "a_1", "a_2"], "sumo_edge"].tolist() == ["a_0"] * 3
    assert by_edge.loc[["a_0", "a_1", "a_2"], "start_m"].tolist() == [0.0, 10.0, 30.0]
    assert by_edge.loc[["a_0", "a_1", "a_2"], "length_m"].tolist() == [10.0, 20.0, 30.0]
    assert by_edge.loc[["-a_2", "-a_1", "-a_0"], "start_m"].tolist() == [0.0, 30.0, 50.0]
    assert set(by_edge.loc[["-a_2", "-a_1", "-a_0"], "sumo_edge"]) == {"-a_2"}
    assert by_edge.loc[["c_0", "c_1"], "sumo_edge"].tolist() == ["c_0", "c_0"]  # one-way through node 7
    assert by_edge.at["c_2", "sumo_edge"] == "c_2"  # node 8 joins nothing else, but the street bends 45°
    assert (by_edge.loc[["b_0", "-b_0", "b_1", "-b_1"], "sumo_edge"] == ["b_0", "-b_0", "b_1", "-b_1"]).all()
    assert sorted(merged["edge_id"]) == sorted(["a_0", "-a_2", "b_0", "-b_0", "b_1", "-b_1", "c_0", "c_2"])
    street_a = merged.set_index("edge_id").loc["a_0"]
    assert (street_a["from_node"], street_a["to_node"], street_a["length_m"]) == (1, 4, 60.0)
    assert shapely.get_coordinates(street_a.geometry).tolist() == [[0, 0], [10, 0], [30, 0], [60, 0]]
    assert chains.loc[chains["sumo_edge"] == "a_0", "sumo_length_m"].tolist() == [60.0] * 3


def test_chains_stop_at_changed_attributes_kept_nodes_and_loops() -> None:
    rows = [(e, a, b, 50.0 if e in ("a_2", "-a_2") else s) for e, a, b, s in ROWS]
    edges, _ = street(rows, POINTS)
    _, chains = chain_edges(edges, keep_nodes=[2])
    by_edge = chains.set_index("edge_id")["sumo_edge"]
    assert by_edge[["a_0", "a_1", "a_2"]].tolist() == ["a_0", "a_1", "a_2"]  # kept node 2; speed at 3
    assert chain_edges(edges, keep_nodes=None)[1]["sumo_edge"].tolist() == edges["edge_id"].tolist()
    # a one-way ring of 30 edges (12° bends) leaving and re-entering node 0, where a side street joins
    ring = {k: (100 * math.cos(k * math.pi / 15), 100 * math.sin(k * math.pi / 15)) for k in range(30)}
    ring[99] = (200.0, 0.0)
    loop_rows = [(f"r_{k}", k, (k + 1) % 30, 30.0) for k in range(30)] + [("s_0", 99, 0, 30.0)]
    merged, loop_chains = chain_edges(street(loop_rows, ring)[0])
    ring_edges = merged[merged["edge_id"].str.startswith("r")].set_index("edge_id")
    assert ring_edges[["from_node", "to_node"]].to_dict("index") == {
        "r_0": {"from_node": 0, "to_node": 15},
        "r_15": {"from_node": 15, "to_node": 0},
    }  # a loop would be an edge from node 0 to itself: it is split in two
    assert loop_chains["sumo_edge"].value_counts().to_dict() == {"r_0": 15, "r_15": 15, "s_0": 1}


def test_merged_network_has_the_same_turns_between_twin_edges(blocks: Grid, tmp_path: Path) -> None:
    edges, nodes = blocks
    merged = build_sumo_network(edges, nodes, tmp_path / "m")
    single = build_sumo_network(edges, nodes, tmp_path / "s", merge_chains=False)
    # 24 street edges in pairs, 12 avenue edges alone; the grid's corners turn 90°: no merging there
    assert merged.chains["sumo_edge"].nunique() == 24 and single.chains["sumo_edge"].nunique() == 36
    assert merged.edge_ids == single.edge_ids == frozenset(edges["edge_id"])
    main = merged.chains.set_index("edge_id").loc[["101_0", "101_1", "-101_1", "-101_0"]]
    assert main["sumo_edge"].tolist() == ["101_0", "101_0", "-101_1", "-101_1"]
    assert main["start_m"].tolist() == [0.0, 100.0, 0.0, 100.0]

    def turns(network: SumoNetwork) -> set[tuple[str, str]]:
        """Every move from one twin edge to the next: inside a merged edge, or through a junction."""
        chains = network.chains
        along = chains["sumo_edge"].eq(chains["sumo_edge"].shift(-1))
        inside = set(zip(chains["edge_id"][along], chains["edge_id"].shift(-1)[along], strict=True))
        last = chains.drop_duplicates("sumo_edge", keep="last").set_index("sumo_edge")["edge_id"]
        first = chains.drop_duplicates("sumo_edge", keep="first").set_index("sumo_edge")["edge_id"]
        net = sumolib.net.readNet(str(network.net_file))
        through = {
            (last[edge.getID()], first[target.getID()])
            for edge in net.getEdges()
            for target in edge.getOutgoing()
        }
        return inside | through

    assert turns(merged) == turns(single)


def two_islands() -> Grid:
    """A 2×2 grid (edges 100_0 … -201_0, nodes 1–4) and a copy 5 km east (edges i100_0 …, nodes 1001–1004),
    joined by nothing: two street networks in one table, as a tiled extract has."""
    edges, nodes = grid_network(2, 2, 100.0, origin=ORIGIN)
    far_edges = edges.assign(
        edge_id="i" + edges["edge_id"], from_node=edges["from_node"] + 1000, to_node=edges["to_node"] + 1000
    )
    far_edges = far_edges.set_geometry(far_edges.geometry.translate(xoff=5000.0))
    far_nodes = nodes.assign(node_id=nodes["node_id"] + 1000).set_geometry(
        nodes.geometry.translate(xoff=5000.0)
    )
    both_edges = gpd.GeoDataFrame(pd.concat([edges, far_edges], ignore_index=True), crs=edges.crs)
    both_nodes = gpd.GeoDataFrame(pd.concat([nodes, far_nodes], ignore_index=True), crs=nodes.crs)
    return both_edges, both_nodes


def test_parts_no_trip_reaches_are_left_out(tmp_path: Path) -> None:
    edges, nodes = two_islands()
    near = set(edges["edge_id"][:8])
    far = set(edges["edge_id"][8:])
    # one anchor per part keeps the whole part, in both directions of travel
    assert connected_parts(edges, {"-201_0"}).tolist() == [True] * 8 + [False] * 8
    assert connected_parts(edges, {"i100_0"}).tolist() == [False] * 8 + [True] * 8
    assert connected_parts(edges, set()).tolist() == [False] * 16
    network = build_sumo_network(edges, nodes, tmp_path / "near", reachable_from={"100_0"})
    assert network.edge_ids == near and network.dropped_edges == far
    assert net_edge_ids(network.net_file) == set(network.chains["sumo_edge"])
    assert set(network.chains["edge_id"]) == near
    # a counting edge keeps its part (counted, even if nothing drives there)
    counted = build_sumo_network(
        edges, nodes, tmp_path / "counted", reachable_from={"100_0"}, count_edges=["i101_0"]
    )
    assert counted.edge_ids == near | far and counted.dropped_edges == frozenset()
    # without reachable_from every edge is written, as before
    assert build_sumo_network(edges, nodes, tmp_path / "all").edge_ids == near | far
