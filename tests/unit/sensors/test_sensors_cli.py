"""``civictwin sensors`` through the real entry point: outputs, exit codes, one-line errors, and the
datastreams in the twin's catalogue."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from civictwin.config import load_config
from civictwin.store.duckdb import DuckDBStore
from civictwin.store.observations import open_observations

CONFIG = """[twin]
name = "Sensor twin"
[area]
bbox = [6.8, 50.7, 7.2, 51.1]
[[sources]]
name = "osm"
kind = "osm"
path = "unused.osm.pbf"
licence = "ODbL-1.0"
publisher = "OpenStreetMap contributors"
steward = "GIS"
[[sensors]]
name = "noise"
format = "csv"
path = "noise.csv"
licence = "CC-BY-4.0"
publisher = "City of Cologne"
steward = "Environment office"
access = "internal"
[sensors.csv]
time = "{time}"
timezone = "Europe/Berlin"
thing = "site"
property = "what"
value = "value"
[sensors.properties.laeq]
name = "Equivalent sound level"
unit = "dB"
[sensors.things.ring]
name = "Ring"
lon = 6.95
lat = 50.94
"""
CSV = "site,what,time,value\nring,laeq,2014-06-01T12:00:00,61.5\nring,laeq,2014-06-01T13:00:00,-999\n"


def civictwin(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from civictwin.cli import main; main()", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={"COLUMNS": "200", "PATH": "", **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}},
    )


def test_import_list_and_catalogue(tmp_path: Path) -> None:
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "twin.toml").write_text(CONFIG.format(time="time"), encoding="utf-8")
    (twin / "noise.csv").write_text(CSV, encoding="utf-8")
    imported = civictwin("sensors", "import", "twin", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert "│ noise  │           1 │      2 │          0 │        0 │     — │" in imported.stdout
    listed = civictwin("sensors", "list", "twin", cwd=tmp_path)
    assert "noise/ring/laeq" in listed.stdout and "internal" in listed.stdout and "50%" in listed.stdout
    store = DuckDBStore.create(twin / "sensor-twin.duckdb", crs="EPSG:32632")  # a built twin, empty
    store.close()
    catalogue = civictwin("catalog", "twin", "--json-ld", "catalog.jsonld", cwd=tmp_path)
    assert catalogue.returncode == 0, catalogue.stderr
    datasets = {
        d["dct:identifier"]: d for d in json.loads((tmp_path / "catalog.jsonld").read_text())["dcat:dataset"]
    }
    noise = datasets["noise/ring/laeq"]
    assert noise["ct:kind"] == "datastream" and noise["ct:rowCount"]["@value"] == 2
    assert noise["dcat:contactPoint"]["vcard:fn"] == "Environment office"
    assert noise["dct:accessRights"]["@id"].endswith("/access-right/RESTRICTED")  # internal


def test_bad_mapping_is_one_line(tmp_path: Path) -> None:
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "twin.toml").write_text(CONFIG.format(time="timestamp"), encoding="utf-8")
    (twin / "noise.csv").write_text(CSV, encoding="utf-8")
    failed = civictwin("sensors", "import", "twin", cwd=tmp_path)
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines() == [
        f"error: {twin / 'noise.csv'}: column 'timestamp' (csv.time) not found"
    ]


FAR = '[sensors.things.far]\nname = "Berlin, far outside"\nlon = 13.4\nlat = 52.5\n'
FAR_ROWS = "far,laeq,2014-06-01T12:00:00,55.0\n"


def test_a_station_outside_the_area_is_a_warning_and_only_such_stations_an_error(tmp_path: Path) -> None:
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "twin.toml").write_text(CONFIG.format(time="time") + FAR, encoding="utf-8")
    (twin / "noise.csv").write_text(CSV + FAR_ROWS, encoding="utf-8")
    imported = civictwin("sensors", "import", "twin", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert (
        "  • noise: warning: noise.csv: station 'far' outside the twin's area not imported; "
        "1 datastream imported from the stations inside"
    ) in imported.stdout.splitlines()
    with open_observations(load_config(twin), read_only=True) as store:
        assert [info.key for info in store.datastreams()] == ["noise/ring/laeq"]

    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "twin.toml").write_text(CONFIG.format(time="time") + FAR, encoding="utf-8")
    (alone / "noise.csv").write_text(CSV.splitlines()[0] + "\n" + FAR_ROWS, encoding="utf-8")
    failed = civictwin("sensors", "import", "alone", cwd=tmp_path)
    assert (failed.returncode, failed.stdout) == (1, "")
    assert failed.stderr.strip().splitlines() == [
        f"error: {alone / 'noise.csv'}: station 'far' outside the twin's area: nothing to import "
        "(clip = false imports them)"
    ]
    with open_observations(load_config(alone), read_only=True) as store:
        assert store.datastreams() == []
