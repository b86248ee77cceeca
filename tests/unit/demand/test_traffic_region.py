"""The regional model of traffic across the boundary, on a hand-made region around the tiny twin.

The region is the tiny twin's 4 × 4 grid with its two gateway stubs (west node 901, east node 902),
a 1,000 m road from each gateway to a town outside (west node 911, east node 912), and a bypass
between the towns round the south (2,200 + 2,800 + 2,400 m), all at 30 km/h. Its zones are the
tiny twin's four and one box around each town.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import box
from traffic_tiny_twin import X0, Y0, tiny_inputs, with_stubs

from civictwin.engines.traffic.demand import DemandError, DemandParams, gravity_od
from civictwin.engines.traffic.gateways import PHONE_SOURCE, STATED_DEFAULT, GatewayFlow, find_gateways
from civictwin.engines.traffic.region import (
    REGION_SOURCE,
    AreaBoundary,
    RegionTables,
    regional_cells,
    regional_flows,
    regional_outside,
)
from civictwin.engines.traffic.report import _gateway_note

DEMAND = DemandParams(distance="crowfly")
PER_PERSON = 0.5 / 1.2  # outside_car_share / car_occupancy
TOWNS = {
    911: (X0 - 1100, Y0 + 200),
    912: (X0 + 1700, Y0 + 400),
    913: (X0 - 1100, Y0 - 2000),
    914: (X0 + 1700, Y0 - 2000),
}
GATEWAYS = {901: (X0 - 100, Y0 + 200), 902: (X0 + 700, Y0 + 400)}
OUTSIDE_ROADS = [(950, 901, 911), (951, 902, 912), (952, 911, 913), (953, 913, 914), (954, 914, 912)]


def _road(way: int, start: int, end: int, template: dict[str, object]) -> list[dict[str, object]]:
    points = {**TOWNS, **GATEWAYS}
    line = shapely.LineString([points[start], points[end]])
    common = {**template, "osm_id": way, "name": f"Road {way}", "length_m": line.length, "speed_kmh": 30.0}
    return [
        {**common, "edge_id": f"{way}_0", "from_node": start, "to_node": end, "geometry": line},
        {
            **common,
            "edge_id": f"-{way}_0",
            "from_node": end,
            "to_node": start,
            "geometry": shapely.reverse(line),
        },
    ]


@pytest.fixture
def area(tmp_path):  # type: ignore[no-untyped-def]
    inputs = tiny_inputs(tmp_path)
    edges, nodes = with_stubs(inputs.edges, inputs.nodes)
    return type(inputs)(**{**inputs.__dict__, "edges": edges, "nodes": nodes})


def _region(area) -> RegionTables:  # type: ignore[no-untyped-def]
    template = area.edges.iloc[0].to_dict()
    roads = [edge for way in OUTSIDE_ROADS for edge in _road(*way, template)]
    edges = pd.concat(
        [area.edges, gpd.GeoDataFrame(roads, geometry="geometry", crs=area.edges.crs)], ignore_index=True
    )
    towns = gpd.GeoDataFrame(
        {
            "zone_id": ["west", "east"],
            "population": [2000.0, 1000.0],
            "jobs_proxy_m2": [20_000.0, 35_000.0],
            "poi_shop": [3, 4],
        },
        geometry=[
            box(X0 - 1600, Y0 - 300, X0 - 600, Y0 + 700),
            box(X0 + 1200, Y0 - 100, X0 + 2200, Y0 + 900),
        ],
        crs=area.zones.crs,
    )
    zones = pd.concat([area.zones, towns], ignore_index=True)
    return RegionTables(
        label="twin 'test region'", edges=edges, zones=gpd.GeoDataFrame(zones, crs=area.zones.crs)
    )


def _outside(area, region):  # type: ignore[no-untyped-def]
    return regional_outside(
        region,
        AreaBoundary(area.zones, area.edges, tuple(find_gateways(area.edges, boundary_m=50.0))),
        demand=DEMAND,
        vehicles_per_person=PER_PERSON,
    )


def _cells(area, outside, *, edges=None, leaving=("901", "902")):  # type: ignore[no-untyped-def]
    return regional_cells(
        outside,
        area_edges=area.edges if edges is None else edges,
        zones=area.zones,
        zone_open=np.ones(len(area.zones), dtype=bool),
        entering=["901", "902"],
        leaving=list(leaving),
    )


def test_outside_times_are_free_flow_on_the_roads_outside_the_area(area) -> None:  # type: ignore[no-untyped-def]
    outside = _outside(area, _region(area))
    assert outside.gateways == ("901", "902")
    # 1,000 m at 30 km/h: 120 s; the west town reaches the east gateway only round the bypass
    # (2,200 + 2,800 + 2,400 + 1,000 m = 8,400 m: 1,008 s), as the area's ways are not "outside"
    assert outside.to_gateway_s[0] == pytest.approx([120.0, 1008.0], abs=0.01)
    assert outside.from_gateway_s[:, 1] == pytest.approx([1008.0, 120.0], abs=0.01)
    assert outside.outside_s[0, 1] == pytest.approx(7400 / (30 / 3.6), abs=0.01)


def test_trips_take_the_quickest_gateway_and_cross_where_that_is_quicker(area) -> None:  # type: ignore[no-untyped-def]
    region = _region(area)
    vehicles = gravity_od(region.zones, DEMAND, region.edges).trips * PER_PERSON
    west, east = 4, 5  # the region's zones after the tiny twin's four
    cells = _cells(area, _outside(area, region))
    for z, name in enumerate(["sw", "se", "nw", "ne"]):
        assert cells.cells[("in:901", name)] == pytest.approx(vehicles[west, z])
        assert cells.cells[("in:902", name)] == pytest.approx(vehicles[east, z])
        assert cells.cells[(name, "out:901")] == pytest.approx(vehicles[z, west])
        assert cells.cells[(name, "out:902")] == pytest.approx(vehicles[z, east])
    # across the area: 120 + 1,000 m / 30 km/h (120 s) + 120 = 360 s, against 888 s round the bypass
    assert cells.cells[("in:901", "out:902")] == pytest.approx(vehicles[west, east])
    assert cells.cells[("in:902", "out:901")] == pytest.approx(vehicles[east, west])
    assert cells.avoiding == pytest.approx(vehicles[west, west] + vehicles[east, east])
    assert cells.unreached == 0.0
    assert cells.reached_in == {"901", "902"} == cells.reached_out


def test_a_slow_area_sends_the_through_traffic_round_it(area) -> None:  # type: ignore[no-untyped-def]
    region = _region(area)
    vehicles = gravity_od(region.zones, DEMAND, region.edges).trips * PER_PERSON
    slow = area.edges.assign(speed_kmh=5.0)  # 1,000 m across at 5 km/h: 720 s; 960 s > 888 s round it
    cells = _cells(area, _outside(area, region), edges=slow)
    assert ("in:901", "out:902") not in cells.cells and ("in:902", "out:901") not in cells.cells
    assert cells.avoiding == pytest.approx(vehicles[4:, 4:].sum())
    assert cells.cells[("in:901", "sw")] == pytest.approx(vehicles[4, 0])  # the way in is unchanged


def test_a_closed_gateway_sends_its_trips_to_the_next_one(area) -> None:  # type: ignore[no-untyped-def]
    region = _region(area)
    vehicles = gravity_od(region.zones, DEMAND, region.edges).trips * PER_PERSON
    cells = _cells(area, _outside(area, region), leaving=["901"])
    # out to the east town through the west gateway and round the bypass
    assert cells.cells[("se", "out:901")] == pytest.approx(vehicles[1, 4] + vehicles[1, 5])
    assert cells.reached_out == {"901"}
    assert not any(end == "out:902" for _, end in cells.cells)


def test_regional_flows_replace_the_stated_defaults_only(area) -> None:  # type: ignore[no-untyped-def]
    region = _region(area)
    vehicles = gravity_od(region.zones, DEMAND, region.edges).trips * PER_PERSON
    cells = _cells(area, _outside(area, region))
    stated = GatewayFlow(node="901", inbound_vph=(1.0, 1.0), through_vph=(1.0, 1.0), outbound_vph=(1.0, 1.0))
    counted = GatewayFlow(
        node="902",
        inbound_vph=(7.0, 7.0),
        through_vph=(3.0, 3.0),
        outbound_vph=(1.0, 1.0),
        inbound_source="A08/1",
    )
    west, east = regional_flows([stated, counted], cells, ratios=[1.0, 0.5])
    into_area = vehicles[4, :4].sum()
    assert west.inbound_vph == pytest.approx((into_area, 0.5 * into_area))
    assert west.through_vph == pytest.approx((vehicles[4, 5], 0.5 * vehicles[4, 5]))
    assert west.outbound_vph == pytest.approx((vehicles[:4, 4].sum(), 0.5 * vehicles[:4, 4].sum()))
    assert west.inbound_source == west.outbound_source == f"{REGION_SOURCE} (twin 'test region')"
    # beside a phone-based inbound flow the region gives only the through flow
    phone = stated.model_copy(update={"inbound_source": PHONE_SOURCE, "inbound_vph": (9.0, 9.0)})
    (beside_phone,) = regional_flows([phone], cells, ratios=[1.0, 0.5])
    assert beside_phone.inbound_vph == (9.0, 9.0) and beside_phone.inbound_source == PHONE_SOURCE
    assert beside_phone.through_vph == pytest.approx((vehicles[4, 5], 0.5 * vehicles[4, 5]))
    assert beside_phone.through_source == west.inbound_source
    # the report names the through flow's source where it differs, gateways with one set of sources together
    assert _gateway_note(
        [{"node": "901", "inbound": PHONE_SOURCE, "through": "region", "outbound": "region"}] * 2
    ) == (
        f" Traffic from outside through 2 gateway(s) (901, 901: in from {PHONE_SOURCE}, across from region, "
        "out from region)."
    )
    # a count is kept; its stated outbound flow is replaced
    assert east.inbound_vph == (7.0, 7.0) and east.inbound_source == "A08/1"
    assert east.outbound_source.startswith(REGION_SOURCE) and STATED_DEFAULT not in east.outbound_source


def test_a_region_that_does_not_reach_beyond_the_area_or_shares_no_gateway_is_refused(area) -> None:  # type: ignore[no-untyped-def]
    region = _region(area)
    only_area = RegionTables(label="inner", edges=region.edges, zones=region.zones.iloc[:4])
    with pytest.raises(
        DemandError, match=r"^gateways.region: the region \(inner\) has no zone outside the area$"
    ):
        _outside(area, only_area)
    other = region.edges.assign(  # another extract: other ids for the same roads
        osm_id=region.edges["osm_id"] + 10_000,
        from_node=region.edges["from_node"].replace({901: 801, 902: 802}),
        to_node=region.edges["to_node"].replace({901: 801, 902: 802}),
    )
    with pytest.raises(DemandError, match="none of the area's 2 gateways is a node of the region's roads"):
        _outside(area, RegionTables(label="other data", edges=other, zones=region.zones))


def test_a_region_whose_tables_cannot_make_demand_says_which_twin(area) -> None:  # type: ignore[no-untyped-def]
    region = _region(area)
    no_people = RegionTables(label="bare", edges=region.edges, zones=region.zones.drop(columns="population"))
    with pytest.raises(
        DemandError,
        match=r"^gateways.region: the region \(bare\): zones: zones table lacks column\(s\) population$",
    ):
        _outside(area, no_people)
    no_ids = RegionTables(label="ids", edges=region.edges.drop(columns="osm_id"), zones=region.zones)
    with pytest.raises(
        DemandError, match=r"^gateways\.region: the region's network_edges lack the osm_id column"
    ):
        _outside(area, no_ids)
