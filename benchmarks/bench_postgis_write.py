"""PostGIS bulk writes (issue 14): seconds per million rows of ``network_edges`` through the store.

Reproduce (the numbers recorded in BENCHMARKS.md under "PostGIS bulk writes"):

    .venv/bin/python benchmarks/bench_postgis_write.py --rows 1000000

Writes ``--rows`` synthetic rows with the network step's own column types (``EDGE_SCHEMA``: 17
columns, text, integers, floats, booleans and a 3-point line as WKB, the most common row of a
region build) into a fresh build of a twin, as an Arrow stream of 65,536-row batches made before the clock starts (how the
network step hands its spilled edges to the store), and reports the wall seconds of
``write_table`` (table, geometry, spatial index and row ids included) and of the whole build (the
schema switch too), per million rows, with the CPU seconds of this process and of the server
process serving its connection (read from ``/proc``: the server must run on this machine), which say
more than wall seconds on a shared machine. ``--dsn`` names an existing database with postgis (its twin
is replaced); by default a throw-away cluster is started as in ``bench_postgis_serving.py``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import shapely
from bench_postgis_serving import USER, postgis_cluster

from civictwin.build_network import EDGE_SCHEMA
from civictwin.store.opening import StoreLocation, build_store
from civictwin.store.postgis import PostGISStore

BATCH = 65_536
CRS = "EPSG:32635"


def edge_batch(start: int, count: int, rng: np.random.Generator) -> pa.RecordBatch:
    """``count`` synthetic edges numbered from ``start``: 3-point lines about 100 m long in Helsinki."""
    ids = np.arange(start, start + count)
    x = 385_000.0 + rng.uniform(0, 20_000, count)
    y = 6_672_000.0 + rng.uniform(0, 20_000, count)
    coords = np.stack([np.column_stack([x + 50 * k, y + 10 * k]) for k in range(3)], axis=1)
    lines = shapely.linestrings(coords)
    highways = np.array(["residential", "primary", "service", "footway"], dtype=object)
    columns = {
        "edge_id": pa.array([f"{i}_0" for i in ids]),
        "from_node": pa.array(ids * 2),
        "to_node": pa.array(ids * 2 + 1),
        "osm_id": pa.array(ids + 10_000_000),
        "name": pa.array([None if i % 3 else f"Katu {i % 997}" for i in ids], pa.string()),
        "highway": pa.array(highways[ids % 4]),
        "lanes": pa.array(np.where(ids % 5 == 0, 2, 1), mask=ids % 7 == 0),
        "speed_kmh": pa.array(rng.uniform(5, 80, count)),
        "maxspeed_kmh": pa.array(rng.uniform(5, 80, count), mask=ids % 2 == 0),
        "capacity_vph": pa.array(np.full(count, 900)),
        "capacity_class": pa.array(ids % 4),
        "length_m": pa.array(rng.uniform(1, 500, count)),
        "car": pa.array(ids % 4 != 3),
        "bus": pa.array(ids % 4 == 1),
        "bike": pa.array(ids % 2 == 0),
        "walk": pa.array(np.ones(count, bool)),
        "geometry": pa.array(shapely.to_wkb(lines), pa.binary()),
    }
    return pa.RecordBatch.from_arrays([columns[f.name] for f in EDGE_SCHEMA], schema=EDGE_SCHEMA)


def edges(rows: int) -> pa.Table:
    """``rows`` synthetic edges in :data:`BATCH`-row batches (made before the clock starts)."""
    rng = np.random.default_rng(14)
    batches = [edge_batch(s, min(BATCH, rows - s), rng) for s in range(0, rows, BATCH)]
    return pa.Table.from_batches(batches, schema=EDGE_SCHEMA)


@dataclass(frozen=True)
class Timing:
    """Seconds of one ``write_table`` (wall, this process's CPU, the server backend's CPU) and the build's."""

    write_s: float
    client_cpu_s: float
    server_cpu_s: float
    build_s: float


def backend_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a server process has used so far, from ``/proc`` (a local server)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(dsn: str, rows: int) -> Timing:
    """Time writing ``rows`` synthetic edges in a new build of the twin at ``dsn``."""
    table = edges(rows)
    started = time.perf_counter()
    with build_store(StoreLocation(kind="postgis", dsn=dsn), crs=CRS) as store:
        assert isinstance(store, PostGISStore)
        found = store.connection.execute("SELECT pg_backend_pid()").fetchone()
        backend = int(found[0]) if found else 0
        server_before, client_before = backend_cpu_s(backend), time.process_time()
        before = time.perf_counter()
        written = store.write_table(
            "network_edges", pa.RecordBatchReader.from_batches(EDGE_SCHEMA, table.to_batches())
        )
        write_s = time.perf_counter() - before
        client_s, server_s = time.process_time() - client_before, backend_cpu_s(backend) - server_before
    if written != rows:
        raise SystemExit(f"wrote {written} rows, not {rows}")
    return Timing(write_s, client_s, server_s, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dsn", help="a database with postgis (default: a throw-away cluster)")
    args = parser.parse_args()
    if args.dsn:
        timing = measure(args.dsn, args.rows)
    else:
        with tempfile.TemporaryDirectory() as folder, postgis_cluster(Path(folder)) as port:
            timing = measure(f"postgresql://{USER}@127.0.0.1:{port}/postgres", args.rows)
    per_million = 1e6 / args.rows
    print("| rows | write_table s (wall) | client CPU s | server CPU s | build s | wall s per million rows |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.rows:,} | {timing.write_s:.1f} | {timing.client_cpu_s:.1f} | {timing.server_cpu_s:.1f} "
        f"| {timing.build_s:.1f} | {timing.write_s * per_million:.1f} |"
    )


if __name__ == "__main__":
    main()
