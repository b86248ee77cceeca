"""SensorThings JSON import from a real HTTP server on a loopback port, following @iot.nextLink over
datastream and observation pages, and from a saved document."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from sensortwin import sensors_entry, twin_config

from civictwin.errors import SourceError
from civictwin.ingest import import_sensors
from civictwin.store.observations import iso, open_observations

Pages = dict[tuple[str, frozenset[tuple[str, str]]], dict[str, Any]]


def location(lon: float, lat: float) -> list[dict[str, Any]]:
    return [
        {
            "name": "mast",
            "encodingType": "application/geo+json",
            "location": {"type": "Point", "coordinates": [lon, lat]},
        }
    ]


def datastream(ds_id: int, unit: dict[str, str], base: str) -> dict[str, Any]:
    return {
        "@iot.id": ds_id,
        "@iot.selfLink": f"{base}/Datastreams({ds_id})",
        "name": f"stream {ds_id}",
        "description": "",
        "unitOfMeasurement": unit,
        "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
        "Thing": {"@iot.id": 7, "name": "Station 7", "description": "", "Locations": location(6.95, 50.93)},
        "Sensor": {
            "@iot.id": 1,
            "name": "thermometer",
            "description": "",
            "encodingType": "text/plain",
            "metadata": "",
        },
        "ObservedProperty": {
            "@iot.id": ds_id,
            "name": f"property {ds_id}",
            "definition": "urn:x",
            "description": "",
        },
    }


def pages(base: str) -> Pages:
    """What the server answers, keyed by path and query (as a set of decoded pairs)."""

    def key(url: str) -> tuple[str, frozenset[tuple[str, str]]]:
        parts = urlsplit(url)
        return parts.path, frozenset(parse_qsl(parts.query))

    first = f"{base}/Datastreams?$expand=Thing($expand=Locations),Sensor,ObservedProperty&$top=100"
    observations = "Observations?$orderby=phenomenonTime asc&$top=1000"
    return {
        key(first): {
            "value": [
                datastream(
                    1,
                    {"name": "microgram per cubic metre", "symbol": "µg/m³", "definition": "ucum:ug/m3"},
                    base,
                )
            ],
            "@iot.nextLink": f"{base}/Datastreams?$skip=1",
        },
        key(f"{base}/Datastreams?$skip=1"): {
            "value": [
                datastream(2, {"name": "degree Celsius", "symbol": "°C", "definition": "http://x"}, base),
                datastream(
                    3, {"name": "furlong", "symbol": "furlongs per fortnight", "definition": "x"}, base
                ),
            ]
        },
        key(f"{base}/Datastreams(1)/{observations}"): {
            "value": [
                {"phenomenonTime": "2014-01-01T00:00:00Z", "result": 40},
                {"phenomenonTime": "2014-01-01T01:00:00Z/2014-01-01T02:00:00Z", "result": None},
            ],
            "@iot.nextLink": f"{base}/Datastreams(1)/Observations?$skip=2",
        },
        key(f"{base}/Datastreams(1)/Observations?$skip=2"): {
            "value": [
                {"phenomenonTime": "2014-01-01T03:00:00+01:00", "result": 38.5},
                {"phenomenonTime": "yesterday", "result": 1},
            ]
        },
        key(f"{base}/Datastreams(2)/{observations}"): {
            "value": [{"phenomenonTime": "2014-01-01T00:00:00Z", "result": -3.5}]
        },
    }


@pytest.fixture
def server() -> Iterator[str]:
    """A SensorThings-like server on a free loopback port answering the pages above."""
    answers: Pages = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            body = answers.get((parts.path, frozenset(parse_qsl(parts.query))))
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body or {"message": "not found"}).encode())

        def log_message(self, *_: Any) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{httpd.server_address[1]}/v1.1"
    answers.update(pages(base))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield base
    httpd.shutdown()
    httpd.server_close()
    thread.join(10)


def test_import_follows_next_links_across_pages(tmp_path: Path, server: str) -> None:
    config = twin_config(tmp_path, [sensors_entry("remote", "sensorthings", url=server)])
    (summary,) = import_sensors(config)
    assert (summary.datastreams, summary.stored) == (2, 4)
    assert summary.rejected == {"unparseable phenomenonTime": 1}
    assert "datastream 'stream 3' skipped: its unit is not a UCUM code" in summary.notes
    with open_observations(tmp_path / "sensor-test.duckdb") as store:
        infos = {d.key: d for d in store.datastreams()}
        assert infos["remote/datastream/2"].unit.code == "Cel"
        frame = store.observations(infos["remote/datastream/1"].id)
    assert [iso(int(t)) for t in frame["phenomenon_time"]] == [
        "2014-01-01T00:00:00Z",
        "2014-01-01T01:00:00Z",
        "2014-01-01T02:00:00Z",
    ]
    assert iso(int(frame["phenomenon_end"].iloc[1])) == "2014-01-01T02:00:00Z"
    assert (
        frame["result"].iloc[0] == 40.0 and frame["result"].isna().iloc[1] and frame["result"].iloc[2] == 38.5
    )
    assert import_sensors(config)[0].duplicates == 4


def test_a_saved_document_imports_and_a_saved_page_is_refused(tmp_path: Path) -> None:
    document = {
        "value": [
            {
                **datastream(1, {"name": "x", "symbol": "ug/m3", "definition": "x"}, "http://s/v1.1"),
                "Observations": [{"phenomenonTime": "2014-01-01T00:00:00Z", "result": 3}],
            }
        ]
    }
    (tmp_path / "saved.json").write_text(json.dumps(document), encoding="utf-8")
    config = twin_config(
        tmp_path, [sensors_entry("saved", "sensorthings", path=str(tmp_path / "saved.json"))]
    )
    assert import_sensors(config)[0].stored == 1
    document["@iot.nextLink"] = "http://s/v1.1/Datastreams?$skip=1"
    (tmp_path / "saved.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(SourceError, match=r"saved\.json: a paged response \(it has an @iot.nextLink\)"):
        import_sensors(config)
