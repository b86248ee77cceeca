"""Prometheus metrics of a serving twin (prometheus_client), one registry per application.

Counted by the gate for every request: ``civictwin_http_requests_total`` and the latency histogram
``civictwin_http_request_duration_seconds``, labelled by route *template* (``/collections/{collectionId}/items``,
never the raw path, so the number of series stays bounded), method and status; requests the HTTP
server refused before the application (malformed) count under the route ``edge``. Counted by the
tile cache: its hits, misses and bytes held. Read at scrape time from the twin being served: the
store's version and build time, the duration of its last build, and the recorded durations of its
complete comparisons.

Several workers (``serve --workers``) count in prometheus_client's multiprocess mode: the supervisor
gives them one folder (:data:`MULTIPROCESS_ENV`), each worker's counters live in files there, and a
scrape answered by any worker sums them over all (docs/api.md, "Several workers").
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from civictwin.runs import COMPLETE, MANIFEST_FILE, RUNS_DIR


class _RecordReader(Protocol):
    def records(self, kind: str) -> dict[str, dict[str, Any]]: ...


class ServedTwin(Protocol):
    """What the collector reads of the twin being served (a ``PublishedTwin``)."""

    @property
    def store(self) -> _RecordReader: ...
    @property
    def version(self) -> str: ...
    @property
    def store_path(self) -> Path: ...
    @property
    def twin_dir(self) -> Path: ...


MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's switch to multiprocess mode: the folder where every worker keeps its counters
(read when prometheus_client is first imported, so the supervisor sets it before starting workers)."""


_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
logger = logging.getLogger(__name__)


class Metrics:
    """The application's registry and its request metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "civictwin_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "civictwin_http_request_duration_seconds",
            "Time from receiving a request to starting its response (seconds)",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tile_hits = Counter(
            "civictwin_tile_cache_hits", "Tiles served from the cache", registry=self.registry
        )
        self.tile_misses = Counter(
            "civictwin_tile_cache_misses", "Tiles rendered afresh", registry=self.registry
        )
        self.tile_bytes = Gauge(
            "civictwin_tile_cache_bytes",
            "Bytes of tiles held in the cache (summed over live workers)",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self._live: list[Collector] = []

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def looked_up(self, *, hit: bool) -> None:
        """Count one tile cache lookup."""
        (self.tile_hits if hit else self.tile_misses).inc()

    def holding(self, size: int) -> None:
        """Note the bytes the tile cache holds now."""
        self.tile_bytes.set(size)

    def read_live(self, collector: Collector) -> None:
        """Add metrics read at scrape time (from the twin this worker serves)."""
        self.registry.register(collector)
        self._live.append(collector)

    def exposition(self) -> bytes:
        """The text exposition: this process's metrics, or with several workers the counted ones summed
        over all of them (plus the ones read at scrape time, from the worker answering)."""
        folder = os.environ.get(MULTIPROCESS_ENV)
        if folder is None:
            return bytes(generate_latest(self.registry))
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=folder)
        for collector in self._live:
            registry.register(collector)
        return bytes(generate_latest(registry))


class TwinCollector(Collector):
    """Metrics read from the twin being served when Prometheus scrapes."""

    def __init__(self, twin: Callable[[], ServedTwin]) -> None:
        self._twin = twin

    def collect(self) -> Iterator[Metric]:
        twin = self._twin()
        meta = twin.store.records("meta")
        info = InfoMetricFamily("civictwin_store", "The twin store being served")
        info.add_metric([], {"version": twin.version, "path": str(twin.store_path)})
        yield info
        built = meta.get("twin", {}).get("built_at")
        if built:
            from datetime import datetime

            yield GaugeMetricFamily(
                "civictwin_store_built_timestamp_seconds",
                "When the served store's build started (Unix time)",
                value=datetime.fromisoformat(str(built)).timestamp(),
            )
        seconds = meta.get("build", {}).get("seconds")
        if seconds is not None:
            yield GaugeMetricFamily(
                "civictwin_build_duration_seconds",
                "Duration of the served store's build",
                value=float(seconds),
            )
        yield _comparison_durations(twin.twin_dir)


def _comparison_durations(twin_dir: Path) -> GaugeMetricFamily:
    """The summed seed-run wall time recorded in each complete comparison's manifest."""
    family = GaugeMetricFamily(
        "civictwin_comparison_run_seconds",
        "Wall time of a comparison's seed runs, summed (seconds), from its manifest",
        labels=["comparison"],
    )
    runs = twin_dir / RUNS_DIR
    for manifest in sorted(runs.glob(f"*/{MANIFEST_FILE}")) if runs.is_dir() else []:
        if not (manifest.parent / COMPLETE).is_file():
            continue
        try:
            recorded = json.loads(manifest.read_bytes()).get("runs", [])
            total = sum(float(run.get("wall_s", 0.0)) for run in recorded)
        except (OSError, ValueError, AttributeError, TypeError):
            logger.warning("unreadable comparison manifest %s", manifest)
            continue
        family.add_metric([manifest.parent.name], total)
    return family
