"""A small real twin for the API tests (imported by conftest.py and the tests): a DuckDB store in EPSG:32635 (central Helsinki) with layers at
every access level, catalogue records, and one token per role.

Layers (ids are rowids, in the order below):

- ``buildings`` (public): 5 polygons 20 m x 20 m, 100 m apart along x from (385000, 6672000), with
  ``use``, ``height_m`` and a ``surveyed`` timestamp (2019-01-01 + i years).
- ``roads`` (internal): 4 lines; ``highway`` primary, primary, secondary, residential.
- ``zones`` (restricted, stewarded by the ``steward`` token): 2 squares of 500 m.
- ``transit_routes`` (public): 3 rows, no geometry.
- ``secret_sites``: 2 points and no catalogue record at all, so restricted (fail closed).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
from shapely.geometry import LineString, Point, box

from civictwin.store.duckdb import DuckDBStore

CRS = "EPSG:32635"
X0, Y0 = 385_000.0, 6_672_000.0
ACCESS = {
    "buildings": "public",
    "roads": "internal",
    "zones": "restricted",
    "transit_routes": "public",
}
LAYERS = [*ACCESS, "secret_sites"]
GEOMETRY_LAYERS = ["buildings", "roads", "zones", "secret_sites"]
ROLES = ["anonymous", "viewer", "analyst", "steward", "admin", "moderator"]


def build_twin(directory: Path) -> Path:
    """Write the test twin's store into ``directory`` and return the store path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "test-twin.duckdb"
    store = DuckDBStore.create(path, crs=CRS)
    try:
        store.write_table("buildings", _buildings())
        store.write_table("roads", _roads())
        store.write_table("zones", _zones())
        store.write_table(
            "transit_routes",
            pd.DataFrame(
                {"route_id": ["1", "2", "3"], "route_type": [0, 3, 3], "route_short_name": ["1", "55", "55"]}
            ),
        )
        store.write_table(
            "secret_sites",
            gpd.GeoDataFrame(
                {"site": ["a", "b"]}, geometry=[Point(X0 + 50, Y0 + 50), Point(X0 + 250, Y0 + 50)], crs=CRS
            ),
        )
        for table, access in ACCESS.items():
            store.put_record(
                "catalog",
                table,
                {
                    "title": table.replace("_", " ").title(),
                    "description": f"The {table}.",
                    "access": access,
                    "publisher": "City of Helsinki",
                    "licence": "CC-BY-4.0",
                },
            )
    finally:
        store.close()
    return path


def _buildings() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "osm_id": [101, 102, 103, 104, 105],
            "use": ["residential", "residential", "commercial", "public", "residential"],
            "name": ["Talo A", None, "Kauppa", "Koulu", "Talo E"],
            "height_m": [12.0, 9.0, 21.5, 15.0, 30.0],
            "surveyed": pd.to_datetime(
                ["2019-01-01", "2020-01-01", "2021-01-01", "2022-01-01", "2023-01-01"]
            ),
        },
        geometry=[box(X0 + i * 100, Y0, X0 + i * 100 + 20, Y0 + 20) for i in range(5)],
        crs=CRS,
    )


def _roads() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "osm_id": [201, 202, 203, 204],
            "highway": ["primary", "primary", "secondary", "residential"],
            "lanes": [2, 2, 1, 1],
        },
        geometry=[LineString([(X0, Y0 - 50 - 40 * i), (X0 + 500, Y0 - 50 - 40 * i)]) for i in range(4)],
        crs=CRS,
    )


def _zones() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"zone_id": ["z1", "z2"], "population": [1200, 800]},
        geometry=[box(X0 - 100, Y0 - 200, X0 + 400, Y0 + 300), box(X0 + 400, Y0 - 200, X0 + 900, Y0 + 300)],
        crs=CRS,
    )


def auth(tokens: dict[str, str], role: str) -> dict[str, str]:
    """Request headers for ``role`` (no header for anonymous)."""
    return {} if role == "anonymous" else {"Authorization": f"Bearer {tokens[role]}"}
