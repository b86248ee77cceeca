"""The viewer router: serves the built bundle with safe names, strict headers and clear problems."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from civictwin.api.problems import install_problem_handlers
from civictwin.api.viewer import CONTENT_SECURITY_POLICY, viewer_built, viewer_router


def _client(static: Path) -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(viewer_router(static))
    return TestClient(app)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A stand-in bundle folder with the files the build writes (contents are not the point here)."""
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<!doctype html><title>civictwin</title>")
    (static / "app.js").write_text("export {};")
    (static / "app.css").write_text("body{}")
    (static / "maplibre-gl-worker.mjs").write_text("self.onmessage=()=>{};")
    (static / "build.json").write_text('{"maplibre_gl": "6.17.0"}')
    (static / "notes.txt").write_text("not served")
    (tmp_path / "secret.js").write_text("secret")
    return static


def test_page_and_assets_with_types_and_security_headers(bundle: Path) -> None:
    client = _client(bundle)
    page = client.get("/viewer/")
    assert page.status_code == 200
    assert page.text == "<!doctype html><title>civictwin</title>"
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "connect-src 'self'" in CONTENT_SECURITY_POLICY
    assert page.headers["x-content-type-options"] == "nosniff"
    expected = {
        "app.js": "text/javascript; charset=utf-8",
        "maplibre-gl-worker.mjs": "text/javascript; charset=utf-8",
        "app.css": "text/css; charset=utf-8",
        "build.json": "application/json",
    }
    for name, media_type in expected.items():
        response = client.get(f"/viewer/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == media_type
        assert response.content == (bundle / name).read_bytes()


def test_bare_viewer_path_redirects_to_the_folder(bundle: Path) -> None:
    response = _client(bundle).get("/viewer", follow_redirects=False)
    assert response.status_code == 308
    assert response.headers["location"] == "viewer/"


@pytest.mark.parametrize(
    "path",
    ["/viewer/nope.js", "/viewer/notes.txt", "/viewer/..%2Fsecret.js", "/viewer/%2E%2E", "/viewer/.env"],
)
def test_unknown_or_unsafe_files_are_404_problems(bundle: Path, path: str) -> None:
    response = _client(bundle).get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404
    assert response.text != "secret"


def test_unbuilt_viewer_is_a_503_naming_the_build_command(tmp_path: Path) -> None:
    assert not viewer_built(tmp_path)
    response = _client(tmp_path).get("/viewer/")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == (
        "the web viewer has not been built; run `cd web && npm ci && npm run build`"
    )
