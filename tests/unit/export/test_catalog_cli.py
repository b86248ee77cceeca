"""The ``catalog``, ``quality`` and ``export`` commands on a real twin directory (twin.toml + store)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from export_twin import CRS, buildings_frame

import civictwin.cli.catalog  # noqa: F401  (registers the commands)
from civictwin.catalog.lineage import record_lineage
from civictwin.catalog.metadata import record_source
from civictwin.catalog.quality import record_quality
from civictwin.cli import console, main
from civictwin.config import load_config
from civictwin.sources.base import IngestedLayer, IngestResult
from civictwin.store.duckdb import DuckDBStore

TOML = """
[twin]
name = "Helsinki centre"
store = "twin.duckdb"

[area]
bbox = [24.92, 60.16, 24.96, 60.18]

[[sources]]
name = "helsinki_osm"
kind = "osm"
path = "city.osm.pbf"
licence = "ODbL-1.0"
publisher = "OpenStreetMap contributors"
steward = "City GIS unit [planning]"
"""


@pytest.fixture
def twin_dir(tmp_path: Path) -> Path:
    (tmp_path / "twin.toml").write_text(TOML)
    (tmp_path / "city.osm.pbf").write_bytes(b"osm bytes")
    config = load_config(tmp_path)
    store = DuckDBStore.create(config.store_path, crs=CRS)
    store.put_record("meta", "twin", {"crs": CRS, "name": "Helsinki centre"})
    store.write_table("buildings_3d", buildings_frame())
    result = IngestResult(
        config.sources[0], tmp_path / "city.osm.pbf", [IngestedLayer("buildings_3d", 3, "3D buildings")]
    )
    record_source(store, result, ingested_at=datetime(2026, 11, 21, tzinfo=UTC))
    record_lineage(store, "buildings_3d", inputs=["helsinki_osm"], step="ingest osm", parameters={})
    geometry = {
        "received": 6,
        "invalid_geometry": 1,
        "repaired_geometry": 0,
        "dropped_unrepairable": 1,
        "outside_area": 2,
        "kept": 3,
    }
    record_quality(store, "buildings_3d", {"geometry": geometry}, ["population is an estimate"])
    store.close()
    return tmp_path


def test_catalog_prints_the_datasets_and_writes_json_ld_and_html(
    twin_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "width", 160)  # one line per dataset
    main(
        [
            "catalog",
            str(twin_dir),
            "--json-ld",
            str(twin_dir / "c.jsonld"),
            "--html",
            str(twin_dir / "c.html"),
        ]
    )
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("│ buildings_3d"))
    assert [c.strip() for c in row.strip("│").split("│")] == [
        "buildings_3d", "osm", "3", "public", "ODbL-1.0", "OpenStreetMap contributors", "City GIS unit [planning]"
    ]  # fmt: skip
    document = json.loads((twin_dir / "c.jsonld").read_text())
    assert [d["dct:identifier"] for d in document["dcat:dataset"]] == ["buildings_3d"]
    assert (twin_dir / "c.html").read_text().startswith("<!DOCTYPE html>")


def test_quality_prints_highlights_and_writes_reports(
    twin_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(
        [
            "quality",
            str(twin_dir),
            "--json-ld",
            str(twin_dir / "q.jsonld"),
            "--html",
            str(twin_dir / "q.html"),
        ]
    )
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = [c.strip() for c in next(line for line in lines if "┃ table" in line).strip("┃").split("┃")]
    assert header == [
        "table",
        "kept",
        "area",
        "invalid",
        "repaired",
        "dropped",
        "duplicates",
    ]  # "outside" above "area"
    row = next(line for line in lines if line.startswith("│ buildings_3d"))
    assert [c.strip() for c in row.strip("│").split("│")] == ["buildings_3d", "3", "2", "1", "0", "1", "—"]
    assert max(len(line) for line in lines if "│" in line) <= 80
    assert "buildings_3d: 1 invalid geometry (0 repaired, 1 dropped)" in out
    assert "buildings_3d: 33% have a real height, 33% a height from their number of levels" in " ".join(
        out.split()
    )
    graph = json.loads((twin_dir / "q.jsonld").read_text())["@graph"]
    assert len(graph[0]["dqv:hasQualityMeasurement"]) == 6 + 3  # geometry numbers + height-source shares
    assert "population is an estimate" in (twin_dir / "q.html").read_text()


def test_export_writes_the_requested_format(twin_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = twin_dir / "b.city.json"
    main(["export", "buildings_3d", str(twin_dir), "--format", "cityjson", "--output", str(out_file)])
    assert "Wrote 3 buildings of buildings_3d" in capsys.readouterr().out
    assert json.loads(out_file.read_text())["type"] == "CityJSON"
    main(["export", "buildings_3d", str(twin_dir), "-f", "geojson", "-o", str(twin_dir / "b.geojson")])
    assert len(json.loads((twin_dir / "b.geojson").read_text())["features"]) == 3


def test_export_errors_are_one_line_and_exit_non_zero(
    twin_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "roads", str(twin_dir), "--format", "gpkg", "--output", str(twin_dir / "r.gpkg")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.strip() == "error: no layer 'roads' in this twin"
    assert not (twin_dir / "r.gpkg").exists()
