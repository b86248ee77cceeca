"""CityGML and CityJSON readers: hand-computed areas, tilts and azimuths, CRS handling, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from city3d_fixtures import (
    EXPECTED,
    SHARED,
    X0,
    Y0,
    Ingest,
    house_cityjson,
    write_citygml,
    write_cityjsonseq,
    write_json,
)
from shapely.geometry import box

from civictwin.errors import SourceError
from civictwin.sources.city3d import OTHER_LODS_TABLE, SURFACES_TABLE


def _by_orientation(surfaces: object) -> list[tuple[float, float, float | None]]:
    rows = []
    for r in surfaces.itertuples():  # type: ignore[attr-defined]
        azimuth = None if np.isnan(r.azimuth_deg) else round(r.azimuth_deg, 2)
        rows.append((round(r.area_m2, 3), round(r.tilt_deg, 2), azimuth))
    return sorted(rows, key=str)


def test_citygml_house_has_hand_computed_surfaces_and_attributes(tmp_path: Path, ingest: Ingest) -> None:
    store, result = ingest("citygml", write_citygml(tmp_path / "house.gml"))
    (building,) = store.read_table("city").to_dict("records")
    assert building["building_id"] == "house0"
    assert (building["name"], building["function"], building["year_built"], building["storeys"]) == (
        "House 0",
        "1000",
        1975,
        2.0,
    )
    assert (building["height_m"], building["height_source"]) == (9.5, "measuredHeight")
    assert (building["ground_z"], building["roof_z"], building["lod"]) == (100.0, 109.0, "2")
    assert building["geometry"].equals(box(X0, Y0, X0 + 10, Y0 + 8))
    assert building["footprint_m2"] == 80.0
    assert json.loads(building["attributes"])["owner"] == "city"
    surfaces = store.read_table(SURFACES_TABLE)
    assert _by_orientation(surfaces) == sorted(EXPECTED, key=str)
    assert surfaces.groupby("surface_type")["area_m2"].sum().to_dict() == {
        "ground": 80.0,
        "roof": 100.0,
        "wall": 240.0,
    }
    assert set(surfaces["geometry_type"]) == {"Solid"}  # the xlinked solid keeps its boundary semantics
    assert surfaces.geometry.has_z.all()
    assert result.layers[0].quality["vertical_crs"] == "EPSG:7837"
    assert result.layers[0].quality["horizontal_crs"] == "EPSG:25832"
    assert sorted(p.name for p in tmp_path.iterdir() if ".duckdb" not in p.name) == ["house.gml"]  # no .gfs


def test_citygml_3_boundaries_are_read(tmp_path: Path, ingest: Ingest) -> None:
    text = write_citygml(tmp_path / "h.gml", version="3.0").read_text()
    text = text.replace("bldg:boundedBy", "core:boundary").replace(
        "bldg:lod2MultiSurface", "core:lod2MultiSurface"
    )
    text = text.replace("bldg:lod2Solid", "core:lod2Solid").replace(
        '"http://www.opengis.net/gml"', '"http://www.opengis.net/gml/3.2"'
    )
    for kind in ("RoofSurface", "WallSurface", "GroundSurface"):
        text = text.replace(f"bldg:{kind}", f"con:{kind}")
    text = text.replace(
        "<core:CityModel ", '<core:CityModel xmlns:con="http://www.opengis.net/citygml/construction/3.0" '
    )
    (tmp_path / "h.gml").write_text(text)
    store, _ = ingest("citygml", tmp_path / "h.gml")
    surfaces = store.read_table(SURFACES_TABLE)
    assert _by_orientation(surfaces) == sorted(EXPECTED, key=str)


@pytest.mark.parametrize("version", ["2.0", "1.1"])
def test_cityjson_building_with_part_keeps_lods_semantics_and_attributes(
    tmp_path: Path, ingest: Ingest, version: str
) -> None:
    store, result = ingest("cityjson", write_json(tmp_path / "h.city.json", house_cityjson(version=version)))
    (building,) = store.read_table("city").to_dict("records")
    assert (building["lod"], building["lods"], building["height_source"], building["height_m"]) == (
        "2.2",
        "1.2,2.2",
        "geometry",
        9.0,
    )
    assert json.loads(building["parts"]) == {"house0-part": {"roofType": "gable"}}
    best = store.read_table(SURFACES_TABLE)
    assert _by_orientation(best) == sorted(EXPECTED, key=str)
    assert set(best["part_id"]) == {"house0-part"}
    assert json.loads(best[best["surface_type"] == "wall"]["surface_attributes"].iloc[0]) == {
        "material": "brick"
    }
    lower = store.read_table(OTHER_LODS_TABLE)
    assert (len(lower), set(lower["lod"])) == (6, {"1.2"})
    assert lower["surface_type"].isna().all()
    assert result.layers[0].quality["vertical_crs"] == "EPSG:5783"
    assert result.layers[0].quality["skipped_objects"] == {"SolitaryVegetationObject": 1}


def test_cityjsonseq_gives_the_same_rows(tmp_path: Path, ingest: Ingest) -> None:
    store, _ = ingest("cityjson", write_cityjsonseq(tmp_path / "h.city.jsonl", house_cityjson()))
    assert _by_orientation(store.read_table(SURFACES_TABLE)) == sorted(EXPECTED, key=str)
    assert store.read_table("city")["building_id"].tolist() == ["house0"]


def test_buildings_outside_the_area_are_dropped_whole(tmp_path: Path, ingest: Ingest) -> None:
    area = box(X0 - 5, Y0 - 5, X0 + 1, Y0 + 1)  # touches house 0 only
    store, result = ingest("citygml", write_citygml(tmp_path / "two.gml", houses=2), area=area)
    assert store.read_table("city")["building_id"].tolist() == ["house0"]
    assert result.layers[0].quality["geometry"] == {
        "received": 2,
        "outside_area": 1,
        "no_footprint": 0,
        "kept": 1,
    }
    assert set(store.read_table(SURFACES_TABLE)["building_id"]) == {"house0"}


def test_file_crs_is_reprojected_horizontally_and_heights_kept(tmp_path: Path, ingest: Ingest) -> None:
    store, _ = ingest("citygml", write_citygml(tmp_path / "house.gml"), twin_crs="EPSG:32632")
    (building,) = store.read_table("city").to_dict("records")
    assert building["geometry"].area == pytest.approx(80.0, rel=1e-3)  # ETRS89 and WGS84 UTM agree to < 1 m
    assert building["ground_z"] == 100.0
    surfaces = store.read_table(SURFACES_TABLE)
    assert sorted(surfaces["area_m2"].round(1)) == sorted(round(a, 1) for a, _t, _z in EXPECTED)


# --------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("srs", "message"),
    [
        ("urn:adv:crs:ETRS89_UTM32*DE_FOO_NH", "unknown vertical datum 'DE_FOO_NH'"),
        ("urn:adv:crs:NOWHERE_UTM99", "unknown CRS 'NOWHERE_UTM99'"),
        ("EPSG:999999", "unknown CRS 'EPSG:999999'"),
        ("EPSG:4326", "is not a projected CRS in metres"),
    ],
)
def test_unknown_crs_or_vertical_datum_is_one_line(
    tmp_path: Path, ingest: Ingest, srs: str, message: str
) -> None:
    path = write_citygml(tmp_path / "house.gml", srs=srs)
    with pytest.raises(SourceError, match=message) as caught:
        ingest("citygml", path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_citygml_in_an_unsupported_version_is_refused(tmp_path: Path, ingest: Ingest) -> None:
    path = write_citygml(tmp_path / "old.gml")
    path.write_text(
        path.read_text().replace("citygml/2.0", "citygml/0.4.0").replace("building/2.0", "building/0.4.0")
    )
    with pytest.raises(
        SourceError, match=r"old.gml: CityGML 0.4.0 is not supported \(versions 1.0, 2.0 and 3.0 are\)"
    ):
        ingest("citygml", path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("transform"), "transform: no valid 'transform'"),
        (lambda d: d.update(version="1.0"), "version: CityJSON version '1.0' is not supported"),
        (lambda d: d["CityObjects"]["house0-part"]["geometry"][0]["boundaries"][0][0][0].__setitem__(0, 99),
         r"CityObjects\['house0-part'\]: vertex index 99 is outside the vertex list \(14 vertices\)"),
        (lambda d: d["CityObjects"].pop("house0-part"), r"CityObjects\['house0'\]: its child 'house0-part' is not in the file"),
        (lambda d: d["metadata"].pop("referenceSystem"), "the file declares no CRS"),
    ],
)  # fmt: skip
def test_broken_cityjson_is_one_line_naming_file_and_object(
    tmp_path: Path, ingest: Ingest, change: object, message: str
) -> None:
    document = house_cityjson()
    change(document)  # type: ignore[operator]
    path = write_json(tmp_path / "broken.city.json", document)
    with pytest.raises(SourceError, match=message) as caught:
        ingest("cityjson", path)
    assert str(caught.value).startswith(str(path))


def test_a_configured_crs_serves_a_file_that_declares_none(tmp_path: Path, ingest: Ingest) -> None:
    document = house_cityjson()
    document["metadata"].pop("referenceSystem")
    store, result = ingest("cityjson", write_json(tmp_path / "h.json", document), crs="EPSG:25832")
    assert result.layers[0].quality["vertical_crs"] is None
    assert len(store.read_table(SURFACES_TABLE)) == 7


# ---------------------------------------------------------------------------------- shared samples


@pytest.mark.shared
def test_district_sample_footprints_match_its_planned_areas(ingest: Ingest) -> None:
    path = SHARED / "citygml" / "district1_LoD2.gml"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    store, result = ingest("citygml", path)
    buildings = store.read_table("city")
    assert len(buildings) == 104
    planned = buildings["attributes"].map(lambda a: json.loads(a)["GrossPlannedArea"])
    assert np.allclose(buildings["footprint_m2"], planned, atol=0.01)
    assert result.layers[0].quality["vertical_crs"] == "EPSG:7837"
    assert (
        result.layers[0].quality["unresolved_surface_references"] == 624
    )  # the file's solids point at nothing
    surfaces = store.read_table(SURFACES_TABLE)
    assert surfaces.groupby("building_id")["surface_type"].apply(lambda s: (s == "ground").sum()).eq(1).all()


@pytest.mark.shared
def test_fzk_house_roofs(ingest: Ingest) -> None:
    path = SHARED / "citygml" / "FZK-Haus-LoD2-KIT-IAI-KHH-B36-V1.gml"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    store, _ = ingest("citygml", path)
    surfaces = store.read_table(SURFACES_TABLE)
    roofs = surfaces[surfaces["surface_type"] == "roof"]
    assert roofs["tilt_deg"].round(2).tolist() == [30.0, 30.0]  # a 12 × 10 m house with a 30° gable roof
    assert roofs["area_m2"].sum() == pytest.approx(120 / np.cos(np.radians(30)), abs=1e-3)
    assert surfaces.loc[surfaces["surface_type"] == "ground", "area_m2"].sum() == pytest.approx(120.0)


def test_citygml_crs_found_on_the_first_buildings_geometry(tmp_path: Path, ingest: Ingest) -> None:
    path = write_citygml(tmp_path / "house.gml")
    text = path.read_text().replace(' srsName="urn:adv:crs:ETRS89_UTM32*DE_DHHN2016_NH*GCG2016"', "")
    path.write_text(text.replace("<gml:Solid>", '<gml:Solid srsName="EPSG:25832">'))
    store, result = ingest("citygml", path)
    assert (
        result.layers[0].quality["crs"] == "EPSG:25832" and result.layers[0].quality["vertical_crs"] is None
    )
    assert len(store.read_table(SURFACES_TABLE)) == 7
