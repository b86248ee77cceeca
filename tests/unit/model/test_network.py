"""The routable network: splitting at shared nodes, directions, permissions, speeds and capacity."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from civictwin.model.network import build_network, parse_maxspeed

ROAD_COLUMNS = ("lanes", "maxspeed", "oneway", "oneway_bicycle", "junction", "access", "vehicle",
                "motor_vehicle", "motorcar", "bicycle", "foot", "busway")  # fmt: skip


def roads(*ways: tuple[int, str, list[int], list[tuple[float, float]], dict[str, str]]) -> gpd.GeoDataFrame:
    """A roads layer from (osm_id, highway, node refs, vertex coordinates, extra tags)."""
    rows = []
    for osm_id, highway, refs, coords, tags in ways:
        row = {"osm_id": osm_id, "highway": highway, "name": f"way {osm_id}", "node_refs": refs,
               "geometry": shapely.LineString(coords)}  # fmt: skip
        row.update({column: tags.get(column) for column in ROAD_COLUMNS})
        rows.append(row)
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry="geometry", crs="EPSG:32635")


def crossing() -> gpd.GeoDataFrame:
    """A two-way residential street (1-2-3) crossed at node 2 by a one-way primary (4-2-5)."""
    return roads(
        (10, "residential", [1, 2, 3], [(0, 0), (100, 0), (300, 0)], {}),
        (20, "primary", [4, 2, 5], [(100, -50), (100, 0), (100, 150)], {"oneway": "yes", "lanes": "2"}),
    )


def test_ways_split_at_shared_nodes_into_directed_edges() -> None:
    network = build_network(crossing())
    edges = network.edges.set_index("edge_id")
    assert sorted(edges.index) == sorted(["10_1", "10_2", "-10_1", "-10_2", "20_1", "20_2", "-20_1", "-20_2"])
    assert edges.loc["10_1", ["from_node", "to_node"]].tolist() == [1, 2]
    assert edges.loc["-10_2", ["from_node", "to_node"]].tolist() == [3, 2]
    assert edges.loc["10_2", "length_m"] == 200.0
    assert edges.loc["20_2", "length_m"] == 150.0
    assert list(edges.loc["-10_2"].geometry.coords) == [(300, 0), (100, 0)]
    nodes = network.nodes.set_index("node_id")
    assert sorted(nodes.index) == [1, 2, 3, 4, 5]
    assert nodes.loc[2, "degree"] == 8
    assert nodes.loc[2].geometry.coords[0] == (100, 0)


def test_oneway_closes_cars_and_bikes_against_the_flow_but_not_pedestrians() -> None:
    edges = build_network(crossing()).edges.set_index("edge_id")
    assert edges.loc["20_1", ["car", "bike", "walk"]].tolist() == [True, True, True]
    assert edges.loc["-20_1", ["car", "bike", "walk"]].tolist() == [False, False, True]
    assert edges.loc["-10_1", ["car", "bike", "walk"]].tolist() == [True, True, True]


def test_speed_and_capacity_from_tags_and_defaults() -> None:
    edges = build_network(crossing()).edges.set_index("edge_id")
    # primary, one-way with 2 lanes: 2 × 1500 veh/h; untagged urban primary: 50 km/h
    assert edges.loc["20_1", ["lanes", "capacity_vph", "speed_kmh"]].tolist() == [2, 3000, 50.0]
    assert pd.isna(edges.loc["20_1", "maxspeed_kmh"])
    # residential, two-way, no lanes tag: 1 lane per direction × 600 veh/h; 30 km/h default
    assert edges.loc["10_1", ["lanes", "capacity_vph", "speed_kmh"]].tolist() == [1, 600, 30.0]


def test_access_tags_override_defaults() -> None:
    network = build_network(roads(
        (1, "footway", [1, 2], [(0, 0), (10, 0)], {"bicycle": "yes"}),
        (2, "residential", [3, 4], [(0, 10), (10, 10)], {"motor_vehicle": "no"}),
        (3, "service", [5, 6], [(0, 20), (10, 20)], {"access": "private", "foot": "yes"}),
        (4, "cycleway", [7, 8], [(0, 30), (10, 30)], {"foot": "no"}),
    ))  # fmt: skip
    edges = network.edges.set_index("edge_id")
    assert edges.loc["1_1", ["car", "bike", "walk"]].tolist() == [False, True, True]
    assert edges.loc["2_1", ["car", "bike", "walk"]].tolist() == [False, True, True]
    assert edges.loc["3_1", ["car", "bike", "walk"]].tolist() == [False, False, True]
    assert edges.loc["4_1", ["car", "bike", "walk"]].tolist() == [False, True, False]


def test_closed_loop_is_split_so_no_edge_starts_where_it_ends() -> None:
    loop = roads((7, "residential", [1, 2, 3, 4, 1], [(0, 0), (50, 0), (50, 50), (0, 50), (0, 0)],
                  {"junction": "roundabout"}))  # fmt: skip
    edges = build_network(loop).edges
    assert (edges["from_node"] != edges["to_node"]).all()
    assert sorted(edges["edge_id"]) == ["-7_1", "-7_2", "7_1", "7_2"]
    forward = edges[edges["edge_id"].str.startswith("7")]
    assert forward["car"].all() and not edges[edges["edge_id"].str.startswith("-")]["car"].any()
    assert forward["length_m"].sum() == 200.0


def test_connectivity_share_counts_the_largest_strong_component() -> None:
    network = build_network(roads(
        (1, "residential", [1, 2, 3], [(0, 0), (10, 0), (20, 0)], {}),
        (2, "residential", [8, 9], [(100, 0), (110, 0)], {"oneway": "yes"}),
    ))  # fmt: skip
    # way 1 has no shared node, so it is one segment: 2 directed car edges forming one strong
    # component; the lone one-way edge is a component of its own.
    assert network.quality["car_edges"] == 3
    assert network.quality["car_largest_component_share"] == 0.6667


@pytest.mark.parametrize(
    ("tag", "kmh"),
    [("50", 50.0), ("30 mph", 48.28), ("FI:urban", 50.0), ("DE:living_street", 20.0), ("walk", 7.0),
     ("none", 130.0), ("fast", None), ("0", None), ("40;50", 40.0), (None, None)],
)  # fmt: skip
def test_parse_maxspeed(tag: str | None, kmh: float | None) -> None:
    result = parse_maxspeed(tag)
    assert (result if result is None else round(result, 2)) == kmh
