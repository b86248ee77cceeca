"""Observation appends on both backends (issue 14): SQLite beside a DuckDB twin, and a PostGIS twin's
schema ``civictwin_observations``, the same rows through ``ObservationStore.append``.

Data: ``--sensors`` datastreams of ``--hours`` hourly observations (default 100 × 8,760 = 876,000
rows, as ``bench_sensors.py``), appended in batches of ``civictwin.ingest.CHUNK`` rows (one
transaction each, durable when it returns). PostgreSQL runs in a throw-away cluster with Debian's
defaults (``fsync`` and ``synchronous_commit`` on), over TCP on 127.0.0.1. Two PostgreSQL inserts are
timed besides the store's (a binary ``COPY`` into a staging table, then one ``INSERT ... SELECT``):
one statement over the batch's columns as arrays (``unnest``), and psycopg's ``executemany``
(pipelined) of the same rows; the store uses neither.

    .venv/bin/python benchmarks/bench_observation_backends.py --sensors 100 --hours 8760 --repeat 3

Prints a markdown table (results go into BENCHMARKS.md). Needs root (the server runs as postgres).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_postgis_serving import USER, postgis_cluster
from bench_sensors import columns, spec

from civictwin.ingest import CHUNK
from civictwin.store.observations import DatasetSpec, ObservationBatch
from civictwin.store.postgis_observations import PostGISObservationStore
from civictwin.store.sidecar import SQLConnection
from civictwin.store.sql_observations import SQLObservationStore
from civictwin.store.sqlite_observations import SQLiteObservationStore

_UNNEST = (
    "INSERT INTO observations SELECT d, t, NULLIF(e, -1), NULLIF(r, -1), v, q, i FROM unnest("
    "?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[], ?::float8[], ?::smallint[], ?::bigint[]) "
    "AS u(d, t, e, r, v, q, i) ON CONFLICT DO NOTHING"
)
_EXECUTEMANY = (
    "INSERT INTO observations VALUES (?, ?, NULLIF(?, -1), NULLIF(?, -1), ?, ?, ?) ON CONFLICT DO NOTHING"
)


class ExecutemanyStore(PostGISObservationStore):
    """The PostGIS store inserting row by row through psycopg's ``executemany`` (for comparison only)."""

    def _insert_observations(self, con: SQLConnection, rows: Sequence[list[Any]]) -> int:
        ids, times, ends, result_times, results, quality, _ = rows
        nulls = [None if value != value else value for value in results]
        values = list(zip(ids, times, ends, result_times, nulls, quality, repeat(rows[6][0]), strict=False))
        return con.executemany(_EXECUTEMANY, values).rowcount


class ArrayStore(PostGISObservationStore):
    """The PostGIS store inserting each batch in one statement over its columns as arrays
    (``unnest``), for comparison only."""

    def _insert_observations(self, con: SQLConnection, rows: Sequence[list[Any]]) -> int:
        ids, times, ends, result_times, results, quality, ingest = rows
        nulls = [None if value != value else value for value in results]
        return con.execute(_UNNEST, [ids, times, ends, result_times, nulls, quality, ingest]).rowcount


def run(opened: Callable[[int], SQLObservationStore], sensors: int, hours: int, repeats: int) -> list[float]:
    """Observations stored per second of wall time, per run, each into a fresh store."""
    rates = []
    for attempt in range(repeats):
        store = opened(attempt)
        store.ensure_dataset(DatasetSpec("air", "Air", "Bench", "Bench", "CC0-1.0", "public"))
        ids = [store.ensure_datastream(spec(i)) for i in range(sensors)]
        data = columns(ids, hours)
        batches = [
            ObservationBatch.of(**{k: v[i : i + CHUNK] for k, v in data.items()})
            for i in range(0, len(data["result"]), CHUNK)
        ]
        wall = time.perf_counter()
        stored = sum(store.append(batch, origin="bench").stored for batch in batches)
        rates.append(stored / (time.perf_counter() - wall))
        assert stored == sensors * hours, stored
        store.close()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sensors", type=int, default=100)
    parser.add_argument("--hours", type=int, default=8760)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"Load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory() as folder, postgis_cluster(Path(folder)) as port:
        work = Path(folder)

        def database(attempt: int, label: str) -> str:
            name = f"{label}{attempt}"
            with psycopg.connect(f"postgresql://{USER}@127.0.0.1:{port}/postgres", autocommit=True) as con:
                con.execute(f"CREATE DATABASE {name}".encode())
            return f"postgresql://{USER}@127.0.0.1:{port}/{name}"

        stores: dict[str, Callable[[int], SQLObservationStore]] = {
            "SQLite (`<store>.observations.sqlite`, WAL, `synchronous=FULL`)": lambda a: (
                SQLiteObservationStore.open(work / f"s{a}.sqlite")
            ),
            "PostGIS (`civictwin_observations`: binary `COPY` into a staging table, one `INSERT ... SELECT`)": (
                lambda a: PostGISObservationStore.open(database(a, "c"))
            ),
            "PostGIS, one `unnest` statement over arrays instead (not used)": lambda a: ArrayStore.open(
                database(a, "u")
            ),
            "PostGIS, psycopg `executemany` instead (not used)": lambda a: ExecutemanyStore.open(
                database(a, "m")
            ),
        }
        results = {
            name: run(opened, args.sensors, args.hours, args.repeat) for name, opened in stores.items()
        }
    rows = args.sensors * args.hours
    print(f"\n{args.sensors} datastreams × {args.hours:,} hours = {rows:,} rows, batches of {CHUNK:,}\n")
    print(f"| backend | appends/s, wall (median of {args.repeat}) | runs |")
    print("| --- | ---: | --- |")
    for name, rates in results.items():
        print(f"| {name} | {statistics.median(rates):,.0f} | {', '.join(f'{r:,.0f}' for r in rates)} |")
    print(f"\nLoad average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
