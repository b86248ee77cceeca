"""A table streamed in (a ``RecordBatchReader``, as the 3D readers' spool is) on both backends: written
batch by batch, and a stream that fails half way leaves the table it was replacing as it was.

Every test runs once on a DuckDB file and once on a PostGIS database (a real server, see conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
import shapely

from civictwin.store.opening import StoreLocation, build_store

CRS = "EPSG:32635"


@pytest.fixture(params=["duckdb", "postgis"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> StoreLocation:
    """Where a test's twin is stored: a new DuckDB file, or a new PostGIS database."""
    if request.param == "duckdb":
        return StoreLocation.of_file(tmp_path / "t.duckdb")
    return StoreLocation(kind="postgis", dsn=request.getfixturevalue("postgis_url"))


def _stream(batches: int, *, fail_after: int | None = None) -> pa.RecordBatchReader:
    """``batches`` batches of two 2 × 2 m squares each (the i-th batch's at x = 10 i and 10 i + 5)."""
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


def test_a_stream_is_written_batch_by_batch_and_replaces_the_table_whole(location: StoreLocation) -> None:
    with build_store(location, crs=CRS) as store:
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
