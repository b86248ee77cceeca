"""Gravity model, OD files and seeded trip sampling, checked against hand-computed numbers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from scipy.sparse.csgraph import dijkstra

from civictwin.engines.traffic import demand
from civictwin.engines.traffic.demand import (
    DemandError,
    DemandParams,
    OdMatrix,
    add_event,
    crowfly_distances,
    gravity,
    gravity_od,
    load_od_csv,
    mode_graph,
    network_distances,
    productions_attractions,
    sample_car_trips,
    trip_pair,
    zone_edges,
)


def test_productions_and_attractions_follow_the_documented_rates(zones: gpd.GeoDataFrame) -> None:
    productions, attractions = productions_attractions(zones, DemandParams())
    # 2.7 trips/resident/day x 10% in the peak hour
    assert productions == pytest.approx([600 * 0.27, 400 * 0.27])
    # jobs = 3500 m2 / 35 m2 per job = 100; + 5 per POI; + 0.1 per resident
    assert attractions == pytest.approx([100 + 0 + 60, 0 + 50 + 40])


def test_doubly_constrained_gravity_matches_the_hand_solution() -> None:
    # P = (60, 40), A = (50, 50), deterrence 1 on the diagonal and 0.5 off it (beta = ln 2 per km, 1 km).
    # Rows and columns fixed leave T11 = t with t(t-10) = 4(60-t)(50-t): 3t² - 430t + 12000 = 0.
    t = (430 - math.sqrt(430**2 - 4 * 3 * 12000)) / 6
    distance = np.array([[0.0, 1000.0], [1000.0, 0.0]])
    trips = gravity(np.array([60.0, 40.0]), np.array([1.0, 1.0]), distance, beta_per_km=math.log(2))
    assert trips == pytest.approx(np.array([[t, 60 - t], [50 - t, t - 10]]), abs=1e-4)
    assert t == pytest.approx(37.960, abs=1e-3)


def test_without_deterrence_trips_are_proportional_to_attractions() -> None:
    trips = gravity(np.array([60.0, 40.0]), np.array([3.0, 1.0]), np.full((2, 2), 500.0), beta_per_km=0.0)
    assert trips == pytest.approx(np.array([[45.0, 15.0], [30.0, 10.0]]))


def test_unreachable_zones_exchange_no_trips() -> None:
    distance = np.array([[100.0, np.inf], [np.inf, 100.0]])
    trips = gravity(np.array([10.0, 10.0]), np.array([1.0, 1.0]), distance, beta_per_km=0.3)
    assert trips == pytest.approx(np.array([[10.0, 0.0], [0.0, 10.0]]))


def test_gravity_od_totals_equal_productions_times_scale(
    zones: gpd.GeoDataFrame, edges: gpd.GeoDataFrame
) -> None:
    od = gravity_od(zones, DemandParams(scale=0.5), edges)
    assert od.zones == ("west", "east")
    assert od.total == pytest.approx(0.5 * 1000 * 0.27)
    assert od.trips.sum(axis=1) == pytest.approx([0.5 * 162.0, 0.5 * 108.0], rel=1e-5)
    # columns match the attractions rescaled to the production total: 160/250 and 90/250 of 135
    assert od.trips.sum(axis=0) == pytest.approx([135 * 160 / 250, 135 * 90 / 250], rel=1e-4)


def test_network_distances_follow_the_streets(zones: gpd.GeoDataFrame, edges: gpd.GeoDataFrame) -> None:
    crow = crowfly_distances(zones)
    # west centroid (125, 300) and east centroid (575, 300) relative to the grid origin: 450 m apart
    assert crow[0, 1] == pytest.approx(450.0)
    # intrazonal: half the side of a square of the zone's area
    assert crow[0, 0] == pytest.approx(0.5 * math.sqrt(550 * 900))
    # centroids snap to the nodes (0, 300) and (600, 300): two 300 m blocks along the street
    network = network_distances(zones, edges, "walk")
    assert network[0, 1] == pytest.approx(600.0)
    assert network[1, 0] == pytest.approx(600.0)
    # without the middle horizontal street the walk goes round a block: 300 + 600 + 300 m
    middle = edges["geometry"].apply(lambda g: g.coords[0][1] == g.coords[-1][1] == 6_672_300.0)
    assert network_distances(zones, edges[~middle], "walk")[0, 1] == pytest.approx(1200.0)


def test_parallel_edges_count_once_with_the_smaller_weight(
    zones: gpd.GeoDataFrame, edges: gpd.GeoDataFrame
) -> None:
    # a second, longer copy of every edge (a detour between the same two nodes) changes nothing
    detours = edges.assign(edge_id=edges["edge_id"] + "_detour", length_m=edges["length_m"] * 3)
    doubled = pd.concat([detours, edges], ignore_index=True)
    graph = mode_graph(doubled, "walk")
    assert len(graph.edge_ids) == 2 * len(edges) and len(graph.pair_from) == len(edges)
    assert graph.matrix(graph.length_m).sum() == pytest.approx(edges["length_m"].sum())
    assert network_distances(zones, doubled, "walk")[0, 1] == pytest.approx(600.0)


def test_od_csv_is_read_summed_and_validated(tmp_path: Path) -> None:
    path = tmp_path / "od.csv"
    path.write_text("origin,destination,trips\nwest,east,10\nwest,east,2.5\neast,west,4\n")
    od = load_od_csv(path, ["west", "east"])
    assert od.trips == pytest.approx(np.array([[0.0, 12.5], [4.0, 0.0]]))

    path.write_text("origin,destination,trips\nwest,north,1\n")
    with pytest.raises(DemandError, match=r"od.csv: destination: 1 unknown zone id\(s\): north"):
        load_od_csv(path, ["west", "east"])
    path.write_text("origin,destination,trips\nwest,east,-1\n")
    with pytest.raises(DemandError, match="line 2: trips must be a non-negative number"):
        load_od_csv(path, ["west", "east"])
    path.write_text("from,to,trips\nwest,east,1\n")
    with pytest.raises(DemandError, match="missing column"):
        load_od_csv(path, ["west", "east"])
    with pytest.raises(DemandError, match="not found"):
        load_od_csv(tmp_path / "nope.csv", ["west"])


def test_event_adds_trips_to_the_zone_holding_the_location(zones: gpd.GeoDataFrame) -> None:
    od = OdMatrix(("west", "east"), np.array([[0.0, 30.0], [10.0, 0.0]]))
    # the east zone draws its visitors only from the west: all 100 extra trips come from there
    extra = add_event(od, zones, (385_600.0, 6_672_300.0), 100.0, direction="to")
    assert extra.trips == pytest.approx(np.array([[0.0, 100.0], [0.0, 0.0]]))
    # both ways: half arrive (all from the west), half leave (all to the west, where east's trips go)
    both = add_event(od, zones, (385_600.0, 6_672_300.0), 100.0, direction="both")
    assert both.trips == pytest.approx(np.array([[0.0, 50.0], [50.0, 0.0]]))
    with pytest.raises(DemandError, match="lies in no zone"):
        add_event(od, zones, (0.0, 0.0), 5.0, direction="to")


def test_zone_edges_use_midpoints_and_car_permission(
    zones: gpd.GeoDataFrame, edges: gpd.GeoDataFrame
) -> None:
    edges.loc[edges["edge_id"] == "1_0", "car"] = False
    found = zone_edges(zones, edges)
    # 24 edges: west holds the streets at x=0 and x=300 (8) and the blocks with midpoints at x=150 (6),
    # east the street at x=600 (4) and midpoints at x=450 (6); edge 1_0 (west) lost car access
    assert len(found["west"]) == 13 and len(found["east"]) == 10
    assert "1_0" not in found["west"] and "-1_0" in found["west"]
    only = zone_edges(zones, edges, present={"-1_0", "2_0"})
    assert only == {"west": ["-1_0", "2_0"], "east": []}


def test_same_seed_same_trips_and_stochastic_rounding() -> None:
    od = OdMatrix(("a", "b"), np.array([[0.0, 10.4], [3.0, 0.0]]))
    by_zone = {"a": ["a1", "a2"], "b": ["b1"]}
    first = sample_car_trips(od, by_zone, seed=7)
    again = sample_car_trips(od, by_zone, seed=7)
    other = sample_car_trips(od, by_zone, seed=8)
    assert first == again
    assert first != other
    counts = [sum(trip_pair(t.trip_id) == (0, 1) for t in s) for s in (first, other)]
    assert all(c in (10, 11) for c in counts)
    assert sum(trip_pair(t.trip_id) == (1, 0) for t in first) == 3
    assert all(0 <= t.depart_s < 3600 for t in first)
    assert all(
        t.from_edge in ("a1", "a2") and t.to_edge == "b1" for t in first if trip_pair(t.trip_id) == (0, 1)
    )
    late = sample_car_trips(od, by_zone, seed=7, begin_s=1800, end_s=2400, prefix="e")
    assert all(1800 <= t.depart_s < 2400 and t.trip_id.startswith("e") for t in late)
    assert [t.depart_s for t in first] == sorted(t.depart_s for t in first)


def test_mean_of_stochastic_rounding_is_the_cell_value() -> None:
    od = OdMatrix(("a", "b"), np.array([[0.0, 0.3], [0.0, 0.0]]))
    counts = [len(sample_car_trips(od, {"a": ["a1"], "b": ["b1"]}, seed=s)) for s in range(400)]
    assert np.mean(counts) == pytest.approx(0.3, abs=0.07)


def test_trips_never_start_and_end_on_the_same_edge() -> None:
    od = OdMatrix(("a",), np.array([[20.0]]))
    trips = sample_car_trips(od, {"a": ["e1", "e2"]}, seed=1)
    assert len(trips) == 20
    assert all(t.from_edge != t.to_edge for t in trips)
    assert sample_car_trips(od, {"a": ["e1"]}, seed=1) == []


def test_network_distances_are_searched_once_per_network(
    zones: gpd.GeoDataFrame, edges: gpd.GeoDataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    searches: list[int] = []
    search = demand.zone_path_costs

    def counted(*args: Any) -> Any:
        searches.append(1)
        return search(*args)

    monkeypatch.setattr(demand, "zone_path_costs", counted)
    monkeypatch.setattr(demand, "_DISTANCES", {})
    first = network_distances(zones, edges, "walk")
    first[0, 1] = -1.0  # a caller's change never reaches the next caller
    again = network_distances(zones, edges, "walk")
    assert len(searches) == 1 and again[0, 1] == pytest.approx(600.0)
    longer = edges.assign(length_m=edges["length_m"] * 2)  # another network: searched again
    assert network_distances(zones, longer, "walk")[0, 1] == pytest.approx(1200.0) and len(searches) == 2
    network_distances(zones, edges, "bike")
    assert len(searches) == 3


def test_path_costs_in_chunks_equal_one_search(
    edges: gpd.GeoDataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = mode_graph(edges, "walk")
    nodes = np.array([3, 0, 5, 1, 4, 2, 0], dtype=np.int64) % len(graph.node_ids)
    whole = dijkstra(graph.matrix(graph.length_m), directed=True, indices=nodes)[:, nodes]
    monkeypatch.setattr(demand, "SOURCES_PER_SEARCH", 2)  # four searches: 2 + 2 + 2 + 1 origins
    assert np.array_equal(demand.path_costs(graph, nodes, graph.length_m), whole)
    assert whole[1, 3] > 0 and np.all(np.diag(whole) == 0)
