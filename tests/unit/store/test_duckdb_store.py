"""The DuckDB store: round trips, filters, records, and atomic builds."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
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


def test_round_trip_keeps_geometry_attributes_and_crs(tmp_path: Path) -> None:
    with build_store(tmp_path / "t.duckdb", crs=CRS) as store:
        assert store.write_table("things", frame()) == 3
        store.write_table("plain", pd.DataFrame({"k": [1, 2]}))
    with DuckDBStore.open(tmp_path / "t.duckdb") as store:
        back = store.read_frame("things")
        assert back.crs == CRS
        assert back["name"].tolist() == ["a", "b", "c"]
        assert back.geometry.iloc[1].equals(shapely.box(100, 100, 110, 120))
        infos = {t.name: t for t in store.tables()}
        assert (infos["things"].rows, infos["things"].has_geometry) == (3, True)
        assert (infos["plain"].rows, infos["plain"].has_geometry) == (2, False)
        assert store.table_bounds("things") == (0.0, 0.0, 500.0, 500.0)
        assert store.table_bounds("plain") is None


def test_filters_by_bbox_columns_and_equality(tmp_path: Path) -> None:
    with build_store(tmp_path / "t.duckdb", crs=CRS) as store:
        store.write_table("things", frame())
        assert store.read_table("things", bbox=(90, 90, 600, 600))["name"].tolist() == ["b", "c"]
        assert store.read_table("things", where={"kind": "x"})["name"].tolist() == ["a", "c"]
        only = store.read_table("things", columns=["name", "value"])
        assert list(only.columns) == ["name", "value"] and not isinstance(only, gpd.GeoDataFrame)
        with pytest.raises(StoreError, match="no column"):
            store.read_table("things", columns=["nope"])
        with pytest.raises(StoreError, match="no table 'missing'"):
            store.read_table("missing")
        for bad in ("bad; drop", 'quo"te', "1st", "a b", ""):
            with pytest.raises(StoreError, match="invalid table or column name"):
                store.write_table(bad, frame())
        assert store.write_table("Πληθυσμός_2021", frame()) == 3  # letters of any script are fine
        assert store.read_table("Πληθυσμός_2021", where={"kind": "y"})["name"].tolist() == ["b"]


def test_records_are_json_by_kind_and_key(tmp_path: Path) -> None:
    with build_store(tmp_path / "t.duckdb", crs=CRS) as store:
        store.put_record("catalog", "things", {"rows": 3, "tags": ["a"]})
        store.put_record("catalog", "things", {"rows": 4})
        assert store.records("catalog") == {"things": {"rows": 4}}
        assert store.records("meta")["twin"] == {"crs": CRS}


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


def test_a_second_build_of_the_same_twin_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    path = tmp_path / "t.duckdb"
    with build_store(path, crs=CRS) as first:
        first.write_table("things", frame())
        with pytest.raises(StoreError) as refused, build_store(path, crs=CRS):
            pass
        assert refused.value.user_message() == (
            f"{path}: another build of this twin is running; run this one when it has finished"
        )
        first.write_table("more", frame())  # the first build's file was left alone
    with DuckDBStore.open(path) as store:
        assert sorted(t.name for t in store.tables()) == ["more", "things"]
    with build_store(path, crs=CRS) as again:  # the lock went with the first build
        again.write_table("things", frame())
    with DuckDBStore.open(path) as store:
        assert [t.name for t in store.tables()] == ["things"]


def test_opening_something_that_is_not_a_twin(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no twin store here"):
        DuckDBStore.open(tmp_path / "none.duckdb")
    junk = tmp_path / "junk.duckdb"
    junk.write_text("not a database")
    with pytest.raises(StoreError, match=r"junk\.duckdb"):
        DuckDBStore.open(junk)
