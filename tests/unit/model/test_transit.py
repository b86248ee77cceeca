"""Snapping transit stops to the nearest walkable edge, on a hand-drawn network with known distances.

Edges (EPSG:32635, metres, origin at (385000, 6672000)): a footway pair ``1_0``/``-1_0`` along y=0
from x=0 to 100; a motorway ``2_0`` (walk false) along y=50; a footway ``3_0`` along x=300.
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import LineString, Point

from civictwin.model.transit import snap_stops

X0, Y0 = 385_000.0, 6_672_000.0
CRS = "EPSG:32635"


def _edges() -> gpd.GeoDataFrame:
    def line(*xy: tuple[float, float]) -> LineString:
        return LineString([(X0 + x, Y0 + y) for x, y in xy])

    return gpd.GeoDataFrame(
        {"edge_id": ["1_0", "-1_0", "2_0", "3_0"], "walk": [True, True, False, True]},
        geometry=[
            line((0, 0), (100, 0)),
            line((100, 0), (0, 0)),
            line((0, 50), (100, 50)),
            line((300, 0), (300, 100)),
        ],
        crs=CRS,
    )


def _stops(*xy: tuple[float, float] | None) -> gpd.GeoDataFrame:
    geoms = [Point(X0 + p[0], Y0 + p[1]) if p is not None else None for p in xy]
    return gpd.GeoDataFrame({"stop_id": [f"s{i}" for i in range(len(xy))]}, geometry=geoms, crs=CRS)


def test_nearest_walkable_edge_and_distance() -> None:
    stops = _stops((50, 10), (50, 45), (290, 50), (50, 400), None)
    result = snap_stops(stops, _edges())
    assert list(result["stop_id"]) == ["s0", "s1", "s2", "s3", "s4"]
    # s0: 10 m from the footway pair; ties go to the smallest id ("-1_0" < "1_0")
    # s1: the motorway is 5 m away but not walkable: the footway at 45 m
    # s2: 10 m from 3_0; s3: 400 m from everything; s4: no geometry
    edge_ids = [e if isinstance(e, str) else None for e in result["edge_id"]]
    assert edge_ids == ["-1_0", "-1_0", "3_0", None, None]
    assert result["snap_distance_m"].iloc[:3].tolist() == pytest.approx([10.0, 45.0, 10.0])
    assert result["snap_distance_m"].iloc[3:].isna().all()
    assert result.attrs["unsnapped"] == 2
    assert result.crs == stops.crs
    assert result.geometry.iloc[0].equals(stops.geometry.iloc[0])  # stops are not moved


def test_max_distance_and_row_order() -> None:
    stops = _stops((150, 0), (50, 30))  # 50 m and 30 m from the footway pair
    near = snap_stops(stops, _edges(), max_distance_m=40)
    assert near["edge_id"].isna().tolist() == [True, False]
    assert near.attrs["unsnapped"] == 1
    reversed_edges = _edges().iloc[::-1]
    assert snap_stops(stops, reversed_edges)["edge_id"].tolist() == ["-1_0", "-1_0"]


def test_non_unique_stop_index_is_kept() -> None:
    stops = _stops((50, 10), (290, 50)).set_index(pd.Index([7, 7]))
    result = snap_stops(stops, _edges())
    assert result.index.tolist() == [7, 7]
    assert result["edge_id"].tolist() == ["-1_0", "3_0"]


def test_no_walkable_edges() -> None:
    edges = _edges().assign(walk=False)
    result = snap_stops(_stops((50, 10)), edges)
    assert result["edge_id"].isna().all()
    assert result.attrs["unsnapped"] == 1


def test_no_stops() -> None:
    result = snap_stops(_stops(), _edges())
    assert result.empty
    assert list(result.columns) == ["stop_id", "geometry", "edge_id", "snap_distance_m"]
    assert result.attrs["unsnapped"] == 0


def test_bad_inputs() -> None:
    stops = _stops((50, 10))
    with pytest.raises(ValueError, match="must share one CRS"):
        snap_stops(stops, _edges().to_crs("EPSG:3067"))
    with pytest.raises(ValueError, match="projected CRS in metres"):
        snap_stops(stops.to_crs("EPSG:4326"), _edges().to_crs("EPSG:4326"))
    with pytest.raises(ValueError, match="lack column"):
        snap_stops(stops, _edges().drop(columns="walk"))
    with pytest.raises(ValueError, match="must be positive"):
        snap_stops(stops, _edges(), max_distance_m=0)
