"""Fixtures for the OSM reader tests: a build context over a fresh store for a given PBF."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import shapely
from osm_fixtures import BBOX

from civictwin.config import parse_config
from civictwin.geometry import WGS84, reproject, utm_crs_for
from civictwin.sources.base import BuildContext
from civictwin.store.duckdb import DuckDBStore


@pytest.fixture
def osm_context(tmp_path: Path) -> Callable[[Path], BuildContext]:
    """A build context over a fresh store for a given PBF, with the test bbox as area."""

    def make(pbf: Path) -> BuildContext:
        config = parse_config(
            {"twin": {"name": "t"}, "area": {"bbox": list(BBOX)},
             "sources": [{"name": "osm", "kind": "osm", "path": str(pbf), "licence": "ODbL-1.0",
                          "publisher": "OSM contributors", "steward": "GIS"}]},
            base_dir=tmp_path,
        )  # fmt: skip
        area_wgs84 = shapely.box(*BBOX)
        crs = utm_crs_for(*area_wgs84.centroid.coords[0])
        store = DuckDBStore.create(tmp_path / f"{pbf.stem}.duckdb", crs=crs)
        area = reproject(np.array([area_wgs84], dtype=object), WGS84, crs)[0]
        return BuildContext(config=config, store=store, area_wgs84=area_wgs84, area=area, crs=crs)

    return make
