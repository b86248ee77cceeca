"""`civictwin build` into PostGIS from the command line: a tiny hand-made OSM extract (two buildings, one
street) becomes a twin in the database, listed by `civictwin layers`; no password in any file written."""

from __future__ import annotations

from pathlib import Path

import osmium
import pytest
from osmium.osm.mutable import Node, Way
from pgtwin import PASSWORD

from civictwin.cli import main
from civictwin.config import load_config
from civictwin.store.opening import open_store

TWIN_TOML = """[twin]
name = "Pg cli"
crs = "EPSG:32635"
store = "{url}"

[area]
bbox = [24.93, 60.16, 24.96, 60.18]

[[sources]]
name = "osm"
kind = "osm"
path = "city.osm.pbf"
licence = "ODbL-1.0"
publisher = "OpenStreetMap contributors"
steward = "City GIS team"
"""


def write_extract(path: Path) -> None:
    """Two square buildings (about 11 m × 11 m) and one residential street, in central Helsinki."""
    writer = osmium.SimpleWriter(str(path), overwrite=True)
    nodes: list[Node] = []
    ways: list[Way] = []
    for way_id, (lon, lat, tags) in {
        100: (24.9400, 60.1700, {"building": "apartments", "building:levels": "4"}),
        101: (24.9500, 60.1700, {"building": "office"}),
    }.items():
        first = way_id * 10
        corners = [(lon, lat), (lon + 0.0002, lat), (lon + 0.0002, lat + 0.0001), (lon, lat + 0.0001)]
        nodes += [
            Node(id=first + i, location=osmium.osm.Location(x, y), version=1)
            for i, (x, y) in enumerate(corners)
        ]
        ways.append(
            Way(id=way_id, nodes=[first, first + 1, first + 2, first + 3, first], tags=tags, version=1)
        )
    nodes += [
        Node(id=2000 + i, location=osmium.osm.Location(x, 60.169), version=1)
        for i, x in enumerate([24.935, 24.955])
    ]
    ways.append(
        Way(id=200, nodes=[2000, 2001], tags={"highway": "residential", "name": "Testikatu"}, version=1)
    )
    for node in sorted(nodes, key=lambda n: n.id):
        writer.add_node(node)
    for way in ways:
        writer.add_way(way)
    writer.close()


def test_build_into_postgis_on_the_command_line(
    postgis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_extract(tmp_path / "city.osm.pbf")
    (tmp_path / "twin.toml").write_text(TWIN_TOML.format(url=postgis_url))
    main(["build", str(tmp_path)])
    main(["layers", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "buildings" in printed and "network_edges" in printed
    with open_store(load_config(tmp_path)) as store:
        buildings = store.read_frame("buildings")
        assert sorted(buildings["osm_id"].tolist()) == [100, 101]
        assert str(buildings.crs) == "EPSG:32635"
        assert "buildings" in store.records("catalog") and "buildings" in store.records("lineage")
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not [p.name for p in written if PASSWORD.encode() in p.read_bytes()]
    assert PASSWORD not in printed
