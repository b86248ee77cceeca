"""A real PostgreSQL + PostGIS (Debian's packages) for the store tests, on a free loopback port.

One cluster per test session: ``initdb`` into a temporary folder with password (SCRAM) logins over
TCP, ``postgres`` started on a free port of 127.0.0.1 and stopped after the last test. As root (as in
the CI container) the server runs as the ``postgres`` user the Debian package creates, since
PostgreSQL refuses to run as root. A template database holds the postgis extension, so each test
gets a fresh database of its own in a fraction of a second.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user(folder: Path) -> list[str]:
    """The command prefix that runs the server's programs as a non-root user (none unless root)."""
    if os.geteuid() != 0:
        return []
    owner = pwd.getpwnam("postgres")
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    return ["runuser", "-u", "postgres", "--"]


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
    prefix = _as_server_user(folder)
    data, sockets = folder / "data", folder / "sockets"
    subprocess.run(
        [*prefix, str(BIN / "initdb"), "-D", str(data), "-U", USER, "--pwfile", str(folder / "password"),
         "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True,
    )  # fmt: skip
    (folder / "password").unlink()
    sockets.mkdir()
    _as_server_user(sockets)
    port = _free_port()
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
