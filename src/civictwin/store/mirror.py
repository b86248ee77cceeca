"""A build into a database server that reads what it wrote from a local copy (issue 14).

A build reads back much of what it wrote: the network step reads the roads cell by cell (twice per
partition), the buildings and zones steps read whole layers, the catalogue computes every table's
extent and counts every table's rows. Into PostGIS, each such read was a round trip of the table
through the server (a scan and every geometry as WKB through Python tuples). :class:`MirroredStore`
writes every table both to the target store and to a local scratch DuckDB store, and answers reads
of the tables it wrote (their rows, extents and row counts) from the local copy; everything the
served twin consists of (tables, records, the version marker, tables carried over from the served
twin) is the target's, so the target holds exactly what it would hold without the mirror. The
scratch store is deleted with the build.

With a :class:`Copier` (a PostGIS target: :func:`mirrored`), the target's copy of each table is
written on a worker thread over a connection of its own, while the build goes on with the local
copy: encoding the rows for ``COPY`` and the server's parsing, heap writes and indexes then run on
the second core beside the build's own work (the ``COPY`` releases the GIL while the server works).
Tables reach the target in the order they were written; the block ends only when all are there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from civictwin.memory import STORE_SHARE, BuildMemory
from civictwin.store.base import VERSION_KEY, Bounds, Store, TableInfo, new_version
from civictwin.store.duckdb import DuckDBStore, limit_memory, to_arrow
from civictwin.store.postgis import PostGISStore


class Copier:
    """Writes tables into ``target`` on one worker thread, one after another in the order given.

    A table given as Arrow is written from that (kept in memory until then); a table given as a
    stream (read once, into the local copy) is read back from ``source``, the local copy on a
    DuckDB connection of its own. The tables not yet written hold at most ``held_mb`` MB of Arrow
    memory (one larger table alone is let through): past that, :meth:`submit` waits for the oldest
    writes to end. The first error a write met is raised by the next call here.
    """

    def __init__(self, target: PostGISStore, source: DuckDBStore, *, held_mb: int) -> None:
        self._target = target
        self._source = source
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mirror-copy")
        self._pending: dict[str, Future[int]] = {}
        self._held_limit = held_mb * 1024 * 1024
        self._held: dict[Future[int], int] = {}
        """The Arrow bytes each write not yet ended holds, oldest first."""

    def submit(self, name: str, table: pa.Table | None) -> None:
        """Write ``name`` to the target from ``table``, or from the local copy when None."""
        self.check()
        size = int(table.nbytes) if table is not None else 0
        self._make_room(size)
        pending = self._pool.submit(self._write, name, table)
        self._pending[name] = pending
        if size:
            self._held[pending] = size

    def held_bytes(self) -> int:
        """The Arrow bytes held by the writes not yet ended."""
        for pending in [pending for pending in self._held if pending.done()]:
            del self._held[pending]
        return sum(self._held.values())

    def _make_room(self, size: int) -> None:
        """Wait for the oldest writes until ``size`` more bytes fit the limit (or none is left)."""
        while self.held_bytes() and self.held_bytes() + size > self._held_limit:
            next(iter(self._held)).result()

    def _write(self, name: str, table: pa.Table | None) -> int:
        return self._target.write_table(name, table if table is not None else self._source.batches(name))

    def settle(self, name: str) -> None:
        """Before ``name`` is replaced locally: its earlier write, if not started, is dropped (the new
        one supersedes it); if under way, it is waited for (it may be reading the local copy)."""
        pending = self._pending.pop(name, None)
        if pending is not None and not pending.cancel():
            pending.result()

    def check(self) -> None:
        """Raise the error of the first write that failed, if one did."""
        for pending in list(self._pending.values()):
            if pending.done() and not pending.cancelled() and pending.exception() is not None:
                pending.result()

    def finish(self) -> None:
        """Wait until every table is written; raise the first error a write met."""
        for pending in list(self._pending.values()):
            pending.result()
        self._pending.clear()

    def abandon(self) -> None:
        """Drop the writes not started, stop the one under way (the build failed), wait for the thread."""
        for pending in self._pending.values():
            pending.cancel()
        if any(not pending.done() for pending in self._pending.values()):
            self._target.cancel()
        self._pool.shutdown(wait=True)
        self._pending.clear()

    def close(self) -> None:
        """End the worker thread and the target's and source's connections."""
        self._pool.shutdown(wait=True)
        self._target.close()
        self._source.close()


class MirroredStore(Store):
    """Writes to ``target`` and to ``local``; reads of the tables written here come from ``local``.

    ``copier``: writes the target's copies on a worker thread (None: each one here, before
    :meth:`write_table` returns).
    """

    def __init__(self, target: Store, local: DuckDBStore, *, copier: Copier | None = None) -> None:
        self.target = target
        self._local = local
        self._copier = copier
        self._mirrored: set[str] = set()
        self._carried: set[str] = set()

    @property
    def crs(self) -> str:
        return self.target.crs

    def tables(self) -> list[TableInfo]:
        """The tables written here as the local copy describes them (its row counts: no count of a
        table in the database), and any carried over from the served twin as the target does."""
        infos = [info for info in self._local.tables() if info.name in self._mirrored]
        if self._carried:
            infos += [info for info in self.target.tables() if info.name in self._carried]
        return sorted(infos, key=lambda info: info.name)

    def has_table(self, name: str) -> bool:
        return name in self._mirrored or self.target.has_table(name)

    def write_table(
        self, name: str, table: pa.Table | pa.RecordBatchReader | pd.DataFrame | gpd.GeoDataFrame
    ) -> int:
        """Written locally first; a stream (read once) then goes to the target from the local copy."""
        self._mirrored.discard(name)
        self._carried.discard(name)
        if self._copier is not None:
            self._copier.settle(name)
        arrow = to_arrow(table)
        rows = self._local.write_table(name, arrow)
        if self._copier is not None:
            self._copier.submit(name, None if isinstance(arrow, pa.RecordBatchReader) else arrow)
        else:
            self.target.write_table(
                name, self._local.batches(name) if isinstance(arrow, pa.RecordBatchReader) else arrow
            )
        self._mirrored.add(name)
        return rows

    def carry_table(self, name: str, served: Store) -> int:
        """Copied by the target (inside the database); later reads of it go to the target."""
        self._mirrored.discard(name)
        self._carried.add(name)
        return self.target.carry_table(name, served)

    def finish(self) -> None:
        """Wait until the target holds every table written here (then a new version marker)."""
        if self._copier is not None:
            self._copier.finish()
            self.target.put_record("meta", VERSION_KEY, new_version())

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

    def read_cell(self, name: str, cell: Bounds, *, columns: Sequence[str] | None = None) -> pa.Table:
        return self._reader(name).read_cell(name, cell, columns=columns)

    def sample_rows(self, name: str, *, columns: Sequence[str], limit: int) -> pd.DataFrame:
        return self._reader(name).sample_rows(name, columns=columns, limit=limit)

    def shared_list_values(self, name: str, column: str) -> npt.NDArray[np.int64]:
        return self._reader(name).shared_list_values(name, column)

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
    folder, its DuckDB within the store's share of the memory budget), removed afterwards.

    A PostGIS target gets its tables on a worker thread (:class:`Copier`; the tables waiting for it
    hold at most the store's share of the budget): the block ends once all are written, or, when it
    failed, once the writes under way are stopped.
    """
    with ExitStack() as stack:
        folder = stack.enter_context(memory.spill_folder())
        local = DuckDBStore.create(Path(folder) / "mirror.duckdb", crs=target.crs)
        stack.callback(local.close)
        limit_memory(local.connection, memory_mb=memory.share_mb(STORE_SHARE), spill_to=folder,
                     spill_mb=memory.spill_mb)  # fmt: skip
        local.hold_records()  # its records are never read: kept in memory, never committed one by one
        copier = None
        if isinstance(target, PostGISStore):
            copier = Copier(
                target.sibling(),
                DuckDBStore(local.connection.cursor(), crs=target.crs, spatial=False),
                held_mb=memory.share_mb(STORE_SHARE),
            )
            stack.callback(copier.close)
        store = MirroredStore(target, local, copier=copier)
        try:
            yield store
            store.finish()
        except BaseException:
            if copier is not None:
                copier.abandon()
            raise
