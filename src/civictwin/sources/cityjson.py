"""CityJSON sources: CityJSON 1.1 and 2.0 files and CityJSONSeq (``.jsonl``) streams, read without loading them.

A CityJSON file keeps one vertex list for the whole model, usually after the city objects. The
reader makes two streaming passes with ijson (its C backend): the first reads the header
(``version``, ``transform``, ``metadata``) and writes the integer vertices to a temporary file
(memory-mapped, never beside the user's data); the second reads the city objects one at a time.
A CityJSONSeq stream is read line by line: a header line, then one ``CityJSONFeature`` per line
with its own vertices. Buildings and their parts become :class:`~civictwin.sources.city3d.CityBuilding`
objects; other city objects (roads, vegetation, ...) are counted and skipped.

Broken files stop with one line naming the file and the object: an unsupported version, no
``transform``, a vertex index outside the vertex list, a geometry that is not nested as its type
requires, a part whose parent is missing.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import ijson
import numpy as np
import numpy.typing as npt

from civictwin.config import SourceConfig
from civictwin.errors import SourceError
from civictwin.sources.base import BuildContext, IngestResult
from civictwin.sources.city3d import CityBuilding, ModelCRS, Surface, ingest_buildings, resolve_crs

SUPPORTED_VERSIONS = ("1.1", "2.0")
BUILDING_TYPES = frozenset({"Building"})
PART_TYPES = frozenset({"BuildingPart"})
_SEQ_PROBE_BYTES = 1 << 20
_VERTEX_CHUNK = 1 << 20


def ingest(source: SourceConfig, ctx: BuildContext) -> IngestResult:
    """Read a CityJSON file or CityJSONSeq stream into the twin's city-model tables."""
    path = ctx.path_of(source)
    _check_file(path)
    skipped: Counter[str] = Counter()
    if _is_sequence(path):
        header = _sequence_header(path)
        crs = _crs(header, source, path)
        buildings: Iterator[CityBuilding] = _sequence_buildings(path, header, skipped)
        result = ingest_buildings(source, ctx, path, crs, buildings, notes=[])
    else:
        with tempfile.TemporaryDirectory(prefix="civictwin-cityjson-") as folder:
            header, vertices = _header_and_vertices(path, Path(folder))
            crs = _crs(header, source, path)
            buildings = _file_buildings(path, vertices, skipped)
            result = ingest_buildings(source, ctx, path, crs, buildings, notes=[])
    if skipped:
        listed = ", ".join(f"{n} {kind}" for kind, n in sorted(skipped.items()))
        result.layers[0].notes.append(f"city objects that are not buildings were skipped: {listed}")
        result.layers[0].quality["skipped_objects"] = dict(skipped)
    return result


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise SourceError("file not found", path=path)
    if path.stat().st_size == 0:
        raise SourceError("file is empty", path=path)


def _is_sequence(path: Path) -> bool:
    """CityJSONSeq: ``.jsonl``, or a first line that is a whole CityJSON header with more lines after it."""
    if path.suffix.lower() == ".jsonl":
        return True
    with path.open("rb") as f:
        probe = f.read(_SEQ_PROBE_BYTES)
    first, newline, rest = probe.partition(b"\n")
    if not newline or not rest.strip():
        return False
    try:
        header = json.loads(first)
    except ValueError:
        return False
    return isinstance(header, dict) and header.get("type") == "CityJSON"


def _check_header(header: dict[str, Any], path: Path) -> dict[str, Any]:
    if header.get("type") != "CityJSON":
        raise SourceError(f"not a CityJSON file (type is {header.get('type')!r})", path=path)
    version = str(header.get("version"))
    if version not in SUPPORTED_VERSIONS:
        raise SourceError(
            f"CityJSON version {version!r} is not supported (versions {', '.join(SUPPORTED_VERSIONS)} are)",
            path=path,
            field="version",
        )
    transform = header.get("transform")
    if (
        not isinstance(transform, dict)
        or not _is_triple(transform.get("scale"))
        or not _is_triple(transform.get("translate"))
    ):
        raise SourceError(
            "no valid 'transform' (CityJSON 1.1 and 2.0 store integer vertices with scale and translate)",
            path=path,
            field="transform",
        )
    return header


def _is_triple(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 3 and all(isinstance(v, int | float) for v in value)


def _crs(header: dict[str, Any], source: SourceConfig, path: Path) -> ModelCRS:
    metadata = header.get("metadata") or {}
    declared = metadata.get("referenceSystem") if isinstance(metadata, dict) else None
    return resolve_crs(str(declared) if declared else None, source.crs, path)


# ------------------------------------------------------------------------------------ CityJSON file


def _header_and_vertices(path: Path, folder: Path) -> tuple[dict[str, Any], _VertexView]:
    """Pass 1: the header members and every vertex in real coordinates (a memory-mapped array)."""
    header: dict[str, Any] = {}
    raw = folder / "vertices.i64"
    count = 0
    with path.open("rb") as f, raw.open("wb") as out:
        try:
            count = _scan_header(f, header, out)
        except ijson.JSONError as exc:
            raise SourceError(f"not valid JSON: {_first_line(exc)}", path=path) from None
    _check_header(header, path)
    if count % 3:
        raise SourceError("'vertices' holds a vertex without exactly three coordinates", path=path)
    integers: npt.NDArray[np.int64] = (
        np.memmap(raw, dtype=np.int64, mode="r", shape=(count // 3, 3))
        if count
        else np.zeros((0, 3), np.int64)
    )
    return header, _VertexView(integers, header["transform"])


def _scan_header(f: BinaryIO, header: dict[str, Any], out: BinaryIO) -> int:
    """Stream the top-level members: small ones into ``header``, vertex integers into ``out``."""
    numbers: list[int] = []
    count = 0
    builders: dict[str, ijson.ObjectBuilder] = {}
    for prefix, event, value in ijson.parse(f, use_float=True):
        if prefix == "vertices.item.item":
            if not isinstance(value, int):
                raise ijson.JSONError(f"vertex coordinate {value!r} is not an integer")
            numbers.append(value)
            if len(numbers) >= _VERTEX_CHUNK:
                out.write(np.asarray(numbers, dtype=np.int64).tobytes())
                count += len(numbers)
                numbers.clear()
            continue
        top = prefix.split(".", 1)[0]
        if top in ("CityObjects", "vertices", "appearance", "geometry-templates", "extensions"):
            continue
        if prefix == "" or not top:
            if event == "map_key" and value in ("transform", "metadata"):
                builders[value] = ijson.ObjectBuilder()
            continue
        if top in builders:
            builders[top].event(event, value)
        elif prefix in ("type", "version"):
            header[prefix] = value
    out.write(np.asarray(numbers, dtype=np.int64).tobytes())
    for key, builder in builders.items():
        header[key] = builder.value
    return count + len(numbers)


class _VertexView:
    """Integer vertices (memory-mapped) that read as real coordinates: ``v × scale + translate``."""

    def __init__(self, integers: npt.NDArray[np.int64], transform: dict[str, Any]) -> None:
        self._integers = integers
        self._scale = np.asarray(transform["scale"], dtype=np.float64)
        self._translate = np.asarray(transform["translate"], dtype=np.float64)

    def __len__(self) -> int:
        return len(self._integers)

    def take(self, indices: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        real: npt.NDArray[np.float64] = self._integers[indices] * self._scale + self._translate
        return real


def _file_buildings(path: Path, vertices: Any, skipped: Counter[str]) -> Iterator[CityBuilding]:
    """Pass 2: the city objects one at a time, buildings assembled with their parts."""
    assembler = _Assembler(path)
    with path.open("rb") as f:
        try:
            for object_id, obj in ijson.kvitems(f, "CityObjects", use_float=True):
                yield from assembler.add(
                    str(object_id), obj, vertices, f"CityObjects[{object_id!r}]", skipped
                )
        except ijson.JSONError as exc:
            raise SourceError(f"not valid JSON: {_first_line(exc)}", path=path) from None
    yield from assembler.finish()


# ---------------------------------------------------------------------------------- CityJSONSeq


def _sequence_header(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        line = f.readline(_SEQ_PROBE_BYTES)
    try:
        header = json.loads(line)
    except ValueError as exc:
        raise SourceError(f"line 1: not a CityJSON header: {_first_line(exc)}", path=path) from None
    if not isinstance(header, dict):
        raise SourceError("line 1: not a CityJSON header", path=path)
    return _check_header(header, path)


def _sequence_buildings(path: Path, header: dict[str, Any], skipped: Counter[str]) -> Iterator[CityBuilding]:
    transform = header["transform"]
    with path.open("rb") as f:
        f.readline()
        for number, line in enumerate(f, start=2):
            if not line.strip():
                continue
            try:
                feature = json.loads(line)
            except ValueError as exc:
                raise SourceError(f"line {number}: not valid JSON: {_first_line(exc)}", path=path) from None
            if not isinstance(feature, dict) or feature.get("type") != "CityJSONFeature":
                raise SourceError(f"line {number}: not a CityJSONFeature", path=path)
            raw = feature.get("vertices")
            try:
                integers = np.asarray(raw if raw else np.zeros((0, 3)), dtype=np.int64).reshape(-1, 3)
            except (ValueError, TypeError):
                raise SourceError(
                    f"line {number}: 'vertices' is not a list of integer triples", path=path
                ) from None
            vertices = _VertexView(integers, transform)
            assembler = _Assembler(path)
            objects = feature.get("CityObjects")
            if not isinstance(objects, dict):
                raise SourceError(f"line {number}: no 'CityObjects'", path=path)
            for object_id, obj in objects.items():
                yield from assembler.add(object_id, obj, vertices, f"line {number} ({object_id!r})", skipped)
            yield from assembler.finish()


# ------------------------------------------------------------------------------ objects to buildings


class _Assembler:
    """Joins BuildingParts to their Building whatever order they come in; yields complete buildings."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._waiting: dict[str, tuple[CityBuilding, set[str]]] = {}
        self._orphans: dict[str, list[tuple[str, dict[str, Any], list[Surface]]]] = {}
        self._part_parent: dict[str, str] = {}

    def add(
        self, object_id: str, obj: Any, vertices: Any, record: str, skipped: Counter[str]
    ) -> Iterator[CityBuilding]:
        if not isinstance(obj, dict):
            raise SourceError(f"{record}: not a city object", path=self._path)
        kind = str(obj.get("type"))
        if kind in BUILDING_TYPES:
            yield from self._building(object_id, obj, vertices, record)
        elif kind in PART_TYPES:
            yield from self._part(object_id, obj, vertices, record)
        else:
            skipped[kind] += 1

    def _building(
        self, object_id: str, obj: dict[str, Any], vertices: Any, record: str
    ) -> Iterator[CityBuilding]:
        building = CityBuilding(
            building_id=object_id,
            object_type=str(obj["type"]),
            attributes=dict(obj.get("attributes") or {}),
            surfaces=object_surfaces(obj, vertices, record, self._path, part_id=None),
            record=record,
        )
        children = {str(c) for c in obj.get("children") or []}
        for part_id, attributes, surfaces in self._orphans.pop(object_id, []):
            _attach(building, part_id, attributes, surfaces)
            children.discard(part_id)
        if children:
            self._waiting[object_id] = (building, children)
        else:
            yield building

    def _part(
        self, object_id: str, obj: dict[str, Any], vertices: Any, record: str
    ) -> Iterator[CityBuilding]:
        parents = obj.get("parents") or []
        if not parents:
            raise SourceError(f"{record}: a BuildingPart without a parent", path=self._path)
        parent = str(parents[0])
        surfaces = object_surfaces(obj, vertices, record, self._path, part_id=object_id)
        attributes = dict(obj.get("attributes") or {})
        self._part_parent[object_id] = parent
        if parent in self._waiting:
            building, missing = self._waiting[parent]
            _attach(building, object_id, attributes, surfaces)
            missing.discard(object_id)
            if not missing:
                del self._waiting[parent]
                yield building
        else:
            self._orphans.setdefault(parent, []).append((object_id, attributes, surfaces))

    def finish(self) -> Iterator[CityBuilding]:
        for parent, parts in self._orphans.items():
            raise SourceError(
                f"BuildingPart {parts[0][0]!r}: its parent {parent!r} is not in the file", path=self._path
            )
        for building, missing in self._waiting.values():
            nested = [m for m in missing if self._part_parent.get(m) is not None]
            if len(nested) != len(missing):
                absent = sorted(missing - set(nested))[0]
                raise SourceError(
                    f"{building.record}: its child {absent!r} is not in the file", path=self._path
                )
            yield building


def _attach(
    building: CityBuilding, part_id: str, attributes: dict[str, Any], surfaces: list[Surface]
) -> None:
    building.parts[part_id] = attributes
    offset = 1 + max((s.geometry_index for s in building.surfaces), default=-1)
    for surface in surfaces:
        surface.geometry_index += offset
    building.surfaces.extend(surfaces)


def object_surfaces(
    obj: dict[str, Any], vertices: Any, record: str, path: Path, *, part_id: str | None
) -> list[Surface]:
    """Every polygon of an object's geometries, with LoD, nesting and semantic surface."""
    surfaces: list[Surface] = []
    for index, geometry in enumerate(obj.get("geometry") or []):
        if not isinstance(geometry, dict):
            raise SourceError(f"{record}: geometry {index} is not an object", path=path)
        kind = geometry.get("type")
        if kind == "GeometryInstance":
            raise SourceError(f"{record}: geometry templates (GeometryInstance) are not supported", path=path)
        try:
            surfaces.extend(_geometry_surfaces(geometry, index, vertices, part_id))
        except _BadIndex as exc:
            raise SourceError(
                f"{record}: vertex index {exc.index} is outside the vertex list ({len(vertices)} vertices)",
                path=path,
            ) from None
        except (TypeError, ValueError, IndexError, KeyError):
            raise SourceError(
                f"{record}: geometry {index} ({kind}) is not nested as its type requires", path=path
            ) from None
    return surfaces


class _BadIndex(Exception):
    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


_DEPTH = {"MultiSurface": 0, "CompositeSurface": 0, "Solid": 1, "MultiSolid": 2, "CompositeSolid": 2}


def _geometry_surfaces(
    geometry: dict[str, Any], index: int, vertices: Any, part_id: str | None
) -> list[Surface]:
    kind = str(geometry["type"])
    if kind not in _DEPTH:
        return []
    lod = str(geometry.get("lod"))
    boundaries = geometry["boundaries"]
    semantics = geometry.get("semantics") or {}
    types: list[dict[str, Any]] = semantics.get("surfaces") or []
    values = semantics.get("values")
    solids = boundaries if _DEPTH[kind] == 2 else [boundaries if _DEPTH[kind] == 1 else [boundaries]]
    solid_values = values if _DEPTH[kind] == 2 else [values if _DEPTH[kind] == 1 else [values]]
    polygons: list[tuple[int, int, int, Any, Any]] = []
    for s, shells in enumerate(solids):
        shell_values = solid_values[s] if solid_values and solid_values[s] is not None else None
        for h, shell in enumerate(shells):
            surface_values = shell_values[h] if shell_values is not None else None
            for f, polygon in enumerate(shell):
                semantic = surface_values[f] if surface_values is not None else None
                polygons.append((s, h, f, polygon, types[semantic] if semantic is not None else None))
    rings = _gather(polygons, vertices)
    surfaces = []
    for (s, h, f, _polygon, semantic), polygon_rings in zip(polygons, rings, strict=True):
        attributes = (
            {k: v for k, v in semantic.items() if k not in ("type", "parent", "children")}
            if semantic
            else None
        )
        surfaces.append(Surface(
            lod=lod, geometry_index=index, geometry_type=kind, rings=polygon_rings,
            semantic=str(semantic["type"]) if semantic else None, semantic_attributes=attributes or None,
            solid=s, shell=h, surface_index=f, part_id=part_id,
        ))  # fmt: skip
    return surfaces


def _gather(
    polygons: list[tuple[int, int, int, Any, Any]], vertices: Any
) -> list[list[npt.NDArray[np.float64]]]:
    """Real coordinates of every ring, looked up in one go; an index outside the list raises _BadIndex."""
    flat: list[int] = []
    lengths: list[int] = []
    ring_counts: list[int] = []
    for *_, polygon, _semantic in polygons:
        ring_counts.append(len(polygon))
        for ring in polygon:
            flat.extend(ring)
            lengths.append(len(ring))
    if not flat:
        return [[] for _ in polygons]
    indices = np.asarray(flat, dtype=np.int64)
    if indices.min() < 0 or indices.max() >= len(vertices):
        bad = indices[(indices < 0) | (indices >= len(vertices))][0]
        raise _BadIndex(int(bad))
    coords = vertices.take(indices)
    ends = np.cumsum(lengths).tolist()
    rings = [coords[end - length : end] for end, length in zip(ends, lengths, strict=True)]
    out: list[list[npt.NDArray[np.float64]]] = []
    position = 0
    for count in ring_counts:
        out.append(rings[position : position + count])
        position += count
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
