"""Observation benchmarks: batch import, windowed aggregates, and SensorThings paging against a peer.

Data: ``--sensors`` datastreams of ``--hours`` hourly observations each (default 100 × 8,760, a year),
random values, in a twin of its own.

1. **Import.** The same rows appended (a) through ``ObservationStore.append`` (validation, duplicate
   detection, one durable transaction per 250,000 rows, as ``civictwin sensors import`` does) and
   (b) by SQLite alone: ``executemany`` of ready tuples into an identical table with the same
   pragmas and the same transactions, the engine's floor on this machine. Also (c) the whole import
   of the same rows from a long CSV file through ``civictwin.ingest`` (parsing, UTC conversion,
   quality records included).
2. **Aggregates.** Daily means of one datastream and of all of them over the year, in UTC and in
   Europe/Berlin local days, through ``ObservationStore.aggregate`` (median of repeated runs), and
   the same through the HTTP extension ``Datastreams/Aggregates``.
3. **Paging.** ``Datastreams(id)/Observations?$top=1000`` followed along ``@iot.nextLink`` through the
   year of one datastream, by N concurrent clients for D seconds, against ``civictwin serve`` (one
   uvicorn worker) and against django-ogc-sensorthings (PyPI, the Django ORM backend on Debian's
   PostgreSQL 15 started on a free loopback port, served by gunicorn with one worker and 4 threads),
   holding the same datastream. The peer lives in its own virtual environment
   (``benchmarks/.peer-sensorthings``), never in civictwin's dependencies.

    .venv/bin/python benchmarks/bench_sensors.py --setup-peer      # once (needs root for PostgreSQL)
    .venv/bin/python benchmarks/bench_sensors.py --sensors 100 --hours 8760 --concurrency 4 --duration 30

Prints markdown tables (results go into BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_api import CIVICTWIN_CLI, free_port, percentile, running

from civictwin.config import parse_config
from civictwin.ingest import CHUNK, import_source
from civictwin.store.duckdb import DuckDBStore
from civictwin.store.observations import (
    MS_PER_HOUR,
    AggregateQuery,
    DatasetSpec,
    DatastreamSpec,
    LocationSpec,
    ObservationBatch,
    ObservedPropertySpec,
    SensorSpec,
    ThingSpec,
    Unit,
    Window,
    observations_path,
    to_ms,
)
from civictwin.store.sqlite_observations import SQLiteObservationStore

ROOT = Path(__file__).resolve().parents[1]
PEER_VENV = ROOT / "benchmarks" / ".peer-sensorthings"
PEER_PACKAGES = ["django-ogc-sensorthings==1.2.0", "psycopg[binary]==3.3.9", "gunicorn==27.0.1"]
T0 = to_ms("2014-01-01T00:00:00Z")
PAGE = 1000


def spec(index: int) -> DatastreamSpec:
    key = f"s{index:03d}"
    return DatastreamSpec(
        key=f"air/{key}/no2",
        name=f"{key} NO2",
        dataset="air",
        thing=ThingSpec(f"air/{key}", key, LocationSpec(f"air/{key}", key, 7.0 + index / 1000, 50.9)),
        sensor=SensorSpec("air/analyser", "analyser"),
        observed_property=ObservedPropertySpec("air/no2", "NO2", "urn:no2"),
        unit=Unit("ug/m3", "microgram per cubic metre", "µg/m³"),
        valid_range=(0.0, 2000.0),
        interval_s=3600,
    )


def new_store(path: Path, sensors: int) -> tuple[SQLiteObservationStore, list[int]]:
    store = SQLiteObservationStore.open(path)
    store.ensure_dataset(DatasetSpec("air", "Air", "Bench", "Bench", "CC0-1.0", "public"))
    return store, [store.ensure_datastream(spec(i)) for i in range(sensors)]


def columns(ids: list[int], hours: int) -> dict[str, np.ndarray]:
    times = T0 + np.arange(hours, dtype=np.int64) * MS_PER_HOUR
    values = np.random.default_rng(7).gamma(3.0, 10.0, size=len(ids) * hours).round(1)
    return {
        "datastream_id": np.repeat(np.array(ids, dtype=np.int64), hours),
        "phenomenon_time": np.tile(times, len(ids)),
        "result": values,
    }


def bench_append(workdir: Path, sensors: int, hours: int, repeat: int) -> list[tuple[float, float]]:
    """Observations per second of wall time and of this process's CPU time, per run."""
    rates = []
    for run in range(repeat):
        store, ids = new_store(workdir / f"append{run}.sqlite", sensors)
        data = columns(ids, hours)
        batches = [
            ObservationBatch.of(**{k: v[i : i + CHUNK] for k, v in data.items()})
            for i in range(0, len(data["result"]), CHUNK)
        ]
        wall, cpu = time.perf_counter(), time.process_time()
        stored = sum(store.append(batch, origin="bench").stored for batch in batches)
        rates.append((stored / (time.perf_counter() - wall), stored / (time.process_time() - cpu)))
        assert stored == sensors * hours
        store.close()
    return rates


def bench_floor(workdir: Path, sensors: int, hours: int, repeat: int) -> list[tuple[float, float]]:
    """SQLite alone: the observations table and pragmas of the store, ready tuples, same transactions."""
    rates = []
    for run in range(repeat):
        store, ids = new_store(workdir / f"floor{run}.sqlite", sensors)
        store.close()
        data = columns(ids, hours)
        rows = list(zip(data["datastream_id"].tolist(), data["phenomenon_time"].tolist(), [None] * len(ids) * hours,
                        [None] * len(ids) * hours, data["result"].tolist(), [0] * len(ids) * hours,
                        [1] * len(ids) * hours, strict=True))  # fmt: skip
        con = sqlite3.connect(workdir / f"floor{run}.sqlite", isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(rows), CHUNK):
            con.execute("BEGIN IMMEDIATE")
            con.executemany("INSERT INTO observations VALUES (?, ?, ?, ?, ?, ?, ?)", rows[i : i + CHUNK])
            con.execute("COMMIT")
        rates.append((len(rows) / (time.perf_counter() - wall), len(rows) / (time.process_time() - cpu)))
        con.close()
    return rates


def bench_csv_import(workdir: Path, sensors: int, hours: int) -> tuple[float, float, float]:
    """The whole ``civictwin.ingest`` path from a long CSV: (observations/s, seconds, observations
    per CPU second)."""
    times = pd.to_datetime(T0 + np.arange(hours) * MS_PER_HOUR, unit="ms", utc=True).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    values = np.random.default_rng(7).gamma(3.0, 10.0, size=sensors * hours).round(1)
    csv = workdir / "year.csv"
    pd.DataFrame(
        {"station": np.repeat([f"s{i:03d}" for i in range(sensors)], hours), "property": "NO2",
         "time": np.tile(times, sensors), "value": values}
    ).to_csv(csv, index=False)  # fmt: skip
    config = parse_config(
        {
            "twin": {"name": "bench"},
            "area": {"bbox": [6, 50, 8, 52]},
            "sources": [{"name": "osm", "kind": "osm", "path": "x", "licence": "x", "publisher": "x", "steward": "x"}],
            "sensors": [
                {"name": "csv_air", "format": "csv", "path": str(csv), "licence": "CC0-1.0", "publisher": "bench",
                 "steward": "bench", "clip": False,
                 "csv": {"layout": "long", "time": "time", "thing": "station", "property": "property",
                         "value": "value", "interval_s": 3600},
                 "properties": {"NO2": {"name": "NO2", "unit": "ug/m3", "min": 0, "max": 2000}},
                 "things": {f"s{i:03d}": {"name": f"s{i:03d}", "lon": 7.0, "lat": 50.9} for i in range(sensors)}}
            ],
        },
        base_dir=workdir,
    )  # fmt: skip
    with SQLiteObservationStore.open(workdir / "csv.sqlite") as store:
        wall, cpu = time.perf_counter(), time.process_time()
        summary = import_source(config, config.sensors[0], store, area=None)
        seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    assert summary.stored == sensors * hours, summary
    return summary.stored / seconds, seconds, summary.stored / cpu_seconds


def timed(call: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median wall time and median CPU time of this process over ``runs`` calls, in ms (after one
    warm-up call). On a shared machine the CPU time is the steadier measure of the work itself."""
    call()
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def bench_aggregates(
    store: SQLiteObservationStore, ids: list[int], hours: int
) -> dict[str, tuple[float, float]]:
    end = T0 + hours * MS_PER_HOUR
    results = {}
    for zone in ("UTC", "Europe/Berlin"):
        one = AggregateQuery((ids[0],), Window.DAY, T0, end, ("mean",), zone)
        every = AggregateQuery(tuple(ids), Window.DAY, T0, end, ("mean",), zone)
        assert len(store.aggregate(one)) >= hours // 24
        results[f"one datastream, days in {zone}"] = timed(lambda q=one: store.aggregate(q), 21)  # type: ignore[misc]
        results[f"all {len(ids)} datastreams, days in {zone}"] = timed(lambda q=every: store.aggregate(q), 5)  # type: ignore[misc]
    return results


# ---------------------------------------------------------------- paging


async def _walk(first_url: str, concurrency: int, seconds: float) -> tuple[list[float], int, int, float]:
    """Clients each walking the datastream's pages along @iot.nextLink, again and again, until
    ``seconds`` have passed (a request under way then is finished and counted)."""
    latencies: list[float] = []
    errors = 0
    seen = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=600) as client:
        url: str | None = first_url
        while url:  # warm-up and check: one full walk, counting what comes back
            page = (await client.get(url)).json()
            seen += len(page["value"])
            url = page.get("@iot.nextLink")
        started = time.perf_counter()
        end = started + seconds

        async def worker() -> None:
            nonlocal errors
            next_url: str | None = first_url
            while time.perf_counter() < end:
                begun = time.perf_counter()
                try:
                    response = await client.get(next_url or first_url)
                except httpx.TimeoutException:
                    errors += 1
                    next_url = first_url
                    continue
                latencies.append((time.perf_counter() - begun) * 1000)
                if response.status_code != 200:
                    errors += 1
                    next_url = first_url
                    continue
                next_url = response.json().get("@iot.nextLink")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, errors, seen, elapsed


def walk(first_url: str, concurrency: int, seconds: float) -> tuple[list[float], int, int, float]:
    """Latencies (ms), failed requests, observations one full walk returned, and seconds of load."""
    return asyncio.run(_walk(first_url, concurrency, seconds))


def bench_civictwin_paging(twin: Path, concurrency: int, seconds: float, hours: int) -> dict[str, object]:
    port = free_port()
    command = [sys.executable, "-c", CIVICTWIN_CLI, "serve", str(twin), "--port", str(port),
               "--rate-limit", "1000000", "--burst", "1000000"]  # fmt: skip
    base = f"http://127.0.0.1:{port}/sensorthings/v1.1"
    with running(command, base):
        latencies, errors, seen, elapsed = walk(
            f"{base}/Datastreams(1)/Observations?$top={PAGE}", concurrency, seconds
        )
        started = time.perf_counter()
        every = httpx.get(f"{base}/Datastreams/Aggregates?window=day&statistics=mean", timeout=300)
        http_all = (time.perf_counter() - started) * 1000
        one, _ = timed(lambda: httpx.get(f"{base}/Datastreams(1)/Aggregates?window=day&statistics=mean"), 11)
    assert seen == hours, seen
    assert every.status_code == 200
    return {
        "latencies": latencies,
        "errors": errors,
        "seconds": elapsed,
        "http_all_ms": http_all,
        "http_one_ms": one,
        "walk": seen,
    }


_SETTINGS = """\
from uuid import UUID
SECRET_KEY = "bench"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "sensorthings.versions.v1_1",
                  "sensorthings.versions.v1_1.backends.django"]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.postgresql", "NAME": "postgres", "USER": "bench",
                          "HOST": "127.0.0.1", "PORT": {db_port}, "CONN_MAX_AGE": 600}}}}
ROOT_URLCONF = "benchurls"
SENSORTHINGS_V1_1_SERVICE_URL = "http://127.0.0.1:{port}/sensorthings"
SENSORTHINGS_V1_1_BACKEND_ADAPTER = "sensorthings.versions.v1_1.backends.django.adapter.DjangoBackendAdapter"
SENSORTHINGS_V1_1_ID_TYPE = UUID
SENSORTHINGS_V1_1_ID_DELIMITER = "'"
SENSORTHINGS_V1_1_MAX_TOP = 10000
"""
_URLS = 'from django.urls import include, path\nurlpatterns = [path("sensorthings/", include("sensorthings.versions.v1_1.urls"))]\n'
_WSGI = "from django.core.wsgi import get_wsgi_application\napplication = get_wsgi_application()\n"
_LOAD = """\
import sys, django
django.setup()
from datetime import datetime, timedelta, timezone
from sensorthings.versions.v1_1.backends.django.models import (Thing, Location, Sensor, ObservedProperty,
    Datastream, FeatureOfInterest, Observation)
hours = int(sys.argv[1])
values = [float(v) for v in sys.argv[2].split(",")]
thing = Thing.objects.create(name="s000", description="station s000")
Location.objects.create(name="s000", description="", location={"type": "Point", "coordinates": [7.0, 50.9]}).things.add(thing)
sensor = Sensor.objects.create(name="analyser", description="", encoding_type="text/html", metadata="")
prop = ObservedProperty.objects.create(name="NO2", definition="urn:no2", description="")
foi = FeatureOfInterest.objects.create(name="s000", description="", encoding_type="application/geo+json",
                                       feature={"type": "Point", "coordinates": [7.0, 50.9]})
ds = Datastream.objects.create(name="s000 NO2", description="", observation_type=Datastream.OM_MEASUREMENT,
    unit_of_measurement={"name": "microgram per cubic metre", "symbol": "µg/m³", "definition": "ucum:ug/m3"},
    thing=thing, sensor=sensor, observed_property=prop)
t0 = datetime(2014, 1, 1, tzinfo=timezone.utc)
Observation.objects.bulk_create([Observation(phenomenon_time_begin=t0 + timedelta(hours=i), result=values[i],
    result_time=t0 + timedelta(hours=i), datastream=ds, feature_of_interest=foi) for i in range(hours)], batch_size=5000)
print(ds.id)
"""


@contextmanager
def postgres(workdir: Path) -> Iterator[int]:
    """A throw-away PostgreSQL cluster (Debian's) on a free loopback port; yields the port."""
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not binaries or os.geteuid() != 0:
        raise SystemExit(
            "the peer needs Debian's PostgreSQL (postgresql-15) and root to run it as 'postgres'"
        )
    bindir, port = binaries[-1], free_port()
    data = workdir / "pgdata"
    data.mkdir()
    shutil.chown(workdir, "postgres")
    shutil.chown(data, "postgres")
    as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "bench"],
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-o", f"-p {port} -k {workdir}",
                    "-l", str(workdir / "pg.log"), "-w", "start"], check=True, capture_output=True)  # fmt: skip
    try:
        yield port
    finally:
        subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True)  # fmt: skip


def bench_peer_paging(values: np.ndarray, concurrency: int, seconds: float, hours: int) -> dict[str, object]:
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        raise SystemExit("no peer yet: run with --setup-peer first")
    with tempfile.TemporaryDirectory() as tmp, postgres(Path(tmp)) as db_port:
        project = Path(tmp) / "project"
        project.mkdir()
        port = free_port()
        (project / "benchsettings.py").write_text(_SETTINGS.format(db_port=db_port, port=port))
        (project / "benchurls.py").write_text(_URLS)
        (project / "benchwsgi.py").write_text(_WSGI)
        (project / "load.py").write_text(_LOAD)
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "benchsettings", "PYTHONPATH": str(project)}
        subprocess.run(
            [str(python), "-m", "django", "migrate"], env=env, cwd=project, check=True, capture_output=True
        )
        loaded = subprocess.run([str(python), "load.py", str(hours), ",".join(map(str, values.tolist()))], env=env,
                                cwd=project, check=True, capture_output=True, text=True)  # fmt: skip
        datastream = loaded.stdout.strip().splitlines()[-1]
        command = [str(PEER_VENV / "bin" / "gunicorn"), "--chdir", str(project), "--workers", "1", "--threads", "4",
                   "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "benchwsgi:application"]  # fmt: skip
        base = f"http://127.0.0.1:{port}/sensorthings/v1.1"
        with running(command, base, env=env):
            latencies, errors, seen, elapsed = walk(
                f"{base}/Datastreams('{datastream}')/Observations?$top={PAGE}", concurrency, seconds
            )
    return {"latencies": latencies, "errors": errors, "seconds": elapsed, "walk": seen}


def setup_peer() -> None:
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEER_PACKAGES], check=True)
    print(f"django-ogc-sensorthings installed in {PEER_VENV}")


def _rate(result: dict[str, object]) -> float:
    latencies = result["latencies"]
    assert isinstance(latencies, list)
    return len(latencies) / float(result["seconds"])  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sensors", type=int, default=100)
    parser.add_argument("--hours", type=int, default=8760)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of paging load per server")
    parser.add_argument("--no-peer", action="store_true", help="skip the django-ogc-sensorthings peer")
    parser.add_argument("--setup-peer", action="store_true", help="install the peer into its own venv")
    args = parser.parse_args()
    if args.setup_peer:
        setup_peer()
        return
    print(f"Load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        print_import(args, bench_append(workdir, args.sensors, args.hours, args.repeat),
                     bench_floor(workdir, args.sensors, args.hours, args.repeat),
                     bench_csv_import(workdir, args.sensors, args.hours))  # fmt: skip
        twin = workdir / "twin"
        twin.mkdir()
        DuckDBStore.create(twin / "bench.duckdb", crs="EPSG:32632").close()
        store, ids = new_store(observations_path(twin / "bench.duckdb"), args.sensors)
        data = columns(ids, args.hours)
        for i in range(0, len(data["result"]), CHUNK):
            store.append(
                ObservationBatch.of(**{k: v[i : i + CHUNK] for k, v in data.items()}), origin="bench"
            )
        aggregates = bench_aggregates(store, ids, args.hours)
        store.close()
        ours = bench_civictwin_paging(twin, args.concurrency, args.duration, args.hours)
        print_aggregates(args, aggregates, ours)
        peer = None if args.no_peer else bench_peer_paging(data["result"][: args.hours], args.concurrency,
                                                           args.duration, args.hours)  # fmt: skip
    print_paging(args, ours, peer)
    print(f"\nLoad average at the end: {os.getloadavg()[0]:.1f}")


def print_import(
    args: argparse.Namespace,
    append: list[tuple[float, float]],
    floor: list[tuple[float, float]],
    csv: tuple[float, float, float],
) -> None:
    rows = args.sensors * args.hours
    print(f"\n### Import: {args.sensors} datastreams × {args.hours:,} hourly observations = {rows:,} rows\n")
    print(
        f"| path | observations/s, wall (median of {args.repeat}) | observations per CPU second | wall runs |"
    )
    print("| --- | ---: | ---: | --- |")
    for name, runs in (
        ("`ObservationStore.append` (validation, duplicates, durable commits)", append),
        ("SQLite alone (`executemany`, same table, pragmas, transactions)", floor),
    ):
        walls, cpus = [r[0] for r in runs], [r[1] for r in runs]
        print(f"| {name} | {statistics.median(walls):,.0f} | {statistics.median(cpus):,.0f} | "
              f"{', '.join(f'{w:,.0f}' for w in walls)} |")  # fmt: skip
    print(f"| whole CSV import (`civictwin.ingest`: parse, UTC, checks, quality records) | {csv[0]:,.0f} | "
          f"{csv[2]:,.0f} | {csv[1]:.1f} s |")  # fmt: skip
    ratio = statistics.median(r[1] for r in append) / statistics.median(r[1] for r in floor)
    print(f"\nappend / SQLite alone, per CPU second: **{ratio:.2f}×**", flush=True)


def print_aggregates(
    args: argparse.Namespace, aggregates: dict[str, tuple[float, float]], ours: dict[str, object]
) -> None:
    print(f"\n### Daily-mean aggregates over {args.hours:,} hours ({args.sensors} datastreams)\n")
    print("| query | median ms, wall | median ms, CPU |")
    print("| --- | ---: | ---: |")
    for name, (wall, cpu) in aggregates.items():
        print(f"| `ObservationStore.aggregate`: {name} | {wall:.1f} | {cpu:.1f} |")
    print(f"| HTTP `Datastreams(1)/Aggregates?window=day` (median of 11) | {ours['http_one_ms']:.1f} | — |")
    print(
        f"| HTTP `Datastreams/Aggregates?window=day` (all, one request) | {ours['http_all_ms']:.1f} | — |",
        flush=True,
    )


def print_paging(args: argparse.Namespace, ours: dict[str, object], peer: dict[str, object] | None) -> None:
    print(f"\n### `Datastreams(id)/Observations?$top={PAGE}` along @iot.nextLink: {args.concurrency} clients, "
          f"{args.duration:g} s each\n")  # fmt: skip
    print("| server | req/s | p50 ms | p99 ms | requests | failed | observations in one full walk |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, result in (("civictwin", ours), ("django-ogc-sensorthings (PostgreSQL)", peer)):
        if result is None:
            continue
        latencies = result["latencies"]
        assert isinstance(latencies, list)
        middle = (
            f"{statistics.median(latencies):.0f} | {percentile(latencies, 99):.0f}" if latencies else "— | —"
        )
        print(f"| {name} | {_rate(result):.2f} | {middle} | {len(latencies)} | {result['errors']} | "
              f"{result['walk']:,} |")  # fmt: skip
    if peer is not None and _rate(peer) > 0:
        print(f"\ncivictwin / peer throughput: **{_rate(ours) / _rate(peer):.1f}×**")


if __name__ == "__main__":
    main()
