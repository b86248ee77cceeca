"""Builders shared by the catalogue tests: source configurations and known coordinates."""

from __future__ import annotations

from datetime import UTC, datetime

from shapely.geometry import LineString, Point

from civictwin.config import SourceConfig

CRS = "EPSG:32635"
INGESTED = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
BUILT = datetime(2026, 11, 21, 12, 5, tzinfo=UTC)

# Two road ends and two bus stops at known UTM 35N coordinates (central Helsinki).
ROAD = LineString([(385_000.0, 6_672_000.0), (385_400.0, 6_672_300.0)])
STOPS = [Point(385_100.0, 6_672_050.0), Point(385_200.0, 6_672_250.0)]


def osm_source(**overrides: object) -> SourceConfig:
    values: dict[str, object] = {
        "name": "helsinki_osm",
        "kind": "osm",
        "path": "city.osm.pbf",
        "licence": "ODbL-1.0",
        "publisher": "OpenStreetMap contributors",
        "steward": "City GIS unit",
        "description": "OpenStreetMap extract of central Helsinki",
    }
    values.update(overrides)
    return SourceConfig.model_validate(values)


def gtfs_source() -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "name": "hsl_gtfs",
            "kind": "gtfs",
            "path": "gtfs",
            "licence": "https://creativecommons.org/licenses/by/4.0/",
            "publisher": "Helsinki Region Transport",
            "steward": "Mobility team",
            "access": "internal",
        }
    )
