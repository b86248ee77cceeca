"""The vector reader: every supported format into one table, the CRS and column rules, and bad input.

Hand-made layers lie in central Helsinki (the default test area, EPSG:32635): three points inside,
one (``far``) outside.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import Point, Polygon

from civictwin.errors import SourceError
from civictwin.geometry import WGS84, reproject
from civictwin.sources.base import BuildContext, IngestResult
from civictwin.sources.vector import MAX_TEXT_CHARS, ingest

POINTS = {"a": (24.93, 60.165), "b": (24.94, 60.166), "c": (24.95, 60.167), "far": (25.10, 60.20)}
KINDS = {"a": "cafe", "b": "bar", "c": None, "far": "cafe"}

Run = Callable[..., tuple[IngestResult, BuildContext]]


def _frame(crs: str = WGS84) -> gpd.GeoDataFrame:
    frame = gpd.GeoDataFrame(
        {"name": list(POINTS), "kind": list(KINDS.values()), "seats": [10, 20, 30, 40]},
        geometry=[Point(xy) for xy in POINTS.values()],
        crs=WGS84,
    )
    return frame.to_crs(crs)


@pytest.fixture
def run(make_context: Any, source_entry: Any) -> Run:
    """Ingest a file as vector source ``places`` (options as in twin.toml) into a fresh context."""

    def ingest_path(path: Path, **options: Any) -> tuple[IngestResult, BuildContext]:
        ctx = make_context([source_entry("places", "vector", path, **options)])
        return ingest(ctx.config.sources[0], ctx), ctx

    return ingest_path


def _error(run: Run, path: Path, **options: Any) -> str:
    with pytest.raises(SourceError) as caught:
        run(path, **options)
    message = caught.value.user_message()
    assert "\n" not in message
    return message


def _stored(ctx: BuildContext) -> gpd.GeoDataFrame:
    return ctx.store.read_frame("places").sort_values("name").reset_index(drop=True)


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg", ".shp", ".fgb", ".parquet"])
def test_formats_read_the_same_features(tmp_path: Path, run: Run, suffix: str) -> None:
    path = tmp_path / f"places{suffix}"
    if suffix == ".parquet":
        _frame().to_parquet(path)
    else:
        _frame().to_file(path)
    result, ctx = run(path)
    layer = result.layers[0]
    assert layer.table == "places"
    assert layer.rows == 3
    assert layer.quality["geometry"]["outside_area"] == 1
    assert layer.quality["geometry"]["kept"] == 3
    assert layer.quality["completeness"] == {"name": 1.0, "kind": pytest.approx(2 / 3), "seats": 1.0}
    stored = _stored(ctx)
    assert list(stored["name"]) == ["a", "b", "c"]
    assert list(stored["seats"]) == [10, 20, 30]
    expected = reproject(np.array([Point(POINTS["a"])], dtype=object), WGS84, "EPSG:32635")[0]
    assert stored.geometry.iloc[0].distance(expected) < 0.01


def test_columns_choice_and_unknown_column(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "places.geojson"
    _frame().to_file(path)
    _result, ctx = run(path, columns=["name"])
    assert list(ctx.store.read_table("places").columns) == ["name", "geometry"]
    message = _error(run, path, columns=["name", "colour"])
    assert message == f"{path}: columns: unknown column(s) colour; available: name, kind, seats"


def test_clip_false_keeps_everything(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "places.geojson"
    _frame().to_file(path)
    result, _ctx = run(path, clip=False)
    assert result.layers[0].rows == 4


def test_geopackage_layers(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "city.gpkg"
    _frame().to_file(path, layer="places")
    _frame().iloc[:1].to_file(path, layer="one")
    assert _error(run, path) == f"{path}: layer: several layers; set `layer` to one of: places, one"
    message = _error(run, path, layer="roads")
    assert message == f"{path}: layer: no layer 'roads'; available: places, one"
    result, _ctx = run(path, layer="one")
    assert result.layers[0].rows == 1


def test_file_without_crs_needs_config(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "places.shp"
    _frame("EPSG:3067").to_file(path)
    path.with_suffix(".prj").unlink()
    assert "the file declares no CRS; set `crs`" in _error(run, path)
    result, ctx = run(path, crs="EPSG:3067")
    assert result.layers[0].rows == 3
    assert _stored(ctx).geometry.iloc[0].distance(_stored_point("a")) < 0.01


def _stored_point(name: str) -> Any:
    return reproject(np.array([Point(POINTS[name])], dtype=object), WGS84, "EPSG:32635")[0]


def test_declared_crs_conflicting_with_config(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "places.gpkg"
    _frame("EPSG:3067").to_file(path)
    assert "the file declares EPSG:3067 but the config says crs = 'EPSG:4326'" in _error(
        run, path, crs="EPSG:4326"
    )
    result, _ctx = run(path, crs="EPSG:3067")  # agreeing is fine
    assert result.layers[0].rows == 3


def test_invalid_polygon_is_repaired(tmp_path: Path, run: Run) -> None:
    x, y = 24.93, 60.165
    bow_tie = Polygon([(x, y), (x + 0.01, y + 0.005), (x + 0.01, y), (x, y + 0.005), (x, y)])
    square = Polygon([(x, y), (x + 0.01, y), (x + 0.01, y + 0.005), (x, y + 0.005)])
    path = tmp_path / "shapes.geojson"
    features = [
        {"type": "Feature", "properties": {"name": n}, "geometry": shapely.geometry.mapping(g)}
        for n, g in (("bow", bow_tie), ("square", square))
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    result, ctx = run(path)
    geometry = result.layers[0].quality["geometry"]
    assert (geometry["invalid_geometry"], geometry["repaired_geometry"], geometry["kept"]) == (1, 1, 2)
    stored = _stored(ctx)
    assert stored.geometry.is_valid.all()
    bow_area, square_area = stored.geometry.area
    assert bow_area == pytest.approx(square_area / 2, rel=0.01)  # two triangles, each a quarter


# --- CSV ---------------------------------------------------------------------------------------


def _csv(tmp_path: Path, header: str, rows: list[str]) -> Path:
    path = tmp_path / "places.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def _lonlat_rows() -> list[str]:
    return [f"{n},{KINDS[n] or ''},{x},{y}" for n, (x, y) in POINTS.items()]


def test_csv_lon_lat_defaults_to_wgs84(tmp_path: Path, run: Run) -> None:
    path = _csv(tmp_path, "name,kind,lon,lat", _lonlat_rows())
    result, ctx = run(path, x="lon", y="lat")
    assert result.layers[0].rows == 3
    stored = _stored(ctx)
    assert list(stored.columns) == ["name", "kind", "geometry"]
    assert stored.geometry.iloc[1].distance(_stored_point("b")) < 0.01


def test_csv_needs_crs_unless_clearly_lon_lat(tmp_path: Path, run: Run) -> None:
    path = _csv(tmp_path, "name,kind,e,n", _lonlat_rows())
    assert "set `crs` for this CSV" in _error(run, path, x="e", y="n")
    projected = _frame("EPSG:3067")
    rows = [f"{n},,{p.x},{p.y}" for n, p in zip(projected["name"], projected.geometry, strict=True)]
    path = _csv(tmp_path, "name,kind,lon,lat", rows)  # lon/lat names, but values out of range
    assert "set `crs` for this CSV" in _error(run, path, x="lon", y="lat")
    result, ctx = run(path, x="lon", y="lat", crs="EPSG:3067")
    assert result.layers[0].rows == 3
    assert _stored(ctx).geometry.iloc[2].distance(_stored_point("c")) < 0.01


def test_csv_wkt(tmp_path: Path, run: Run) -> None:
    rows = [f'{n},"POINT ({x} {y})"' for n, (x, y) in POINTS.items()] + ["empty,"]
    path = _csv(tmp_path, "name,wkt", rows)
    assert "set `crs`" in _error(run, path, wkt="wkt")
    result, _ctx = run(path, wkt="wkt", crs="EPSG:4326")
    geometry = result.layers[0].quality["geometry"]
    assert (geometry["received"], geometry["missing_geometry"], geometry["kept"]) == (5, 1, 3)


def test_csv_errors_name_line_and_column(tmp_path: Path, run: Run) -> None:
    rows = _lonlat_rows()
    rows[2] = "c,,east,60.167"
    path = _csv(tmp_path, "name,kind,lon,lat", rows)
    assert _error(run, path, x="lon", y="lat") == f"{path}: column 'lon' is not numeric (row 4: 'east')"
    path = _csv(tmp_path, "name,wkt", ['a,"POINT (24.93 60.165)"', 'b,"POINT (24.94"'])
    assert (
        _error(run, path, wkt="wkt", crs="EPSG:4326")
        == f"{path}: line 3: column 'wkt': not valid WKT: 'POINT (24.94'"
    )
    path = _csv(tmp_path, "name,kind,lon,lat", _lonlat_rows())
    message = _error(run, path, x="lng", y="lat")
    assert message == f"{path}: x/y: no geometry column(s) lng; available: name, kind, lon, lat"
    assert "needs `x` and `y` columns or a `wkt` column" in _error(run, path)


def test_huge_text_cell_is_truncated(tmp_path: Path, run: Run) -> None:
    huge = "y" * 10_000_000
    rows = _lonlat_rows()
    rows[0] = f"a,{huge},24.93,60.165"
    path = _csv(tmp_path, "name,kind,lon,lat", rows)
    result, ctx = run(path, x="lon", y="lat")
    layer = result.layers[0]
    assert layer.quality["truncated_values"] == 1
    assert layer.notes == [f"1 text value(s) longer than {MAX_TEXT_CHARS:,} characters were truncated"]
    kinds = _stored(ctx)["kind"]
    assert len(kinds.iloc[0]) == MAX_TEXT_CHARS
    assert kinds.iloc[1] == "bar"


def test_huge_geojson_property(tmp_path: Path, run: Run) -> None:
    frame = _frame()
    frame.loc[0, "kind"] = "z" * 5_000_000
    path = tmp_path / "big.geojson"
    frame.to_file(path)
    result, ctx = run(path)
    assert result.layers[0].quality["truncated_values"] == 1
    assert _stored(ctx)["kind"].str.len().max() == MAX_TEXT_CHARS
    # GDAL's GeoJSON parser itself refuses 10 million characters: a clear error, not a crash
    frame.loc[0, "kind"] = "z" * 10_000_001
    frame.to_file(path)
    message = _error(run, path)
    assert "more than GDAL's GeoJSON reader accepts; shorten it or convert the file to GeoPackage" in message


def test_huge_geopackage_value_is_truncated(tmp_path: Path, run: Run) -> None:
    frame = _frame()
    frame.loc[1, "kind"] = "z" * 10_000_001
    path = tmp_path / "big.gpkg"
    frame.to_file(path)
    result, ctx = run(path)
    assert result.layers[0].quality["truncated_values"] == 1
    assert _stored(ctx)["kind"].str.len().max() == MAX_TEXT_CHARS


def test_column_names_in_any_script_are_kept(tmp_path: Path, run: Run) -> None:
    long_name = "Ä" * 40  # 80 bytes of UTF-8: cut to 30 characters (60 bytes), never inside one
    header = f"Einwohner_Männlich,Πληθυσμός,Città,Ä-ä,Straße Name,{long_name},lon,lat"
    path = _csv(tmp_path, header, ["12,30,Firenze,x,Leopoldstraße,y,24.93,60.165"])
    result, ctx = run(path, x="lon", y="lat")
    assert result.layers[0].notes == [
        "column 'Ä-ä' stored as 'Ä_ä'",
        "column 'Straße Name' stored as 'Straße_Name'",
        f"column '{long_name}' stored as '{'Ä' * 30}'",
    ]
    stored = ctx.store.read_frame("places")
    assert list(stored.columns) == [
        "Einwohner_Männlich", "Πληθυσμός", "Città", "Ä_ä", "Straße_Name", "Ä" * 30, "geometry"
    ]  # fmt: skip
    assert stored.iloc[0][["Einwohner_Männlich", "Πληθυσμός", "Città"]].tolist() == [12, 30, "Firenze"]


def test_unsafe_column_names_are_renamed(tmp_path: Path, run: Run) -> None:
    path = _csv(tmp_path, "name,pop 2020,Name,geometry,2nd,lon,lat", ["a,1,A,x,y,24.93,60.165"])
    result, ctx = run(path, x="lon", y="lat")
    assert result.layers[0].notes == [
        "column 'pop 2020' stored as 'pop_2020'",
        "column 'Name' stored as 'Name_2'",
        "column 'geometry' stored as 'geometry_2'",
        "column '2nd' stored as 'c_2nd'",
    ]
    stored = ctx.store.read_frame("places")
    assert list(stored.columns) == ["name", "pop_2020", "Name_2", "geometry_2", "c_2nd", "geometry"]
    assert stored.iloc[0][["name", "pop_2020", "Name_2", "geometry_2"]].tolist() == ["a", 1, "A", "x"]
    assert set(result.layers[0].quality["completeness"]) == {
        "name",
        "pop_2020",
        "Name_2",
        "geometry_2",
        "c_2nd",
    }


def test_duplicates_are_counted(tmp_path: Path, run: Run) -> None:
    rows = _lonlat_rows()
    path = _csv(tmp_path, "name,kind,lon,lat", [*rows, rows[0], rows[0]])
    result, _ctx = run(path, x="lon", y="lat")
    assert result.layers[0].quality["duplicates"] == 2
    assert result.layers[0].rows == 5


# --- malformed files ---------------------------------------------------------------------------


def test_missing_and_empty_files(tmp_path: Path, run: Run) -> None:
    assert _error(run, tmp_path / "nope.geojson") == f"{tmp_path / 'nope.geojson'}: file not found"
    for name in ("empty.geojson", "empty.csv", "empty.gpkg"):
        (tmp_path / name).write_bytes(b"")
        assert _error(run, tmp_path / name, x="lon", y="lat") == f"{tmp_path / name}: file is empty"


def test_no_features(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "none.geojson"
    path.write_text('{"type": "FeatureCollection", "features": []}')
    assert "no features" in _error(run, path)
    header_only = _csv(tmp_path, "name,lon,lat", [])
    assert _error(run, header_only, x="lon", y="lat") == f"{header_only}: no features (only a header line)"


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg", ".fgb", ".parquet"])
def test_truncated_file(tmp_path: Path, run: Run, suffix: str) -> None:
    path = tmp_path / f"places{suffix}"
    if suffix == ".parquet":
        _frame().to_parquet(path)
    else:
        _frame().to_file(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    message = _error(run, path)
    assert message.startswith(f"{path}: ")
    assert "truncated or corrupt" in message


def test_garbage_file(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "places.gpkg"
    path.write_bytes(b"\x00\x01 not a geopackage " * 100)
    assert "not a readable vector file" in _error(run, path)


def test_table_without_geometry(tmp_path: Path, run: Run) -> None:
    import pandas as pd
    import pyogrio

    path = tmp_path / "attrs.gpkg"
    pyogrio.write_dataframe(pd.DataFrame({"name": ["a"]}), path, layer="attrs")
    assert _error(run, path) == f"{path}: layer 'attrs' has no geometry column"


def test_parquet_without_geometry(tmp_path: Path, run: Run) -> None:
    import pandas as pd

    path = tmp_path / "plain.parquet"
    pd.DataFrame({"name": ["a"]}).to_parquet(path)
    assert "not GeoParquet" in _error(run, path)


GML = """<?xml version="1.0" encoding="UTF-8"?>
<ogr:FeatureCollection xmlns:ogr="http://ogr.maptools.org/" xmlns:gml="http://www.opengis.net/gml">
<gml:featureMember><ogr:lane><ogr:geometryProperty><gml:Point srsName="EPSG:4326">
<gml:coordinates>24.94,60.17</gml:coordinates></gml:Point></ogr:geometryProperty><ogr:name>Bus lane</ogr:name>
</ogr:lane></gml:featureMember>
</ogr:FeatureCollection>
"""


def test_gml_is_read_without_writing_beside_it(tmp_path: Path, run: Run) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "lanes.gml"
    path.write_text(GML, encoding="utf-8")
    result, ctx = run(path)
    assert result.layers[0].rows == 1
    assert _stored(ctx)["name"].tolist() == ["Bus lane"]
    assert [p.name for p in folder.iterdir()] == ["lanes.gml"]  # no lanes.gfs
    assert path.read_text(encoding="utf-8") == GML


@pytest.mark.parametrize(
    ("name", "text", "kind"),
    [
        ("city.json", '{"type": "CityJSON", "version": "2.0", "CityObjects": {}, "vertices": []}', "cityjson"),
        ("city.gml", '<?xml version="1.0"?>\n<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0"/>', "citygml"),
    ],
)  # fmt: skip
def test_a_3d_city_model_given_as_vector_names_its_kind(
    tmp_path: Path, run: Run, name: str, text: str, kind: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    label = "CityJSON" if kind == "cityjson" else "CityGML"
    assert _error(run, path) == f'{path}: kind: a {label} 3D city model; give it as kind = "{kind}"'
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".gfs"] == []


def test_a_gml_of_solids_is_not_called_corrupt(tmp_path: Path, run: Run) -> None:
    (tmp_path / "data").mkdir()
    path = tmp_path / "data" / "solids.gml"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ogr:FeatureCollection xmlns:ogr="http://ogr.maptools.org/" xmlns:gml="http://www.opengis.net/gml">'
        "<gml:featureMember><ogr:block><ogr:geometryProperty><gml:Solid><gml:exterior><gml:CompositeSurface>"
        '<gml:surfaceMember><gml:Polygon><gml:exterior><gml:LinearRing><gml:posList srsDimension="3">'
        "0 0 0 1 0 0 1 1 0 0 0 0</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon></gml:surfaceMember>"
        "</gml:CompositeSurface></gml:exterior></gml:Solid></ogr:geometryProperty></ogr:block></gml:featureMember>"
        "</ogr:FeatureCollection>\n",
        encoding="utf-8",
    )
    message = _error(run, path, crs="EPSG:3067")
    assert message == (
        f"{path}: geometries that are not simple features (3D solids? use kind cityjson/citygml for 3D city "
        "models): Geometry type is not supported: 1015"
    )
    assert list(path.parent.iterdir()) == [path]  # no solids.gfs
