"""Shared core of the 3D city model readers (``cityjson``, ``citygml``): from streamed objects to tables.

A reader yields one :class:`CityBuilding` at a time, streamed from its file, each geometry's
polygons as flat lists (:class:`SurfaceBlock`: no Python object per polygon); this module turns
batches of them into rows with vectorised numpy, Arrow and shapely, so memory holds one batch, never
the file:

- coordinates are reprojected horizontally to the twin's CRS; heights stay in the file's vertical
  datum (named in the quality record), since no geoid grid is available offline to change it;
- each surface gets its semantic type, its 3D area in m² (holes subtracted), its tilt (0° facing up,
  90° vertical, 180° facing down) and azimuth (the compass direction it faces, 0° north, 90° east,
  corrected for the grid's meridian convergence; null for horizontal surfaces), all from its
  Newell normal;
- each building gets a 2D footprint (its ground surfaces, else the outline of its non-vertical
  surfaces), ground and roof heights, a height (``measuredHeight`` when given, else roof − ground),
  its best LoD and every attribute (as JSON).

Each batch goes to the store as soon as it is converted (:meth:`~civictwin.store.base.Store.write_tables`:
hidden staging tables), and the tables replace the old ones only when the whole file was read, so a
broken record stops the build with one line naming the file and the record, and nothing is stored.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from civictwin.config import SourceConfig
from civictwin.errors import SourceError
from civictwin.geometry import WGS84
from civictwin.sources.base import BuildContext, IngestedLayer, IngestResult
from civictwin.sources.city3d_json import json_texts
from civictwin.sources.city3d_wkb import polygons_wkb

SURFACES_TABLE = "building_surfaces"
"""Each building's surfaces of its best LoD: the table the energy engine and the viewer read."""
OTHER_LODS_TABLE = "building_surfaces_other_lods"
"""Surfaces of the LoDs below each building's best (kept for the CityJSON export)."""

BATCH_BUILDINGS = 2000
"""Buildings per vectorised batch: memory holds one batch, whatever the file's size."""

SURFACE_TYPES = {
    "RoofSurface": "roof", "WallSurface": "wall", "GroundSurface": "ground", "ClosureSurface": "closure",
    "OuterCeilingSurface": "outer_ceiling", "OuterFloorSurface": "outer_floor", "Window": "window",
    "Door": "door", "InteriorWallSurface": "interior_wall", "CeilingSurface": "ceiling",
    "FloorSurface": "floor",
}  # fmt: skip
"""CityGML/CityJSON semantic surface types and the short names stored in ``surface_type``."""

_NON_VERTICAL = 0.01
"""|n_z| above which a surface counts as non-vertical for a footprint without ground surfaces."""

BUILDING_SCHEMA = pa.schema([
    ("building_id", pa.string()), ("object_type", pa.string()), ("name", pa.string()),
    ("function", pa.string()), ("roof_type", pa.string()), ("year_built", pa.int32()),
    ("storeys", pa.float64()), ("height_m", pa.float64()), ("height_source", pa.string()),
    ("ground_z", pa.float64()), ("roof_z", pa.float64()), ("lod", pa.string()), ("lods", pa.string()),
    ("surfaces", pa.int32()), ("footprint_m2", pa.float64()), ("attributes", pa.string()),
    ("parts", pa.string()), ("source", pa.string()), ("geometry", pa.binary()),
])  # fmt: skip
SURFACE_SCHEMA = pa.schema([
    ("building_id", pa.string()), ("part_id", pa.string()), ("lod", pa.string()),
    ("surface_type", pa.string()), ("semantic", pa.string()), ("area_m2", pa.float64()),
    ("tilt_deg", pa.float64()), ("azimuth_deg", pa.float64()), ("geometry_index", pa.int32()),
    ("geometry_type", pa.string()), ("solid", pa.int32()), ("shell", pa.int32()),
    ("surface_index", pa.int32()), ("surface_attributes", pa.string()), ("source", pa.string()),
    ("geometry", pa.binary()),
])  # fmt: skip


class Vertices(Protocol):
    """A file's vertex list: real coordinates (n × 3, the file's CRS) of vertex indices."""

    def take(self, indices: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]: ...


@dataclass
class SurfaceBlock:
    """The polygons of one geometry of a city object (or part) as flat lists: no object per polygon.

    Polygon ``p`` has ``ring_counts[p]`` rings (outer ring first, holes after it) and ring ``r``
    has ``ring_lengths[r]`` points. ``points`` holds every ring's points, ring after ring: indices
    into ``vertices`` (CityJSON), or an (n × 3) coordinate array in the file's CRS when
    ``vertices`` is None (CityGML); they become coordinates once per batch, not once per geometry.
    ``solid``/``shell``/``surface_index`` place each polygon inside the geometry, so the export can
    rebuild the same structure; ``semantic[p]`` indexes ``semantics`` (type and own attributes of a
    semantic surface), None for a polygon without one. ``geometry_index`` numbers the geometries
    of one building, its parts' after its own.
    """

    lod: str
    geometry_index: int
    geometry_type: str
    part_id: str | None
    ring_counts: list[int]
    ring_lengths: list[int]
    points: list[int] | npt.NDArray[np.float64]
    vertices: Vertices | None
    solid: list[int]
    shell: list[int]
    surface_index: list[int]
    semantic: list[int | None]
    semantics: list[tuple[str, dict[str, Any] | None]]

    @property
    def polygons(self) -> int:
        """How many polygons the block holds."""
        return len(self.ring_counts)


def block_of_polygons(
    *,
    lod: str,
    geometry_index: int,
    geometry_type: str,
    part_id: str | None,
    polygons: list[tuple[list[npt.NDArray[np.float64]], str | None, dict[str, Any] | None, int, int]],
) -> SurfaceBlock:
    """A block from polygons given one by one: (rings, semantic type, its attributes, shell, surface index).

    For readers whose polygons come as coordinate arrays (CityGML); every polygon is in solid 0.
    """
    rings = [ring for polygon in polygons for ring in polygon[0]]
    semantics: list[tuple[str, dict[str, Any] | None]] = []
    semantic: list[int | None] = []
    for _rings, kind, attributes, _shell, _f in polygons:
        semantic.append(None if kind is None else len(semantics))
        if kind is not None:
            semantics.append((kind, attributes))
    return SurfaceBlock(
        lod=lod, geometry_index=geometry_index, geometry_type=geometry_type, part_id=part_id,
        ring_counts=[len(p[0]) for p in polygons], ring_lengths=[len(ring) for ring in rings],
        points=np.concatenate(rings).reshape(-1, 3) if rings else np.empty((0, 3)), vertices=None,
        solid=[0] * len(polygons), shell=[p[3] for p in polygons], surface_index=[p[4] for p in polygons],
        semantic=semantic, semantics=semantics,
    )  # fmt: skip


@dataclass
class CityBuilding:
    """A building as read from the file: its id, attributes, parts' attributes and geometries."""

    building_id: str
    object_type: str
    attributes: dict[str, Any]
    geometries: list[SurfaceBlock]
    record: str
    """Where it is in the file (``line 12``, ``CityObjects['b1']``), for error messages."""
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def attach(self, part_id: str, attributes: dict[str, Any], geometries: list[SurfaceBlock]) -> None:
        """Add a part's attributes and geometries (numbered after the building's own)."""
        self.parts[part_id] = attributes
        offset = 1 + max((g.geometry_index for g in self.geometries), default=-1)
        for geometry in geometries:
            geometry.geometry_index += offset
        self.geometries.extend(geometries)


@dataclass(frozen=True)
class ModelCRS:
    """The CRS a 3D file declares: horizontal (projected) and vertical parts."""

    horizontal: str
    vertical: str | None
    declared: str


_ADV_HORIZONTAL = {f"ETRS89_UTM{z}": f"EPSG:{25800 + z}" for z in (28, 29, 30, 31, 32, 33, 34, 35)}
_ADV_HORIZONTAL.update({f"DE_DHDN_3GK{z}": f"EPSG:{31464 + z}" for z in (2, 3, 4, 5)})
_ADV_VERTICAL = {"DE_DHHN2016_NH": "EPSG:7837", "DE_DHHN92_NH": "EPSG:5783", "DE_DHHN12_NOH": "EPSG:7699"}
"""German AdV CRS names (``urn:adv:crs:ETRS89_UTM32*DE_DHHN2016_NH*GCG2016``) and their EPSG codes."""
_ADV_GEOIDS = frozenset({"GCG2016", "GCG2011", "GCG05"})
"""Quasigeoid models an AdV name may add after the height system; they name how heights were made."""


def resolve_crs(declared: str | None, configured: str | None, path: Path) -> ModelCRS:
    """The horizontal and vertical CRS of a 3D file, from what it declares or else from ``crs``.

    Accepts EPSG codes, OGC URNs and URLs (compound ones too) and the German AdV names
    (``urn:adv:crs:ETRS89_UTM32*DE_DHHN2016_NH*GCG2016``). An unknown CRS or vertical datum, or one
    that is not projected in metres, is an error naming the file.
    """
    name = declared or configured
    if name is None:
        raise SourceError('the file declares no CRS; set `crs` (e.g. crs = "EPSG:7415")', path=path)
    if declared and configured and _parse_crs(declared, path) != _parse_crs(configured, path):
        raise SourceError(
            f"the file declares {declared!r} but the config says crs = {configured!r}; remove `crs` or fix the file",
            path=path,
            field="crs",
        )
    return _parse_crs(name, path)


def _parse_crs(name: str, path: Path) -> ModelCRS:
    text = name.strip()
    if text.lower().startswith("urn:adv:crs:"):
        return _adv_crs(text, path)
    try:
        crs = CRS.from_user_input(text)
    except CRSError:
        raise SourceError(f"unknown CRS {name!r}", path=path, field="crs") from None
    horizontal, vertical = crs, None
    if crs.is_compound:
        parts = crs.sub_crs_list
        horizontal = parts[0]
        vertical = parts[1] if len(parts) > 1 else None
        if vertical is not None and not vertical.is_vertical:
            raise SourceError(f"CRS {name!r}: its second part is not a vertical datum", path=path)
    _check_projected(horizontal, name, path)
    return ModelCRS(
        horizontal=_code(horizontal),
        vertical=_code(vertical) if vertical is not None else None,
        declared=name,
    )


def _adv_crs(name: str, path: Path) -> ModelCRS:
    parts = name[len("urn:adv:crs:") :].split("*")
    horizontal = _ADV_HORIZONTAL.get(parts[0])
    if horizontal is None:
        raise SourceError(f"unknown CRS {parts[0]!r} in {name!r}", path=path, field="crs")
    vertical = None
    if len(parts) > 1:
        vertical = _ADV_VERTICAL.get(parts[1])
        if vertical is None:
            raise SourceError(f"unknown vertical datum {parts[1]!r} in {name!r}", path=path, field="crs")
    unknown = [p for p in parts[2:] if p not in _ADV_GEOIDS]
    if unknown:
        raise SourceError(f"unknown height model {unknown[0]!r} in {name!r}", path=path, field="crs")
    return ModelCRS(horizontal=horizontal, vertical=vertical, declared=name)


def _check_projected(crs: CRS, name: str, path: Path) -> None:
    if not crs.is_projected or crs.axis_info[0].unit_name not in ("metre", "meter"):
        raise SourceError(f"CRS {name!r} is not a projected CRS in metres", path=path, field="crs")


def _code(crs: CRS) -> str:
    authority = crs.to_authority()
    return ":".join(authority) if authority else crs.to_wkt()


def vertical_name(code: str | None) -> str:
    """A vertical CRS as words for notes (``NAP height (EPSG:5709)``)."""
    if code is None:
        return "undeclared"
    return f"{CRS.from_user_input(code).name} ({code})"


# ------------------------------------------------------------------------------------------- ingest


def ingest_buildings(
    source: SourceConfig,
    ctx: BuildContext,
    path: Path,
    crs: ModelCRS,
    buildings: Iterable[CityBuilding],
    *,
    notes: list[str],
) -> IngestResult:
    """Write ``<source>``, the surfaces and other LoDs from ``buildings``, converted batch by batch.

    The store appends each batch as it comes and swaps the tables in only when the whole file was
    read, so a broken record stops with one line and stores nothing.
    """
    counts = _Counts()
    converter = _Converter(crs, ctx, source.name, clip=source.clip)
    names = (source.name, SURFACES_TABLE, OTHER_LODS_TABLE)

    def tables() -> Iterator[dict[str, pa.Table]]:
        yield from _kept_rows(ctx, source.name)
        for batch in _batches(buildings, BATCH_BUILDINGS):
            converted = converter.convert(batch, counts, path)
            del batch  # freed before the collection below, so that it does not walk the batch's objects
            yield dict(zip(names, converted, strict=True))
            del converted
            gc.collect(1)
        if counts.received == 0:
            raise SourceError("no buildings in the file", path=path)

    with _young_collections_per_batch():
        written = ctx.store.write_tables(
            tables(), schemas=dict(zip(names, (BUILDING_SCHEMA, SURFACE_SCHEMA, SURFACE_SCHEMA), strict=True))
        )
    rows = [written[name] for name in names]
    quality: dict[str, Any] = {
        "geometry": {"received": counts.received, "outside_area": counts.outside, "no_footprint": counts.no_footprint,
                     "kept": rows[0]},
        "surfaces": {"kept": rows[1], "other_lods": rows[2], "degenerate_dropped": counts.degenerate,
                     "without_semantics": counts.unclassified},
        "crs": crs.declared, "horizontal_crs": crs.horizontal, "vertical_crs": crs.vertical,
    }  # fmt: skip
    notes = [
        *notes,
        f"heights (z, ground_z, roof_z) are in the file's vertical datum: {vertical_name(crs.vertical)}",
    ]
    if counts.unclassified:
        notes.append(f"{counts.unclassified} surface(s) carry no semantic type (surface_type is null)")
    ctx.report(f"{source.name}: {rows[0]} buildings, {rows[1]} surfaces")
    title = source.display_title
    layers = [
        IngestedLayer(table=source.name, rows=rows[0], title=title, quality=quality, notes=notes),
        IngestedLayer(table=SURFACES_TABLE, rows=rows[1], title=f"{title}: surfaces", quality=quality,
                      notes=notes),
        IngestedLayer(table=OTHER_LODS_TABLE, rows=rows[2], title=f"{title}: surfaces of lower LoDs",
                      quality=quality, notes=notes),
    ]  # fmt: skip
    return IngestResult(source=source, path=path, layers=layers)


@contextlib.contextmanager
def _young_collections_per_batch() -> Iterator[None]:
    """Python's automatic garbage collection paused while a file is read, collected once per batch instead.

    Parsing a city object makes dozens of lists and dicts, freed by reference counting as soon as
    its batch is converted; the automatic collector, triggered every 700 of them, still walked the
    young ones each time, about a sixth of the import's CPU time. Instead the young generations are
    collected after each batch (what a batch left in a reference cycle is freed there); the old
    generation is left as it was and collected as usual once automatic collection is back on.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _batches(items: Iterable[CityBuilding], size: int) -> Iterator[list[CityBuilding]]:
    batch: list[CityBuilding] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class _Counts:
    received: int = 0
    outside: int = 0
    no_footprint: int = 0
    degenerate: int = 0
    unclassified: int = 0


def _kept_rows(ctx: BuildContext, source: str) -> Iterator[dict[str, pa.Table]]:
    """The rows other city model sources already stored in the shared surface tables, to be kept."""
    for table in (SURFACES_TABLE, OTHER_LODS_TABLE):
        if ctx.store.has_table(table):
            old = ctx.store.read_table(table)
            old = old[old["source"] != source]
            yield {table: pa.Table.from_pandas(_as_wkb(old), schema=SURFACE_SCHEMA, preserve_index=False)}


def _as_wkb(frame: Any) -> Any:
    import pandas as pd

    out = pd.DataFrame(frame.drop(columns="geometry"))
    out["geometry"] = shapely.to_wkb(frame.geometry.to_numpy(), output_dimension=3)
    return out


# ---------------------------------------------------------------------------- vectorised conversion


@dataclass
class _Flat:
    """A batch's surfaces flattened into arrays: their rings' points, and what each surface and ring belongs to.

    Surfaces are the batch's polygons left after degenerate ones were dropped, in building order;
    ``block`` indexes the batch's geometries (``lod``, ``geometry_index``, ``geometry_type``,
    ``part_id`` per geometry) and ``semantic`` indexes ``semantics`` (-1: none).
    """

    coords: npt.NDArray[np.float64]
    ring_start: npt.NDArray[np.int64]
    ring_surface: npt.NDArray[np.int64]
    surface_building: npt.NDArray[np.int64]
    block: npt.NDArray[np.int64]
    solid: npt.NDArray[np.int64]
    shell: npt.NDArray[np.int64]
    surface_index: npt.NDArray[np.int64]
    semantic: npt.NDArray[np.int64]
    lod: npt.NDArray[np.object_]
    geometry_index: npt.NDArray[np.int64]
    geometry_type: npt.NDArray[np.object_]
    part_id: npt.NDArray[np.object_]
    semantics: list[tuple[str, dict[str, Any] | None]]

    @property
    def surfaces(self) -> int:
        """How many surfaces the batch keeps."""
        return len(self.surface_building)


class _Converter:
    """Turns batches of :class:`CityBuilding` into Arrow tables in the twin's CRS."""

    def __init__(self, crs: ModelCRS, ctx: BuildContext, source: str, *, clip: bool) -> None:
        self._same = CRS.from_user_input(crs.horizontal) == CRS.from_user_input(ctx.crs)
        self._to_twin = Transformer.from_crs(crs.horizontal, ctx.crs, always_xy=True)
        self._to_wgs84 = Transformer.from_crs(ctx.crs, WGS84, always_xy=True)
        self._from_wgs84 = Transformer.from_crs(WGS84, ctx.crs, always_xy=True)
        self._area = ctx.area if clip else None
        if self._area is not None:
            shapely.prepare(self._area)
        self._source = source

    def convert(
        self, batch: list[CityBuilding], counts: _Counts, path: Path
    ) -> tuple[pa.Table, pa.Table, pa.Table]:
        counts.received += len(batch)
        flat = _flatten(batch, counts, path)
        coords = self._reproject(flat, batch, path)
        vectors = _area_vectors(coords, flat)
        area = np.linalg.norm(vectors, axis=1)
        tilt, azimuth = self._orientation(vectors, area, coords, flat)
        best = _best_lods(len(batch), flat)
        is_best = flat.lod[flat.block] == best[flat.surface_building]
        footprints, ground_z, roof_z = _footprints(len(batch), flat, coords, vectors, area, is_best)
        keep = ~shapely.is_missing(footprints)
        counts.no_footprint += int((~keep).sum())
        if self._area is not None and keep.any():
            inside = np.zeros(len(batch), dtype=bool)
            inside[keep] = shapely.intersects(self._area, footprints[keep])
            counts.outside += int((keep & ~inside).sum())
            keep = inside
        counts.unclassified += int(np.sum((flat.semantic < 0) & keep[flat.surface_building]))
        buildings = self._building_table(batch, keep, footprints, ground_z, roof_z, best, flat)
        surfaces, other = self._surface_tables(batch, keep, flat, coords, is_best, area, tilt, azimuth)
        return buildings, surfaces, other

    def _reproject(self, flat: _Flat, batch: list[CityBuilding], path: Path) -> npt.NDArray[np.float64]:
        coords = flat.coords
        if self._same or not len(coords):
            return coords
        x, y = self._to_twin.transform(coords[:, 0], coords[:, 1])
        out = np.column_stack([x, y, coords[:, 2]])
        bad = ~np.isfinite(out).all(axis=1)
        if bad.any():
            ring = int(np.searchsorted(flat.ring_start, np.flatnonzero(bad)[0], side="right") - 1)
            record = batch[flat.surface_building[flat.ring_surface[ring]]].record
            raise SourceError(f"{record}: coordinates that cannot be placed in the twin's CRS", path=path)
        return out

    def _orientation(
        self,
        vectors: npt.NDArray[np.float64],
        area: npt.NDArray[np.float64],
        coords: npt.NDArray[np.float64],
        flat: _Flat,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Tilt from the zenith and azimuth from true north (degrees) of every surface's normal."""
        with np.errstate(invalid="ignore", divide="ignore"):
            tilt = np.degrees(np.arccos(np.clip(vectors[:, 2] / area, -1.0, 1.0)))
            horizontal = np.hypot(vectors[:, 0], vectors[:, 1])
            grid_azimuth = np.degrees(np.arctan2(vectors[:, 0], vectors[:, 1]))
        first = coords[flat.ring_start[np.searchsorted(flat.ring_surface, np.arange(len(vectors)))]]
        azimuth = (grid_azimuth - self._convergence(first)) % 360.0
        azimuth[~(horizontal > 1e-6 * area)] = np.nan
        return tilt, azimuth

    def _convergence(self, points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Grid bearing of true north at each point (degrees clockwise from grid north)."""
        if not len(points):
            return np.zeros(0)
        lon, lat = self._to_wgs84.transform(points[:, 0], points[:, 1])
        x, y = self._from_wgs84.transform(lon, np.minimum(np.asarray(lat) + 1e-4, 89.9999))
        return np.degrees(np.arctan2(np.asarray(x) - points[:, 0], np.asarray(y) - points[:, 1]))

    def _building_table(
        self,
        batch: list[CityBuilding],
        keep: npt.NDArray[np.bool_],
        footprints: npt.NDArray[np.object_],
        ground_z: npt.NDArray[np.float64],
        roof_z: npt.NDArray[np.float64],
        best: npt.NDArray[np.object_],
        flat: _Flat,
    ) -> pa.Table:
        rows = np.flatnonzero(keep)
        kept = [batch[i] for i in rows.tolist()]
        attributes = [b.attributes for b in kept]
        measured = [_number(a.get("measuredHeight")) for a in attributes]
        geometric = (roof_z[rows] - ground_z[rows]).tolist()
        by_measure = [m is not None and m > 0 for m in measured]
        records = {
            "building_id": [b.building_id for b in kept], "object_type": [b.object_type for b in kept],
            "name": [_text(a.get("name")) for a in attributes],
            "function": [_text(a.get("function")) for a in attributes],
            "roof_type": [_text(a.get("roofType")) for a in attributes],
            "year_built": [_year(a.get("yearOfConstruction")) for a in attributes],
            "storeys": [_number(a.get("storeysAboveGround")) for a in attributes],
            "height_m": [round(m if m is not None and use else g, 3)
                         for m, g, use in zip(measured, geometric, by_measure, strict=True)],
            "height_source": ["measuredHeight" if use else "geometry" for use in by_measure],
            "ground_z": [round(z, 3) for z in ground_z[rows].tolist()],
            "roof_z": [round(z, 3) for z in roof_z[rows].tolist()],
            "lod": best[rows].tolist(),
            "lods": [",".join(sorted({g.lod for g in b.geometries if g.polygons}, key=_lod_rank)) for b in kept],
            "surfaces": np.bincount(flat.surface_building, minlength=len(batch))[rows],
            "footprint_m2": np.round(shapely.area(footprints[rows]), 3) if len(rows) else [],
            "attributes": json_texts(attributes),
            "parts": json_texts([b.parts if b.parts else None for b in kept]),
            "source": [self._source] * len(rows),
            "geometry": shapely.to_wkb(footprints[rows]).tolist() if len(rows) else [],
        }  # fmt: skip
        return pa.Table.from_pydict(records, schema=BUILDING_SCHEMA)

    def _surface_tables(
        self,
        batch: list[CityBuilding],
        keep: npt.NDArray[np.bool_],
        flat: _Flat,
        coords: npt.NDArray[np.float64],
        is_best: npt.NDArray[np.bool_],
        area: npt.NDArray[np.float64],
        tilt: npt.NDArray[np.float64],
        azimuth: npt.NDArray[np.float64],
    ) -> tuple[pa.Table, pa.Table]:
        """The surfaces of the kept buildings: those of each building's best LoD, and the others."""
        types = [kind for kind, _attributes in flat.semantics]
        attributes = json_texts([a if a else None for _kind, a in flat.semantics])
        table = pa.Table.from_pydict({
            "building_id": _strings([b.building_id for b in batch], flat.surface_building),
            "part_id": _strings(flat.part_id.tolist(), flat.block), "lod": _strings(flat.lod.tolist(), flat.block),
            "surface_type": _strings([_surface_type(kind) for kind in types], flat.semantic),
            "semantic": _strings(types, flat.semantic),
            "area_m2": np.round(area, 3), "tilt_deg": np.round(tilt, 2), "azimuth_deg": np.round(azimuth, 2),
            "geometry_index": flat.geometry_index[flat.block],
            "geometry_type": _strings(flat.geometry_type.tolist(), flat.block),
            "solid": flat.solid, "shell": flat.shell, "surface_index": flat.surface_index,
            "surface_attributes": _taken(attributes, flat.semantic),
            "source": _strings([self._source], np.zeros(flat.surfaces, dtype=np.int64)),
            "geometry": polygons_wkb(coords, flat.ring_start, flat.ring_surface, flat.surfaces),
        }, schema=SURFACE_SCHEMA)  # fmt: skip
        kept = keep[flat.surface_building]
        return table.filter(kept & is_best), table.filter(kept & ~is_best)


def _strings(values: list[Any], codes: npt.NDArray[np.int64]) -> pa.Array:
    """``values[code]`` for every code as an Arrow string array (null where the code is -1), taken in C."""
    table = pa.array([*values, None], type=pa.string())
    return table.take(pa.array(np.where(codes < 0, len(values), codes)))


def _taken(values: pa.StringArray, codes: npt.NDArray[np.int64]) -> pa.Array:
    """``values[code]`` for every code (null where the code is -1), taken in C."""
    return values.take(pa.array(codes, mask=codes < 0))


def _lookup(values: list[Any], codes: npt.NDArray[np.int64]) -> npt.NDArray[np.object_]:
    """``values[code]`` for every code, None where the code is -1."""
    table = np.empty(len(values) + 1, dtype=object)
    table[: len(values)] = values
    looked_up: npt.NDArray[np.object_] = table[codes]
    return looked_up


def _flatten(batch: list[CityBuilding], counts: _Counts, path: Path) -> _Flat:
    """Every ring of every polygon of the batch in one coordinate array; degenerate rings and polygons dropped.

    Rings lose their closing point and repeated consecutive points (vectorised over the batch); a
    ring left with fewer than three points is dropped, and so is a polygon whose outer ring is (or
    that has no ring at all).
    """
    owners = [(b, g) for b, building in enumerate(batch) for g in building.geometries]
    blocks = [g for _b, g in owners]
    per_block = np.fromiter((g.polygons for g in blocks), dtype=np.int64, count=len(blocks))
    ring_counts = _chained([g.ring_counts for g in blocks])
    ring_lengths = _chained([g.ring_lengths for g in blocks])
    coords = _coordinates(blocks)
    semantics = [entry for g in blocks for entry in g.semantics]
    polygon_block = np.repeat(np.arange(len(blocks)), per_block)
    polygon_building = np.fromiter((b for b, _g in owners), dtype=np.int64, count=len(owners))[polygon_block]
    semantic = _semantic_codes(blocks, per_block, polygon_building, batch, path)
    ring_polygon = np.repeat(np.arange(len(ring_counts)), ring_counts)
    outer = np.zeros(len(ring_polygon), dtype=bool)
    outer[(np.cumsum(ring_counts) - ring_counts)[ring_counts > 0]] = True
    ring_of = np.repeat(np.arange(len(ring_lengths)), ring_lengths)
    _check_finite(coords, polygon_building[ring_polygon[ring_of]], batch, path)
    open_points = _open_points(coords, ring_of, ring_lengths) if len(coords) else np.zeros(0, dtype=bool)
    kept_lengths = np.bincount(ring_of[open_points], minlength=len(ring_lengths))
    ring_ok = kept_lengths >= 3
    surface_ok = np.zeros(len(ring_counts), dtype=bool)
    surface_ok[ring_polygon[ring_ok & outer]] = True
    counts.degenerate += int((~surface_ok).sum())
    ring_ok &= surface_ok[ring_polygon]
    final_lengths = kept_lengths[ring_ok]
    new_index = np.cumsum(surface_ok) - 1
    return _Flat(
        coords=coords[open_points & ring_ok[ring_of]],
        ring_start=(np.cumsum(final_lengths) - final_lengths).astype(np.int64),
        ring_surface=new_index[ring_polygon[ring_ok]].astype(np.int64),
        surface_building=polygon_building[surface_ok],
        block=polygon_block[surface_ok],
        solid=_chained([g.solid for g in blocks])[surface_ok],
        shell=_chained([g.shell for g in blocks])[surface_ok],
        surface_index=_chained([g.surface_index for g in blocks])[surface_ok],
        semantic=semantic[surface_ok],
        lod=np.array([g.lod for g in blocks] + [None], dtype=object)[:-1],
        geometry_index=np.fromiter((g.geometry_index for g in blocks), dtype=np.int64, count=len(blocks)),
        geometry_type=np.array([g.geometry_type for g in blocks] + [None], dtype=object)[:-1],
        part_id=np.array([g.part_id for g in blocks] + [None], dtype=object)[:-1],
        semantics=semantics,
    )


def _chained(lists: list[list[int]]) -> npt.NDArray[np.int64]:
    """The lists' integers one after another, as one array."""
    return np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int64, count=sum(map(len, lists)))


def _coordinates(blocks: list[SurfaceBlock]) -> npt.NDArray[np.float64]:
    """Every block's points as (x, y, z): vertex indices looked up once per run of blocks sharing a vertex list."""
    pieces: list[npt.NDArray[np.float64]] = []
    for _source, run in itertools.groupby(blocks, key=lambda g: id(g.vertices)):
        group = list(run)
        source = group[0].vertices
        if source is None:
            pieces.extend(np.asarray(g.points, dtype=np.float64).reshape(-1, 3) for g in group)
        else:
            pieces.append(source.take(_chained([g.points for g in group if isinstance(g.points, list)])))
    return np.concatenate(pieces).astype(np.float64, copy=False) if pieces else np.empty((0, 3))


def _semantic_codes(
    blocks: list[SurfaceBlock], per_block: npt.NDArray[np.int64], polygon_building: npt.NDArray[np.int64],
    batch: list[CityBuilding], path: Path,
) -> npt.NDArray[np.int64]:  # fmt: skip
    """Each polygon's semantic surface as an index into the batch's semantic surfaces, -1 for none."""
    values = np.array([None, *itertools.chain.from_iterable(g.semantic for g in blocks)], dtype=object)[1:]
    missing = values == None  # noqa: E711 (elementwise comparison)
    values[missing] = -1
    described = np.fromiter((len(g.semantics) for g in blocks), dtype=np.int64, count=len(blocks))
    try:
        codes = values.astype(np.int64)
    except (TypeError, ValueError):  # not all integers: mark the others (rare, so one value at a time)
        integer = np.fromiter((type(v) is int for v in values), dtype=bool, count=len(values))
        codes = np.where(integer, values, -2).astype(np.int64)
    limit = np.repeat(described, per_block)
    bad = (codes < -1) | (codes >= limit) | ((codes == -1) & ~missing)
    if bad.any():
        record = batch[polygon_building[np.flatnonzero(bad)[0]]].record
        raise SourceError(f"{record}: a semantic surface value that is not one of its geometry's", path=path)
    base = np.repeat(np.cumsum(described) - described, per_block)
    return np.where(missing, -1, codes + base)


def _check_finite(
    coords: npt.NDArray[np.float64],
    point_building: npt.NDArray[np.int64],
    batch: list[CityBuilding],
    path: Path,
) -> None:
    bad = ~np.isfinite(coords).all(axis=1)
    if bad.any():
        record = batch[point_building[np.flatnonzero(bad)[0]]].record
        raise SourceError(f"{record}: a coordinate that is not a finite number", path=path)


def _open_points(
    coords: npt.NDArray[np.float64], ring_of: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    """Points to keep: not a ring's closing repeat of its first point, not equal to the point before."""
    keep = np.ones(len(coords), dtype=bool)
    same_ring = np.zeros(len(coords), dtype=bool)
    same_ring[1:] = ring_of[1:] == ring_of[:-1]
    repeated = np.zeros(len(coords), dtype=bool)
    repeated[1:] = (coords[1:] == coords[:-1]).all(axis=1)
    keep &= ~(repeated & same_ring)
    ends = np.cumsum(lengths) - 1
    starts = ends - lengths + 1
    closing = (lengths > 1) & (coords[ends] == coords[starts]).all(axis=1)
    keep[ends[closing]] = False
    return keep


def _area_vectors(coords: npt.NDArray[np.float64], flat: _Flat) -> npt.NDArray[np.float64]:
    """Each surface's Newell vector / 2: its direction is the normal, its length the area (m²).

    Holes run opposite to the outer ring, so adding the rings' vectors subtracts their area.
    Coordinates are taken relative to each ring's first point to keep full precision far from the
    CRS's origin.
    """
    if not len(coords):
        return np.zeros((flat.surfaces, 3))
    n = len(coords)
    ring_of = np.repeat(np.arange(len(flat.ring_start)), np.diff(np.append(flat.ring_start, n)))
    local = coords - coords[flat.ring_start][ring_of]
    nxt = np.arange(1, n + 1)
    ends = np.append(flat.ring_start[1:], n) - 1
    nxt[ends] = flat.ring_start
    a, b = local, local[nxt]
    terms = np.column_stack([
        (a[:, 1] - b[:, 1]) * (a[:, 2] + b[:, 2]),
        (a[:, 2] - b[:, 2]) * (a[:, 0] + b[:, 0]),
        (a[:, 0] - b[:, 0]) * (a[:, 1] + b[:, 1]),
    ])  # fmt: skip
    rings = np.add.reduceat(terms, flat.ring_start, axis=0) / 2.0
    vectors = np.zeros((flat.surfaces, 3))
    np.add.at(vectors, flat.ring_surface, rings)
    return vectors


def _polygons(
    coords: npt.NDArray[np.float64], flat: _Flat, chosen: npt.NDArray[np.bool_]
) -> npt.NDArray[np.object_]:
    """A 3D polygon (first ring the shell, the rest holes) for each ``chosen`` surface, in order."""
    if not chosen.any():
        return np.empty(0, dtype=object)
    ring_chosen = chosen[flat.ring_surface]
    point_chosen = np.repeat(ring_chosen, np.diff(np.append(flat.ring_start, len(coords))))
    ring_of = np.repeat(np.arange(len(flat.ring_start)), np.diff(np.append(flat.ring_start, len(coords))))
    ring_number = np.cumsum(ring_chosen) - 1
    rings = shapely.linearrings(coords[point_chosen], indices=ring_number[ring_of[point_chosen]])
    surface_number = np.cumsum(chosen) - 1
    polygons: npt.NDArray[np.object_] = shapely.polygons(
        rings, indices=surface_number[flat.ring_surface[ring_chosen]]
    )
    return polygons


@functools.cache
def _lod_rank(lod: str) -> float:
    try:
        return float(lod)
    except ValueError:
        return -1.0


def _best_lods(n: int, flat: _Flat) -> npt.NDArray[np.object_]:
    """Each building's best LoD: of its surfaces, the first one's of the highest rank ("" without surfaces)."""
    rank = np.fromiter(map(_lod_rank, flat.lod), dtype=np.float64, count=len(flat.lod))[flat.block]
    highest = np.full(n, -np.inf)
    np.maximum.at(highest, flat.surface_building, rank)
    candidate = np.flatnonzero(rank == highest[flat.surface_building])
    first = np.full(n, flat.surfaces, dtype=np.int64)
    np.minimum.at(first, flat.surface_building[candidate], candidate)
    best = np.full(n, "", dtype=object)
    found = first < flat.surfaces
    best[found] = flat.lod[flat.block[first[found]]]
    return best


def _footprints(
    n: int,
    flat: _Flat,
    coords: npt.NDArray[np.float64],
    vectors: npt.NDArray[np.float64],
    area: npt.NDArray[np.float64],
    is_best: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per building: 2D footprint, ground height (lowest ground point) and roof height (highest point)."""
    z_min, z_max = _surface_z_range(coords, flat)
    ground = is_best & (_lookup([kind for kind, _a in flat.semantics], flat.semantic) == "GroundSurface")
    with np.errstate(invalid="ignore", divide="ignore"):
        non_vertical = is_best & (np.abs(vectors[:, 2]) > _NON_VERTICAL * area)
    has_ground = np.zeros(n, dtype=bool)
    has_ground[flat.surface_building[ground]] = True
    chosen = ground | (non_vertical & ~has_ground[flat.surface_building])
    flat2d = shapely.force_2d(_polygons(coords, flat, chosen)) if chosen.any() else np.empty(0, dtype=object)
    owners = flat.surface_building[chosen]
    footprints = np.full(n, None, dtype=object)
    if len(owners):
        order = np.argsort(owners, kind="stable")
        owners, flat2d = owners[order], flat2d[order]
        starts = np.flatnonzero(np.concatenate([[True], owners[1:] != owners[:-1]]))
        ends = np.append(starts[1:], len(owners))
        single = ends - starts == 1
        footprints[owners[starts[single]]] = flat2d[starts[single]]
        for s, e in zip(starts[~single], ends[~single], strict=True):
            footprints[owners[s]] = shapely.union_all(shapely.make_valid(flat2d[s:e]), grid_size=1e-6)
    footprints = _valid_polygonal(footprints)
    ground_z = _per_building(np.where(ground, z_min, np.nan), flat.surface_building, n, np.fmin)
    fallback = _per_building(np.where(is_best, z_min, np.nan), flat.surface_building, n, np.fmin)
    roof_z = _per_building(np.where(is_best, z_max, np.nan), flat.surface_building, n, np.fmax)
    return footprints, np.where(np.isnan(ground_z), fallback, ground_z), roof_z


def _surface_z_range(
    coords: npt.NDArray[np.float64], flat: _Flat
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    if not len(coords):
        return np.zeros(0), np.zeros(0)
    ring_min = np.minimum.reduceat(coords[:, 2], flat.ring_start)
    ring_max = np.maximum.reduceat(coords[:, 2], flat.ring_start)
    z_min = np.full(flat.surfaces, np.inf)
    z_max = np.full(flat.surfaces, -np.inf)
    np.minimum.at(z_min, flat.ring_surface, ring_min)
    np.maximum.at(z_max, flat.ring_surface, ring_max)
    return z_min, z_max


def _per_building(
    values: npt.NDArray[np.float64], owner: npt.NDArray[np.int64], n: int, reduce: np.ufunc
) -> npt.NDArray[np.float64]:
    out = np.full(n, np.nan)
    reduce.at(out, owner, values)
    return out


def _valid_polygonal(footprints: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    """Footprints repaired where invalid; only their polygonal parts kept (None when nothing is left)."""
    present = ~shapely.is_missing(footprints)
    invalid = present.copy()
    invalid[present] = ~shapely.is_valid(footprints[present])
    for i in np.flatnonzero(invalid):
        fixed = shapely.make_valid(footprints[i])
        parts = [p for p in shapely.get_parts(fixed) if shapely.get_type_id(p) in (3, 6) and not p.is_empty]
        footprints[i] = shapely.union_all(parts) if parts else None
    for i in np.flatnonzero(present):
        if footprints[i] is not None and (footprints[i].is_empty or footprints[i].area <= 0):
            footprints[i] = None
    present = ~shapely.is_missing(footprints)
    footprints[present] = shapely.orient_polygons(footprints[present])  # outer rings counter-clockwise
    return footprints


# ------------------------------------------------------------------------------------ small parsers

_YEAR = re.compile(r"^\s*(\d{4})")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _year(value: Any) -> int | None:
    number = _number(value)
    if number is not None:
        return int(number) if 0 < number < 3000 else None
    match = _YEAR.match(value) if isinstance(value, str) else None
    return int(match.group(1)) if match else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return ";".join(str(v) for v in value) or None
    return str(value)


@functools.cache
def _surface_type(semantic: str | None) -> str | None:
    """The short ``surface_type`` of a semantic surface type (``RoofSurface`` → ``roof``)."""
    if semantic is None:
        return None
    return SURFACE_TYPES.get(semantic) or _snake(semantic)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name.removesuffix("Surface")).lower()
