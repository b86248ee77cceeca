"""OSM traffic signals in a twin stored in PostGIS: the ``traffic_signals`` layer and the flag on
``network_nodes`` are the same as in DuckDB (tests/unit/osm/test_signals.py).

A hand-made extract in central Helsinki (0.001° of longitude ≈ 55.5 m): a secondary street (way 100)
west to east through nodes 1, 11, 2, 3, 4, crossed by residential streets at junction 2 (way 200) and
junction 3 (way 201). Signal node 11 lies on way 100 10 m west of junction 2, no direction: it
controls junction 2 (10 m ahead eastbound; westbound, node 1 is 101 m away and no junction).
Junction 3 has no signal.
"""

from __future__ import annotations

from pathlib import Path

import osmium
from osmium.osm.mutable import Node, Way

from civictwin.build import build_twin
from civictwin.config import load_config
from civictwin.store.opening import open_store

TWIN_TOML = """[twin]
name = "Pg signals"
crs = "EPSG:32635"
store = "{url}"

[area]
bbox = [24.938, 60.168, 24.948, 60.172]

[[sources]]
name = "osm"
kind = "osm"
path = "signals.osm.pbf"
licence = "ODbL-1.0"
publisher = "OpenStreetMap contributors"
steward = "City GIS team"
"""

LON0, LAT0 = 24.94, 60.17
TEN_M = 10 / 55.5 * 0.001  # 10 m of longitude here


def write_extract(path: Path) -> None:
    nodes = {
        1: (LON0, LAT0, {}),
        11: (LON0 + 0.002 - TEN_M, LAT0, {"highway": "traffic_signals"}),
        2: (LON0 + 0.002, LAT0, {}),
        3: (LON0 + 0.004, LAT0, {}),
        4: (LON0 + 0.006, LAT0, {}),
        21: (LON0 + 0.002, LAT0 - 0.001, {}),
        22: (LON0 + 0.002, LAT0 + 0.001, {}),
        23: (LON0 + 0.004, LAT0 - 0.001, {}),
        24: (LON0 + 0.004, LAT0 + 0.001, {}),
    }
    ways = {
        100: ([1, 11, 2, 3, 4], {"highway": "secondary"}),
        200: ([21, 2, 22], {"highway": "residential"}),
        201: ([23, 3, 24], {"highway": "residential"}),
    }
    writer = osmium.SimpleWriter(str(path), overwrite=True)
    for node_id, (lon, lat, tags) in sorted(nodes.items()):
        writer.add_node(Node(id=node_id, location=osmium.osm.Location(lon, lat), tags=tags, version=1))
    for way_id, (refs, tags) in sorted(ways.items()):
        writer.add_way(Way(id=way_id, nodes=refs, tags=tags, version=1))
    writer.close()


def test_signals_are_stored_and_flag_their_junction_in_postgis(postgis_url: str, tmp_path: Path) -> None:
    write_extract(tmp_path / "signals.osm.pbf")
    (tmp_path / "twin.toml").write_text(TWIN_TOML.format(url=postgis_url))
    build_twin(load_config(tmp_path))
    with open_store(load_config(tmp_path)) as store:
        signals = store.read_frame("traffic_signals")
        nodes = store.read_table("network_nodes")
        quality = store.records("quality")["network_nodes"]["traffic_signals"]
        lineage = store.records("lineage")["network_nodes"]
    assert signals["osm_id"].tolist() == [11]
    assert signals["highway"].tolist() == ["traffic_signals"]
    assert str(signals.crs) == "EPSG:32635"
    assert nodes["traffic_signals"].dtype == bool
    assert sorted(nodes.loc[nodes["traffic_signals"], "node_id"].tolist()) == [2]
    assert quality["ahead_of_junction"] == 1 and quality["signalled_nodes"] == 1
    assert "traffic_signals" in str(lineage)
