"""PostGIS feature pages read as id ranges and cached, and counted only when needed: DuckDB's answers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import geopandas as gpd
import pytest
import shapely
from pgtwin import CRS, PASSWORD, X0, Y0

from civictwin.store.features import FeatureQuery, FeatureSource
from civictwin.store.opening import StoreLocation, build_store, open_published, publishing

COUNT = 1234
"""Points in the layer."""


def dots() -> gpd.GeoDataFrame:
    """``COUNT`` points 10 m apart; ``kind`` is "even" or "odd" by position."""
    return gpd.GeoDataFrame(
        {"n": list(range(COUNT)), "kind": ["even" if i % 2 == 0 else "odd" for i in range(COUNT)]},
        geometry=[shapely.Point(X0 + 10 * i, Y0) for i in range(COUNT)],
        crs=CRS,
    )


@pytest.fixture(scope="module")
def readers(tmp_path_factory: pytest.TempPathFactory, postgis: Any) -> Iterator[dict[str, FeatureSource]]:
    """The layer published from a DuckDB file and from a PostGIS database."""
    os.environ["PGPASSWORD"] = PASSWORD
    locations = {
        "duckdb": StoreLocation.of_file(tmp_path_factory.mktemp("pages") / "t.duckdb"),
        "postgis": StoreLocation(kind="postgis", dsn=postgis.new_database()),
    }
    stores, result = [], {}
    for backend, location in locations.items():
        with build_store(location, crs=CRS) as store:
            store.write_table("dots", dots())
        published = open_published(location)
        stores.append(published)
        result[backend] = publishing(published)[0]
    yield result
    for store in stores:
        store.close()
    del os.environ["PGPASSWORD"]


def answer(source: FeatureSource, **query: Any) -> tuple[int, list[int], list[int]]:
    """numberMatched, the ids and the ``n`` property of one page."""
    found = source.page("dots", FeatureQuery(**query))
    features = [json.loads(text) for text in found.features]
    return found.matched, [f["id"] for f in features], [f["properties"]["n"] for f in features]


@pytest.mark.parametrize(
    ("query", "first", "returned"),
    [
        ({"limit": 100}, 0, 100),
        ({"limit": 100, "offset": 450}, 450, 100),
        ({"limit": 2000, "offset": 1}, 1, COUNT - 1),  # to the end
        ({"limit": 100, "offset": COUNT - 34}, COUNT - 34, 34),  # the last, partial page
        ({"limit": 10, "offset": COUNT}, COUNT, 0),  # past the end
        ({"limit": 2, "offset": 499, "in_store_crs": True}, 499, 2),
    ],
)
def test_unfiltered_pages_are_id_ranges(
    readers: dict[str, FeatureSource], query: dict[str, Any], first: int, returned: int
) -> None:
    expected = (COUNT, list(range(first, first + returned)), list(range(first, first + returned)))
    assert answer(readers["postgis"], **query) == expected
    assert answer(readers["postgis"], **query) == expected  # again, from the cache
    assert answer(readers["duckdb"], **query) == expected


def test_a_page_asked_again_is_the_cached_one_and_each_crs_has_its_own(
    readers: dict[str, FeatureSource],
) -> None:
    """The same page twice is the same serialised features (no query); the same ids in the store's
    CRS are another page, in metres where the first is in degrees."""
    source = readers["postgis"]
    first = source.page("dots", FeatureQuery(limit=7, offset=300))
    assert source.page("dots", FeatureQuery(limit=7, offset=300)).features is first.features
    native = source.page("dots", FeatureQuery(limit=7, offset=300, in_store_crs=True))
    assert native.features is not first.features
    assert json.loads(native.features[0])["geometry"]["coordinates"] == [X0 + 3000, Y0]
    lon, lat = json.loads(first.features[0])["geometry"]["coordinates"]
    assert abs(lon) <= 180 and abs(lat) <= 90


@pytest.mark.parametrize(
    ("query", "matched", "ids"),
    [
        ({"limit": 3, "properties": {"kind": "odd"}}, COUNT // 2, [1, 3, 5]),  # a full page: counted
        (
            {"limit": 5, "offset": COUNT // 2 - 2, "properties": {"kind": "odd"}},
            COUNT // 2,
            [COUNT - 3, COUNT - 1],
        ),
        ({"limit": 5, "offset": COUNT, "properties": {"kind": "odd"}}, COUNT // 2, []),  # past the end
        ({"limit": 5, "properties": {"kind": "none"}}, 0, []),
        ({"limit": 5, "bbox": (X0 - 1, Y0 - 1, X0 + 25, Y0 + 1), "bbox_in_store_crs": True}, 3, [0, 1, 2]),
    ],
)
def test_filtered_pages_are_counted_only_when_the_page_does_not_say(
    readers: dict[str, FeatureSource], query: dict[str, Any], matched: int, ids: list[int]
) -> None:
    assert answer(readers["postgis"], **query)[:2] == (matched, ids)
    assert answer(readers["duckdb"], **query) == answer(readers["postgis"], **query)
