"""The live API of a PostGIS twin without observations yet: a worker looks for them in the database
(a new connection each time) at most every ``OBSERVATIONS_RECHECK_S`` seconds, serves them once they
are imported, and never looks again after finding them."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pgtwin import twin_toml
from test_postgis_observations import AIR_CSV, AIR_SENSORS, get

from civictwin.api import alerts as alerts_api
from civictwin.api.app import create_app
from civictwin.api.settings import ServerSettings
from civictwin.cli import main
from civictwin.store.observations import has_observations
from civictwin.store.opening import StoreLocation


def test_a_worker_looks_for_a_postgis_twins_first_observations_at_most_every_few_seconds(
    postgis_twin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgis_twin
    (tmp_path / "twin.toml").write_text(twin_toml(name="Pg twin", url=url) + AIR_SENSORS, encoding="utf-8")
    (tmp_path / "air.csv").write_text(AIR_CSV, encoding="utf-8")
    looks: list[str | None] = []

    def counted(location: StoreLocation) -> bool:
        looks.append(location.dsn)
        return has_observations(location)

    monkeypatch.setattr(alerts_api, "has_observations", counted)
    assert alerts_api.OBSERVATIONS_RECHECK_S == 5.0
    settings = ServerSettings(rate_per_second=10_000, rate_burst=100_000)
    with TestClient(create_app(tmp_path, settings=settings)) as client:
        for _ in range(3):  # each request reads the live stores twice
            assert get(client, "/live/sensors")["numberReturned"] == 0
        assert looks == [url]
        main(["sensors", "import", str(tmp_path)])
        assert get(client, "/live/sensors")["numberReturned"] == 0  # within 5 s of the last look
        assert looks == [url]
        monkeypatch.setattr(alerts_api, "OBSERVATIONS_RECHECK_S", 0.0)  # as if 5 s had passed
        found = get(client, "/live/sensors")
        assert sorted(f["properties"]["name"] for f in found["features"]) == [
            "Kallio: Nitrogen dioxide",
            "Kallio: PM10",
        ]
        assert looks == [url, url]
        assert get(client, "/live/sensors")["numberReturned"] == 2
        assert looks == [url, url]  # found once: never looked for again
