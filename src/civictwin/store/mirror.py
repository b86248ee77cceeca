"""A build into a database server that reads what it wrote from a local copy (issue 14).

A build reads back much of what it wrote: the network step reads the roads cell by cell (twice per
partition), the buildings and zones steps read whole layers, the catalogue computes every table's
extent. Into PostGIS, each such read was a round trip of the table through the server (a scan and
every geometry as WKB through Python tuples). :class:`MirroredStore` writes every table both to the
target store and to a local scratch DuckDB store, and answers reads of the tables it wrote from the
local copy; everything the served twin consists of (tables, records, the version marker, tables
carried over from the served twin) is the target's, so the target holds exactly what it would hold
without the mirror. The scratch store is deleted with the build.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyarrow as pa

from civictwin.memory import STORE_SHARE, BuildMemory
from civictwin.store.base import Bounds, Store, TableInfo
from civictwin.store.duckdb import DuckDBStore, limit_memory, to_arrow


class MirroredStore(Store):
    """Writes to ``target`` and to ``local``; reads of the tables written here come from ``local``."""

    def __init__(self, target: Store, local: DuckDBStore) -> None:
        self.target = target
        self._local = local
        self._mirrored: set[str] = set()

    @property
    def crs(self) -> str:
        return self.target.crs

    def tables(self) -> list[TableInfo]:
        return self.target.tables()

    def has_table(self, name: str) -> bool:
        return name in self._mirrored or self.target.has_table(name)

    def write_table(
        self, name: str, table: pa.Table | pa.RecordBatchReader | pd.DataFrame | gpd.GeoDataFrame
    ) -> int:
        """Written locally first; a stream (read once) then goes to the target from the local copy."""
        self._mirrored.discard(name)
        arrow = to_arrow(table)
        rows = self._local.write_table(name, arrow)
        self.target.write_table(
            name, self._local.batches(name) if isinstance(arrow, pa.RecordBatchReader) else arrow
        )
        self._mirrored.add(name)
        return rows

    def carry_table(self, name: str, served: Store) -> int:
        """Copied by the target (inside the database); later reads of it go to the target."""
        self._mirrored.discard(name)
        return self.target.carry_table(name, served)

    def _reader(self, name: str) -> Store:
        return self._local if name in self._mirrored else self.target

    def read_table(
        self,
        name: str,
        *,
        columns: Sequence[str] | None = None,
        bbox: Bounds | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> pd.DataFrame:
        return self._reader(name).read_table(name, columns=columns, bbox=bbox, where=where)

    def read_cell(self, name: str, cell: Bounds, *, columns: Sequence[str] | None = None) -> pd.DataFrame:
        return self._reader(name).read_cell(name, cell, columns=columns)

    def sample_rows(self, name: str, *, columns: Sequence[str], limit: int) -> pd.DataFrame:
        return self._reader(name).sample_rows(name, columns=columns, limit=limit)

    def table_bounds(self, name: str, *, wgs84: bool = False) -> Bounds | None:
        return self._reader(name).table_bounds(name, wgs84=wgs84)

    def put_record(self, kind: str, key: str, record: Mapping[str, Any]) -> None:
        self.target.put_record(kind, key, record)

    def records(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.target.records(kind)

    def close(self) -> None:
        self._local.close()

    def _columns(self, name: str) -> dict[str, str]:
        return self._reader(name)._columns(name)


@contextmanager
def mirrored(target: Store, *, memory: BuildMemory) -> Iterator[MirroredStore]:
    """``target`` with a local scratch copy for the block (in a new folder under the build's temporary
    folder, its DuckDB within the store's share of the memory budget), removed afterwards."""
    with ExitStack() as stack:
        folder = stack.enter_context(memory.spill_folder())
        local = DuckDBStore.create(Path(folder) / "mirror.duckdb", crs=target.crs)
        stack.callback(local.close)
        limit_memory(local.connection, memory_mb=memory.share_mb(STORE_SHARE), spill_to=folder,
                     spill_mb=memory.spill_mb)  # fmt: skip
        local.hold_records()  # its records are never read: kept in memory, never committed one by one
        yield MirroredStore(target, local)
