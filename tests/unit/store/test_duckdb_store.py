"""What is DuckDB's own: the file left byte for byte by a failed build, files that are no twin (the
interface on both backends: test_store.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pyarrow as pa
import pytest
import shapely

from civictwin.errors import StoreError
from civictwin.store.duckdb import DuckDBStore, build_store

CRS = "EPSG:32635"


def frame() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"name": ["a", "b", "c"], "kind": ["x", "y", "x"], "value": [1.5, 2.0, 3.25]},
        geometry=[shapely.box(0, 0, 10, 10), shapely.box(100, 100, 110, 120), shapely.Point(500, 500)],
        crs=CRS,
    )


def test_failed_rebuild_leaves_the_previous_twin_untouched(tmp_path: Path) -> None:
    path = tmp_path / "t.duckdb"
    with build_store(path, crs=CRS) as store:
        store.write_table("things", frame())
    before = path.read_bytes()
    with pytest.raises(RuntimeError), build_store(path, crs=CRS) as store:
        store.write_table("other", frame())
        raise RuntimeError("the build broke half way")
    assert path.read_bytes() == before
    assert not (tmp_path / "t.duckdb.building").exists()
    with DuckDBStore.open(path) as store:
        assert [t.name for t in store.tables()] == ["things"]


def test_opening_something_that_is_not_a_twin(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no twin store here"):
        DuckDBStore.open(tmp_path / "none.duckdb")
    junk = tmp_path / "junk.duckdb"
    junk.write_text("not a database")
    with pytest.raises(StoreError, match=r"junk\.duckdb"):
        DuckDBStore.open(junk)


def _stream(batches: int, *, fail_after: int | None = None) -> pa.RecordBatchReader:
    """``batches`` batches of two squares each (the i-th batch's squares at x = 10 i and 10 i + 5)."""
    schema = pa.schema([("n", pa.int64()), ("geometry", pa.binary())])

    def generate() -> Iterator[pa.RecordBatch]:
        for i in range(batches):
            if i == fail_after:
                raise OSError("the spool could not be read")
            squares = [shapely.box(10 * i, 0, 10 * i + 2, 2), shapely.box(10 * i + 5, 0, 10 * i + 7, 2)]
            yield pa.record_batch(
                [pa.array([2 * i, 2 * i + 1]), pa.array(shapely.to_wkb(squares))], schema=schema
            )

    return pa.RecordBatchReader.from_batches(schema, generate())


def test_a_stream_is_written_batch_by_batch_and_replaces_the_table_whole(tmp_path: Path) -> None:
    with DuckDBStore.create(tmp_path / "s.duckdb", crs=CRS) as store:
        assert store.write_table("squares", _stream(3)) == 6
        written = store.read_table("squares")
        assert written["n"].tolist() == [0, 1, 2, 3, 4, 5]
        assert written.geometry.area.tolist() == [4.0] * 6
        assert written.geometry.bounds["minx"].tolist() == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
        with pytest.raises(OSError, match="spool"):
            store.write_table("squares", _stream(3, fail_after=2))
        assert store.read_table("squares")["n"].tolist() == [0, 1, 2, 3, 4, 5]
        assert [t.name for t in store.tables()] == ["squares"]
        assert not store.has_table("_staging_squares")
        assert store.write_table("empty", _stream(0)) == 0
        assert store.tables()[0].name == "empty" and store.tables()[0].has_geometry
