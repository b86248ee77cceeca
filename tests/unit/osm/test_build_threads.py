"""The network split on a worker thread beside the buildings and zones (``build._derive_model``).

A hand-made extract: a residential street of three nodes, 111 m (0.002° of longitude, 55.5 m per
0.001°) from west to east, and a 20 m × 22 m building beside it. The split runs on the ``network``
worker thread while the main thread derives the buildings and zones; a failure of the split fails
the build as any other step does, and the served twin stays as it was.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest
from osm_fixtures import LAT0, LON0, write_street_twin

import civictwin.build as build_module
from civictwin.build import build_twin
from civictwin.config import load_config
from civictwin.model.network import NetworkArrays
from civictwin.store.base import version_of
from civictwin.store.duckdb import DuckDBStore
from civictwin.store.opening import open_store, store_location


def test_the_split_runs_on_the_worker_thread_and_the_twin_has_every_derived_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: dict[str, str] = {}
    split, buildings = build_module.network_arrays, build_module._buildings

    def recorded_split(*args: Any) -> NetworkArrays:  # the split of the roads the reader handed over
        threads["split"] = threading.current_thread().name
        return split(*args)

    def recorded_buildings(*args: Any) -> None:
        threads["buildings"] = threading.current_thread().name
        buildings(*args)

    monkeypatch.setattr(build_module, "network_arrays", recorded_split)
    monkeypatch.setattr(build_module, "_buildings", recorded_buildings)
    summary = build_twin(load_config(write_street_twin(tmp_path)))
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
    config = load_config(write_street_twin(tmp_path))
    build_twin(config)
    with open_store(store_location(config)) as store:
        served = version_of(store)

    def failing(*_: Any) -> NetworkArrays:
        raise RuntimeError("split failed")

    monkeypatch.setattr(build_module, "network_arrays", failing)  # the split of the roads handed over
    with pytest.raises(RuntimeError, match="split failed"):
        build_twin(config)
    with open_store(store_location(config)) as store:
        assert version_of(store) == served
        assert store.has_table("network_edges")


def test_the_split_starts_from_the_roads_the_reader_wrote_without_reading_them_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The OSM reader hands each written layer to the build; the split starts from its ``roads`` (Arrow
    rows, as stored) while the reader goes on, so the read-back path (``_network``) is never taken;
    the worker writes the edges itself, and their catalogue extent, computed from the edges in
    memory, is the store's own, as are those of the OSM layers, computed from the rows handed over."""
    written: list[str] = []
    split_written = build_module._split_written

    def recorded(roads: Any, *args: Any, **kwargs: Any) -> Any:
        written.append(f"split from {roads.num_rows} written road(s)")
        return split_written(roads, *args, **kwargs)

    def read_back(*_: Any, **__: Any) -> Any:
        raise AssertionError("the roads were read back from the store")

    writers: dict[str, str] = {}
    write_table = DuckDBStore.write_table

    def recorded_write(store: DuckDBStore, name: str, table: Any) -> int:
        writers[name] = threading.current_thread().name
        return write_table(store, name, table)

    monkeypatch.setattr(build_module, "_split_written", recorded)
    monkeypatch.setattr(build_module, "_network", read_back)
    monkeypatch.setattr(DuckDBStore, "write_table", recorded_write)
    config = load_config(write_street_twin(tmp_path))
    summary = build_twin(config)
    assert written == ["split from 1 written road(s)"]
    # the edges and nodes are written by the worker, through its own connection; everything else by the build
    assert writers.pop("network_edges").startswith("network") and writers.pop("network_nodes").startswith(
        "network"
    )
    assert set(writers.values()) == {"MainThread"} and {"roads", "buildings_3d", "zones"} <= set(writers)
    assert (summary.tables["network_edges"], summary.tables["network_nodes"]) == (2, 2)
    with open_store(store_location(config)) as store:
        extent = store.table_bounds("network_edges", wgs84=True)
        record = store.records("catalog")["network_edges"]
        nodes_extent = store.table_bounds("network_nodes", wgs84=True)
        nodes_record = store.records("catalog")["network_nodes"]
        layers = ("roads", "buildings", "pois", "traffic_signals")
        catalogued = {name: store.records("catalog")[name]["bbox_wgs84"] for name in layers}
        record_roads = store.records("catalog")["roads"]
        stored = {name: store.table_bounds(name, wgs84=True) for name in layers}
    # the OSM layers' extents, computed from the rows the reader handed over, are the store's own
    assert catalogued == {name: [round(v, 7) for v in b] if b else None for name, b in stored.items()}
    assert catalogued["pois"] is None and catalogued["roads"] is not None  # no POI in this extract
    # the extract's checksum, computed beside the reader, is the file's SHA-256
    assert (
        record_roads["source"]["sha256"]
        == hashlib.sha256((tmp_path / "street.osm.pbf").read_bytes()).hexdigest()
    )
    assert extent is not None
    assert record["bbox_wgs84"] == [round(v, 7) for v in extent]
    assert nodes_extent is not None and nodes_record["bbox_wgs84"] == [round(v, 7) for v in nodes_extent]
    # the street runs 0.002° east from (LON0, LAT0): its extent is that line's, to about 1 cm
    assert record["bbox_wgs84"] == pytest.approx([LON0, LAT0, LON0 + 0.002, LAT0], abs=1e-7)


def test_a_reader_failing_after_the_roads_fails_the_build_without_leaving_the_split_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The split started from the written roads waits for the reader's traffic signals; a reader that
    fails before writing them must not leave it waiting (the build would never end)."""
    import civictwin.sources.osm as osm

    config = load_config(write_street_twin(tmp_path))
    build_twin(config)
    with open_store(store_location(config)) as store:
        served = version_of(store)
    write_layer = osm._write_layer

    def failing_after_roads(con: Any, layer: Any, ctx: Any) -> Any:
        if layer.table == "trees":
            raise RuntimeError("reader failed after the roads")
        return write_layer(con, layer, ctx)

    monkeypatch.setattr(osm, "_write_layer", failing_after_roads)
    outcome: list[BaseException] = []

    def build() -> None:
        try:
            build_twin(config)
        except BaseException as exc:  # the build's error, handed to the test's thread
            outcome.append(exc)

    thread = threading.Thread(target=build, daemon=True)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "the build did not end"
    assert [str(e) for e in outcome] == ["reader failed after the roads"]
    with open_store(store_location(config)) as store:
        assert version_of(store) == served


def test_the_readers_duckdb_is_opened_on_a_thread_of_its_own_as_the_build_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The OSM reader's compute connection (whose spatial extension takes about 0.5 s to load) is
    opened on the ``connect`` thread while the build creates its store, and the reader uses it."""
    opened: list[str] = []
    connect = build_module.connect

    def recorded_connect(*args: Any, **kwargs: Any) -> Any:
        opened.append(threading.current_thread().name)
        return connect(*args, **kwargs)

    monkeypatch.setattr(build_module, "connect", recorded_connect)
    summary = build_twin(load_config(write_street_twin(tmp_path)))
    assert len(opened) == 1 and opened[0].startswith("connect")
    assert summary.tables["roads"] == 1 and summary.tables["buildings"] == 1
