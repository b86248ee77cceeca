"""A tiny twin for the traffic engine tests: a 4 × 4 street grid with Main Street, four zones, a closure plan."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
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
