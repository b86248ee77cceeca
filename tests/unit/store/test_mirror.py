"""A PostGIS build's local copy (store/mirror.py): the database gets every table as written (on a
worker thread, over a connection of its own), the build's reads of them come from the local copy,
and the copy is gone after the build."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest
import shapely

from civictwin.errors import StoreError
from civictwin.memory import BuildMemory
from civictwin.store.base import VERSION_KEY
from civictwin.store.mirror import MirroredStore
from civictwin.store.opening import StoreLocation, build_store
from civictwin.store.postgis import PostGISStore

CRS = "EPSG:32635"


def points(count: int) -> pa.Table:
    """``count`` numbered points on a diagonal, 10 m apart."""
    wkb = shapely.to_wkb([shapely.Point(10.0 * i, 10.0 * i) for i in range(count)])
    return pa.table({"n": pa.array(range(count)), "geometry": pa.array(wkb, pa.binary())})


def test_reads_come_from_the_local_copy_and_the_database_gets_every_row(
    postgis_url: str, tmp_path: Path
) -> None:
    memory = BuildMemory(budget_mb=256, temp_dir=tmp_path)
    location = StoreLocation(kind="postgis", dsn=postgis_url)
    with build_store(location, crs=CRS, memory=memory, local_reads=True) as store:
        assert isinstance(store, MirroredStore) and isinstance(store.target, PostGISStore)
        assert store.write_table("things", points(5)) == 5
        stream = pa.RecordBatchReader.from_batches(points(3).schema, points(3).to_batches(max_chunksize=2))
        assert (
            store.write_table("stream", stream) == 3
        )  # read once: the database's copy comes from the local one
        store.finish()  # the worker thread's copies are in the database
        target = store.target
        target.connection.execute(
            psycopg.sql.SQL("DELETE FROM {} WHERE n > 0").format(
                psycopg.sql.Identifier(target.schema, "things")
            )
        )  # behind the mirror's back: what it reads is its own copy, not the database's
        assert store.read_table("things")["n"].tolist() == [0, 1, 2, 3, 4]
        assert store.read_cell("things", (15.0, 15.0, 35.0, 35.0))["n"].to_pylist() == [2, 3]
        assert store.table_bounds("things") == (0.0, 0.0, 40.0, 40.0)
        # the rows as written (the local copy's counts: no count(*) of a table through the server)
        assert {t.name: t.rows for t in store.tables()} == {"stream": 3, "things": 5}
        assert len(list(tmp_path.iterdir())) == 1  # the local copy's folder, under the build's temp_dir
    assert list(tmp_path.iterdir()) == []  # removed with the build
    served = PostGISStore.open(postgis_url)
    stream_rows = served.read_table("stream")
    assert stream_rows["n"].tolist() == [0, 1, 2]
    assert [(p.x, p.y) for p in stream_rows.geometry] == [(0.0, 0.0), (10.0, 10.0), (20.0, 20.0)]
    assert served.records("meta")["twin"] == {"crs": CRS}
    served.close()


def test_without_local_reads_the_build_gets_the_database_store(postgis_url: str, tmp_path: Path) -> None:
    location = StoreLocation(kind="postgis", dsn=postgis_url)
    memory = BuildMemory(budget_mb=256, temp_dir=tmp_path)
    with build_store(location, crs=CRS, memory=memory) as store:
        assert isinstance(store, PostGISStore)


def test_a_failed_build_leaves_no_local_copy_and_no_twin(postgis_url: str, tmp_path: Path) -> None:
    location = StoreLocation(kind="postgis", dsn=postgis_url)
    memory = BuildMemory(budget_mb=256, temp_dir=tmp_path)
    with (
        pytest.raises(RuntimeError, match="midway"),
        build_store(location, crs=CRS, memory=memory, local_reads=True) as store,
    ):
        store.write_table("things", points(2))
        raise RuntimeError("midway")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(StoreError, match="no twin in this database"):
        PostGISStore.open(postgis_url)


def test_the_database_gets_each_table_in_its_last_version_once_the_build_ends(
    postgis_url: str, tmp_path: Path
) -> None:
    """Tables rewritten while earlier versions wait or are being copied: the database holds the last
    one, every row of it, in write order; the version marker is replaced once everything is there."""
    memory = BuildMemory(budget_mb=256, temp_dir=tmp_path)
    location = StoreLocation(kind="postgis", dsn=postgis_url)
    with build_store(location, crs=CRS, memory=memory, local_reads=True) as store:
        assert isinstance(store, MirroredStore)
        store.write_table("big", points(200_000))
        store.write_table("things", points(4))
        store.write_table("things", points(7))  # the 4-row version may be dropped before it is copied
        big = points(5)
        stream = pa.RecordBatchReader.from_batches(big.schema, big.to_batches(max_chunksize=2))
        store.write_table("big", stream)  # waits for the 200,000-row copy, which reads the local table
        assert {t.name: t.rows for t in store.tables()} == {"big": 5, "things": 7}
        before = store.records("meta")[VERSION_KEY]
    served = PostGISStore.open(postgis_url)
    assert served.read_table("things")["n"].tolist() == list(range(7))
    assert served.read_table("big")["n"].tolist() == [0, 1, 2, 3, 4]
    assert {t.name: t.rows for t in served.tables()} == {"big": 5, "things": 7}
    assert served.records("meta")[VERSION_KEY] != before  # marked after the last table arrived
    served.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("mirror-copy")]


def test_a_copy_the_database_refuses_fails_the_build_in_one_error_and_leaves_no_twin(
    postgis_url: str, tmp_path: Path
) -> None:
    """A value DuckDB keeps but PostgreSQL refuses (a NUL character in text): the worker thread's
    error is raised on the build's thread, at the latest when the block ends, and nothing is served."""
    memory = BuildMemory(budget_mb=256, temp_dir=tmp_path)
    location = StoreLocation(kind="postgis", dsn=postgis_url)
    with (
        pytest.raises(psycopg.errors.CharacterNotInRepertoire),
        build_store(location, crs=CRS, memory=memory, local_reads=True) as store,
    ):
        store.write_table("names", pa.table({"name": ["a\x00b"]}))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(StoreError, match="no twin in this database"):
        PostGISStore.open(postgis_url)
    assert not [t for t in threading.enumerate() if t.name.startswith("mirror-copy")]


def test_a_build_failing_while_a_table_is_copied_stops_the_copy_and_leaves_no_twin(
    postgis_url: str, tmp_path: Path
) -> None:
    location = StoreLocation(kind="postgis", dsn=postgis_url)
    memory = BuildMemory(budget_mb=256, temp_dir=tmp_path)
    with (
        pytest.raises(RuntimeError, match="midway"),
        build_store(location, crs=CRS, memory=memory, local_reads=True) as store,
    ):
        store.write_table("big", points(300_000))
        raise RuntimeError("midway")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(StoreError, match="no twin in this database"):
        PostGISStore.open(postgis_url)
    assert not [t for t in threading.enumerate() if t.name.startswith("mirror-copy")]


def test_tables_waiting_for_their_copy_hold_at_most_the_stores_share_of_the_budget(
    postgis_url: str, tmp_path: Path
) -> None:
    """A 128 MB budget gives the store 32 MB: one 600,000-point table (19.8 MB of Arrow) fits, the
    second waits until the first is in the database."""
    memory = BuildMemory(budget_mb=128, temp_dir=tmp_path)
    location = StoreLocation(kind="postgis", dsn=postgis_url)
    table = points(600_000)
    assert table.nbytes == 19_800_000  # 8 bytes of number, 21 of WKB point and 4 of offset per row
    with build_store(location, crs=CRS, memory=memory, local_reads=True) as store:
        assert isinstance(store, MirroredStore) and isinstance(store.target, PostGISStore)
        store.write_table("first", table)
        store.write_table("second", table)
        database = PostGISStore(
            psycopg.connect(postgis_url, autocommit=True),
            schema=store.target.schema,
            crs=CRS,
            dsn=postgis_url,
        )
        assert database.has_table("first")  # committed before the second was handed over
        database.close()
    served = PostGISStore.open(postgis_url)
    assert {t.name: t.rows for t in served.tables()} == {"first": 600_000, "second": 600_000}
    served.close()
