"""A small hand-made twin for the readiness tests (no OSM build): a twin.toml, a DuckDB store with a
few layers and their records, an observation store with one traffic-count datastream, an EPW file,
a heat.toml naming a missing one, a city template folder, and one finished comparison.

What it holds, judged at :data:`NOW` (2026-12-01T00:00Z):

- ``network_edges`` (issued 2022-06-01: 1644 days old), ``zones`` (a ``validation/zones`` record,
  passed), ``buildings_3d`` (quality note "population is an estimate"), ``green`` (restricted),
  ``pois``: catalogued, ODbL-1.0, public unless said, "City GIS team";
- ``trees``: no catalogue record (ungoverned);
- no ``transit_stop_frequency``, ``landuse`` or ``building_surfaces``;
- one datastream "Traffic count: all vehicles" (3 hourly results, the last 2026-11-29T00:00Z);
- ``[energy] weather`` = weather.epw (exists), no ``[energy] typology``; heat.toml's epw is missing;
- records ``validation/population`` (passed) and ``validation/traffic`` (failed);
- ``runs/cmp1``: a finished comparison with a manifest.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import pandas as pd
from shapely.geometry import LineString, Point, box

from civictwin.catalog.observations import record_datastreams
from civictwin.store.duckdb import DuckDBStore
from civictwin.store.observations import (
    DatasetSpec,
    DatastreamSpec,
    LocationSpec,
    ObservationBatch,
    ObservedPropertySpec,
    SensorSpec,
    ThingSpec,
    Unit,
    open_observations,
    to_ms,
)

NOW = datetime(2026, 12, 1, tzinfo=UTC)
CRS = "EPSG:32635"
X0, Y0 = 385_000.0, 6_672_000.0
ISSUED = "2026-01-01T00:00:00+00:00"
CITY_TEMPLATE = """title = "School streets"
objective = "Close the streets in front of schools at school times."

[[kpis]]
name = "total_delay_h"
engine = "traffic"
label = "Total car delay"
needs = ["network", "counts", "school_trips", "validation"]

[needs.network]
kind = "layer"
table = "network_edges"
level = 1
what = "Streets"
how_to_get = "Build the twin."

[needs.counts]
kind = "datastream"
observed_property = "TRAFFIC COUNT"
level = 2
what = "Counts near schools"
how_to_get = "Import the counts."

[needs.school_trips]
kind = "record"
record = "survey/school_trips"
level = 3
what = "How pupils travel to school"
how_to_get = "Ask the schools for their travel survey."

[needs.validation]
kind = "record"
record = "validation/traffic"
level = 4
what = "A checked baseline"
how_to_get = "Validate the baseline against counts."
"""
TWIN_TOML = """[twin]
name = "Readiness test"

[area]
bbox = [24.93, 60.16, 24.95, 60.17]

[[sources]]
name = "osm"
kind = "osm"
path = "city.osm.pbf"
licence = "ODbL-1.0"
publisher = "OpenStreetMap contributors"
steward = "City GIS team"

[energy.weather]
path = "weather.epw"
licence = "CC-BY-4.0"
publisher = "climate.onebuilding.org"

[readiness]
templates = "usecases"
"""


def build_twin(directory: Path) -> Path:
    """Write the twin into ``directory``; returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "twin.toml").write_text(TWIN_TOML, encoding="utf-8")
    (directory / "city.osm.pbf").write_bytes(b"unused")
    (directory / "weather.epw").write_text("LOCATION,Test\n", encoding="utf-8")
    (directory / "heat.toml").write_text('epw = "missing.epw"\n', encoding="utf-8")
    (directory / "usecases").mkdir()
    (directory / "usecases" / "school-streets.toml").write_text(CITY_TEMPLATE, encoding="utf-8")
    store_path = directory / "readiness-test.duckdb"
    _layers(store_path)
    _datastream(store_path)
    comparison = directory / "runs" / "cmp1"
    comparison.mkdir(parents=True)
    (comparison / "manifest.json").write_text('{"comparison": "cmp1"}\n', encoding="utf-8")
    (comparison / "complete").write_text("2026-11-01T00:00:00+00:00\n", encoding="utf-8")
    return directory


def _layers(path: Path) -> None:
    squares = [box(X0, Y0, X0 + 20, Y0 + 20), box(X0 + 100, Y0, X0 + 120, Y0 + 20)]
    lines = [LineString([(X0, Y0), (X0 + 100, Y0)]), LineString([(X0 + 100, Y0), (X0, Y0)])]
    layers = {
        "network_edges": gpd.GeoDataFrame(
            {"edge_id": ["1_0", "-1_0"], "speed_kmh": [30.0, 30.0], "capacity_vph": [900.0, 900.0],
             "car": [True, True], "bike": [True, True], "walk": [True, True]},
            geometry=lines, crs=CRS,
        ),
        "zones": gpd.GeoDataFrame(
            {"zone_id": ["z1", "z2"], "population": [120, 80], "jobs_proxy_m2": [500.0, 0.0]},
            geometry=squares, crs=CRS,
        ),
        "buildings_3d": gpd.GeoDataFrame(
            {"height_m": [12.0, 9.0], "use": ["residential", "commercial"], "floor_area_m2": [1600.0, 800.0],
             "population_est": [40.0, 0.0]},
            geometry=squares, crs=CRS,
        ),
        "green": gpd.GeoDataFrame({"kind": ["park"]}, geometry=[box(X0, Y0 + 50, X0 + 80, Y0 + 130)], crs=CRS),
        "pois": gpd.GeoDataFrame(
            {"category": ["tourism", "amenity"]}, geometry=[Point(X0, Y0), Point(X0 + 5, Y0)], crs=CRS
        ),
        "trees": gpd.GeoDataFrame({"osm_id": [1, 2]}, geometry=[Point(X0, Y0 + 30), Point(X0 + 9, Y0 + 30)], crs=CRS),
    }  # fmt: skip
    store = DuckDBStore.create(path, crs=CRS)
    try:
        for name, frame in layers.items():
            store.write_table(name, frame)
            if name == "trees":
                continue
            store.put_record(
                "catalog",
                name,
                {"table": name, "title": name, "kind": "osm", "publisher": "OpenStreetMap contributors",
                 "steward": "City GIS team", "licence": "ODbL-1.0",
                 "access": "restricted" if name == "green" else "public",
                 "issued": "2022-06-01T00:00:00+00:00" if name == "network_edges" else ISSUED,
                 "rows": len(frame)},
            )  # fmt: skip
        store.put_record(
            "quality", "buildings_3d", {"table": "buildings_3d", "notes": ["population is an estimate"]}
        )
        store.put_record("validation", "population", {"status": "passed", "issued": ISSUED})
        store.put_record("validation", "zones", {"status": "passed", "issued": ISSUED})
        store.put_record("validation", "traffic", {"status": "failed", "issued": ISSUED})
        store.write_table("roads", pd.DataFrame({"unused": [1]}))
    finally:
        store.close()


def _datastream(path: Path) -> None:
    dataset = DatasetSpec("counts", "Traffic counts", "City", "Mobility team", "CC-BY-4.0", "public")
    spec = DatastreamSpec(
        key="counts/p1/all",
        name="Point 1: all vehicles",
        dataset="counts",
        thing=ThingSpec("counts/p1", "Point 1", LocationSpec("counts/p1", "Point 1", 24.94, 60.165)),
        sensor=SensorSpec("counts/count", "Counter"),
        observed_property=ObservedPropertySpec("counts/all", "Traffic count: all vehicles", "all vehicles"),
        unit=Unit("{vehicle}/h", "vehicles per hour", "veh/h"),
        valid_range=(0.0, None),
        interval_s=3600,
    )
    start = to_ms("2026-11-28T22:00:00Z")
    with open_observations(path) as observations:
        observations.ensure_dataset(dataset)
        stream = observations.ensure_datastream(spec)
        observations.append(
            ObservationBatch.of(
                datastream_id=[stream] * 3,
                phenomenon_time=[start, start + 3_600_000, start + 7_200_000],
                result=[410.0, 380.0, 120.0],
            ),
            origin="test",
        )
        record_datastreams(
            observations, dataset, observations.datastreams(), source={"path": "counts.csv", "sha256": "0" * 64},
            step="test import", parameters={}, import_rejections={}, expected={}, notes=[],
            imported_at=datetime(2026, 11, 29, 1, tzinfo=UTC), bboxes={},
        )  # fmt: skip
