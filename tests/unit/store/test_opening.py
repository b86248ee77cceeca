"""The one opening place: the ``store`` value parsed once, and the version marker as the store's identity."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import shapely

from civictwin.config import parse_config
from civictwin.errors import ConfigError
from civictwin.store.base import version_of
from civictwin.store.duckdb import DuckDBStore
from civictwin.store.opening import StoreLocation, VersionProbe, build_store, store_location, store_version

CRS = "EPSG:32635"


def config_with(store: str | None, base: Path) -> Any:
    twin: dict[str, Any] = {"name": "Test twin"} | ({"store": store} if store is not None else {})
    osm = {"name": "osm", "kind": "osm", "path": "x.osm.pbf", "licence": "ODbL-1.0", "publisher": "OSM",
           "steward": "GIS"}  # fmt: skip
    area = {"bbox": [24.93, 60.16, 24.96, 60.18]}
    return parse_config({"twin": twin, "area": area, "sources": [osm]}, base_dir=base)


def test_a_store_value_is_a_file_or_a_database_url(tmp_path: Path) -> None:
    default = store_location(config_with(None, tmp_path))
    assert default == StoreLocation(kind="duckdb", path=tmp_path / "test-twin.duckdb")
    assert store_location(config_with("data/t.duckdb", tmp_path)).path == tmp_path / "data" / "t.duckdb"
    config = config_with("postgresql://twin@db.example:5433/helsinki?sslmode=require", tmp_path)
    located = store_location(config)
    assert (located.kind, located.dsn) == (
        "postgis",
        "postgresql://twin@db.example:5433/helsinki?sslmode=require",
    )
    assert config.store_path == tmp_path / "test-twin.duckdb"  # the files beside the twin keep their names


@pytest.mark.parametrize(
    "url", ["postgresql://twin:s3cret-pw@db/helsinki", "postgres://db/helsinki?user=twin&password=s3cret-pw"]
)
def test_a_password_in_the_store_url_is_refused_without_repeating_it(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        config_with(url, tmp_path)
    message = str(refused.value)
    assert "twin.store" in message and "PGPASSWORD" in message and "s3cret-pw" not in message
    assert len(message.splitlines()) == 1


def test_every_write_gives_the_store_a_new_version(tmp_path: Path) -> None:
    path = tmp_path / "t.duckdb"
    things = gpd.GeoDataFrame({"n": [1]}, geometry=[shapely.Point(0, 0)], crs=CRS)
    with build_store(StoreLocation.of_file(path), crs=CRS) as store:
        created = version_of(store)
        store.write_table("things", things)
        written = version_of(store)
        store.put_record("catalog", "things", {"rows": 1})
        recorded = version_of(store)
    assert len({created, written, recorded}) == 3 and len(recorded) == 32  # uuid4 hex
    assert store_version(StoreLocation.of_file(path)) == recorded
    with DuckDBStore.open(path) as reader:
        assert reader.records("meta")["version"]["id"] == recorded


def test_the_probe_follows_a_replaced_store_and_names_a_broken_one(tmp_path: Path) -> None:
    path = tmp_path / "t.duckdb"
    probe = VersionProbe(StoreLocation.of_file(path))
    assert probe.current() is None
    with build_store(StoreLocation.of_file(path), crs=CRS) as store:
        first = version_of(store)
    assert probe.current() == first == probe.current()
    with build_store(StoreLocation.of_file(tmp_path / "next.duckdb"), crs=CRS) as store:
        second = version_of(store)
    os.replace(tmp_path / "next.duckdb", path)
    assert probe.current() == second != first
    (tmp_path / "broken").write_bytes(b"not a database")
    os.replace(tmp_path / "broken", path)
    assert str(probe.current()).startswith("unreadable-")
