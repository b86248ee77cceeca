"""Install the toy engine (tests/plugins/civictwin_toy) the way a third-party package is installed:
a ``civictwin_toy-0.1.0.dist-info`` with an ``entry_points.txt`` in a folder on the path, nothing
changed in civictwin or in the virtual environment.

Also a small real twin for it: ``twin.toml`` and a store holding three public zones.
"""

from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd

import civictwin
from civictwin.config import load_config
from civictwin.demo import write_demo_config
from civictwin.store.duckdb import DuckDBStore

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
ENTRY_POINTS = "[civictwin.engines]\ntoy = civictwin_toy.engine:ToyEngine\n"


def write_distribution(site: Path) -> list[str]:
    """The toy package's metadata in ``site``; returns the folders to put on the path (site, package)."""
    dist = site / "civictwin_toy-0.1.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: civictwin-toy\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    return [str(site), str(PLUGINS)]


def subprocess_env(paths: list[str], **extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess that sees the toy package and the civictwin these tests
    import (a checkout's ``src`` may come before the installed one)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    source = str(Path(civictwin.__file__).resolve().parents[1])
    return {**env, "PYTHONPATH": os.pathsep.join([*paths, source]), **extra}


def write_twin(twin_dir: Path, zones: gpd.GeoDataFrame) -> Path:
    """A twin folder (the demo's ``twin.toml``) whose store holds ``zones``, public, and a catalogue."""
    path = load_config(write_demo_config(twin_dir)).store_path
    with DuckDBStore.create(path, crs=str(zones.crs)) as store:
        store.write_table("zones", zones)
        store.put_record("catalog", "zones", {"title": "Zones", "access": "public", "rows": len(zones)})
    return twin_dir
