"""Layers with awkward column types (lists, structs, decimals, NaN, booleans, dates) publish cleanly."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import mapbox_vector_tile
import pyarrow as pa
import pytest
import shapely
from apitwin import CRS, X0, Y0
from fastapi.testclient import TestClient

from civictwin.api.app import create_app
from civictwin.store.duckdb import DuckDBStore


@pytest.fixture(scope="module")
def odd_client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    path = tmp_path_factory.mktemp("odd") / "odd.duckdb"
    store = DuckDBStore.create(path, crs=CRS)
    points = [shapely.Point(X0 + 10 * i, Y0 + 10 * i) for i in range(3)]
    table = pa.table(
        {
            "tags": pa.array([["a", "b"], [], None], type=pa.list_(pa.string())),
            "info": pa.array([{"k": 1}, {"k": 2}, None], type=pa.struct([("k", pa.int64())])),
            "price": pa.array([Decimal("1.50"), Decimal("2.25"), None], type=pa.decimal128(6, 2)),
            "share": pa.array([0.5, math.nan, math.inf]),
            "open": pa.array([True, False, None]),
            "opened": pa.array([19000, 19001, None], type=pa.date32()),
            "geometry": pa.array(shapely.to_wkb(points)),
        }
    )
    store.write_table("odd", table)
    store.put_record("catalog", "odd", {"title": "Odd", "access": "public"})
    store.close()
    return TestClient(create_app(path))


def test_items_are_valid_json_with_nan_as_null(odd_client: TestClient) -> None:
    response = odd_client.get("/collections/odd/items")
    assert response.status_code == 200
    features = json.loads(response.text)["features"]  # strict parse: no NaN/Infinity tokens
    assert features[0]["properties"] == {
        "tags": ["a", "b"],
        "info": {"k": 1},
        "price": 1.5,
        "share": 0.5,
        "open": True,
        "opened": "2022-01-08",
    }
    assert features[1]["properties"]["share"] is None and features[2]["properties"]["share"] is None


def test_filters_on_scalars_and_refusal_on_lists(odd_client: TestClient) -> None:
    assert odd_client.get("/collections/odd/items?open=false").json()["numberMatched"] == 1
    assert odd_client.get("/collections/odd/items?price=2.25").json()["numberMatched"] == 1
    assert odd_client.get("/collections/odd/items?opened=2022-01-08").json()["numberMatched"] == 1
    refused = odd_client.get("/collections/odd/items?tags=a")
    assert refused.status_code == 400 and "cannot filter" in refused.json()["detail"]


def test_tiles_carry_every_type(odd_client: TestClient) -> None:
    response = odd_client.get("/tiles/odd/14/9326/4742.mvt")
    assert response.status_code == 200
    features = mapbox_vector_tile.decode(response.content)["odd"]["features"]
    first = next(f for f in features if f["id"] == 0)["properties"]
    assert first["price"] == 1.5 and first["open"] is True and first["tags"] == "[a, b]"
