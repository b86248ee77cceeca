"""The array path of the 3D readers: geometries as flat lists, flattened per batch, WKB built with numpy.

Two buildings by hand, 500 000 m east in UTM 32 (the central meridian: grid north is true north):
the house of the fixtures (a Solid of 7 polygons) and a shed (a MultiSurface): a flat roof 10 × 10 m
at z = 103 with a 2 × 2 m hole (96 m², facing up), a roof pitched 45° facing east (5 m wide
measured along the x axis, 4 m long: 5√2 × 4 = 28.284 m², its normal (1, 0, 1)/√2) whose ring
repeats a point and closes itself, and a polygon of two distinct points (degenerate, dropped).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import shapely
from city3d_fixtures import EXPECTED, SURFACES, X0, Y0, Ingest, house_cityjson, write_json

from civictwin.errors import SourceError
from civictwin.sources import city3d, cityjson
from civictwin.sources.city3d import SURFACES_TABLE
from civictwin.sources.city3d_wkb import polygons_wkb

SHED = [  # metres from X0, Y0 (x, y), absolute z
    (30, 0, 103), (40, 0, 103), (40, 10, 103), (30, 10, 103),  # 0-3 flat roof
    (34, 4, 103), (34, 6, 103), (36, 6, 103), (36, 4, 103),  # 4-7 its hole (clockwise seen from above)
    (50, 0, 15), (55, 0, 10), (55, 4, 10), (50, 4, 15),  # 8-11 the pitched roof, facing east
]  # fmt: skip


def _two_buildings() -> dict[str, Any]:
    document = house_cityjson(with_part=False)
    base = len(document["vertices"])
    document["vertices"] += [[round(x * 1000), round(y * 1000), round(z * 1000)] for x, y, z in SHED]
    v = [base + i for i in range(len(SHED))]
    document["CityObjects"]["shed"] = {
        "type": "Building",
        "attributes": {"function": "shed"},
        "geometry": [{
            "type": "MultiSurface", "lod": "2",
            "boundaries": [
                [[v[0], v[1], v[2], v[3]], [v[4], v[5], v[6], v[7]]],
                [[v[8], v[9], v[9], v[10], v[11], v[8]]],
                [[v[0], v[1], v[0]]],
            ],
            "semantics": {"surfaces": [{"type": "RoofSurface", "id": "flat"}, {"type": "RoofSurface"}],
                          "values": [0, 1, None]},
        }],
    }  # fmt: skip
    return document


def _batch(document: dict[str, Any]) -> list[city3d.CityBuilding]:
    integers = np.asarray(document["vertices"], dtype=np.int64)
    vertices = cityjson._VertexView(integers, document["transform"])
    return [
        city3d.CityBuilding(
            building_id=name, object_type="Building", attributes={}, record=name,
            geometries=cityjson.object_geometries(document["CityObjects"][name], vertices, name, Path("f"),
                                                  part_id=None),
        )
        for name in ("house0", "shed")
    ]  # fmt: skip


def test_geometries_are_flat_lists_of_rings_and_places() -> None:
    house, shed = _batch(_two_buildings())
    lod1, lod2 = house.geometries
    assert (lod1.lod, lod1.geometry_index, lod2.lod, lod2.geometry_index) == ("1.2", 0, "2.2", 1)
    assert lod2.ring_counts == [1] * 7
    assert lod2.ring_lengths == [len(ring) for _kind, ring in SURFACES]  # 4, 5, 4, 5, 4, 4, 4 points
    assert (lod2.solid, lod2.shell, lod2.surface_index) == ([0] * 7, [0] * 7, list(range(7)))
    assert lod2.semantic == [0, 1, 1, 1, 1, 2, 2]
    assert lod2.semantics[1] == ("WallSurface", {"material": "brick"})
    (block,) = shed.geometries
    assert (block.ring_counts, block.ring_lengths) == ([2, 1, 1], [4, 4, 6, 3])
    assert block.semantic == [0, 1, None]
    assert block.semantics == [("RoofSurface", {"id": "flat"}), ("RoofSurface", None)]


def test_a_batch_flattens_to_ring_offsets_and_hand_computed_areas() -> None:
    counts = city3d._Counts()
    flat = city3d._flatten(_batch(_two_buildings()), counts, Path("f"))
    # house: 6 LoD1 + 7 LoD2 polygons of one ring; shed: the holed roof (2 rings) and the pitched roof
    assert flat.surfaces == 15 and counts.degenerate == 1
    assert flat.surface_building.tolist() == [0] * 13 + [1, 1]
    assert flat.ring_surface.tolist() == [*range(13), 13, 13, 14]
    lengths = [4] * 6 + [len(ring) for _kind, ring in SURFACES] + [4, 4, 4]  # the pitched roof: 6 → 4 points
    assert flat.ring_start.tolist() == np.concatenate([[0], np.cumsum(lengths)[:-1]]).tolist()
    assert flat.coords[flat.ring_start[-1] :].tolist() == [
        [X0 + 50, Y0, 15.0], [X0 + 55, Y0, 10.0], [X0 + 55, Y0 + 4, 10.0], [X0 + 50, Y0 + 4, 15.0]
    ]  # fmt: skip
    assert flat.semantic.tolist()[-2:] == [len(flat.semantics) - 2, len(flat.semantics) - 1]
    vectors = city3d._area_vectors(flat.coords, flat)
    area = np.linalg.norm(vectors, axis=1)
    assert np.round(area[6:13], 3).tolist() == [a for a, _tilt, _azimuth in EXPECTED]
    assert area[13] == pytest.approx(96.0) and vectors[13, 2] == pytest.approx(96.0)
    assert area[14] == pytest.approx(20 * np.sqrt(2)) and vectors[14].tolist() == pytest.approx(
        [20.0, 0, 20.0]
    )


def test_surfaces_of_the_two_buildings_are_stored_with_tilt_azimuth_and_places(
    tmp_path: Path, ingest: Ingest
) -> None:
    store, result = ingest("cityjson", write_json(tmp_path / "two.city.json", _two_buildings()))
    surfaces = store.read_table(SURFACES_TABLE)
    shed = surfaces[surfaces.building_id == "shed"].sort_values("surface_index")
    assert shed.surface_index.tolist() == [0, 1] and shed.geometry_type.tolist() == ["MultiSurface"] * 2
    assert shed.area_m2.tolist() == [96.0, 28.284] and shed.tilt_deg.tolist() == [0.0, 45.0]
    assert np.isnan(shed.azimuth_deg.iloc[0]) and shed.azimuth_deg.iloc[1] == 90.0
    assert json.loads(shed.surface_attributes.iloc[0]) == {"id": "flat"}
    assert shed.surface_attributes.isna().tolist() == [False, True]
    assert shapely.get_num_interior_rings(shed.geometry.iloc[0]) == 1
    house = surfaces[surfaces.building_id == "house0"].sort_values("surface_index")
    assert list(zip(house.area_m2, house.tilt_deg, strict=True)) == [(a, t) for a, t, _az in EXPECTED]
    assert result.layers[1].quality["surfaces"]["degenerate_dropped"] == 1


def test_a_semantic_value_outside_the_geometrys_surfaces_is_one_line(tmp_path: Path, ingest: Ingest) -> None:
    document = _two_buildings()
    document["CityObjects"]["shed"]["geometry"][0]["semantics"]["values"] = [0, 5, None]
    with pytest.raises(
        SourceError,
        match=r"CityObjects\['shed'\]: a semantic surface value that is not one of its geometry's",
    ):
        ingest("cityjson", write_json(tmp_path / "bad.city.json", document))


def test_wkb_is_shapelys_for_holes_and_rings_closed_already() -> None:
    rng = np.random.default_rng(3)
    rings = [
        rng.random((4, 3)),
        rng.random((3, 3)),
        rng.random((3, 3)),
        rng.random((5, 3)),
        rng.random((3, 3)),
    ]
    rings[3][-1] = rings[3][0]  # closed already: written as it is, no point added
    lengths = np.array([len(r) for r in rings], dtype=np.int64)
    coords, polygon = np.concatenate(rings), np.array([0, 0, 1, 2, 2])
    wkb = polygons_wkb(coords, np.cumsum(lengths) - lengths, polygon, 3)
    assert isinstance(wkb, pa.BinaryArray)
    expected = shapely.to_wkb(
        shapely.polygons(
            shapely.linearrings(coords, indices=np.repeat(np.arange(5), lengths)), indices=polygon
        ),
        output_dimension=3,
    )
    assert wkb.to_pylist() == list(expected)
    first = wkb[0].as_py()
    # little-endian, polygon with z (0x80000003), 2 rings, 5 points (4 + the closing one)
    assert first[:13] == bytes([1, 3, 0, 0, 0x80, 2, 0, 0, 0, 5, 0, 0, 0])
    assert len(first) == 9 + (4 + 5 * 24) + (4 + 4 * 24)
    assert len(polygons_wkb(np.empty((0, 3)), np.zeros(0, np.int64), np.zeros(0, np.int64), 0)) == 0
