"""A 3×3 grid of 200 m streets (see civictwin.engines.traffic.synthetic) and WGS84 helpers."""

from __future__ import annotations

from collections.abc import Callable

import geopandas as gpd
import pytest
from pyproj import Transformer

from civictwin.engines.traffic.synthetic import GRID_CRS, grid_network

ORIGIN = (385_000.0, 6_671_000.0)


@pytest.fixture
def grid() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """(edges, nodes) of the 3×3 grid; Main Street is the middle row (way 101), nodes 1..9."""
    return grid_network(3, 3, 200.0, origin=ORIGIN)


def _to_wgs84(x: float, y: float) -> tuple[float, float]:
    lon, lat = Transformer.from_crs(GRID_CRS, "EPSG:4326", always_xy=True).transform(x, y)
    return float(lon), float(lat)


@pytest.fixture
def lonlat() -> Callable[[float, float], tuple[float, float]]:
    """Grid-local metres (from the grid's south-west corner) to (lon, lat)."""
    return lambda dx, dy: _to_wgs84(ORIGIN[0] + dx, ORIGIN[1] + dy)


@pytest.fixture
def box_wkt() -> Callable[[float, float, float, float], str]:
    """A WGS84 WKT polygon for a box given in grid-local metres."""

    def make(x0: float, y0: float, x1: float, y1: float) -> str:
        corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
        points = [_to_wgs84(ORIGIN[0] + x, ORIGIN[1] + y) for x, y in corners]
        return "POLYGON ((" + ", ".join(f"{lon:.8f} {lat:.8f}" for lon, lat in points) + "))"

    return make
