"""Catalogue records: checksums, governance fields, extents and the rules for derived tables."""

from __future__ import annotations

import hashlib
from pathlib import Path

import geopandas as gpd
import pytest
from catalog_twin import BUILT, CRS, INGESTED, ROAD
from pyproj import Transformer
from shapely.geometry import Point

from civictwin.catalog.metadata import most_restrictive, record_derived, sha256_of
from civictwin.errors import SourceError, StoreError
from civictwin.store.duckdb import DuckDBStore


def test_file_checksum_is_the_sha256_of_its_bytes(osm_file: Path) -> None:
    assert sha256_of(osm_file) == hashlib.sha256(osm_file.read_bytes()).hexdigest()


def test_directory_checksum_covers_sorted_files_and_their_names(gtfs_dir: Path) -> None:
    lines = [
        f"{hashlib.sha256((gtfs_dir / rel).read_bytes()).hexdigest()}  {rel}\n"
        for rel in ("extra/trips.txt", "stops.txt")
    ]
    assert sha256_of(gtfs_dir) == hashlib.sha256("".join(lines).encode()).hexdigest()
    before = sha256_of(gtfs_dir)
    (gtfs_dir / "stops.txt").rename(gtfs_dir / "stops2.txt")
    assert sha256_of(gtfs_dir) != before


def test_checksum_of_a_missing_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"gone\.pbf: cannot compute checksum"):
        sha256_of(tmp_path / "gone.pbf")


def test_source_record_holds_governance_checksum_and_extent(populated: DuckDBStore, osm_file: Path) -> None:
    roads = populated.records("catalog")["roads"]
    to_wgs84 = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    (x0, y0), (x1, y1) = (to_wgs84.transform(x, y) for x, y in ROAD.coords)
    assert roads == {
        "table": "roads",
        "title": "Roads",
        "description": "OpenStreetMap extract of central Helsinki",
        "kind": "osm",
        "publisher": "OpenStreetMap contributors",
        "steward": "City GIS unit",
        "licence": "ODbL-1.0",
        "access": "public",
        "source": {
            "name": "helsinki_osm",
            "path": str(osm_file),
            "sha256": hashlib.sha256(osm_file.read_bytes()).hexdigest(),
        },
        "issued": "2026-11-21T12:00:00+00:00",
        "rows": 1,
        "bbox_wgs84": pytest.approx([x0, y0, x1, y1], abs=1e-7),
        "crs": "EPSG:32635",
    }
    assert 24.9 < x0 < 25.0 and 60.1 < y0 < 60.2  # central Helsinki


def test_every_layer_of_a_source_is_catalogued_and_tables_without_geometry_have_no_bbox(
    populated: DuckDBStore,
) -> None:
    catalogue = populated.records("catalog")
    assert sorted(catalogue) == ["buildings", "roads", "transit_stops", "transit_trips"]
    assert catalogue["transit_trips"]["bbox_wgs84"] is None
    assert catalogue["transit_trips"]["rows"] == 1
    assert catalogue["transit_stops"]["access"] == "internal"
    assert catalogue["transit_stops"]["source"]["sha256"] == catalogue["transit_trips"]["source"]["sha256"]


def test_derived_record_combines_inputs_and_takes_the_most_restrictive_access(populated: DuckDBStore) -> None:
    populated.write_table(
        "transit_stops_snapped",
        gpd.GeoDataFrame({"stop_id": ["1", "2", "3"]}, geometry=[Point(385_000, 6_672_000)] * 3, crs=CRS),
    )
    record_derived(
        populated,
        "transit_stops_snapped",
        title="Stops snapped to the network",
        description="Each stop with its nearest walkable edge",
        inputs=["transit_stops", "roads"],
        built_at=BUILT,
    )
    record = populated.records("catalog")["transit_stops_snapped"]
    assert record["publisher"] == "Helsinki Region Transport; OpenStreetMap contributors"
    assert record["steward"] == "Mobility team; City GIS unit"
    assert record["licence"] == "https://creativecommons.org/licenses/by/4.0/; ODbL-1.0"
    assert record["access"] == "internal"
    assert record["kind"] == "derived"
    assert record["inputs"] == ["transit_stops", "roads"]
    assert record["rows"] == 3  # counted in the store, not trusted from a caller
    assert record["issued"] == "2026-11-21T12:05:00+00:00"
    assert record["bbox_wgs84"][0] == pytest.approx(record["bbox_wgs84"][2])  # a single point
    assert "source" not in record
    record_derived(
        populated, "transit_stops_snapped", title="Stops snapped to the network", description="",
        inputs=["transit_stops"], built_at=BUILT, extent_wgs84=(24.123456789, 60.0, 24.5, 60.987654321),
    )  # fmt: skip
    # an extent the caller already has is kept as the store's would be: rounded to 7 decimals
    assert populated.records("catalog")["transit_stops_snapped"]["bbox_wgs84"] == [
        24.1234568,
        60.0,
        24.5,
        60.9876543,
    ]


def test_derived_record_refuses_uncatalogued_inputs_and_missing_tables(populated: DuckDBStore) -> None:
    with pytest.raises(StoreError, match="no such table"):
        record_derived(populated, "zones", title="Zones", description="", inputs=["roads"], built_at=BUILT)
    with pytest.raises(StoreError, match="input\\(s\\) population_grid have no catalogue record"):
        record_derived(
            populated, "roads", title="x", description="", inputs=["population_grid"], built_at=INGESTED
        )


def test_access_levels_order() -> None:
    assert most_restrictive(["public", "public"]) == "public"
    assert most_restrictive(["public", "restricted", "internal"]) == "restricted"
    assert most_restrictive([]) == "public"
    with pytest.raises(StoreError, match="unknown access level 'secret'"):
        most_restrictive(["secret"])
