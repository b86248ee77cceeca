"""Layer exports: GeoParquet with geo metadata, GeoPackage, RFC 7946 GeoJSON; atomic and with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyogrio
import pytest
import shapely
from export_twin import BOX, COURTYARD, CRS
from pyproj import Transformer

from civictwin.errors import ExportError
from civictwin.export import export_dataset
from civictwin.export.layers import export_layer
from civictwin.store.duckdb import DuckDBStore

TO_WGS84 = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)


def test_geoparquet_has_geo_metadata_and_wgs84_coordinates(store: DuckDBStore, tmp_path: Path) -> None:
    path = tmp_path / "b.parquet"
    assert export_layer(store, "buildings_3d", path, "geoparquet") == 3
    geo = json.loads(pq.read_schema(path).metadata[b"geo"])
    assert geo["primary_column"] == "geometry"
    assert geo["columns"]["geometry"]["encoding"] == "WKB"
    assert geo["columns"]["geometry"]["crs"]["id"] == {"authority": "EPSG", "code": 4326}
    assert "covering" in geo["columns"]["geometry"]  # bbox column for fast spatial filters
    frame = gpd.read_parquet(path)
    assert frame.crs.to_epsg() == 4326
    assert frame["osm_id"].tolist() == [101, 202, 303]
    expected = [TO_WGS84.transform(x, y) for x, y in BOX.exterior.coords]
    assert np.allclose(frame.geometry.iloc[0].exterior.coords, expected, rtol=0, atol=1e-9)


def test_geopackage_in_the_twin_crs_keeps_metric_coordinates(store: DuckDBStore, tmp_path: Path) -> None:
    path = tmp_path / "b.gpkg"
    assert export_layer(store, "buildings_3d", path, "gpkg", crs=CRS) == 3
    assert pyogrio.list_layers(path).tolist() == [["buildings_3d", "MultiPolygon"]]
    frame = pyogrio.read_dataframe(path, layer="buildings_3d")
    assert frame.crs.to_epsg() == 32635
    assert shapely.equals(frame.geometry.iloc[1], COURTYARD)
    assert frame.geometry.iloc[0].area == pytest.approx(BOX.area)
    assert pd.isna(frame["population_est"].iloc[2])


def test_geojson_follows_rfc_7946(store: DuckDBStore, tmp_path: Path) -> None:
    path = tmp_path / "b.geojson"
    assert export_layer(store, "buildings_3d", path, "geojson") == 3
    document = json.loads(path.read_text())
    assert "crs" not in document  # RFC 7946: always WGS84 lon/lat, no crs member
    features = document["features"]
    assert len(features) == 3
    assert features[1]["properties"]["name"] == "Courtyard block"
    outer, hole = features[1]["geometry"]["coordinates"]
    assert shapely.LinearRing(outer).is_ccw and not shapely.LinearRing(hole).is_ccw  # right-hand rule
    corners = [TO_WGS84.transform(x, y) for x, y in COURTYARD.exterior.coords]
    assert np.allclose(sorted(map(tuple, outer)), sorted(corners), rtol=0, atol=1e-7)  # 7 decimals


def test_geojson_in_another_crs_is_refused(store: DuckDBStore, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="GeoJSON is always WGS84"):
        export_layer(store, "buildings_3d", tmp_path / "b.geojson", "geojson", crs=CRS)


@pytest.mark.parametrize(
    ("table", "fmt", "crs", "message"),
    [
        ("roads", "gpkg", "EPSG:4326", "no layer 'roads'"),
        ("buildings_3d", "shapefile", "EPSG:4326", "--format: unknown format 'shapefile'"),
        ("buildings_3d", "gpkg", "EPSG:999999", "--crs: unknown CRS 'EPSG:999999'"),
        ("stop_times", "geoparquet", "EPSG:4326", "layer 'stop_times' has no geometry"),
    ],
)
def test_bad_requests_fail_with_one_line(
    store: DuckDBStore, tmp_path: Path, table: str, fmt: str, crs: str, message: str
) -> None:
    store.write_table("stop_times", pd.DataFrame({"trip_id": ["t1"], "arrival_s": [3600]}))
    with pytest.raises(ExportError, match=message):
        export_layer(store, table, tmp_path / "out", fmt, crs=crs)
    assert list(tmp_path.glob("out*")) == [] and list(tmp_path.glob(".out*")) == []


def test_a_failed_write_leaves_no_partial_file(store: DuckDBStore, tmp_path: Path) -> None:
    target = tmp_path / "taken.gpkg"
    target.mkdir()  # a folder where the file should go: the final rename fails
    with pytest.raises(ExportError, match=r"taken\.gpkg: cannot write"):
        export_layer(store, "buildings_3d", target, "gpkg")
    assert [p.name for p in tmp_path.iterdir() if "taken" in p.name] == ["taken.gpkg"]  # the folder only
    with pytest.raises(ExportError, match="folder to write into does not exist"):
        export_layer(store, "buildings_3d", tmp_path / "missing" / "b.gpkg", "gpkg")


def test_an_existing_file_is_replaced_whole(store: DuckDBStore, tmp_path: Path) -> None:
    path = tmp_path / "b.geojson"
    path.write_text("old contents")
    export_layer(store, "buildings_3d", path, "geojson")
    assert len(json.loads(path.read_text())["features"]) == 3


def test_export_dataset_dispatches_cityjson_and_checks_its_crs(store: DuckDBStore, tmp_path: Path) -> None:
    assert export_dataset(store, "buildings_3d", tmp_path / "b.city.json", "cityjson") == 3
    assert export_dataset(store, "buildings_3d", tmp_path / "c.city.json", "cityjson", crs=CRS) == 3
    assert export_dataset(store, "buildings_3d", tmp_path / "b.parquet", "geoparquet") == 3
    with pytest.raises(ExportError, match="CityJSON is written in the twin's CRS"):
        export_dataset(store, "buildings_3d", tmp_path / "d.city.json", "cityjson", crs="EPSG:4326")
    with pytest.raises(ExportError, match="choose geoparquet, gpkg, geojson, cityjson"):
        export_dataset(store, "buildings_3d", tmp_path / "x", "kml")
