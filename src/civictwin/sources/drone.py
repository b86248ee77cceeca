"""Drone surveys: where each image was taken and what it covers, or an orthophoto's extent.

``path`` is either a folder of drone JPEGs or an orthophoto GeoTIFF:

- **Images**: each JPEG's EXIF GPS (WGS84 latitude, longitude, altitude) and capture time. When the
  image looks straight down (XMP ``GimbalPitchDegree`` within :data:`NADIR_TOLERANCE_DEG` of −90°) and
  says its height above the take-off point (DJI XMP ``RelativeAltitude``) and its 35 mm-equivalent
  focal length (EXIF ``FocalLengthIn35mmFilm``), its geometry is its ground footprint (flat ground,
  pinhole camera: docs/methods-surveys.md); otherwise the camera position as a point. Device serial
  numbers are never read; the images themselves are not copied into the twin.
- **Orthophoto**: the raster's extent as one polygon, with its ground resolution and capture time.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from PIL import ExifTags, Image, UnidentifiedImageError
from shapely.affinity import rotate
from shapely.geometry import Point, box
from shapely.geometry.base import BaseGeometry

from civictwin.config import SourceConfig
from civictwin.errors import SourceError
from civictwin.geometry import WGS84, prepare_geometries, reproject
from civictwin.sources.base import BuildContext, IngestedLayer, IngestResult

FILM_WIDTH_MM = 36.0
"""Width of the 35 mm film frame (36 × 24 mm) that EXIF's FocalLengthIn35mmFilm is equivalent to."""
NADIR_TOLERANCE_DEG = 10.0
"""Gimbal pitch within this of straight down (−90°) counts as a nadir image with a rectangular footprint."""
IMAGE_SUFFIXES = (".jpg", ".jpeg")

_UTC_OFFSET = re.compile(r"[+-]\d{2}:\d{2}")
_XMP_NUMBER = r'(?:drone-dji:)?{key}(?:="|>)\s*([+-]?[0-9.]+)'


def ingest(source: SourceConfig, ctx: BuildContext) -> IngestResult:
    """One layer named after the source: image footprints/positions, or the orthophoto's extent."""
    path = ctx.path_of(source)
    if path.is_dir():
        frame, what = _images(path), "images"
    elif path.suffix.lower() in (".tif", ".tiff"):
        frame, what = _orthophoto(path), "orthophoto"
    else:
        raise SourceError("expected a folder of drone JPEGs or an orthophoto GeoTIFF", path=path)
    geometries = frame.pop("geometry_wgs84").to_numpy()
    projected = _to_crs(geometries, ctx.crs, metric_footprints=frame.pop("footprint_m"))
    kept, clipped, report = prepare_geometries(
        projected, source_crs=ctx.crs, target_crs=ctx.crs, area=ctx.area
    )
    out = gpd.GeoDataFrame(frame.loc[kept].reset_index(drop=True), geometry=list(clipped), crs=ctx.crs)
    rows = ctx.store.write_table(source.name, out)
    ctx.report(f"{source.name}: {rows} drone {what}")
    footprints = int((out["geometry_kind"] == "footprint").sum()) if rows else 0
    quality = {**report.as_dict(), "kind": what, "footprints": footprints, "points": rows - footprints}
    notes = (
        [
            f"{rows - footprints} image(s) placed as a point: no nadir gimbal, relative altitude or 35 mm focal length"
        ]
        if what == "images" and rows - footprints
        else []
    )
    layer = IngestedLayer(
        table=source.name, rows=rows, title=source.display_title, quality=quality, notes=notes
    )
    return IngestResult(source=source, path=path, layers=[layer], lineage={"drone": what})


def _images(folder: Path) -> pd.DataFrame:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SourceError("no JPEG images in this folder", path=folder)
    return pd.DataFrame([image_record(file, label=str(file.relative_to(folder))) for file in files])


def image_record(file: Path, *, label: str) -> dict[str, Any]:
    """Position, capture time, camera and (for nadir images) footprint size of one drone JPEG."""
    try:
        with Image.open(file, formats=("JPEG",)) as image:
            exif = image.getexif()
            xmp = image.info.get("xmp", b"")
            width, height = image.size
    except (UnidentifiedImageError, OSError) as exc:
        raise SourceError(f"not a readable JPEG ({exc})", path=file) from None
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    details = exif.get_ifd(ExifTags.IFD.Exif)
    lat, lon = _degrees(gps, 2, 1, file), _degrees(gps, 4, 3, file)
    altitude = _number(gps.get(6))
    if altitude is not None and gps.get(5) in (1, b"\x01"):
        altitude = -altitude
    text = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else str(xmp)
    relative, pitch, yaw = (
        _xmp_number(text, key) for key in ("RelativeAltitude", "GimbalPitchDegree", "GimbalYawDegree")
    )
    if yaw is None:
        yaw = _xmp_number(text, "FlightYawDegree")  # the gimbal follows the aircraft's heading
    focal35 = _number(details.get(ExifTags.Base.FocalLengthIn35mmFilm))
    footprint = None
    if relative and relative > 0 and focal35 and pitch is not None and abs(pitch + 90) <= NADIR_TOLERANCE_DEG:
        ground_width = relative * FILM_WIDTH_MM / focal35
        footprint = (ground_width, ground_width * height / width, yaw or 0.0)
    return {
        "image": label,
        "captured_at": _capture_time(details),
        "camera": " ".join(
            str(exif.get(tag, "")).strip("\x00 ") for tag in (ExifTags.Base.Make, ExifTags.Base.Model)
        ).strip()
        or None,
        "altitude_m": altitude,
        "relative_altitude_m": relative,
        "gimbal_pitch_deg": pitch,
        "yaw_deg": yaw,
        "width_px": width,
        "height_px": height,
        "geometry_kind": "footprint" if footprint else "point",
        "footprint_m": footprint,
        "geometry_wgs84": Point(lon, lat),
    }


def footprint(
    lon: float, lat: float, *, width_m: float, height_m: float, yaw_deg: float, crs: str
) -> BaseGeometry:
    """A nadir image's ground rectangle around the camera at (``lon``, ``lat``), in ``crs``.

    Drawn in an azimuthal equidistant plane centred on the camera, where up is true north, and turned
    by ``yaw_deg`` (clockwise from true north, DJI's convention; shapely turns counter-clockwise,
    hence the sign), then projected: a UTM grid's north differs from true north by the meridian
    convergence (about 2° in central Helsinki), which this keeps out of the footprint.
    """
    rectangle = rotate(box(-width_m / 2, -height_m / 2, width_m / 2, height_m / 2), -yaw_deg, origin=(0, 0))
    local = f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m"
    return reproject(np.array([rectangle], dtype=object), local, crs)[0]


def _to_crs(geometries: np.ndarray, crs: str, *, metric_footprints: pd.Series) -> np.ndarray:
    projected = reproject(geometries, WGS84, crs)
    for i, size in enumerate(metric_footprints):
        if size is not None and isinstance(geometries[i], Point):
            centre = geometries[i]
            projected[i] = footprint(
                centre.x, centre.y, width_m=size[0], height_m=size[1], yaw_deg=size[2], crs=crs
            )
    return projected


def _degrees(gps: Any, value_tag: int, ref_tag: int, file: Path) -> float:
    value = gps.get(value_tag)
    if not value or len(value) != 3:
        raise SourceError("no GPS position in its EXIF (GPSLatitude/GPSLongitude)", path=file)
    degrees = float(value[0]) + float(value[1]) / 60 + float(value[2]) / 3600
    ref = gps.get(ref_tag, "N")
    ref = ref.decode() if isinstance(ref, bytes) else str(ref)
    limit = 90 if value_tag == 2 else 180
    if not (math.isfinite(degrees) and degrees <= limit):
        raise SourceError(
            f"EXIF GPS {'latitude' if value_tag == 2 else 'longitude'} {degrees} out of range", path=file
        )
    return -degrees if ref.strip("\x00 ").upper() in ("S", "W") else degrees


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def _xmp_number(xmp: str, key: str) -> float | None:
    match = re.search(_XMP_NUMBER.format(key=key), xmp)
    return float(match.group(1)) if match else None


def _capture_time(details: Any) -> str | None:
    """EXIF DateTimeOriginal as ISO 8601, with OffsetTimeOriginal when the camera wrote one."""
    raw = str(details.get(ExifTags.Base.DateTimeOriginal, "")).strip("\x00 ")
    match = re.fullmatch(r"(\d{4}):(\d{2}):(\d{2}) (\d{2}:\d{2}:\d{2})", raw)
    if not match:
        return None
    offset = str(details.get(ExifTags.Base.OffsetTimeOriginal, "")).strip("\x00 ")
    zone = offset if _UTC_OFFSET.fullmatch(offset) else ""
    return f"{match[1]}-{match[2]}-{match[3]}T{match[4]}{zone}"


def _orthophoto(path: Path) -> pd.DataFrame:
    import rasterio
    from rasterio.errors import RasterioIOError
    from rasterio.warp import transform_geom
    from shapely.geometry import shape

    try:
        with rasterio.open(path) as raster:
            if raster.crs is None:
                raise SourceError("the orthophoto has no CRS", path=path)
            extent = transform_geom(raster.crs, WGS84, box(*raster.bounds).__geo_interface__)
            resolution = float(abs(raster.res[0]))
            tags = raster.tags()
            record = {
                "image": path.name,
                "captured_at": _tiff_time(tags.get("TIFFTAG_DATETIME", "")),
                "resolution": resolution,
                "resolution_unit": raster.crs.linear_units,
                "width_px": raster.width,
                "height_px": raster.height,
                "geometry_kind": "extent",
                "footprint_m": None,
            }
    except RasterioIOError as exc:
        raise SourceError(f"not a readable GeoTIFF ({str(exc).splitlines()[0]})", path=path) from None
    return pd.DataFrame([{**record, "geometry_wgs84": shape(extent)}])


def _tiff_time(raw: str) -> str | None:
    match = re.fullmatch(r"(\d{4}):(\d{2}):(\d{2}) (\d{2}:\d{2}:\d{2})", raw.strip())
    return f"{match[1]}-{match[2]}-{match[3]}T{match[4]}" if match else None
