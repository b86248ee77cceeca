"""A real DuckDB twin store holding a three-building ``buildings_3d`` table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from export_twin import CRS, buildings_frame

from civictwin.store.duckdb import DuckDBStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    s = DuckDBStore.create(tmp_path / "t.duckdb", crs=CRS)
    s.put_record("meta", "twin", {"crs": CRS, "name": "Helsinki centre"})
    s.write_table("buildings_3d", buildings_frame())
    yield s
    s.close()
