"""What is DuckDB's own: the file left byte for byte by a failed build, files that are no twin (the
interface on both backends: test_store.py)."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import geopandas as gpd
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


def test_a_build_holds_its_records_and_writes_them_in_the_swapped_twin(tmp_path: Path) -> None:
    """The staging store keeps records in memory (one commit at the end), yet every read sees them."""
    path = tmp_path / "t.duckdb"
    with build_store(path, crs=CRS) as store:
        store.put_record("catalog", "b", {"n": 1})
        store.put_record("catalog", "a", {"n": 2})
        store.put_record("catalog", "b", {"n": 3})  # replaces the first
        store.write_table("things", frame())
        row = store.connection.execute("SELECT count(*) FROM _records WHERE kind = 'catalog'").fetchone()
        assert row == (0,)  # not written yet
        assert store.records("catalog") == {"a": {"n": 2}, "b": {"n": 3}}  # in key order
        marker = store.records("meta")["version"]["id"]
    with DuckDBStore.open(path) as store:
        assert store.records("catalog") == {"a": {"n": 2}, "b": {"n": 3}}
        assert store.records("meta")["version"]["id"] == marker  # the last marker, written once
        store_twin = store.records("meta")["twin"]
    assert store_twin == {"crs": CRS}


def test_new_twins_are_written_in_duckdb_1_5_storage(tmp_path: Path) -> None:
    """Native geometry storage; geometries come back as the very WKB that went in."""
    path = tmp_path / "t.duckdb"
    with build_store(path, crs=CRS) as store:
        store.write_table("things", frame())
    with DuckDBStore.open(path) as store:
        row = store.connection.execute(
            "SELECT tags['storage_version'] FROM duckdb_databases() WHERE NOT internal AND database_name = 't'"
        ).fetchone()
        assert row == ("v1.5.0+",)
        read = store.read_frame("things")
    assert (
        shapely.to_wkb(read.geometry.to_numpy()).tolist()
        == shapely.to_wkb(frame().geometry.to_numpy()).tolist()
    )


def test_a_thread_writer_writes_a_table_beside_the_build_and_the_swapped_twin_has_both(
    tmp_path: Path,
) -> None:
    """A second thread writes one table through :meth:`DuckDBStore.thread_writer` while the build's
    connection writes another and its records; the twin holds both tables, geometries included, and
    only the build's records (the writer's version markers are dropped)."""
    path = tmp_path / "t.duckdb"
    big = gpd.GeoDataFrame(
        {"n": list(range(50_000))}, geometry=shapely.points([(i, i % 97) for i in range(50_000)]), crs=CRS
    )
    with build_store(path, crs=CRS) as store:
        writer = store.thread_writer()

        def write_beside() -> int:
            try:
                return writer.write_table("beside", big)
            finally:
                writer.close()

        with ThreadPoolExecutor(max_workers=1) as pool:
            written = pool.submit(write_beside)
            store.write_table("things", frame())
            store.put_record("catalog", "things", {"n": 3})
            assert written.result() == 50_000
        assert store.has_table("beside")  # the build's connection sees the committed table
        marker = store.records("meta")["version"]["id"]
    with DuckDBStore.open(path) as store:
        assert {t.name: t.rows for t in store.tables()} == {"beside": 50_000, "things": 3}
        assert store.table_bounds("beside") == (0.0, 0.0, 49_999.0, 96.0)
        assert (
            store.read_table("beside", where={"n": 49_999})["geometry"]
            .iloc[0]
            .equals(shapely.Point(49_999, 44))
        )
        assert store.records("catalog") == {"things": {"n": 3}}
        assert store.records("meta")["version"]["id"] == marker


_SETTING = "SELECT current_setting('enable_progress_bar')"
_PROGRESS_BAR_CHECK = f"""
import duckdb
from civictwin.store.duckdb import connect
plain = duckdb.connect()
ours = connect(spatial=False)
print(plain.sql("{_SETTING}").fetchone()[0], ours.sql("{_SETTING}").fetchone()[0],
      ours.cursor().sql("{_SETTING}").fetchone()[0])
"""


def test_no_progress_bar_where_duckdb_would_draw_one() -> None:
    """A program given with ``python -c`` (no ``__main__`` file) is interactive to DuckDB, which then
    switches its stdout progress bar on; civictwin's connections and their cursors have it off."""
    ran = subprocess.run(
        [sys.executable, "-c", _PROGRESS_BAR_CHECK], capture_output=True, text=True, check=True, timeout=120
    )
    assert ran.stdout.split() == ["True", "False", "False"]
