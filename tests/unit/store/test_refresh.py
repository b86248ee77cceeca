"""``civictwin refresh`` with two file sources, an OSM extract and a GTFS feed, one changed at a time,
on DuckDB and on PostGIS.

The tables that depend only on the unchanged source must come over byte for byte and provably not be
computed again (their readers and model steps are not called, their catalogue records keep the first
build's times, their lineage says ``carried_over``); those of the changed one, and what is derived
from them, are new.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import osmium
import pyarrow as pa
import pytest
from osmium.osm.mutable import Node, Way

import civictwin.build as build_module
from civictwin.build import Reuse, build_twin, open_twin
from civictwin.catalog.lineage import LINEAGE
from civictwin.catalog.metadata import CATALOG
from civictwin.catalog.quality import QUALITY
from civictwin.cli.twin import refresh
from civictwin.config import TwinConfig, load_config
from civictwin.errors import StoreError
from civictwin.refresh import plan_reuse, refresh_twin
from civictwin.store.base import version_of
from civictwin.store.duckdb import DuckDBStore
from civictwin.store.opening import open_store
from civictwin.store.postgis import PostGISStore

BBOX = (24.93, 60.16, 24.96, 60.18)
OSM_TABLES = ["addresses", "buildings", "buildings_3d", "green", "landuse", "network_edges", "network_nodes",
              "pois", "roads", "traffic_signals", "trees", "water"]  # fmt: skip
"""Tables that depend on the OSM extract alone (its layers, empty ones included, the network, the buildings)."""


def _write_pbf(path: Path, *, levels: str) -> None:
    """Two 0.0002° × 0.0001° buildings (one with ``levels`` storeys) and a street at latitude 60.169."""
    writer = osmium.SimpleWriter(str(path), overwrite=True)
    nodes, ways = [], []
    for way_id, lon, tags in ((100, 24.9400, {"building": "apartments", "building:levels": levels}),
                              (101, 24.9500, {"building": "office"})):  # fmt: skip
        first = way_id * 10
        corners = [(lon, 60.17), (lon + 0.0002, 60.17), (lon + 0.0002, 60.1701), (lon, 60.1701)]
        nodes += [
            Node(id=first + i, location=osmium.osm.Location(x, y), version=1)
            for i, (x, y) in enumerate(corners)
        ]
        ways.append(
            Way(id=way_id, nodes=[first, first + 1, first + 2, first + 3, first], tags=tags, version=1)
        )
    nodes += [
        Node(id=2000 + i, location=osmium.osm.Location(x, 60.169), version=1)
        for i, x in enumerate([24.935, 24.955])
    ]
    ways.append(
        Way(id=200, nodes=[2000, 2001], tags={"highway": "residential", "name": "Mannerheimintie"}, version=1)
    )
    for node in nodes:
        writer.add_node(node)
    for way in ways:
        writer.add_way(way)
    writer.close()  # fmt: skip


def _write_feed(path: Path, *, stops: list[tuple[str, float]]) -> None:
    """A feed with one daily trip at 08:0i through ``stops`` (id, longitude) on latitude 60.1690."""
    files = {
        "agency.txt": "agency_id,agency_name,agency_url,agency_timezone\nA,Test,https://example.org,Europe/Helsinki\n",
        "stops.txt": "stop_id,stop_name,stop_lat,stop_lon\n" + "".join(f"{s},{s},60.1690,{x}\n" for s, x in stops),
        "routes.txt": "route_id,agency_id,route_short_name,route_type\nR,A,1,3\n",
        "trips.txt": "route_id,service_id,trip_id\nR,S,T\n",
        "stop_times.txt": "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
        + "".join(f"T,08:0{i}:00,08:0{i}:00,{s},{i + 1}\n" for i, (s, _) in enumerate(stops)),
        "calendar.txt": "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n"
        "S,1,1,1,1,1,1,1,20200101,20991231\n",
    }  # fmt: skip
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)


def _twin(folder: Path) -> TwinConfig:
    _write_pbf(folder / "city.osm.pbf", levels="4")
    _write_feed(folder / "bus.zip", stops=[("B1", 24.9400), ("B2", 24.9500)])
    sources = [
        {"name": "osm", "kind": "osm", "path": "city.osm.pbf", "licence": "ODbL-1.0",
         "publisher": "OpenStreetMap contributors", "steward": "GIS"},
        {"name": "bus", "kind": "gtfs", "path": "bus.zip", "licence": "CC-BY-4.0", "publisher": "City Transit",
         "steward": "GIS"},
    ]  # fmt: skip
    lines = ["[twin]", 'name = "Refresh"', 'crs = "EPSG:32635"', "[area]", f"bbox = {list(BBOX)}"]
    for source in sources:
        lines += ["[[sources]]", *(f"{k} = {json.dumps(v)}" for k, v in source.items())]
    (folder / "twin.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_config(folder)


def _contents(config: TwinConfig) -> dict[str, tuple[dict[str, str], pa.Table]]:
    """Every table as stored: column types and all rows (geometry as WKB), in stored order."""
    store = DuckDBStore.open(config.store_path)
    try:
        store.connection.execute("LOAD spatial")
        found = {}
        for info in store.tables():
            select = ", ".join(
                f"ST_AsWKB({c}) AS {c}" if t == "GEOMETRY" else f'"{c}"' for c, t in info.columns.items()
            )
            found[info.name] = (info.columns, store.connection.execute(f"SELECT {select} FROM {info.name}").to_arrow_table())  # fmt: skip
        return found
    finally:
        store.close()


def _records(config: TwinConfig) -> dict[str, dict[str, dict[str, Any]]]:
    with open_twin(config) as store:
        return {kind: store.records(kind) for kind in (CATALOG, LINEAGE, QUALITY, "meta")}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the sources read and of the model steps run, in order, from now on."""
    seen: list[str] = []

    def counted(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            seen.append(name)
            return function(*args, **kwargs)

        return wrapper

    reader_for = build_module.reader_for
    monkeypatch.setattr(
        build_module, "reader_for", lambda kind: counted(f"read {kind.value}", reader_for(kind))
    )
    for step in ("_save_network", "_buildings", "_transit", "_zones"):  # the network however its split began
        monkeypatch.setattr(build_module, step, counted(step, getattr(build_module, step)))
    return seen


def test_a_changed_feed_rebuilds_only_what_depends_on_it(tmp_path: Path, calls: list[str]) -> None:
    config = _twin(tmp_path)
    build_twin(config)
    before, records = _contents(config), _records(config)
    calls.clear()
    assert refresh_twin(config).summary is None and calls == []  # nothing changed: nothing read or built

    _write_feed(tmp_path / "bus.zip", stops=[("B1", 24.9400), ("B2", 24.9500), ("B3", 24.9450)])
    result = refresh_twin(config)
    assert {c.source: c.changed for c in result.checks} == {"osm": False, "bus": True}
    assert calls == ["read gtfs", "_zones", "_transit"]  # no OSM read, no network, no buildings
    after, again = _contents(config), _records(config)
    assert result.summary is not None and result.summary.carried_over == OSM_TABLES
    for table in OSM_TABLES:
        assert after[table][0] == before[table][0] and after[table][1].equals(before[table][1]), table
        assert again[CATALOG][table] == records[CATALOG][table]  # first build's times: not recomputed
        assert again[QUALITY][table] == records[QUALITY][table]
        assert again[LINEAGE][table] == {**records[LINEAGE][table], "carried_over": {
            "version": records["meta"]["version"]["id"], "built_at": records["meta"]["twin"]["built_at"]}}  # fmt: skip
    assert after["transit_stops"][1].num_rows == 3 and before["transit_stops"][1].num_rows == 2
    assert after["transit_stops_snapped"][1].num_rows == 3
    for table in ("transit_stops", "transit_stops_snapped", "zones"):
        assert "carried_over" not in again[LINEAGE][table]
        assert again[CATALOG][table] != records[CATALOG][table]
    refreshed = again["meta"]["build"]["refresh"]
    assert refreshed["changed_sources"] == ["bus"] and refreshed["sources_read"] == ["bus"]
    assert refreshed["carried_over"] == OSM_TABLES
    assert refreshed["rebuilt"] == sorted(set(after) - set(OSM_TABLES))
    assert refreshed["previous_version"] == records["meta"]["version"]["id"]


def test_a_changed_extract_keeps_the_feed_and_a_second_refresh_keeps_the_first_origin(
    tmp_path: Path, calls: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    config = _twin(tmp_path)
    build_twin(config)
    first = _records(config)
    _write_feed(tmp_path / "bus.zip", stops=[("B1", 24.9400)])
    refresh_twin(config)
    before, records = _contents(config), _records(config)
    calls.clear()
    _write_pbf(tmp_path / "city.osm.pbf", levels="7")
    refresh(tmp_path)  # the command
    output = " ".join(capsys.readouterr().out.split())
    assert calls == ["read osm", "_buildings", "_zones", "_save_network", "_transit"]  # the feed is not read
    after, again = _contents(config), _records(config)
    feed_tables = sorted(t for t, r in again[CATALOG].items() if r.get("source", {}).get("name") == "bus")
    assert feed_tables and "transit_stops" in feed_tables
    for table in feed_tables:
        assert after[table][1].equals(before[table][1]) and again[CATALOG][table] == records[CATALOG][table]
        # computed in the first refresh's version, not in the first build's
        assert again[LINEAGE][table]["carried_over"]["version"] == records["meta"]["version"]["id"]
        assert again[LINEAGE][table]["carried_over"]["version"] != first["meta"]["version"]["id"]
    levels = after["buildings_3d"][1].to_pandas().set_index("osm_id")["levels"]
    assert levels[100] == 7.0
    assert f"Carried over unchanged: {', '.join(feed_tables)}." in output
    assert f"Rebuilt: {', '.join(sorted(set(after) - set(feed_tables)))}." in output
    assert "osm: changed: SHA-256" in output and "bus: unchanged: same SHA-256" in output


def _pg_contents(store: PostGISStore) -> dict[str, tuple[dict[str, str], list[tuple[Any, ...]], list[str]]]:
    """Every table of the served schema: column types, all rows in identity order (geometry as EWKB),
    and its indexes' definitions with the schema's name taken out."""
    found = {}
    con = store.connection
    for info in store.tables():
        select = ", ".join(
            f"ST_AsEWKB({c})" if t == "geometry" else f'"{c}"' for c, t in info.columns.items()
        )
        rows = con.execute(f'SELECT {select} FROM "{store.schema}"."{info.name}" ORDER BY _fid').fetchall()
        indexes = con.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s ORDER BY indexdef",
            [store.schema, info.name],
        ).fetchall()
        found[info.name] = (info.columns, rows, [str(i[0]).replace(store.schema, "S") for i in indexes])
    return found


def test_a_postgis_twin_refreshes_in_the_database_and_switches_once(
    postgis_url: str, tmp_path: Path, calls: list[str]
) -> None:
    config = _twin(tmp_path)
    text = (
        (tmp_path / "twin.toml")
        .read_text()
        .replace('crs = "EPSG:32635"', f'crs = "EPSG:32635"\nstore = "{postgis_url}"')
    )
    (tmp_path / "twin.toml").write_text(text)
    config = load_config(tmp_path)
    build_twin(config)
    with open_store(config) as store:
        assert isinstance(store, PostGISStore)
        first_schema, before = store.schema, _pg_contents(store)
    records = _records(config)
    _write_feed(tmp_path / "bus.zip", stops=[("B1", 24.9400), ("B2", 24.9500), ("B3", 24.9450)])
    calls.clear()
    result = refresh_twin(config)
    assert calls == ["read gtfs", "_zones", "_transit"]
    assert result.summary is not None and result.summary.carried_over == OSM_TABLES
    with open_store(config) as store:
        assert isinstance(store, PostGISStore)
        schemas = [r[0] for r in store.connection.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'twin_%' ORDER BY nspname").fetchall()]  # fmt: skip
        assert schemas == [store.schema] and store.schema != first_schema  # one new version, the old one gone
        after = _pg_contents(store)
    again = _records(config)
    for table in OSM_TABLES:
        assert after[table] == before[table], table  # types, rows and the spatial index as they were
        assert again[CATALOG][table] == records[CATALOG][table]
        assert again[LINEAGE][table]["carried_over"]["version"] == records["meta"]["version"]["id"]
    assert any("USING gist (geometry)" in i for i in after["buildings_3d"][2])
    assert len(after["transit_stops"][1]) == 3 and len(before["transit_stops"][1]) == 2


def test_a_source_added_rebuilds_everything_and_a_twin_replaced_meanwhile_stops_the_refresh(
    tmp_path: Path,
) -> None:
    config = _twin(tmp_path)
    build_twin(config)
    with open_twin(config) as store:
        tables, version = [t.name for t in store.tables()], version_of(store)
        catalogue, lineage = store.records(CATALOG), store.records(LINEAGE)
    known = {"tables": tables, "catalogue": catalogue, "lineage": lineage, "served_version": version}
    tram = config.sources[1].model_copy(update={"name": "tram"})
    assert (
        plan_reuse(config.model_copy(update={"sources": [*config.sources, tram]}), ["tram"], **known) is None
    )
    reuse = plan_reuse(config, ["bus"], **known)
    assert reuse is not None and reuse.read == {"bus"} and reuse.steps == {"transit", "zones"}
    served = hashlib.sha256(config.store_path.read_bytes()).hexdigest()
    stale = Reuse(reuse.tables, reuse.read, reuse.steps, reuse.changed, served_version="0" * 32)
    with pytest.raises(StoreError, match="another build replaced the twin while it was being refreshed"):
        build_twin(config, reuse=stale)
    assert hashlib.sha256(config.store_path.read_bytes()).hexdigest() == served
