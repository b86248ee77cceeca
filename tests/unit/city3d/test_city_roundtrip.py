"""Import → build → export → schema-valid CityJSON 2.0 with the same geometry, LoDs, semantics and attributes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from city3d_fixtures import EXPECTED, SHARED, Ingest, house_cityjson, write_citygml, write_json
from jsonschema import Draft7Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from civictwin.build import build_twin
from civictwin.config import parse_config
from civictwin.export import export_dataset
from civictwin.sources.city3d import SURFACES_TABLE
from civictwin.store.duckdb import DuckDBStore

SCHEMAS = SHARED / "cityjson" / "schemas-2.0"


def _validator() -> Draft7Validator:
    if not (SCHEMAS / "cityjson.schema.json").is_file():
        pytest.skip(f"CityJSON schemas not found in {SCHEMAS}")
    resources = []
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        if ".min." not in path.name:
            contents = json.loads(path.read_text(encoding="utf-8"))
            resources.append(
                (contents["$id"], Resource.from_contents(contents, default_specification=DRAFT7))
            )
    registry: Registry[Any] = Registry().with_resources(resources)
    root = json.loads((SCHEMAS / "cityjson.schema.json").read_text(encoding="utf-8"))
    return Draft7Validator(root, registry=registry, format_checker=FormatChecker())


def _build_and_export(tmp_path: Path, kind: str, path: Path, crs: str, bbox: list[float]) -> dict[str, Any]:
    config = parse_config(
        {"twin": {"name": "round trip", "crs": crs}, "area": {"bbox": bbox},
         "sources": [{"name": "model", "kind": kind, "path": str(path), "licence": "CC0", "publisher": "p",
                      "steward": "s"}]},
        base_dir=tmp_path,
    )  # fmt: skip
    build_twin(config)
    out = tmp_path / "out.city.json"
    with DuckDBStore.open(config.store_path) as store:
        export_dataset(store, "buildings_3d", out, "cityjson")
    document: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    errors = sorted(_validator().iter_errors(document), key=str)
    assert not errors, errors[0].message
    return document


def _real_rings(
    document: dict[str, Any], object_id: str
) -> dict[str, list[list[tuple[float, float, float]]]]:
    """Per LoD, every ring of an object (and its parts) in real coordinates rounded to the millimetre."""
    scale = np.asarray(document["transform"]["scale"])
    translate = np.asarray(document["transform"]["translate"])
    vertices = np.asarray(document["vertices"], dtype=float) * scale + translate
    objects = document["CityObjects"]
    ids = [object_id, *objects[object_id].get("children", [])]
    out: dict[str, list[list[tuple[float, float, float]]]] = {}
    for ident in ids:
        for geometry in objects[ident].get("geometry", []):
            for ring in _rings(geometry["boundaries"]):
                points = [tuple(float(round(c, 3)) for c in vertices[i]) for i in ring]
                out.setdefault(str(geometry["lod"]), []).append(points)  # type: ignore[arg-type]
    return {lod: sorted(_canonical(r) for r in rings) for lod, rings in out.items()}


def _rings(boundaries: Any) -> list[list[int]]:
    if boundaries and isinstance(boundaries[0], int):
        return [boundaries]
    return [ring for part in boundaries for ring in _rings(part)]


def _canonical(ring: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    """The ring started at its smallest point (same cycle, same direction)."""
    start = ring.index(min(ring))
    return ring[start:] + ring[:start]


def _semantics(document: dict[str, Any], object_id: str) -> list[str]:
    objects = document["CityObjects"]
    found = []
    for ident in [object_id, *objects[object_id].get("children", [])]:
        for geometry in objects[ident].get("geometry", []):
            semantics = geometry.get("semantics")
            if semantics:
                values = np.asarray(semantics["values"], dtype=object).ravel()
                found += [semantics["surfaces"][v]["type"] for v in values if v is not None]
    return sorted(found)


def test_made_up_cityjson_round_trips_with_lods_semantics_and_attributes(
    tmp_path: Path, ingest: Ingest
) -> None:
    original = house_cityjson()
    source = write_json(tmp_path / "house.city.json", original)
    exported = _build_and_export(tmp_path, "cityjson", source, "EPSG:25832", [8.99, 48.74, 9.01, 48.76])
    assert exported["metadata"]["referenceSystem"] == "https://www.opengis.net/def/crs/EPSG/0/5555"
    assert _real_rings(exported, "house0") == _real_rings(original, "house0")
    assert _semantics(exported, "house0") == _semantics(original, "house0")
    building = exported["CityObjects"]["house0"]
    assert building["attributes"]["yearOfConstruction"] == 1975 and building["attributes"]["owner"] == "city"
    part = exported["CityObjects"]["house0-part"]
    assert part["parents"] == ["house0"] and part["attributes"] == {"roofType": "gable"}
    walls = [s for s in part["geometry"][0]["semantics"]["surfaces"] if s["type"] == "WallSurface"]
    assert walls == [{"type": "WallSurface", "material": "brick"}]
    # the exported file reads back to the same hand-computed surfaces
    again = write_json(tmp_path / "again.city.json", exported)
    store, _ = ingest("cityjson", again)
    surfaces = store.read_table(SURFACES_TABLE)
    got = sorted(
        (
            round(r["area_m2"], 3),
            round(r["tilt_deg"], 2),
            None if np.isnan(r["azimuth_deg"]) else round(r["azimuth_deg"], 2),
        )
        for r in surfaces.to_dict("records")
    )
    assert got == sorted(EXPECTED, key=lambda e: (e[0], e[1], -1 if e[2] is None else e[2]))


def test_citygml_exports_as_cityjson_with_its_semantics(tmp_path: Path) -> None:
    source = write_citygml(tmp_path / "houses.gml", houses=2)
    exported = _build_and_export(tmp_path, "citygml", source, "EPSG:25832", [8.99, 48.74, 9.01, 48.76])
    assert sorted(exported["CityObjects"]) == ["house0", "house1"]
    assert _semantics(exported, "house1") == [
        "GroundSurface",
        "RoofSurface",
        "RoofSurface",
        *["WallSurface"] * 4,
    ]
    geometry = exported["CityObjects"]["house0"]["geometry"]
    assert [(g["type"], g["lod"]) for g in geometry] == [("Solid", "2")]
    assert (
        exported["metadata"]["referenceSystem"] == "https://www.opengis.net/def/crs/EPSG/0/25832"
    )  # DHHN2016 has no EPSG compound with it
    assert exported["CityObjects"]["house0"]["attributes"]["measuredHeight"] == 9.5


@pytest.mark.shared
def test_delft_round_trips(tmp_path: Path) -> None:
    path = SHARED / "cityjson" / "delft.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    original = json.loads(path.read_text(encoding="utf-8"))
    exported = _build_and_export(tmp_path, "cityjson", path, "EPSG:28992", [4.355, 52.005, 4.375, 52.02])
    assert exported["metadata"]["referenceSystem"] == "https://www.opengis.net/def/crs/EPSG/0/7415"
    buildings = sorted(k for k, v in original["CityObjects"].items() if v["type"] == "Building")
    assert sorted(exported["CityObjects"]) == buildings and len(buildings) == 160
    for ident in buildings:
        assert _real_rings(exported, ident) == _real_rings(original, ident), ident
        assert (
            exported["CityObjects"][ident]["attributes"].items()
            >= original["CityObjects"][ident]["attributes"].items()
        )
