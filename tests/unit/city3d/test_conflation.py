"""Conflation of a crafted city layer with OSM: every match, gap and conflict known in advance."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import LineString, Polygon, box

from civictwin.config import ConflationRule, SourceKind
from civictwin.errors import ConfigError
from civictwin.model.conflation import conflate_buildings, conflate_streets, rule_columns

CRS = "EPSG:25832"


def _osm() -> gpd.GeoDataFrame:
    """A (10 × 10, tagged 9 m), B (alone), C (a 20 × 10 block the city splits in two)."""
    return gpd.GeoDataFrame(
        {"osm_id": [1, 2, 3], "osm_type": ["way"] * 3, "building": ["house", "garage", "apartments"],
         "use": ["residential", "ancillary", "residential"], "name": [None, None, "Block C"],
         "levels": [3.0, 1.0, 5.0], "height_m": [9.0, 3.0, 15.0], "height_source": ["height", "default", "levels"]},
        geometry=[box(0, 0, 10, 10), box(20, 0, 25, 5), box(40, 0, 60, 10)], crs=CRS,
    )  # fmt: skip


def _city() -> gpd.GeoDataFrame:
    """A' (shifted 0.5 m, 12 m), C1 and C2 (halves of C), D (only in the city)."""
    return gpd.GeoDataFrame(
        {"building_id": ["A", "C1", "C2", "D"], "height_m": [12.0, 14.0, 16.0, 6.0],
         "storeys": [4.0, np.nan, 5.0, 2.0], "year_built": [1960, 1990, 1990, 2020],
         "residents": [11.0, np.nan, 20.0, 3.0], "name": [None, None, None, "New house"]},
        geometry=[box(0.5, 0, 10.5, 10), box(40, 0, 50, 10), box(50, 0, 60, 10), box(100, 0, 110, 8)], crs=CRS,
    )  # fmt: skip


def _conflate(**rule: object) -> tuple[gpd.GeoDataFrame, pd.DataFrame, dict[str, object]]:
    r = ConflationRule(layer="buildings", source="city", **rule)  # type: ignore[arg-type]
    city = _city()
    columns = rule_columns(
        r, SourceKind.VECTOR, list(city.columns.drop("geometry")), origin="twin.toml", index=0
    )
    result = conflate_buildings(_osm(), city, r, columns, storey_height_m=3.0)
    return result.frame.set_index("building_id"), result.decisions.set_index("object"), result.quality


RULE = {"columns": {"levels": "storeys", "population_est": "residents"}}


def test_a_city_height_whose_source_is_missing_is_said_to_come_from_the_citys_height() -> None:
    r = ConflationRule(layer="buildings", source="city", **RULE)  # type: ignore[arg-type]
    city = _city().assign(height_source=["measuredHeight", np.nan, None, " "])
    columns = rule_columns(r, SourceKind.VECTOR, ["building_id", "height_m", "storeys", "year_built",
                                                  "residents", "name"], origin="twin.toml", index=0)  # fmt: skip
    frame = conflate_buildings(_osm(), city, r, columns, storey_height_m=3.0).frame.set_index("building_id")
    got = frame.loc[["A", "C1", "C2", "D"], "height_source"].tolist()
    assert got == ["city:measuredHeight", "city:height", "city:height", "city:height"]  # never "city:nan"


def test_one_building_per_real_building_with_the_preferred_side_per_attribute() -> None:
    frame, decisions, quality = _conflate(**RULE)
    assert sorted(frame.index) == ["A", "C1", "C2", "D", "way-2"]
    a = frame.loc["A"]
    assert (a["height_m"], a["levels"], a["year_built"], a["use"], a["osm_id"], a["match"]) == (
        12.0,
        4.0,
        1960,
        "residential",
        1,
        "matched",
    )
    assert a["height_source"] == "city:height"
    assert a["geometry"].equals(box(0.5, 0, 10.5, 10))  # city geometry wins by default
    # the city splits OSM's block: two buildings, each with the block's OSM attributes
    assert frame.loc["C1", "name"] == "Block C" and frame.loc["C2", "use"] == "residential"
    assert frame.loc["C1", "levels"] == 5.0  # the city has no storeys for C1: OSM's fill the gap
    assert frame.loc["C2", "population_est"] == 20.0
    assert frame.loc["way-2", "match"] == "osm_only" and frame.loc["D", "match"] == "city_only"
    assert frame.loc["D", "name"] == "New house" and frame.loc["D", "use"] == "unknown"
    assert decisions.loc["way-3", "decision"] == "matched" and decisions.loc["C2", "decision"] == "matched"
    assert json.loads(decisions.loc["A", "attribute_sources"])["use"] == "osm"
    assert decisions.loc["A", "overlap"] == pytest.approx(0.95)
    assert {k: quality[k] for k in ("matched_groups", "matched_pairs", "only_osm", "only_city", "merged")} == {
        "matched_groups": 2, "matched_pairs": 3, "only_osm": 1, "only_city": 1, "merged": 0,
    }  # fmt: skip
    # heights: A 9 vs 12 and block 15 vs 14 (within 10%) and 15 vs 16 (within 10%): one conflict
    assert quality["conflicting"]["height_m"] == 1  # type: ignore[index]
    assert decisions.loc["A", "conflicts"] == "height_m,levels"


def test_osm_geometry_can_win_and_unmatched_sides_can_be_dropped() -> None:
    frame, decisions, quality = _conflate(**RULE, prefer={"geometry": "osm", "height_m": "osm"},
                                          keep_unmatched_city=False, keep_unmatched_osm=False)  # fmt: skip
    assert sorted(frame.index) == ["A", "C1"]  # OSM's A and block C, keyed by their city partners
    assert frame.loc["C1", "geometry"].equals(box(40, 0, 60, 10)) and frame.loc["C1", "height_m"] == 15.0
    assert decisions.loc["C2", "decision"] == "merged"
    assert (
        decisions.loc["D", "decision"] == "dropped_only_city"
        and decisions.loc["way-2", "decision"] == "dropped_only_osm"
    )
    assert quality["merged"] == 1


def test_footprints_match_by_their_own_overlap_not_their_bounding_boxes() -> None:
    """Two L-shapes (19 m² each: arms of 1 × 10 and 9 × 1) with the same 10 × 10 bounding box share
    all 19 m² when equal but only two 1 m² corners when mirrored (2/19 = 11 % < 50 %); a diamond
    inside a square shares all its 50 m² (100 % of the smaller) though it covers only half the square."""
    ell = Polygon([(0, 0), (10, 0), (10, 1), (1, 1), (1, 10), (0, 10)])
    mirrored = Polygon([(10, 10), (0, 10), (0, 9), (9, 9), (9, 0), (10, 0)])
    diamond = Polygon([(25, 20), (30, 25), (25, 30), (20, 25)])
    osm = gpd.GeoDataFrame(
        {"osm_id": [1, 2, 3], "osm_type": ["way"] * 3, "building": ["yes"] * 3, "use": ["residential"] * 3,
         "name": [None] * 3, "levels": [1.0] * 3, "height_m": [3.0] * 3, "height_source": ["default"] * 3},
        geometry=[ell, ell, box(20, 20, 30, 30)], crs=CRS,
    )  # fmt: skip
    city = gpd.GeoDataFrame(
        {"building_id": ["same", "diamond"], "height_m": [3.0, 3.0]},
        geometry=[ell, diamond], crs=CRS,
    )  # fmt: skip
    osm.loc[1, "geometry"] = mirrored
    rule = ConflationRule(layer="buildings", source="city")
    columns = rule_columns(rule, SourceKind.VECTOR, ["building_id", "height_m"], origin="twin.toml", index=0)
    result = conflate_buildings(osm, city, rule, columns, storey_height_m=3.0)
    decided = result.decisions.set_index("object")
    assert decided.loc["same", ["decision", "partner", "overlap"]].tolist() == ["matched", "way-1", 1.0]
    assert decided.loc["way-2", "decision"] == "only_osm"  # its boxes coincide, its footprints do not
    assert decided.loc["diamond", ["decision", "partner", "overlap"]].tolist() == ["matched", "way-3", 1.0]
    assert result.quality["matched_pairs"] == 2


def test_a_rule_naming_a_missing_column_is_one_line_naming_the_key() -> None:
    rule = ConflationRule(layer="buildings", source="city", prefer={"population_est": "city"})
    with pytest.raises(
        ConfigError,
        match=r"twin.toml: conflation\[2\].prefer.population_est: source 'city' has no column 'population_est'",
    ):
        rule_columns(rule, SourceKind.VECTOR, ["height_m", "residents"], origin="twin.toml", index=2)
    rule = ConflationRule(layer="buildings", source="city", columns={"year_built": "baujahr"})
    with pytest.raises(
        ConfigError, match=r"conflation\[0\].columns.year_built: source 'city' has no column 'baujahr'"
    ):
        rule_columns(rule, SourceKind.VECTOR, ["height_m"], origin="twin.toml", index=0)


def _edges() -> gpd.GeoDataFrame:
    """Two streets: 'Main St' (two-way, 50 km/h, 2 lanes a way) along y=0 and 'Side St' along x=0."""
    rows = []
    for way, name, line in (
        (10, "Main St", LineString([(0, 0), (100, 0)])),
        (20, "Side St", LineString([(0, 0), (0, 100)])),
    ):
        for sign, geom in (("", line), ("-", LineString(line.coords[::-1]))):
            rows.append({"edge_id": f"{sign}{way}_1", "from_node": 1, "to_node": 2, "osm_id": way, "name": name,
                         "highway": "secondary", "lanes": 2, "speed_kmh": 50.0, "maxspeed_kmh": np.nan,
                         "capacity_vph": 2400, "capacity_class": 3, "length_m": 100.0, "car": True, "bus": True,
                         "bike": True, "walk": True, "geometry": geom})  # fmt: skip
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)


def _city_roads() -> gpd.GeoDataFrame:
    """Main St drawn 3 m off and west-bound (30 km/h, one-way as drawn), a wrongly named line, and a far one."""
    return gpd.GeoDataFrame(
        {"id": ["m", "x", "far"], "street": ["MAIN  st.", "Other St", "Far Rd"], "speed": [30, 20, 40],
         "oneway": ["yes", None, "no"], "lanes_total": [3, 2, 2]},
        geometry=[LineString([(100, 3), (0, 3)]), LineString([(2, 0), (2, 100)]), LineString([(500, 0), (600, 0)])],
        crs=CRS,
    )  # fmt: skip


def test_streets_match_by_geometry_and_name_and_set_speed_oneway_and_lanes() -> None:
    rule = ConflationRule(layer="streets", source="roads", name_column="street",
                          columns={"maxspeed_kmh": "speed", "oneway": "oneway", "lanes": "lanes_total"})  # fmt: skip
    city = _city_roads()
    columns = rule_columns(
        rule, SourceKind.VECTOR, list(city.columns.drop("geometry")), origin="twin.toml", index=0
    )
    result = conflate_streets(_edges(), city, rule, columns)
    edges = result.frame.set_index("edge_id")
    assert edges.loc["10_1", "maxspeed_kmh"] == 30.0 and edges.loc["-10_1", "speed_kmh"] == 30.0
    assert (edges.loc["10_1", "car"], edges.loc["-10_1", "car"]) == (
        False,
        True,
    )  # one-way westwards, as drawn
    # one-way now, so all 3 lanes run westwards at OSM's 1200 veh/h per lane
    assert (edges.loc["-10_1", "lanes"], edges.loc["-10_1", "capacity_vph"]) == (3, 3600)
    assert (
        edges.loc["20_1", "maxspeed_kmh"] != edges.loc["20_1", "maxspeed_kmh"]
    )  # 'Other St' never matches 'Side St'
    assert edges.loc["20_1", "car"] and edges.loc["-20_1", "car"]
    quality = result.quality
    assert (
        quality["matched_edges"],
        quality["only_osm_edges"],
        quality["matched_city_lines"],
        quality["only_city_lines"],
    ) == (1, 1, 1, 2)
    assert quality["changed"] == {"maxspeed_kmh": 2, "oneway": 1, "lanes": 2, "name": 0}  # type: ignore[comparison-overlap]
    decisions = result.decisions.set_index("object")
    assert decisions.loc["10_1", "partner"] == "m" and decisions.loc["10_1", "overlap"] == 3.0
    assert decisions.loc["far", "decision"] == "only_city_not_added"


def test_streets_refuse_adding_city_only_lines() -> None:
    with pytest.raises(ValueError, match="cannot be added to the network"):
        ConflationRule(layer="streets", source="roads", keep_unmatched_city=True)
