"""The session's PostgreSQL + PostGIS cluster (see pgtwin.py) and a fresh database per test."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pgtwin import (
    BIN,
    PASSWORD,
    POSTGIS_CONTROL,
    TEMPLATE,
    USER,
    PostGIS,
    as_server_user,
    build_layers,
    free_port,
)

from civictwin.store.opening import StoreLocation


@pytest.fixture(scope="session")
def postgis() -> Iterator[PostGIS]:
    """A PostgreSQL 15 + PostGIS 3 cluster for this session, stopped and removed after it.

    Its folder is a new one directly in the system's temporary directory: pytest's own are private to
    the user running the tests, which the server's user (as root) could not enter.
    """
    if not (BIN / "postgres").is_file() or not POSTGIS_CONTROL.is_file():
        pytest.skip("Debian's postgresql-15-postgis-3 is not installed (make sysdeps)")
    import psycopg

    folder = Path(tempfile.mkdtemp(prefix="civictwin-postgis-"))
    (folder / "password").write_text(PASSWORD + "\n")
    prefix = as_server_user(folder)
    data, sockets = folder / "data", folder / "sockets"
    subprocess.run(
        [*prefix, str(BIN / "initdb"), "-D", str(data), "-U", USER, "--pwfile", str(folder / "password"),
         "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True,
    )  # fmt: skip
    (folder / "password").unlink()
    sockets.mkdir()
    as_server_user(sockets)
    port = free_port()
    log = (folder / "server.log").open("wb")  # a file, not a pipe: a full pipe would stall the server
    server = subprocess.Popen(
        [*prefix, str(BIN / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets),
         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    cluster = PostGIS(port=port, _counter=itertools.count())
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                cluster.sql("postgres", f"CREATE DATABASE {TEMPLATE}")
                break
            except psycopg.OperationalError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    started = (folder / "server.log").read_text(errors="replace")
                    raise RuntimeError(f"postgres did not start: {started[-2000:]}") from None
                time.sleep(0.1)
        cluster.sql(TEMPLATE, "CREATE EXTENSION postgis")
        yield cluster
    finally:
        # "fast" shutdown (open sessions are ended rather than waited for)
        subprocess.run([*prefix, str(BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       check=False, capture_output=True)  # fmt: skip
        server.wait(timeout=30)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgis_url(postgis: PostGIS, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database with postgis for one test, the password in ``PGPASSWORD`` as a city would give it."""
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    return postgis.new_database()


@pytest.fixture
def postgis_twin(postgis_url: str) -> str:
    """A fresh PostGIS database holding a twin built from :func:`pgtwin.layers` (five buildings and
    the roads), ``PGPASSWORD`` set; its URI. A test rebuilds it with fewer buildings to see what a
    rebuild leaves alone."""
    build_layers(StoreLocation(kind="postgis", dsn=postgis_url), 5)
    return postgis_url


@pytest.fixture(params=["sqlite", "postgis"])
def sidecar_location(request: pytest.FixtureRequest, tmp_path: Path) -> StoreLocation:
    """Where a twin is stored, for a store written while it is served (alerts, proposals,
    contributions): the file ``tmp_path/twin.duckdb``, so that the store is a SQLite file beside it,
    or a fresh PostGIS database, so that it is a schema of that database."""
    if request.param == "postgis":
        return StoreLocation(kind="postgis", dsn=request.getfixturevalue("postgis_url"))
    return StoreLocation.of_file(tmp_path / "twin.duckdb")
