"""Drone surveys: image footprints from EXIF/XMP and an orthophoto's extent, on hand-made files.

The footprint of a nadir image from 100 m above take-off with a 20 mm (35 mm-equivalent) lens is
100 × 36 / 20 = 180 m wide, and 180 × 36 / 54 = 120 m deep for a 54 × 36 px (3:2) image: the numbers
of the flightplanning R package's test (height 100 m, focal.length35 20, 5472 px wide: GSD 3.29 cm,
i.e. 180 m across).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import ExifTags, Image
from pyproj import Geod, Transformer

from civictwin.config import SourceKind
from civictwin.errors import SourceError
from civictwin.sources import reader_for
from civictwin.sources.drone import image_record

XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/" drone-dji:RelativeAltitude="+100.00" '
    b'drone-dji:GimbalPitchDegree="-90.0" drone-dji:GimbalYawDegree="+30.0"/></rdf:RDF></x:xmpmeta>'
)


def _drone_jpeg(path: Path, *, lat: tuple[float, float, float], xmp: bytes | None) -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "DJI"
    exif[ExifTags.Base.Model] = "FC6310"
    details = exif.get_ifd(ExifTags.IFD.Exif)
    details[ExifTags.Base.FocalLengthIn35mmFilm] = 20
    details[ExifTags.Base.DateTimeOriginal] = "2024:05:01 10:00:00"
    details[ExifTags.Base.OffsetTimeOriginal] = "+03:00"
    details[ExifTags.Base.BodySerialNumber] = "0K8TH1234"
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(
        {1: "N", 2: lat, 3: "E", 4: (24.0, 56.0, 18.24), 5: 0, 6: 112.5}
    )
    out = io.BytesIO()
    options: dict[str, Any] = {"exif": exif, **({"xmp": xmp} if xmp else {})}
    Image.new("RGB", (54, 36), (90, 120, 60)).save(out, format="JPEG", **options)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out.getvalue())


def test_images_give_footprints_where_nadir_and_points_otherwise(
    make_context: Any, source_entry: Any, tmp_path: Path
) -> None:
    _drone_jpeg(tmp_path / "flight" / "DJI_0001.JPG", lat=(60.0, 10.0, 11.64), xmp=XMP)
    _drone_jpeg(tmp_path / "flight" / "DJI_0002.JPG", lat=(60.0, 10.0, 15.0), xmp=None)
    ctx = make_context([source_entry("flight", "drone", tmp_path / "flight")])
    result = reader_for(SourceKind.DRONE)(ctx.config.sources[0], ctx)
    frame = ctx.store.read_frame("flight")
    assert result.layers[0].quality["footprints"] == 1 and result.layers[0].quality["points"] == 1
    nadir, oblique = frame.iloc[0], frame.iloc[1]
    x, y = Transformer.from_crs("EPSG:4326", ctx.crs, always_xy=True).transform(
        24 + 56 / 60 + 18.24 / 3600, 60 + 10 / 60 + 11.64 / 3600
    )
    assert nadir["geometry_kind"] == "footprint" and nadir.geometry.area == pytest.approx(180 * 120, rel=2e-3)
    assert nadir.geometry.centroid.x == pytest.approx(x) and nadir.geometry.centroid.y == pytest.approx(y)
    corners = np.array(nadir.geometry.exterior.coords)[:4]
    lons, lats = Transformer.from_crs(ctx.crs, "EPSG:4326", always_xy=True).transform(
        corners[:, 0], corners[:, 1]
    )
    geod = Geod(ellps="WGS84")
    sides = [
        geod.inv(lons[i], lats[i], lons[i + 1], lats[i + 1]) for i in range(3)
    ]  # (azimuth, back, metres)
    long_side = next(side for side in sides if side[2] == pytest.approx(180, abs=0.05))
    assert any(side[2] == pytest.approx(120, abs=0.05) for side in sides)
    assert long_side[0] % 180 == pytest.approx(120, abs=0.01)  # the image's width across a 30° yaw
    assert (nadir["captured_at"], nadir["camera"], nadir["altitude_m"]) == (
        "2024-05-01T10:00:00+03:00",
        "DJI FC6310",
        112.5,
    )
    assert oblique["geometry_kind"] == "point" and oblique.geometry.geom_type == "Point"
    assert "0K8TH1234" not in frame.astype(str).to_string()


def test_orthophoto_extent(make_context: Any, source_entry: Any, tmp_path: Path) -> None:
    import rasterio
    from rasterio.transform import from_origin

    path = tmp_path / "ortho.tif"
    profile = {"driver": "GTiff", "width": 10, "height": 10, "count": 1, "dtype": "uint8", "crs": "EPSG:32635",
               "transform": from_origin(385600.0, 6672100.0, 0.5, 0.5)}  # fmt: skip
    with rasterio.open(path, "w", **profile) as raster:
        raster.write(np.zeros((1, 10, 10), dtype="uint8"))
        raster.update_tags(TIFFTAG_DATETIME="2024:05:01 10:00:00")
    ctx = make_context([source_entry("ortho", "drone", path)])
    reader_for(SourceKind.DRONE)(ctx.config.sources[0], ctx)
    frame = ctx.store.read_frame("ortho")
    assert len(frame) == 1 and frame.geometry.iloc[0].area == pytest.approx(25.0, rel=1e-6)
    assert frame.geometry.iloc[0].bounds == pytest.approx((385600.0, 6672095.0, 385605.0, 6672100.0))
    assert (frame["resolution"].iloc[0], frame["captured_at"].iloc[0]) == (0.5, "2024-05-01T10:00:00")


def test_an_image_without_gps_is_a_one_line_error(tmp_path: Path) -> None:
    Image.new("RGB", (4, 4)).save(tmp_path / "x.jpg")
    with pytest.raises(SourceError, match=r"x\.jpg: no GPS position in its EXIF"):
        image_record(tmp_path / "x.jpg", label="x.jpg")
