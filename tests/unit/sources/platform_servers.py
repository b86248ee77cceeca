"""Real data-platform servers for the remote-source tests, each behind a small auth and fault layer.

Run as ``python platform_servers.py oapif|wfs WORKDIR``: serves on a free loopback port, writes the
server's configuration into WORKDIR (it needs the port) and then the port to ``WORKDIR/port``.

- ``oapif``: pygeoapi (its Flask app, GeoJSON provider over ``WORKDIR/trees.geojson``) behind a
  bearer-token check (``OAPIF_TOKEN``); it also sends ``ETag``/``Last-Modified`` from the data file's
  modification time and size and answers ``If-None-Match`` with 304, as a caching proxy in front of
  pygeoapi would (pygeoapi sends neither).
- ``wfs``: MapServer's ``mapserv`` run as a CGI program per request, serving the layer ``parcels``
  (``WORKDIR/parcels.geojson``, EPSG:3067) as WFS 2.0, behind HTTP Basic auth
  (``WFS_USER``/``WFS_PASSWORD``).

Faults: when ``WORKDIR/fault`` holds ``<what> <query fragment>`` (``500 offset=2``, ``401 offset=2``,
``json offset=2``, ``feature offset=2``), a request whose query contains the fragment gets HTTP 500,
HTTP 401, a body that is not JSON, a feature without geometry, or an empty last page, instead of the real
answer.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from email.utils import formatdate
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

StartResponse = Callable[..., Any]
App = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _fault(workdir: Path, environ: dict[str, Any], start: StartResponse) -> list[bytes] | None:
    fault_file = workdir / "fault"
    if not fault_file.is_file():
        return None
    what, fragment = fault_file.read_text().split()
    if fragment not in environ.get("QUERY_STRING", ""):
        return None
    if what in ("json", "feature", "short"):
        start("200 OK", [("Content-Type", "application/geo+json")])
        if what == "short":  # a last page that ends the collection early
            return [b'{"type": "FeatureCollection", "features": [], "links": []}']
        if what == "feature":  # valid JSON, but its first feature has no geometry member
            return [
                b'{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"id": 3}}]}'
            ]
        return [b'{"type": "FeatureCollection", "features": [{"type": "Feat']
    start(
        {"500": "500 Internal Server Error", "401": "401 Unauthorized"}[what],
        [("Content-Type", "text/plain")],
    )
    return [b"fault injected by the test"]


def _pygeoapi_config(workdir: Path, port: int) -> dict[str, Any]:
    contact = {k: "x" for k in ("name", "position", "address", "city", "stateorprovince", "postalcode",
                                "country", "phone", "fax", "email", "url", "hours", "instructions")}  # fmt: skip
    return {
        "server": {"bind": {"host": "127.0.0.1", "port": port}, "url": f"http://127.0.0.1:{port}",
                   "mimetype": "application/json; charset=UTF-8", "encoding": "utf-8", "languages": ["en-US"],
                   "limits": {"default_items": 10, "max_items": 10}, "map": {"url": "x", "attribution": "x"}},
        "logging": {"level": "ERROR"},
        "metadata": {"identification": {"title": "t", "description": "d", "keywords": ["k"], "keywords_type": "theme",
                                        "terms_of_service": "x", "url": "http://example.org"},
                     "license": {"name": "CC-BY-4.0", "url": "http://example.org"},
                     "provider": {"name": "p", "url": "http://example.org"}, "contact": {**contact, "role": "pointOfContact"}},
        "resources": {"trees": {"type": "collection", "title": "Trees", "description": "Street trees",
                                "keywords": ["trees"], "links": [],
                                "extents": {"spatial": {"bbox": [-180, -90, 180, 90],
                                                        "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
                                "providers": [{"type": "feature", "name": "GeoJSON", "id_field": "id",
                                               "data": str(workdir / "trees.geojson")}]}},
    }  # fmt: skip


def oapif_app(workdir: Path, port: int) -> App:
    """pygeoapi with a bearer-token check, validators and injected faults."""
    (workdir / "pygeoapi.json").write_text(json.dumps(_pygeoapi_config(workdir, port)))
    (workdir / "openapi.json").write_text("{}")
    os.environ["PYGEOAPI_CONFIG"] = str(workdir / "pygeoapi.json")
    os.environ["PYGEOAPI_OPENAPI"] = str(workdir / "openapi.json")
    from pygeoapi.flask_app import APP

    token = os.environ["OAPIF_TOKEN"]

    def app(environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        if environ.get("HTTP_AUTHORIZATION") != f"Bearer {token}":
            start("401 Unauthorized", [("WWW-Authenticate", "Bearer")])
            return [b"unauthorized"]
        faulty = _fault(workdir, environ, start)
        if faulty is not None:
            return faulty
        data = (workdir / "trees.geojson").stat()
        etag = f'"{data.st_mtime_ns:x}-{data.st_size:x}-{environ.get("QUERY_STRING", "")}"'
        if environ.get("HTTP_IF_NONE_MATCH") == etag:
            start("304 Not Modified", [("ETag", etag)])
            return []
        validators = [("ETag", etag), ("Last-Modified", formatdate(data.st_mtime, usegmt=True))]
        return APP(environ, lambda status, headers, *rest: start(status, [*headers, *validators], *rest))

    return app


_MAPFILE = """MAP
  NAME "city"
  EXTENT 380000 6660000 400000 6680000
  PROJECTION "init=epsg:3067" END
  WEB
    METADATA
      "wfs_title" "city"
      "wfs_onlineresource" "http://127.0.0.1:{port}/wfs?"
      "wfs_srs" "EPSG:3067"
      "wfs_enable_request" "*"
    END
  END
  LAYER
    NAME "parcels"
    TYPE POLYGON
    CONNECTIONTYPE OGR
    CONNECTION "{data}"
    PROJECTION "init=epsg:3067" END
    METADATA
      "wfs_title" "parcels"
      "gml_include_items" "all"
      "gml_featureid" "parcel_id"
      "gml_types" "auto"
    END
  END
END
"""


def wfs_app(workdir: Path, port: int) -> App:
    """mapserv as CGI with HTTP Basic auth and injected faults."""
    (workdir / "city.map").write_text(_MAPFILE.format(port=port, data=workdir / "parcels.geojson"))
    (workdir / "ms.conf").write_text(f'CONFIG\n  ENV\n    MS_MAPFILE "{workdir / "city.map"}"\n  END\nEND\n')
    expected = (
        "Basic "
        + base64.b64encode(f"{os.environ['WFS_USER']}:{os.environ['WFS_PASSWORD']}".encode()).decode()
    )

    def app(environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        if environ.get("HTTP_AUTHORIZATION") != expected:
            start("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="wfs"')])
            return [b"unauthorized"]
        faulty = _fault(workdir, environ, start)
        if faulty is not None:
            return faulty
        cgi_env = {"MAPSERVER_CONFIG_FILE": str(workdir / "ms.conf"), "REQUEST_METHOD": "GET",
                   "QUERY_STRING": environ.get("QUERY_STRING", ""), "PATH": os.environ.get("PATH", "")}  # fmt: skip
        output = subprocess.run(["mapserv"], env=cgi_env, capture_output=True, check=True).stdout
        head, _, body = output.partition(b"\r\n\r\n") if b"\r\n\r\n" in output else output.partition(b"\n\n")
        headers = [
            tuple(s.strip() for s in line.split(":", 1)) for line in head.decode().splitlines() if ":" in line
        ]
        status = dict(headers).pop("Status", "200 OK")
        start(status, [(k, v) for k, v in headers if k != "Status"])
        return [body]

    return app


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: the tests read the server's answers, not its log."""


class _Later:
    """The WSGI app, set once the port (which the server's configuration names) is known."""

    app: App | None = None

    def __call__(self, environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        assert self.app is not None
        return self.app(environ, start)


def main() -> None:
    kind, workdir = sys.argv[1], Path(sys.argv[2])
    later = _Later()
    server = make_server("127.0.0.1", 0, later, handler_class=_Quiet)
    later.app = (oapif_app if kind == "oapif" else wfs_app)(workdir, server.server_port)
    (workdir / "port.part").write_text(str(server.server_port))
    (workdir / "port.part").rename(workdir / "port")
    server.serve_forever()


if __name__ == "__main__":
    main()
