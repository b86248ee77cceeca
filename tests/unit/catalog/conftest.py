"""A small real twin store: roads and buildings from an OSM file, stops and trips from a GTFS folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from catalog_twin import CRS, INGESTED, ROAD, STOPS, gtfs_source, osm_source
from shapely.geometry import box

from civictwin.sources.base import IngestedLayer, IngestResult
from civictwin.store.duckdb import DuckDBStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    s = DuckDBStore.create(tmp_path / "t.duckdb", crs=CRS)
    s.put_record("meta", "twin", {"crs": CRS, "name": "Helsinki centre"})
    yield s
    s.close()


@pytest.fixture
def osm_file(tmp_path: Path) -> Path:
    path = tmp_path / "city.osm.pbf"
    path.write_bytes(b"not really a pbf, but real bytes to checksum\x00\x01\x02")
    return path


@pytest.fixture
def gtfs_dir(tmp_path: Path) -> Path:
    root = tmp_path / "gtfs"
    (root / "extra").mkdir(parents=True)
    (root / "stops.txt").write_text("stop_id,stop_name\n1,Rautatientori\n2,Kamppi\n")
    (root / "extra" / "trips.txt").write_text("trip_id,route_id\nt1,r1\n")
    return root


@pytest.fixture
def populated(store: DuckDBStore, osm_file: Path, gtfs_dir: Path) -> DuckDBStore:
    """Roads (1 line) and buildings (3) from OSM, stops (2) and trips (no geometry) from GTFS."""
    from civictwin.catalog.metadata import record_source

    store.write_table("roads", gpd.GeoDataFrame({"osm_id": [1]}, geometry=[ROAD], crs=CRS))
    store.write_table(
        "buildings",
        gpd.GeoDataFrame(
            {
                "osm_id": [10, 11, 12],
                "height_m": [9.0, 6.0, 3.0],
                "height_source": ["height", "default", "default"],
            },
            geometry=[
                box(385_050, 6_672_050, 385_060, 6_672_070),
                box(385_070, 6_672_050, 385_080, 6_672_060),
                box(385_090, 6_672_050, 385_095, 6_672_055),
            ],
            crs=CRS,
        ),
    )
    store.write_table("transit_stops", gpd.GeoDataFrame({"stop_id": ["1", "2"]}, geometry=STOPS, crs=CRS))
    store.write_table("transit_trips", pd.DataFrame({"trip_id": ["t1"], "route_id": ["r1"]}))
    osm = IngestResult(
        source=osm_source(),
        path=osm_file,
        layers=[IngestedLayer("roads", 1, "Roads"), IngestedLayer("buildings", 3, "Buildings")],
    )
    gtfs = IngestResult(
        source=gtfs_source(),
        path=gtfs_dir,
        layers=[
            IngestedLayer("transit_stops", 2, "Transit stops"),
            IngestedLayer("transit_trips", 1, "Trips"),
        ],
    )
    record_source(store, osm, ingested_at=INGESTED)
    record_source(store, gtfs, ingested_at=INGESTED)
    return store
