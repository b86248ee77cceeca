"""CityGML sources: buildings of CityGML 1.0, 2.0 and 3.0 files (LoD0–LoD4), streamed with lxml.

``lxml.etree.iterparse`` hands over one ``Building`` element at a time; once read, the element and
everything before it is cleared, so a multi-gigabyte single-file export is read in constant memory.
A building's geometry is taken per LoD: the polygons of its semantic boundary surfaces
(``RoofSurface``, ``WallSurface``, ``GroundSurface``, ...), and its ``lodXSolid`` whose surface
members (inline, or ``xlink:href`` references to those polygons) keep their semantics; a
``lodXMultiSurface`` without semantics is kept too. ``BuildingPart`` s are read with their building.
Attributes: the building's simple elements (``function``, ``yearOfConstruction``,
``measuredHeight``, ``storeysAboveGround``, ...), ``gml:name`` and the generic attributes.

The CRS is the first ``srsName`` in the file (the model's envelope, usually); compound names and
the German AdV names (``urn:adv:crs:ETRS89_UTM32*DE_DHHN2016_NH*GCG2016``) are understood. The
reader never writes anything beside the file (unlike GDAL's GML driver and its ``.gfs`` files).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from lxml import etree

from civictwin.config import SourceConfig
from civictwin.errors import SourceError
from civictwin.sources.base import BuildContext, IngestResult
from civictwin.sources.city3d import (
    CityBuilding,
    SurfaceBlock,
    block_of_polygons,
    ingest_buildings,
    resolve_crs,
)

CORE_VERSIONS = {
    "http://www.opengis.net/citygml/1.0": "1.0",
    "http://www.opengis.net/citygml/2.0": "2.0",
    "http://www.opengis.net/citygml/3.0": "3.0",
}
_BUILDING_NS = {v: f"http://www.opengis.net/citygml/building/{v}" for v in CORE_VERSIONS.values()}
_GML = {
    "1.0": "http://www.opengis.net/gml",
    "2.0": "http://www.opengis.net/gml",
    "3.0": "http://www.opengis.net/gml/3.2",
}
_GEN = {v: f"http://www.opengis.net/citygml/generics/{v}" for v in CORE_VERSIONS.values()}
_XLINK = "{http://www.w3.org/1999/xlink}href"
_LODS = ("0", "1", "2", "3", "4")
_SIMPLE_SKIP = frozenset(
    {"description", "creationDate", "terminationDate", "relativeToTerrain", "relativeToWater"}
)


def ingest(source: SourceConfig, ctx: BuildContext) -> IngestResult:
    """Read the buildings of a CityGML file into the twin's city-model tables."""
    path = ctx.path_of(source)
    if not path.is_file():
        raise SourceError("file not found", path=path)
    if path.stat().st_size == 0:
        raise SourceError("file is empty", path=path)
    version, srs = _probe(path)
    crs = resolve_crs(srs, source.crs, path)
    reader = _BuildingReader(version, path)
    result = ingest_buildings(source, ctx, path, crs, _buildings(path, reader), notes=[f"CityGML {version}"])
    if reader.unresolved:
        result.layers[0].quality["unresolved_surface_references"] = reader.unresolved
        result.layers[0].notes.append(
            f"{reader.unresolved} solid surface reference(s) (xlink:href) point at no polygon of their "
            "building and were skipped; the buildings' boundary surfaces were kept"
        )
    return result


def _probe(path: Path) -> tuple[str, str | None]:
    """The CityGML version (from the root's namespaces) and the first ``srsName`` in the file.

    The search stops at the end of the first building: a file that names no CRS by then names none.
    """
    version: str | None = None
    try:
        for event, element in etree.iterparse(
            str(path), events=("start", "end"), huge_tree=True, resolve_entities=False
        ):
            if version is None:
                version = _version(element, path)
            srs = element.get("srsName") if event == "start" else None
            if srs:
                return version, srs
            if event == "end" and _local(element) == "Building":
                break
    except etree.XMLSyntaxError as exc:
        raise SourceError(f"not valid XML: {exc.msg}", path=path) from None
    if version is None:
        raise SourceError("not a CityGML file (no root element)", path=path)
    return version, None


def _version(root: Any, path: Path) -> str:
    namespaces = set((root.nsmap or {}).values()) | {etree.QName(root).namespace}
    for namespace, version in CORE_VERSIONS.items():
        if namespace in namespaces:
            return version
    other = sorted(n for n in namespaces if n and "citygml" in n and "/citygml/" in n and n.count("/") == 4)
    if other:
        found = other[0].rsplit("/", 1)[-1]
        raise SourceError(f"CityGML {found} is not supported (versions 1.0, 2.0 and 3.0 are)", path=path)
    raise SourceError(f"not a CityGML file (root element {_local(root)})", path=path)


def _buildings(path: Path, reader: _BuildingReader) -> Iterator[CityBuilding]:
    tag = f"{{{reader.bldg}}}Building"
    number = 0
    try:
        for _event, element in etree.iterparse(
            str(path), events=("end",), tag=tag, huge_tree=True, resolve_entities=False
        ):
            number += 1
            yield reader.building(element, number)
            _release(element)
    except etree.XMLSyntaxError as exc:
        raise SourceError(f"not valid XML (after building {number}): {exc.msg}", path=path) from None


def _release(element: Any) -> None:
    """Free a read building and everything before it, keeping the tree at constant size."""
    element.clear(keep_tail=True)
    member = element
    while member.getparent() is not None and member.getparent().getparent() is not None:
        member = member.getparent()
    parent = member.getparent()
    if parent is not None:
        while member.getprevious() is not None:
            del parent[0]


class _BuildingReader:
    """Reads one ``Building`` element (with its parts) of a given CityGML version."""

    def __init__(self, version: str, path: Path) -> None:
        self.version = version
        self.path = path
        self.bldg = _BUILDING_NS[version]
        self.gml = _GML[version]
        self.gen = _GEN[version]
        self.core = next(ns for ns, v in CORE_VERSIONS.items() if v == version)
        self.gml_id = f"{{{self.gml}}}id"
        self.unresolved = 0
        """``xlink:href`` surface members that point at no polygon of their building (skipped)."""

    def building(self, element: Any, number: int) -> CityBuilding:
        building_id = element.get(self.gml_id) or f"building-{number}"
        record = f"Building {building_id!r}"
        building = CityBuilding(
            building_id=building_id,
            object_type="Building",
            attributes=self._attributes(element),
            geometries=self._geometries(element, record, part_id=None),
            record=record,
        )
        for n, part in enumerate(self._parts(element), start=1):
            part_id = part.get(self.gml_id) or f"{building_id}-part-{n}"
            geometries = self._geometries(part, f"{record}, part {part_id!r}", part_id=part_id)
            building.attach(part_id, self._attributes(part), geometries)
        return building

    def _parts(self, element: Any) -> Iterator[Any]:
        for child in element:
            if _local(child) in ("consistsOfBuildingPart", "buildingPart"):
                yield from (p for p in child if _local(p) == "BuildingPart")

    # ------------------------------------------------------------------ attributes

    def _attributes(self, element: Any) -> dict[str, Any]:
        attributes: dict[str, Any] = {}
        for child in element:
            if not isinstance(child.tag, str):
                continue
            name = _local(child)
            if _namespace(child) == self.gen or name == "genericAttribute":
                attributes.update(self._generic(child))
            elif name == "name" and _namespace(child) == self.gml and child.text:
                attributes.setdefault("name", child.text.strip())
            elif len(child) == 0 and child.text and child.text.strip() and name not in _SIMPLE_SKIP:
                _put(attributes, name, _value(child.text.strip()))
            elif name == "height" and self.version == "3.0":
                value = child.find(".//{*}value")
                if value is not None and value.text:
                    attributes.setdefault("measuredHeight", _value(value.text.strip()))
        if "yearOfConstruction" not in attributes and isinstance(attributes.get("dateOfConstruction"), str):
            attributes["yearOfConstruction"] = attributes["dateOfConstruction"][:4]
        return attributes

    def _generic(self, element: Any) -> dict[str, Any]:
        """CityGML 1.0/2.0 ``gen:stringAttribute name=...`` or 3.0 ``gen:StringAttribute/gen:name``."""
        found: dict[str, Any] = {}
        for attribute in element.iter():
            if not isinstance(attribute.tag, str) or not _local(attribute).lower().endswith("attribute"):
                continue
            name = attribute.get("name")
            if name is None:
                name_element = attribute.find(f"{{{self.gen}}}name")
                name = name_element.text.strip() if name_element is not None and name_element.text else None
            value = attribute.find(f"{{{self.gen}}}value")
            if name and value is not None and value.text is not None:
                found[name] = _value(value.text.strip())
        return found

    # ------------------------------------------------------------------ geometry

    def _geometries(self, element: Any, record: str, *, part_id: str | None) -> list[SurfaceBlock]:
        """The element's geometries (its solids and multi-surfaces, then its boundary surfaces not in them)."""
        semantic: dict[
            str, list[tuple[str, str, dict[str, Any] | None, list[npt.NDArray[np.float64]], str | None]]
        ] = {}
        by_id: dict[str, tuple[str, dict[str, Any] | None, list[npt.NDArray[np.float64]]]] = {}
        for boundary in self._boundaries(element):
            kind = _local(boundary)
            attrs = {"id": boundary.get(self.gml_id)} if boundary.get(self.gml_id) else None
            for lod, geometry in self._lod_geometries(boundary):
                for polygon_id, rings in self._polygons(geometry, record):
                    semantic.setdefault(lod, []).append((kind, kind, attrs, rings, polygon_id))
                    if polygon_id:
                        by_id[polygon_id] = (kind, attrs, rings)
        blocks: list[SurfaceBlock] = []
        used: set[str] = set()
        index = 0
        for lod, geometry in self._lod_geometries(element):
            kind = _local(geometry)
            if kind not in ("Solid", "MultiSurface", "CompositeSurface"):
                continue
            shells = self._shells(geometry) if kind == "Solid" else [geometry]
            polygons: list[_Polygon] = []
            for shell_number, shell in enumerate(shells):
                for f, (polygon_id, rings, href) in enumerate(self._members(shell, record)):
                    sem_type: str | None = None
                    sem_attrs = None
                    key = href or polygon_id
                    if key is not None and key in by_id:
                        sem_type, sem_attrs, linked = by_id[key]
                        rings = rings or linked
                        used.add(key)
                    elif href is not None:
                        self.unresolved += 1
                        continue
                    polygons.append((rings, sem_type, sem_attrs, shell_number, f))
            if polygons:
                blocks.append(block_of_polygons(
                    lod=lod, geometry_index=index, geometry_type=kind, part_id=part_id, polygons=polygons
                ))  # fmt: skip
            index += 1
        for lod, items in semantic.items():
            rest = [item for item in items if item[4] is None or item[4] not in used]
            if rest:
                blocks.append(block_of_polygons(
                    lod=lod, geometry_index=index, geometry_type="MultiSurface", part_id=part_id,
                    polygons=[(rings, sem_type, sem_attrs, 0, f)
                              for f, (_kind, sem_type, sem_attrs, rings, _pid) in enumerate(rest)],
                ))  # fmt: skip
                index += 1
        return blocks

    def _boundaries(self, element: Any) -> Iterator[Any]:
        for child in element:
            if isinstance(child.tag, str) and _local(child) in ("boundedBy", "boundary"):
                for surface in child:
                    if isinstance(surface.tag, str):
                        yield surface

    def _lod_geometries(self, element: Any) -> Iterator[tuple[str, Any]]:
        """(LoD, geometry element) of every ``lodN...`` property directly under ``element``."""
        for child in element:
            if not isinstance(child.tag, str):
                continue
            name = _local(child)
            if name.startswith("lod") and len(name) > 3 and name[3] in _LODS and not name.endswith("Curve"):
                for geometry in child:
                    if isinstance(geometry.tag, str):
                        yield name[3], geometry

    def _shells(self, solid: Any) -> list[Any]:
        shells: list[Any] = []
        for child in solid:
            if isinstance(child.tag, str) and _local(child) in ("exterior", "interior"):
                shells.extend(c for c in child if isinstance(c.tag, str))
        return shells

    def _members(
        self, container: Any, record: str
    ) -> Iterator[tuple[str | None, list[npt.NDArray[np.float64]], str | None]]:
        """(polygon id, rings, referenced id) of every polygon of a surface container, in order."""
        for member in container:
            if not isinstance(member.tag, str):
                continue
            name = _local(member)
            if name not in ("surfaceMember", "surfaceMembers", "patches", "trianglePatches"):
                continue
            href = member.get(_XLINK)
            if href is not None:
                yield None, [], href.lstrip("#")
                continue
            for polygon in member:
                if isinstance(polygon.tag, str):
                    for polygon_id, rings in self._polygons(polygon, record):
                        yield polygon_id, rings, None

    def _polygons(
        self, geometry: Any, record: str
    ) -> Iterator[tuple[str | None, list[npt.NDArray[np.float64]]]]:
        """Every polygon inside a geometry element (Polygon, MultiSurface, CompositeSurface, ...)."""
        name = _local(geometry)
        if name in ("Polygon", "Triangle", "Rectangle"):
            yield geometry.get(self.gml_id), self._rings(geometry, record)
        elif name == "OrientableSurface":
            reverse = geometry.get("orientation") == "-"
            for base in geometry.iter(f"{{{self.gml}}}Polygon"):
                rings = self._rings(base, record)
                yield base.get(self.gml_id), [r[::-1] for r in rings] if reverse else rings
        else:
            for member in geometry:
                if not isinstance(member.tag, str):
                    continue
                href = member.get(_XLINK)
                if href is not None:
                    continue
                for child in member:
                    if isinstance(child.tag, str):
                        yield from self._polygons(child, record)

    def _rings(self, polygon: Any, record: str) -> list[npt.NDArray[np.float64]]:
        rings = []
        for boundary in polygon:
            if not isinstance(boundary.tag, str) or _local(boundary) not in (
                "exterior",
                "interior",
                "outerBoundaryIs",
                "innerBoundaryIs",
            ):
                continue
            for ring in boundary:
                if isinstance(ring.tag, str):
                    rings.append(self._coordinates(ring, record))
        return rings

    def _coordinates(self, ring: Any, record: str) -> npt.NDArray[np.float64]:
        pos_list = ring.find(f"{{{self.gml}}}posList")
        if pos_list is not None:
            text = pos_list.text or ""
            dimension = int(pos_list.get("srsDimension") or ring.get("srsDimension") or 3)
        else:
            text = " ".join(p.text or "" for p in ring.iter(f"{{{self.gml}}}pos"))
            dimension = 3
        try:
            values = np.array(text.split(), dtype=np.float64)
        except ValueError:
            raise SourceError(f"{record}: a coordinate that is not a number", path=self.path) from None
        if dimension != 3 or len(values) % 3:
            raise SourceError(
                f"{record}: coordinates without x, y and z (a 3D city model needs all three)", path=self.path
            )
        return values.reshape(-1, 3)


_Polygon = tuple[list[npt.NDArray[np.float64]], str | None, dict[str, Any] | None, int, int]
"""A polygon as :func:`~civictwin.sources.city3d.block_of_polygons` takes it: rings, semantics, shell, index."""


def _local(element: Any) -> str:
    """An element's name without namespace ("" for comments and processing instructions)."""
    tag = element.tag
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _namespace(element: Any) -> str:
    tag = element.tag
    return tag[1:].partition("}")[0] if isinstance(tag, str) and tag.startswith("{") else ""


def _put(attributes: dict[str, Any], name: str, value: Any) -> None:
    """Store an attribute; a repeated element (several ``function`` s) becomes a list."""
    if name not in attributes:
        attributes[name] = value
    elif isinstance(attributes[name], list):
        attributes[name].append(value)
    else:
        attributes[name] = [attributes[name], value]


def _value(text: str) -> Any:
    """A number where the text is one (``9.05`` → 9.05, ``3`` → 3), else the text."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text
