"""CityJSON 2.0 export: schema-valid, LoD1 solids with hand-checked vertices, rings and orientation."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from export_twin import BOX, COURTYARD, CRS, SHARED, X0, Y0, buildings_frame, cityjson_validator
from shapely.geometry import LineString, Point, Polygon

from civictwin.errors import ExportError
from civictwin.export.cityjson import buildings_to_cityjson, crs_url, write_cityjson
from civictwin.store.duckdb import DuckDBStore

# ------------------------------------------------------------------ helpers: geometry of the output


def _real(document: dict[str, Any]) -> np.ndarray:
    """The vertices in real coordinates (metres, twin CRS)."""
    transform = document["transform"]
    vertices = np.asarray(document["vertices"], dtype=float).reshape(-1, 3)
    real: np.ndarray = vertices * np.asarray(transform["scale"]) + np.asarray(transform["translate"])
    return real


def _normal(points: np.ndarray) -> np.ndarray:
    """Newell's normal of a ring (unit length): its direction follows the right-hand rule."""
    n = np.zeros(3)
    for a, b in zip(points, np.roll(points, -1, axis=0), strict=True):
        n += [(a[1] - b[1]) * (a[2] + b[2]), (a[2] - b[2]) * (a[0] + b[0]), (a[0] - b[0]) * (a[1] + b[1])]
    return n / np.linalg.norm(n)


def _volume(document: dict[str, Any], shell: list[list[list[int]]]) -> float:
    """Signed volume (divergence theorem): positive and exact only if every surface faces outward."""
    points = _real(document) - document["transform"]["translate"]
    total = 0.0
    for surface in shell:
        for ring in surface:
            r = points[ring]
            total += sum(np.dot(r[0], np.cross(r[i], r[i + 1])) for i in range(1, len(r) - 1))
    return total / 6


def _single(store: DuckDBStore, geometry: Any, height: float) -> dict[str, Any]:
    store.write_table("buildings_3d", buildings_frame([geometry], [height]))
    return buildings_to_cityjson(store)


# ------------------------------------------------------------------ tests


def test_box_becomes_eight_vertices_and_six_oriented_surfaces(store: DuckDBStore) -> None:
    document = _single(store, BOX, 9.0)
    assert document["transform"] == {"scale": [0.001, 0.001, 0.001], "translate": [X0, Y0, 0.0]}
    assert sorted(map(tuple, document["vertices"])) == sorted(
        (x, y, z) for x in (0, 10_000) for y in (0, 20_000) for z in (0, 9_000)
    )
    assert all(isinstance(c, int) for v in document["vertices"] for c in v)
    (building,) = document["CityObjects"].values()
    (solid,) = building["geometry"]
    assert (solid["type"], solid["lod"]) == ("Solid", "1")
    (shell,) = solid["boundaries"]
    assert len(shell) == 6 and all(len(surface) == 1 and len(surface[0]) == 4 for surface in shell)
    assert solid["semantics"]["values"] == [[0, 1, 2, 2, 2, 2]]
    assert [s["type"] for s in solid["semantics"]["surfaces"]] == [
        "GroundSurface",
        "RoofSurface",
        "WallSurface",
    ]
    real = _real(document)
    ground, roof, *walls = shell
    assert np.allclose(_normal(real[ground[0]]), [0, 0, -1])
    assert np.allclose(_normal(real[roof[0]]), [0, 0, 1])
    centre = np.array([X0 + 5, Y0 + 10])
    for wall in walls:
        n = _normal(real[wall[0]])
        assert n[2] == pytest.approx(0)
        assert np.dot(n[:2], real[wall[0]][:, :2].mean(axis=0) - centre) > 0  # faces away from the centre
    assert _volume(document, shell) == pytest.approx(10 * 20 * 9)
    assert document["metadata"]["geographicalExtent"] == [X0, Y0, 0.0, X0 + 10, Y0 + 20, 9.0]


def test_courtyard_hole_gives_two_ring_ground_and_roof_and_inward_facing_courtyard_walls(
    store: DuckDBStore,
) -> None:
    document = _single(store, COURTYARD, 12.0)
    (building,) = document["CityObjects"].values()
    (shell,) = building["geometry"][0]["boundaries"]
    ground, roof, *walls = shell
    assert (len(ground), len(roof), len(walls)) == (2, 2, 8)  # 4 outer + 4 courtyard walls
    assert len(document["vertices"]) == 16
    real = _real(document)
    footprint = Polygon(COURTYARD)
    for wall in walls:
        ring = real[wall[0]]
        mid, n = ring.mean(axis=0), _normal(ring)
        assert not footprint.contains(Point(*(mid[:2] + 0.5 * n[:2])))  # out of the building …
        assert footprint.contains(Point(*(mid[:2] - 0.5 * n[:2])))  # … from inside it
    assert np.allclose(_normal(real[ground[1]]), [0, 0, 1])  # a hole runs opposite to its outer ring
    assert _volume(document, shell) == pytest.approx((30 * 30 - 10 * 10) * 12)


def test_multipolygon_footprint_becomes_building_parts(store: DuckDBStore) -> None:
    objects = buildings_to_cityjson(store)["CityObjects"]
    assert sorted(objects) == [
        "relation-303",
        "relation-303-part-1",
        "relation-303-part-2",
        "way-101",
        "way-202",
    ]
    parent = objects["relation-303"]
    assert parent["type"] == "Building" and "geometry" not in parent
    assert parent["children"] == ["relation-303-part-1", "relation-303-part-2"]
    for part in ("relation-303-part-1", "relation-303-part-2"):
        assert objects[part]["type"] == "BuildingPart"
        assert objects[part]["parents"] == ["relation-303"]
        assert len(objects[part]["geometry"][0]["boundaries"][0]) == 6


def test_attributes_and_metadata(store: DuckDBStore) -> None:
    document = buildings_to_cityjson(store)
    objects = document["CityObjects"]
    assert objects["way-202"]["attributes"] == {
        "osm_id": 202,
        "building": "apartments",
        "use": "residential",
        "height_m": 12.0,
        "height_source": "levels",
        "levels": 4.0,
        "population_est": 80.0,
    }
    assert "population_est" not in objects["relation-303"]["attributes"]  # unknown, not 0 or NaN
    assert "levels" not in objects["relation-303"]["attributes"]
    assert document["metadata"]["referenceSystem"] == "https://www.opengis.net/def/crs/EPSG/0/32635"
    assert document["metadata"]["title"] == "Helsinki centre: LoD1 buildings"
    assert crs_url("EPSG:3067") == "https://www.opengis.net/def/crs/EPSG/0/3067"


def test_output_validates_against_the_official_schema(store: DuckDBStore) -> None:
    validator = cityjson_validator()
    document = json.loads(json.dumps(buildings_to_cityjson(store), allow_nan=False))
    assert list(validator.iter_errors(document)) == []
    broken = copy.deepcopy(document)
    broken["CityObjects"]["way-101"]["geometry"][0]["type"] = "MultiSolid"  # not allowed on a Building
    assert list(validator.iter_errors(broken))


def test_the_validator_accepts_a_real_city_model() -> None:
    """The smallest object of every type in the Delft model (all 570 take minutes with jsonschema)."""
    path = SHARED / "delft.json"
    if not path.is_file():
        pytest.skip(f"real CityJSON sample not found at {path}")
    validator = cityjson_validator()
    delft = json.loads(path.read_text(encoding="utf-8"))
    smallest: dict[str, tuple[int, str]] = {}
    for ident, obj in delft["CityObjects"].items():
        size = len(json.dumps(obj))
        if size < smallest.get(obj["type"], (size + 1, ""))[0]:
            smallest[obj["type"]] = (size, ident)
    sample = {ident: delft["CityObjects"][ident] for _, ident in smallest.values()}
    assert len({o["type"] for o in sample.values()}) == 7  # Building, Road, PlantCover, LandUse, ...
    assert list(validator.iter_errors({**delft, "CityObjects": sample})) == []
    broken = copy.deepcopy(sample)
    next(o for o in broken.values() if o["type"] == "Building")["geometry"][0]["lod"] = "7"
    assert list(validator.iter_errors({**delft, "CityObjects": broken}))


def test_write_cityjson_writes_the_whole_document(store: DuckDBStore, tmp_path: Path) -> None:
    path = tmp_path / "buildings.city.json"
    assert write_cityjson(store, path) == 3
    assert json.loads(path.read_text()) == json.loads(json.dumps(buildings_to_cityjson(store)))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_bad_buildings_fail_with_one_line_and_leave_no_file(store: DuckDBStore, tmp_path: Path) -> None:
    path = tmp_path / "out.city.json"
    store.write_table("buildings_3d", buildings_frame([BOX], [float("nan")]))
    with pytest.raises(ExportError, match="building way-101 has no positive height_m"):
        write_cityjson(store, path)
    store.write_table("buildings_3d", buildings_frame([LineString([(X0, Y0), (X0 + 1, Y0)])], [3.0]))
    with pytest.raises(ExportError, match="way-101 has a LineString footprint"):
        write_cityjson(store, path)
    with pytest.raises(ExportError, match="no layer 'nope'"):
        buildings_to_cityjson(store, table="nope")
    assert list(tmp_path.glob("*.json")) == []


def test_empty_layer_is_a_valid_empty_city_model(store: DuckDBStore) -> None:
    store.write_table("buildings_3d", buildings_frame([], []).set_crs(CRS, allow_override=True))
    document = buildings_to_cityjson(store)
    assert (document["CityObjects"], document["vertices"]) == ({}, [])
    assert list(cityjson_validator().iter_errors(document)) == []
