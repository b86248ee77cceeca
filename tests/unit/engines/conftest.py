"""Tiny networks for the SUMO engine tests and helpers to read the files SUMO produced."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import geopandas as gpd
import pytest
from plugin import write_distribution
from pyproj import Transformer

from civictwin.engines.traffic.synthetic import GRID_CRS, grid_network

ORIGIN = (385_000.0, 6_671_000.0)


@pytest.fixture(scope="module")
def toy_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """The toy engine (``plugin.py``) importable here and by the pool's workers, and the paths a
    subprocess or a Dask cluster needs to import it."""
    paths = write_distribution(tmp_path_factory.mktemp("site"))
    sys.path[:0] = paths
    yield paths
    for path in paths:
        sys.path.remove(path)


@pytest.fixture
def grid() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """(edges, nodes) of a 3×3 grid of 200 m streets; Main Street (way 101, 2 lanes, 50 km/h) in the middle."""
    return grid_network(3, 3, 200.0, origin=ORIGIN)


def _lonlat(dx: float, dy: float) -> list[float]:
    transformer = Transformer.from_crs(GRID_CRS, "EPSG:4326", always_xy=True)
    lon, lat = transformer.transform(ORIGIN[0] + dx, ORIGIN[1] + dy)
    return [float(lon), float(lat)]


def _net_connections(net_file: Path) -> list[dict[str, str]]:
    return [
        dict(c.attrib)
        for c in ET.parse(net_file).getroot().iter("connection")
        if not c.get("from", "").startswith(":")
    ]


@pytest.fixture
def blocks() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """(edges, nodes): three east-west streets of four 100 m edges, crossed by three avenues 200 m apart.

    The 3 × 5 grid of 100 m without its avenues 201 and 203: nodes 2, 4, 7, 9, 12 and 14 (``r·5 + c + 1``)
    join only the two halves of their street, so each pair of edges there is one SUMO edge. Main Street
    (way 101: ``101_0`` … ``101_3`` eastwards) is the middle one.
    """
    edges, nodes = grid_network(3, 5, 100.0, origin=ORIGIN)
    edges = edges[~edges["osm_id"].isin([201, 203])].reset_index(drop=True)
    used = set(edges["from_node"]) | set(edges["to_node"])
    return edges, nodes[nodes["node_id"].isin(used)].reset_index(drop=True)


@pytest.fixture
def lonlat() -> Callable[[float, float], list[float]]:
    """Grid-local metres (from the grid's south-west corner) to [lon, lat]."""
    return _lonlat


@pytest.fixture
def net_connections() -> Callable[[Path], list[dict[str, str]]]:
    """The connections between normal edges in a SUMO net file, with their attributes."""
    return _net_connections
