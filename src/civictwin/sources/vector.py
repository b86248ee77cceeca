"""Vector sources: any layer of features with attributes, stored as one table named after the source.

Formats: whatever GDAL reads through pyogrio (GeoJSON, GeoPackage, Shapefile, FlatGeobuf, ...),
GeoParquet (``.parquet``/``.geoparquet``), and CSV with either ``x``/``y`` coordinate columns or a
``wkt`` geometry column.

Rules, all checked before anything is written:

- A multi-layer file (GeoPackage) needs ``layer`` unless it holds exactly one layer; an unknown layer
  is an error naming the layers that exist.
- ``columns`` keeps only those attributes (default: all); an unknown column is an error naming the
  available ones. Names that are not plain identifiers (``pop 2020``), or that clash with another
  name ignoring case or with ``geometry``, are stored under a safe name (``pop_2020``) and noted.
- A file without a CRS needs ``crs`` in the config. A file that declares a CRS different from the
  configured ``crs`` is an error (one of them is wrong, and guessing would misplace every feature).
- CSV: with ``x``/``y`` and no ``crs``, the points are taken as WGS84 longitude/latitude only when the
  columns are named like longitude/latitude (``lon``, ``lng``, ``long``, ``longitude`` /
  ``lat``, ``latitude``) *and* every value lies in range; otherwise ``crs`` is required. A ``wkt``
  column always needs ``crs``. Non-numeric coordinates and unparsable WKT are errors naming the line.
- Text cells longer than :data:`MAX_TEXT_CHARS` characters are cut to that length and counted in the
  quality record (``truncated_values``): a twin attribute is not a document store, and megabyte
  cells would break tiles and the API while carrying nothing a map can show. (GeoJSON strings of
  10 million characters or more are refused by GDAL itself: that is an error advising GeoPackage.)

3D city models are not vector layers: a CityJSON or CityGML file given here is an error saying to use
kind ``cityjson``/``citygml`` (found by the file's first bytes, before GDAL sees it). Reading never
writes into the user's folders: GML is opened with GDAL's ``WRITE_GFS=NO`` open option, so no ``.gfs``
schema file appears beside it.

Geometries are reprojected to the twin's CRS, repaired and (when ``clip`` is set) limited to the
features intersecting the area, by :func:`civictwin.geometry.prepare_geometries`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyogrio
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from civictwin.config import SourceConfig
from civictwin.errors import SourceError, first_line, shorten
from civictwin.geometry import WGS84, GeometryArray, gdal_read_options, prepare_geometries
from civictwin.sources.base import BuildContext, IngestedLayer, IngestResult
from civictwin.store.base import GEOMETRY

MAX_TEXT_CHARS = 10_000
"""Longest text attribute kept; longer cells are truncated and counted."""

_GDAL_GEOJSON_MAX_CHARS = 10_000_000
"""GDAL's streaming JSON parser refuses longer strings (observed with GDAL 3.x via pyogrio)."""

_LON_NAMES = frozenset({"lon", "lng", "long", "longitude"})
_LAT_NAMES = frozenset({"lat", "latitude"})
_PARQUET_SUFFIXES = frozenset({".parquet", ".geoparquet"})
_SNIFF_BYTES = 65_536


@dataclass
class RawLayer:
    """Features as read from the file, before reprojection: attributes, geometries and their CRS."""

    attributes: pd.DataFrame
    geometries: GeometryArray
    crs: str
    first_line: int
    """Line (CSV) or feature number (other formats) of the first row, for error messages."""


def ingest(source: SourceConfig, ctx: BuildContext) -> IngestResult:
    """Read a vector source into the table ``source.name``."""
    path = ctx.path_of(source)
    raw = read_layer(source, path)
    columns = select_columns(source, raw.attributes, path)
    layer = store_layer(source, ctx, raw, columns)
    return IngestResult(source=source, path=path, layers=[layer])


def read_layer(source: SourceConfig, path: Path) -> RawLayer:
    """Read every feature of the configured layer (with only ``source.columns`` when given)."""
    _check_file(path)
    _refuse_city_model(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(source, path)
    if suffix in _PARQUET_SUFFIXES:
        return _read_parquet(source, path)
    return _read_ogr(source, path)


def select_columns(source: SourceConfig, attributes: pd.DataFrame, path: Path) -> list[str]:
    """The attribute columns to keep: ``source.columns`` (all must exist) or every column."""
    if source.columns is None:
        return [str(c) for c in attributes.columns]
    _check_known_columns(source.columns, [str(c) for c in attributes.columns], path)
    return list(source.columns)


def store_layer(
    source: SourceConfig,
    ctx: BuildContext,
    raw: RawLayer,
    columns: Sequence[str],
    *,
    summarise: Callable[[pd.DataFrame], dict[str, Any]] | None = None,
) -> IngestedLayer:
    """Reproject, repair and clip ``raw``, keep ``columns``, write table ``source.name`` and describe it.

    ``summarise`` gets the kept attributes and returns extra quality entries (e.g. grid totals).
    """
    kept, geometries, report = prepare_geometries(
        raw.geometries,
        source_crs=raw.crs,
        target_crs=ctx.crs,
        area=ctx.area if source.clip else None,
    )
    renamed = safe_column_names(columns)
    attributes = raw.attributes.loc[kept, list(columns)].reset_index(drop=True)
    attributes.columns = [renamed.get(c, c) for c in columns]
    attributes, truncated = truncate_text(attributes)
    frame = gpd.GeoDataFrame(attributes, geometry=gpd.GeoSeries(geometries, crs=ctx.crs), crs=ctx.crs)
    frame = frame.rename_geometry(GEOMETRY) if frame.geometry.name != GEOMETRY else frame
    rows = ctx.store.write_table(source.name, frame)
    quality: dict[str, Any] = {
        "geometry": report.as_dict(),
        "completeness": completeness(attributes),
        "duplicates": _duplicate_rows(frame),
        "truncated_values": truncated,
        **(summarise(attributes) if summarise is not None else {}),
    }
    notes = [f"column '{old}' stored as '{new}'" for old, new in renamed.items()]
    if truncated:
        notes.append(f"{truncated} text value(s) longer than {MAX_TEXT_CHARS:,} characters were truncated")
    ctx.report(f"{source.name}: {rows} features kept of {report.received}")
    return IngestedLayer(
        table=source.name, rows=rows, title=source.display_title, quality=quality, notes=notes
    )


def safe_column_names(columns: Sequence[str]) -> dict[str, str]:
    """New names for the columns that are not plain identifiers or clash; ``{old: new}``.

    The store serves identifiers of letters (of any script, so a Munich or Kalamata dataset keeps
    "Einwohner_Männlich" or "Πληθυσμός"), digits and ``_``, not starting with a digit, compares them
    case-insensitively, and reserves ``geometry``. Names are kept to 60 bytes of UTF-8, which any
    SQL backend accepts (PostgreSQL's limit is 63).
    """
    taken = {GEOMETRY}
    renamed: dict[str, str] = {}
    for column in columns:
        name = _within_bytes(re.sub(r"\W", "_", unicodedata.normalize("NFC", column)), _MAX_NAME_BYTES)
        if not name or name[0].isdigit():
            name = _within_bytes(f"c_{name}", _MAX_NAME_BYTES)
        candidate, suffix = name, 2
        while candidate.lower() in taken:
            candidate, suffix = f"{name}_{suffix}", suffix + 1
        taken.add(candidate.lower())
        if candidate != column:
            renamed[column] = candidate
    return renamed


_MAX_NAME_BYTES = 60


def _within_bytes(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, never inside a character."""
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def completeness(frame: pd.DataFrame) -> dict[str, float]:
    """Share of non-null values per column (1.0 for an empty frame: nothing is missing)."""
    if frame.empty:
        return {str(c): 1.0 for c in frame.columns}
    return {str(c): float(frame[c].notna().mean()) for c in frame.columns}


def numeric_column(values: pd.Series, name: str, path: Path, first_line: int) -> pd.Series:
    """``values`` as numbers; text that does not parse as a number is an error naming its row."""
    if pd.api.types.is_bool_dtype(values):
        raise SourceError(f"column '{name}' is boolean, not numeric", path=path)
    if pd.api.types.is_numeric_dtype(values):
        return values
    converted = pd.to_numeric(values, errors="coerce")
    bad = converted.isna() & values.notna()
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        shown = shorten(str(values.iloc[position]))
        raise SourceError(
            f"column '{name}' is not numeric (row {first_line + position}: {shown!r})", path=path
        )
    return converted


def _check_file(path: Path) -> None:
    if not path.exists():
        raise SourceError("file not found", path=path)
    if path.is_file() and path.stat().st_size == 0:
        raise SourceError("file is empty", path=path)


def _refuse_city_model(path: Path) -> None:
    """A CityJSON or CityGML file is a 3D city model with its own source kind, not a vector layer."""
    if not path.is_file():
        return
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES).lower()
    if b'"cityjson"' in head:
        raise SourceError('a CityJSON 3D city model; give it as kind = "cityjson"', path=path, field="kind")
    if b"opengis.net/citygml" in head:
        raise SourceError('a CityGML 3D city model; give it as kind = "citygml"', path=path, field="kind")


def _list_layers(path: Path) -> list[str]:
    """Layer names of a file; GML layers one by one through ``read_info``, which takes open options."""
    if not gdal_read_options(path):
        return [str(name) for name, _kind in pyogrio.list_layers(path)]
    names: list[str] = []
    while True:
        try:
            info = pyogrio.read_info(path, layer=len(names), **gdal_read_options(path))
        except pyogrio.errors.GeometryError:
            raise
        except pyogrio.errors.DataLayerError:
            return names
        names.append(str(info["layer_name"]))


def _check_known_columns(wanted: Sequence[str], available: Sequence[str], path: Path) -> None:
    unknown = [c for c in wanted if c not in available]
    if unknown:
        raise SourceError(
            f"unknown column(s) {', '.join(unknown)}; available: {', '.join(available) or '(none)'}",
            path=path,
            field="columns",
        )


def _resolve_crs(declared: str | None, configured: str | None, path: Path) -> str:
    """The CRS to read the file in: the declared one, or the configured one when none is declared."""
    if configured is not None:
        try:
            wanted = CRS.from_user_input(configured)
        except CRSError:
            raise SourceError(f"unknown CRS {configured!r}", path=path, field="crs") from None
        if declared is not None and not wanted.equals(CRS.from_user_input(declared), ignore_axis_order=True):
            raise SourceError(
                f"the file declares {_crs_name(declared)} but the config says crs = {configured!r}; "
                "remove `crs` or fix the file",
                path=path,
                field="crs",
            )
        return declared or configured
    if declared is None:
        raise SourceError('the file declares no CRS; set `crs` (e.g. crs = "EPSG:4326")', path=path)
    return declared


def _crs_name(crs: str) -> str:
    found = CRS.from_user_input(crs).to_authority()
    return ":".join(found) if found else crs


def _read_ogr(source: SourceConfig, path: Path) -> RawLayer:
    layer = _pick_layer(source, path)
    try:
        info = pyogrio.read_info(path, layer=layer, **gdal_read_options(path))
    except pyogrio.errors.GeometryError as exc:
        raise _read_error(exc, path) from None
    except pyogrio.errors.DataSourceError as exc:
        raise SourceError(f"cannot read: {first_line(exc)}", path=path) from None
    fields = [str(f) for f in info["fields"]]
    if source.columns is not None:
        _check_known_columns(source.columns, fields, path)
    if info["geometry_type"] is None:
        raise SourceError(f"layer '{layer}' has no geometry column", path=path)
    try:
        frame = pyogrio.read_dataframe(
            path, layer=layer, columns=source.columns, fid_as_index=False, **gdal_read_options(path)
        )
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, pyogrio.errors.FieldError) as exc:
        raise _read_error(exc, path) from None
    if len(frame) == 0:
        raise SourceError(f"no features in layer '{layer}'", path=path)
    declared = frame.crs.to_string() if frame.crs is not None else None
    crs = _resolve_crs(declared, source.crs, path)
    geometries = frame.geometry.to_numpy()
    attributes = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    return RawLayer(attributes=attributes, geometries=geometries, crs=crs, first_line=1)


def _read_error(exc: Exception, path: Path, what: str = "cannot read") -> SourceError:
    """A GDAL read failure as one line; GDAL's GeoJSON limit on value length gets its own advice."""
    if "Too many characters" in str(exc):
        return SourceError(
            f"a value longer than {_GDAL_GEOJSON_MAX_CHARS:,} characters, more than GDAL's GeoJSON reader "
            "accepts; shorten it or convert the file to GeoPackage",
            path=path,
        )
    if isinstance(exc, pyogrio.errors.GeometryError):
        return SourceError(
            f"geometries that are not simple features (3D solids? use kind cityjson/citygml for 3D city "
            f"models): {first_line(exc)}",
            path=path,
        )
    return SourceError(f"{what} (truncated or corrupt?): {first_line(exc)}", path=path)


def _pick_layer(source: SourceConfig, path: Path) -> str:
    try:
        layers = _list_layers(path)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.GeometryError) as exc:
        raise _read_error(exc, path, "not a readable vector file") from None
    if source.layer is not None:
        if source.layer not in layers:
            raise SourceError(
                f"no layer '{source.layer}'; available: {', '.join(layers) or '(none)'}",
                path=path,
                field="layer",
            )
        return source.layer
    if not layers:
        raise SourceError("no layers (empty, truncated or corrupt?)", path=path)
    if len(layers) > 1:
        raise SourceError(
            f"several layers; set `layer` to one of: {', '.join(layers)}", path=path, field="layer"
        )
    return layers[0]


def _read_parquet(source: SourceConfig, path: Path) -> RawLayer:
    try:
        frame = gpd.read_parquet(path, columns=None)
    except pa.ArrowException as exc:
        raise SourceError(f"cannot read (truncated or corrupt?): {first_line(exc)}", path=path) from None
    except ValueError as exc:
        raise SourceError(
            f"not GeoParquet (no geometry column metadata): {first_line(exc)}", path=path
        ) from None
    except OSError as exc:
        raise SourceError(f"cannot read (truncated or corrupt?): {first_line(exc)}", path=path) from None
    if len(frame) == 0:
        raise SourceError("no features", path=path)
    attributes = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    if source.columns is not None:
        _check_known_columns(source.columns, [str(c) for c in attributes.columns], path)
    declared = frame.crs.to_string() if frame.crs is not None else None
    crs = _resolve_crs(declared, source.crs, path)
    return RawLayer(attributes=attributes, geometries=frame.geometry.to_numpy(), crs=crs, first_line=1)


def _read_csv(source: SourceConfig, path: Path) -> RawLayer:
    if source.x is None and source.wkt is None:
        raise SourceError("a CSV source needs `x` and `y` columns or a `wkt` column", path=path)
    try:
        frame = pd.read_csv(path, encoding="utf-8-sig", low_memory=False)
    except pd.errors.EmptyDataError:
        raise SourceError("file is empty", path=path) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SourceError(f"not readable CSV: {first_line(exc)}", path=path) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise SourceError("no features (only a header line)", path=path)
    geometry_columns = [source.wkt] if source.wkt is not None else [str(source.x), str(source.y)]
    missing = [c for c in geometry_columns if c not in frame.columns]
    if missing:
        raise SourceError(
            f"no geometry column(s) {', '.join(missing)}; available: {', '.join(frame.columns)}",
            path=path,
            field="wkt" if source.wkt is not None else "x/y",
        )
    if source.wkt is not None:
        geometries = _parse_wkt(frame[source.wkt], source.wkt, path)
        crs = _resolve_crs(None, source.crs, path)
    else:
        xs = numeric_column(frame[str(source.x)], str(source.x), path, first_line=2).to_numpy(dtype=float)
        ys = numeric_column(frame[str(source.y)], str(source.y), path, first_line=2).to_numpy(dtype=float)
        geometries = np.asarray(shapely.points(xs, ys), dtype=object)
        geometries[np.isnan(xs) | np.isnan(ys)] = None
        crs = source.crs if source.crs is not None else _lonlat_or_fail(source, xs, ys, path)
        crs = _resolve_crs(None, crs, path)
    attributes = frame.drop(columns=geometry_columns)
    return RawLayer(attributes=attributes, geometries=geometries, crs=crs, first_line=2)


def _parse_wkt(values: pd.Series, column: str, path: Path) -> GeometryArray:
    geometries = np.empty(len(values), dtype=object)
    for i, value in enumerate(values.tolist()):
        if not isinstance(value, str) or not value.strip():
            continue
        try:
            geometries[i] = shapely.from_wkt(value)
        except shapely.errors.GEOSException:
            raise SourceError(
                f"line {i + 2}: column '{column}': not valid WKT: {shorten(str(value))!r}", path=path
            ) from None
    return geometries


def _lonlat_or_fail(
    source: SourceConfig, xs: np.ndarray[Any, Any], ys: np.ndarray[Any, Any], path: Path
) -> str:
    named = str(source.x).lower() in _LON_NAMES and str(source.y).lower() in _LAT_NAMES
    present = ~(np.isnan(xs) | np.isnan(ys))
    in_range = bool(np.all((np.abs(xs[present]) <= 180) & (np.abs(ys[present]) <= 90)))
    if named and in_range:
        return WGS84
    raise SourceError(
        "set `crs` for this CSV: coordinates are read as WGS84 without it only when the columns are "
        "named like lon/lat and every value is in range",
        path=path,
        field="crs",
    )


def truncate_text(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Cut text cells longer than :data:`MAX_TEXT_CHARS`; return the frame and how many were cut."""
    truncated = 0
    frame = frame.copy()
    for column in frame.columns:
        values = frame[column]
        if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
            continue
        lengths = values.map(lambda v: len(v) if isinstance(v, str) else 0)
        long = lengths > MAX_TEXT_CHARS
        if long.any():
            truncated += int(long.sum())
            frame.loc[long, column] = values[long].str.slice(0, MAX_TEXT_CHARS)
    return frame, truncated


def _duplicate_rows(frame: gpd.GeoDataFrame) -> int:
    """Features identical to an earlier one in every attribute and in geometry."""
    if frame.empty:
        return 0
    comparable = pd.DataFrame(frame.drop(columns=frame.geometry.name)).astype("string")
    comparable["__wkb"] = shapely.to_wkb(frame.geometry.to_numpy(), hex=True)
    return int(comparable.duplicated().sum())
