"""Writers for tiny hand-made OSM files whose every number can be checked by hand."""

from __future__ import annotations

from pathlib import Path

import osmium
from osmium.osm.mutable import Node, Relation, Way

# A small patch of Helsinki; 0.001° of longitude ≈ 55.5 m and of latitude ≈ 111.3 m here.
LON0, LAT0 = 24.94, 60.17
BBOX = (24.93, 60.16, 24.96, 60.18)


def write_pbf(path: Path, nodes: dict[int, tuple[float, float, dict[str, str]]],
              ways: dict[int, tuple[list[int], dict[str, str]]],
              relations: dict[int, tuple[list[tuple[str, int, str]], dict[str, str]]] | None = None,
              *, sort_nodes: bool = True) -> Path:  # fmt: skip
    """Write nodes {id: (lon, lat, tags)}, ways {id: (refs, tags)} and relations to a PBF.

    Nodes are written by id, as OSM extracts are, unless ``sort_nodes`` is false (then in the order
    given, as some tools that merge or shift extracts leave them).
    """
    writer = osmium.SimpleWriter(str(path), overwrite=True)
    for node_id, (lon, lat, tags) in sorted(nodes.items()) if sort_nodes else nodes.items():
        writer.add_node(Node(id=node_id, location=osmium.osm.Location(lon, lat), tags=tags, version=1))
    for way_id, (refs, tags) in sorted(ways.items()):
        writer.add_way(Way(id=way_id, nodes=refs, tags=tags, version=1))
    for rel_id, (members, tags) in sorted((relations or {}).items()):
        writer.add_relation(Relation(id=rel_id, members=members, tags=tags, version=1))
    writer.close()
    return path


def square(
    first_id: int, lon: float, lat: float, size: float
) -> dict[int, tuple[float, float, dict[str, str]]]:
    """Four corner nodes of a square (ids first_id..first_id+3), counter-clockwise."""
    corners = [(lon, lat), (lon + size, lat), (lon + size, lat + size), (lon, lat + size)]
    return {first_id + i: (x, y, {}) for i, (x, y) in enumerate(corners)}


def write_street_twin(folder: Path) -> Path:
    """A twin in ``folder``: a residential street of three nodes, 111 m from west to east (way 100),
    and a 20 m × 22 m house beside it (way 200)."""
    nodes = {
        1: (LON0, LAT0, {}),
        2: (LON0 + 0.001, LAT0, {}),
        3: (LON0 + 0.002, LAT0, {}),
        **square(10, LON0 + 0.0005, LAT0 + 0.0002, 0.0002),
    }
    ways = {
        100: ([1, 2, 3], {"highway": "residential", "name": "Street"}),
        200: ([10, 11, 12, 13, 10], {"building": "house"}),
    }
    write_pbf(folder / "street.osm.pbf", nodes, ways)
    return write_osm_twin(
        folder,
        name="Street",
        pbf="street.osm.pbf",
        bbox=[LON0 - 0.001, LAT0 - 0.001, LON0 + 0.003, LAT0 + 0.001],
    )


def write_osm_twin(folder: Path, *, name: str, pbf: str, bbox: list[float]) -> Path:
    """``folder``'s ``twin.toml``: a twin named ``name`` in UTM zone 35N over ``bbox`` (WGS84), its
    one source the OSM file ``pbf`` in ``folder``."""
    (folder / "twin.toml").write_text(
        f'[twin]\nname = "{name}"\ncrs = "EPSG:32635"\n[area]\nbbox = {bbox}\n'
        f'[[sources]]\nname = "osm"\nkind = "osm"\npath = "{pbf}"\nlicence = "ODbL-1.0"\n'
        'publisher = "hand-made"\nsteward = "tests"\n',
        encoding="utf-8",
    )
    return folder
