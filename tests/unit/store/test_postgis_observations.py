"""A PostGIS twin's observations: in the schema ``civictwin_observations`` of its own database, left
alone by rebuilds, imported from CSV on the command line and read back through the SensorThings API,
with the password in no error, output or stored row; a reader whose session the server ended
reconnects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from pgtwin import PASSWORD, PostGIS, build_layers, twin_toml
from test_observation_store import spec

from civictwin.api.app import create_app
from civictwin.api.settings import ServerSettings
from civictwin.cli import main
from civictwin.config import load_config
from civictwin.errors import StoreError
from civictwin.store.observations import (
    MS_PER_HOUR,
    DatasetSpec,
    ObservationBatch,
    describe_observations,
    has_observations,
    observations_path,
    open_observations,
    to_ms,
)
from civictwin.store.opening import StoreLocation
from civictwin.store.postgis_observations import OBSERVATION_SCHEMA, PostGISObservationStore

ROOT = "/sensorthings/v1.1"
T0 = to_ms("2014-01-01T00:00:00Z")
# one station, two pollutants, hourly times of a logger kept on CET (Europe/Berlin: UTC+1 in January)
AIR_CSV = """station,pollutant,time,value
kallio,NO2,2014-01-01 01:00,10
kallio,NO2,2014-01-01 02:00,20
kallio,NO2,2014-01-01 03:00,-999
kallio,NO2,2014-01-01 04:00,45
kallio,PM10,2014-01-01 01:00,17
kallio,PM10,2014-01-01 02:00,n/a
"""


AIR_SENSORS = """
[[sensors]]
name = "city_air"
format = "csv"
path = "air.csv"
licence = "CC-BY-4.0"
publisher = "City"
steward = "Air team"

[sensors.csv]
layout = "long"
time = "time"
time_format = "%Y-%m-%d %H:%M"
timezone = "Europe/Berlin"
thing = "station"
property = "pollutant"
value = "value"
interval_s = 3600

[sensors.properties.NO2]
name = "Nitrogen dioxide"
unit = "ug/m3"
symbol = "µg/m³"
min = 0
max = 1000

[sensors.properties.PM10]
name = "PM10"
unit = "ug/m3"

[sensors.things.kallio]
name = "Kallio"
lon = 24.95
lat = 60.17
"""


def get(client: TestClient, url: str) -> Any:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_csv_import_into_a_postgis_twin_is_served_by_the_sensorthings_api(
    postgis: PostGIS, postgis_twin: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = postgis_twin
    (tmp_path / "twin.toml").write_text(twin_toml(name="Pg twin", url=url) + AIR_SENSORS, encoding="utf-8")
    (tmp_path / "air.csv").write_text(AIR_CSV, encoding="utf-8")
    main(["sensors", "import", str(tmp_path)])
    printed = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert f"Observations: {url} (schema {OBSERVATION_SCHEMA})" in printed and PASSWORD not in printed
    assert "│ city_air │ 2 │ 5 │ 0 │ 1 │ — │" in printed  # datastreams, stored, duplicates, rejected, edges
    config = load_config(tmp_path)
    assert not observations_path(config.store_path).exists()  # in the database, not in a file
    database = url.rsplit("/", 1)[1]
    assert postgis.query(database, f"SELECT count(*) FROM {OBSERVATION_SCHEMA}.observations") == [(5,)]
    with open_observations(config, read_only=True) as store:
        quality = store.records("quality")["city_air/kallio/PM10"]
    assert quality["rejected"] == {"not a number": 1}
    assert describe_observations(config) == f"{url} (schema {OBSERVATION_SCHEMA})"

    settings = ServerSettings(rate_per_second=10_000, rate_burst=100_000)
    with TestClient(create_app(tmp_path, settings=settings)) as client:
        streams = get(client, f"{ROOT}/Datastreams?$orderby=name")["value"]
        assert [s["name"] for s in streams] == ["Kallio: Nitrogen dioxide", "Kallio: PM10"]
        no2 = streams[0]
        # hours starting 01:00..04:00 CET = 00:00..03:00 UTC; the last ends at 04:00 UTC
        assert no2["phenomenonTime"] == "2014-01-01T00:00:00Z/2014-01-01T04:00:00Z"
        assert (no2["properties"]["steward"], no2["properties"]["access"]) == ("Air team", "public")
        page = get(client, f"{ROOT}/Datastreams({no2['@iot.id']})/Observations?$orderby=phenomenonTime desc"
                           "&$count=true&$filter=result ne null")  # fmt: skip
        assert page["@iot.count"] == 3 and [o["result"] for o in page["value"]] == [45, 20, 10]
        missing = get(client, f"{ROOT}/Observations?$filter=resultQuality eq 'missing'")["value"]
        assert [(o["phenomenonTime"], o["result"]) for o in missing] == [
            ("2014-01-01T02:00:00Z/2014-01-01T03:00:00Z", None)
        ]
        named = get(client, f"{ROOT}/Datastreams?$filter=contains(name, 'dioxide') and properties/dataset eq "
                            "'city_air'&$select=name")  # fmt: skip
        assert named["value"] == [{"name": "Kallio: Nitrogen dioxide"}]
        box = "geography'POLYGON((24.9 60.1, 25.0 60.1, 25.0 60.2, 24.9 60.2, 24.9 60.1))'"
        assert (
            len(get(client, f"{ROOT}/Things?$filter=geo.intersects(Locations/location, {box})")["value"]) == 1
        )
        far = "geography'POLYGON((8 52, 8.1 52, 8.1 52.1, 8 52))'"
        assert get(client, f"{ROOT}/Things?$filter=geo.intersects(Locations/location, {far})")["value"] == []
        days = get(
            client, f"{ROOT}/Datastreams({no2['@iot.id']})/Aggregates?window=day&statistics=mean,max,count"
        )
        (day,) = days["value"]
        assert (day["count"], day["mean"], day["max"]) == (3, 25.0, 45.0)  # (10 + 20 + 45) / 3
        assert client.get(f"{ROOT}/Observations?$filter=result eq 'x'").status_code == 400


def test_a_rebuild_leaves_the_observations_untouched(postgis: PostGIS, postgis_twin: str) -> None:
    url = postgis_twin
    location = StoreLocation(kind="postgis", dsn=url)
    with open_observations(location) as store:
        store.ensure_dataset(DatasetSpec("air", "Air", "City", "Air team", "CC-BY-4.0", "public"))
        ds = store.ensure_datastream(spec())
        store.append(
            ObservationBatch.of(datastream_id=[ds] * 3, phenomenon_time=[T0 + i * MS_PER_HOUR for i in range(3)],
                                result=[1.0, 2.0, 3.0]),
            origin="before the rebuild",
        )  # fmt: skip
        store.put_record("quality", "air/s1/no2", {"gaps": 0})
    name = url.rsplit("/", 1)[1]
    twin_schema = postgis.query(name, "SELECT schema_name FROM civictwin.current")[0][0]

    build_layers(location, 3)

    assert postgis.query(name, "SELECT schema_name FROM civictwin.current")[0][0] != twin_schema
    with open_observations(location, read_only=True) as after:
        assert after.observations(ds)["result"].tolist() == [1.0, 2.0, 3.0]
        assert after.records("quality") == {"air/s1/no2": {"gaps": 0}}
        assert [d.key for d in after.datastreams()] == ["air/s1/no2"]


def test_a_role_that_may_not_create_the_schema_gets_one_line_and_no_password(
    postgis: PostGIS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    url = postgis.new_database()
    name = url.rsplit("/", 1)[1]
    postgis.sql(name, f"CREATE ROLE observation_reader LOGIN PASSWORD '{PASSWORD}'")
    reader_url = url.replace("twin@", "observation_reader@")
    location = StoreLocation(kind="postgis", dsn=reader_url)
    with pytest.raises(StoreError) as refused:
        open_observations(location, read_only=True)
    message = str(refused.value)
    assert f"may not create the schema {OBSERVATION_SCHEMA}" in message and "\n" not in message
    assert PASSWORD not in message and reader_url in message

    with open_observations(StoreLocation(kind="postgis", dsn=url)) as owner:  # the owner creates it
        owner.ensure_dataset(DatasetSpec("air", "Air", "City", "Air team", "CC-BY-4.0", "public"))
    postgis.sql(name, f"GRANT USAGE ON SCHEMA {OBSERVATION_SCHEMA} TO observation_reader")
    postgis.sql(name, f"GRANT SELECT ON ALL TABLES IN SCHEMA {OBSERVATION_SCHEMA} TO observation_reader")
    assert has_observations(location)
    with open_observations(location, read_only=True) as served:  # a read-only role can serve them
        assert list(served.datasets()) == ["air"]


def test_the_password_is_in_no_stored_row(postgis: PostGIS, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    url = postgis.new_database()
    with PostGISObservationStore.open(url) as store:
        store.ensure_dataset(DatasetSpec("air", "Air", "City", "Air team", "CC-BY-4.0", "public"))
        store.append(ObservationBatch.of(datastream_id=[7], phenomenon_time=[T0], result=[1.0]), origin=url)
    name = url.rsplit("/", 1)[1]
    tables = [row[0] for row in postgis.query(
        name, f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{OBSERVATION_SCHEMA}'"
    )]  # fmt: skip
    assert len(tables) == 13
    for table in tables:
        rows = postgis.query(name, f"SELECT t::text FROM {OBSERVATION_SCHEMA}.{table} t")
        assert not [row for row in rows if PASSWORD in row[0]], table


def test_a_reader_whose_session_was_ended_reconnects(
    postgis: PostGIS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    url = postgis.new_database()
    with PostGISObservationStore.open(url) as writer:
        writer.ensure_dataset(DatasetSpec("air", "Air", "City", "Air team", "CC-BY-4.0", "public"))
    with PostGISObservationStore.open(url, read_only=True) as reader:
        assert list(reader.datasets()) == ["air"]
        name = url.rsplit("/", 1)[1]
        postgis.sql(name, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' "
                          "AND pid <> pg_backend_pid()")  # fmt: skip
        with pytest.raises(psycopg.OperationalError):  # the statement that finds the session gone
            reader.datasets()
        assert list(reader.datasets()) == ["air"]  # and the next one runs on a new connection
