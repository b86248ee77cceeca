"""What is PostGIS's own: the schema switch, bad servers and credentials as one line, no password anywhere."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import geopandas as gpd
import psycopg
import pytest
import shapely
from pgtwin import PASSWORD, PostGIS

from civictwin.errors import StoreError
from civictwin.store.base import version_of
from civictwin.store.opening import StoreLocation, VersionProbe, build_store, open_store

CRS = "EPSG:32635"


def things(count: int) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"n": list(range(count))}, geometry=[shapely.Point(i, i) for i in range(count)], crs=CRS
    )


def schemas(url: str) -> list[str]:
    with psycopg.connect(url) as con:
        rows = con.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'twin\\_%' ORDER BY 1"
        ).fetchall()
    return [str(r[0]) for r in rows]


def refusal(location: StoreLocation) -> str:
    """The one line a reader of ``location`` is refused with."""
    with pytest.raises(StoreError) as refused:
        open_store(location).close()
    message = refused.value.user_message()
    assert len(message.splitlines()) == 1
    return message


def test_a_build_switches_schemas_in_one_step_and_drops_the_previous_one(postgis_url: str) -> None:
    location = StoreLocation(kind="postgis", dsn=postgis_url)
    probe = VersionProbe(location)
    assert probe.current() is None  # no twin yet
    with build_store(location, crs=CRS) as store:
        store.write_table("things", things(2))
    first_schema = schemas(postgis_url)
    first = probe.current()
    reader = open_store(location)  # a client reading the served twin during the next build
    with build_store(location, crs=CRS) as store:
        store.write_table("things", things(5))
        assert len(schemas(postgis_url)) == 2  # the previous twin stays until the switch
        assert probe.current() == first == version_of(reader)
        assert len(reader.read_table("things")) == 2
    reader.close()
    assert len(schemas(postgis_url)) == 1 and schemas(postgis_url) != first_schema
    with open_store(location) as store:
        assert len(store.read_table("things")) == 5 and probe.current() == version_of(store) != first


def test_a_server_that_is_down_is_one_line(postgis: PostGIS, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    url = f"postgresql://twin@127.0.0.1:{port}/nothing"
    message = refusal(StoreLocation(kind="postgis", dsn=url))
    assert message.startswith(f"{url}: cannot connect to the PostGIS store: ") and "refused" in message
    assert VersionProbe(StoreLocation(kind="postgis", dsn=url)).current() == "unreachable"


def test_refused_credentials_a_database_without_postgis_or_twin_and_an_old_layout(
    postgis: PostGIS, postgis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = StoreLocation(kind="postgis", dsn=postgis_url)
    assert refusal(location) == f"{postgis_url}: no twin in this database (run `civictwin build` first)"
    plain = postgis.new_database(postgis=False)
    assert refusal(StoreLocation(kind="postgis", dsn=plain)) == (
        f"{plain}: the database has no postgis extension (its owner can add it: CREATE EXTENSION postgis)"
    )
    with build_store(location, crs=CRS) as store:
        store.write_table("things", things(1))
    postgis.sql(postgis_url.rsplit("/", 1)[1], "UPDATE civictwin.current SET layout = 0")
    assert refusal(location) == (
        f"{postgis_url}: the database holds a twin in store layout 0, older than this civictwin's 1: "
        "rebuild the twin (civictwin build)"
    )
    with build_store(location, crs=CRS) as store:  # the rebuild it asks for works
        store.write_table("things", things(1))
    assert len(open_store(location).read_table("things")) == 1
    monkeypatch.setenv("PGPASSWORD", "a-wrong-password")
    assert refusal(location) == (
        f'{postgis_url}: cannot connect to the PostGIS store: connection to server at "127.0.0.1", '
        f'port {postgis.port} failed: FATAL:  password authentication failed for user "twin"'
    )


def test_no_credential_reaches_a_log_an_error_or_a_record(
    postgis: PostGIS, postgis_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    location = StoreLocation(kind="postgis", dsn=postgis_url)
    caplog.set_level(logging.DEBUG)  # psycopg's own loggers included
    with build_store(location, crs=CRS) as store:
        store.write_table("things", things(3))
        store.put_record("catalog", "things", {"rows": 3, "source": location.describe()})
        store.put_record("lineage", "things", {"step": "test", "inputs": [postgis_url]})
    with open_store(location) as store:
        records = [store.records(kind) for kind in ("catalog", "lineage", "quality", "meta")]
    monkeypatch.setenv("PGPASSWORD", "a-wrong-password")
    errors = [refusal(location)]
    monkeypatch.delenv("PGPASSWORD")
    monkeypatch.setenv("PGPASSFILE", "/nonexistent")
    errors.append(refusal(location))
    assert "no password supplied" in errors[1]
    text = f"{records!r}\n{errors!r}\n{caplog.text}"
    assert PASSWORD not in text and "a-wrong-password" not in text
    assert records[0]["things"]["source"] == postgis_url  # the URI alone, as given in twin.toml


def test_credentials_from_a_service_file_and_a_password_file(
    postgis: PostGIS, postgis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = postgis_url.rsplit("/", 1)[1]
    services = tmp_path / "pg_service.conf"
    services.write_text(f"[city]\nhost=127.0.0.1\nport={postgis.port}\ndbname={database}\nuser=twin\n")
    passwords = tmp_path / "pgpass"
    passwords.write_text(f"127.0.0.1:{postgis.port}:{database}:twin:{PASSWORD}\n")
    passwords.chmod(0o600)  # libpq ignores a password file others may read
    monkeypatch.delenv("PGPASSWORD")
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    monkeypatch.setenv("PGPASSFILE", str(passwords))
    location = StoreLocation(kind="postgis", dsn="postgresql:///?service=city")
    with build_store(location, crs=CRS) as store:
        store.write_table("things", things(4))
    with open_store(location) as store:
        assert store.read_table("things")["n"].tolist() == [0, 1, 2, 3]
