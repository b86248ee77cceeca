"""A tiny twin for the traffic engine tests: a 4 × 4 street grid with Main Street, four zones, a closure plan."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely
from shapely.geometry import box

from civictwin.engines.registry import intervention_catalog
from civictwin.engines.traffic.demand import DemandParams
from civictwin.engines.traffic.engine import TrafficEngine
from civictwin.engines.traffic.inputs import TwinInputs
from civictwin.engines.traffic.params import TrafficParams
from civictwin.engines.traffic.synthetic import grid_network
from civictwin.scenarios.spec import parse_scenario

CATALOG = intervention_catalog([TrafficEngine()])
"""The traffic engine's intervention types, to parse scenarios with."""

ORIGIN = (385_000.0, 6_671_000.0)
X0, Y0 = ORIGIN


def tiny_inputs(twin_dir: Path) -> TwinInputs:
    """A 4 × 4 grid (200 m blocks, Main Street along row 2) split into four zones."""
    edges, nodes = grid_network(4, 4, 200.0, origin=ORIGIN)
    x0, y0 = ORIGIN
    cells = [
        box(x0 - 100 + i * 400, y0 - 100 + j * 400, x0 + 300 + i * 400, y0 + 300 + j * 400)
        for j in range(2)
        for i in range(2)
    ]
    zones = gpd.GeoDataFrame(
        {
            "zone_id": ["sw", "se", "nw", "ne"],
            "population": [500.0, 300.0, 300.0, 100.0],
            "jobs_proxy_m2": [0.0, 7_000.0, 3_500.0, 10_000.0],
            "poi_shop": [1, 5, 2, 10],
        },
        geometry=cells,
        crs=edges.crs,
    )
    return TwinInputs(
        twin_dir=twin_dir,
        crs=str(edges.crs),
        edges=edges,
        nodes=nodes,
        zones=zones,
        stops=None,
        stop_frequency=None,
        stop_routes=None,
        catalog={"zones": {"rows": 4}},
    )


CLOSURE = parse_scenario(
    {
        "name": "close_main",
        "description": "Main Street closed to cars.",
        "interventions": [{"type": "close_streets", "streets": ["Main Street"], "modes": ["car"]}],
    },
    CATALOG,
    origin="close_main.toml",
)
PARAMS = TrafficParams(iterations=2, demand=DemandParams(scale=2.0, distance="crowfly"))


def with_stubs(edges: gpd.GeoDataFrame, nodes: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """The 4 × 4 grid (200 m blocks) with two roads leaving it: west of node 5 (row 1, column 0) and
    east of node 12 (row 2, column 3), 100 m long, two-way, one lane each way."""
    template = edges.iloc[0].to_dict()
    stubs = []
    for way, (inner, outer, xy_in, xy_out) in enumerate(
        [
            (5, 901, (X0, Y0 + 200), (X0 - 100, Y0 + 200)),
            (12, 902, (X0 + 600, Y0 + 400), (X0 + 700, Y0 + 400)),
        ]
    ):
        line = shapely.LineString([xy_out, xy_in])
        common = {**template, "osm_id": 900 + way, "name": f"Stub {way}", "length_m": 100.0, "lanes": 1}
        stubs.append(
            {**common, "edge_id": f"{900 + way}_0", "from_node": outer, "to_node": inner, "geometry": line}
        )
        stubs.append(
            {
                **common,
                "edge_id": f"-{900 + way}_0",
                "from_node": inner,
                "to_node": outer,
                "geometry": shapely.reverse(line),
            }
        )
    more_nodes = gpd.GeoDataFrame(
        {"node_id": [901, 902], "degree": [1, 1]},
        geometry=[shapely.Point(X0 - 100, Y0 + 200), shapely.Point(X0 + 700, Y0 + 400)],
        crs=nodes.crs,
    )
    added = gpd.GeoDataFrame(stubs, geometry="geometry", crs=edges.crs)
    return (
        pd.concat([edges, added], ignore_index=True),
        pd.concat([nodes, more_nodes], ignore_index=True),
    )
