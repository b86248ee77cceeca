"""PostGIS serving benchmark: civictwin and pygeoapi on the same PostGIS table, 4 workers each, one run.

One throw-away PostgreSQL/PostGIS cluster (Debian's packages, loopback port, run as root) holds a
civictwin twin (``[twin] store = "postgresql://…"``); its buildings table is served by

- civictwin: ``civictwin serve --workers W`` (rate limit lifted, so the shared gate runs but never
  refuses), feature pages by ``ST_AsGeoJSON`` and tiles by ``ST_AsMVT``;
- pygeoapi: its PostgreSQL provider pointed at the *same* table (the twin's served schema,
  ``id_field`` ``_fid``, ``storage_crs`` the twin's CRS), under ``uvicorn --workers W``, from
  ``benchmarks/.peer-venv`` (``bench_api.py --setup-peer --peer-backend postgis`` installs it).

Both are driven by the same load generator as ``bench_api.py`` (asyncio + httpx, C concurrent clients
for D seconds) on ``items?limit=100``. Tiles: every tile of the layer's extent at the given zooms,
cold (first request) then warm, one at a time over one keep-alive connection (so one worker's cache).
Then, per server, the CPU one ``items?limit=100`` request costs (``cpu_per_request``: the server's
processes and the PostgreSQL backends serving it, read from ``/proc`` over requests made one after
another), which bounds throughput on a CPU-bound machine and which other jobs on a shared machine
disturb far less than they disturb requests per second.

The layer is a grid of N synthetic 20 m × 20 m buildings in central Helsinki (UTM 35N) with four
attributes (``--features``), or a layer of a built DuckDB twin (``--from-store``).

    .venv/bin/python benchmarks/bench_api.py --setup-peer --peer-backend postgis   # once
    .venv/bin/python benchmarks/bench_postgis_serving.py --workers 4 --concurrency 16 --duration 20
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import geopandas as gpd
import httpx
from bench_api import (
    _PYGEOAPI_CONFIG,
    CIVICTWIN_CLI,
    PEER_VENV,
    Load,
    free_port,
    load,
    percentile,
    print_tile_passes,
    running,
    tile_latencies,
)
from shapely.geometry import box

CRS = "EPSG:32635"
USER = "bench"
CPU_REQUESTS = 300
"""Sequential requests per server whose CPU cost is measured."""
TWIN_TOML = """[twin]
name = "PostGIS bench"
store = "postgresql://{user}@127.0.0.1:{port}/postgres"

[area]
bbox = [24.9, 60.1, 25.1, 60.3]

[[sources]]
name = "osm"
kind = "osm"
path = "none.osm.pbf"
licence = "ODbL-1.0"
publisher = "OSM"
steward = "GIS"
"""


def synthetic_buildings(count: int) -> gpd.GeoDataFrame:
    """``count`` squares of 20 m on a 40 m grid from (385000, 6672000) in UTM 35N, with attributes."""
    side = max(1, int(count**0.5))
    x0, y0 = 385_000.0, 6_672_000.0
    cells = [(i % side, i // side) for i in range(count)]
    return gpd.GeoDataFrame(
        {
            "osm_id": list(range(1, count + 1)),
            "use": [("residential", "commercial", "public")[i % 3] for i in range(count)],
            "height_m": [6.0 + (i % 10) * 3.0 for i in range(count)],
            "levels": [2 + i % 10 for i in range(count)],
        },
        geometry=[box(x0 + 40 * c, y0 + 40 * r, x0 + 40 * c + 20, y0 + 40 * r + 20) for c, r in cells],
        crs=CRS,
    )


def layer_frame(args: argparse.Namespace) -> gpd.GeoDataFrame:
    """The layer to serve: from a DuckDB twin's store, or synthetic."""
    if args.from_store is None:
        return synthetic_buildings(args.features)
    from civictwin.store.duckdb import DuckDBStore

    with DuckDBStore.open(args.from_store) as store:
        frame = store.read_frame(args.layer)
    return frame


@contextmanager
def postgis_cluster(workdir: Path) -> Iterator[int]:
    """A throw-away PostgreSQL/PostGIS cluster (trust logins on 127.0.0.1) for this run; its port."""
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not binaries or os.geteuid() != 0:
        raise SystemExit("needs Debian's postgresql-15-postgis-3 and root (the server runs as postgres)")
    bindir, port = binaries[-1], free_port()
    data = workdir / "pgdata"
    data.mkdir()
    shutil.chown(workdir, "postgres")
    shutil.chown(data, "postgres")
    as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_postgres, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", USER],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-o", f"-p {port} -k {workdir} -c max_connections=200",
         "-l", str(workdir / "pg.log"), "-w", "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        import psycopg

        with psycopg.connect(f"postgresql://{USER}@127.0.0.1:{port}/postgres", autocommit=True) as con:
            con.execute("CREATE EXTENSION postgis")
        yield port
    finally:
        subprocess.run(
            [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True
        )


def build_twin(twin: Path, port: int, layer: str, frame: gpd.GeoDataFrame) -> str:
    """The twin in PostGIS holding ``frame`` as a public layer; the schema it is served from."""
    from civictwin.store.opening import StoreLocation, build_store
    from civictwin.store.postgis import PostGISStore

    twin.mkdir()
    (twin / "twin.toml").write_text(TWIN_TOML.format(user=USER, port=port))
    location = StoreLocation(kind="postgis", dsn=f"postgresql://{USER}@127.0.0.1:{port}/postgres")
    with build_store(location, crs=str(frame.crs)) as store:
        store.write_table(layer, frame)
        store.put_record("catalog", layer, {"access": "public"})
    with PostGISStore.open(str(location.dsn)) as served:
        return served.schema


def bench_civictwin(
    twin: Path, layer: str, workers: int, concurrency: int, seconds: float, zooms: list[int], dsn: str
) -> tuple[Load, dict[str, object]]:
    port = free_port()
    command = [sys.executable, "-c", CIVICTWIN_CLI, "serve", str(twin), "--port", str(port),
               "--workers", str(workers), "--rate-limit", "1000000", "--burst", "1000000"]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with running(command, f"{base}/conformance") as server:
        time.sleep(5 + workers)  # let every worker start before the load (a worker starts in seconds)
        first_page(f"{base}/collections/{layer}/items?limit=100")
        tiles = tile_latencies(base, layer, zooms, {})
        items = load(f"{base}/collections/{layer}/items?limit=100", concurrency, seconds, {})
        tiles["cpu"] = cpu_per_request(f"{base}/collections/{layer}/items?limit=100", server.pid, dsn)
    return items, tiles


def bench_pygeoapi(
    workdir: Path,
    port: int,
    schema: str,
    layer: str,
    crs: str,
    workers: int,
    concurrency: int,
    seconds: float,
) -> tuple[Load, tuple[float, float]]:
    peer_python = PEER_VENV / "bin" / "python"
    if not peer_python.exists():
        raise SystemExit("no pygeoapi yet: run bench_api.py --setup-peer --peer-backend postgis first")
    epsg = crs.split(":")[1]
    provider = (
        f"{{type: feature, name: PostgreSQL, data: {{host: 127.0.0.1, port: {port}, dbname: postgres, "
        f"user: {USER}, password: '', search_path: [{schema}]}}, id_field: _fid, table: {layer}, "
        f"geom_field: geometry, storage_crs: 'http://www.opengis.net/def/crs/EPSG/0/{epsg}'}}"
    )
    server_port = free_port()
    config, openapi = workdir / "pygeoapi.yml", workdir / "pygeoapi-openapi.yml"
    config.write_text(_PYGEOAPI_CONFIG.format(port=server_port, layer=layer, provider=provider))
    env = {**os.environ, "PYGEOAPI_CONFIG": str(config), "PYGEOAPI_OPENAPI": str(openapi)}
    subprocess.run(
        [str(peer_python.parent / "pygeoapi"), "openapi", "generate", str(config), "--output-file", str(openapi)],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    command = [str(peer_python), "-m", "uvicorn", "pygeoapi.starlette_app:APP", "--port", str(server_port),
               "--workers", str(workers), "--log-level", "warning"]  # fmt: skip
    base = f"http://127.0.0.1:{server_port}"
    url = f"{base}/collections/{layer}/items?limit=100&f=json"
    with running(command, f"{base}/collections/{layer}?f=json", env=env) as server:
        time.sleep(5 + workers)
        first_page(url)
        dsn = f"postgresql://{USER}@127.0.0.1:{port}/postgres"
        return load(url, concurrency, seconds, {}), cpu_per_request(url, server.pid, dsn)


def _cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes ``pids`` have used so far (those still running)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _process_tree(root: int) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_per_request(url: str, server: int, dsn: str, requests: int = CPU_REQUESTS) -> tuple[float, float]:
    """CPU milliseconds per request of ``url``: the server's processes, the database's backends.

    ``requests`` requests one after another on one keep-alive connection (so one worker), after
    20 to warm it; CPU read from ``/proc`` for the server's process tree and for every backend
    connected to the database then (the server's own, held between requests). CPU per request is what
    bounds throughput on a busy machine, and a shared machine's load disturbs it far less than wall time.
    """
    import psycopg

    with httpx.Client(timeout=60) as client:
        for _ in range(20):
            client.get(url).raise_for_status()
        with psycopg.connect(dsn) as con:
            rows = con.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        backends, processes = [int(r[0]) for r in rows], _process_tree(server)
        server_before, database_before = _cpu_s(processes), _cpu_s(backends)
        for _ in range(requests):
            client.get(url)
        server_ms = (_cpu_s(processes) - server_before) * 1000 / requests
        return server_ms, (_cpu_s(backends) - database_before) * 1000 / requests


def first_page(url: str) -> None:
    """Check a server pages the table: 100 features, ids 0..99 (the table's ``_fid``)."""
    features = httpx.get(url, timeout=60).json()["features"]
    ids = sorted(int(f["id"]) for f in features)
    if ids != list(range(100)):
        raise SystemExit(f"{url} did not answer the first 100 features (ids {ids[:5]}…)")


def _row(name: str, result: Load) -> str:
    return (
        f"| {name} | {result.rate:.1f} | {statistics.median(result.latencies_ms):.1f} | "
        f"{percentile(result.latencies_ms, 99):.1f} | {result.requests} | {result.errors} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--features", type=int, default=10_000, help="synthetic buildings (default 10,000)")
    parser.add_argument("--from-store", type=Path, help="a DuckDB twin store to take the layer from")
    parser.add_argument("--layer", default="buildings")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per server")
    parser.add_argument("--zooms", type=int, nargs="+", default=[14, 15, 16])
    args = parser.parse_args()

    frame = layer_frame(args)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with postgis_cluster(workdir) as port:
            schema = build_twin(workdir / "twin", port, args.layer, frame)
            dsn = f"postgresql://{USER}@127.0.0.1:{port}/postgres"
            items, tiles = bench_civictwin(
                workdir / "twin", args.layer, args.workers, args.concurrency, args.duration, args.zooms, dsn
            )
            peer, peer_cpu = bench_pygeoapi(
                workdir,
                port,
                schema,
                args.layer,
                str(frame.crs),
                args.workers,
                args.concurrency,
                args.duration,
            )
    print(
        f"\n### items?limit=100 on `{args.layer}` ({len(frame)} features) from one PostGIS table: "
        f"{args.workers} workers each, {args.concurrency} concurrent clients, {args.duration:g} s each\n"
    )
    print("| server | req/s | p50 ms | p99 ms | requests | non-200 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print(_row(f"civictwin ({args.workers} workers)", items))
    print(_row(f"pygeoapi PostgreSQL provider ({args.workers} workers)", peer))
    print(f"\ncivictwin / pygeoapi throughput: **{items.rate / peer.rate:.2f}×**")
    ours = cast(tuple[float, float], tiles.pop("cpu"))
    print(f"\n### CPU per items?limit=100 request: {CPU_REQUESTS} in a row on one connection\n")
    print("| server | server processes ms | PostgreSQL ms | total ms |")
    print("| --- | ---: | ---: | ---: |")
    for name, (server_ms, database_ms) in (("civictwin", ours), ("pygeoapi PostgreSQL provider", peer_cpu)):
        print(f"| {name} | {server_ms:.2f} | {database_ms:.2f} | {server_ms + database_ms:.2f} |")
    print(f"\npygeoapi / civictwin CPU per request: **{sum(peer_cpu) / sum(ours):.1f}×**")
    print(f"\n### vector tiles (ST_AsMVT) at z{','.join(map(str, args.zooms))}: {tiles['tiles']} tiles\n")
    print_tile_passes(tiles, digits=1)


if __name__ == "__main__":
    main()
