"""Where a twin build's time and memory go: the build's steps timed, each top-level step's peak RSS.

Run in a fresh process (``bench_build.py`` does): wraps the build's step functions in place, runs
``build_twin`` on the given ``twin.toml`` and prints one JSON line with the whole build's seconds and
peak MB and, per step, its seconds (inclusive of the steps inside it, summed over calls) and, for the
outermost steps, the process's peak RSS while it ran (Linux: ``/proc/self/clear_refs`` resets the
peak before each), and its CPU seconds (all threads: DuckDB's too), which a machine shared with other
work disturbs far less than wall time. Nested steps' names start with spaces. A step run on a
worker thread (the network's split, beside the source records, buildings and zones) gets its own thread's CPU
seconds and no peak; the main thread's steps it overlaps include its CPU seconds in theirs, and say
how many (``workers_cpu_by_step``: on the 8×8 extract about half of the zones step's). With
``CIVICTWIN_SERVER_PID`` naming a local PostgreSQL's postmaster, each outermost step also gets the
server's CPU seconds (its processes' user + system time, those that exited included). The PostGIS
writes are also timed table by table ("PostGIS write <table>"; on the mirror's worker thread, with
that thread's CPU seconds), and so are the partitioned network's passes, the row counts through the
server and the swap of the served schema.

    [CIVICTWIN_SERVER_PID=PID] .venv/bin/python benchmarks/build_steps.py TWIN_DIR
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


def _peak_mb() -> float:
    """The process's peak RSS (MB) since the last reset (VmHWM), or since it started."""
    for line in _STATUS.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _server_cpu_seconds() -> float:
    """The CPU seconds of the PostgreSQL server named by ``CIVICTWIN_SERVER_PID`` (0 without one): the
    postmaster's own and its reaped children's, plus every live child's (``/proc/PID/stat``)."""
    postmaster = os.environ.get("CIVICTWIN_SERVER_PID")
    if not postmaster:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid, parent = stat.parent.name, fields[1]
            if pid == postmaster:
                total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
            elif parent == postmaster:
                total += int(fields[11]) + int(fields[12])
    return total / ticks


def _reset_peak() -> None:
    with contextlib.suppress(OSError):  # not Linux, or not allowed: peaks are then since the start
        _CLEAR.write_text("5")


class Steps:
    """Inclusive seconds per named step, and peak MB of the outermost ones."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self.server_cpu_seconds: dict[str, float] = {}
        self.peak_mb: dict[str, float] = {}
        self.outermost_seconds = 0.0
        self.outermost_cpu_seconds = 0.0
        self.workers_cpu_seconds: dict[str, float] = {}
        self._open = 0
        self._lock = threading.Lock()
        self._workers: dict[threading.Thread, tuple[float, float]] = {}
        """Each thread that ran a wrapped worker step → its CPU clock (s) when its first one began and
        when its last one ended."""

    def _workers_cpu(self) -> float:
        """The CPU seconds the worker threads have spent since each began its first wrapped step: a
        live one's clock read from this thread (Linux: ``pthread_getcpuclockid``), an ended one's as
        it last saw it."""
        total = 0.0
        with self._lock:
            workers = list(self._workers.items())
        for thread, (first, last_seen) in workers:
            # an ended thread's clock id would name the calling thread's clock (glibc: thread id 0)
            if thread.is_alive() and thread.ident is not None and hasattr(time, "pthread_getcpuclockid"):
                total += time.clock_gettime(time.pthread_getcpuclockid(thread.ident)) - first
            else:
                total += last_seen - first
        return total

    def wrap(self, owner: Any, attribute: str, name: str) -> None:
        """Replace ``owner.attribute`` by a timed call of itself, recorded as ``name``."""
        inner: Callable[..., Any] = getattr(owner, attribute)

        @functools.wraps(inner)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not threading.main_thread():
                return self._on_worker(name, inner, *args, **kwargs)
            outermost = self._open == 0
            if outermost:
                _reset_peak()
            self._open += 1
            started, cpu = time.perf_counter(), time.process_time()
            server = _server_cpu_seconds() if outermost else 0.0
            workers = self._workers_cpu() if outermost else 0.0
            try:
                return inner(*args, **kwargs)
            finally:
                self._open -= 1
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
                self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + time.process_time() - cpu
                if (
                    outermost
                ):  # a step also called inside others (the extents) counts here only when outermost
                    self.outermost_seconds += time.perf_counter() - started
                    self.outermost_cpu_seconds += time.process_time() - cpu
                    self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), _peak_mb())
                    spent = _server_cpu_seconds() - server
                    self.server_cpu_seconds[name] = self.server_cpu_seconds.get(name, 0.0) + spent
                    beside = self._workers_cpu() - workers
                    self.workers_cpu_seconds[name] = self.workers_cpu_seconds.get(name, 0.0) + beside

        setattr(owner, attribute, timed)

    def wrap_by_table(self, owner: Any, attribute: str, prefix: str) -> None:
        """Replace the method ``owner.attribute(store, table, ...)`` by a timed call recorded as
        ``prefix table``: never outermost (the steps calling it hold its time); its CPU seconds are
        the process's on the main thread and its own thread's on a worker thread."""
        inner: Callable[..., Any] = getattr(owner, attribute)

        @functools.wraps(inner)
        def timed(store: Any, table: str, *args: Any, **kwargs: Any) -> Any:
            on_main = threading.current_thread() is threading.main_thread()
            clock = time.process_time if on_main else time.thread_time
            started, cpu = time.perf_counter(), clock()
            try:
                return inner(store, table, *args, **kwargs)
            finally:
                name = f"{prefix} {table}"
                with self._lock:
                    self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
                    self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + clock() - cpu

        setattr(owner, attribute, timed)

    def _on_worker(self, name: str, inner: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A step run on a worker thread, beside the main thread's steps: its seconds and its own
        thread's CPU seconds, never counted as outermost (its time lies inside the main thread's)."""
        started, cpu = time.perf_counter(), time.thread_time()
        with self._lock:
            self._workers.setdefault(threading.current_thread(), (cpu, cpu))
        try:
            return inner(*args, **kwargs)
        finally:
            with self._lock:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
                self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + time.thread_time() - cpu
                thread = threading.current_thread()
                self._workers[thread] = (self._workers[thread][0], time.thread_time())


def main() -> None:
    started, server_started = time.perf_counter(), _server_cpu_seconds()
    import civictwin.build as build
    import civictwin.build_network as build_network
    import civictwin.catalog.metadata as metadata
    import civictwin.sources.osm as osm
    import civictwin.store.duckdb as duckdb_store
    import civictwin.store.mirror as mirror
    import civictwin.store.postgis as postgis_store
    from civictwin.config import load_config

    steps = Steps()
    steps.wrap(osm, "ingest", "ingest osm")
    for attribute, name in (("_decode", "  decode PBF"), ("_assemble", "  assemble geometries"),
                            ("_write_layer", "  repair, clip, count, write layers")):  # fmt: skip
        steps.wrap(osm, attribute, name)
    for attribute, name in (("_network", "network: read the roads, start the split"),
                            ("_split", "network split, signals placed (worker thread: its own CPU)"),
                            ("_split_written", "network split, signals placed (worker thread: its own CPU)"),
                            ("_save_network", "network: save, signals, records"),
                            ("_buildings", "buildings + population"), ("_zones", "zones"),
                            ("mark_personal", "personal data"), ("quality_highlights", "quality highlights"),
                            ("record_derived", "  catalogue records (extents)"),
                            ("_extent_of", "OSM layer extents (extents worker thread: its own CPU)")):  # fmt: skip
        steps.wrap(build, attribute, name)
    for attribute, name in (("_partitioned", "network in partitions: split, save, signals (on a worker: its own CPU)"),
                            ("_record_partitioned", "network in partitions: records"),
                            ("record_source", "source records"), ("record_quality", "  quality records"),
                            ("_check_area_hit", "area check (store tables)")):  # fmt: skip
        steps.wrap(build, attribute, name)
    steps.wrap(
        duckdb_store.DuckDBStore, "shared_list_values", "  partition: shared nodes (counted by the store)"
    )
    for attribute, name in (("network_part", "  partition: split into edges (pass 2)"),
                            ("_edge_batch", "  partition: edges to Arrow"),
                            ("merged_ends", "  partition: nodes merged"),
                            ("_car_edges_near", "  partition: car edges near signals"),
                            ("signalled_nodes", "  signals placed")):  # fmt: skip
        steps.wrap(build_network, attribute, name)
    steps.wrap(postgis_store, "_switch", "swap (switch the served schema)")
    steps.wrap(postgis_store.PostGISStore, "tables", "  PostGIS tables() (row counts)")
    steps.wrap_by_table(postgis_store.PostGISStore, "write_table", "  PostGIS write")
    steps.wrap(metadata, "_bboxes", "  catalogue extents (WGS84 bbox)")
    steps.wrap(duckdb_store.DuckDBStore, "write_table", "  store writes")
    steps.wrap(postgis_store.PostGISStore, "write_table", "  store writes")  # a twin.toml store URL
    steps.wrap(mirror.MirroredStore, "tables", "  store tables()")
    summary = build.build_twin(load_config(Path(sys.argv[1])))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    seconds = time.perf_counter() - started
    other = "other: imports, source records, checkpoint and swap"
    steps.seconds[other] = seconds - steps.outermost_seconds
    steps.cpu_seconds[other] = time.process_time() - steps.outermost_cpu_seconds
    print(json.dumps({
        "seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,  # all threads (DuckDB's too)
        "server_cpu_seconds": _server_cpu_seconds() - server_started,
        "server_cpu_by_step": {name: round(s, 2) for name, s in steps.server_cpu_seconds.items()},
        # per outermost step: the worker threads' CPU seconds inside its cpu_seconds
        "workers_cpu_by_step": {name: round(s, 2) for name, s in steps.workers_cpu_seconds.items()},
        # the peak of the whole run: the largest step peak (resetting VmHWM lowers what ru_maxrss reports)
        "peak_mb": max([usage.ru_maxrss / 1024, *steps.peak_mb.values()]),
        "steps": {name: {"seconds": round(s, 2), "cpu_seconds": round(steps.cpu_seconds.get(name, 0.0), 2), "peak_mb": round(steps.peak_mb[name]) if name in steps.peak_mb
                         else None} for name, s in steps.seconds.items()},
        "counts": {k: summary.tables[k] for k in ("buildings", "network_edges", "zones") if k in summary.tables},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
