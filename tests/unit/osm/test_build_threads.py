"""The network split on a worker thread beside the buildings and zones (``build._derive_model``).

A hand-made extract: a residential street of three nodes, 111 m (0.002° of longitude, 55.5 m per
0.001°) from west to east, and a 20 m × 22 m building beside it. The split runs on the ``network``
worker thread while the main thread derives the buildings and zones; a failure of the split fails
the build as any other step does, and the served twin stays as it was.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from osm_fixtures import LAT0, LON0, square, write_pbf

import civictwin.build as build_module
from civictwin.build import build_twin
from civictwin.config import load_config
from civictwin.model.network import Network
from civictwin.store.base import version_of
from civictwin.store.opening import open_store, store_location


def _write_twin(folder: Path) -> Path:
    nodes = {
        1: (LON0, LAT0, {}),
        2: (LON0 + 0.001, LAT0, {}),
        3: (LON0 + 0.002, LAT0, {}),
        **square(10, LON0 + 0.0005, LAT0 + 0.0002, 0.0002),
    }
    ways = {
        100: ([1, 2, 3], {"highway": "residential", "name": "Street"}),
        200: ([10, 11, 12, 13, 10], {"building": "house"}),
    }
    write_pbf(folder / "street.osm.pbf", nodes, ways)
    bbox = [LON0 - 0.001, LAT0 - 0.001, LON0 + 0.003, LAT0 + 0.001]
    (folder / "twin.toml").write_text(
        f'[twin]\nname = "Street"\ncrs = "EPSG:32635"\n[area]\nbbox = {bbox}\n'
        '[[sources]]\nname = "osm"\nkind = "osm"\npath = "street.osm.pbf"\nlicence = "ODbL-1.0"\n'
        'publisher = "hand-made"\nsteward = "tests"\n',
        encoding="utf-8",
    )
    return folder


def test_the_split_runs_on_the_worker_thread_and_the_twin_has_every_derived_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: dict[str, str] = {}
    split, buildings = build_module.build_network, build_module._buildings

    def recorded_split(*args: Any) -> Network:
        threads["split"] = threading.current_thread().name
        return split(*args)

    def recorded_buildings(*args: Any) -> None:
        threads["buildings"] = threading.current_thread().name
        buildings(*args)

    monkeypatch.setattr(build_module, "build_network", recorded_split)
    monkeypatch.setattr(build_module, "_buildings", recorded_buildings)
    summary = build_twin(load_config(_write_twin(tmp_path)))
    assert threads["split"].startswith("network") and threads["buildings"] == "MainThread"
    # one way split at its ends only: one edge each way; its two end nodes; one building
    assert (summary.tables["network_edges"], summary.tables["network_nodes"]) == (2, 2)
    assert summary.tables["buildings_3d"] == 1 and summary.tables["zones"] >= 1
    with open_store(store_location(load_config(tmp_path))) as store:
        edges = store.read_table("network_edges").sort_values("edge_id")
        catalogue = store.records("catalog")
    assert edges["edge_id"].tolist() == ["-100_1", "100_1"]
    assert edges["length_m"].tolist() == pytest.approx([111.0] * 2, abs=0.5)
    assert {"network_edges", "network_nodes", "buildings_3d", "zones"} <= set(catalogue)


def test_a_failed_split_fails_the_build_and_leaves_the_served_twin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(_write_twin(tmp_path))
    build_twin(config)
    with open_store(store_location(config)) as store:
        served = version_of(store)

    def failing(*_: Any) -> Network:
        raise RuntimeError("split failed")

    monkeypatch.setattr(build_module, "build_network", failing)
    with pytest.raises(RuntimeError, match="split failed"):
        build_twin(config)
    with open_store(store_location(config)) as store:
        assert version_of(store) == served
        assert store.has_table("network_edges")
