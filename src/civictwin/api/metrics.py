"""Prometheus metrics of a serving twin (prometheus_client), one registry per application.

Counted by the gate for every request: ``civictwin_http_requests_total`` and the latency histogram
``civictwin_http_request_duration_seconds``, labelled by route *template* (``/collections/{collectionId}/items``,
never the raw path, so the number of series stays bounded), method and status; requests the HTTP
server refused before the application (malformed) count under the route ``edge``. Read at scrape
time from the twin being served: tile cache hits, misses and bytes, the store's version and build
time, the duration of its last build, and the recorded durations of its complete comparisons.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
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


class CacheCounts(Protocol):
    """What the collector reads of the tile cache (a ``TileCache``)."""

    @property
    def hits(self) -> int: ...
    @property
    def misses(self) -> int: ...
    @property
    def size(self) -> int: ...


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

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)


class TwinCollector(Collector):
    """Metrics read from the twin being served and its tile cache when Prometheus scrapes."""

    def __init__(self, twin: Callable[[], ServedTwin], cache: CacheCounts) -> None:
        self._twin = twin
        self._cache = cache

    def collect(self) -> Iterator[Metric]:
        cache = self._cache
        yield CounterMetricFamily(
            "civictwin_tile_cache_hits", "Tiles served from the cache", value=cache.hits
        )
        yield CounterMetricFamily("civictwin_tile_cache_misses", "Tiles rendered afresh", value=cache.misses)
        yield GaugeMetricFamily(
            "civictwin_tile_cache_bytes", "Bytes of tiles held in the cache", value=cache.size
        )
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
