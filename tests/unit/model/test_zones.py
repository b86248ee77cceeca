"""Analysis zones: H3 coverage and what each zone sums up."""

from __future__ import annotations

import geopandas as gpd
import h3
import pandas as pd
import pytest
import shapely

from civictwin.model.zones import h3_zones, polygon_zones, summarise_zones

CRS = "EPSG:32635"


def test_h3_zones_cover_the_area_with_overlapping_cells() -> None:
    area = shapely.box(24.93, 60.16, 24.96, 60.17)
    zones = h3_zones(area, 9, CRS)
    assert zones["zone_id"].map(h3.get_resolution).eq(9).all()
    assert zones["zone_id"].is_unique
    projected = gpd.GeoSeries([area], crs="EPSG:4326").to_crs(CRS).iloc[0]
    assert zones.union_all().covers(projected)
    # every cell really overlaps the area
    assert zones.intersects(projected).all()
    assert len(zones) == len(
        h3.h3shape_to_cells_experimental(h3.geo_to_h3shape(area.__geo_interface__), 9, "overlap")
    )


def _two_zones() -> gpd.GeoDataFrame:
    """Zones A and B: two 100 m squares side by side."""
    squares = gpd.GeoDataFrame(
        {"code": ["A", "B"]}, geometry=[shapely.box(0, 0, 100, 100), shapely.box(100, 0, 200, 100)], crs=CRS
    )
    return polygon_zones(squares, "code")


def test_zone_summary_counts_and_sums() -> None:
    zones = _two_zones()
    buildings = gpd.GeoDataFrame(
        {"population_est": [10.0, 5.0, 7.0], "floor_area_m2": [300.0, 200.0, 1000.0],
         "use": ["residential", "unknown", "commercial"]},
        geometry=[shapely.box(10, 10, 20, 20), shapely.box(30, 30, 40, 40), shapely.box(150, 50, 160, 60)], crs=CRS,
    )  # fmt: skip
    residential = pd.Series([300.0, 100.0, 0.0])
    pois = gpd.GeoDataFrame(
        {"category": ["shop", "shop", "amenity"]},
        geometry=shapely.points([(5, 5), (150, 5), (160, 5)]),
        crs=CRS,
    )
    green = gpd.GeoDataFrame(geometry=[shapely.box(50, 0, 150, 10), shapely.box(60, 0, 70, 10)], crs=CRS)
    stops = gpd.GeoDataFrame(
        {"stop_id": ["s1", "s2"]}, geometry=shapely.points([(20, 80), (120, 80)]), crs=CRS
    )
    summary = summarise_zones(zones, buildings=buildings, residential_floor_m2=residential, pois=pois, green=green,
                              stops=stops, stop_peak_departures=pd.Series([12.0, 4.0]))  # fmt: skip
    by_zone = summary.set_index("zone_id")
    assert by_zone["population"].tolist() == [15.0, 7.0]
    # jobs proxy: non-residential floor area of buildings that can hold jobs (100 m² of the untyped one)
    assert by_zone["jobs_proxy_m2"].tolist() == [100.0, 1000.0]
    assert by_zone["poi_shop"].tolist() == [1, 1]
    assert by_zone["poi_amenity"].tolist() == [0, 1]
    # green overlaps are dissolved first: 50 × 10 m² in each zone
    assert by_zone["green_m2"].tolist() == pytest.approx([500.0, 500.0])
    assert by_zone["transit_stops"].tolist() == [1, 1]
    assert by_zone["transit_departures_peak_hour"].tolist() == [12, 4]
    assert by_zone["area_m2"].tolist() == [10000.0, 10000.0]


def test_a_point_counts_once_in_the_first_zone_whose_interior_holds_it() -> None:
    # user zones may overlap: A covers x 0..100, B x 50..150
    zones = polygon_zones(
        gpd.GeoDataFrame(
            {"code": ["A", "B"]},
            geometry=[shapely.box(0, 0, 100, 100), shapely.box(50, 0, 150, 100)],
            crs=CRS,
        ),
        "code",
    )
    # in both (A, listed first), in B only, on A's outer edge (no interior), outside both
    pois = gpd.GeoDataFrame(
        {"category": ["shop"] * 4},
        geometry=shapely.points([(75, 50), (120, 50), (0, 50), (300, 50)]),
        crs=CRS,
    )
    # buildings with an index that is not 0..n-1: their people still go to their own centroid's zone
    buildings = gpd.GeoDataFrame(
        {"population_est": [4.0, 9.0], "floor_area_m2": [100.0, 100.0], "use": ["residential", "residential"]},
        geometry=[shapely.box(120, 40, 130, 50), shapely.box(10, 40, 20, 50)], index=[7, 3], crs=CRS,
    )  # fmt: skip
    summary = summarise_zones(zones, buildings=buildings, residential_floor_m2=pd.Series([100.0, 100.0], index=[7, 3]),
                              pois=pois, green=None, stops=None, stop_peak_departures=None)  # fmt: skip
    by_zone = summary.set_index("zone_id")
    assert by_zone["poi_shop"].tolist() == [1, 1]
    assert by_zone["population"].tolist() == [9.0, 4.0]


def test_green_area_counts_overlaps_once_and_edge_neighbours_in_full() -> None:
    zones = _two_zones()
    green = gpd.GeoDataFrame(
        geometry=[
            shapely.box(0, 0, 50, 50),  # shares an edge with the park next to it: both count in full
            shapely.box(50, 0, 130, 50),  # a park across both zones...
            shapely.box(60, 10, 70, 20),  # ...with a playground inside it, counted once
            shapely.box(120, 60, 140, 80),  # alone in zone B
        ],
        crs=CRS,
    )
    summary = summarise_zones(zones, buildings=None, residential_floor_m2=None, pois=None, green=green, stops=None,
                              stop_peak_departures=None)  # fmt: skip
    # A: 50×50 + the park's 50×50 (the playground inside it adds nothing); B: the park's 30×50 + 20×20
    assert summary.set_index("zone_id")["green_m2"].tolist() == pytest.approx([5000.0, 1900.0])


def test_people_on_open_land_and_other_grid_columns_reach_the_zones_by_area() -> None:
    zones = _two_zones()
    buildings = gpd.GeoDataFrame(
        {"population_est": [10.0], "floor_area_m2": [300.0], "use": ["residential"]},
        geometry=[shapely.box(10, 10, 20, 20)], crs=CRS,
    )  # fmt: skip
    # 8 people on land 75 % in A (x 25–100), 25 % in B (x 100–125)
    land = gpd.GeoDataFrame(
        {"cell": [1], "population": [8.0]}, geometry=[shapely.box(25, 0, 125, 10)], crs=CRS
    )
    cells = gpd.GeoDataFrame(
        {"jobs": [40.0, 6.0], "schools": [1.0, 0.0]},
        geometry=[shapely.box(50, 0, 150, 100), shapely.box(150, 0, 200, 100)], crs=CRS,
    )  # fmt: skip
    summary = summarise_zones(zones, buildings=buildings, residential_floor_m2=pd.Series([300.0]), pois=None,
                              green=None, stops=None, stop_peak_departures=None, population_land=land,
                              grid_values={"census": cells})  # fmt: skip
    by_zone = summary.set_index("zone_id")
    assert by_zone["population"].tolist() == [16.0, 2.0]
    assert by_zone["census_jobs"].tolist() == [20.0, 26.0]
    assert by_zone["census_schools"].tolist() == [0.5, 0.5]
