"""Run one city-model or DEM reader into a real DuckDB store, as a build does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from city3d_fixtures import TWIN_CRS, Ingest
from shapely.geometry import box

from civictwin.config import parse_config
from civictwin.sources import reader_for
from civictwin.sources.base import BuildContext, IngestResult
from civictwin.store.duckdb import DuckDBStore


@pytest.fixture
def ingest(tmp_path: Path) -> Iterator[Ingest]:
    """``ingest(kind, path, twin_crs=..., area=..., **source options)`` → (store, result)."""
    stores: list[DuckDBStore] = []

    def run(
        kind: str, path: Path, *, twin_crs: str = TWIN_CRS, area: Any = None, **options: Any
    ) -> tuple[DuckDBStore, IngestResult]:
        config = parse_config(
            {"twin": {"name": "t", "crs": twin_crs}, "area": {"bbox": [-179, -80, 179, 80]},
             "sources": [{"name": "city", "kind": kind, "path": str(path), "licence": "CC0", "publisher": "p",
                          "steward": "s", **options}]},
            base_dir=tmp_path,
        )  # fmt: skip
        store = DuckDBStore.create(tmp_path / f"t{len(stores)}.duckdb", crs=twin_crs)
        stores.append(store)
        metric = area if area is not None else box(-1e8, -1e8, 1e8, 1e8)
        ctx = BuildContext(
            config=config, store=store, area_wgs84=box(-179, -80, 179, 80), area=metric, crs=twin_crs
        )
        return store, reader_for(config.sources[0].kind)(config.sources[0], ctx)

    yield run
    for store in stores:
        store.close()
