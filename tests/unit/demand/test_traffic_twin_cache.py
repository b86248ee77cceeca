"""load_twin keeps a twin's tables for the next call and reads them afresh once the store changes."""

from __future__ import annotations

from pathlib import Path

from traffic_tiny_twin import tiny_inputs

from civictwin.config import load_config
from civictwin.demo import write_demo_config
from civictwin.engines.traffic.inputs import load_twin
from civictwin.store.duckdb import DuckDBStore


def write_twin(twin_dir: Path) -> Path:
    """A twin folder whose store holds the tiny grid's edges, nodes and zones and a catalogue record."""
    path = load_config(write_demo_config(twin_dir)).store_path  # the demo's settings, a tiny store
    tiny = tiny_inputs(twin_dir)
    with DuckDBStore.create(path, crs=tiny.crs) as store:
        store.write_table("network_edges", tiny.edges)
        store.write_table("network_nodes", tiny.nodes)
        store.write_table("zones", tiny.zones)
        store.put_record("catalog", "osm", {"rows": 48})
    return path


def test_a_second_load_is_the_same_data_and_callers_cannot_change_it(tmp_path: Path) -> None:
    write_twin(tmp_path)
    first = load_twin(tmp_path)
    assert len(first.edges) == 48 and len(first.zones) == 4 and first.catalog == {"osm": {"rows": 48}}
    first.edges.loc[0, "speed_kmh"] = 999.0
    first.edges["extra"] = 1
    first.catalog["osm"]["rows"] = 0
    second = load_twin(tmp_path)
    assert second.edges["speed_kmh"].max() == 50.0 and "extra" not in second.edges.columns
    assert second.catalog == {"osm": {"rows": 48}} and second.crs == first.crs


def test_a_changed_or_rebuilt_store_is_read_again(tmp_path: Path) -> None:
    path = write_twin(tmp_path)
    assert load_twin(tmp_path).catalog == {"osm": {"rows": 48}}
    with DuckDBStore.open(path, read_only=False) as store:
        store.put_record("catalog", "osm", {"rows": 47})
    changed = load_twin(tmp_path)
    assert changed.catalog == {"osm": {"rows": 47}}
    path.unlink()
    write_twin(tmp_path)  # a rebuild: a new file in the same place
    assert load_twin(tmp_path).catalog == {"osm": {"rows": 48}}
