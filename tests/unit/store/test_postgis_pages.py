"""PostGIS feature pages read as id ranges, their features cached by id, and counted only when needed:
DuckDB's answers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import geopandas as gpd
import pytest
import shapely
from pgtwin import CRS, PASSWORD, X0, Y0

from civictwin.store.base import Store
from civictwin.store.features import FeatureQuery, FeatureSource
from civictwin.store.opening import StoreLocation, build_store, open_published, publishing
from civictwin.store.postgis_publish import BLOCK, _FeatureCache

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
def stores(tmp_path_factory: pytest.TempPathFactory, postgis: Any) -> Iterator[dict[str, Store]]:
    """The layer in a DuckDB file and in a PostGIS database, opened for serving."""
    os.environ["PGPASSWORD"] = PASSWORD
    locations = {
        "duckdb": StoreLocation.of_file(tmp_path_factory.mktemp("pages") / "t.duckdb"),
        "postgis": StoreLocation(kind="postgis", dsn=postgis.new_database()),
    }
    opened: dict[str, Store] = {}
    for backend, location in locations.items():
        with build_store(location, crs=CRS) as store:
            store.write_table("dots", dots())
        opened[backend] = open_published(location)
    yield opened
    for store in opened.values():
        store.close()
    del os.environ["PGPASSWORD"]


@pytest.fixture(scope="module")
def readers(stores: dict[str, Store]) -> dict[str, FeatureSource]:
    """The layer's readers on both backends (one per module: its cache fills as the tests read)."""
    return {backend: publishing(store)[0] for backend, store in stores.items()}


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


class _Recorded:
    """A connection that records the parameters of every statement it runs."""

    def __init__(self, con: Any) -> None:
        self.con, self.asked = con, []

    @property
    def closed(self) -> bool:
        return bool(self.con.closed)

    def execute(self, query: Any, params: list[Any]) -> Any:
        self.asked.append(list(params))
        return self.con.execute(query, params)


def test_a_page_reads_only_the_features_the_cache_lacks(
    stores: dict[str, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh reader: the first page reads its ids; one overlapping it reads only the ids after them;
    one inside what was read reads nothing; each CRS is cached apart (metres, not degrees)."""
    reader = publishing(stores["postgis"])[0]
    recorded = _Recorded(reader.connection())  # type: ignore[attr-defined]
    monkeypatch.setattr(reader, "connection", lambda: recorded)

    def ids(**query: Any) -> list[int]:
        return [json.loads(text)["id"] for text in reader.page("dots", FeatureQuery(**query)).features]

    assert ids(limit=100, offset=480) == list(range(480, 580))
    assert ids(limit=100, offset=530) == list(range(530, 630))
    assert ids(limit=20, offset=500) == list(range(500, 520))
    assert ids(limit=60, offset=460) == list(range(460, 520))
    assert recorded.asked == [[480, 580], [580, 630], [460, 480]]
    native = reader.page("dots", FeatureQuery(limit=1, offset=500, in_store_crs=True)).features
    assert json.loads(native[0])["geometry"]["coordinates"] == [X0 + 5000, Y0]
    assert recorded.asked[-1] == [500, 501]


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


def test_a_filtered_page_asks_for_ids_and_reads_only_the_features_not_cached(
    stores: dict[str, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh reader: a full filtered page asks its ids, counts, then reads its three features by id;
    after an unfiltered page has read ids 0-9, the next filtered page asks ids and count only."""
    reader = publishing(stores["postgis"])[0]
    recorded = _Recorded(reader.connection())  # type: ignore[attr-defined]
    monkeypatch.setattr(reader, "connection", lambda: recorded)

    def page(**query: Any) -> tuple[int, list[int]]:
        found = reader.page("dots", FeatureQuery(**query))
        return found.matched, [json.loads(text)["id"] for text in found.features]

    assert page(limit=3, properties={"kind": "odd"}) == (COUNT // 2, [1, 3, 5])
    assert recorded.asked == [["odd"], ["odd"], [[1, 3, 5]]]
    assert page(limit=10) == (COUNT, list(range(10)))
    assert recorded.asked[3:] == [[0, 10]]
    assert page(limit=3, offset=1, properties={"kind": "odd"}) == (COUNT // 2, [3, 5, 7])
    assert page(limit=5, offset=COUNT // 2 - 2, properties={"kind": "odd"}) == (
        COUNT // 2,
        [COUNT - 3, COUNT - 1],
    )
    assert recorded.asked[4:] == [["odd"], ["odd"], ["odd"], [[COUNT - 3, COUNT - 1]]]


def test_the_feature_cache_drops_the_least_recently_used_block_beyond_its_limit() -> None:
    """Three features of 10 characters in each of blocks 0, 1 and 2 against a 70-character limit: the
    third block's arrival drops block 1 (block 0 was read since), leaving 60 characters."""
    cache = _FeatureCache(limit_bytes=70)
    text = "x" * 10
    cache.put("dots", False, 0, [text] * 3)
    cache.put("dots", False, BLOCK, [text] * 3)
    assert cache.get("dots", False, 1, 3) == [text, text]
    cache.put("dots", False, 2 * BLOCK, [text] * 3)
    assert cache.get("dots", False, 0, 4) == [text, text, text, None]
    assert cache.get("dots", False, BLOCK, BLOCK + 3) == [None, None, None]
    assert cache.get("dots", False, 2 * BLOCK - 1, 2 * BLOCK + 2) == [None, text, text]
    assert cache.get("dots", True, 0, 1) == [None]
