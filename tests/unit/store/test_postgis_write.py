"""The PostGIS store's bulk write path (Arrow batches through CSV ``COPY``): every value as written."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator

import psycopg
import pyarrow as pa
import pytest
import shapely

from civictwin.store.opening import StoreLocation, build_store
from civictwin.store.postgis import PostGISStore

CRS = "EPSG:32635"
TRICKY = ['he said "hi", then left', "two\nlines", "", "tab\there", "Töölö ✓", "back\\slash", "NULL"]


def tricky_table() -> pa.Table:
    """One column of each kind the store writes, with the values CSV could get wrong."""
    rows = len(TRICKY)
    line = shapely.LineString([(385_000.5, 6_672_000.25), (385_010.0, 6_672_005.0)])
    wall = shapely.Polygon([(0, 0, 0), (1, 0, 0), (1, 0, 3), (0, 0, 3)])
    geometries = [shapely.to_wkb(line), None, shapely.to_wkb(wall)] + [
        shapely.to_wkb(shapely.Point(i, i)) for i in range(rows - 3)
    ]
    return pa.table(
        {
            "label": pa.array(TRICKY),
            "maybe": pa.array([None, "x", None, "", None, "y", None]),
            "count": pa.array([0, -1, 2**40, None, 5, 6, 7], pa.int64()),
            "small": pa.array([0, 255, 1, 2, 3, 4, 5], pa.uint8()),
            "ratio": pa.array([0.1, math.nan, math.inf, -math.inf, None, 1e-300, 123456.789012345]),
            "flag": pa.array([True, False, None, True, False, True, False]),
            "day": pa.array([dt.date(2024, 2, 29)] * rows),
            "seen": pa.array([dt.datetime(2024, 1, 1, 12, 30, 15, 250_000)] * rows, pa.timestamp("us")),
            "seen_utc": pa.array(
                [dt.datetime(2024, 6, 1, 8, 0, tzinfo=dt.UTC)] * rows, pa.timestamp("ns", "UTC")
            ),
            "kind": pa.array(["a", "b", "a", None, "b", "a", "b"]).dictionary_encode(),
            "tags": pa.array([["x", "y"], [], None, ["z"], ["x"], ["y"], ["q"]]),
            "blob": pa.array([b"\x00\xff", None, b"", b"a", b"b", b"c", b"d"]),
            "geometry": pa.array(geometries, pa.binary()),
        }
    )


def written(url: str, table: pa.Table | pa.RecordBatchReader, name: str = "things") -> PostGISStore:
    location = StoreLocation(kind="postgis", dsn=url)
    with build_store(location, crs=CRS) as store:
        store.write_table(name, table)
    opened = PostGISStore.open(url)
    return opened


def test_every_kind_of_value_is_stored_as_written(postgis_url: str) -> None:
    store = written(postgis_url, tricky_table())
    rows = store.connection.execute(
        psycopg.sql.SQL(
            "SELECT _fid, label, maybe, count, small, ratio, flag, day, seen, seen_utc, kind, tags, blob, "
            "ST_AsText(geometry), ST_SRID(geometry) FROM {} ORDER BY _fid"
        ).format(psycopg.sql.Identifier(store.schema, "things"))
    ).fetchall()
    store.close()
    assert [r[0] for r in rows] == list(range(7))  # ids in the written order, from 0
    assert [r[1] for r in rows] == TRICKY  # quotes, newline, empty, tab, unicode, backslash, the word NULL
    assert [r[2] for r in rows] == [None, "x", None, "", None, "y", None]  # null and empty stay apart
    assert [r[3] for r in rows] == [0, -1, 2**40, None, 5, 6, 7]
    assert [r[4] for r in rows] == [0, 255, 1, 2, 3, 4, 5]
    ratios = [r[5] for r in rows]
    assert ratios[0] == 0.1 and math.isnan(ratios[1]) and ratios[2:5] == [math.inf, -math.inf, None]
    assert ratios[5:] == [1e-300, 123456.789012345]  # floats round-trip to the last bit
    assert [r[6] for r in rows] == [True, False, None, True, False, True, False]
    assert {r[7] for r in rows} == {dt.date(2024, 2, 29)}
    assert {r[8] for r in rows} == {dt.datetime(2024, 1, 1, 12, 30, 15, 250_000)}
    assert {r[9] for r in rows} == {dt.datetime(2024, 6, 1, 8, 0, tzinfo=dt.UTC)}
    assert [r[10] for r in rows] == ["a", "b", "a", None, "b", "a", "b"]  # dictionary decoded to text
    assert [r[11] for r in rows] == [["x", "y"], [], None, ["z"], ["x"], ["y"], ["q"]]  # jsonb
    assert [None if r[12] is None else bytes(r[12]) for r in rows] == [
        b"\x00\xff",
        None,
        b"",
        b"a",
        b"b",
        b"c",
        b"d",
    ]
    assert rows[0][13] == "LINESTRING(385000.5 6672000.25,385010 6672005)"
    assert rows[1][13] is None
    assert rows[2][13] == "POLYGON Z ((0 0 0,1 0 0,1 0 3,0 0 3,0 0 0))"
    assert {r[14] for r in rows if r[13] is not None} == {32635}


def test_the_geometry_column_has_the_store_srid_and_an_index(postgis_url: str) -> None:
    store = written(postgis_url, tricky_table())
    con = store.connection
    typed = con.execute(
        "SELECT type, srid FROM geometry_columns WHERE f_table_schema = %s AND f_table_name = 'things'",
        [store.schema],
    ).fetchall()
    indexes = con.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = 'things' ORDER BY indexdef",
        [store.schema],
    ).fetchall()
    store.close()
    assert typed == [("GEOMETRY", 32635)]  # through the SRID check: 2D and 3D share the column
    assert sorted(str(row[0]).split(" USING ")[1] for row in indexes) == ["btree (_fid)", "gist (geometry)"]


def batches(count: int, *, fail_at: int | None = None) -> Iterator[pa.RecordBatch]:
    """``count`` batches of 1,000 numbered points (sliced out of one array: offsets other than 0)."""
    points = shapely.to_wkb([shapely.Point(i, -i) for i in range(count * 1000 + 1)])
    whole = pa.record_batch(
        {"n": pa.array(range(count * 1000 + 1)), "geometry": pa.array(points, pa.binary())}
    )
    for i in range(count):
        if i == fail_at:
            raise RuntimeError("the source broke")
        yield whole.slice(1 + i * 1000, 1000)


def test_ids_follow_the_order_of_a_stream_of_batches(postgis_url: str) -> None:
    schema = pa.schema([("n", pa.int64()), ("geometry", pa.binary())])
    store = written(postgis_url, pa.RecordBatchReader.from_batches(schema, batches(3)))
    frame = store.read_table("things")
    pairs = store.connection.execute(
        psycopg.sql.SQL("SELECT _fid, n, ST_X(geometry) FROM {} ORDER BY _fid").format(
            psycopg.sql.Identifier(store.schema, "things")
        )
    ).fetchall()
    store.close()
    assert len(frame) == 3000
    assert pairs == [(i, i + 1, float(i + 1)) for i in range(3000)]


def test_a_write_that_fails_midway_leaves_the_table_it_replaces(postgis_url: str) -> None:
    schema = pa.schema([("n", pa.int64()), ("geometry", pa.binary())])
    location = StoreLocation(kind="postgis", dsn=postgis_url)
    with build_store(location, crs=CRS) as store:
        store.write_table("things", pa.RecordBatchReader.from_batches(schema, batches(2)))
        with pytest.raises(RuntimeError, match="the source broke"):
            store.write_table("things", pa.RecordBatchReader.from_batches(schema, batches(3, fail_at=2)))
        assert len(store.read_table("things")) == 2000


def test_a_write_inside_a_callers_transaction_is_rolled_back_with_it(postgis_url: str) -> None:
    schema = pa.schema([("n", pa.int64()), ("geometry", pa.binary())])
    location = StoreLocation(kind="postgis", dsn=postgis_url)
    with build_store(location, crs=CRS) as store:
        assert isinstance(store, PostGISStore)
        store.write_table("things", pa.RecordBatchReader.from_batches(schema, batches(1)))
        with pytest.raises(RuntimeError, match="the caller gave up"), store.connection.transaction():
            store.write_table("things", pa.RecordBatchReader.from_batches(schema, batches(2)))
            assert len(store.read_table("things")) == 2000  # (not frozen: nested in the caller's)
            raise RuntimeError("the caller gave up")
        assert len(store.read_table("things")) == 1000
