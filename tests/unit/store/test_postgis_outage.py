"""The database behind a served PostGIS twin goes away and comes back: 503 meanwhile, then served again."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pgtwin import PASSWORD, PostGIS, build_layers, twin_toml

from civictwin.api.app import create_app
from civictwin.api.settings import ServerSettings
from civictwin.store.opening import StoreLocation


def _outage(postgis: PostGIS, database: str, *, down: bool) -> None:
    """The database refuses new connections and its open ones are ended (as in a restart), or is back."""
    postgis.sql("postgres", f"ALTER DATABASE {database} ALLOW_CONNECTIONS {'false' if down else 'true'}")
    if down:
        postgis.sql(
            "postgres",
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'",
        )


def test_an_outage_answers_503_and_the_twin_is_served_again_after_it(
    postgis: PostGIS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    url = postgis.new_database()
    database = url.rsplit("/", 1)[1]
    (tmp_path / "twin.toml").write_text(twin_toml(name="Pg twin", url=url))
    build_layers(StoreLocation(kind="postgis", dsn=url), 5)
    with TestClient(create_app(tmp_path, settings=ServerSettings()), raise_server_exceptions=False) as client:
        assert client.get("/collections/buildings/items").status_code == 200
        assert client.get("/tiles/buildings/14/9326/4742.mvt").status_code == 200
        # a restart: every connection ended, the database back at once: readers reconnect unnoticed
        _outage(postgis, database, down=True)
        _outage(postgis, database, down=False)
        assert client.get("/collections/buildings/items").json()["numberMatched"] == 5
        assert client.get("/tiles/buildings/14/9326/4742.mvt").status_code == 200
        assert client.get("/health/ready").json()["status"] == "ready"

        _outage(postgis, database, down=True)  # down, and staying down
        # pages and tiles asked for before come from the served build's caches, rightly
        assert client.get("/collections/buildings/items").json()["numberMatched"] == 5
        # (a filtered page and a tile not asked for before need the database)
        for path in ("/collections/buildings/items?use=residential", "/collections/buildings/items/0",
                     "/tiles/buildings/15/18652/9484.mvt"):  # fmt: skip
            response = client.get(path)
            assert response.status_code == 503, (path, response.text)
            assert response.headers["retry-after"] == "5"
            assert response.json()["detail"] == "the twin's database is not answering now; retry shortly"
            assert PASSWORD not in response.text and "127.0.0.1" not in response.text
        unready = client.get("/health/ready")
        assert unready.status_code == 503
        assert (
            unready.json()["detail"]
            == "the store in PostGIS cannot be opened (the reason is in the server's log)"
        )

        _outage(postgis, database, down=False)  # back: the next requests connect afresh
        page = client.get("/collections/buildings/items")
        assert page.status_code == 200 and page.json()["numberMatched"] == 5
        assert client.get("/tiles/buildings/14/9326/4742.mvt").status_code == 200
        ready = client.get("/health/ready")
        assert ready.json()["status"] == "ready", ready.text
