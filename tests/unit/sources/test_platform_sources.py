"""Remote sources against real servers started here: pygeoapi (OGC API – Features, bearer token) and
MapServer (WFS 2.0 over CGI, HTTP Basic auth), both paging 2 features a page, and a SensorThings
server; snapshots with validators and checksums in lineage, refresh, failures mid-paging, no leaks."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import shapely
from pyproj import Transformer

from civictwin.build import build_twin, open_twin
from civictwin.catalog.lineage import LINEAGE
from civictwin.catalog.metadata import CATALOG
from civictwin.cli.twin import refresh
from civictwin.config import SensorSourceConfig, TwinConfig, load_config, parse_config
from civictwin.errors import ConfigError, SourceError
from civictwin.refresh import refresh_twin
from civictwin.sources.observations.sensorthings import read_sensorthings
from civictwin.sources.platform import fetch_snapshot

TOKEN = "s3cret-token-7f1c9a"
PASSWORD = "pa55-wfs-e4d2b8"
BBOX = (24.93, 60.16, 24.96, 60.175)
TREES = [(24.940 + 0.002 * i, 60.165 + 0.001 * i, 5.0 + i) for i in range(5)]  # lon, lat, height_m
SURVEYS: list[Any] = [{"year": 2024, "by": "city"}, 2023, "2022", "2022", None]
"""A property that is an object, a number, text and missing: stored as text."""
SERVERS = Path(__file__).with_name("platform_servers.py")
pytestmark = pytest.mark.skipif(
    shutil.which("mapserv") is None, reason="MapServer (cgi-mapserver) not installed"
)


def _trees(heights: list[float]) -> dict[str, Any]:
    features = [
        {"type": "Feature", "id": i + 1, "geometry": {"type": "Point", "coordinates": [lon, lat]},
         "properties": {"id": i + 1, "species": "Tilia cordata", "height_m": height, "survey": survey}}
        for i, ((lon, lat, _), height, survey) in enumerate(zip(TREES, heights, SURVEYS, strict=True))
    ]  # fmt: skip
    return {"type": "FeatureCollection", "features": features}


def _parcels() -> dict[str, Any]:
    """Three 20 m × 20 m parcels in EPSG:3067 (ETRS-TM35FIN) in central Helsinki."""
    features = []
    for i in range(3):
        x, y = 385900.0 + 100 * i, 6671800.0
        ring = [[x, y], [x + 20, y], [x + 20, y + 20], [x, y + 20], [x, y]]
        features.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
                         "properties": {"parcel_id": f"P{i + 1}", "zoning": ["housing", "park", "office"][i]}})  # fmt: skip
    return {"type": "FeatureCollection", "features": features,
            "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3067"}}}  # fmt: skip


def _start(kind: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, "OAPIF_TOKEN": TOKEN, "WFS_USER": "twin", "WFS_PASSWORD": PASSWORD}
    process = subprocess.Popen(
        [sys.executable, str(SERVERS), kind, str(workdir)], env=env, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 30
    while not (workdir / "port").is_file():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{kind} server did not start: {process.communicate()[1].decode()[-2000:]}")
        time.sleep(0.05)
    return process, f"http://127.0.0.1:{(workdir / 'port').read_text()}"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path | str]]:
    """pygeoapi and MapServer started on free loopback ports, stopped after the module."""
    oapif_dir, wfs_dir = tmp_path_factory.mktemp("oapif"), tmp_path_factory.mktemp("wfs")
    (oapif_dir / "trees.geojson").write_text(json.dumps(_trees([t[2] for t in TREES])))
    (wfs_dir / "parcels.geojson").write_text(json.dumps(_parcels()))
    started = [_start("oapif", oapif_dir), _start("wfs", wfs_dir)]
    try:
        yield {"oapif": started[0][1], "wfs": started[1][1], "oapif_dir": oapif_dir, "wfs_dir": wfs_dir}
    finally:
        for process, _ in started:
            process.terminate()
            process.wait(timeout=10)


def _remote(name: str, kind: str, **options: Any) -> dict[str, Any]:
    return {"name": name, "kind": kind, "licence": "CC-BY-4.0", "publisher": "City of Helsinki",
            "steward": "Urban data platform team", **options}  # fmt: skip


def _config(directory: Path, servers: dict[str, Path | str]) -> TwinConfig:
    sources = [
        _remote("street_trees", "ogcapi_features", url=servers["oapif"], collection="trees", page_size=2,
                token_env="PLATFORM_TEST_TOKEN"),
        _remote("parcels", "wfs", url=f"{servers['wfs']}/wfs?", typename="parcels", page_size=2,
                username_env="PLATFORM_TEST_USER", password_env="PLATFORM_TEST_PASSWORD"),
        {**_remote("districts", "vector"), "path": "districts.geojson"},
    ]  # fmt: skip
    _write_districts(directory, "Kamppi")
    return _write_twin(directory, sources)


def _write_districts(directory: Path, name: str) -> None:
    """A file source beside the remote ones: one district polygon in WGS84."""
    ring = [[24.93, 60.16], [24.95, 60.16], [24.95, 60.17], [24.93, 60.17], [24.93, 60.16]]
    feature = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"name": name},
    }
    (directory / "districts.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": [feature]})
    )


def _write_twin(directory: Path, sources: list[dict[str, Any]]) -> TwinConfig:
    """Write ``twin.toml`` (the CLI reads it) and load it."""
    with_parcels = any(source["name"] == "parcels" for source in sources)  # the WFS layer gives the zones
    zones = (
        ['kind = "polygons"', 'source = "parcels"', 'id_column = "parcel_id"']
        if with_parcels
        else ["resolution = 7"]
    )
    lines = ["[twin]", 'name = "Platform twin"', 'crs = "EPSG:3067"', "[area]", f"bbox = {list(BBOX)}",
             "[zones]", *zones]  # fmt: skip
    for source in sources:
        lines += ["[[sources]]", *(f"{key} = {json.dumps(value)}" for key, value in source.items())]
    (directory / "twin.toml").write_text("\n".join(lines) + "\n")
    return load_config(directory)


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_TEST_TOKEN", TOKEN)
    monkeypatch.setenv("PLATFORM_TEST_USER", "twin")
    monkeypatch.setenv("PLATFORM_TEST_PASSWORD", PASSWORD)


@pytest.fixture(scope="module")
def twin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("twin")


@pytest.fixture(scope="module")
def built(servers: dict[str, Path | str], twin_dir: Path) -> TwinConfig:
    """The twin built once from both servers (credentials set for this fixture only)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PLATFORM_TEST_TOKEN", TOKEN)
        patch.setenv("PLATFORM_TEST_USER", "twin")
        patch.setenv("PLATFORM_TEST_PASSWORD", PASSWORD)
        config = _config(twin_dir, servers)
        build_twin(config)
    return config


def test_both_servers_are_read_page_by_page_into_the_twin(built: TwinConfig) -> None:
    to_3067 = Transformer.from_crs("EPSG:4326", "EPSG:3067", always_xy=True)
    with open_twin(built) as store:
        trees = store.read_frame("street_trees").sort_values("id")
        parcels = store.read_frame("parcels").sort_values("parcel_id")
        zone_ids = store.read_frame("zones")["zone_id"].tolist()
        lineage = store.records(LINEAGE)
        catalogue = store.records(CATALOG)
    assert trees["id"].tolist() == [1, 2, 3, 4, 5]
    assert trees["height_m"].tolist() == [5.0, 6.0, 7.0, 8.0, 9.0]
    assert trees["survey"].tolist()[:4] == ['{"by": "city", "year": 2024}', "2023", "2022", "2022"]
    assert trees["survey"].isna().tolist() == [False, False, False, False, True]
    x, y = to_3067.transform(TREES[2][0], TREES[2][1])
    assert trees.geometry.iloc[2].distance(shapely.Point(x, y)) < 0.01
    assert parcels["parcel_id"].tolist() == ["P1", "P2", "P3"]
    assert parcels["zoning"].tolist() == ["housing", "park", "office"]
    assert parcels.geometry.area.round(6).tolist() == [400.0, 400.0, 400.0]
    assert parcels.geometry.iloc[1].bounds == (386000.0, 6671800.0, 386020.0, 6671820.0)
    assert sorted(zone_ids) == ["P1", "P2", "P3"]  # analysis zones from the WFS layer
    remote = lineage["street_trees"]["parameters"]["remote"]
    assert [p["url"].split("?")[1] for p in remote["pages"]] == [
        "limit=2",
        "offset=2&limit=2",
        "offset=4&limit=2",
    ]
    assert all(p["etag"] and p["last_modified"] for p in remote["pages"])
    assert remote["features"] == 5 and remote["retrieved_at"].endswith("+00:00")
    snapshot = Path(remote["snapshot"])
    assert snapshot.parent == built.base_dir / "snapshots" / "street_trees"
    assert (
        remote["sha256"]
        == hashlib.sha256(snapshot.read_bytes()).hexdigest()
        == catalogue["street_trees"]["source"]["sha256"]
    )
    wfs = lineage["parcels"]["parameters"]["remote"]
    assert len(wfs["pages"]) == 2 and "STARTINDEX=2" in wfs["pages"][1]["url"]
    assert wfs["etag"] is None and wfs["features"] == 3  # MapServer sends no validators


def test_refresh_asks_conditionally_and_rebuilds_only_on_change(
    built: TwinConfig, servers: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    store_file = built.store_path
    before = store_file.stat().st_mtime_ns
    result = refresh_twin(built)
    lines = {c.source: c.line for c in result.checks}
    assert result.summary is None and store_file.stat().st_mtime_ns == before
    assert lines["street_trees"].startswith("unchanged: 304 Not Modified for all 3 page(s)")
    assert lines["parcels"].startswith(
        "unchanged: read again (the server sends no ETag/Last-Modified), same SHA-256"
    )
    districts = hashlib.sha256((built.base_dir / "districts.geojson").read_bytes()).hexdigest()
    assert lines["districts"] == f"unchanged: same SHA-256 {districts[:12]}"
    data = servers["oapif_dir"] / "trees.geojson"
    data.write_text(json.dumps(_trees([5.0, 6.0, 17.5, 8.0, 9.0])))
    _write_districts(built.base_dir, "Kamppi-Etu-Töölö")
    result = refresh_twin(built)
    lines = {c.source: c.line for c in result.checks}
    assert lines["street_trees"].startswith("changed: 5 feature(s) (were 5)")
    assert lines["parcels"].startswith("unchanged")
    assert lines["districts"].startswith("changed: SHA-256 ") and lines["districts"].endswith(
        f"(was {districts[:12]})"
    )
    assert result.summary is not None
    assert result.summary.carried_over == ["parcels", "zones"]  # the zones come from the WFS layer alone
    with open_twin(built) as store:
        assert store.read_frame("street_trees").sort_values("id")["height_m"].tolist() == [
            5.0,
            6.0,
            17.5,
            8.0,
            9.0,
        ]
        assert store.read_frame("districts")["name"].tolist() == ["Kamppi-Etu-Töölö"]
    capsys.readouterr()
    refresh(built.base_dir)  # the command itself, without importing every other command
    output = " ".join(capsys.readouterr().out.split())
    assert "street_trees: unchanged: 304 Not Modified for all 3 page(s)" in output
    assert "Nothing changed: the twin was not rebuilt." in output


def test_a_refresh_with_a_source_failing_is_one_line_and_leaves_the_twin(
    built: TwinConfig, servers: dict[str, Any]
) -> None:
    served = hashlib.sha256(built.store_path.read_bytes()).hexdigest()
    (servers["oapif_dir"] / "fault").write_text("500 offset=2")
    try:
        with pytest.raises(SourceError) as failed:
            refresh_twin(built)
    finally:
        (servers["oapif_dir"] / "fault").unlink()
    line = str(failed.value)
    assert "\n" not in line and re.search(
        r"^source 'street_trees' \(ogcapi_features\): .*offset=2.*HTTP 500", line
    ), line
    assert hashlib.sha256(built.store_path.read_bytes()).hexdigest() == served


FAULTS = [
    ("oapif", "500 offset=2", r"^source 'street_trees' \(ogcapi_features\): page 2 \(http://127\.0\.0\.1:\d+/"
     r"collections/trees/items\?offset=2&limit=2\): HTTP 500 Internal Server Error$"),
    ("oapif", "401 offset=2", r"^source 'street_trees' \(ogcapi_features\): page 2 \(.*offset=2&limit=2\): "
     r"HTTP 401 Unauthorized: the credentials \(token_env or username_env/password_env\) were refused$"),
    ("oapif", "json offset=2", r"^source 'street_trees' \(ogcapi_features\): page 2 \(.*offset=2&limit=2\): "
     r"not valid JSON: "),
    ("oapif", "feature offset=2", r"^source 'street_trees' \(ogcapi_features\): page 2 \(.*offset=2&limit=2\), "
     r"feature 1: not a GeoJSON Feature$"),
    ("oapif", "short offset=2", r"^source 'street_trees' \(ogcapi_features\): the server announced 5 feature\(s\) on "
     r"page 1 but its 2 page\(s\) held 2: the data changed while it was read"),
    ("wfs", "500 STARTINDEX=2", r"^source 'parcels' \(wfs\): page 2 \(http://127\.0\.0\.1:\d+/wfs\?.*STARTINDEX=2"
     r".*\): HTTP 500 Internal Server Error$"),
]  # fmt: skip


@pytest.mark.parametrize(("server", "fault", "message"), FAULTS)
def test_failure_mid_paging_is_one_line_and_leaves_the_twin(
    built: TwinConfig,
    servers: dict[str, Any],
    server: str,
    fault: str,
    message: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with open_twin(built) as store:
        heights = store.read_frame("street_trees").sort_values("id")["height_m"].tolist()
    served = hashlib.sha256(built.store_path.read_bytes()).hexdigest()
    snapshots = sorted((built.base_dir / "snapshots").rglob("*"))
    (servers[f"{server}_dir"] / "fault").write_text(fault)
    try:
        with caplog.at_level(logging.DEBUG), pytest.raises(SourceError) as failed:
            build_twin(built)
    finally:
        (servers[f"{server}_dir"] / "fault").unlink()
    line = str(failed.value)
    assert "\n" not in line and re.search(message, line), line
    assert hashlib.sha256(built.store_path.read_bytes()).hexdigest() == served
    assert sorted((built.base_dir / "snapshots").rglob("*")) == snapshots  # nothing partial stored
    with open_twin(built) as store:
        assert store.read_frame("street_trees").sort_values("id")["height_m"].tolist() == heights
    assert TOKEN not in line and TOKEN not in caplog.text and PASSWORD not in caplog.text


def test_credentials_appear_nowhere_in_the_twin(built: TwinConfig, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        refresh_twin(built)
    files = [p for p in built.base_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".duckdb" for p in files) and any(p.suffix == ".parquet" for p in files)
    for secret in (TOKEN, PASSWORD):
        assert not [p for p in files if secret.encode() in p.read_bytes()]
        assert secret not in caplog.text
    with open_twin(built) as store:
        records = json.dumps([store.records(kind) for kind in (CATALOG, LINEAGE, "quality", "meta")])
    assert (
        TOKEN not in records
        and PASSWORD not in records
        and "PLATFORM_TEST_TOKEN" in json.dumps(built.model_dump(mode="json"))
    )


def test_a_missing_credential_or_a_down_server_is_one_line(
    servers: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLATFORM_TEST_TOKEN")
    with pytest.raises(SourceError, match=r"^source 'street_trees' \(ogcapi_features\): environment variable "
                       r"PLATFORM_TEST_TOKEN \(token_env\) is not set or empty$"):  # fmt: skip
        build_twin(_config(tmp_path, servers))
    monkeypatch.setenv("PLATFORM_TEST_TOKEN", "wrong")
    with pytest.raises(SourceError, match=r"page 1 .*HTTP 401 Unauthorized"):
        build_twin(_config(tmp_path, servers))
    monkeypatch.setenv("PLATFORM_TEST_TOKEN", TOKEN)
    wrong_type = _remote("zoning", "wfs", url=f"{servers['wfs']}/wfs?", typename="nosuch",
                         username_env="PLATFORM_TEST_USER", password_env="PLATFORM_TEST_PASSWORD")  # fmt: skip
    with pytest.raises(SourceError, match=r"^source 'zoning' \(wfs\): page 1 \(.*\): HTTP 400 Bad request: "
                       r"msWFSGetFeature\(\): WFS server error\. TYPENAME 'nosuch' doesn't exist"):  # fmt: skip
        build_twin(_write_twin(tmp_path, [wrong_type]))
    down = {**servers, "oapif": "http://127.0.0.1:9"}
    with pytest.raises(
        SourceError,
        match=r"page 1 \(http://127.0.0.1:9/collections/trees/items\?limit=2\): server unreachable",
    ):
        build_twin(_config(tmp_path, down))
    assert not (tmp_path / "snapshots").exists() and not list(tmp_path.glob("*.duckdb"))


def test_a_personal_column_an_api_layer_lacks_is_refused(servers: dict[str, Any], tmp_path: Path) -> None:
    trees = _remote("street_trees", "ogcapi_features", url=servers["oapif"], collection="trees",
                    token_env="PLATFORM_TEST_TOKEN", personal=["owner_nmae"], legal_basis="GDPR Art. 6(1)(e)",
                    retention_days=365)  # fmt: skip
    with pytest.raises(ConfigError, match=r"sources\.street_trees\.personal: names column\(s\) owner_nmae, which "
                       r"table 'street_trees' does not have; available: id, species, height_m, survey$"):  # fmt: skip
        build_twin(_write_twin(tmp_path, [trees]))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"path": "trees.geojson"}, "is read from `url`, not `path`"),
        ({"collection": None}, "needs `collection`"),
        ({"url": "https://user:pw@example.org/api"}, "without credentials"),
        ({"token_env": "A", "username_env": "B", "password_env": "C"}, "not both"),
    ],
)
def test_remote_options_are_checked(options: dict[str, Any], message: str) -> None:
    entry = {**_remote("t", "ogcapi_features", url="https://example.org/api", collection="trees"), **options}
    entry = {k: v for k, v in entry.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        parse_config(
            {"twin": {"name": "x"}, "area": {"bbox": list(BBOX)}, "sources": [entry]}, base_dir=Path(".")
        )


class _SensorThings(BaseHTTPRequestHandler):
    """Two pages of Things with Locations, linked by @iot.nextLink, and no Datastreams; bearer token."""

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.send_response(401)
            self.end_headers()
            return
        base = f"http://127.0.0.1:{self.server.server_address[1]}/v1.1"
        second = "$skip=2" in self.path
        things = [{"@iot.id": i, "name": f"Station {i}", "description": "air quality", "properties": {"height_m": i},
                   "Locations": [{"name": f"mast {i}", "location": {"type": "Point", "coordinates": [24.94 + i / 1000, 60.17]}}]}
                  for i in ((3,) if second else (1, 2))]  # fmt: skip
        page: dict[str, Any] = {"value": things if self.path.startswith("/v1.1/Things") else []}
        if not second and self.path.startswith("/v1.1/Things"):
            page["@iot.nextLink"] = f"{base}/Things?$expand=Locations&$top=2&$skip=2"
        body = json.dumps(page).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def sensorthings_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SensorThings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1.1"
    finally:
        server.shutdown()
        thread.join()


def test_sensorthings_things_become_a_point_layer(tmp_path: Path, sensorthings_url: str) -> None:
    source = _remote(
        "stations", "sensorthings", url=sensorthings_url, page_size=2, token_env="PLATFORM_TEST_TOKEN"
    )
    config = _write_twin(tmp_path, [source])
    snapshot = fetch_snapshot(config.source("stations"), config)
    stations = gpd.read_parquet(snapshot.path).sort_values("thing_id")
    assert stations["name"].tolist() == ["Station 1", "Station 2", "Station 3"]
    assert stations["location_name"].tolist() == ["mast 1", "mast 2", "mast 3"]
    assert [round(p.x, 3) for p in stations.geometry] == [24.941, 24.942, 24.943]
    assert json.loads(stations["properties"].iloc[2]) == {"height_m": 3}
    assert len(snapshot.pages) == 2 and snapshot.pages[1]["url"].endswith("$skip=2")


def test_sensors_import_from_a_server_sends_the_token(
    sensorthings_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = {"name": "air", "format": "sensorthings", "url": sensorthings_url, "token_env": "PLATFORM_TEST_TOKEN",
             "licence": "CC-BY-4.0", "publisher": "City", "steward": "Air team"}  # fmt: skip
    sensors = SensorSourceConfig.model_validate(entry)
    feed = read_sensorthings(sensors, sensorthings_url, None)
    assert feed.datastreams == [] and len(feed.observations) == 0  # the server let the token in
    monkeypatch.setenv("PLATFORM_TEST_TOKEN", "wrong")
    with pytest.raises(SourceError, match=r"page 1 \(.*/v1.1/Datastreams.*\): HTTP 401 Unauthorized"):
        read_sensorthings(sensors, sensorthings_url, None)
