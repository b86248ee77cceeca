"""PostGIS serving benchmark: civictwin and pygeoapi on the same PostGIS table, 4 workers each, one run.

One throw-away PostgreSQL/PostGIS cluster (Debian's packages, loopback port, run as root) holds a
civictwin twin (``[twin] store = "postgresql://…"``); its buildings table is served by

- civictwin: ``civictwin serve --workers W`` (rate limit lifted, so the shared gate runs but never
  refuses), feature pages by ``ST_AsGeoJSON`` and tiles by ``ST_AsMVT``;
- pygeoapi: its PostgreSQL provider pointed at the *same* table (the twin's served schema,
  ``id_field`` ``_fid``, ``storage_crs`` the twin's CRS), under ``uvicorn --workers W``, from
  ``benchmarks/.peer-venv`` (``bench_api.py --setup-peer --peer-backend postgis`` installs it).

Both are loaded by the same client, Debian's ``wrk`` (C, epoll, one thread: far cheaper per request
than either server, so the client's cost does not cap the faster server), C connections for D
seconds, in three request mixes of ``items?limit=100``, each server getting the same list of paths:

- ``first``: the first page again and again (civictwin answers it from its feature cache after the
  first request in each worker; pygeoapi has no cache);
- ``pages``: every page of the table (offsets 0, 100, …) once per round, in a new random order each
  round; in the CPU measurement, made first on a fresh server, each page but the first (read to warm
  the connection) is read for the first time (civictwin's uncached cost of a page); in the load run
  civictwin's workers have them cached after their first round;
- ``bbox``: a random box a tenth of the layer's extent wide (filtered pages: civictwin asks the
  database for the page's ids every time and takes the features from its cache once read; its CPU is
  measured after the ``pages`` mix has read every feature in that worker, so it is the cost of a
  filtered page whose features are cached).

Tiles: every tile of the layer's extent at the given zooms, cold (first request) then warm, one at a
time over one keep-alive connection (so one worker's cache). Per server and mix, before the load, the
CPU one request costs (``cpu_per_request``: the server's processes and the PostgreSQL backends serving it,
read from ``/proc`` over requests made one after another), which bounds throughput on a CPU-bound
machine and which other jobs on a shared machine disturb far less than they disturb requests per second.

The layer is a grid of N synthetic 20 m × 20 m buildings in central Helsinki (UTM 35N) with four
attributes (``--features``), or a layer of a built DuckDB twin (``--from-store``).

    .venv/bin/python benchmarks/bench_api.py --setup-peer --peer-backend postgis   # once (and wrk)
    .venv/bin/python benchmarks/bench_postgis_serving.py --workers 4 --concurrency 16 --duration 20
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import httpx
from bench_api import (
    _PYGEOAPI_CONFIG,
    CIVICTWIN_CLI,
    PEER_VENV,
    free_port,
    print_tile_passes,
    running,
    tile_latencies,
)
from shapely.geometry import box

CRS = "EPSG:32635"
USER = "bench"
CPU_REQUESTS = 300
"""Sequential requests per server and mix whose CPU cost is measured."""
PAGE = 100
"""Features per page asked (``limit``)."""
MIXES = {
    "first": "the first page, again and again",
    "pages": "every page once per round, shuffled",
    "bbox": "a random bbox (1/10 of the extent)",
}
"""The request mixes, by name."""
PATHS_PER_MIX = 20_000
"""Paths in each mix's list (wrk cycles through it; the CPU measurement takes the first ones)."""
WRK_SCRIPT = """\
local paths, i = {}, 0
init = function(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
end
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\\n", summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""
"""wrk's Lua script: cycle through the paths in the file named by its first argument; print a summary."""
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


@dataclass
class Load:
    """One server's load run of one mix, as wrk measured it."""

    requests: int
    seconds: float
    failed: int
    """Answers other than 2xx/3xx, and requests that failed at the socket."""
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def request_paths(mix: str, layer: str, rows: int, extent: list[float], *, suffix: str) -> list[str]:
    """The paths of ``mix``, the same for both servers (a seeded draw); ``suffix`` ends each query."""
    draw = random.Random(14)
    base = f"/collections/{layer}/items?limit={PAGE}"
    if mix == "first":
        return [base + suffix]
    if mix == "pages":
        pages, order = max(1, rows // PAGE), []
        while len(order) < PATHS_PER_MIX:  # every page once per round, each round shuffled anew
            order.extend(draw.sample(range(pages), pages))
        return [f"{base}&offset={k * PAGE}{suffix}" for k in order[:PATHS_PER_MIX]]
    west, south, east, north = extent
    width, height = (east - west) / 10, (north - south) / 10
    paths = []
    for _ in range(PATHS_PER_MIX):
        x, y = west + draw.random() * (east - west - width), south + draw.random() * (north - south - height)
        paths.append(f"{base}&bbox={x:.6f},{y:.6f},{x + width:.6f},{y + height:.6f}{suffix}")
    return paths


def wrk_load(base: str, paths: list[str], connections: int, seconds: float, workdir: Path) -> Load:
    """``connections`` keep-alive connections from one wrk thread asking ``paths`` in turn for ``seconds``."""
    script, listing = workdir / "mix.lua", workdir / "paths.txt"
    script.write_text(WRK_SCRIPT)
    listing.write_text("\n".join(paths) + "\n")
    command = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", "30s",
               "-s", str(script), base, "--", str(listing)]  # fmt: skip
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    line = next((x for x in output.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no summary:\n{output[-2000:]}")
    requests, duration_us, status, socket_errors, p50_us, p99_us = map(int, line.split()[1:])
    return Load(requests, duration_us / 1e6, status + socket_errors, p50_us / 1000, p99_us / 1000)


@dataclass
class Served:
    """What one server did: per mix, its load run and its CPU per request (server ms, PostgreSQL ms)."""

    loads: dict[str, Load]
    cpu: dict[str, tuple[float, float]]


def measure(
    base: str, server: int, dsn: str, paths: dict[str, list[str]], args: argparse.Namespace, workdir: Path
) -> Served:
    """Every mix against the server at ``base`` (process ``server``): CPU per request first, while the
    server is fresh (so each page of the ``pages`` mix is read for the first time: uncached), then load."""
    # the first page: it opens each server's database connections (so that their CPU is counted) and
    # leaves only 1 of the pages mix's 100 pages cached
    warm = [base + paths["first"][0]] * 20
    cpu = {
        mix: cpu_per_request(
            [base + p for p in listed], warm, server, dsn, requests=_cpu_requests(mix, listed)
        )
        for mix, listed in paths.items()
    }
    loads = {
        mix: wrk_load(base, listed, args.concurrency, args.duration, workdir) for mix, listed in paths.items()
    }
    return Served(loads, cpu)


def _cpu_requests(mix: str, paths: list[str]) -> int:
    """Requests whose CPU is measured: :data:`CPU_REQUESTS`, but each page at most once in ``pages``."""
    return min(CPU_REQUESTS, len(set(paths))) if mix == "pages" else CPU_REQUESTS


def bench_civictwin(
    twin: Path, layer: str, paths: dict[str, list[str]], dsn: str, args: argparse.Namespace
) -> tuple[Served, dict[str, object]]:
    port = free_port()
    command = [sys.executable, "-c", CIVICTWIN_CLI, "serve", str(twin), "--port", str(port),
               "--workers", str(args.workers), "--rate-limit", "1000000", "--burst", "1000000"]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with running(command, f"{base}/conformance") as server:
        time.sleep(5 + args.workers)  # let every worker start before the load (a worker starts in seconds)
        first_page(f"{base}/collections/{layer}/items?limit={PAGE}")
        tiles = tile_latencies(base, layer, args.zooms, {})
        return measure(base, server.pid, dsn, paths, args, twin.parent), tiles


def bench_pygeoapi(
    workdir: Path, port: int, schema: str, crs: str, paths: dict[str, list[str]], args: argparse.Namespace
) -> Served:
    peer_python = PEER_VENV / "bin" / "python"
    if not peer_python.exists():
        raise SystemExit("no pygeoapi yet: run bench_api.py --setup-peer --peer-backend postgis first")
    epsg = crs.split(":")[1]
    provider = (
        f"{{type: feature, name: PostgreSQL, data: {{host: 127.0.0.1, port: {port}, dbname: postgres, "
        f"user: {USER}, password: '', search_path: [{schema}]}}, id_field: _fid, table: {args.layer}, "
        f"geom_field: geometry, storage_crs: 'http://www.opengis.net/def/crs/EPSG/0/{epsg}'}}"
    )
    server_port = free_port()
    config, openapi = workdir / "pygeoapi.yml", workdir / "pygeoapi-openapi.yml"
    config.write_text(_PYGEOAPI_CONFIG.format(port=server_port, layer=args.layer, provider=provider))
    env = {**os.environ, "PYGEOAPI_CONFIG": str(config), "PYGEOAPI_OPENAPI": str(openapi)}
    subprocess.run(
        [str(peer_python.parent / "pygeoapi"), "openapi", "generate", str(config), "--output-file", str(openapi)],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    command = [str(peer_python), "-m", "uvicorn", "pygeoapi.starlette_app:APP", "--port", str(server_port),
               "--workers", str(args.workers), "--log-level", "warning"]  # fmt: skip
    base = f"http://127.0.0.1:{server_port}"
    with running(command, f"{base}/collections/{args.layer}?f=json", env=env) as server:
        time.sleep(5 + args.workers)
        first_page(f"{base}/collections/{args.layer}/items?limit={PAGE}&f=json")
        dsn = f"postgresql://{USER}@127.0.0.1:{port}/postgres"
        return measure(base, server.pid, dsn, paths, args, workdir)


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


def cpu_per_request(
    urls: list[str], warm: list[str], server: int, dsn: str, *, requests: int
) -> tuple[float, float]:
    """CPU milliseconds per request of ``urls`` (the first ``requests``): the server's processes, the database's.

    One request after another on one keep-alive connection (so one worker), after ``warm`` to warm
    it; CPU read from ``/proc`` for the
    server's process tree and for every backend connected to the database then (the server's own,
    held between requests). CPU per request is what bounds throughput on a busy machine, and a
    shared machine's load disturbs it far less than wall time.
    """
    import psycopg

    measured = [urls[i % len(urls)] for i in range(requests)]
    with httpx.Client(timeout=60) as client:
        for url in warm:
            client.get(url).raise_for_status()
        with psycopg.connect(dsn) as con:
            rows = con.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        backends, processes = [int(r[0]) for r in rows], _process_tree(server)
        server_before, database_before = _cpu_s(processes), _cpu_s(backends)
        for url in measured:
            client.get(url)
        server_ms = (_cpu_s(processes) - server_before) * 1000 / requests
        return server_ms, (_cpu_s(backends) - database_before) * 1000 / requests


def first_page(url: str) -> None:
    """Check a server pages the table: 100 features, ids 0..99 (the table's ``_fid``)."""
    features = httpx.get(url, timeout=60).json()["features"]
    ids = sorted(int(f["id"]) for f in features)
    if ids != list(range(PAGE)):
        raise SystemExit(f"{url} did not answer the first {PAGE} features (ids {ids[:5]}…)")


def extent_wgs84(frame: gpd.GeoDataFrame) -> list[float]:
    """The layer's bounds in WGS84 longitude/latitude."""
    return [float(v) for v in frame.to_crs("EPSG:4326").total_bounds]


def _ratio(numerator: float, denominator: float) -> str:
    """``numerator / denominator`` in bold, or "n/a" when the denominator is zero (no request answered)."""
    return f"**{numerator / denominator:.2f}×**" if denominator > 0 else "n/a"


def report(layer: str, rows: int, ours: Served, peer: Served, args: argparse.Namespace) -> None:
    """The load runs and CPU per request of both servers as markdown tables."""
    print(
        f"\n### items?limit={PAGE} on `{layer}` ({rows} features) from one PostGIS table: {args.workers} workers "
        f"each, wrk with {args.concurrency} connections, {args.duration:g} s per server and mix\n"
    )
    print("| mix | server | req/s | p50 ms | p99 ms | requests | failed | civictwin / pygeoapi |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for mix, what in MIXES.items():
        for name, served in (("civictwin", ours), ("pygeoapi", peer)):
            run = served.loads[mix]
            ratio = _ratio(run.requests, peer.loads[mix].requests * run.seconds / peer.loads[mix].seconds)
            ratio = ratio if served is ours else ""
            print(
                f"| {mix}: {what} | {name} | {run.rate:.1f} | {run.p50_ms:.1f} | {run.p99_ms:.1f} | "
                f"{run.requests} | {run.failed} | {ratio} |"
            )
    print(
        f"\n### CPU per request: up to {CPU_REQUESTS} in a row on one connection to a fresh server, per mix "
        f"(`pages`: each of the {max(1, rows // PAGE)} pages once, so none is cached)\n"
    )
    print("| mix | server | server processes ms | PostgreSQL ms | total ms | pygeoapi / civictwin |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for mix in MIXES:
        for name, served in (("civictwin", ours), ("pygeoapi", peer)):
            server_ms, database_ms = served.cpu[mix]
            ratio = _ratio(sum(peer.cpu[mix]), sum(ours.cpu[mix])) if served is ours else ""
            print(
                f"| {mix} | {name} | {server_ms:.2f} | {database_ms:.2f} | {server_ms + database_ms:.2f} | {ratio} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--features", type=int, default=10_000, help="synthetic buildings (default 10,000)")
    parser.add_argument("--from-store", type=Path, help="a DuckDB twin store to take the layer from")
    parser.add_argument("--layer", default="buildings")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16, help="wrk's connections")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per server and mix")
    parser.add_argument("--zooms", type=int, nargs="+", default=[14, 15, 16])
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("no wrk: run bench_api.py --setup-peer --peer-backend postgis first (installs it)")

    frame = layer_frame(args)
    extent = extent_wgs84(frame)
    ours_paths = {mix: request_paths(mix, args.layer, len(frame), extent, suffix="") for mix in MIXES}
    peer_paths = {mix: request_paths(mix, args.layer, len(frame), extent, suffix="&f=json") for mix in MIXES}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with postgis_cluster(workdir) as port:
            schema = build_twin(workdir / "twin", port, args.layer, frame)
            dsn = f"postgresql://{USER}@127.0.0.1:{port}/postgres"
            ours, tiles = bench_civictwin(workdir / "twin", args.layer, ours_paths, dsn, args)
            peer = bench_pygeoapi(workdir, port, schema, str(frame.crs), peer_paths, args)
    report(args.layer, len(frame), ours, peer, args)
    print(f"\n### vector tiles (ST_AsMVT) at z{','.join(map(str, args.zooms))}: {tiles['tiles']} tiles\n")
    print_tile_passes(tiles, digits=1)


if __name__ == "__main__":
    main()
