"""Hand-made 3D city models, DEMs and OSM files whose every number can be checked by hand.

The house: a 10 × 8 m footprint at x = 500 000 (UTM 32's central meridian, where grid north is
true north) from z = 100 to the eaves at 106 and a ridge at 109 running east–west. Hand-computed:
ground 80 m² (tilt 180°), two roofs of 10 × 5 = 50 m² each tilted atan(3/4) = 36.87°, facing
south (180°) and north (0°); walls of 60 m² each facing 180°, 90°, 0° and 270° (the gable walls:
8 × 6 + ½ × 8 × 3 = 60 m²).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import osmium
from osmium.osm.mutable import Node, Way

Ingest = Callable[..., Any]
"""The ``ingest`` fixture: ``ingest(kind, path, twin_crs=..., area=..., **options)`` → (store, result)."""

X0, Y0, Z0 = 500_000.0, 5_400_000.0, 100.0
CRS_ADV = "urn:adv:crs:ETRS89_UTM32*DE_DHHN2016_NH*GCG2016"
TWIN_CRS = "EPSG:25832"
SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"

# local vertices of the house (metres from X0, Y0; absolute z)
HOUSE = [
    (0, 0, 100), (10, 0, 100), (10, 8, 100), (0, 8, 100),  # 0-3 ground
    (0, 0, 106), (10, 0, 106), (10, 8, 106), (0, 8, 106),  # 4-7 eaves
    (0, 4, 109), (10, 4, 109),  # 8-9 ridge
]  # fmt: skip
SURFACES = [  # (semantic type, ring as vertex indices, counter-clockwise seen from outside)
    ("GroundSurface", [0, 3, 2, 1]),
    ("WallSurface", [0, 1, 5, 4]),
    ("WallSurface", [1, 2, 6, 9, 5]),
    ("WallSurface", [2, 3, 7, 6]),
    ("WallSurface", [3, 0, 4, 8, 7]),
    ("RoofSurface", [4, 5, 9, 8]),
    ("RoofSurface", [6, 7, 8, 9]),
]
# hand-computed (area m², tilt °, azimuth °) per surface above; azimuth None for the flat ground
EXPECTED = [
    (80.0, 180.0, None), (60.0, 90.0, 180.0), (60.0, 90.0, 90.0), (60.0, 90.0, 0.0), (60.0, 90.0, 270.0),
    (50.0, 36.87, 180.0), (50.0, 36.87, 0.0),
]  # fmt: skip


def house_points(dx: float = 0.0, dy: float = 0.0) -> list[tuple[float, float, float]]:
    """The house's vertices in real coordinates, shifted by (dx, dy) metres."""
    return [(X0 + x + dx, Y0 + y + dy, float(z)) for x, y, z in HOUSE]


def write_citygml(path: Path, *, version: str = "2.0", srs: str = CRS_ADV, houses: int = 1,
                  measured_height: float | None = 9.5) -> Path:  # fmt: skip
    """A CityGML file with ``houses`` houses 20 m apart, LoD2 boundary surfaces and an xlinked solid."""
    core = f"http://www.opengis.net/citygml/{version}"
    bldg = f"http://www.opengis.net/citygml/building/{version}"
    gen = f"http://www.opengis.net/citygml/generics/{version}"
    members = []
    for h in range(houses):
        points = house_points(dx=20.0 * h)
        boundaries, refs = [], []
        for n, (kind, ring) in enumerate(SURFACES):
            coords = " ".join(f"{points[i][0]} {points[i][1]} {points[i][2]}" for i in [*ring, ring[0]])
            refs.append(f'<gml:surfaceMember xlink:href="#h{h}p{n}"/>')
            boundaries.append(
                f'<bldg:boundedBy><bldg:{kind} gml:id="h{h}s{n}"><bldg:lod2MultiSurface><gml:MultiSurface>'
                f'<gml:surfaceMember><gml:Polygon gml:id="h{h}p{n}"><gml:exterior><gml:LinearRing>'
                f'<gml:posList srsDimension="3">{coords}</gml:posList></gml:LinearRing></gml:exterior>'
                f"</gml:Polygon></gml:surfaceMember></gml:MultiSurface></bldg:lod2MultiSurface></bldg:{kind}>"
                "</bldg:boundedBy>"
            )
        height = (
            f'<bldg:measuredHeight uom="m">{measured_height}</bldg:measuredHeight>' if measured_height else ""
        )
        members.append(
            f'<core:cityObjectMember><bldg:Building gml:id="house{h}"><gml:name>House {h}</gml:name>'
            f'<gen:stringAttribute name="owner"><gen:value>city</gen:value></gen:stringAttribute>'
            f"<bldg:function>1000</bldg:function><bldg:yearOfConstruction>1975</bldg:yearOfConstruction>"
            f"{height}<bldg:storeysAboveGround>2</bldg:storeysAboveGround>"
            f"<bldg:lod2Solid><gml:Solid><gml:exterior><gml:CompositeSurface>{''.join(refs)}"
            f"</gml:CompositeSurface></gml:exterior></gml:Solid></bldg:lod2Solid>{''.join(boundaries)}"
            "</bldg:Building></core:cityObjectMember>"
        )
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<core:CityModel xmlns:core="{core}" xmlns:bldg="{bldg}" xmlns:gen="{gen}" '
        'xmlns:gml="http://www.opengis.net/gml" xmlns:xlink="http://www.w3.org/1999/xlink">'
        f'<gml:boundedBy><gml:Envelope srsName="{srs}" srsDimension="3">'
        f"<gml:lowerCorner>{X0} {Y0} 100</gml:lowerCorner><gml:upperCorner>{X0 + 10} {Y0 + 8} 109</gml:upperCorner>"
        f"</gml:Envelope></gml:boundedBy>{''.join(members)}</core:CityModel>",
        encoding="utf-8",
    )
    return path


def house_cityjson(*, version: str = "2.0", crs: str = "https://www.opengis.net/def/crs/EPSG/0/5555",
                   with_part: bool = True) -> dict[str, Any]:  # fmt: skip
    """The house as CityJSON: a Building (LoD1 box + attributes) with a BuildingPart holding the LoD2 solid."""
    translate = [X0, Y0, 0.0]
    vertices = [[round(x * 1000), round(y * 1000), round(z * 1000)] for x, y, z in HOUSE]
    lod2 = {
        "type": "Solid", "lod": "2.2", "boundaries": [[[list(ring)] for _kind, ring in SURFACES]],
        "semantics": {"surfaces": [{"type": "GroundSurface"}, {"type": "WallSurface", "material": "brick"},
                                   {"type": "RoofSurface"}],
                      "values": [[0, 1, 1, 1, 1, 2, 2]]},
    }  # fmt: skip
    box_top = len(vertices)
    vertices += [[x, y, 108_000] for x, y, _z in vertices[:4]]
    lod1 = {"type": "Solid", "lod": "1.2",
            "boundaries": [[[[0, 3, 2, 1]], [[box_top, box_top + 1, box_top + 2, box_top + 3]],
                            [[0, 1, box_top + 1, box_top]], [[1, 2, box_top + 2, box_top + 1]],
                            [[2, 3, box_top + 3, box_top + 2]], [[3, 0, box_top, box_top + 3]]]]}  # fmt: skip
    building: dict[str, Any] = {"type": "Building", "attributes": {"yearOfConstruction": 1975, "owner": "city"},
                                "geometry": [lod1]}  # fmt: skip
    objects: dict[str, Any] = {"house0": building}
    if with_part:
        building["children"] = ["house0-part"]
        objects["house0-part"] = {"type": "BuildingPart", "parents": ["house0"], "geometry": [lod2],
                                  "attributes": {"roofType": "gable"}}  # fmt: skip
    else:
        building["geometry"].append(lod2)
    objects["tree1"] = {"type": "SolitaryVegetationObject", "geometry": []}
    return {
        "type": "CityJSON", "version": version,
        "transform": {"scale": [0.001, 0.001, 0.001], "translate": translate},
        "metadata": {"referenceSystem": crs}, "CityObjects": objects, "vertices": vertices,
    }  # fmt: skip


def write_json(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def write_cityjsonseq(path: Path, document: dict[str, Any]) -> Path:
    """The same model as CityJSONSeq: a header line, then one feature per building with its own vertices."""
    header = {k: v for k, v in document.items() if k not in ("CityObjects", "vertices")}
    header.update({"CityObjects": {}, "vertices": []})
    feature = {"type": "CityJSONFeature", "id": "house0",
               "CityObjects": {k: v for k, v in document["CityObjects"].items() if k.startswith("house0")},
               "vertices": document["vertices"]}  # fmt: skip
    path.write_text(json.dumps(header) + "\n" + json.dumps(feature) + "\n", encoding="utf-8")
    return path


def write_dem(path: Path, *, x0: float, y0: float, width_m: float, height_m: float, cell: float = 2.0,
              base: float = 100.0, slope_x: float = 0.05, crs: str = TWIN_CRS) -> Path:  # fmt: skip
    """A GeoTIFF of the plane z = base + slope_x · (x − x0), cell centres sampled exactly."""
    import rasterio
    from rasterio.transform import from_origin

    cols, rows = int(width_m / cell), int(height_m / cell)
    xs = x0 + (np.arange(cols) + 0.5) * cell
    heights = np.tile(base + slope_x * (xs - x0), (rows, 1)).astype("float32")
    transform = from_origin(x0, y0 + height_m, cell, cell)
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=1, dtype="float32", crs=crs,
                       transform=transform, nodata=-9999.0) as dst:  # fmt: skip
        dst.write(heights, 1)
    return path


def write_pbf(path: Path, nodes: dict[int, tuple[float, float, dict[str, str]]],
              ways: dict[int, tuple[list[int], dict[str, str]]]) -> Path:  # fmt: skip
    """Nodes {id: (lon, lat, tags)} and ways {id: (refs, tags)} as an OSM PBF."""
    writer = osmium.SimpleWriter(str(path), overwrite=True)
    for node_id, (lon, lat, tags) in sorted(nodes.items()):
        writer.add_node(Node(id=node_id, location=osmium.osm.Location(lon, lat), tags=tags, version=1))
    for way_id, (refs, tags) in sorted(ways.items()):
        writer.add_way(Way(id=way_id, nodes=refs, tags=tags, version=1))
    writer.close()
    return path


def lonlat(x: float, y: float) -> tuple[float, float]:
    """Longitude and latitude of a point in the twins' CRS (EPSG:25832)."""
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(TWIN_CRS, "EPSG:4326", always_xy=True).transform(x, y)
    return float(lon), float(lat)


def build_dem_twin(folder: Path, *, name: str, osm_heights: dict[float, str], city_houses: int = 0,
                   **city: Any) -> Path:  # fmt: skip
    """A twin around the house on the DEM plane (:func:`write_dem`), built; its store's path.

    ``osm_heights`` maps the x offset (m from X0) of each OSM building (10 × 8 m, at Y0) to its
    ``height`` tag, with a residential road 10 m south of them; ``city_houses`` CityGML LoD2 houses
    (:func:`write_citygml`, ``city`` adds options to that source); the area runs from 100 m
    west/south of (X0, Y0) to 160 m east and 100 m north.
    """
    from civictwin.build import build_twin
    from civictwin.config import parse_config

    source = {"licence": "CC0", "publisher": "p", "steward": "s"}
    sources: list[dict[str, Any]] = []
    if osm_heights:
        nodes: dict[int, tuple[float, float, dict[str, str]]] = {}
        ways: dict[int, tuple[list[int], dict[str, str]]] = {}
        for n, (dx, height) in enumerate(osm_heights.items()):
            corners = [(X0 + dx, Y0), (X0 + dx + 10, Y0), (X0 + dx + 10, Y0 + 8), (X0 + dx, Y0 + 8)]
            ids = [10 * n + i + 1 for i in range(4)]
            nodes.update({i: (*lonlat(x, y), {}) for i, (x, y) in zip(ids, corners, strict=True)})
            ways[100 + n] = ([*ids, ids[0]], {"building": "house", "height": height})
        nodes.update({1001: (*lonlat(X0 - 50, Y0 - 10), {}), 1002: (*lonlat(X0 + 150, Y0 - 10), {})})
        ways[200] = ([1001, 1002], {"highway": "residential", "name": "Hauptstraße"})
        write_pbf(folder / "area.osm.pbf", nodes, ways)
        sources.append({"name": "osm", "kind": "osm", "path": "area.osm.pbf", **source})
    if city_houses:
        write_citygml(folder / "city.gml", houses=city_houses)
        sources.append({"name": "city3d", "kind": "citygml", "path": "city.gml", **source, **city})
    write_dem(folder / "dem.tif", x0=X0 - 500, y0=Y0 - 500, width_m=1000, height_m=1000, cell=5.0)
    sources.append({"name": "terrain", "kind": "dem", "path": "dem.tif", **source})
    west, south = lonlat(X0 - 100, Y0 - 100)
    east, north = lonlat(X0 + 160, Y0 + 100)
    config = parse_config(
        {
            "twin": {"name": name, "crs": TWIN_CRS},
            "area": {"bbox": [west, south, east, north]},
            "sources": sources,
        },
        base_dir=folder,
    )
    build_twin(config)
    return config.store_path
