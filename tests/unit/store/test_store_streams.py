"""A table streamed in (a ``RecordBatchReader``) on both backends: written batch by batch, and a stream
that fails half way leaves the table it was replacing as it was; likewise several tables filled from
one stream (``write_tables``, as the 3D readers fill theirs), all or nothing.

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


def _squares_and_counts(batches: int, *, fail_after: int | None = None) -> Iterator[dict[str, pa.Table]]:
    """Per batch: two squares (as in :func:`_stream`) for ``squares`` and their batch number for ``counts``."""
    for batch in _stream(batches, fail_after=fail_after):
        yield {
            "squares": pa.Table.from_batches([batch]),
            "counts": pa.table({"batch": [batch["n"][0].as_py() // 2]}),
        }


SCHEMAS = {
    "squares": pa.schema([("n", pa.int64()), ("geometry", pa.binary())]),
    "counts": pa.schema([("batch", pa.int64())]),
}


def test_several_tables_are_filled_from_one_stream_all_or_nothing(location: StoreLocation) -> None:
    with build_store(location, crs=CRS) as store:
        written = store.write_tables(_squares_and_counts(5), schemas=SCHEMAS)
        assert written == {"squares": 10, "counts": 5}
        squares = store.read_table("squares")
        assert squares["n"].tolist() == list(range(10))
        assert squares.geometry.area.tolist() == [4.0] * 10
        assert squares.geometry.bounds["minx"].tolist() == [
            0.0,
            5.0,
            10.0,
            15.0,
            20.0,
            25.0,
            30.0,
            35.0,
            40.0,
            45.0,
        ]
        assert store.read_table("counts")["batch"].tolist() == [0, 1, 2, 3, 4]
        with pytest.raises(OSError, match="spool"):  # after more batches than one commit holds
            store.write_tables(_squares_and_counts(7, fail_after=6), schemas=SCHEMAS)
        assert store.read_table("squares")["n"].tolist() == list(range(10))
        assert store.read_table("counts")["batch"].tolist() == [0, 1, 2, 3, 4]
        assert [t.name for t in store.tables()] == ["counts", "squares"]
        assert not store.has_table("_staging_squares") and not store.has_table("_staging_counts")
        assert store.write_tables(iter([]), schemas=SCHEMAS) == {"squares": 0, "counts": 0}
        assert {t.name: (t.rows, t.has_geometry) for t in store.tables()} == {
            "counts": (0, False),
            "squares": (0, True),
        }
