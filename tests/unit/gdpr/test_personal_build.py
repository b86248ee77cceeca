"""End to end: a build from an OSM extract (one building, one street) and a CSV of building permits
whose ``owner_name`` is declared personal and whose ``email`` column is recognised; the built twin's
catalogue, quality highlights and API answers say and do what ``docs/api.md`` promises.
"""

from __future__ import annotations

from pathlib import Path

import osmium
import pytest
from fastapi.testclient import TestClient
from osmium.osm.mutable import Node, Way

from civictwin.api.app import create_app
from civictwin.api.settings import ServerSettings
from civictwin.build import BuildSummary, build_twin
from civictwin.config import parse_config
from civictwin.store.duckdb import DuckDBStore

PERMITS = (
    "lon,lat,use,owner_name,email\n"
    "24.9401,60.17005,residential,Aino Virtanen,aino@example.fi\n"
    "24.9451,60.17005,commercial,Matti Korhonen,matti@example.org\n"
)
BASIS = "GDPR Art. 6(1)(e): public task"


def _write_pbf(path: Path) -> None:
    """One 4-storey block of flats at (24.94, 60.17) and a 1.1 km residential street south of it."""
    writer = osmium.SimpleWriter(str(path), overwrite=True)
    lon, lat = 24.94, 60.17
    corners = [(lon, lat), (lon + 0.0002, lat), (lon + 0.0002, lat + 0.0001), (lon, lat + 0.0001)]
    for i, (x, y) in enumerate(corners):
        writer.add_node(Node(id=1 + i, location=osmium.osm.Location(x, y), version=1))
    for i, x in enumerate((24.935, 24.955)):
        writer.add_node(Node(id=10 + i, location=osmium.osm.Location(x, 60.169), version=1))
    writer.add_way(Way(id=100, nodes=[1, 2, 3, 4, 1], tags={"building": "apartments", "building:levels": "4"},
                       version=1))  # fmt: skip
    writer.add_way(
        Way(id=200, nodes=[10, 11], tags={"highway": "residential", "name": "Testikatu"}, version=1)
    )
    writer.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[BuildSummary, Path]:
    twin_dir = tmp_path_factory.mktemp("gdpr_build")
    _write_pbf(twin_dir / "city.osm.pbf")
    (twin_dir / "permits.csv").write_text(PERMITS, encoding="utf-8")
    governance = {"licence": "CC-BY-4.0", "publisher": "City of Helsinki", "steward": "Building control"}
    config = parse_config(
        {
            "twin": {"name": "gdpr build", "crs": "EPSG:32635"},
            "area": {"bbox": [24.93, 60.16, 24.96, 60.18]},
            "sources": [
                {"name": "osm", "kind": "osm", "path": "city.osm.pbf", **governance},
                {
                    "name": "permits",
                    "kind": "vector",
                    "path": "permits.csv",
                    "x": "lon",
                    "y": "lat",
                    "crs": "EPSG:4326",
                    "personal": ["owner_name"],
                    "legal_basis": BASIS,
                    "retention_days": 730,
                    **governance,
                },
            ],
        },
        base_dir=twin_dir,
    )
    return build_twin(config), twin_dir


def test_build_records_and_withholds_personal_columns(built: tuple[BuildSummary, Path]) -> None:
    summary, twin_dir = built
    assert any(
        line.startswith(
            "permits: column 'email' treated as personal data (its name looks like an e-mail address)"
        )
        for line in summary.highlights
    ), summary.highlights
    client = TestClient(create_app(twin_dir, settings=ServerSettings()))
    features = client.get("/collections/permits/items").json()["features"]
    assert [f["properties"]["use"] for f in features] == ["residential", "commercial"]
    assert all("owner_name" not in f["properties"] and "email" not in f["properties"] for f in features)
    with DuckDBStore.open(summary.store_path) as store:
        part = store.records("catalog")["permits"]["personal_data"]
    assert (part["fields"], part["declared"], part["legal_basis"], part["retention_days"]) == (
        ["email", "owner_name"],
        ["owner_name"],
        BASIS,
        730,
    )
