"""The storage interface every backend implements; callers never write SQL themselves.

A twin's store holds layer tables (one geometry column named ``geometry``, in the twin's metric CRS)
and governance records (catalogue, lineage, quality) keyed by kind and dataset name. Every write
replaces the store's version marker (``meta``/``version``: a random id and the time), so a build, or
any later change, gives the store a new identity for caches and the API's reload, whatever the
backend.
"""

from __future__ import annotations

import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc

GEOMETRY = "geometry"

VERSION_KEY = "version"
"""Key of the version marker among the ``meta`` records (see :func:`new_version`); backends replace
it on every :meth:`Store.write_table` and :meth:`Store.put_record`."""

Bounds = tuple[float, float, float, float]


@dataclass(frozen=True)
class TableInfo:
    """What a caller needs to know about a stored table without reading it."""

    name: str
    rows: int
    columns: dict[str, str]
    has_geometry: bool


class RecordReader(Protocol):
    """Anything governance records can be read from: a store, or a view over several stores."""

    def records(self, kind: str) -> dict[str, dict[str, Any]]:
        """All records of ``kind`` by key."""
        ...


class Store(ABC):
    """A twin's tables and records. Implementations: :class:`civictwin.store.duckdb.DuckDBStore`."""

    @property
    @abstractmethod
    def crs(self) -> str:
        """The metric CRS every stored geometry is in (e.g. ``EPSG:32635``)."""

    @abstractmethod
    def tables(self) -> list[TableInfo]:
        """Every layer table (records and internal tables excluded), sorted by name."""

    @abstractmethod
    def has_table(self, name: str) -> bool:
        """Whether a layer table called ``name`` exists."""

    @abstractmethod
    def write_table(
        self, name: str, table: pa.Table | pa.RecordBatchReader | pd.DataFrame | gpd.GeoDataFrame
    ) -> int:
        """Create or replace ``name``; a ``geometry`` column must hold WKB (or shapely objects) in :attr:`crs`.

        A ``RecordBatchReader`` is consumed batch by batch, so a table larger than memory can stream in.
        """

    def write_tables(
        self, batches: Iterable[Mapping[str, pa.Table]], *, schemas: Mapping[str, pa.Schema]
    ) -> dict[str, int]:
        """Create or replace every table of ``schemas`` from one stream that gives batches of them together.

        Each item of ``batches`` maps some of the tables to rows to append (in ``schemas``' schema). All
        or nothing: an error raised while the stream is consumed (a reader finding a broken record half
        way) leaves every table as it was. Returns the rows written per table.

        This fallback spools each table to an uncompressed Arrow IPC file in a temporary folder, then
        streams each one through :meth:`write_table` (memory holds one batch); a backend that can fill
        several tables at once overrides it without the spool.
        """
        with tempfile.TemporaryDirectory(prefix="civictwin-tables-") as folder:
            paths = {name: Path(folder) / f"{i}.arrow" for i, name in enumerate(schemas)}
            writers = {name: ipc.new_file(paths[name], schema) for name, schema in schemas.items()}
            try:
                for batch in batches:
                    for name, table in batch.items():
                        writers[name].write_table(table)
            finally:
                for writer in writers.values():
                    writer.close()
            rows: dict[str, int] = {}
            for name in schemas:
                with ipc.open_file(paths[name]) as spooled:
                    stream = (spooled.get_batch(i) for i in range(spooled.num_record_batches))
                    rows[name] = self.write_table(
                        name, pa.RecordBatchReader.from_batches(spooled.schema, stream)
                    )
            return rows

    @abstractmethod
    def carry_table(self, name: str, served: Store) -> int:
        """Copy table ``name`` as it is stored in ``served`` (a twin of the same backend) into this store.

        Column types and values are kept exactly; the rows' count is returned. A refresh uses this
        for the tables that depend on no changed source instead of computing them again.
        """

    @abstractmethod
    def read_table(
        self,
        name: str,
        *,
        columns: Sequence[str] | None = None,
        bbox: Bounds | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Rows of ``name`` (a GeoDataFrame in :attr:`crs` when it has geometry), optionally filtered.

        ``bbox`` is in :attr:`crs`; ``where`` holds column equality filters, a list or tuple value
        meaning any of its values (an empty one matches nothing).
        """

    @abstractmethod
    def read_cell(self, name: str, cell: Bounds, *, columns: Sequence[str] | None = None) -> pa.Table:
        """The rows of ``name`` whose geometry's bounding box has its lower left corner in ``cell``, as
        Arrow, the geometry as WKB: a partition's rows go straight to array work, without a Python
        object per row (a list of node references or a GEOS geometry each).

        ``cell`` (in :attr:`crs`) is half-open, ``[xmin, xmax) × [ymin, ymax)``, and its bounds may be
        infinite: cells that tile the plane give every row with a geometry to exactly one of them,
        which is how a build works on a large table in spatial partitions.
        """

    @abstractmethod
    def shared_list_values(self, name: str, column: str) -> npt.NDArray[np.int64]:
        """The integers occurring at least twice among the lists in ``column`` of ``name`` (twice in one
        list counts), sorted, over the rows whose list holds one value per vertex of their geometry and
        at least two: for the ``roads`` layer, the OSM nodes where usable ways meet
        (:func:`civictwin.model.network.shared_nodes`). Counted by the database, within its memory
        limit, instead of every list being read out (2.5 M roads at 32×32: 0.7 s against 5 s)."""

    @abstractmethod
    def table_bounds(self, name: str, *, wgs84: bool = False) -> Bounds | None:
        """Extent of the geometries of ``name`` (None when it has no geometry or no rows)."""

    def tables_bounds(self, names: Sequence[str], *, wgs84: bool = False) -> dict[str, Bounds | None]:
        """:meth:`table_bounds` of each of ``names``; a backend may compute them in one query."""
        return {name: self.table_bounds(name, wgs84=wgs84) for name in names}

    @abstractmethod
    def put_record(self, kind: str, key: str, record: Mapping[str, Any]) -> None:
        """Store a JSON-serialisable governance record (catalogue, lineage, quality, meta)."""

    @abstractmethod
    def records(self, kind: str) -> dict[str, dict[str, Any]]:
        """All records of ``kind`` by key."""

    @abstractmethod
    def close(self) -> None:
        """Release the store."""

    def thread_writer(self) -> Store | None:
        """A store on the same twin that one other thread may read the tables written so far through
        and write new tables to while this one goes on with others (closed by that thread when done),
        or None when the backend offers none: then everything is written through this store, on its
        own thread.

        Only its tables are for it: its governance records and version markers are dropped, so the
        records of what it writes are put through this store.
        """
        return None

    def columns(self, name: str) -> dict[str, str]:
        """Column name → the backend's type name of table ``name``, in table order (empty when it is
        missing): one table's columns without counting every table's rows as :meth:`tables` does."""
        return self._columns(name)

    @abstractmethod
    def _columns(self, name: str) -> dict[str, str]:
        """Column name → the backend's type name, in table order (empty for a missing table)."""

    def _wanted_columns(self, name: str, columns: Sequence[str] | None) -> tuple[dict[str, str], list[str]]:
        """``name``'s column types and the columns a read asks for (all when None), each checked to exist."""
        from civictwin.errors import StoreError

        if not self.has_table(name):
            raise StoreError(f"no table '{name}' in this twin")
        info = self._columns(name)
        wanted = list(columns) if columns is not None else list(info)
        unknown = [c for c in wanted if c not in info]
        if unknown:
            raise StoreError(f"table '{name}' has no column(s) {', '.join(unknown)}")
        return info, wanted

    def _write_version(self) -> None:
        """Replace the version marker (:func:`new_version`): the store has changed."""
        self.put_record("meta", VERSION_KEY, new_version())

    def sample_rows(self, name: str, *, columns: Sequence[str], limit: int) -> pd.DataFrame:
        """The first ``limit`` rows of ``columns`` of ``name`` (e.g. to recognise what a column holds).

        Backends override this to read only those rows; this fallback reads the columns whole.
        """
        return self.read_table(name, columns=columns).head(limit)

    def read_frame(self, name: str, **filters: Any) -> gpd.GeoDataFrame:
        """Like :meth:`read_table` but always a GeoDataFrame (fails for tables without geometry)."""
        frame = self.read_table(name, **filters)
        if not isinstance(frame, gpd.GeoDataFrame):
            from civictwin.errors import StoreError

            raise StoreError(f"table '{name}' has no geometry")
        return frame

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def new_version() -> dict[str, str]:
    """A fresh version marker: a random id and the time (UTC) the store was changed."""
    return {"id": uuid.uuid4().hex, "written_at": datetime.now(UTC).isoformat()}


def version_of(store: Store) -> str:
    """The version marker's id of an open store.

    A store made before markers existed is identified by its build time, or else as ``unversioned``.
    """
    meta = store.records("meta")
    marker = meta.get(VERSION_KEY, {}).get("id")
    if marker:
        return str(marker)
    built = meta.get("twin", {}).get("built_at")
    return f"built-{built}" if built else "unversioned"
