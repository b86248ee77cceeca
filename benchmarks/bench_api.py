"""API benchmark: items?limit=100 throughput against pygeoapi, and vector tile latency.

Both servers serve the same layer with one uvicorn worker each, and are driven by the same load
generator (asyncio + httpx, N concurrent clients for D seconds):

- civictwin: ``civictwin serve`` over the twin (anonymous requests; the layer must be public, or
  pass ``--token``), rate limit lifted so the gate's checks run but never refuse;
- pygeoapi: the reference OGC API server in Python, installed into ``benchmarks/.peer-venv``, serving
  the layer exported to GeoParquet in WGS84 (its Parquet provider) or loaded into PostGIS
  (``--peer-backend postgis``; needs Debian's ``postgresql-15-postgis-3`` packages, run as root).

Tiles: every tile of the layer's extent at the given zoom levels is fetched once cold (first
request, rendered) and once warm (from the cache), one at a time; p50/p99 are client-side latencies.

    .venv/bin/python benchmarks/bench_api.py --setup-peer         # once: pygeoapi into .peer-venv
    .venv/bin/python benchmarks/bench_api.py demo-twin --layer buildings --concurrency 4 --duration 20

Prints a markdown table (results go into BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PEER_VENV = ROOT / "benchmarks" / ".peer-venv"
PEER_PACKAGES = ["pygeoapi", "uvicorn", "starlette", "geopandas", "pyarrow", "s3fs"]
POSTGIS_PACKAGES = ["psycopg2-binary", "sqlalchemy", "geoalchemy2"]
CIVICTWIN_CLI = (
    "import sys, civictwin.cli.serve; from civictwin.cli import app; app(sys.argv[1:], prog_name='civictwin')"
)


@dataclass
class Load:
    """Outcome of one load run."""

    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(
    command: list[str], ready_url: str, *, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server process until the block ends; wait until ``ready_url`` answers; the process."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(ready_url, timeout=2).status_code < 500:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise SystemExit(
                        f"server did not start: {' '.join(command)}\n{log.read().decode()[-3000:]}"
                    )
                time.sleep(0.3)
            yield process
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


async def _load(url: str, concurrency: int, seconds: float, headers: dict[str, str]) -> Load:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30, headers=headers) as client:
        await client.get(url)  # warm-up: first-request costs are not throughput
        end = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < end:
                started = time.perf_counter()
                response = await client.get(url)
                latencies.append((time.perf_counter() - started) * 1000)
                errors += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Load(requests=len(latencies), errors=errors, seconds=elapsed, latencies_ms=latencies)


def load(url: str, concurrency: int, seconds: float, headers: dict[str, str] | None = None) -> Load:
    """Drive ``url`` with ``concurrency`` clients for ``seconds``."""
    return asyncio.run(_load(url, concurrency, seconds, headers or {}))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def tiles_covering(bounds: list[float], zoom: int) -> list[tuple[int, int, int]]:
    """Every z/x/y tile meeting a WGS84 bbox."""
    west, south, east, north = bounds
    n: int = 2**zoom

    def tile_x(lon: float) -> int:
        return min(n - 1, int((lon + 180) / 360 * n))

    def tile_y(lat: float) -> int:
        return min(n - 1, int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n))

    return [
        (zoom, x, y)
        for x in range(tile_x(west), tile_x(east) + 1)
        for y in range(tile_y(north), tile_y(south) + 1)
    ]


def tile_latencies(base: str, layer: str, zooms: list[int], headers: dict[str, str]) -> dict[str, object]:
    """Cold and warm latencies (ms) over every tile of the layer's extent at ``zooms``."""
    with httpx.Client(headers=headers, timeout=30) as client:
        bounds = client.get(f"{base}/tiles/{layer}.json").json()["bounds"]
        tiles = [t for z in zooms for t in tiles_covering(bounds, z)]
        result: dict[str, object] = {"tiles": len(tiles)}
        for phase in ("cold", "warm"):
            times: list[float] = []
            statuses: dict[int, int] = {}
            for z, x, y in tiles:
                started = time.perf_counter()
                response = client.get(f"{base}/tiles/{layer}/{z}/{x}/{y}.mvt")
                times.append((time.perf_counter() - started) * 1000)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            result[phase] = times
            result[f"{phase}_statuses"] = statuses
    return result


def setup_peer(postgis: bool) -> Path:
    """Create ``benchmarks/.peer-venv`` with pygeoapi (and PostGIS client libraries if asked).

    With ``postgis`` also Debian's ``wrk`` (the load generator of ``bench_postgis_serving.py``), when
    it is missing and this runs as root.
    """
    if postgis and shutil.which("wrk") is None:
        if os.geteuid() != 0:
            raise SystemExit("bench_postgis_serving.py needs Debian's wrk: apt-get install wrk (as root)")
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "wrk"], check=True)
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    packages = PEER_PACKAGES + (POSTGIS_PACKAGES if postgis else [])
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *packages], check=True)
    return python


def export_layer(store_path: Path, layer: str, out: Path) -> int:
    """The layer in WGS84 as GeoParquet (with a covering bbox column and an integer ``fid``)."""
    from civictwin.store.duckdb import DuckDBStore

    with DuckDBStore.open(store_path) as store:
        frame = store.read_frame(layer).to_crs("EPSG:4326")
    frame.insert(0, "fid", range(len(frame)))
    frame.to_parquet(out, write_covering_bbox=True)
    return len(frame)


_PYGEOAPI_CONFIG = """\
server:
  bind: {{host: 127.0.0.1, port: {port}}}
  url: http://127.0.0.1:{port}
  mimetype: application/json; charset=UTF-8
  encoding: utf-8
  languages: [en-US]
  limits: {{default_items: 10, max_items: 10000}}
  map: {{url: 'http://127.0.0.1/{{z}}/{{x}}/{{y}}.png', attribution: none}}
logging: {{level: ERROR}}
metadata:
  identification: {{title: bench, description: bench, keywords: [bench], keywords_type: theme,
                   terms_of_service: none, url: 'http://127.0.0.1'}}
  license: {{name: CC-BY 4.0, url: 'https://creativecommons.org/licenses/by/4.0/'}}
  provider: {{name: bench, url: 'http://127.0.0.1'}}
  contact: {{name: bench}}
resources:
  {layer}:
    type: collection
    title: {layer}
    description: {layer}
    keywords: [{layer}]
    extents:
      spatial: {{bbox: [-180, -90, 180, 90], crs: 'http://www.opengis.net/def/crs/OGC/1.3/CRS84'}}
    providers:
      - {provider}
"""


def _parquet_provider(path: Path) -> str:
    return f"{{type: feature, name: Parquet, data: {{source: '{path}'}}, id_field: fid}}"


@contextmanager
def postgis_database(parquet: Path, layer: str, peer_python: Path, workdir: Path) -> Iterator[str]:
    """A throw-away PostgreSQL/PostGIS cluster on a loopback port holding the layer; yields the provider."""
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not binaries:
        raise SystemExit(
            "PostGIS backend needs Debian's postgresql-15-postgis-3 (apt-get install it as root)"
        )
    bindir, port = binaries[-1], free_port()
    data = workdir / "pgdata"
    data.mkdir()
    shutil.chown(workdir, "postgres")
    shutil.chown(data, "postgres")
    as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_postgres, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "bench"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *as_postgres,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            f"-p {port} -k {workdir}",
            "-l",
            str(workdir / "pg.log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        url = f"postgresql+psycopg2://bench@127.0.0.1:{port}/postgres"
        script = "\n".join(
            [
                "import sys, geopandas, sqlalchemy",
                "engine = sqlalchemy.create_engine(sys.argv[1])",
                "with engine.begin() as con:",
                "    con.exec_driver_sql('CREATE EXTENSION IF NOT EXISTS postgis')",
                "frame = geopandas.read_parquet(sys.argv[2]).drop(columns=['bbox'], errors='ignore')",
                "frame.to_postgis(sys.argv[3], engine, index=False)",
                "with engine.begin() as con:",
                "    con.exec_driver_sql(f'CREATE INDEX ON {sys.argv[3]} USING gist (geometry)')",
                "    con.exec_driver_sql(f'ALTER TABLE {sys.argv[3]} ADD PRIMARY KEY (fid)')",
            ]
        )
        subprocess.run([str(peer_python), "-c", script, url, str(parquet), layer], check=True)
        yield (
            f"{{type: feature, name: PostgreSQL, data: {{host: 127.0.0.1, port: {port}, dbname: postgres, "
            f"user: bench, password: '', search_path: [public]}}, id_field: fid, table: {layer}, "
            f"geom_field: geometry}}"
        )
    finally:
        subprocess.run(
            [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True
        )


def bench_pygeoapi(
    peer_python: Path, provider: str, layer: str, workdir: Path, concurrency: int, seconds: float
) -> Load:
    port = free_port()
    config = workdir / "pygeoapi.yml"
    openapi = workdir / "pygeoapi-openapi.yml"
    config.write_text(_PYGEOAPI_CONFIG.format(port=port, layer=layer, provider=provider))
    env = {**os.environ, "PYGEOAPI_CONFIG": str(config), "PYGEOAPI_OPENAPI": str(openapi)}
    pygeoapi = str(peer_python.parent / "pygeoapi")
    subprocess.run(
        [pygeoapi, "openapi", "generate", str(config), "--output-file", str(openapi)],
        env=env,
        check=True,
        capture_output=True,
    )
    command = [
        str(peer_python),
        "-m",
        "uvicorn",
        "pygeoapi.starlette_app:APP",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
    ]
    base = f"http://127.0.0.1:{port}"
    with running(command, f"{base}/collections/{layer}?f=json", env=env):
        return load(f"{base}/collections/{layer}/items?limit=100&f=json", concurrency, seconds)


def bench_civictwin(
    twin: Path, layer: str, concurrency: int, seconds: float, zooms: list[int], token: str | None
) -> tuple[Load, dict[str, object]]:
    port = free_port()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    command = [
        sys.executable,
        "-c",
        CIVICTWIN_CLI,
        "serve",
        str(twin),
        "--port",
        str(port),
        "--rate-limit",
        "1000000",
        "--burst",
        "1000000",
    ]
    base = f"http://127.0.0.1:{port}"
    with running(command, f"{base}/conformance"):
        tiles = tile_latencies(base, layer, zooms, headers)
        items = load(f"{base}/collections/{layer}/items?limit=100", concurrency, seconds, headers)
    return items, tiles


def _row(name: str, result: Load) -> str:
    return (
        f"| {name} | {result.rate:.1f} | {statistics.median(result.latencies_ms):.1f} | "
        f"{percentile(result.latencies_ms, 99):.1f} | {result.requests} | {result.errors} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "twin", nargs="?", type=Path, default=ROOT / "demo-twin", help="twin dir or store file"
    )
    parser.add_argument("--layer", default="buildings")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per server")
    parser.add_argument("--zooms", type=int, nargs="+", default=[14, 15, 16])
    parser.add_argument("--token", help="bearer token for civictwin when the layer is not public")
    parser.add_argument("--peer-backend", choices=["parquet", "postgis", "none"], default="parquet")
    parser.add_argument(
        "--setup-peer", action="store_true", help="install pygeoapi into benchmarks/.peer-venv"
    )
    args = parser.parse_args()

    if args.setup_peer:
        setup_peer(postgis=args.peer_backend == "postgis")
        print(f"pygeoapi installed in {PEER_VENV}")
        return
    from civictwin.api.app import resolve_store

    store_path, _ = resolve_store(args.twin)
    items, tiles = bench_civictwin(
        args.twin, args.layer, args.concurrency, args.duration, args.zooms, args.token
    )
    rows = [_row("civictwin", items)]
    peer: Load | None = None
    if args.peer_backend != "none":
        peer_python = PEER_VENV / "bin" / "python"
        if not peer_python.exists():
            raise SystemExit("no pygeoapi yet: run with --setup-peer first")
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            parquet = workdir / f"{args.layer}.parquet"
            export_layer(store_path, args.layer, parquet)
            if args.peer_backend == "parquet":
                peer = bench_pygeoapi(
                    peer_python,
                    _parquet_provider(parquet),
                    args.layer,
                    workdir,
                    args.concurrency,
                    args.duration,
                )
            else:
                with postgis_database(parquet, args.layer, peer_python, workdir) as provider:
                    peer = bench_pygeoapi(
                        peer_python, provider, args.layer, workdir, args.concurrency, args.duration
                    )
        rows.append(_row(f"pygeoapi ({args.peer_backend})", peer))

    print(
        f"\n### items?limit=100 on `{args.layer}`: {args.concurrency} concurrent clients, {args.duration:g} s each\n"
    )
    print("| server | req/s | p50 ms | p99 ms | requests | non-200 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    if peer is not None:
        print(f"\ncivictwin / pygeoapi throughput: **{items.rate / peer.rate:.2f}×**")
    print(
        f"\n### vector tiles of `{args.layer}` at z{','.join(map(str, args.zooms))}: {tiles['tiles']} tiles\n"
    )
    print_tile_passes(tiles, digits=2)


def print_tile_passes(tiles: dict[str, object], *, digits: int) -> None:
    """The cold and warm tile passes (``tiles["cold"]`` and ``tiles["warm"]``, latencies in ms) as a
    markdown table."""
    print("| pass | p50 ms | p99 ms | max ms | statuses |")
    print("| --- | ---: | ---: | ---: | --- |")
    for phase in ("cold", "warm"):
        times = tiles[phase]
        assert isinstance(times, list)
        p50, p99, worst = statistics.median(times), percentile(times, 99), max(times)
        statuses = tiles[f"{phase}_statuses"]
        print(f"| {phase} | {p50:.{digits}f} | {p99:.{digits}f} | {worst:.{digits}f} | {statuses} |")


if __name__ == "__main__":
    main()
