"""Each intervention changes exactly the intended edge attributes and keeps every edge id."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import shapely

from civictwin.engines.registry import intervention_catalog
from civictwin.engines.traffic.edits import (
    FilteredNode,
    ModifiedNetwork,
    TimedClosure,
    apply_interventions,
    car_connected_edges,
    car_network_parts,
)
from civictwin.engines.traffic.engine import TrafficEngine
from civictwin.engines.traffic.interventions import ScaleDemand, TransitFrequency
from civictwin.engines.traffic.synthetic import grid_network
from civictwin.errors import ScenarioError
from civictwin.scenarios.spec import parse_scenario

CATALOG = intervention_catalog([TrafficEngine()])

CRS = "EPSG:32635"
Grid = tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]
MAIN = ["101_0", "-101_0", "101_1", "-101_1"]


def apply(edges: gpd.GeoDataFrame, *interventions: dict[str, Any], zones: Any = None) -> ModifiedNetwork:
    scenario = parse_scenario(
        {"name": "plan", "interventions": list(interventions)},
        CATALOG,
        origin="plan.toml",
        path=Path("plan.toml"),
    )
    return apply_interventions(edges, scenario, crs=CRS, zones=zones)


def column(result: ModifiedNetwork, name: str) -> dict[str, Any]:
    return dict(zip(result.edges["edge_id"], result.edges[name], strict=True))


def changed(result: ModifiedNetwork) -> set[tuple[str, str]]:
    return set(zip(result.changes["edge_id"], result.changes["attribute"], strict=True))


def test_close_to_cars_only(grid: Grid) -> None:
    edges, _ = grid
    result = apply(edges, {"type": "close_streets", "streets": ["Main Street"], "modes": ["car"]})
    car, bus, bike = column(result, "car"), column(result, "bus"), column(result, "bike")
    assert [car[e] for e in MAIN] == [False] * 4
    assert all(bus[e] and bike[e] for e in MAIN)
    assert sum(car.values()) == len(edges) - 4
    assert changed(result) == {(e, "car") for e in MAIN}
    assert list(result.edges["edge_id"]) == list(edges["edge_id"])
    assert result.additionals == []
    assert MAIN[0] not in result.car_edges and len(result.car_edges) == len(edges) - 4


def test_close_to_all_modes(grid: Grid) -> None:
    edges, _ = grid
    result = apply(edges, {"type": "close_streets", "edge_ids": ["200_0"]})
    row = result.edges.set_index("edge_id").loc["200_0"]
    assert (row["car"], row["bus"], row["bike"], row["walk"]) == (False, False, False, False)
    assert changed(result) == {("200_0", m) for m in ("car", "bus", "bike", "walk")}
    assert bool(result.edges.set_index("edge_id").loc["-200_0", "car"])


@pytest.mark.parametrize(
    ("keep", "closed"), [("forward", ["-101_0", "-101_1"]), ("reverse", ["101_0", "101_1"])]
)
def test_one_way(grid: Grid, keep: str, closed: list[str]) -> None:
    edges, _ = grid
    result = apply(edges, {"type": "one_way", "streets": ["Main Street"], "keep": keep})
    car, bus, walk = column(result, "car"), column(result, "bus"), column(result, "walk")
    assert {e for e in MAIN if not car[e]} == set(closed)
    assert {e for e in MAIN if not bus[e]} == set(closed)
    assert all(walk[e] for e in MAIN)


def test_reverse_moves_cars_to_the_twin_edge(grid: Grid) -> None:
    edges, _ = grid
    result = apply(
        edges,
        {"type": "one_way", "streets": ["Main Street"]},
        {"type": "reverse", "streets": ["Main Street"]},
    )
    car = column(result, "car")
    assert [car[e] for e in MAIN] == [False, True, False, True]
    frame = result.edges.set_index("edge_id")
    assert frame.loc["-101_0", "from_node"] == 5 and frame.loc["-101_0", "to_node"] == 4  # untouched geometry


def test_reverse_without_twin_turns_the_edge_round_keeping_its_id(grid: Grid) -> None:
    edges, _ = grid
    one_way = edges[edges["edge_id"] != "-202_0"].reset_index(drop=True)
    result = apply(one_way, {"type": "reverse", "edge_ids": ["202_0"]})
    row = result.edges.set_index("edge_id").loc["202_0"]
    assert (row["from_node"], row["to_node"]) == (6, 3)  # was 3 -> 6 (northwards), now southwards
    start = shapely.get_coordinates(row["geometry"])[0]
    assert tuple(start) == (385_400.0, 6_671_200.0)
    assert bool(row["car"]) and set(result.edges["edge_id"]) == set(one_way["edge_id"])


def test_reverse_of_a_two_way_street_is_an_error(grid: Grid) -> None:
    edges, _ = grid
    with pytest.raises(
        ScenarioError, match=r"plan.toml: interventions\[0\] \(reverse\): edge\(s\) .* are two-way"
    ):
        apply(edges, {"type": "reverse", "streets": ["Main Street"]})


def test_speed_limit_in_a_polygon_only_lowers(grid: Grid, box_wkt: Callable[..., str]) -> None:
    edges, _ = grid
    result = apply(edges, {"type": "speed_limit", "polygon": box_wkt(-50, -50, 450, 450), "speed_kmh": 30})
    speed = column(result, "speed_kmh")
    assert all(speed[e] == 30.0 for e in MAIN)  # Main Street was 50
    assert changed(result) == {(e, "speed_kmh") for e in MAIN}  # residential streets were already 30
    raised = apply(edges, {"type": "speed_limit", "osm_ids": [200], "speed_kmh": 40, "only_lower": False})
    assert {e: s for e, s in column(raised, "speed_kmh").items() if e.endswith(("200_0", "200_1"))} == {
        "200_0": 40.0,
        "-200_0": 40.0,
        "200_1": 40.0,
        "-200_1": 40.0,
    }


def test_bus_lane_on_two_lane_street(grid: Grid) -> None:
    edges, _ = grid
    result = apply(edges, {"type": "bus_lane", "streets": ["Main Street"]})
    lanes = column(result, "bus_lanes")
    assert {e for e, n in lanes.items() if n} == set(MAIN) and all(lanes[e] == 1 for e in MAIN)
    assert all(column(result, "car")[e] for e in MAIN)


def test_bus_lane_needs_a_spare_lane(grid: Grid) -> None:
    edges, _ = grid
    with pytest.raises(ScenarioError, match=r"\(bus_lane\): no selected car edge has more than 1 lane"):
        apply(edges, {"type": "bus_lane", "streets": ["Row 0 Street"]})


def test_modal_filter_at_the_nearest_node(grid: Grid, lonlat: Callable[..., Any]) -> None:
    edges, _ = grid
    result = apply(edges, {"type": "modal_filter", "at": list(lonlat(210, 195)), "radius_m": 30})
    assert result.additionals == [FilteredNode(node_id=5, modes=("car", "bus"))]
    assert result.edges[["car", "bus"]].all().all()  # the edges themselves stay open
    # every street stays reachable by going round the block
    assert result.car_edges == frozenset(edges["edge_id"])


def test_modal_filter_that_cuts_off_a_zone_names_it() -> None:
    edges, _ = grid_network(2, 4, 200.0)
    # close the top row so the bottom row is the only east-west link; a filter at node 2 then cuts off node 1
    zones = gpd.GeoDataFrame(
        {"zone_id": ["west", "east"]},
        geometry=[
            shapely.box(384_900, 6_670_900, 385_100, 6_671_300),
            shapely.box(385_300, 6_670_900, 385_700, 6_671_300),
        ],
        crs=CRS,
    )
    scenario = [{"type": "close_streets", "streets": ["Main Street"], "modes": ["car", "bus"]}]
    at = _node_lonlat(385_200, 6_671_000)
    assert len(apply(edges, *scenario, zones=zones).car_edges) == 14  # the closure alone cuts nobody off
    with pytest.raises(ScenarioError) as info:
        apply(edges, *scenario, {"type": "modal_filter", "at": list(at), "radius_m": 5}, zones=zones)
    assert (
        info.value.user_message()
        == "plan.toml: interventions: the interventions leave zone(s) west unreachable by car"
    )


def test_car_connectivity_respects_filters_on_the_line_graph() -> None:
    edges, _ = grid_network(2, 4, 200.0)
    edges = edges[edges["osm_id"] != 101].reset_index(drop=True)  # only the bottom row and the columns
    left = {"100_0", "-100_0", "200_0", "-200_0"}
    assert car_connected_edges(edges) == frozenset(edges["edge_id"])
    cut = car_connected_edges(edges, filtered_nodes=[2])
    assert cut.isdisjoint(left | {"201_0", "-201_0"})
    assert cut == frozenset(edges["edge_id"]) - left - {"201_0", "-201_0"}


def test_entries_and_exits_of_the_connected_car_network() -> None:
    """A one-way ring 1→2→3→1, a one-way chain into it (10→11→1) and out of it (3→20→21→22), a
    two-way dead end off that chain (20↔25: both ways only reached from the ring, neither leads back
    into it) and a lone edge."""
    arcs = {
        "r1": (1, 2), "r2": (2, 3), "r3": (3, 1),
        "in1": (10, 11), "in2": (11, 1),
        "out1": (3, 20), "out2": (20, 21), "beyond": (21, 22),
        "spur": (20, 25), "-spur": (25, 20),
        "lone": (30, 31),
    }  # fmt: skip
    edges = gpd.GeoDataFrame(
        {
            "edge_id": list(arcs),
            "from_node": [a for a, _ in arcs.values()],
            "to_node": [b for _, b in arcs.values()],
            "car": True,
        },
        geometry=[shapely.LineString([(a, 0), (b, 1)]) for a, b in arcs.values()],
        crs=CRS,
    )
    assert car_connected_edges(edges) == {"r1", "r2", "r3"}
    assert car_network_parts(edges) == (
        {"r1", "r2", "r3"},
        {"in1", "in2"},
        {"out1", "out2", "beyond", "spur", "-spur"},
    )
    # closed to cars, the chain's second edge cuts its first off from the ring
    assert car_network_parts(edges.assign(car=edges["edge_id"] != "in2"))[1] == frozenset()


def test_pedestrianise_a_square(grid: Grid, box_wkt: Callable[..., str]) -> None:
    edges, _ = grid
    result = apply(
        edges, {"type": "pedestrianise", "polygon": box_wkt(150, 150, 250, 350), "allow_bikes": False}
    )
    inside = {"201_1", "-201_1"}  # the northern half of column 1, midpoint (200, 300)
    frame = result.edges.set_index("edge_id")
    assert {e for e in frame.index if not frame.loc[e, "car"]} == inside
    assert not frame.loc[list(inside), ["car", "bus", "bike"]].any().any()
    assert frame.loc[list(inside), "walk"].all()


def test_works_closure_is_an_additional_and_leaves_the_network(grid: Grid) -> None:
    edges, _ = grid
    result = apply(edges, {"type": "works_closure", "osm_ids": [101], "begin_s": 600, "end_s": 1800})
    assert result.additionals == [TimedClosure("works_0", tuple(MAIN), 600.0, 1800.0, ("car",))]
    assert result.edges["car"].all()
    assert changed(result) == {(e, "timed_closure") for e in MAIN}
    assert result.car_edges == frozenset(edges["edge_id"]) - set(MAIN)  # no trips start or end there


def test_demand_interventions_pass_through(grid: Grid) -> None:
    edges, _ = grid
    result = apply(
        edges,
        {"type": "transit_frequency", "route": "4", "factor": 2},
        {"type": "scale_demand", "factor": 1.1},
    )
    assert [type(d) for d in result.demand] == [TransitFrequency, ScaleDemand]
    assert result.changes.empty and result.additionals == []


def test_input_is_not_modified(grid: Grid) -> None:
    edges, _ = grid
    before = edges.copy()
    apply(edges, {"type": "close_streets", "streets": ["Main Street"]})
    assert edges.equals(before)


def _node_lonlat(x: float, y: float) -> tuple[float, float]:
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(x, y)
    return float(lon), float(lat)
