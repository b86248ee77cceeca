"""A PostGIS build's local copy (store/mirror.py): the database gets every table as written, the
build's reads of them come from the local copy, and the copy is gone after the build."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pyarrow as pa
import pytest
import shapely

from civictwin.errors import StoreError
from civictwin.memory import BuildMemory
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
        target = store.target
        target.connection.execute(
            psycopg.sql.SQL("DELETE FROM {} WHERE n > 0").format(
                psycopg.sql.Identifier(target.schema, "things")
            )
        )  # behind the mirror's back: what it reads is its own copy, not the database's
        assert store.read_table("things")["n"].tolist() == [0, 1, 2, 3, 4]
        assert store.read_cell("things", (15.0, 15.0, 35.0, 35.0))["n"].tolist() == [2, 3]
        assert store.table_bounds("things") == (0.0, 0.0, 40.0, 40.0)
        assert {t.name: t.rows for t in store.tables()} == {"stream": 3, "things": 1}  # the database's
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
