"""A real PostgreSQL + PostGIS (Debian's packages) for the store tests, on a free loopback port.

The cluster itself is started by the session fixture ``postgis`` of this folder's conftest.py.

One cluster per test session: ``initdb`` into a temporary folder with password (SCRAM) logins over
TCP, ``postgres`` started on a free port of 127.0.0.1 and stopped after the last test. As root (as in
the CI container) the server runs as the ``postgres`` user the Debian package creates, since
PostgreSQL refuses to run as root. A template database holds the postgis extension, so each test
gets a fresh database of its own in a fraction of a second.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import pandas as pd
from shapely.geometry import LineString, box

from civictwin.store.opening import StoreLocation, build_store

BIN = Path("/usr/lib/postgresql/15/bin")
POSTGIS_CONTROL = Path("/usr/share/postgresql/15/extension/postgis.control")
USER = "twin"
PASSWORD = "pw-Kx81-never-shown"
"""The superuser's password: given to libpq through ``PGPASSWORD`` only, and searched for in outputs."""
TEMPLATE = "with_postgis"


@dataclass(frozen=True)
class PostGIS:
    """A running cluster: its port and fresh databases on demand."""

    port: int
    _counter: Iterator[int]

    def url(self, database: str) -> str:
        """The libpq URI of ``database`` (no password: that comes from ``PGPASSWORD``)."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self, *, postgis: bool = True) -> str:
        """A new, empty database (with the postgis extension unless ``postgis`` is False); its URI."""
        name = f"t{next(self._counter)}"
        self.sql("postgres", f"CREATE DATABASE {name} TEMPLATE {TEMPLATE if postgis else 'template0'}")
        return self.url(name)

    def sql(self, database: str, statement: str) -> None:
        """Run one statement as the superuser."""
        import psycopg

        with psycopg.connect(self.url(database), password=PASSWORD, autocommit=True) as con:
            con.execute(statement.encode())

    def query(self, database: str, statement: str) -> list[tuple[Any, ...]]:
        """The rows of one query, as the superuser."""
        import psycopg

        with psycopg.connect(self.url(database), password=PASSWORD, autocommit=True) as con:
            return con.execute(statement.encode()).fetchall()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def as_server_user(folder: Path) -> list[str]:
    """The command prefix that runs the server's programs as a non-root user (none unless root)."""
    if os.geteuid() != 0:
        return []
    owner = pwd.getpwnam("postgres")
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    return ["runuser", "-u", "postgres", "--"]


CRS = "EPSG:32635"
X0, Y0 = 385_000.0, 6_672_000.0  # Helsinki, in UTM 35N


def layers() -> dict[str, gpd.GeoDataFrame]:
    """Two small layers in Helsinki (buildings with a time column, a NaN and a null; roads)."""
    buildings = gpd.GeoDataFrame(
        {
            "osm_id": [101, 102, 103, 104, 105],
            "use": ["residential", "residential", "commercial", "public", "residential"],
            "name": ["Talo A", None, "Kauppa", "Koulu", "Talo E"],
            "height_m": [12.0, 9.0, 21.5, float("nan"), 30.0],
            "surveyed": pd.to_datetime(
                ["2019-01-01", "2020-01-01", "2021-01-01", "2022-01-01", "2023-01-01"]
            ),
        },
        geometry=[box(X0 + i * 100, Y0, X0 + i * 100 + 20, Y0 + 20) for i in range(5)],
        crs=CRS,
    )
    roads = gpd.GeoDataFrame(
        {"highway": ["primary", "secondary"], "lanes": [2, 1]},
        geometry=[LineString([(X0, Y0 - 50 - 40 * i), (X0 + 500, Y0 - 50 - 40 * i)]) for i in range(2)],
        crs=CRS,
    )
    return {"buildings": buildings, "roads": roads}


def twin_toml(*, name: str, url: str) -> str:
    """A ``twin.toml`` whose store is the PostGIS ``url``, with one (unread) OSM source."""
    return f"""[twin]
name = "{name}"
store = "{url}"

[area]
bbox = [24.9, 60.1, 25.0, 60.2]

[[sources]]
name = "osm"
kind = "osm"
path = "x.osm.pbf"
licence = "ODbL-1.0"
publisher = "OSM"
steward = "GIS"
"""


def build_layers(location: StoreLocation, buildings: int) -> None:
    """The twin with the first ``buildings`` of :func:`layers`' buildings and the roads, both public."""
    with build_store(location, crs=CRS) as store:
        for name, frame in layers().items():
            store.write_table(name, frame.head(buildings) if name == "buildings" else frame)
            store.put_record("catalog", name, {"access": "public"})


CLI = "from civictwin.entry import main; main()"
"""The command line, as ``python -c`` runs it in a process of its own."""


@dataclass(frozen=True)
class Replica:
    """One running ``civictwin serve``: its twin directory and the base URL it answers on."""

    twin: Path
    base: str


@contextmanager
def serve_replicas(
    folder: Path, *, url: str, server: str, env: Mapping[str, str], options: Sequence[str] = ()
) -> Iterator[list[Replica]]:
    """Two ``civictwin serve`` processes on free loopback ports, each with its own twin directory
    (``folder/a``, ``folder/b``, as on two hosts) whose ``twin.toml`` stores the twin in the PostGIS
    database ``url`` and has ``server`` as its ``[server]`` section; ``env``: their environment,
    ``options``: more ``serve`` options. Yields them once both answer, terminates them at the end."""
    replicas: list[Replica] = []
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for host in ("a", "b"):
            twin = folder / host
            twin.mkdir()
            (twin / "twin.toml").write_text(twin_toml(name="Replicas", url=url) + f"\n[server]\n{server}\n")
            port = free_port()
            command = [sys.executable, "-c", CLI, "serve", str(twin), "--port", str(port), *options]
            with (twin / "server.log").open("w") as log:
                processes.append(
                    subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(env))
                )
            replicas.append(Replica(twin, f"http://127.0.0.1:{port}"))
        for replica in replicas:
            wait_until_ready(replica.base)
        yield replicas
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)


def wait_until_ready(base: str) -> None:
    """Until the server at ``base`` answers /health/live (the answered check takes one token from the
    bucket of this client; those refused before the server listens take none)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base + "/health/live", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{base} did not start"
        time.sleep(0.2)
