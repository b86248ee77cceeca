"""Buildings with known geometry for the export tests, and a CityJSON 2.0 validator that works offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from jsonschema import Draft7Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from shapely.geometry import MultiPolygon, Polygon, box

CRS = "EPSG:32635"
X0, Y0 = 385_000.0, 6_672_000.0
SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "cityjson"

BOX = box(X0, Y0, X0 + 10, Y0 + 20)  # 10 × 20 m, 9 m high
COURTYARD = Polygon(
    [(X0 + 100, Y0), (X0 + 130, Y0), (X0 + 130, Y0 + 30), (X0 + 100, Y0 + 30)],
    [[(X0 + 110, Y0 + 10), (X0 + 120, Y0 + 10), (X0 + 120, Y0 + 20), (X0 + 110, Y0 + 20)]],
)  # 30 × 30 m with a 10 × 10 m courtyard, 12 m high
TWO_PARTS = MultiPolygon([box(X0 + 200, Y0, X0 + 205, Y0 + 5), box(X0 + 210, Y0, X0 + 215, Y0 + 5)])  # 6 m


def buildings_frame(
    geometries: list[Any] | None = None, heights: list[float] | None = None
) -> gpd.GeoDataFrame:
    """A ``buildings_3d`` table with the columns of docs/data-model.md."""
    geometries = geometries if geometries is not None else [BOX, COURTYARD, TWO_PARTS]
    heights = heights if heights is not None else [9.0, 12.0, 6.0][: len(geometries)]
    n = len(geometries)
    return gpd.GeoDataFrame(
        {
            "osm_id": [101, 202, 303][:n],
            "osm_type": ["way", "way", "relation"][:n],
            "building": ["house", "apartments", "retail"][:n],
            "use": ["residential", "residential", "commercial"][:n],
            "name": [None, "Courtyard block", None][:n],
            "levels": [3.0, 4.0, float("nan")][:n],
            "height_m": heights,
            "height_source": ["height", "levels", "default"][:n],
            "footprint_m2": [200.0, 800.0, 50.0][:n],
            "floor_area_m2": [600.0, 3200.0, 100.0][:n],
            "population_est": [15.0, 80.0, float("nan")][:n],
        },
        geometry=geometries,
        crs=CRS,
    )


def cityjson_validator() -> Draft7Validator:
    """A validator for ``cityjson.schema.json`` whose ``$ref`` s resolve to the local schema files."""
    folder = SHARED / "schemas-2.0"
    if not (folder / "cityjson.schema.json").is_file():
        pytest.skip(f"CityJSON schemas not found in {folder}")
    resources = []
    for path in sorted(folder.glob("*.schema.json")):
        if ".min." in path.name:
            continue
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append((contents["$id"], Resource.from_contents(contents, default_specification=DRAFT7)))
    registry: Registry[Any] = Registry().with_resources(resources)
    root = json.loads((folder / "cityjson.schema.json").read_text(encoding="utf-8"))
    return Draft7Validator(root, registry=registry, format_checker=FormatChecker())
