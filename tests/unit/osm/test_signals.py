"""OSM traffic signals reach the twin's network nodes and the SUMO network built from them.

A hand-made extract (0.001° of longitude ≈ 55.5 m, of latitude ≈ 111.3 m here): a two-way secondary
main street (way 100) west to east through nodes 1, 34, 2, 31, 3, 33, 4, 6, crossed by three
residential streets at the junctions 2, 3 and 4 (ways 200, 201, 202) and by a footway at node 34
(way 300). OSM signal nodes (``highway=traffic_signals``):

* 2 on the junction node itself: controls junction 2;
* 31 on the main street 10 m west of junction 3, ``traffic_signals:direction=forward`` (eastbound,
  the way's direction): a vertex inside the edge 2→3, controls junction 3;
* 32 on the cross street 12 m north of junction 3, no direction: a vertex inside that edge, 12 m
  from junction 3 one way and 99 m from the street's end the other: controls junction 3;
* 33 on the main street 55.5 m from junctions 3 and 4: nothing within 25 m, inside an edge: not placed;
* 34 where the footway crosses the main street, 55.5 m from node 1 and from junction 2: a mid-block
  signal at a node (two car neighbours): controls node 34.

Node 37 (``highway=crossing`` + ``crossing=traffic_signals`` on way 202) is kept in the layer and
counted, and controls nothing. Junction 4 has no signal and stays a priority junction.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from osm_fixtures import LAT0, LON0, write_osm_twin, write_pbf

import civictwin.memory
from civictwin.build import build_twin
from civictwin.config import load_config
from civictwin.engines.traffic.inputs import load_twin
from civictwin.engines.traffic.network import build_sumo_network
from civictwin.store.opening import open_store, store_location

AHEAD_LON = 10 / 55.5 * 0.001  # 10 m of longitude
AHEAD_LAT = 12 / 111.3 * 0.001  # 12 m of latitude
SIGNAL = {"highway": "traffic_signals"}


def _extract(path: Path) -> Path:
    x = lambda d: LON0 + d  # noqa: E731
    y = lambda d: LAT0 + d  # noqa: E731
    nodes = {
        1: (x(0.0), y(0), {}),
        34: (x(0.001), y(0), {"highway": "traffic_signals", "crossing": "traffic_signals"}),
        2: (x(0.002), y(0), SIGNAL),
        31: (x(0.004 - AHEAD_LON), y(0), {**SIGNAL, "traffic_signals:direction": "forward"}),
        3: (x(0.004), y(0), {}),
        33: (x(0.005), y(0), SIGNAL),
        4: (x(0.006), y(0), {}),
        6: (x(0.008), y(0), {}),
        21: (x(0.002), y(-0.001), {}),
        22: (x(0.002), y(0.001), {}),
        23: (x(0.004), y(-0.001), {}),
        32: (x(0.004), y(AHEAD_LAT), SIGNAL),
        24: (x(0.004), y(0.001), {}),
        25: (x(0.006), y(-0.001), {}),
        37: (x(0.006), y(-0.0005), {"highway": "crossing", "crossing": "traffic_signals"}),
        26: (x(0.006), y(0.001), {}),
        35: (x(0.001), y(-0.0003), {}),
        36: (x(0.001), y(0.0003), {}),
    }
    residential = {"highway": "residential", "maxspeed": "30"}
    ways = {
        100: ([1, 34, 2, 31, 3, 33, 4, 6], {"highway": "secondary", "maxspeed": "40", "name": "Main"}),
        200: ([21, 2, 22], residential),
        201: ([23, 3, 32, 24], residential),
        202: ([25, 37, 4, 26], residential),
        300: ([35, 34, 36], {"highway": "footway"}),
    }
    return write_pbf(path, nodes, ways)


def _write_twin(folder: Path) -> Path:
    _extract(folder / "signals.osm.pbf")
    bbox = [LON0 - 0.001, LAT0 - 0.002, LON0 + 0.009, LAT0 + 0.002]
    return write_osm_twin(folder, name="Signals", pbf="signals.osm.pbf", bbox=bbox)


@pytest.fixture(scope="module")
def signal_twin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = _write_twin(tmp_path_factory.mktemp("signals"))
    build_twin(load_config(folder))
    return folder


def test_the_signal_layer_keeps_every_signal_node_with_its_tags(signal_twin: Path) -> None:
    with open_store(store_location(load_config(signal_twin))) as store:
        layer = store.read_table("traffic_signals").sort_values("osm_id")
    assert layer["osm_id"].tolist() == [2, 31, 32, 33, 34, 37]
    assert layer["highway"].tolist() == ["traffic_signals"] * 5 + ["crossing"]
    assert layer["direction"].fillna("").tolist() == ["", "forward", "", "", "", ""]
    assert layer["crossing"].fillna("").tolist() == ["", "", "", "", "traffic_signals", "traffic_signals"]


def test_signals_flag_the_junctions_they_control_and_the_quality_counts_them(signal_twin: Path) -> None:
    with open_store(store_location(load_config(signal_twin))) as store:
        nodes = store.read_table("network_nodes")
        quality = store.records("quality")["network_nodes"]
    flagged = sorted(nodes.loc[nodes["traffic_signals"], "node_id"].tolist())
    assert flagged == [2, 3, 34]
    assert quality["traffic_signals"] == {
        "signals": 6,
        "vehicle_signals": 5,
        "pedestrian_crossings": 1,
        "at_junction": 1,
        "ahead_of_junction": 2,
        "mid_block_at_node": 1,
        "not_placed": 1,
        "signalled_nodes": 3,
    }


def test_the_sumo_network_has_traffic_lights_exactly_at_the_flagged_nodes(
    signal_twin: Path, tmp_path: Path
) -> None:
    inputs = load_twin(signal_twin)
    network = build_sumo_network(inputs.edges, inputs.nodes, tmp_path / "net")
    root = ET.parse(network.net_file).getroot()
    programs = {tl.get("id") for tl in root.iter("tlLogic")}
    assert programs == {"2", "3", "34"}
    assert {tl.get("type") for tl in root.iter("tlLogic")} == {"actuated"}
    types = {j.get("id"): j.get("type") for j in root.iter("junction") if j.get("type") != "internal"}
    assert types["2"] == types["3"] == types["34"] == "traffic_light"
    assert types["4"] == "priority"
    # The approach signals lie inside edges: no junction of their own in the SUMO network.
    assert "31" not in types and "32" not in types and "33" not in types


def test_a_network_built_in_partitions_flags_the_same_nodes(
    signal_twin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forced into 4 partitions (the default 4,096 MB budget made to fit 5 / 4 roads each), the build
    places the signals cell by cell and gets the same nodes and counts as in one piece."""
    roads, partitions = 5, 4
    per_partition_bytes = 4096 * civictwin.memory.PARTITION_SHARE * 1024 * 1024
    monkeypatch.setattr(
        civictwin.memory, "NETWORK_BYTES_PER_ROAD", int(per_partition_bytes * partitions / roads)
    )
    folder = _write_twin(tmp_path)
    build_twin(load_config(folder))
    with open_store(store_location(load_config(folder))) as store:
        nodes = store.read_table("network_nodes")
        quality = store.records("quality")["network_nodes"]["traffic_signals"]
        lineage = store.records("lineage")["network_nodes"]
    with open_store(store_location(load_config(signal_twin))) as store:
        whole = store.read_table("network_nodes")
        whole_quality = store.records("quality")["network_nodes"]["traffic_signals"]
    assert lineage["parameters"]["partitions"] > 1
    assert sorted(nodes.loc[nodes["traffic_signals"], "node_id"].tolist()) == [2, 3, 34]
    assert list(nodes.columns) == list(whole.columns)
    assert quality == whole_quality
