"""What the API reads, on both backends: the same layers, pages, filters, features and decoded tiles."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import mapbox_vector_tile
import pytest
from pgtwin import CRS, PASSWORD, X0, Y0, layers
from pyproj import Transformer

from civictwin.store.features import FeatureQuery, FeatureSource, TimeInterval
from civictwin.store.opening import StoreLocation, build_store, open_published, publishing
from civictwin.store.tiles import TileSource

Served = tuple[FeatureSource, TileSource]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, postgis: Any) -> Iterator[dict[str, Served]]:
    """The same two layers published from a DuckDB file and from a PostGIS database."""
    os.environ["PGPASSWORD"] = PASSWORD
    locations = {
        "duckdb": StoreLocation.of_file(tmp_path_factory.mktemp("pub") / "t.duckdb"),
        "postgis": StoreLocation(kind="postgis", dsn=postgis.new_database()),
    }
    stores = []
    result: dict[str, Served] = {}
    for backend, location in locations.items():
        with build_store(location, crs=CRS) as store:
            for name, frame in layers().items():
                store.write_table(name, frame)
            store.put_record("catalog", "buildings", {"personal_data": {"fields": ["name"]}})
        published = open_published(location)
        stores.append(published)
        result[backend] = publishing(published)
    yield result
    for store in stores:
        store.close()
    del os.environ["PGPASSWORD"]


def page(source: FeatureSource, layer: str, **query: Any) -> tuple[int, list[dict[str, Any]]]:
    found = source.page(layer, FeatureQuery(**({"limit": 10} | query)))
    return found.matched, [_rounded(json.loads(text)) for text in found.features]


def _rounded(value: Any) -> Any:
    """Coordinates at 7 decimals (both backends write 7; the last digit's rounding may differ by 1e-7)."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def test_the_same_layers_with_personal_columns_withheld(served: dict[str, Served]) -> None:
    duck, post = served["duckdb"][0], served["postgis"][0]
    assert duck.layers == post.layers
    buildings = post.layers["buildings"]
    assert list(buildings.properties) == ["osm_id", "use", "height_m", "surveyed"]  # "name" is personal
    assert buildings.time_extent == ("2019-01-01T00:00:00Z", "2023-01-01T00:00:00Z")


def test_the_same_pages_filters_and_features(served: dict[str, Served]) -> None:
    duck, post = served["duckdb"][0], served["postgis"][0]
    matched, features = page(post, "buildings")
    assert matched == 5 and [f["id"] for f in features] == [0, 1, 2, 3, 4]
    assert features[3]["properties"] == {
        "osm_id": 104, "use": "public", "height_m": None, "surveyed": "2022-01-01T00:00:00"
    }  # fmt: skip
    assert page(duck, "buildings") == (matched, features)
    queries: list[dict[str, Any]] = [
        {"properties": {"use": "residential"}, "limit": 2, "offset": 1},
        {"bbox": (X0 + 90, Y0 - 10, X0 + 250, Y0 + 30), "bbox_in_store_crs": True},
        {"interval": TimeInterval(datetime(2020, 6, 1), datetime(2022, 1, 1))},
        {"in_store_crs": True, "limit": 1},
        {"properties": {"use": "none such"}},
    ]
    expected_ids = [[1, 4], [1, 2], [2, 3], [0], []]
    for query, ids in zip(queries, expected_ids, strict=True):
        assert page(post, "buildings", **query) == page(duck, "buildings", **query)
        assert [f["id"] for f in page(post, "buildings", **query)[1]] == ids
    assert page(post, "buildings", **queries[0])[0] == 3
    assert _rounded(json.loads(post.feature("roads", 1) or "")) == _rounded(
        json.loads(duck.feature("roads", 1) or "")
    )
    assert post.feature("roads", 7) is None and duck.feature("roads", 7) is None


def _tile_of(x: float, y: float, zoom: int) -> tuple[int, int]:
    lon, lat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(x, y)
    n = 2**zoom
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def test_the_same_tiles_decoded(served: dict[str, Served]) -> None:
    z = 14  # one tile holds every building (at 15 they straddle four)
    x, y = _tile_of(X0 + 10, Y0 + 10, z)
    tiles = {backend: tiles.render("buildings", z, x, y) for backend, (_, tiles) in served.items()}
    decoded = {backend: mapbox_vector_tile.decode(tile or b"") for backend, tile in tiles.items()}
    features = {b: sorted(d["buildings"]["features"], key=lambda f: f["id"]) for b, d in decoded.items()}
    assert [f["id"] for f in features["postgis"]] == [f["id"] for f in features["duckdb"]] == [0, 1, 2, 3, 4]
    assert [f["properties"] for f in features["postgis"]] == [f["properties"] for f in features["duckdb"]]
    assert features["postgis"][0]["properties"] == {"osm_id": 101, "use": "residential", "height_m": 12.0,
                                                    "surveyed": "2019-01-01 00:00:00"}  # fmt: skip
    for duck, post in zip(features["duckdb"], features["postgis"], strict=True):
        assert post["geometry"] == duck["geometry"]
    assert all(tiles.render("buildings", z, x + 3, y) is None for _, tiles in served.values())
    assert all(tiles.layers() == ["buildings", "roads"] for _, tiles in served.values())
