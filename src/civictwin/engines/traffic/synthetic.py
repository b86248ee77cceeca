"""Synthetic street grids in the twin's ``network_edges``/``network_nodes`` shape.

Small grids make the engine testable without a city; large ones measure how run time grows with
network size. The middle row is a two-lane primary street (``Main Street``), the rest one-lane
residential streets; every street is two-way and open to all modes.
"""

from __future__ import annotations

import geopandas as gpd
import shapely

GRID_CRS = "EPSG:32635"
"""UTM zone 35N, which covers Helsinki; the default origin lies in central Helsinki."""


def grid_network(
    rows: int = 3,
    cols: int = 3,
    spacing_m: float = 200.0,
    *,
    crs: str = GRID_CRS,
    origin: tuple[float, float] = (385_000.0, 6_671_000.0),
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """A ``rows`` × ``cols`` grid of junctions ``spacing_m`` apart: (edges, nodes).

    Node ids are ``r * cols + c + 1``. Row ``r`` is OSM way ``100 + r`` named ``Row r Street`` with
    edges ``<way>_<c>`` eastwards and ``-<way>_<c>`` westwards; column ``c`` is way ``200 + c``
    (``Col c Avenue``), edges ``<way>_<r>`` northwards.
    """
    if rows < 2 or cols < 2:
        raise ValueError("a grid needs at least 2 rows and 2 columns")
    x0, y0 = origin
    node_ids = {(r, c): r * cols + c + 1 for r in range(rows) for c in range(cols)}
    points = {key: shapely.Point(x0 + key[1] * spacing_m, y0 + key[0] * spacing_m) for key in node_ids}
    edges: list[dict[str, object]] = []
    main_row = rows // 2
    for r in range(rows):
        for c in range(cols - 1):
            main = r == main_row
            edges.extend(
                _pair(
                    100 + r,
                    c,
                    (r, c),
                    (r, c + 1),
                    node_ids,
                    points,
                    spacing_m,
                    name="Main Street" if main else f"Row {r} Street",
                    highway="primary" if main else "residential",
                    lanes=2 if main else 1,
                    speed=50.0 if main else 30.0,
                )
            )
    for c in range(cols):
        for r in range(rows - 1):
            edges.extend(
                _pair(
                    200 + c,
                    r,
                    (r, c),
                    (r + 1, c),
                    node_ids,
                    points,
                    spacing_m,
                    name=f"Col {c} Avenue",
                    highway="residential",
                    lanes=1,
                    speed=30.0,
                )
            )
    edge_frame = gpd.GeoDataFrame(edges, geometry="geometry", crs=crs)
    nodes = gpd.GeoDataFrame(
        {"node_id": list(node_ids.values()), "degree": 0},
        geometry=[points[k] for k in node_ids],
        crs=crs,
    )
    degree = edge_frame["from_node"].value_counts().add(edge_frame["to_node"].value_counts(), fill_value=0)
    nodes["degree"] = nodes["node_id"].map(degree).fillna(0).astype(int) // 2
    return edge_frame, nodes


def _pair(
    way: int,
    seq: int,
    start: tuple[int, int],
    end: tuple[int, int],
    node_ids: dict[tuple[int, int], int],
    points: dict[tuple[int, int], shapely.Point],
    length: float,
    *,
    name: str,
    highway: str,
    lanes: int,
    speed: float,
) -> list[dict[str, object]]:
    """The forward and reverse directed edges of one street segment."""
    common = {
        "osm_id": way,
        "name": name,
        "highway": highway,
        "lanes": lanes,
        "speed_kmh": speed,
        "maxspeed_kmh": speed,
        "capacity_vph": 900.0 * lanes,
        "capacity_class": highway,
        "length_m": length,
        "car": True,
        "bike": True,
        "walk": True,
    }
    line = shapely.LineString([points[start], points[end]])
    forward = {
        "edge_id": f"{way}_{seq}",
        "from_node": node_ids[start],
        "to_node": node_ids[end],
        **common,
        "geometry": line,
    }
    reverse = {
        "edge_id": f"-{way}_{seq}",
        "from_node": node_ids[end],
        "to_node": node_ids[start],
        **common,
        "geometry": shapely.reverse(line),
    }
    return [forward, reverse]
