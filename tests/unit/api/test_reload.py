"""A rebuild replaces the store file under a running server: the next request serves the new twin."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from apitwin import build_twin
from fastapi.testclient import TestClient

from civictwin.api.app import create_app
from civictwin.api.settings import ServerSettings
from civictwin.store.duckdb import connect


def _matched(client: TestClient) -> int:
    response = client.get("/collections/buildings/items", params={"f": "json"})
    assert response.status_code == 200, response.text
    return int(response.json()["numberMatched"])


def _rebuilt_with(directory: Path, buildings: int) -> Path:
    """A new store of the test twin keeping only the first ``buildings`` buildings."""
    path = build_twin(directory)
    con = connect(path)
    con.execute("DELETE FROM buildings WHERE rowid >= ?", [buildings])
    con.close()
    return path


def test_a_rebuilt_store_is_served_without_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = build_twin(tmp_path / "twin")
    settings = ServerSettings(rate_per_second=10_000, rate_burst=100_000)
    with TestClient(create_app(tmp_path / "twin", settings=settings)) as client:
        assert _matched(client) == 5
        tilejson = client.get("/tiles/buildings.json").json()

        # the rebuild's last step: the new store renamed over the old one
        os.replace(_rebuilt_with(tmp_path / "next", 3), store)
        assert _matched(client) == 3
        assert client.get("/tiles/buildings.json").json()["bounds"] != tilejson["bounds"]

        # a file that is no twin store: the previous twin stays served, and the problem is logged once
        broken = tmp_path / "broken.duckdb"
        broken.write_bytes(b"not a database")
        os.replace(broken, store)
        with caplog.at_level(logging.WARNING, logger="civictwin.api.context"):
            assert [_matched(client), _matched(client)] == [3, 3]
        assert [r.getMessage() for r in caplog.records].count(caplog.records[0].getMessage()) == 1
        assert "cannot be opened" in caplog.records[0].getMessage()

        os.replace(_rebuilt_with(tmp_path / "again", 4), store)
        assert _matched(client) == 4


def _open_replaced_files(name: str) -> list[str]:
    """This process's open files named ``name`` that a rename has replaced (Linux: ``(deleted)``)."""
    fds = Path("/proc/self/fd")
    targets = []
    for fd in fds.iterdir():
        try:
            targets.append(os.readlink(fd))
        except OSError:  # closed meanwhile
            continue
    return [t for t in targets if Path(t.removesuffix(" (deleted)")).name == name and t.endswith("(deleted)")]


def test_a_replaced_store_is_closed_when_its_last_request_ends(tmp_path: Path) -> None:
    store = build_twin(tmp_path / "twin")
    settings = ServerSettings(rate_per_second=10_000, rate_burst=100_000)
    app = create_app(tmp_path / "twin", settings=settings)
    holder = app.state.twin_holder
    with TestClient(app) as client:
        assert _matched(client) == 5
        in_flight = holder.acquire()  # a request still reading the first twin
        assert _open_replaced_files(store.name) == []

        os.replace(_rebuilt_with(tmp_path / "next", 3), store)
        assert _matched(client) == 3
        # the first twin's file is replaced but still open, and still readable for its request
        assert len(_open_replaced_files(store.name)) == 1
        assert in_flight.store.records("meta")["twin"]

        holder.release(in_flight)
        assert _open_replaced_files(store.name) == []

        # the requests above released the second twin: replaced, it is closed at once
        os.replace(_rebuilt_with(tmp_path / "again", 4), store)
        assert _matched(client) == 4
        assert _open_replaced_files(store.name) == []


def test_an_unexpected_error_is_a_500_problem_with_the_security_headers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    build_twin(tmp_path / "twin")
    app = create_app(tmp_path / "twin", settings=ServerSettings())
    features = app.state.twin_holder.current().features

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug that must not reach the client")

    features.page = broken  # a route's reader failing in a way nobody planned for
    with TestClient(app) as client, caplog.at_level(logging.ERROR, logger="civictwin.api.problems"):
        response = client.get("/collections/buildings/items")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "internal server error"
    assert "must not reach" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors" in response.headers["content-security-policy"]
    assert [r.getMessage() for r in caplog.records] == ["unhandled error on GET /collections/buildings/items"]
