"""The contract every source reader follows: read one configured source into normalised layer tables.

A reader gets the source's configuration and a :class:`BuildContext`, writes its tables through the
store, and returns an :class:`IngestResult` describing each table (rows and quality numbers). Readers
never reach into the model or an engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
from shapely.geometry.base import BaseGeometry

from civictwin.config import SourceConfig, TwinConfig
from civictwin.store.base import Store
from civictwin.store.duckdb import connect

if TYPE_CHECKING:
    from civictwin.sources.remote import Snapshot

ProgressCallback = Callable[[str], None]
LayerCallback = Callable[[str, pa.Table], None]
"""Called as (table, rows) with a layer a reader has just written to the store, as it was written."""


@dataclass
class BuildContext:
    """What a reader needs: the config, the store, the area (WGS84 and metric) and the metric CRS."""

    config: TwinConfig
    store: Store
    area_wgs84: BaseGeometry
    area: BaseGeometry
    crs: str
    report: ProgressCallback = field(default=lambda _msg: None)
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    """Remote sources' snapshots already fetched (by ``civictwin refresh``), by source name."""
    compute_connection: Callable[[], duckdb.DuckDBPyConnection] = field(default=connect)
    """Opens the in-memory DuckDB (spatial extension loaded) a reader computes in; the build may have
    had one opened on another thread meanwhile, since loading the extension takes about 0.5 s."""
    layer_written: LayerCallback = field(default=lambda _table, _rows: None)
    """Told each layer a reader has written, with its rows as Arrow (geometries as WKB), so the build can
    start work on it while the reader goes on with its other layers. A reader that streams its
    layers (or has no Arrow table at hand) need not call it."""

    def path_of(self, source: SourceConfig) -> Path:
        """The source's file, resolved against the twin directory."""
        return self.config.resolve(source.path)


@dataclass
class IngestedLayer:
    """One table a reader wrote, with its quality numbers.

    ``quality`` holds plain numbers: the geometry report (see ``GeometryReport.as_dict``),
    ``completeness`` as {attribute: share 0..1}, ``duplicates`` count, and any reader-specific notes.
    """

    table: str
    rows: int
    title: str
    quality: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class IngestResult:
    """Everything one source contributed to the twin."""

    source: SourceConfig
    path: Path
    layers: list[IngestedLayer]
    lineage: dict[str, Any] = field(default_factory=dict)
    """Extra lineage parameters of the source's tables (a remote source's retrieval and validators)."""
