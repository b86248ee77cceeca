"""`civictwin serve` run for real: refusals at the server edge, SIGHUP, SIGTERM draining, native TLS.

Each server is a `civictwin` process on a free loopback port, stopped by the test.
"""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from apitwin import build_twin

from civictwin.governance.audit import audit_path, read_audit
from civictwin.governance.chain import verify_chain

ENTRY = "from civictwin.entry import main; main()"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    twin: Path, *, scheme: str = "http", verify: str | bool = True
) -> tuple[subprocess.Popen[str], str]:
    """A `civictwin serve` process and its base URL, once it answers."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", ENTRY, "serve", str(twin), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # generous: a shared, loaded machine starts servers slowly
    while True:
        try:
            httpx.get(base + "/health/live", timeout=2, verify=verify)
            return process, base
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"server did not start: {process.communicate()[0]}")
            time.sleep(0.2)


def stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.communicate(timeout=60)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[0]


@pytest.fixture()
def twin(tmp_path: Path) -> Path:
    build_twin(tmp_path / "twin")
    return tmp_path / "twin"


@pytest.fixture()
def served(twin: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    process, base = start_server(twin)
    try:
        yield process, base, twin
    finally:
        stop(process)


def raw_exchange(base: str, request: bytes) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65_536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /collections HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n",
        b"NOT A REQUEST LINE\r\n\r\n",
        b"GET /collections/\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ],
)
def test_requests_refused_by_the_http_parser_are_problems_and_audited(
    served: tuple[subprocess.Popen[str], str, Path], request_bytes: bytes
) -> None:
    _, base, twin = served
    before = len(read_audit(audit_path(twin / "test-twin.duckdb")))
    answer = raw_exchange(base, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: application/problem+json" in head.lower()
    assert json.loads(body)["status"] == 400
    entries = read_audit(audit_path(twin / "test-twin.duckdb"))
    assert len(entries) == before + 1
    assert (entries[-1].status, entries[-1].edge, entries[-1].client) == (400, True, "127.0.0.0/24")


def test_sighup_reopens_the_audit_log_after_an_external_rotation(
    served: tuple[subprocess.Popen[str], str, Path],
) -> None:
    process, base, twin = served
    log = audit_path(twin / "test-twin.duckdb")
    httpx.get(base + "/collections")
    moved = log.with_name(log.name + ".1")
    log.rename(moved)  # logrotate without copytruncate
    httpx.get(base + "/conformance")  # the server notices the move itself...
    process.send_signal(signal.SIGHUP)  # ...and SIGHUP makes it reopen in any case
    time.sleep(0.5)
    httpx.get(base + "/tiles")
    assert [e.path for e in read_audit(log)] == ["/conformance", "/tiles"]
    assert verify_chain([moved, log]).intact


def test_sigterm_drains_requests_in_flight_and_exits_cleanly(twin: Path) -> None:
    process, base = start_server(twin)
    answered: list[int] = []
    stop_clients = threading.Event()

    def client() -> None:
        with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=30) as http:
            while not stop_clients.is_set():
                try:
                    answered.append(http.get(base + "/collections/buildings/items?limit=100").status_code)
                except httpx.TransportError:
                    return  # the server has stopped accepting connections

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    process.send_signal(signal.SIGTERM)
    stopped_at = time.monotonic()
    output = process.communicate(timeout=60)[0]
    drained_s = time.monotonic() - stopped_at
    stop_clients.set()
    for thread in threads:
        thread.join(timeout=60)
    assert process.returncode == 0, output
    assert output.strip().splitlines()[-1] == "Stopped on SIGTERM after the requests in flight finished."
    assert drained_s < 30  # the 10 s drain bound ([server] shutdown_timeout_s) plus the process's exit
    assert answered and set(answered) == {200}
    served = [e for e in read_audit(audit_path(twin / "test-twin.duckdb")) if e.path.endswith("/items")]
    assert len(served) == len(answered)  # every request the server handled reached its client
    assert {e.status for e in served} == {200}


def test_ctrl_c_stops_the_server_with_one_line_and_130(twin: Path) -> None:
    process, _ = start_server(twin)
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 130
    assert output.strip().splitlines()[-1] == "interrupted: nothing half-written was kept"


def test_native_tls_with_hsts(twin: Path, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    config = twin / "twin.toml"
    config.write_text(
        '[twin]\nname = "test twin"\nstore = "test-twin.duckdb"\n[area]\nbbox = [24.9, 60.1, 25.0, 60.2]\n'
        '[[sources]]\nname = "osm"\nkind = "osm"\npath = "none.osm.pbf"\nlicence = "x"\npublisher = "x"\n'
        f'steward = "x"\n[server]\ntls_certificate = "{cert}"\ntls_private_key = "{key}"\n'
    )
    context = ssl.create_default_context(cafile=str(cert))
    process, base = start_server(twin, scheme="https", verify=context)  # type: ignore[arg-type]
    try:
        answer = httpx.get(base + "/tiles/buildings.json", verify=context)
        assert answer.status_code == 200
        assert answer.headers["strict-transport-security"] == "max-age=31536000"
        assert answer.json()["tiles"][0].startswith(base + "/tiles/buildings/")
        with pytest.raises(httpx.TransportError):
            httpx.get(base.replace("https", "http") + "/health/live", timeout=5)
    finally:
        stop(process)
