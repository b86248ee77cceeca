"""The area of interest, in WGS84, from a bbox, a polygon file, or a named polygon inside a source."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import shapely
from pyogrio.errors import DataSourceError
from shapely.geometry.base import BaseGeometry

from civictwin.config import TwinConfig
from civictwin.errors import AreaError
from civictwin.geometry import WGS84, gdal_read_options


def resolve_area(config: TwinConfig) -> BaseGeometry:
    """The area of interest as one (multi)polygon in WGS84."""
    area = config.area
    if area.bbox is not None:
        return shapely.box(*area.bbox)
    if area.polygon is not None:
        return _polygons(config.resolve(area.polygon), layer=None, where=None, label="area.polygon")
    assert area.source is not None and area.where is not None
    source = config.source(area.source)
    return _polygons(config.resolve(source.path), layer=source.layer, where=area.where, label="area.source")


def _polygons(
    path: Path, *, layer: str | None, where: dict[str, str | int] | None, label: str
) -> BaseGeometry:
    if not path.is_file():
        raise AreaError("file not found", path=path, field=label)
    try:
        frame = gpd.read_file(path, layer=layer, **gdal_read_options(path))
    except (DataSourceError, ValueError, OSError) as exc:
        raise AreaError(f"cannot read polygon file ({exc})", path=path, field=label) from None
    if frame.crs is None:
        raise AreaError("the file declares no CRS", path=path, field=label)
    if where:
        for column, value in where.items():
            if column not in frame.columns:
                raise AreaError(f"no column '{column}' to filter on", path=path, field=f"{label}.where")
            frame = frame[frame[column].astype(str) == str(value)]
        if frame.empty:
            raise AreaError(f"no feature matches {where}", path=path, field=f"{label}.where")
    polygons = frame[frame.geometry.geom_type.isin(["Polygon", "MultiPolygon"])]
    if polygons.empty:
        raise AreaError("no polygon in the file", path=path, field=label)
    merged = shapely.union_all(shapely.make_valid(polygons.to_crs(WGS84).geometry.to_numpy()))
    if merged.is_empty:
        raise AreaError("the polygons are empty", path=path, field=label)
    return merged
