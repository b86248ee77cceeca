"""Finding and opening the twin to serve: by twin.toml, by directory, by store file; clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from apitwin import build_twin

from civictwin.api.app import create_app, resolve_store
from civictwin.errors import StoreError

TWIN_TOML = """
[twin]
name = "Test twin"
store = "data/test-twin.duckdb"

[area]
bbox = [24.90, 60.15, 24.97, 60.18]

[[sources]]
name = "osm"
kind = "osm"
path = "helsinki.osm.pbf"
licence = "ODbL-1.0"
publisher = "OpenStreetMap contributors"
steward = "GIS team"
"""


def test_twin_toml_names_the_store_and_title(tmp_path: Path) -> None:
    build_twin(tmp_path / "data")
    (tmp_path / "twin.toml").write_text(TWIN_TOML)
    assert resolve_store(tmp_path) == (tmp_path / "data" / "test-twin.duckdb", "Test twin")
    app = create_app(tmp_path)
    assert app.title == "civictwin: Test twin"


def test_directory_with_one_store_and_store_file(twin_dir: Path, store_path: Path) -> None:
    assert resolve_store(twin_dir) == (store_path, "test-twin")
    assert resolve_store(store_path) == (store_path, "test-twin")


def test_unusable_targets_are_store_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such twin directory"):
        resolve_store(tmp_path / "missing")
    (tmp_path / "a.duckdb").write_bytes(b"")
    (tmp_path / "b.duckdb").write_bytes(b"")
    with pytest.raises(StoreError, match="not exactly one"):
        resolve_store(tmp_path)
    not_a_store = tmp_path / "notes.duckdb"
    not_a_store.write_text("hello")
    with pytest.raises(StoreError, match="not a readable twin store"):
        create_app(not_a_store)


def test_serve_on_a_missing_twin_is_one_line(tmp_path: Path) -> None:
    """`civictwin serve` on a directory that does not exist: one error line naming it, exit 1."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import civictwin.cli.serve; from civictwin.cli import main; main()",
            "serve",
            str(tmp_path / "nowhere"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "nowhere" in result.stderr and "no such twin directory" in result.stderr
