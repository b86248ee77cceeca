"""The rule that puts OSM signal nodes on junctions (``model/signals.py``), on hand-made frames.

A two-way street (way 100) along y = 0 through nodes 1 (x = 0 m), 2 (30 m), 3 (50 m) and 4 (100 m);
cross streets meet it at 2 and 3, so 2 and 3 are junctions (four car neighbours) and 4 is a dead end.
A signal at x = 40 m lies inside the edge 2→3, 10 m from both junctions; one at x = 80 m lies inside
3→4, 20 m from the dead end and 30 m from junction 3 (beyond the 25 m reach).
"""

from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from civictwin.model.signals import SignalReach, signalled_nodes

POSITIONS = {1: (0.0, 0.0), 2: (30.0, 0.0), 3: (50.0, 0.0), 4: (100.0, 0.0),
             21: (30.0, -50.0), 22: (30.0, 50.0), 23: (50.0, -50.0), 24: (50.0, 50.0)}  # fmt: skip


def _network() -> gpd.GeoDataFrame:
    ways = {100: [1, 2, 3, 4], 200: [21, 2, 22], 201: [23, 3, 24]}
    rows = []
    for way, refs in ways.items():
        for seq, (a, b) in enumerate(itertools.pairwise(refs)):
            line = shapely.LineString([POSITIONS[a], POSITIONS[b]])
            rows.append(
                {"edge_id": f"{way}_{seq}", "from_node": a, "to_node": b, "car": True, "geometry": line}
            )
            rows.append({"edge_id": f"-{way}_{seq}", "from_node": b, "to_node": a, "car": True,
                         "geometry": shapely.reverse(line)})  # fmt: skip
    return gpd.GeoDataFrame(rows, geometry="geometry")


def _signal(
    x: float, direction: str | None, *, highway: str = "traffic_signals", osm_id: int = 900
) -> gpd.GeoDataFrame:
    """One signal node at (x, 0); its OSM id is a network node's when it is that node."""
    return gpd.GeoDataFrame(
        {"osm_id": [osm_id], "highway": [highway], "direction": pd.array([direction], dtype="string")},
        geometry=[shapely.Point(x, 0.0)],
    )


@pytest.mark.parametrize(
    ("direction", "expected"), [("forward", {3}), ("backward", {2}), (None, {2, 3}), ("both", {2, 3})]
)
def test_a_signal_between_two_junctions_controls_the_one_it_faces(
    direction: str | None, expected: set[int]
) -> None:
    edges = _network()
    found = signalled_nodes(_signal(40.0, direction), edges)
    assert set(found.node_ids) == expected
    assert found.quality["ahead_of_junction"] == 1 and found.quality["signalled_nodes"] == len(expected)


def test_a_signal_beyond_reach_of_any_junction_is_counted_as_not_placed() -> None:
    edges = _network()
    found = signalled_nodes(_signal(80.0, None), edges)
    assert found.node_ids == frozenset()
    assert found.quality["not_placed"] == 1 and found.quality["signalled_nodes"] == 0


def test_a_signal_on_a_junction_node_controls_it_and_a_crossing_node_controls_nothing() -> None:
    edges = _network()
    on_node = signalled_nodes(_signal(30.0, None, osm_id=2), edges)
    assert on_node.node_ids == frozenset({2}) and on_node.quality["at_junction"] == 1
    crossing = signalled_nodes(_signal(40.0, None, highway="crossing"), edges)
    assert crossing.node_ids == frozenset()
    assert (crossing.quality["vehicle_signals"], crossing.quality["pedestrian_crossings"]) == (0, 1)


def test_the_reach_of_signals_keeps_the_edges_whose_boxes_come_within_26_m() -> None:
    """Boxes (xmin, ymin, xmax, ymax) against one vehicle signal at (0, 0) and a pedestrian crossing
    at (1000, 0): 25.9 m away is kept and 26.1 m is not (reach 25 m and a metre); a long box passing
    the signal is kept though its ends are far; a box at the crossing is not (it controls nothing)."""
    signals = pd.concat([_signal(0.0, None), _signal(1000.0, None, highway="crossing", osm_id=901)])
    boxes = np.array([
        [25.9, -5.0, 40.0, 5.0],  # 25.9 m east of the signal
        [26.1, -5.0, 40.0, 5.0],
        [-500.0, 3.0, 500.0, 3.0],  # a long edge 3 m north
        [990.0, -1.0, 1010.0, 1.0],  # at the crossing only
    ])  # fmt: skip
    assert SignalReach(signals).near(boxes).tolist() == [True, False, True, False]
    assert SignalReach(signals.iloc[1:]).near(boxes).tolist() == [False] * 4  # no vehicle signal
    assert SignalReach(signals).near(np.empty((0, 4))).tolist() == []
