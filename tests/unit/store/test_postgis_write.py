"""The PostGIS store's bulk write path (Arrow batches through binary or CSV ``COPY``): every value as
written, and the two formats storing the same."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pytest
import shapely
from pgtwin import PASSWORD, PostGIS

from civictwin.store.opening import StoreLocation, build_store
from civictwin.store.postgis import PostGISStore
from civictwin.store.postgis_copy import binary_copyable

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
            # integer lists are encoded column-wise by Arrow, except with a null inside (json.dumps)
            "refs": pa.array([[1, 2], [], None, [-(2**63)], [2**63 - 1, 0], [7], [0]], pa.list_(pa.int64())),
            "holes": pa.array([[1, None], [], None, [3], [4], [5], [6]], pa.list_(pa.int32())),
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
            "ST_AsText(geometry), ST_SRID(geometry), refs::text, holes FROM {} ORDER BY _fid"
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
    assert [r[15] for r in rows] == [  # jsonb's own text: the numbers exactly, whatever the input's spacing
        "[1, 2]", "[]", None, "[-9223372036854775808]", "[9223372036854775807, 0]", "[7]", "[0]",
    ]  # fmt: skip
    assert [r[16] for r in rows] == [[1, None], [], None, [3], [4], [5], [6]]


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


def every_type_table() -> pa.Table:
    """One column of each Arrow type the binary ``COPY`` encodes, nulls in each, and geometries of each
    shape: 2D, 3D, measured, multi, a collection, empty, big-endian WKB."""
    big_endian_point = (
        b"\x00\x00\x00\x00\x01" + bytes.fromhex("4004000000000000") + bytes.fromhex("c01c000000000000")
    )
    shapes = [
        shapely.LineString([(385_000.5, 6_672_000.25), (385_010.0, 6_672_005.0)]),
        shapely.Polygon([(0, 0, 0), (1, 0, 0), (1, 0, 3), (0, 0, 3)]),
        shapely.MultiPolygon([shapely.box(0, 0, 1, 1), shapely.box(2, 2, 3, 3)]),
        shapely.GeometryCollection([shapely.Point(1, 2), shapely.LineString([(0, 0), (1, 1)])]),
        shapely.Point(),
    ]
    geometries = [shapely.to_wkb(g) for g in shapes] + [None, big_endian_point]
    measured = shapely.to_wkb(shapely.from_wkt("POINT ZM (1 2 3 4)"), flavor="iso")
    geometries[4] = measured  # a 4D point (ISO type code 3001)
    return pa.table(
        {
            "i8": pa.array([-128, 127, None, 0, 1, 2, 3], pa.int8()),
            "i16": pa.array([-(2**15), 2**15 - 1, 0, None, 1, 2, 3], pa.int16()),
            "i32": pa.array([-(2**31), 2**31 - 1, 0, 1, None, 2, 3], pa.int32()),
            "i64": pa.array([-(2**63), 2**63 - 1, 0, 1, 2, None, 3], pa.int64()),
            "u8": pa.array([0, 255, 1, 2, 3, 4, None], pa.uint8()),
            "u16": pa.array([0, 2**16 - 1, None, 2, 3, 4, 5], pa.uint16()),
            "u32": pa.array([0, 2**32 - 1, 1, None, 3, 4, 5], pa.uint32()),
            "f16": pa.array(np.array([0.5, -2.0, 65504.0, 0.0, 1.0, 2.0, 3.0], np.float16)),
            "f32": pa.array([0.1, -0.0, math.inf, None, math.nan, 3.4e38, 1e-45], pa.float32()),
            "f64": pa.array([0.1, -0.0, -math.inf, 5e-324, None, 1.7976931348623157e308, math.pi]),
            "flag": pa.array([True, False, None, True, False, True, False]),
            "text": pa.array(TRICKY),
            "large_text": pa.array([None, "Töölö ✓", "", "a\\b", '"q"', "x", "y"], pa.large_string()),
            "nothing": pa.nulls(7),
            "day": pa.array(
                [
                    dt.date(1999, 12, 31),
                    dt.date(2000, 1, 1),
                    None,
                    dt.date(1970, 1, 1),
                    dt.date(2024, 2, 29),
                    dt.date(1, 1, 1),
                    dt.date(9999, 12, 31),
                ]
            ),
            "day64": pa.array([dt.date(2024, 2, 29)] * 6 + [None], pa.date64()),
            "seconds": pa.array([dt.datetime(1969, 7, 20, 20, 17, 40)] * 6 + [None], pa.timestamp("s")),
            "millis": pa.array([dt.datetime(2024, 1, 1, 12, 30, 15, 250_000)] * 7, pa.timestamp("ms")),
            "micros_utc": pa.array(
                [dt.datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC)] * 7, pa.timestamp("us", "UTC")
            ),
            "nanos": pa.array(
                [
                    1_700_000_000_123_456_700,
                    None,
                    1_700_000_000_123_456_501,
                    -1,
                    0,
                    1_700_000_000_000_000_001,
                    5,
                ],
                pa.timestamp("ns"),
            ),
            "kind": pa.array(["a", "b", "a", None, "b", "a", "b"]).dictionary_encode(),
            "tags": pa.array([["x", "y"], [], None, ["z"], ["Töölö"], ["y"], ["q"]]),
            "record": pa.array([{"a": 1, "b": "x"}, None, {"a": None, "b": ""}] + [{"a": 2, "b": "y"}] * 4),
            "blob": pa.array([b"\x00\xff", None, b"", b"a", b"\\x", b"c", b"d"]),
            "large_blob": pa.array([b"", b"\x00", None, b"abc", b"\n", b"\r", b","], pa.large_binary()),
            "geometry": pa.array(geometries, pa.binary()),
        }
    )


def as_text(url: str, monkeypatch: pytest.MonkeyPatch, *, binary: bool) -> list[tuple[object, ...]]:
    """Every stored value of :func:`every_type_table` as the server's text output (the geometry as its
    EWKB and WKT), written through binary ``COPY`` or, with ``binary`` False, through CSV."""
    import civictwin.store.postgis as postgis

    monkeypatch.setattr(postgis, "binary_copyable", lambda schema: binary)
    store = written(url, every_type_table())
    names = [n for n in every_type_table().column_names if n != "geometry"]
    query = psycopg.sql.SQL(
        "SELECT _fid, {}, ST_AsEWKB(geometry), ST_AsEWKT(geometry) FROM {} ORDER BY _fid"
    ).format(
        psycopg.sql.SQL(", ").join(
            psycopg.sql.SQL("{}::text").format(psycopg.sql.Identifier(n)) for n in names
        ),
        psycopg.sql.Identifier(store.schema, "things"),
    )
    rows = store.connection.execute(query).fetchall()
    store.close()
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]


def test_binary_copy_stores_every_type_as_the_csv_copy_does(
    postgis: PostGIS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    through_csv = as_text(postgis.new_database(), monkeypatch, binary=False)
    through_binary = as_text(postgis.new_database(), monkeypatch, binary=True)
    assert through_binary == through_csv  # every column's text, byte for byte
    first = through_binary[0]
    assert first[1:5] == ("-128", "-32768", "-2147483648", "-9223372036854775808")
    assert first[-1] == "SRID=32635;LINESTRING(385000.5 6672000.25,385010 6672005)"
    nanos = [row[20] for row in through_binary]  # rounded half to even to microseconds, as PostgreSQL does
    assert nanos[0] == "2023-11-14 22:13:20.123457" and nanos[2] == "2023-11-14 22:13:20.123457"
    assert nanos[3] == "1970-01-01 00:00:00" and nanos[5] == "2023-11-14 22:13:20"
    assert [row[-1] for row in through_binary[1:]] == [
        "SRID=32635;POLYGON((0 0 0,1 0 0,1 0 3,0 0 3,0 0 0))",
        "SRID=32635;MULTIPOLYGON(((1 0,1 1,0 1,0 0,1 0)),((3 2,3 3,2 3,2 2,3 2)))",
        "SRID=32635;GEOMETRYCOLLECTION(POINT(1 2),LINESTRING(0 0,1 1))",
        "SRID=32635;POINT(1 2 3 4)",
        None,
        "SRID=32635;POINT(2.5 -7)",
    ]


def test_a_type_without_a_binary_encoder_goes_through_csv(postgis_url: str) -> None:
    table = pa.table({"big": pa.array([2**64 - 1, None], pa.uint64()), "n": pa.array([1, 2])})
    assert not binary_copyable(table.schema) and binary_copyable(table.select(["n"]).schema)
    store = written(postgis_url, table)
    rows = store.read_table("things")
    store.close()
    assert [None if pd.isna(v) else int(v) for v in rows["big"]] == [2**64 - 1, None]
