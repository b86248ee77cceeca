"""`civictwin serve` for real (uvicorn in a subprocess on a free loopback port) and `civictwin token`."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from apitwin import build_twin
from typer.testing import CliRunner

import civictwin.cli.serve  # noqa: F401  (registers serve and token on the app)
from civictwin.cli import app
from civictwin.governance.audit import audit_path, read_audit
from civictwin.governance.tokens import list_tokens, tokens_path

# The Typer app with the publishing commands registered, run as the `civictwin` program.
_CLI = (
    "import sys, civictwin.cli.serve; from civictwin.cli import app; app(sys.argv[1:], prog_name='civictwin')"
)
# The same through the entry point's error handling (one-line errors, exit codes).
_MAIN = "import civictwin.cli.serve; from civictwin.cli import main; main()"


@pytest.fixture()
def fresh_twin(tmp_path: Path) -> Path:
    build_twin(tmp_path / "twin")
    return tmp_path / "twin"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real `civictwin serve` process; yields its base URL and twin dir, then stops it."""
    fresh_twin = tmp_path_factory.mktemp("served") / "twin"
    build_twin(fresh_twin)
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", _CLI, "serve", str(fresh_twin), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(base + "/conformance", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read() if process.stdout else ""
                    pytest.fail(f"server did not start: {output}")
                time.sleep(0.2)
        yield base, fresh_twin
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_serve_answers_over_http(server: tuple[str, Path]) -> None:
    """The real server lists the public layers, pages features, serves tiles, and audits each request."""
    base, twin_dir = server
    collections = httpx.get(f"{base}/collections").json()["collections"]
    assert [c["id"] for c in collections] == ["buildings", "transit_routes"]
    page = httpx.get(f"{base}/collections/buildings/items?limit=2").json()
    assert page["numberMatched"] == 5 and page["numberReturned"] == 2
    assert page["links"][0]["href"].startswith(base)
    tile = httpx.get(f"{base}/tiles/buildings/14/9326/4742.mvt")
    assert tile.status_code == 200 and tile.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    assert httpx.get(f"{base}/collections/roads").status_code == 404
    entries = read_audit(audit_path(twin_dir / "test-twin.duckdb"))
    recent = [(e.who, e.path, e.status) for e in entries[-3:]]
    assert recent == [
        ("anonymous", "/collections/buildings/items", 200),
        ("anonymous", "/tiles/buildings/14/9326/4742.mvt", 200),
        ("anonymous", "/collections/roads", 404),
    ]


def test_token_created_while_serving_works_at_once(server: tuple[str, Path]) -> None:
    """A token made by the CLI while the server runs is honoured on the next request; revoked, refused."""
    base, twin_dir = server
    runner = CliRunner()
    created = runner.invoke(app, ["token", "create", str(twin_dir), "--role", "viewer", "--name", "ops"])
    assert created.exit_code == 0, created.output
    token = created.output.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{base}/collections/roads", headers=headers).status_code == 200
    token_id = token.split("_")[1]
    assert runner.invoke(app, ["token", "revoke", token_id, str(twin_dir)]).exit_code == 0
    assert httpx.get(f"{base}/collections/roads", headers=headers).status_code == 401


def test_token_commands(fresh_twin: Path) -> None:
    """create prints the token once, list shows ids and roles but no secret, revoke marks it."""
    runner = CliRunner()
    created = runner.invoke(
        app,
        [
            "token",
            "create",
            str(fresh_twin),
            "--role",
            "steward",
            "--datasets",
            "zones,roads",
            "--name",
            "GIS",
        ],
    )
    assert created.exit_code == 0, created.output
    token = created.output.strip().splitlines()[-1]
    stored = tokens_path(fresh_twin / "test-twin.duckdb").read_text()
    assert token not in stored and token.split("_", 2)[2] not in stored  # the secret may hold "_" too
    (record,) = list_tokens(tokens_path(fresh_twin / "test-twin.duckdb"))
    assert record.datasets == ("zones", "roads") and record.name == "GIS"
    listing = runner.invoke(app, ["token", "list", str(fresh_twin)])
    assert record.id in listing.output and "steward" in listing.output and token not in listing.output
    assert runner.invoke(app, ["token", "revoke", record.id, str(fresh_twin)]).exit_code == 0
    assert json.loads(tokens_path(fresh_twin / "test-twin.duckdb").read_text())["tokens"][0]["revoked"]


def test_token_command_errors_are_one_line(fresh_twin: Path) -> None:
    """Bad arguments: a civictwin error naming the option, no traceback."""
    result = subprocess.run(
        [sys.executable, "-c", _MAIN, "token", "create", str(fresh_twin), "--role", "steward"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "--datasets" in result.stderr
