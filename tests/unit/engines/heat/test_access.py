"""Green access on a hand-made walk network: distances walked, the 300 m limit, the 0.5 ha minimum."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from civictwin.engines.heat.access import qualifying_green, walk_distance_to_green

CRS = "EPSG:32635"


def _line_network() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Nodes 0..5 along y = 0 every 100 m, walkable both ways (5 x 2 directed edges)."""
    nodes = gpd.GeoDataFrame(
        {"node_id": np.arange(6)}, geometry=shapely.points(np.arange(6) * 100.0, 0.0), crs=CRS
    )
    rows = []
    for a in range(5):
        for u, v in ((a, a + 1), (a + 1, a)):
            rows.append({"from_node": u, "to_node": v, "length_m": 100.0, "walk": True,
                         "geometry": shapely.LineString([(u * 100.0, 0), (v * 100.0, 0)])})  # fmt: skip
    return gpd.GeoDataFrame(rows, crs=CRS), nodes


def test_homes_reach_a_park_by_walking_and_far_ones_do_not() -> None:
    edges, nodes = _line_network()
    # a 100 m x 60 m park (0.6 ha) just north of node 5, 10 m from it: node 5 is its entrance
    park = shapely.box(450.0, 10.0, 550.0, 70.0)
    green = qualifying_green(np.array([park], dtype=object))
    # doors 5 m south of nodes 3, 2 and 1: 5 + 200 = 205 m, 5 + 300 = 305 m (beyond 300), 5 + 400 m
    doors = shapely.points([300.0, 200.0, 100.0], -5.0)
    distance = walk_distance_to_green(edges=edges, nodes=nodes, doors=doors, green=green)
    assert distance[0] == pytest.approx(205.0)
    assert np.isinf(distance[1]) and np.isinf(distance[2])


def test_green_spaces_under_half_a_hectare_do_not_count_unless_they_touch_others() -> None:
    small = shapely.box(0.0, 0.0, 60.0, 60.0)  # 0.36 ha
    touching = shapely.box(60.0, 0.0, 100.0, 60.0)  # 0.24 ha, sharing an edge: together 0.6 ha
    alone = shapely.box(500.0, 500.0, 560.0, 560.0)
    assert len(qualifying_green(np.array([small], dtype=object))) == 0
    merged = qualifying_green(np.array([small, touching, alone], dtype=object))
    assert len(merged) == 1 and merged[0].area == pytest.approx(6000.0)


def test_a_home_inside_a_park_has_distance_zero() -> None:
    edges, nodes = _line_network()
    park = shapely.box(150.0, -50.0, 250.0, 50.0)  # 1 ha across nodes 2
    doors = shapely.points([200.0], [20.0])
    distance = walk_distance_to_green(
        edges=edges, nodes=nodes, doors=doors, green=qualifying_green(np.array([park]))
    )
    assert distance[0] == 0.0
