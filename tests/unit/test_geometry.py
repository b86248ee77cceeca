"""Properties of :func:`civictwin.geometry.prepare_geometries` over generated batches, plus fixed cases.

Batches mix points, rectangles, self-intersecting "bow-tie" polygons, empty and missing geometries,
around and outside a test area in central Helsinki.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Transformer
from shapely.geometry import LineString, Point, Polygon, box
from shapely.geometry.base import BaseGeometry

from civictwin.geometry import (
    WGS84,
    GeometryArray,
    GeometryReport,
    prepare_geometries,
    project_in_place,
    reproject,
    utm_crs_for,
    vertices_wgs84_extent,
    wgs84_extent,
    wkb_linestrings,
    wkb_points,
    wkb_vertices,
)
from civictwin.store.duckdb import DuckDBStore

METRIC = "EPSG:32635"
AREA_WGS84 = box(24.92, 60.16, 24.96, 60.18)
AREA = reproject(np.array([AREA_WGS84], dtype=object), WGS84, METRIC)[0]

lons = st.floats(24.85, 25.05, allow_nan=False)
lats = st.floats(60.12, 60.22, allow_nan=False)
sizes = st.floats(0.0005, 0.02, allow_nan=False)


@st.composite
def points(draw: st.DrawFn) -> BaseGeometry:
    return Point(draw(lons), draw(lats))


@st.composite
def rectangles(draw: st.DrawFn) -> BaseGeometry:
    x, y, w, h = draw(lons), draw(lats), draw(sizes), draw(sizes)
    return box(x, y, x + w, y + h)


@st.composite
def bow_ties(draw: st.DrawFn) -> BaseGeometry:
    """A polygon whose boundary crosses itself once: invalid, repairable into two triangles."""
    x, y, w, h = draw(lons), draw(lats), draw(sizes), draw(sizes)
    return Polygon([(x, y), (x + w, y + h), (x + w, y), (x, y + h), (x, y)])


geometries = st.one_of(points(), rectangles(), bow_ties(), st.just(None), st.just(Polygon()))
batches = st.lists(geometries, max_size=30)


def _prepare(
    batch: list[BaseGeometry | None], area: BaseGeometry | None = AREA
) -> tuple[npt.NDArray[np.bool_], GeometryArray, GeometryReport]:
    return prepare_geometries(np.array(batch, dtype=object), source_crs=WGS84, target_crs=METRIC, area=area)


@settings(max_examples=60, deadline=None)
@given(batches)
def test_every_feature_is_accounted_for(batch: list[BaseGeometry | None]) -> None:
    mask, kept, report = _prepare(batch)
    assert report.received == len(batch)
    assert report.kept + report.missing + report.dropped_unrepairable + report.outside_area == report.received
    assert int(mask.sum()) == len(kept) == report.kept
    assert report.repaired + report.dropped_unrepairable == report.invalid
    assert report.missing == sum(g is None or g.is_empty for g in batch)


@settings(max_examples=60, deadline=None)
@given(batches)
def test_kept_geometries_are_valid_and_touch_the_area(batch: list[BaseGeometry | None]) -> None:
    _mask, kept, _report = _prepare(batch)
    assert all(shapely.is_valid(g) for g in kept)
    assert all(g.intersects(AREA) for g in kept)


@settings(max_examples=60, deadline=None)
@given(st.lists(bow_ties(), min_size=1, max_size=10))
def test_bow_ties_are_repaired_into_polygons_of_the_same_area(batch: list[BaseGeometry]) -> None:
    _mask, kept, report = _prepare(batch, area=None)
    assert report.invalid == report.repaired == len(batch)
    assert report.kept == len(batch)
    for original, fixed in zip(batch, kept, strict=True):
        assert fixed.geom_type in ("Polygon", "MultiPolygon")
        # the two triangles of a bow-tie cover half its bounding box
        projected_box = reproject(np.array([box(*original.bounds)], dtype=object), WGS84, METRIC)[0]
        assert fixed.area == pytest.approx(projected_box.area / 2, rel=1e-3)


@settings(max_examples=40, deadline=None)
@given(batches)
def test_without_an_area_nothing_is_outside(batch: list[BaseGeometry | None]) -> None:
    _mask, _kept, report = _prepare(batch, area=None)
    assert report.outside_area == 0


def test_fixed_batch_counts() -> None:
    inside = Point(24.94, 60.17)
    outside = Point(25.2, 60.3)
    collapsing = Polygon(
        [(24.93, 60.17), (24.95, 60.17), (24.93, 60.17)]
    )  # there and back: repair yields a line
    batch = [inside, outside, None, Polygon(), collapsing, LineString([(24.93, 60.17), (24.95, 60.17)])]
    mask, kept, report = _prepare(batch)
    assert report.as_dict() == {
        "received": 6,
        "missing_geometry": 2,
        "invalid_geometry": 1,
        "repaired_geometry": 0,
        "dropped_unrepairable": 1,
        "outside_area": 1,
        "kept": 2,
    }
    assert list(mask) == [True, False, False, False, False, True]
    assert [g.geom_type for g in kept] == ["Point", "LineString"]


def test_coordinates_that_cannot_be_placed_are_invalid_and_dropped() -> None:
    # latitude 95°, and a point 90° of longitude from zone 35's meridian: both project to infinity
    batch = [
        Point(24.94, 60.17),
        Point(24.95, 95.0),
        LineString([(24.94, 60.17), (24.95, 95.0)]),
        Point(117.0, 0.0),
        Polygon([(24.93, 60.17), (24.95, 60.17), (24.94, 60.175)]),
    ]
    mask, kept, report = _prepare(batch)
    assert report == GeometryReport(
        received=5, missing=0, invalid=3, repaired=0, dropped_unrepairable=3, outside_area=0
    )
    assert report.kept == 2 and list(mask) == [True, False, False, False, True]
    assert np.isfinite(shapely.get_coordinates(kept)).all()


def test_reprojection_to_the_utm_zone() -> None:
    assert utm_crs_for(24.94, 60.17) == METRIC
    _mask, kept, _report = _prepare([Point(27.0, 0.0)], area=None)  # central meridian of zone 35
    assert kept[0].x == pytest.approx(500_000.0)
    assert kept[0].y == pytest.approx(0.0, abs=1e-6)


def test_wgs84_extent_in_memory_is_the_stores_to_the_bit(tmp_path: Path) -> None:
    """The extent a build computes from geometries it holds is what the store computes from the same
    rows (the catalogue's extent must not depend on which of the two made it)."""
    lines = np.array([
        LineString([(500_000, 0), (500_000, 1_000)]),  # zone 35's central meridian (27° E) at the equator
        LineString([(385_000, 6_670_000), (390_000, 6_675_000), (386_000, 6_680_000)]),  # Helsinki
    ], dtype=object)  # fmt: skip
    extent = wgs84_extent(lines, METRIC)
    assert extent is not None
    assert extent[1] == pytest.approx(0.0, abs=1e-9)
    assert extent[2] == pytest.approx(27.0, abs=1e-9)
    assert 24.9 < extent[0] < 25.0 and 60.1 < extent[3] < 60.3
    store = DuckDBStore.create(tmp_path / "twin.duckdb", crs=METRIC)
    store.write_table("lines", gpd.GeoDataFrame({"n": [1, 2]}, geometry=lines, crs=METRIC))
    assert store.table_bounds("lines", wgs84=True) == extent
    store.close()
    assert wgs84_extent(np.array([], dtype=object), METRIC) is None


def _wkb(geoms: list[BaseGeometry], **kwargs: object) -> pa.Array:
    return pa.array(list(shapely.to_wkb(np.array(geoms, dtype=object), **kwargs)), type=pa.binary())


def _xy(wkb: pa.Array | pa.ChunkedArray) -> tuple[list[list[float]], list[int]]:
    vertices = wkb_vertices(wkb)
    assert vertices is not None
    return vertices[0].tolist(), vertices[1].tolist()


def test_wkb_vertices_of_points_and_lines_straight_from_the_bytes() -> None:
    """Points and line strings (the OSM reader's point and road layers) are read from their bytes, in
    the order their geometries hold them, with each one's number of vertices; a slice of a larger
    array reads only its own rows."""
    points = _wkb([Point(1.5, -2.0), Point(385_000.25, 6_672_000.5)])
    assert _xy(points) == ([[1.5, -2.0], [385_000.25, 6_672_000.5]], [1, 1])
    lines = _wkb([
        LineString([(0, 0), (3, 4)]), LineString([(10, 11), (12, 13), (14, 15.5)]), LineString([(7, 8), (9, 9)])
    ])  # fmt: skip
    assert _xy(lines) == ([[0, 0], [3, 4], [10, 11], [12, 13], [14, 15.5], [7, 8], [9, 9]], [2, 3, 2])
    assert _xy(lines.slice(1, 1)) == ([[10, 11], [12, 13], [14, 15.5]], [3])
    assert _xy(pa.chunked_array([lines.slice(0, 1), lines.slice(2, 1)])) == (
        [[0, 0], [3, 4], [7, 8], [9, 9]],
        [2, 2],
    )
    assert _xy(pa.array(lines.to_pylist(), type=pa.large_binary())) == _xy(lines)


def test_wkb_vertices_leave_what_needs_a_parser_to_one() -> None:
    """None (Shapely parses them instead) for polygons, a mix of points and lines, big-endian or 3D
    geometries, nulls and nothing at all."""
    square = box(0, 0, 1, 1)
    assert wkb_vertices(_wkb([square])) is None
    assert wkb_vertices(_wkb([Point(0, 0), LineString([(0, 0), (1, 1)])])) is None
    assert wkb_vertices(_wkb([Point(0, 0)], byte_order=0)) is None
    assert wkb_vertices(_wkb([Point(0, 0, 5)], output_dimension=3)) is None
    assert wkb_vertices(pa.array([None], type=pa.binary())) is None
    assert wkb_vertices(pa.array([], type=pa.binary())) is None


def test_extent_from_the_bytes_is_shapelys_to_the_bit() -> None:
    """The vertices read from the bytes give the extent :func:`wgs84_extent` gives for the parsed lines."""
    lines = [
        LineString([(385_000.125, 6_670_000), (390_000, 6_675_000.5)]),
        LineString([(386_000, 6_680_000), (385_500, 6_671_000)]),
    ]
    xy, _counts = _xy(_wkb(lines))
    assert vertices_wgs84_extent(np.array(xy), METRIC) == wgs84_extent(np.array(lines, dtype=object), METRIC)
    assert vertices_wgs84_extent(np.empty((0, 2)), METRIC) is None


def test_wkb_written_from_the_numbers_is_shapelys_to_the_byte() -> None:
    """Lines and points written as WKB from their vertices are the bytes :func:`shapely.to_wkb` gives:
    eleven lines of 2 to 12 vertices, so that their coordinates start at every offset modulo 8."""
    lines = [LineString([(1000.5 * i + k, 250.25 * k - i) for k in range(2 + i)]) for i in range(11)]
    coords = shapely.get_coordinates(np.array(lines, dtype=object))
    written = wkb_linestrings(coords, np.array([2 + i for i in range(11)], dtype=np.int64))
    assert written.type == pa.binary()
    assert written.to_pylist() == list(shapely.to_wkb(np.array(lines, dtype=object)))
    # byte order 1 (little-endian), type 2 (line string), 2 vertices, then x, y of each
    assert written[0].as_py() == bytes([1, 2, 0, 0, 0, 2, 0, 0, 0]) + np.array([0, 0, 1, 250.25]).tobytes()
    xy = np.array([[385_000.25, 6_672_000.5], [-1.5, 2.0]])
    assert wkb_points(xy).to_pylist() == list(shapely.to_wkb(shapely.points(xy)))
    assert wkb_points(xy)[1].as_py() == bytes([1, 1, 0, 0, 0]) + np.array([-1.5, 2.0]).tobytes()
    assert len(wkb_linestrings(np.empty((0, 2)), np.empty(0, dtype=np.int64))) == 0


@pytest.mark.parametrize(("count", "threads"), [(100_003, 2), (7, 3), (1, 2), (0, 2)])
def test_coordinates_projected_in_slices_on_threads_are_those_of_one_call(count: int, threads: int) -> None:
    """Longitudes and latitudes around Helsinki projected to UTM 35N in place, in slices on threads:
    the same numbers to the bit as pyproj's one call, whatever the slices (odd counts, more threads
    than points, none)."""
    rng = np.random.default_rng(7)
    lon, lat = rng.uniform(24.5, 25.5, count), rng.uniform(60.0, 60.5, count)
    x, y = lon.copy(), lat.copy()
    project_in_place(x, y, source="EPSG:4326", target="EPSG:32635", threads=threads)
    expected_x, expected_y = Transformer.from_crs("EPSG:4326", "EPSG:32635", always_xy=True).transform(
        lon, lat
    )
    assert x.tobytes() == np.asarray(expected_x).tobytes() and y.tobytes() == np.asarray(expected_y).tobytes()
    if count:
        assert x.min() > 355_000 and x.max() < 425_000  # metres east in UTM 35N (meridian 27°E)
