"""A twin in PostGIS served by the API, rebuilt while a client reads: the next request sees the new one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mapbox_vector_tile
import pytest
from fastapi.testclient import TestClient
from pgtwin import PASSWORD, PostGIS, build_layers, twin_toml

from civictwin.api.app import create_app
from civictwin.api.settings import ServerSettings
from civictwin.store.opening import StoreLocation


def matched(client: TestClient) -> Any:
    response = client.get("/collections/buildings/items", params={"f": "json", "limit": 2})
    assert response.status_code == 200, response.text
    return response.json()


def test_served_from_postgis_and_rebuilt_under_a_running_server(
    postgis: PostGIS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    url = postgis.new_database()
    (tmp_path / "twin.toml").write_text(twin_toml(name="Pg twin", url=url))
    location = StoreLocation(kind="postgis", dsn=url)
    build_layers(location, 5)
    with TestClient(create_app(tmp_path, settings=ServerSettings())) as client:
        first = matched(client)
        assert first["numberMatched"] == 5 and [f["id"] for f in first["features"]] == [0, 1]
        assert first["features"][0]["properties"] == {
            "osm_id": 101, "use": "residential", "name": "Talo A", "height_m": 12, "surveyed": "2019-01-01T00:00:00"
        }  # fmt: skip
        tile = client.get("/tiles/buildings/14/9326/4742.mvt")  # every building is in this tile
        assert tile.status_code == 200
        ids = sorted(f["id"] for f in mapbox_vector_tile.decode(tile.content)["buildings"]["features"])
        assert ids == [0, 1, 2, 3, 4]
        ready = client.get("/health/ready").json()
        assert ready["status"] == "ready" and len(ready["store_version"]) == 32

        build_layers(location, 3)  # the switch to the new schema, while the server runs

        assert matched(client)["numberMatched"] == 3
        again = client.get("/health/ready").json()
        assert again["status"] == "ready" and again["store_version"] not in ("", ready["store_version"])
        tile = client.get("/tiles/buildings/14/9326/4742.mvt")
        ids = sorted(f["id"] for f in mapbox_vector_tile.decode(tile.content)["buildings"]["features"])
        assert ids == [0, 1, 2]  # the tile cache is keyed by the version: no stale tile
