"""The storage interface on both backends: round trips, filters, records, atomic and exclusive builds.

Every test runs once on a DuckDB file and once on a PostGIS database (a real server, see conftest.py),
through :mod:`civictwin.store.opening` only, and checks the same values on both.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from pyproj import Transformer

from civictwin.errors import StoreError
from civictwin.model.network import shared_nodes, usable_ways
from civictwin.store.base import version_of
from civictwin.store.opening import StoreLocation, build_store, open_store

CRS = "EPSG:32635"


@pytest.fixture(params=["duckdb", "postgis"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> StoreLocation:
    """Where a test's twin is stored: a new DuckDB file, or a new PostGIS database."""
    if request.param == "duckdb":
        return StoreLocation.of_file(tmp_path / "t.duckdb")
    return StoreLocation(kind="postgis", dsn=request.getfixturevalue("postgis_url"))


def frame() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"name": ["a", "b", "c"], "kind": ["x", "y", "x"], "value": [1.5, 2.0, 3.25]},
        geometry=[shapely.box(0, 0, 10, 10), shapely.box(100, 100, 110, 120), shapely.Point(500, 500)],
        crs=CRS,
    )


def test_round_trip_keeps_geometry_attributes_and_crs(location: StoreLocation) -> None:
    with build_store(location, crs=CRS) as store:
        assert store.write_table("things", frame()) == 3
        store.write_table("plain", pd.DataFrame({"k": [1, 2], "tags": [["a"], []]}))
    with open_store(location) as store:
        back = store.read_frame("things")
        assert back.crs == CRS
        assert back["name"].tolist() == ["a", "b", "c"] and back["value"].tolist() == [1.5, 2.0, 3.25]
        assert back.geometry.iloc[1].equals(shapely.box(100, 100, 110, 120))
        assert back.geometry.iloc[2].equals(shapely.Point(500, 500))
        infos = {t.name: t for t in store.tables()}
        assert sorted(infos) == ["plain", "things"]
        assert (infos["things"].rows, infos["things"].has_geometry) == (3, True)
        assert (infos["plain"].rows, infos["plain"].has_geometry) == (2, False)
        assert store.read_table("plain")["k"].tolist() == [1, 2]
        assert store.table_bounds("things") == (0.0, 0.0, 500.0, 500.0)
        assert store.table_bounds("plain") is None
        # the corners (0, 0) and (500, 500) of UTM 35N in longitude/latitude, as PROJ computes them
        to_wgs84 = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
        expected = (*to_wgs84.transform(0, 0), *to_wgs84.transform(500, 500))
        assert store.table_bounds("things", wgs84=True) == pytest.approx(expected, abs=1e-9)
        assert expected[0] == pytest.approx(22.511256, abs=1e-6) and expected[1] == 0
        assert store.sample_rows("things", columns=["name"], limit=2)["name"].tolist() == ["a", "b"]


def test_several_tables_bounds_at_once_are_each_tables_own(location: StoreLocation) -> None:
    with build_store(location, crs=CRS) as store:
        store.write_table("things", frame())
        store.write_table("far", gpd.GeoDataFrame({"k": [1]}, geometry=[shapely.Point(2000, 3000)], crs=CRS))
        store.write_table("none_yet", frame().iloc[:0])
        store.write_table("plain", pd.DataFrame({"k": [1, 2]}))
        names = ["things", "plain", "far", "none_yet", "things"]
        assert store.tables_bounds(names) == {
            "things": (0.0, 0.0, 500.0, 500.0), "far": (2000.0, 3000.0, 2000.0, 3000.0),
            "plain": None, "none_yet": None,
        }  # fmt: skip
        together = store.tables_bounds(names, wgs84=True)
        assert together == {name: store.table_bounds(name, wgs84=True) for name in names}
        to_wgs84 = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
        assert together["far"] == pytest.approx((*to_wgs84.transform(2000, 3000),) * 2, abs=1e-9)
        assert store.tables_bounds([]) == {}


def test_filters_by_bbox_columns_and_equality(location: StoreLocation) -> None:
    with build_store(location, crs=CRS) as store:
        store.write_table("things", frame())
        assert store.read_table("things", bbox=(90, 90, 600, 600))["name"].tolist() == ["b", "c"]
        assert store.read_table("things", where={"kind": "x"})["name"].tolist() == ["a", "c"]
        assert store.read_table("things", where={"name": ["a", "b"]})["name"].tolist() == ["a", "b"]
        assert store.read_table("things", where={"name": ("c",), "kind": "x"})["name"].tolist() == ["c"]
        assert store.read_table("things", where={"name": []}).empty
        assert store.read_table("things", bbox=(90, 90, 600, 600), where={"name": ["a", "c"]})[
            "name"
        ].tolist() == ["c"]
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


def test_records_are_json_by_kind_and_key(location: StoreLocation) -> None:
    with build_store(location, crs=CRS) as store:
        store.put_record("catalog", "things", {"rows": 3, "tags": ["a"]})
        store.put_record("catalog", "things", {"rows": 4, "checksum": {"sha256": "ab"}})
        assert store.records("catalog") == {"things": {"rows": 4, "checksum": {"sha256": "ab"}}}
        assert store.records("meta")["twin"] == {"crs": CRS}
        assert len(version_of(store)) == 32


def test_failed_rebuild_leaves_the_previous_twin_untouched(location: StoreLocation) -> None:
    with build_store(location, crs=CRS) as store:
        store.write_table("things", frame())
    with open_store(location) as store:
        before = version_of(store)
    with pytest.raises(RuntimeError), build_store(location, crs=CRS) as store:
        store.write_table("other", frame())
        raise RuntimeError("the build broke half way")
    with open_store(location) as store:
        assert [t.name for t in store.tables()] == ["things"] and version_of(store) == before
        assert store.read_table("things", columns=["name"])["name"].tolist() == ["a", "b", "c"]


def test_a_second_build_of_the_same_twin_is_refused_while_the_first_runs(location: StoreLocation) -> None:
    with build_store(location, crs=CRS) as first:
        first.write_table("things", frame())
        with pytest.raises(StoreError) as refused, build_store(location, crs=CRS):
            pass
        assert refused.value.user_message() == (
            f"{location.describe()}: another build of this twin is running; run this one when it has finished"
        )
        first.write_table("more", frame())  # the first build was left alone
    with open_store(location) as store:
        assert sorted(t.name for t in store.tables()) == ["more", "things"]
    with build_store(location, crs=CRS) as again:  # the lock went with the first build
        again.write_table("things", frame())
    with open_store(location) as store:
        assert [t.name for t in store.tables()] == ["things"]


def test_cells_give_every_row_to_exactly_one_cell(location: StoreLocation) -> None:
    """Rows go to the cell holding their bounding box's lower left corner: (0, 0), (100, 100), (500, 500);
    a corner on a border (x = 100) belongs to the cell on its right, and infinite bounds reach the rest."""
    inf = float("inf")
    with build_store(location, crs=CRS) as store:
        store.write_table("things", frame())
        store.write_table("plain", pd.DataFrame({"k": [1]}))
    with open_store(location) as store:
        names = {
            cell: sorted(store.read_cell("things", cell, columns=["name"])["name"].to_pylist())
            for cell in ((-inf, -inf, 100.0, inf), (100.0, -inf, 200.0, inf), (200.0, -inf, inf, 200.0),
                         (200.0, 200.0, inf, inf))
        }  # fmt: skip
        assert list(names.values()) == [["a"], ["b"], [], ["c"]]
        rows = store.read_cell("things", (0.0, 0.0, 1.0, 1.0))  # Arrow, the geometry as WKB
        assert rows.select(["name", "kind", "value"]).to_pylist() == [
            {"name": "a", "kind": "x", "value": 1.5}
        ]
        assert shapely.from_wkb(rows["geometry"][0].as_py()).equals(shapely.box(0, 0, 10, 10))
        with pytest.raises(StoreError, match="no geometry to partition by"):
            store.read_cell("plain", (-inf, -inf, inf, inf))


def test_shared_list_values_are_counted_over_rows_with_one_value_per_vertex(location: StoreLocation) -> None:
    """Node lists beside lines: 2 is in two rows, 7 twice in one (a loop); 5 and 10 are also in a row
    whose three values do not match its two vertices, 9 also in a one-vertex row (both rows left out,
    as the network leaves such ways out), so none of them counts: what the network finds itself."""
    lines = gpd.GeoDataFrame(
        {"refs": [[1, 2, 3], [4, 2, 5], [7, 8, 7], [5, 6, 10], [9]]},
        geometry=[shapely.LineString([(0, 0), (1, 0), (2, 0)]), shapely.LineString([(1, -1), (1, 0), (1, 1)]),
                  shapely.LineString([(5, 5), (6, 6), (5, 5)]), shapely.LineString([(9, 9), (10, 10)]),
                  shapely.Point(3, 3)],
        crs=CRS,
    )  # fmt: skip
    extra = gpd.GeoDataFrame({"refs": [[9, 10]]}, geometry=[shapely.LineString([(0, 5), (0, 6)])], crs=CRS)
    with build_store(location, crs=CRS) as store:
        store.write_table("ways", pd.concat([lines, extra], ignore_index=True))
        store.write_table("plain", pd.DataFrame({"refs": [[1, 1]]}))
    with open_store(location) as store:
        assert store.shared_list_values("ways", "refs").tolist() == [2, 7]
        ways = pd.concat([lines, extra], ignore_index=True).rename(columns={"refs": "node_refs"})
        assert shared_nodes(usable_ways(ways).refs).tolist() == [2, 7]
        with pytest.raises(StoreError, match="no list column 'nodes'"):
            store.shared_list_values("ways", "nodes")
        with pytest.raises(StoreError, match="no list column 'geometry'"):
            store.shared_list_values("ways", "geometry")
        with pytest.raises(StoreError, match="no list column 'refs' beside a geometry"):
            store.shared_list_values("plain", "refs")
