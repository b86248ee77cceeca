"""Build a SUMO network from the twin's directed edges, keeping every edge id.

The twin's ``network_edges``/``network_nodes`` (possibly modified by a scenario) are written as SUMO
plain XML and compiled with netconvert. No option that renames, joins or removes edges is used
(``--geometry.remove``, ``--edges.join``, ``--junctions.join``, ``--keep-edges.components`` all would),
so edge ids stay the same between baseline and scenarios and outputs join back onto the twin's edges.
Modal filters are applied in a second netconvert pass that withdraws car permission from the
connections through the filtered node; timed closures become SUMO rerouters in an additional file.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely

from civictwin.engines.traffic.sumo import run_binary
from civictwin.errors import EngineError
from civictwin.scenarios.interventions import Additional, FilteredNode, TimedClosure

VCLASSES: dict[str, tuple[str, ...]] = {
    "car": ("passenger",),
    "bus": ("bus",),
    "bike": ("bicycle",),
    "walk": ("pedestrian",),
}
"""The SUMO vehicle classes standing for each of the twin's modes."""

PRIORITY: dict[str, int] = {
    "motorway": 13,
    "trunk": 12,
    "primary": 11,
    "secondary": 10,
    "tertiary": 9,
    "unclassified": 8,
    "residential": 7,
    "living_street": 6,
    "service": 5,
}
"""Right-of-way priority by OSM ``highway`` class (``*_link`` one lower); other classes get 4."""

_NETCONVERT_OPTIONS = [
    "--offset.disable-normalization",
    "true",
    "--no-warnings",
    "true",
]


@dataclass(frozen=True)
class SumoNetwork:
    """A compiled SUMO network: the net file, additional files to load with it, and its edge ids."""

    net_file: Path
    additional_files: tuple[Path, ...]
    edge_ids: frozenset[str]
    dropped_edges: frozenset[str]
    workdir: Path
    wall_s: float


def build_sumo_network(
    edges: gpd.GeoDataFrame,
    nodes: gpd.GeoDataFrame,
    workdir: Path,
    *,
    additionals: Iterable[Additional] = (),
    guess_signals: bool = True,
) -> SumoNetwork:
    """Write plain XML for ``edges``/``nodes`` into ``workdir`` and compile it with netconvert.

    ``edges`` follows ``network_edges`` (optionally with ``bus`` and ``bus_lanes`` columns from
    :func:`~civictwin.scenarios.interventions.apply_interventions`); ``nodes`` follows
    ``network_nodes``. Every edge is written, an edge closed to every mode with ``disallow="all"``.
    ``guess_signals`` lets netconvert place traffic lights at junctions of fast roads (the twin has no
    signal data). Raises :class:`EngineError` when netconvert fails or an edge references a missing node.
    """
    duplicated = edges["edge_id"][edges["edge_id"].duplicated()].astype(str).unique().tolist()
    if duplicated:
        raise EngineError(f"duplicate edge id(s) {', '.join(duplicated[:5])}", field="network_edges")
    workdir.mkdir(parents=True, exist_ok=True)
    extras = list(additionals)
    filters = [a for a in extras if isinstance(a, FilteredNode)]
    closures = [a for a in extras if isinstance(a, TimedClosure)]
    nod_file = _write_nodes(edges, nodes, workdir / "net.nod.xml")
    edg_file = _write_edges(edges, workdir / "net.edg.xml")
    net_file = workdir / "net.net.xml"
    first = workdir / "unfiltered.net.xml" if filters else net_file
    options = [*_NETCONVERT_OPTIONS, "--tls.guess", "true" if guess_signals else "false"]
    run = run_binary(
        "netconvert",
        ["--node-files", nod_file.name, "--edge-files", edg_file.name, "--output-file", first.name, *options],
        step="building the SUMO network",
        cwd=workdir,
    )
    wall = run.wall_s
    if filters:
        con_file = _write_filter_connections(first, filters, workdir / "filters.con.xml")
        run = run_binary(
            "netconvert",
            [
                "--sumo-net-file",
                first.name,
                "--connection-files",
                con_file.name,
                "--output-file",
                net_file.name,
                *options,
            ],
            step="applying modal filters to the SUMO network",
            cwd=workdir,
        )
        wall += run.wall_s
    present = net_edge_ids(net_file)
    add_files = (_write_closures(closures, edges, workdir / "closures.add.xml"),) if closures else ()
    wanted = frozenset(edges["edge_id"].astype(str))
    return SumoNetwork(net_file, add_files, present, wanted - present, workdir, wall)


def allowed_vclasses(row: Mapping[str, Any]) -> list[str]:
    """The SUMO vehicle classes allowed on an edge from its mode permission columns."""
    allowed: list[str] = []
    for mode, classes in VCLASSES.items():
        flag = row.get(mode, row.get("car") if mode == "bus" else False)
        if bool(flag) and not _is_missing(flag):
            allowed.extend(classes)
    return allowed


def net_edge_ids(net_file: Path) -> frozenset[str]:
    """The ids of the normal (non-internal) edges in a compiled SUMO network."""
    ids = set()
    for _, element in ET.iterparse(net_file, events=("end",)):
        if element.tag == "edge":
            if element.get("function") is None:
                ids.add(str(element.get("id")))
            element.clear()
    return frozenset(ids)


def _write_nodes(edges: gpd.GeoDataFrame, nodes: gpd.GeoDataFrame, path: Path) -> Path:
    used = set(edges["from_node"].tolist()) | set(edges["to_node"].tolist())
    table = nodes[nodes["node_id"].isin(used)]
    missing = used - set(table["node_id"].tolist())
    if missing:
        shown = ", ".join(map(str, sorted(missing)[:5]))
        raise EngineError(
            f"edges reference node(s) {shown} missing from the nodes table", field="network_nodes"
        )
    root = ET.Element("nodes")
    for node_id, x, y in zip(table["node_id"], table.geometry.x, table.geometry.y, strict=True):
        ET.SubElement(root, "node", id=str(node_id), x=f"{x:.2f}", y=f"{y:.2f}")
    _write_xml(root, path)
    return path


def _write_edges(edges: gpd.GeoDataFrame, path: Path) -> Path:
    root = ET.Element("edges")
    for row in edges.to_dict("records"):
        lanes = _lanes(row.get("lanes"))
        attrs = {
            "id": str(row["edge_id"]),
            "from": str(row["from_node"]),
            "to": str(row["to_node"]),
            "priority": str(_priority(row.get("highway"))),
            "numLanes": str(lanes),
            "speed": f"{_speed_ms(row.get('speed_kmh')):.2f}",
            "shape": _shape(row["geometry"]),
        }
        length = row.get("length_m")
        if not _is_missing(length) and float(length) > 0:
            attrs["length"] = f"{float(length):.2f}"
        name = row.get("name")
        if isinstance(name, str) and name:
            attrs["name"] = name
        allowed = allowed_vclasses(row)
        if allowed:
            attrs["allow"] = " ".join(allowed)
        else:
            attrs["disallow"] = "all"
        element = ET.SubElement(root, "edge", attrs)
        bus_lanes = int(row.get("bus_lanes", 0) or 0)
        if bus_lanes and bool(row.get("car")) and lanes > bus_lanes:
            for index in range(bus_lanes):
                ET.SubElement(element, "lane", index=str(index), allow=" ".join(VCLASSES["bus"]))
    _write_xml(root, path)
    return path


def _write_filter_connections(net_file: Path, filters: Sequence[FilteredNode], path: Path) -> Path:
    """Connections through each filtered node lose the filtered modes (U-turns keep them)."""
    banned = {str(f.node_id): sorted({c for m in f.modes for c in VCLASSES[m]}) for f in filters}
    ends: dict[str, tuple[str, str]] = {}
    connections: list[dict[str, str]] = []
    for _, element in ET.iterparse(net_file, events=("end",)):
        if element.tag == "edge" and element.get("function") is None:
            ends[str(element.get("id"))] = (str(element.get("from")), str(element.get("to")))
        elif element.tag == "connection" and not str(element.get("from", "")).startswith(":"):
            connections.append(dict(element.attrib))
    root = ET.Element("connections")
    for con in connections:
        src, dst = ends.get(con["from"]), ends.get(con["to"])
        if src is None or dst is None or src[1] not in banned or dst[1] == src[0]:
            continue
        ET.SubElement(
            root,
            "connection",
            {
                "from": con["from"],
                "to": con["to"],
                "fromLane": con["fromLane"],
                "toLane": con["toLane"],
                "disallow": " ".join(banned[src[1]]),
            },
        )
    _write_xml(root, path)
    return path


def _write_closures(closures: Sequence[TimedClosure], edges: gpd.GeoDataFrame, path: Path) -> Path:
    """Each closure as a rerouter on the closed edges and the edges leading into them."""
    root = ET.Element("additional")
    for closure in closures:
        closed = set(closure.edges)
        starts = set(edges.loc[edges["edge_id"].isin(closed), "from_node"])
        feeding = edges.loc[edges["to_node"].isin(starts), "edge_id"].astype(str)
        trigger = sorted(closed | set(feeding))
        rerouter = ET.SubElement(root, "rerouter", id=closure.closure_id, edges=" ".join(trigger))
        interval = ET.SubElement(rerouter, "interval", begin=f"{closure.begin_s:g}", end=f"{closure.end_s:g}")
        disallow = " ".join(c for m in closure.modes for c in VCLASSES[m])
        for edge_id in closure.edges:
            ET.SubElement(interval, "closingReroute", id=edge_id, disallow=disallow)
    _write_xml(root, path)
    return path


def _write_xml(root: ET.Element, path: Path) -> None:
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _priority(highway: object) -> int:
    if not isinstance(highway, str):
        return 4
    if highway.endswith("_link"):
        return PRIORITY.get(highway.removesuffix("_link"), 5) - 1
    return PRIORITY.get(highway, 4)


def _lanes(value: object) -> int:
    if _is_missing(value):
        return 1
    return max(1, round(float(value)))  # type: ignore[arg-type]


def _speed_ms(value: object) -> float:
    if _is_missing(value) or float(value) <= 0:  # type: ignore[arg-type]
        raise EngineError("every edge needs a positive speed_kmh", field="network_edges.speed_kmh")
    return float(value) / 3.6  # type: ignore[arg-type]


def _shape(geometry: object) -> str:
    coords = shapely.get_coordinates(geometry)
    return " ".join(f"{x:.2f},{y:.2f}" for x, y in coords)


def _is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
