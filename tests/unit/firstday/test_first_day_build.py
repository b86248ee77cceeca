"""A city's first day, built once from tiny hand-made inputs in a data folder: a population grid of
cell-centre points, two GTFS feeds (one long ended), a GML layer and an OSM extract of two buildings
and two streets.

Checked by hand: every person of the grid is in the twin, each feed is credited with its own counts,
the ended feed is said loudly, and the data folder is byte-identical after the build.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import osmium
import pytest
from osmium.osm.mutable import Node, Way

from civictwin.build import BuildSummary, build_twin
from civictwin.catalog.lineage import LINEAGE
from civictwin.catalog.metadata import CATALOG
from civictwin.catalog.quality import QUALITY
from civictwin.catalog.report import catalog_html, quality_html, quality_jsonld
from civictwin.cli import main
from civictwin.config import load_config, parse_config
from civictwin.errors import ConfigError
from civictwin.model.names import find_by_name
from civictwin.store.duckdb import DuckDBStore

BBOX = (24.93, 60.16, 24.96, 60.18)
BUILDINGS = {  # way id: (south-west corner lon, lat, tags); squares of 0.0002° × 0.0001° (≈ 11 m × 11 m)
    100: (24.9400, 60.1700, {"building": "apartments", "building:levels": "4"}),
    101: (24.9500, 60.1700, {"building": "office"}),
}
STREETS = {  # way id: (name, from lon, to lon) at latitude 60.169
    200: ("Mannerheimintie", 24.935, 24.945),
    201: ("Aleksanterinkatu", 24.945, 24.955),
}
# Cell centres (lon, lat), people, jobs: the apartments' cell, the office's cell, an empty cell.
GRID = "lon,lat,population,jobs\n24.9401,60.17005,100,5\n24.9501,60.17005,30,50\n24.935,60.175,7,0\n"
LANES_GML = """<?xml version="1.0" encoding="UTF-8"?>
<ogr:FeatureCollection xmlns:ogr="http://ogr.maptools.org/" xmlns:gml="http://www.opengis.net/gml">
<gml:featureMember><ogr:lane><ogr:geometryProperty><gml:Point srsName="EPSG:4326">
<gml:coordinates>24.94,60.17</gml:coordinates></gml:Point></ogr:geometryProperty><ogr:name>Bus lane</ogr:name>
</ogr:lane></gml:featureMember>
</ogr:FeatureCollection>
"""


CAFE = 300  # a POI node: amenity=cafe named "Café Ekberg"


class Built(NamedTuple):
    summary: BuildSummary
    store: DuckDBStore
    twin_dir: Path


def _write_pbf(path: Path) -> None:
    writer = osmium.SimpleWriter(str(path), overwrite=True)
    nodes: list[Node] = []
    ways: list[Way] = []
    for way_id, (lon, lat, tags) in BUILDINGS.items():
        first = way_id * 10
        corners = [(lon, lat), (lon + 0.0002, lat), (lon + 0.0002, lat + 0.0001), (lon, lat + 0.0001)]
        nodes += [
            Node(id=first + i, location=osmium.osm.Location(x, y), version=1)
            for i, (x, y) in enumerate(corners)
        ]
        ways.append(
            Way(id=way_id, nodes=[first, first + 1, first + 2, first + 3, first], tags=tags, version=1)
        )
    for way_id, (name, west, east) in STREETS.items():
        first = way_id * 10
        nodes += [
            Node(id=first + i, location=osmium.osm.Location(x, 60.169), version=1)
            for i, x in enumerate([west, east])
        ]
        ways.append(
            Way(id=way_id, nodes=[first, first + 1], tags={"highway": "residential", "name": name}, version=1)
        )
    cafe_tags = {"amenity": "cafe", "name": "Café Ekberg"}
    nodes.append(Node(id=CAFE, location=osmium.osm.Location(24.9410, 60.1720), tags=cafe_tags, version=1))
    for node in sorted(nodes, key=lambda n: n.id):
        writer.add_node(node)
    for way in ways:
        writer.add_way(way)
    writer.close()


def _write_feed(path: Path, *, stops: str, end_date: str) -> None:
    files = {
        "agency.txt": "agency_id,agency_name,agency_url,agency_timezone\nA,Test,https://example.org,Europe/Helsinki\n",
        "stops.txt": "stop_id,stop_name,stop_lat,stop_lon\n" + stops,
        "routes.txt": "route_id,agency_id,route_short_name,route_type\nR,A,1,3\n",
        "trips.txt": "route_id,service_id,trip_id\nR,S,T\n",
        "stop_times.txt": "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
        + "".join(
            f"T,08:0{i}:00,08:0{i}:00,{line.split(',')[0]},{i + 1}\n"
            for i, line in enumerate(stops.splitlines())
        ),
        "calendar.txt": "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n"
        f"S,1,1,1,1,1,1,1,20200101,{end_date}\n",
    }
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)


def _config(folder: Path) -> dict[str, Any]:
    governance = {"steward": "City GIS team"}
    return {
        "twin": {"name": "First day", "crs": "EPSG:32635"},
        "area": {"bbox": list(BBOX)},
        "population": {"grid_source": "census"},
        "sources": [
            {"name": "osm", "kind": "osm", "path": "city.osm.pbf", "licence": "ODbL-1.0",
             "publisher": "OpenStreetMap contributors", **governance},
            {"name": "census", "kind": "grid", "path": "grid.csv", "x": "lon", "y": "lat", "cell_size_m": 200,
             "licence": "CC-BY-4.0", "publisher": "Statistics office", **governance},
            {"name": "city_bus", "kind": "gtfs", "path": "bus.zip", "licence": "CC-BY-4.0",
             "publisher": "City Transit", **governance},
            {"name": "old_tram", "kind": "gtfs", "path": "tram.zip", "licence": "ODbL-1.0",
             "publisher": "Tram Company", **governance},
            {"name": "lanes", "kind": "vector", "path": "lanes.gml", "licence": "CC0-1.0",
             "publisher": "City GIS", **governance},
        ],
    }  # fmt: skip


def _toml(settings: dict[str, Any]) -> str:
    """The settings as twin.toml (their strings, numbers and lists are written the JSON way, valid TOML)."""
    lines = []
    for section in ("twin", "area", "population"):
        lines += [f"[{section}]", *(f"{k} = {json.dumps(v)}" for k, v in settings[section].items())]
    for source in settings["sources"]:
        lines += ["[[sources]]", *(f"{k} = {json.dumps(v)}" for k, v in source.items())]
    return "\n".join(lines) + "\n"


def _digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file below ``folder``, by relative path."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture(scope="module")
def data_digests() -> dict[str, dict[str, str]]:
    """The data folder's file digests before and after the build (filled by ``built``)."""
    return {}


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, data_digests: dict[str, dict[str, str]]
) -> Iterator[Built]:
    twin_dir = tmp_path_factory.mktemp("firstday")
    folder = twin_dir / "data"
    folder.mkdir()
    (folder / "lanes.gml").write_text(LANES_GML, encoding="utf-8")
    _write_pbf(folder / "city.osm.pbf")
    (folder / "grid.csv").write_text(GRID, encoding="utf-8")
    _write_feed(
        folder / "bus.zip", stops="B1,One,60.1690,24.9400\nB2,Two,60.1690,24.9500\n", end_date="20991231"
    )
    _write_feed(
        folder / "tram.zip", stops="T1,Tram,60.1691,24.9450\nT2,Far,60.2000,25.1000\n", end_date="20200131"
    )
    settings = _config(folder)
    for source in settings["sources"]:
        source["path"] = f"data/{source['path']}"
    (twin_dir / "twin.toml").write_text(_toml(settings), encoding="utf-8")
    config = load_config(twin_dir)
    data_digests["before"] = _digests(folder)
    summary = build_twin(config)
    data_digests["after"] = _digests(folder)
    store = DuckDBStore.open(config.store_path)
    yield Built(summary, store, twin_dir)
    store.close()


def test_every_person_of_the_grid_is_in_the_twin(built: Built) -> None:
    summary, store = built.summary, built.store
    buildings = store.read_table("buildings_3d").set_index("osm_id")
    # the apartments hold all 100 people of their cell; nobody lives in the office
    assert buildings.loc[100, "population_est"] == 100.0
    assert buildings.loc[101, "population_est"] == 0.0
    land = store.read_frame("population_land").sort_values("cell")
    assert land["population"].tolist() == [30.0, 7.0]
    # the office's cell: 200 m × 200 m less the office's footprint; the empty cell: all of it
    office = float(buildings.loc[101, "footprint_m2"])
    assert land.geometry.area.tolist() == pytest.approx([40_000.0 - office, 40_000.0], abs=0.5)
    assert buildings["population_est"].sum() + land["population"].sum() == 137.0
    quality = store.records(QUALITY)["buildings_3d"]["population_grid"]
    assert quality == {
        "total": 137.0, "in_residential_floor_area": 100.0, "on_buildable_land": 37.0,
        "share_in_residential_floor_area": 0.7299, "share_on_buildable_land": 0.2701,
        "cells_on_buildable_land": 2, "cells_without_buildable_land": 0,
    }  # fmt: skip
    land_record = store.records(CATALOG)["population_land"]
    assert land_record["publisher"] == "Statistics office; OpenStreetMap contributors"
    assert land_record["licence"] == "CC-BY-4.0; ODbL-1.0"
    zones = store.read_table("zones")
    # zones round each value to 0.1 person / 0.01 job; their sums keep the grid's totals
    assert zones["population"].sum() == pytest.approx(137.0, abs=0.05 * len(zones))
    assert zones["census_jobs"].sum() == pytest.approx(55.0, abs=0.005 * len(zones))
    assert summary.totals["population"] == pytest.approx(137.0, abs=0.05 * len(zones))


def test_each_feed_is_credited_with_its_own_counts(built: Built) -> None:
    store = built.store
    record = store.records(CATALOG)["transit_stops"]
    assert record["rows"] == 3
    assert record["publisher"] == "City Transit; Tram Company"
    assert record["licence"] == "CC-BY-4.0; ODbL-1.0"
    assert [(s["name"], s["publisher"], s["licence"], s["rows"]) for s in record["sources"]] == [
        ("city_bus", "City Transit", "CC-BY-4.0", 2),
        ("old_tram", "Tram Company", "ODbL-1.0", 1),
    ]
    assert [Path(s["path"]).name for s in record["sources"]] == ["bus.zip", "tram.zip"]
    quality = store.records(QUALITY)["transit_stops"]["by_source"]
    assert {name: q["geometry"]["kept"] for name, q in quality.items()} == {"city_bus": 2, "old_tram": 1}
    assert {name: q["geometry"]["outside_area"] for name, q in quality.items()} == {
        "city_bus": 0,
        "old_tram": 1,
    }
    lineage = store.records(LINEAGE)["transit_stops"]
    assert [i["source"] for i in lineage["inputs"]] == ["city_bus", "old_tram"]
    catalogue_page = catalog_html(store)
    assert "city_bus: City Transit, CC-BY-4.0, 2 rows" in catalogue_page
    assert "old_tram: Tram Company, ODbL-1.0, 1 row" in catalogue_page
    (stops_node,) = [n for n in quality_jsonld(store)["@graph"] if n.get("dct:identifier") == "transit_stops"]
    kept = {m["ct:source"]: m["dqv:value"]["@value"] for m in stops_node["dqv:hasQualityMeasurement"]
            if m["dqv:isMeasurementOf"]["@id"] == "ct:metric/kept"}  # fmt: skip
    assert kept == {"city_bus": 2, "old_tram": 1}
    section = quality_html(store).split('<section id="transit_stops">')[1].split("</section>")[0]
    assert section.index("<h3>city_bus</h3>") < section.index("<h3>old_tram</h3>")


def test_an_ended_feed_is_said_loudly(built: Built) -> None:
    summary, store = built.summary, built.store
    frequency = store.records(QUALITY)["transit_stop_frequency"]["by_source"]
    assert frequency["old_tram"]["service_period"]["status"] == "ended"
    assert frequency["city_bus"]["service_period"]["status"] == "current"
    build_day = frequency["old_tram"]["service_period"]["build_day"]
    warning = (
        f"warning: GTFS feed 'old_tram' ended on 2020-01-31, before the build day {build_day}; its departures "
        "are counted on 2020-01-01: replace it with a current feed"
    )
    assert f"transit_stop_frequency: old_tram: {warning}" in summary.highlights
    assert not any("city_bus: warning" in line for line in summary.highlights)


def test_the_data_folder_is_byte_identical_after_the_build(
    built: Built, data_digests: dict[str, dict[str, str]]
) -> None:
    store = built.store
    assert store.read_table("lanes")["name"].tolist() == ["Bus lane"]
    assert sorted(data_digests["before"]) == ["bus.zip", "city.osm.pbf", "grid.csv", "lanes.gml", "tram.zip"]
    assert data_digests["after"] == data_digests["before"]  # nothing added (no lanes.gfs), nothing changed


def test_find_streets_and_places_by_part_of_their_name(built: Built) -> None:
    found = find_by_name(built.store, "MANNERHEIM")
    (street,) = found.matches
    assert (street.table, street.name, street.osm_ids, street.edge_ids) == (
        "network_edges", "Mannerheimintie", [200], ["-200_1", "200_1"],
    )  # fmt: skip
    # the middle of the street, 24.935–24.945 along latitude 60.169
    assert (street.lon, street.lat) == pytest.approx((24.94, 60.169), abs=2e-6)
    (cafe,) = find_by_name(built.store, "cafe ek").matches  # accents and case ignored
    assert (cafe.table, cafe.name, cafe.osm_ids, cafe.osm_type) == ("pois", "Café Ekberg", [CAFE], "node")
    assert (cafe.lon, cafe.lat) == pytest.approx((24.941, 60.172), abs=1e-6)
    assert [m.name for m in find_by_name(built.store, "inti").matches] == ["Mannerheimintie"]
    missing = find_by_name(built.store, "Manerheimintie")
    assert (missing.matches, missing.suggestions) == ([], ["Mannerheimintie"])


def test_find_on_the_command_line(built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    main(["find", str(built.twin_dir), "aleksanterin"])
    out = capsys.readouterr().out
    assert "Aleksanterinkatu" in out and "-201_1 201_1" in out and "201 (way)" in out
    with pytest.raises(SystemExit) as exit_:
        main(["find", str(built.twin_dir), "Aleksandrinkatu"])
    assert exit_.value.code == 1
    assert (
        "No street or place named like 'Aleksandrinkatu'; did you mean: Aleksanterinkatu?"
        in capsys.readouterr().out
    )


def test_a_grid_column_that_is_not_there_is_one_line(built: Built) -> None:
    settings = tomllib.loads((built.twin_dir / "twin.toml").read_text(encoding="utf-8"))
    settings["twin"]["name"] = "First day, wrong column"
    settings["population"]["grid_column"] = "people"
    settings["sources"] = [s for s in settings["sources"] if s["kind"] in ("osm", "grid")]
    with pytest.raises(ConfigError) as caught:
        build_twin(parse_config(settings, base_dir=built.twin_dir))
    assert caught.value.user_message() == (
        f"{built.twin_dir / 'twin.toml'}: population.grid_column: the grid 'census' has no column 'people'; "
        "available: population, jobs"
    )


def test_sociodemographics_reach_the_zones_through_the_residents(built: Built) -> None:
    settings = tomllib.loads((built.twin_dir / "twin.toml").read_text(encoding="utf-8"))
    settings["twin"] |= {"name": "First day, socio-demographics", "store": "socio.duckdb"}
    settings["sources"] = [s for s in settings["sources"] if s["kind"] in ("osm", "grid")]
    settings["sociodemographics"] = {"source": "census", "weighting": "residents", "equity_by": ["jobs"]}
    config = parse_config(settings, base_dir=built.twin_dir)
    build_twin(config)
    store = DuckDBStore.open(config.store_path)
    zones = store.read_table("zones")
    quality = store.records(QUALITY)["zones"]
    lineage = store.records(LINEAGE)["zones"]
    store.close()
    assert lineage["parameters"]["sociodemographics"]["weighting"] == "residents"
    assert {"type": "table", "table": "census"} in lineage["inputs"]
    assert {"type": "table", "table": "buildings_3d"} in lineage["inputs"]
    # every person and job of the three cells is on the zones (the H3 zones cover the whole area)
    assert zones["census_population"].sum() == pytest.approx(137.0)
    assert zones["census_jobs"].sum() == pytest.approx(55.0)
    # the apartments' cell goes whole to the zone of its one residential building, not split by area
    assert zones["census_population"].max() >= 100.0
    # the office's cell and the empty cell hold no residents in buildings: weighted by area instead
    assert quality["sociodemographics"]["fallback_polygons"] == 2
    assert quality["sociodemographics"]["zones_uncovered"] == int((zones["census_coverage"] == 0).sum())
    assert zones.loc[zones["census_coverage"] == 0, "census_jobs"].isna().all()
