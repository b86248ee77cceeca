"""Lineage records (inputs resolved with checksums, tool versions) and quality records and highlights."""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path

import duckdb
import pytest
import shapely

from civictwin.catalog.lineage import record_lineage, tool_versions
from civictwin.catalog.quality import percent, quality_highlights, record_quality, table_findings
from civictwin.errors import StoreError
from civictwin.store.duckdb import DuckDBStore


def test_tool_versions_name_the_libraries_that_shape_results() -> None:
    versions = tool_versions()
    assert {"civictwin", "python", "duckdb", "shapely", "geos", "pyproj", "proj", "gdal", "h3"} <= set(
        versions
    )
    assert versions["python"] == platform.python_version()
    assert versions["duckdb"] == duckdb.__version__
    assert versions["geos"] == shapely.geos_version_string
    assert versions["pyosmium"]  # osmium is installed in the project's environment


def test_lineage_of_a_source_layer_points_at_its_file_and_checksum(
    populated: DuckDBStore, osm_file: Path
) -> None:
    record_lineage(
        populated,
        "roads",
        inputs=["helsinki_osm"],
        step="sources.osm",
        parameters={"clip": True, "path": osm_file},
    )
    lineage = populated.records("lineage")["roads"]
    assert lineage["step"] == "sources.osm"
    assert lineage["inputs"] == [
        {
            "type": "file",
            "source": "helsinki_osm",
            "path": str(osm_file),
            "sha256": hashlib.sha256(osm_file.read_bytes()).hexdigest(),
        }
    ]
    assert lineage["parameters"] == {"clip": True, "path": str(osm_file)}
    assert lineage["tools"] == tool_versions()


def test_lineage_resolves_tables_source_paths_and_plain_files(populated: DuckDBStore, tmp_path: Path) -> None:
    extra = tmp_path / "zones.geojson"
    extra.write_text('{"type": "FeatureCollection", "features": []}')
    gtfs_path = populated.records("catalog")["transit_stops"]["source"]["path"]
    record_lineage(
        populated,
        "buildings",
        inputs=["roads", gtfs_path, str(extra)],
        step="model.buildings",
        parameters={"storey_height_m": 3.0},
    )
    inputs = populated.records("lineage")["buildings"]["inputs"]
    assert inputs[0] == {"type": "table", "table": "roads"}
    assert (inputs[1]["type"], inputs[1]["source"]) == ("file", "hsl_gtfs")
    assert inputs[2] == {
        "type": "file",
        "source": None,
        "path": str(extra),
        "sha256": hashlib.sha256(extra.read_bytes()).hexdigest(),
    }


def test_lineage_refuses_an_input_it_cannot_trace(populated: DuckDBStore) -> None:
    with pytest.raises(StoreError, match="lineage of 'zones': input 'nowhere' is neither a table"):
        record_lineage(populated, "zones", inputs=["nowhere"], step="model.zones", parameters={})


GEOMETRY = {
    "received": 120,
    "missing_geometry": 2,
    "invalid_geometry": 4,
    "repaired_geometry": 3,
    "dropped_unrepairable": 1,
    "outside_area": 10,
    "kept": 107,
}


def test_quality_record_keeps_numbers_and_measures_height_sources(populated: DuckDBStore) -> None:
    record_quality(
        populated,
        "buildings",
        {"geometry": GEOMETRY, "completeness": {"name": 0.25, "levels": 0.6}, "duplicates": 0},
        ["population is an estimate (dasymetric, 40 m² per person)"],
    )
    record = populated.records("quality")["buildings"]
    assert record["geometry"] == GEOMETRY
    assert record["completeness"] == {"name": 0.25, "levels": 0.6}
    assert record["height_source"] == {"default": 2, "height": 1}  # measured from the table
    assert record["notes"] == ["population is an estimate (dasymetric, 40 m² per person)"]


def test_highlights_are_plain_language_and_merge_identical_findings(populated: DuckDBStore) -> None:
    record_quality(populated, "roads", {"geometry": GEOMETRY, "duplicates": 5}, [])
    buildings = {"name": 0.1, "levels": 0.2, "height": 0.004, "roof": 0.6}
    record_quality(populated, "buildings", {"completeness": buildings}, [])
    stops = {"levels": 0.2, "height": 0.004, "wheelchair": 0.3, "platform": 0.4}
    record_quality(populated, "transit_stops", {"completeness": stops, "duplicates": 5}, ["feed has 2 stops"])
    record_quality(populated, "transit_trips", {"geometry": {"invalid_geometry": 0}}, [])
    assert quality_highlights(populated) == [
        "buildings: sparse attributes, share of rows with a value: height <1%, levels 20%",
        "buildings: 33% have a real height; the rest use defaults per building type",
        "roads: 4 invalid geometries (3 repaired, 1 dropped)",
        "roads: 2 features without geometry dropped",
        "roads, transit_stops: 5 duplicate features",  # the same finding, merged
        "transit_stops: sparse attributes, share of rows with a value: height <1%, levels 20%, "
        "wheelchair 30% (and 1 more)",
        "transit_stops: feed has 2 stops",
    ]


@pytest.mark.parametrize(
    ("counts", "line"),
    [
        ({"height": 1, "levels": 3}, "every height is from a tag (25% height, 75% levels)"),
        ({"default": 5}, "no building has a real height; all use defaults per building type"),
        (
            {"height": 12, "levels": 30, "default": 58},
            "12% have a real height, 30% a height from their number of levels; "
            "the rest use defaults per building type",
        ),
    ],
)
def test_height_lines(counts: dict[str, int], line: str) -> None:
    assert table_findings({"height_source": counts}) == [line]


def test_ways_cut_at_the_extract_edge_are_a_finding_only_when_there_are_some() -> None:
    assert table_findings({"ways_with_missing_nodes": 0}) == []
    assert table_findings({"ways_with_missing_nodes": 1}) == [
        "1 way has nodes missing from the extract or without a valid location (usually cut at its edge); "
        "kept with the nodes present"
    ]
    assert table_findings({"ways_with_missing_nodes": 102}) == [
        "102 ways have nodes missing from the extract or without a valid location (usually cut at its edge); "
        "kept with the nodes present"
    ]


def test_percent_never_hides_a_small_share_or_rounds_up_to_all() -> None:
    assert [percent(s) for s in (0, 0.001, 0.12, 0.125, 0.996, 1)] == [
        "0%",
        "<1%",
        "12%",
        "12%",
        ">99%",
        "100%",
    ]
