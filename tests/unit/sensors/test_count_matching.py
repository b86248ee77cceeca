"""Counting points matched to directed edges on a hand-made network whose answers are known."""

from __future__ import annotations

import geopandas as gpd
from shapely.geometry import LineString, Point

from civictwin.model.counts import match_count_sites
from civictwin.sources.observations import CountSite

CRS = "EPSG:32635"
CENTRE = Point(0, -2000)  # the centre lies 2 km south of every street below


def edges() -> gpd.GeoDataFrame:
    """Streets running north-south (x in metres); ids as the network writes them (reverse: ``-``)."""
    rows = [
        ("10_1", "Testikatu", LineString([(0, 0), (0, 200)])),  # two-way: both directions
        ("-10_1", "Testikatu", LineString([(0, 200), (0, 0)])),
        ("20_1", "Kaksoistie", LineString([(500, 200), (500, 0)])),  # dual carriageway: southbound...
        ("21_1", "Kaksoistie", LineString([(520, 0), (520, 200)])),  # ...and northbound, 20 m apart
        ("30_1", "Yksisuuntainen", LineString([(1000, 0), (1000, 200)])),  # one-way, northbound
        ("40_1", "Pitkäsilta", LineString([(1500, 0), (1500, 200)])),
        ("-40_1", "Pitkäsilta", LineString([(1500, 200), (1500, 0)])),
        ("41_1", "Sivukatu", LineString([(1505, 0), (1505, 200)])),  # another street 5 m away
    ]
    return gpd.GeoDataFrame(
        {"edge_id": [r[0] for r in rows], "name": [r[1] for r in rows], "car": True},
        geometry=[r[2] for r in rows],
        crs=CRS,
    )


def site(
    key: str,
    name: str,
    *,
    ratios: tuple[float, float] = (1.0, 0.4),
    totals: tuple[float, float] = (100, 90),
    directions: tuple[str, ...] = ("1", "2"),
) -> CountSite:
    return CountSite(
        key=key,
        name=name,
        lon=0.0,
        lat=0.0,
        directions={d: [f"{key}/{d}"] for d in directions},
        am_pm_ratio=dict(zip(("1", "2"), ratios, strict=True)),
        totals=dict(zip(("1", "2"), totals, strict=True)),
    )


def match(sites: list[CountSite], points: list[Point]) -> dict[tuple[str, str], object]:
    found = match_count_sites(
        sites, gpd.GeoSeries(points, crs=CRS), edges(), centre=CENTRE, max_distance_m=50
    )
    return {(m.site, m.direction): m for m in found}


def test_two_way_street_direction_1_is_the_edge_towards_the_centre() -> None:
    found = match([site("P1", "TESTIKATU")], [Point(10, 100)])
    inbound, outbound = found[("P1", "1")], found[("P1", "2")]
    assert (inbound.edge_ids, inbound.heading, outbound.edge_ids, outbound.heading) == (
        ("-10_1",),
        "inbound",
        ("10_1",),
        "outbound",
    )
    assert inbound.distance_m == 10.0 and not inbound.ambiguous and inbound.street == "Testikatu"
    assert inbound.as_properties["edge_id"] == "-10_1"


def test_peaks_that_contradict_the_convention_are_flagged() -> None:
    found = match([site("P1", "TESTIKATU", ratios=(0.4, 1.0))], [Point(10, 100)])
    assert found[("P1", "1")].edge_ids == ("-10_1",) and found[("P1", "1")].ambiguous
    assert "peaks contradict direction 1 inbound" in found[("P1", "1")].reasons[0]


def test_dual_carriageway_gives_each_direction_its_carriageway() -> None:
    found = match([site("P2", "KAKSOIST.")], [Point(505, 100)])  # an abbreviation, nearer the southbound one
    assert found[("P2", "1")].edge_ids == ("20_1",) and found[("P2", "1")].distance_m == 5.0
    assert found[("P2", "2")].edge_ids == ("21_1",) and found[("P2", "2")].distance_m == 15.0
    assert not found[("P2", "1")].ambiguous


def test_one_way_street_counts_only_where_traffic_runs() -> None:
    found = match([site("P3", "YKSISUUNTAINEN", totals=(0, 500))], [Point(1003, 100)])
    assert found[("P3", "2")].edge_ids == ("30_1",) and found[("P3", "2")].heading == "outbound"
    assert found[("P3", "1")].edge_ids == () and not found[("P3", "1")].ambiguous
    assert found[("P3", "1")].reasons == ("one-way street: no edge in this direction",)


def test_lost_letters_match_and_a_street_nearby_is_flagged() -> None:
    found = match([site("A08", "PITK\ufffdSILTA")], [Point(1498, 100)])
    match_1 = found[("A08", "1")]
    assert match_1.edge_ids == ("-40_1",) and match_1.street == "Pitkäsilta"
    assert match_1.ambiguous and match_1.reasons == ("another street (Sivukatu) within 10 m",)


def test_no_street_of_that_name_means_no_match_and_says_what_is_near() -> None:
    found = match([site("D09", "POHJOISESPLANADI")], [Point(10, 100)])
    assert found[("D09", "1")].edge_ids == ()
    assert found[("D09", "1")].reasons == (
        "no street named like 'POHJOISESPLANADI' within 50 m (nearest: Testikatu at 10 m)",
    )
    far = match([site("X", "TESTIKATU")], [Point(300, 100)])
    assert far[("X", "1")].reasons == ("no drivable edge within 50 m",)


def test_a_count_without_direction_gets_both_edges() -> None:
    found = match([site("C18", "TESTIKATU", directions=("both",))], [Point(10, 100)])
    assert found[("C18", "both")].edge_ids == ("10_1", "-10_1") and found[("C18", "both")].heading == "both"
