"""GDPR by design: personal columns never published (API, tiles, exports), home locations kept
restricted, recognised personal columns flagged, the catalogue naming legal basis and retention, and
the audit log's retention from ``twin.toml``.

The twin is hand-made: ``permits`` (public) with 3 polygons 20 m x 20 m 100 m apart from (385000,
6672000) in EPSG:32635 (central Helsinki, the tile below), and ``homes`` (public in its source, but
declared exact home locations) with 2 points. ``owner_name`` is declared personal; ``contact`` holds
e-mail addresses (recognised by its values), ``phone`` is recognised by its name, ``fax`` would be
recognised but is listed in ``not_personal``; ``use`` and ``street_name`` are not personal.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import geopandas as gpd
import mapbox_vector_tile
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import Point, box

from civictwin.api.app import create_app
from civictwin.api.settings import ServerSettings
from civictwin.catalog.personal import mark_personal, recognised_by_name, recognised_by_values
from civictwin.catalog.report import catalog_html, catalog_jsonld
from civictwin.config import AccessLevel, TwinConfig, parse_config
from civictwin.errors import ConfigError, ExportError
from civictwin.export import export_dataset
from civictwin.export.cityjson_surfaces import load_city_surfaces
from civictwin.governance.access import access_levels
from civictwin.governance.audit import AuditLog
from civictwin.governance.chain import rotated_files
from civictwin.store.duckdb import DuckDBStore

CRS = "EPSG:32635"
X0, Y0 = 385_000.0, 6_672_000.0
TILE = (14, 9326, 4742)  # holds the first permits (as in the API access tests' twin)
PUBLISHED = {"permit_id", "use", "street_name", "fax"}
WITHHELD = {"owner_name", "contact", "phone"}
BASIS = "GDPR Art. 6(1)(e): building permits, a public task"
SOURCE = {"licence": "CC-BY-4.0", "publisher": "City of Helsinki", "steward": "Building control"}


def _config(tmp: Path, **audit: Any) -> TwinConfig:
    data: dict[str, Any] = {
        "twin": {"name": "gdpr twin"},
        "area": {"bbox": [24.9, 60.1, 25.0, 60.2]},
        "audit": audit,
        "sources": [
            {"name": "permits", "kind": "vector", "path": "permits.gpkg", **SOURCE,
             "personal": ["owner_name"], "not_personal": ["fax"], "legal_basis": BASIS, "retention_days": 365},
            {"name": "homes", "kind": "vector", "path": "homes.gpkg", **SOURCE,
             "personal_locations": True, "legal_basis": BASIS, "retention_days": 90},
        ],
    }  # fmt: skip
    return parse_config(data, base_dir=tmp)


def _permits() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "permit_id": ["P1", "P2", "P3"],
            "use": ["residential", "commercial", "residential"],
            "street_name": ["Mannerheimintie", "Aleksanterinkatu", "Esplanadi"],
            "owner_name": ["Aino Virtanen", "Matti Korhonen", "Liisa Nieminen"],
            "contact": ["aino@example.fi", "matti.k@example.org", "liisa@example.com"],
            "phone": ["+358 40 1234567", None, "09 3101691"],
            "fax": ["none", "none", "none"],
        },
        geometry=[box(X0 + i * 100, Y0, X0 + i * 100 + 20, Y0 + 20) for i in range(3)],
        crs=CRS,
    )


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The twin directory, its store built and marked as a build does (module-scoped: built once)."""
    directory = tmp_path_factory.mktemp("gdpr")
    store = DuckDBStore.create(directory / "gdpr.duckdb", crs=CRS)
    try:
        store.put_record("meta", "twin", {"crs": CRS, "name": "gdpr twin"})
        store.write_table("permits", _permits())
        store.write_table(
            "homes",
            gpd.GeoDataFrame({"household": [1, 2]}, geometry=[Point(X0, Y0), Point(X0 + 9, Y0)], crs=CRS),
        )
        for table in ("permits", "homes"):
            store.put_record("catalog", table, {
                "table": table, "title": table.title(), "kind": "vector", "access": "public", **SOURCE,
                "source": {"name": table, "path": f"{table}.gpkg", "sha256": "0" * 64},
                "issued": "2026-11-30T12:00:00+00:00", "rows": 3, "bbox_wgs84": None, "crs": CRS,
            })  # fmt: skip
            store.put_record("quality", table, {"table": table, "notes": []})
        mark_personal(store, _config(directory))
    finally:
        store.close()
    yield directory


@pytest.fixture(scope="module")
def client(twin: Path) -> TestClient:
    return TestClient(create_app(twin, settings=ServerSettings()))


def test_recognised_columns() -> None:
    """Names and values recognised as personal; street names, dates and ids are not."""
    assert recognised_by_name(["owner_name", "Phone", "contact_email", "name", "street_name", "hotel"]) == {
        "owner_name": "its name looks like a person's name",
        "Phone": "its name looks like a phone number",
        "contact_email": "its name looks like an e-mail address",
    }
    found = recognised_by_values(
        {
            "contact": ["aino@example.fi", "matti.k@example.org", "not given", None],  # 2 of 3 texts
            "mobile": ["+358 40 1234567", "06 12345678"],
            "when": ["01-01-2020", "2020-01-01"],
            "stop_id": ["1234567", "H0082"],
        }
    )
    assert found == {
        "contact": "67% of 3 sampled values look like e-mail addresses",
        "mobile": "100% of 2 sampled values look like phone numbers",
    }


def test_catalogue_and_quality_record_personal_data(twin: Path) -> None:
    """The catalogue names the personal columns, legal basis and retention; quality flags the recognised."""
    with DuckDBStore.open(twin / "gdpr.duckdb") as store:
        permits = store.records("catalog")["permits"]["personal_data"]
        quality = store.records("quality")["permits"]
        jsonld = catalog_jsonld(store)
        html = catalog_html(store)
    assert permits == {
        "fields": ["contact", "owner_name", "phone"],
        "declared": ["owner_name"],
        "recognised": {
            "contact": "100% of 3 sampled values look like e-mail addresses",
            "phone": "its name looks like a phone number",
        },
        "locations": False,
        "legal_basis": BASIS,
        "retention_days": 365,
    }
    assert set(quality["personal_recognised"]) == {"contact", "phone"}
    assert any(n.startswith("column 'contact' treated as personal data") for n in quality["notes"])
    nodes = {node["dct:identifier"]: node for node in jsonld["dcat:dataset"]}
    assert nodes["permits"]["ct:containsPersonalData"] is True
    assert nodes["permits"]["dpv:hasLegalBasis"]["rdfs:label"] == BASIS
    assert nodes["permits"]["dpv:hasStorageCondition"]["rdf:value"]["@value"] == "P365D"
    assert nodes["homes"]["ct:exactHomeLocations"] is True
    assert nodes["homes"]["dct:accessRights"]["@id"].endswith("/NON_PUBLIC")  # configured public
    assert nodes["homes"]["dpv:hasStorageCondition"]["rdf:value"]["@value"] == "P90D"
    assert "365 days" in html and BASIS in html


def test_personal_columns_absent_from_api_and_tiles(client: TestClient) -> None:
    """Anonymous items, one feature, queryables and a decoded tile carry no personal column."""
    items = client.get("/collections/permits/items").json()["features"]
    assert len(items) == 3
    assert all(set(f["properties"]) == PUBLISHED for f in items)
    one = client.get("/collections/permits/items/0").json()
    assert one["properties"] == {"permit_id": "P1", "use": "residential", "street_name": "Mannerheimintie",
                                 "fax": "none"}  # fmt: skip
    assert client.get("/collections/permits/items", params={"owner_name": "Aino Virtanen"}).status_code == 400
    assert "aino@example.fi" not in client.get("/collections/permits/items?f=html").text
    z, x, y = TILE
    tile = mapbox_vector_tile.decode(client.get(f"/tiles/permits/{z}/{x}/{y}.mvt").content)
    features = tile["permits"]["features"]
    assert features and all(set(f["properties"]) == PUBLISHED for f in features)


def test_home_locations_never_public(client: TestClient, twin: Path) -> None:
    """A layer of exact home locations is restricted (404 to the public) and never exported."""
    assert "homes" not in {c["id"] for c in client.get("/collections").json()["collections"]}
    assert client.get("/collections/homes/items").status_code == 404
    with DuckDBStore.open(twin / "gdpr.duckdb") as store, pytest.raises(ExportError, match="home locations"):
        export_dataset(store, "homes", twin / "homes.geojson", "geojson")


@pytest.mark.parametrize("fmt", ["geojson", "gpkg"])
def test_personal_columns_absent_from_exports(twin: Path, fmt: str) -> None:
    with DuckDBStore.open(twin / "gdpr.duckdb") as store:
        assert export_dataset(store, "permits", twin / f"permits.{fmt}", fmt) == 3
    exported = gpd.read_file(twin / f"permits.{fmt}")
    assert set(exported.columns) == PUBLISHED | {"geometry"}
    assert "Aino" not in (twin / f"permits.{fmt}").read_bytes().decode("latin-1")


def test_personal_declaration_needs_basis_and_retention(tmp_path: Path) -> None:
    data = json.loads(json.dumps(_config(tmp_path).model_dump(mode="json", exclude_defaults=True)))
    data["sources"][0].pop("legal_basis")
    with pytest.raises(ConfigError, match="legal_basis"):
        parse_config(data, base_dir=tmp_path)


def test_audit_retention_from_twin_toml_deletes_old_rotated_file(tmp_path: Path) -> None:
    """``[audit] retention_days = 30``: at the next rotation a file rotated 31 days ago goes, one of 29 stays."""
    config = _config(tmp_path, retention_days=30, max_megabytes=1e-6)  # rotate at every record
    settings = ServerSettings.from_config(config.server, config.audit, base_dir=tmp_path)
    path = tmp_path / "gdpr.audit.jsonl"
    now = datetime.now(UTC)
    old, recent = (
        path.with_name(f"gdpr.audit.{(now - timedelta(days=d)):%Y%m%dT%H%M%S.%fZ}.jsonl") for d in (31, 29)
    )
    for rotated in (old, recent):
        rotated.write_text("")
    log = AuditLog(path, policy=settings.audit_rotation)
    try:
        for _ in range(2):  # the second record rotates the first one's file, then expires old files
            log.record(who="anonymous", client="127.0.0.1", method="GET", path="/", query="", status=200,
                       duration_ms=1.0)  # fmt: skip
    finally:
        log.close()
    assert settings.audit_rotation.retention_days == 30
    kept = rotated_files(path)
    assert old not in kept and recent in kept and len(kept) == 2


def test_personal_city_model_attributes_not_exported(tmp_path: Path) -> None:
    """A 3D city model's declared personal attribute (JSON, not a column) is left out of CityJSON exports."""
    store = DuckDBStore.create(tmp_path / "city.duckdb", crs=CRS)
    try:
        store.write_table("building_surfaces", pd.DataFrame({"building_id": ["b1"], "source": ["city"]}))
        attributes = json.dumps({"roofType": "flat", "owner": "Aino Virtanen"})
        store.write_table(
            "city", pd.DataFrame({"building_id": ["b1"], "attributes": [attributes], "parts": ["{}"]})
        )
        store.put_record("catalog", "city", {"personal_data": {"fields": ["owner"]}})
        city = load_city_surfaces(store, ["b1"])
    finally:
        store.close()
    assert city is not None and city.attributes == {"b1": {"roofType": "flat"}}


def test_declared_column_missing_is_refused(tmp_path: Path) -> None:
    """A typo in `personal` fails the build with one line naming the key, rather than publishing the column."""
    store = DuckDBStore.create(tmp_path / "typo.duckdb", crs=CRS)
    try:
        store.write_table("permits", _permits())
        store.put_record("catalog", "permits", {"source": {"name": "permits"}})
        config = _config(tmp_path)
        typo = config.model_copy(
            update={"sources": [config.sources[0].model_copy(update={"personal": ["ownr_name"]})]}
        )
        with pytest.raises(ConfigError) as raised:
            mark_personal(store, typo)
    finally:
        store.close()
    assert str(raised.value) == (
        f"{tmp_path / 'twin.toml'}: sources.permits.personal: names column(s) ownr_name, which table 'permits' "
        "does not have; available: permit_id, use, street_name, owner_name, contact, phone, fax"
    )


def test_home_locations_restricted_whatever_the_record_says() -> None:
    """The access rule itself: a record of home locations is restricted even where it says public."""
    records = {
        "homes": {"access": "public", "personal_data": {"locations": True}},
        "permits": {"access": "public", "personal_data": {"fields": ["owner_name"], "locations": False}},
    }
    assert access_levels(records, ["homes", "permits"]) == {
        "homes": AccessLevel.RESTRICTED,
        "permits": AccessLevel.PUBLIC,
    }
