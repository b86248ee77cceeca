"""The embedded default store: one DuckDB file per twin, with the spatial extension loaded offline.

Builds are atomic: :func:`build_store` writes a new file beside the old one and swaps it in only when
the build succeeded, so a failed or interrupted build leaves the previous twin untouched and readable.
"""

from __future__ import annotations

import errno
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any, cast

import duckdb
import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import shapely

from civictwin import durable
from civictwin.errors import StoreError, first_line
from civictwin.locking import LockHeld, exclusive
from civictwin.memory import STORE_SHARE, BuildMemory
from civictwin.store.base import GEOMETRY, VERSION_KEY, Bounds, Store, TableInfo

_RECORDS = "_records"
COMMIT_BATCHES = 4
"""Batches :meth:`DuckDBStore.write_tables` appends between commits (a few: each commit costs a write of
the log; uncommitted rows are held in memory)."""
WRITE_MEMORY_MB = 64
"""DuckDB's memory cap (MiB) while :meth:`DuckDBStore.write_tables` appends, unless a lower one is set.

DuckDB keeps the blocks of the tables it has just written cached up to its cap, so with a large
cap the process grew with the file (a 1 GB CityJSON: 685 MB resident at a 256 MB cap); what the
appends need is a few batches' rows, and 64 MiB kept the process flat from a 20 MB to a 1 GB file at
no cost in time (measured in BENCHMARKS.md, issue 12). The connection's cap is restored after."""
STORAGE_VERSION = "v1.5.0"
"""The file format of the stores this civictwin creates: DuckDB 1.5's, whose geometries are stored
natively (coordinates column-wise) rather than as opaque blobs. On the 8×8 network's 596 k edges,
writing took about a fifth less CPU time, reading them back as WKB about 60% less, and the file a
third less room (36 MB against 51-57 MB). Such a file needs DuckDB 1.5 or later to read
(``requirements.lock`` pins 1.5.5)."""
# A letter or "_", then letters, digits or "_" (any script: "Einwohner_Männlich", "Πληθυσμός"), at
# most 63 characters. Quoted in SQL, such a name can carry nothing but itself.
_IDENT = re.compile(r"^[^\W\d]\w{0,62}$")


def spatial_extension_path() -> Path:
    """The spatial extension file shipped by the pinned ``duckdb-extension-spatial`` wheel."""
    import duckdb_extension_spatial

    root = Path(duckdb_extension_spatial.__path__[0]) / "extensions"
    found = sorted(root.glob(f"v{duckdb.__version__}/spatial.duckdb_extension"))
    if not found:
        raise StoreError(
            f"no spatial extension for DuckDB {duckdb.__version__} under {root}; "
            "install duckdb-extension-spatial pinned to the same version"
        )
    return found[0]


def connect(
    path: Path | str = ":memory:",
    *,
    read_only: bool = False,
    spatial: bool = True,
    storage_version: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection, with the spatial extension loaded from the wheel (never from the network)
    unless ``spatial`` is False: loading it takes about half a second per connection, and reading
    records, plain columns and geometries as WKB needs only DuckDB's own functions. DuckDB's progress
    bar is off: nothing of DuckDB's reaches stdout.
    ``storage_version``: the on-disk format of a database file this connection creates (DuckDB's
    ``storage_compatibility_version``; by default DuckDB's own, readable by older versions)."""
    config: dict[str, str | bool | int | float | list[str]] = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    if storage_version is not None:
        config["storage_compatibility_version"] = storage_version
    try:
        con = duckdb.connect(str(path), read_only=read_only, config=config)
    except duckdb.IOException as exc:
        raise StoreError(f"cannot open store: {first_line(exc)}", path=path) from None
    except duckdb.Error as exc:
        raise StoreError(f"not a readable twin store: {first_line(exc)}", path=path) from None
    # DuckDB draws a progress bar on stdout for queries over 2 s where it sees an interactive session
    # (a Python prompt, IPython, Jupyter, ``python -c``): it would corrupt a command's machine-readable
    # output. It is the session's setting (DuckDB refuses it in the connection's config); cursors start
    # without it.
    con.execute("SET enable_progress_bar = false")
    if spatial:
        load_spatial(con)
    return con


def load_spatial(con: duckdb.DuckDBPyConnection) -> None:
    """Load the spatial extension into ``con`` (from the pinned wheel)."""
    con.execute(f"LOAD '{spatial_extension_path()}'")


def limit_memory(
    con: duckdb.DuckDBPyConnection, *, memory_mb: int, spill_to: Path, spill_mb: int | None = None
) -> None:
    """Cap ``con``'s working memory at ``memory_mb`` MB; beyond it DuckDB spills to files in ``spill_to``
    (at most ``spill_mb`` MB of them when given, else DuckDB's default of 90% of the free space)."""
    con.execute(f"SET memory_limit = '{int(memory_mb)}MB'")
    con.execute("SET temp_directory = " + "'" + str(spill_to).replace("'", "''") + "'")
    if spill_mb is not None:
        con.execute(f"SET max_temp_directory_size = '{int(spill_mb)}MB'")


_UNITS = {"bytes": 2**-20, "KiB": 2**-10, "MiB": 1.0, "GiB": 2**10, "TiB": 2**20, "PiB": 2**30}


def _mebibytes(setting: str) -> float | None:
    """A size as DuckDB shows its settings (``244.1 MiB``, ``18.8 GiB``) in MiB; None for anything else."""
    number, _, unit = setting.strip().partition(" ")
    try:
        return float(number) * _UNITS[unit]
    except (ValueError, KeyError):
        return None


def out_of_room(exc: BaseException) -> str | None:
    """Why ``exc`` means the machine ran out of room (disk, or memory that could not spill), or None.

    DuckDB reports a full disk or spill folder as an I/O error naming the OS's reason, and a spill cap
    reached or memory it could not free as out of memory; the OS reports ``ENOSPC`` / ``EDQUOT``.
    """
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the disk ({exc.filename or 'writing'})"
    if isinstance(exc, duckdb.OutOfMemoryException) and "max_temp_directory_size" in str(exc):
        return f"its working memory needed more disk to spill to than [build] spill_mb allows ({first_line(exc)})"
    if isinstance(exc, duckdb.OutOfMemoryException):
        return f"out of memory, with no room left to spill to disk ({first_line(exc)})"
    if isinstance(exc, duckdb.IOException) and "No space left on device" in str(exc):
        return f"no space left on the disk ({first_line(exc)})"
    return None


def quote(name: str) -> str:
    """A safely quoted SQL identifier; rejects names that are not plain identifiers."""
    if not _IDENT.match(name):
        raise StoreError(f"invalid table or column name {name!r}")
    return f'"{name}"'


class DuckDBStore(Store):
    """A twin stored in one DuckDB database file."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, *, crs: str, path: Path | None = None, spatial: bool = True
    ) -> None:
        self._con = con
        self._crs = crs
        self.path = path
        self._spatial_loaded = spatial
        self._held: dict[tuple[str, str], str] | None = None
        """Governance records not yet written, while a build holds them (:meth:`hold_records`)."""

    @classmethod
    def open(cls, path: Path, *, read_only: bool = True) -> DuckDBStore:
        """Open an existing twin store; the spatial extension is loaded when first needed."""
        if not path.is_file():
            raise StoreError("no twin store here (run `civictwin build` first)", path=path)
        con = connect(path, read_only=read_only, spatial=False)
        try:
            row = con.execute(f"SELECT record FROM {_RECORDS} WHERE kind='meta' AND key='twin'").fetchone()
        except duckdb.CatalogException:
            con.close()
            raise StoreError("not a civictwin store (no metadata table)", path=path) from None
        if row is None:
            con.close()
            raise StoreError("store has no twin metadata; rebuild it", path=path)
        return cls(con, crs=json.loads(row[0])["crs"], path=path, spatial=False)

    def thread_writer(self) -> DuckDBStore:
        """A second connection to this twin's database (DuckDB's ``cursor``) for one other thread.

        DuckDB lets threads of one process write separate tables at once (optimistic concurrency:
        only edits of the same rows conflict), and executes each statement without Python's GIL, so
        a table written there costs this thread nothing. Its records are held and never written (see
        :meth:`Store.thread_writer`): the records table is this connection's alone.
        """
        self._need_spatial()  # loaded for the database: the cursor can convert geometries too
        writer = DuckDBStore(self._con.cursor(), crs=self._crs, path=self.path)
        writer.hold_records()
        return writer

    @classmethod
    def create(cls, path: Path, *, crs: str) -> DuckDBStore:
        """A new, empty store at ``path`` (which must not exist)."""
        if path.exists():
            raise StoreError("refusing to overwrite an existing file", path=path)
        con = connect(path, storage_version=STORAGE_VERSION)
        con.execute(
            f"CREATE TABLE {_RECORDS} (kind VARCHAR, key VARCHAR, record JSON, PRIMARY KEY (kind, key))"
        )
        store = cls(con, crs=crs, path=path)
        store.put_record("meta", "twin", {"crs": crs})
        return store

    @property
    def crs(self) -> str:
        return self._crs

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The raw connection, for other store-layer modules (tiles, features) only; with the spatial
        extension loaded, as their SQL may need it."""
        self._need_spatial()
        return self._con

    def _need_spatial(self) -> None:
        """Load the spatial extension now if this store was opened without it."""
        if not self._spatial_loaded:
            load_spatial(self._con)
            self._spatial_loaded = True

    def tables(self) -> list[TableInfo]:
        rows = self._con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema='main' AND table_name NOT LIKE '\\_%' ESCAPE '\\' "
            "ORDER BY table_name, ordinal_position"
        ).fetchall()
        columns: dict[str, dict[str, str]] = {}
        for table, column, dtype in rows:
            columns.setdefault(table, {})[column] = dtype
        return [
            TableInfo(
                name=name,
                rows=self._count(name),
                columns=cols,
                has_geometry=cols.get(GEOMETRY) == "GEOMETRY",
            )
            for name, cols in sorted(columns.items())
        ]

    def _count(self, name: str) -> int:
        row = self._con.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()
        return int(row[0]) if row else 0

    def has_table(self, name: str) -> bool:
        row = self._con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema='main' AND table_name=?",
            [name],
        ).fetchone()
        return bool(row and row[0])

    def write_table(
        self, name: str, table: pa.Table | pa.RecordBatchReader | pd.DataFrame | gpd.GeoDataFrame
    ) -> int:
        arrow = to_arrow(table)
        if isinstance(arrow, pa.RecordBatchReader):
            rows = self._write_batches(name, arrow)
        else:
            with self._registered("_incoming", arrow):
                self._con.execute(
                    f"CREATE OR REPLACE TABLE {quote(name)} AS {_select_incoming(arrow.schema)}"
                )
            rows = int(arrow.num_rows)
        self._write_version()
        return rows

    @contextmanager
    def _registered(self, view: str, table: pa.Table) -> Iterator[None]:
        """``table`` readable by SQL as ``view`` for the block (Arrow, not copied), then forgotten."""
        self._con.register(view, table)
        try:
            yield
        finally:
            self._con.unregister(view)

    def _write_batches(self, name: str, reader: pa.RecordBatchReader) -> int:
        """Stream ``reader`` into ``name`` one batch at a time, each batch committed to a hidden staging
        table that replaces ``name`` at the end: memory holds one batch (in one ``CREATE TABLE ... AS``
        DuckDB keeps the whole uncommitted insert in memory past its ``memory_limit``, and memory
        grows with the table), and an error on the way leaves ``name`` as it was."""
        staging = quote(f"_staging_{name}")
        select = _select_incoming(reader.schema)
        rows = 0
        replacing = False
        try:
            self._con.register("_incoming", pa.Table.from_batches([], schema=reader.schema))
            self._con.execute(f"CREATE OR REPLACE TABLE {staging} AS {select}")
            for batch in reader:
                self._con.register("_incoming", pa.Table.from_batches([batch]))
                self._con.execute(f"INSERT INTO {staging} {select}")
                rows += batch.num_rows
            self._con.unregister("_incoming")
            self._con.begin()
            replacing = True
            self._con.execute(f"DROP TABLE IF EXISTS {quote(name)}")
            self._con.execute(f"ALTER TABLE {staging} RENAME TO {quote(name)}")
            self._con.commit()
        except BaseException:
            if replacing:
                self._con.rollback()
            self._con.unregister("_incoming")
            self._con.execute(f"DROP TABLE IF EXISTS {staging}")
            raise
        return rows

    def write_tables(
        self, batches: Iterable[Mapping[str, pa.Table]], *, schemas: Mapping[str, pa.Schema]
    ) -> dict[str, int]:
        """Append each batch straight to hidden staging tables (no spool), committed every
        :data:`COMMIT_BATCHES` batches, then swap them in together in one transaction.

        A commit every few batches keeps the rows DuckDB holds uncommitted to those batches, whatever
        the stream's length; an error on the way drops the staging tables and leaves the tables as
        they were. What DuckDB then keeps is its cache of the written blocks, bounded by its
        ``memory_limit`` (a build sets it from ``[build] memory_mb``).
        """
        with self._one_thread(), self._memory_at_most(WRITE_MEMORY_MB):
            rows = self._append_tables(batches, schemas)
        self._write_version()
        return rows

    @contextmanager
    def _memory_at_most(self, mebibytes: int) -> Iterator[None]:
        """DuckDB's ``memory_limit`` lowered to ``mebibytes`` MiB for the block when it is higher, restored after
        (to the value DuckDB shows, which it rounds to 0.1 MiB: ``256MB`` comes back as ``244.0 MiB``)."""
        row = self._con.execute("SELECT current_setting('memory_limit')").fetchone()
        current = str(row[0]) if row else ""
        limit = _mebibytes(current)
        if limit is None or limit <= mebibytes:
            yield
            return
        self._con.execute(f"SET memory_limit = '{int(mebibytes)}MiB'")
        try:
            yield
        finally:
            self._con.execute("SET memory_limit = '" + current.replace("'", "''") + "'")

    @contextmanager
    def _one_thread(self) -> Iterator[None]:
        """DuckDB on one thread for the block, its setting restored after.

        For many small appends: each is one Arrow batch of a few thousand rows, which DuckDB scans on
        one thread anyway, while its other threads wait for work at a cost in CPU time (storing a
        14,144-building CityJSON took 0.15-0.2 CPU s less on one thread, measured under load).
        """
        row = self._con.execute("SELECT current_setting('threads')").fetchone()
        self._con.execute("SET threads = 1")
        try:
            yield
        finally:
            self._con.execute(f"SET threads = {int(row[0]) if row else 1}")

    def _append_tables(
        self, batches: Iterable[Mapping[str, pa.Table]], schemas: Mapping[str, pa.Schema]
    ) -> dict[str, int]:
        """The appends of :meth:`write_tables`: rows per table, every staging table dropped on an error."""
        staging = {name: quote(f"_staging_{name}") for name in schemas}
        selects = {name: _select_incoming(schema) for name, schema in schemas.items()}
        rows = dict.fromkeys(schemas, 0)
        try:
            for name, schema in schemas.items():
                with self._registered("_incoming", pa.Table.from_batches([], schema=schema)):
                    self._con.execute(f"CREATE OR REPLACE TABLE {staging[name]} AS {selects[name]}")
            self._con.begin()
            for count, batch in enumerate(batches, start=1):
                for name, table in batch.items():
                    if table.num_rows:
                        with self._registered("_incoming", table):
                            self._con.execute(f"INSERT INTO {staging[name]} {selects[name]}")
                        rows[name] += table.num_rows
                if count % COMMIT_BATCHES == 0:
                    self._con.commit()
                    self._con.begin()
            for name in schemas:
                self._con.execute(f"DROP TABLE IF EXISTS {quote(name)}")
                self._con.execute(f"ALTER TABLE {staging[name]} RENAME TO {quote(name)}")
            self._con.commit()
        except BaseException:
            self._rollback_quietly()
            for table in staging.values():
                self._con.execute(f"DROP TABLE IF EXISTS {table}")
            raise
        return rows

    def _rollback_quietly(self) -> None:
        """Roll back the open transaction, if there is one."""
        with suppress(duckdb.TransactionException):
            self._con.rollback()

    def carry_table(self, name: str, served: Store) -> int:
        if not isinstance(served, DuckDBStore):
            raise StoreError(f"cannot copy '{name}' from a {type(served).__name__} into a DuckDB twin")
        return self.write_table(name, served.batches(name))

    def batches(self, name: str) -> pa.RecordBatchReader:
        """Every row of ``name`` as a stream of Arrow batches, the geometry as WKB (as written)."""
        info, wanted = self._wanted_columns(name, None)  # one line when there is no such table
        self._need_spatial()
        select = ", ".join(
            f"ST_AsWKB({GEOMETRY}) AS {GEOMETRY}" if c == GEOMETRY and info[c] == "GEOMETRY" else quote(c)
            for c in wanted
        )
        return self._con.execute(f"SELECT {select} FROM {quote(name)}").to_arrow_reader()

    def read_table(
        self,
        name: str,
        *,
        columns: Sequence[str] | None = None,
        bbox: Bounds | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> pd.DataFrame:
        info, wanted = self._wanted_columns(name, columns)
        if bbox is not None:
            self._need_spatial()
        clauses, params = _filters(info, bbox, where)
        return self._select(name, info, wanted, clauses, params)

    def read_cell(self, name: str, cell: Bounds, *, columns: Sequence[str] | None = None) -> pa.Table:
        info, wanted = self._wanted_columns(name, columns)
        if info.get(GEOMETRY) != "GEOMETRY":
            raise StoreError(f"table '{name}' has no geometry to partition by")
        self._need_spatial()
        select = ", ".join(
            f"ST_AsWKB({GEOMETRY}) AS {GEOMETRY}" if c == GEOMETRY else quote(c) for c in wanted
        )
        sql = (
            f"SELECT {select} FROM {quote(name)} WHERE ST_XMin({GEOMETRY}) >= ? AND ST_XMin({GEOMETRY}) < ? "
            f"AND ST_YMin({GEOMETRY}) >= ? AND ST_YMin({GEOMETRY}) < ?"
        )
        rows: pa.Table = self._con.execute(sql, [cell[0], cell[2], cell[1], cell[3]]).to_arrow_table()
        return rows

    def _select(
        self, name: str, info: Mapping[str, str], wanted: list[str], clauses: list[str], params: list[Any]
    ) -> pd.DataFrame:
        """``wanted`` columns of the rows of ``name`` meeting every clause; a GeoDataFrame with a geometry."""
        has_geom = GEOMETRY in wanted and info[GEOMETRY] == "GEOMETRY"
        select = ", ".join(
            f"ST_AsWKB({GEOMETRY}) AS {GEOMETRY}" if c == GEOMETRY and has_geom else quote(c) for c in wanted
        )
        sql = f"SELECT {select} FROM {quote(name)}" + (" WHERE " + " AND ".join(clauses) if clauses else "")
        frame: pd.DataFrame = self._con.execute(sql, params).to_arrow_table().to_pandas()
        if not has_geom:
            return frame
        geometry = shapely.from_wkb(frame.pop(GEOMETRY).to_numpy())
        return cast(pd.DataFrame, gpd.GeoDataFrame(frame, geometry=geometry, crs=self._crs))

    def sample_rows(self, name: str, *, columns: Sequence[str], limit: int) -> pd.DataFrame:
        info = self._columns(name)
        unknown = [c for c in columns if c not in info or info[c] == "GEOMETRY"]
        if unknown:
            raise StoreError(f"table '{name}' has no non-geometry column(s) {', '.join(unknown)}")
        select = ", ".join(quote(c) for c in columns)
        sql = f"SELECT {select} FROM {quote(name)} LIMIT {int(limit)}"
        frame: pd.DataFrame = self._con.execute(sql).to_arrow_table().to_pandas()
        return frame

    def _columns(self, name: str) -> dict[str, str]:
        rows = self._con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name=? "
            "ORDER BY ordinal_position",
            [name],
        ).fetchall()
        return {c: t for c, t in rows}

    def shared_list_values(self, name: str, column: str) -> npt.NDArray[np.int64]:
        info = self._columns(name)
        if not info.get(column, "").endswith("[]") or info.get(GEOMETRY) != "GEOMETRY":
            raise StoreError(f"table '{name}' has no list column '{column}' beside a geometry")
        self._need_spatial()
        values = quote(column)
        rows = self._con.execute(
            f"SELECT v FROM (SELECT unnest({values}) AS v FROM {quote(name)} WHERE len({values}) >= 2 "
            f"AND len({values}) = ST_NPoints({GEOMETRY})) GROUP BY v HAVING count(*) >= 2 ORDER BY v"
        ).fetchnumpy()
        return np.asarray(rows["v"], dtype=np.int64)

    def table_bounds(self, name: str, *, wgs84: bool = False) -> Bounds | None:
        return self.tables_bounds([name], wgs84=wgs84)[name]

    def tables_bounds(self, names: Sequence[str], *, wgs84: bool = False) -> dict[str, Bounds | None]:
        """The extents of several tables in one query (a ``UNION ALL`` of one aggregate per table).

        DuckDB scans a table one row group (122,880 rows) per thread, so most of an OSM extract's
        layers took one thread each, one after the other; the nine OSM layers of the 8×8 twin took
        about 35% less CPU time and 40% less wall time in one query (measured on a loaded machine).
        """
        found: dict[str, Bounds | None] = dict.fromkeys(names)
        spatial = [name for name in dict.fromkeys(names) if self._columns(name).get(GEOMETRY) == "GEOMETRY"]
        if not spatial:
            return found
        self._need_spatial()
        geom = (
            f"ST_Transform({GEOMETRY}, '{self._crs}', 'EPSG:4326', always_xy := true)" if wgs84 else GEOMETRY
        )
        rows = self._con.execute(
            " UNION ALL ".join(
                f"SELECT {position} AS position, min(ST_XMin(g)), min(ST_YMin(g)), max(ST_XMax(g)), "
                f"max(ST_YMax(g)) FROM (SELECT {geom} AS g FROM {quote(name)})"
                for position, name in enumerate(spatial)
            )
        ).fetchall()
        for position, *bounds in rows:
            if bounds[0] is not None:
                found[spatial[position]] = (
                    float(bounds[0]), float(bounds[1]), float(bounds[2]), float(bounds[3])
                )  # fmt: skip
        return found

    def put_record(self, kind: str, key: str, record: Mapping[str, Any]) -> None:
        value = json.dumps(record, default=str)
        if self._held is not None:
            self._held[(kind, key)] = value
        else:
            self._con.execute(f"INSERT OR REPLACE INTO {_RECORDS} VALUES (?, ?, ?)", [kind, key, value])
        if (kind, key) != ("meta", VERSION_KEY):
            self._write_version()

    def hold_records(self) -> None:
        """Keep governance records (and version markers) in memory until :meth:`write_held_records`.

        For a staging store that no other process reads: a build puts about a hundred records, and
        each one written on its own is a commit of the file (with a version marker: two), which took
        1-2 s of an 8×8 build. :meth:`records` still sees them all.
        """
        if self._held is None:
            self._held = {}

    def write_held_records(self) -> None:
        """Write the held records in one statement (one commit); later records are written at once."""
        held, self._held = self._held, None
        if not held:
            return
        rows = pa.table({
            "kind": [kind for kind, _ in held], "key": [key for _, key in held], "record": list(held.values()),
        })  # fmt: skip
        with self._registered("_held_records", rows):
            self._con.execute(
                f"INSERT OR REPLACE INTO {_RECORDS} SELECT kind, key, record FROM _held_records"
            )

    def records(self, kind: str) -> dict[str, dict[str, Any]]:
        rows = dict(self._con.execute(f"SELECT key, record FROM {_RECORDS} WHERE kind=?", [kind]).fetchall())
        rows.update(
            {key: value for (held_kind, key), value in (self._held or {}).items() if held_kind == kind}
        )
        return {key: json.loads(rows[key]) for key in sorted(rows)}

    def close(self) -> None:
        self._con.close()


def _select_incoming(schema: pa.Schema) -> str:
    """The ``SELECT`` of the registered ``_incoming`` rows, WKB geometries made DuckDB geometries."""
    if GEOMETRY in schema.names:
        return f"SELECT * REPLACE (ST_GeomFromWKB({GEOMETRY}) AS {GEOMETRY}) FROM _incoming"
    return "SELECT * FROM _incoming"


def to_arrow(
    table: pa.Table | pa.RecordBatchReader | pd.DataFrame | gpd.GeoDataFrame,
) -> pa.Table | pa.RecordBatchReader:
    """What :meth:`Store.write_table` is given, as Arrow (a frame's geometry as a WKB column)."""
    if isinstance(table, pa.Table | pa.RecordBatchReader):
        return table
    frame = table
    if isinstance(frame, gpd.GeoDataFrame):
        geom_name = frame.geometry.name
        wkb = shapely.to_wkb(frame.geometry.to_numpy())
        frame = pd.DataFrame(frame.drop(columns=geom_name))
        frame[GEOMETRY] = wkb
    return pa.Table.from_pandas(frame, preserve_index=False)


def _filters(
    info: Mapping[str, str], bbox: Bounds | None, where: Mapping[str, Any] | None
) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if bbox is not None:
        if info.get(GEOMETRY) != "GEOMETRY":
            raise StoreError("bbox filter on a table without geometry")
        clauses.append(f"ST_Intersects({GEOMETRY}, ST_MakeEnvelope(?, ?, ?, ?))")
        params.extend(bbox)
    for column, value in (where or {}).items():
        if column not in info:
            raise StoreError(f"unknown column '{column}'")
        if isinstance(value, list | tuple) and not value:
            clauses.append("FALSE")
        elif isinstance(value, list | tuple):
            clauses.append(f"list_contains(?, {quote(column)})")
            params.append(list(value))
        else:
            clauses.append(f"{quote(column)} = ?")
            params.append(value)
    return clauses, params


@contextmanager
def build_store(path: Path, *, crs: str, memory: BuildMemory | None = None) -> Iterator[DuckDBStore]:
    """A fresh store that replaces ``path`` atomically when the block succeeds.

    The new twin is written to ``<path>.building``; on success it is checkpointed, synced and renamed
    over ``path`` (:func:`civictwin.durable.replace`: a power cut after this returns keeps the new twin); on any failure it is deleted and ``path`` is left exactly as it was. One build of a twin
    runs at a time: a second one while the first holds ``<path>.building.lock`` is refused, since it
    would otherwise delete the first one's file mid-build and let a half-written twin be swapped in.
    ``memory``: the build's budget; the store's connection then works in its share and spills beyond.
    """
    staging = path.with_name(path.name + ".building")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with exclusive(staging.with_name(staging.name + ".lock"), wait=False):
            yield from _build_under_lock(path, staging, crs, memory)
    except LockHeld:
        raise StoreError(
            "another build of this twin is running; run this one when it has finished", path=path
        ) from None


def _build_under_lock(
    path: Path, staging: Path, crs: str, memory: BuildMemory | None
) -> Iterator[DuckDBStore]:
    for leftover in (staging, staging.with_name(staging.name + ".wal")):
        leftover.unlink(missing_ok=True)  # what a crashed or killed build left behind
    store: DuckDBStore | None = None
    spill = ExitStack()
    try:  # created inside the try: an interrupt while the file is being created removes it too
        store = DuckDBStore.create(staging, crs=crs)
        if memory is not None:
            limit_memory(store.connection, memory_mb=memory.share_mb(STORE_SHARE),
                         spill_to=spill.enter_context(memory.spill_folder()), spill_mb=memory.spill_mb)  # fmt: skip
        store.hold_records()  # nobody else reads the staging file: one commit for them all
        yield store
        store.write_held_records()
        store.connection.execute("CHECKPOINT")
        store.close()
        durable.replace(staging, path)
    except BaseException:
        if store is not None:
            store.close()
        staging.unlink(missing_ok=True)
        staging.with_name(staging.name + ".wal").unlink(missing_ok=True)
        raise
    finally:
        spill.close()
