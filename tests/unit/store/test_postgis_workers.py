"""`civictwin serve --workers 2` over a PostGIS twin, for real: what the workers must agree on, they do.

One server (two worker processes on one socket) answers fresh connections, which the kernel hands
to either worker; every audit line names its worker, so each check goes on until both workers took
part. Burst 30 and a refill of 0.001 request/s (0.03 over the test's half minute: never a whole one).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import mapbox_vector_tile
import pytest
from pgtwin import PASSWORD, PostGIS, build_layers, free_port, twin_toml
from prometheus_client.parser import text_string_to_metric_families

from civictwin.governance.audit import audit_path, read_audit
from civictwin.governance.chain import chain_files, verify_chain
from civictwin.governance.tokens import Role, create_token, revoke_token, tokens_path
from civictwin.store.opening import StoreLocation

_CLI = (
    "import sys, civictwin.cli.serve; from civictwin.cli import app; app(sys.argv[1:], prog_name='civictwin')"
)
BURST = 30
T = TypeVar("T")
TILE = "/tiles/buildings/14/9326/4742.mvt"  # every building is in this tile


class Served:
    """The running server: its base URL, twin directory and store location."""

    def __init__(self, base: str, twin: Path, location: StoreLocation) -> None:
        self.base, self.twin, self.location = base, twin, location
        self.store_path = twin / "pg-workers.duckdb"  # the name the files beside the twin take

    def get(self, path: str, token: str | None = None) -> httpx.Response:
        """One request on a fresh connection (so the kernel picks a worker each time)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(self.base + path, headers=headers, timeout=30)

    def workers_since(self, line: int) -> set[int]:
        """The workers that wrote the audit lines from ``line`` on."""
        return {e.worker for e in read_audit(audit_path(self.store_path))[line:] if e.worker is not None}

    def until_both_workers(self, request: Callable[[], T], *, least: int, most: int = BURST) -> list[T]:
        """What ``request`` gave, called at least ``least`` times and until both workers answered
        (the kernel may hand many connections in a row to one worker); ``most`` calls at most, by
        default the burst, so that a client's bucket never runs dry where a check does not expect it
        (a revoked token's requests are charged to the address's bucket)."""
        start = len(read_audit(audit_path(self.store_path)))
        answers: list[T] = []
        while len(answers) < least or len(self.workers_since(start)) < 2:
            assert len(answers) < most, f"one worker answered all of {most} requests"
            answers.append(request())
        return answers


@pytest.fixture(scope="module")
def served(postgis: PostGIS, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    twin = tmp_path_factory.mktemp("pgworkers")
    url = postgis.new_database()
    (twin / "twin.toml").write_text(twin_toml(name="Pg workers", url=url))
    location = StoreLocation(kind="postgis", dsn=url)
    os.environ["PGPASSWORD"] = PASSWORD
    try:
        build_layers(location, 5)
        port = free_port()
        log = (twin / "server.log").open("w+")
        process = subprocess.Popen(
            [sys.executable, "-c", _CLI, "serve", str(twin), "--port", str(port), "--workers", "2",
             "--burst", str(BURST), "--rate-limit", "0.001"],
            stdout=log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while "2 workers accept requests." not in (twin / "server.log").read_text():
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"server did not start: {(twin / 'server.log').read_text()}")
                time.sleep(0.2)
            yield Served(f"http://127.0.0.1:{port}", twin, location)
        finally:
            process.terminate()
            process.wait(timeout=30)
            log.close()
    finally:
        del os.environ["PGPASSWORD"]


def test_workers_share_limits_tokens_audit_and_tile_invalidation(served: Served) -> None:
    tokens = tokens_path(served.store_path)
    limited, revoked, before, after = (create_token(tokens, role=Role.VIEWER).token for _ in range(4))

    # A rate limit over both workers: burst 30, so of n > 30 requests exactly the first 30 pass.
    statuses = served.until_both_workers(
        lambda: served.get("/conformance", limited).status_code, least=34, most=70
    )
    assert statuses == [200] * BURST + [429] * (len(statuses) - BURST)

    # A revoked token is refused by every worker from the next request on.
    assert [served.get("/conformance", revoked).status_code for _ in range(4)] == [200] * 4
    revoke_token(tokens, revoked.split("_")[1])
    refused = served.until_both_workers(lambda: served.get("/conformance", revoked).status_code, least=6)
    assert refused == [401] * len(refused)

    # Every worker's tile cache holds the 5 buildings; after a rebuild every worker serves the 3 left.
    old = served.until_both_workers(lambda: tile_ids(served.get(TILE, before)), least=6)
    assert set(old) == {(0, 1, 2, 3, 4)}
    build_layers(served.location, 3)
    new = served.until_both_workers(lambda: tile_ids(served.get(TILE, after)), least=6)
    assert set(new) == {(0, 1, 2)}

    # Every request left one intact, chained audit line, written by one of the two workers.
    entries = read_audit(audit_path(served.store_path))
    assert len(entries) == len(statuses) + 4 + len(refused) + len(old) + len(new)
    assert verify_chain(chain_files(audit_path(served.store_path))).intact
    assert len({e.worker for e in entries}) == 2 and None not in {e.worker for e in entries}
    assert [e.status for e in entries[: len(statuses)]] == statuses
    # /metrics counts over both workers, whichever answers the scrape.
    admin = create_token(tokens, role=Role.ADMIN).token
    scrapes = served.until_both_workers(lambda: counted(served.get("/metrics", admin).text), least=4)
    assert set(scrapes) == {(len(entries), len(old) + len(new))}  # every audited request, counted once

    # No credential in anything the server wrote: its output, logs, tokens, shared limits file.
    written = [path for path in served.twin.iterdir() if path.is_file()]
    assert {p.name for p in written} >= {"server.log", "pg-workers.audit.jsonl", "pg-workers.limits.sqlite"}
    assert not [p.name for p in written if PASSWORD.encode() in p.read_bytes()]


def counted(exposition: str) -> tuple[float, float]:
    """From a scrape: requests answered but scrapes (all routes and statuses) and tile cache lookups."""
    samples = [s for family in text_string_to_metric_families(exposition) for s in family.samples]
    requests = sum(s.value for s in samples
                   if s.name == "civictwin_http_requests_total" and s.labels.get("route") != "/metrics")  # fmt: skip
    lookups = sum(s.value for s in samples
                  if s.name in ("civictwin_tile_cache_hits_total", "civictwin_tile_cache_misses_total"))  # fmt: skip
    return requests, lookups


def tile_ids(response: httpx.Response) -> tuple[int, ...]:
    """The building ids in a tile."""
    assert response.status_code == 200, response.text
    return tuple(
        sorted(f["id"] for f in mapbox_vector_tile.decode(response.content)["buildings"]["features"])
    )


def test_serving_with_refused_credentials_is_one_line_before_any_worker(
    postgis: PostGIS, tmp_path: Path
) -> None:
    url = postgis.new_database()
    (tmp_path / "twin.toml").write_text(twin_toml(name="Pg workers", url=url))
    main = "import civictwin.cli.serve; from civictwin.entry import main; main()"
    refused = subprocess.run(
        [sys.executable, "-c", main, "serve", str(tmp_path), "--port", str(free_port()), "--workers", "2"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PGPASSWORD": "a-wrong-password"},
    )  # fmt: skip
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        f'error: {url}: cannot connect to the PostGIS store: connection to server at "127.0.0.1", port '
        f'{postgis.port} failed: FATAL:  password authentication failed for user "twin"'
    ]
    assert "a-wrong-password" not in refused.stdout + refused.stderr
    assert not (tmp_path / "pg-workers.limits.sqlite").exists()  # no worker was started
