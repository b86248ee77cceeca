"""Build a SUMO network from the twin's directed edges, keeping every edge id.

The twin's ``network_edges``/``network_nodes`` (possibly modified by a scenario) are written as SUMO
plain XML and compiled with netconvert. No option that renames, joins or removes edges is used
(``--geometry.remove``, ``--edges.join``, ``--junctions.join``, ``--keep-edges.components`` all would),
so edge ids stay the same between baseline and scenarios and outputs join back onto the twin's edges.
Modal filters are applied in a second netconvert pass that withdraws car permission from the
connections through the filtered node; timed closures become SUMO rerouters in an additional file.
"""

from __future__ import annotations

import html
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely

from civictwin.engines.traffic.edits import Additional, FilteredNode, TimedClosure
from civictwin.engines.traffic.sumo import run_binary
from civictwin.errors import EngineError

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

FloatArray = npt.NDArray[np.float64]

_EDGE_TAG = re.compile(rb'<edge id="([^"]*)"( from=")?')

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
    :func:`~civictwin.engines.traffic.edits.apply_interventions`); ``nodes`` follows
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


def net_edge_ids(net_file: Path) -> frozenset[str]:
    """The ids of the normal (non-internal) edges in a compiled SUMO network.

    Read with a pattern instead of an XML parser (2 ms instead of 40 on the demo's 3.5 MB net): SUMO
    writes every edge as ``<edge id="…"``, followed by ``from="…"`` for a normal edge and by
    ``function="…"`` for internal ones. A net file with any other edge layout is refused rather than
    misread.
    """
    data = net_file.read_bytes()
    found = _EDGE_TAG.findall(data)
    if len(found) != data.count(b"<edge "):
        raise EngineError("edges not written as <edge id=...> by netconvert; cannot list them", path=net_file)
    return frozenset(html.unescape(edge_id.decode()) for edge_id, normal in found if normal)


# The plain-XML writers below build each line from whole columns: a loop over row dictionaries and
# ElementTree elements took a tenth of a second per network, on the critical path before netconvert.
# The text is what ElementTree would write (same escaping, attribute order and indentation).

_XML_HEADER = "<?xml version='1.0' encoding='utf-8'?>\n"
_ATTRIBUTE_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;", "\n": "&#10;", "\t": "&#09;"}
)


def _write_nodes(edges: gpd.GeoDataFrame, nodes: gpd.GeoDataFrame, path: Path) -> Path:
    used = set(edges["from_node"].tolist()) | set(edges["to_node"].tolist())
    table = nodes[nodes["node_id"].isin(used)]
    missing = used - set(table["node_id"].tolist())
    if missing:
        shown = ", ".join(map(str, sorted(missing)[:5]))
        raise EngineError(
            f"edges reference node(s) {shown} missing from the nodes table", field="network_nodes"
        )
    xy = shapely.get_coordinates(table.geometry.to_numpy())
    lines = [
        f'  <node id="{_escape(str(node_id))}" x="{x:.2f}" y="{y:.2f}" />\n'
        for node_id, (x, y) in zip(table["node_id"].tolist(), xy.tolist(), strict=True)
    ]
    return _write_plain(path, "nodes", lines)


def _write_edges(edges: gpd.GeoDataFrame, path: Path) -> Path:
    """One ``<edge>`` per row: permissions, priority, lanes, speed, shape, length, name, bus lanes."""
    lanes = _lane_counts(edges)
    starts = [
        f'  <edge id="{_escape(edge_id)}" from="{_escape(start)}" to="{_escape(end)}" '
        f'priority="{priority}" numLanes="{n}" speed="{speed:.2f}" shape="{shape}"'
        for edge_id, start, end, priority, n, speed, shape in zip(
            edges["edge_id"].astype(str).tolist(),
            edges["from_node"].astype(str).tolist(),
            edges["to_node"].astype(str).tolist(),
            _priorities(edges),
            lanes.tolist(),
            _speeds_ms(edges).tolist(),
            _shapes(edges.geometry.to_numpy()),
            strict=True,
        )
    ]
    lines = [
        start + length + name + permissions + _lane_children(bus)
        for start, length, name, permissions, bus in zip(
            starts,
            _lengths(edges),
            _names(edges),
            _permissions(edges),
            _bus_lane_counts(edges, lanes).tolist(),
            strict=True,
        )
    ]
    return _write_plain(path, "edges", lines)


def _write_plain(path: Path, root: str, lines: Sequence[str]) -> Path:
    body = "".join(lines)
    text = f"{_XML_HEADER}<{root}>\n{body}</{root}>" if lines else f"{_XML_HEADER}<{root} />"
    path.write_text(text, encoding="utf-8")
    return path


def _escape(value: str) -> str:
    return value.translate(_ATTRIBUTE_ESCAPES)


def _column(edges: pd.DataFrame, name: str) -> pd.Series:
    """A column, or all-missing values where the table lacks it."""
    return edges[name] if name in edges.columns else pd.Series([None] * len(edges), index=edges.index)


def _priorities(edges: pd.DataFrame) -> list[int]:
    classes = _column(edges, "highway").tolist()
    by_class = {value: _priority(value) for value in set(classes) if isinstance(value, str)}
    return [by_class.get(value, 4) if isinstance(value, str) else 4 for value in classes]


def _lane_counts(edges: pd.DataFrame) -> npt.NDArray[np.int64]:
    """``lanes`` rounded (half to even, as Python's ``round``), at least 1; missing → 1."""
    values = pd.to_numeric(_column(edges, "lanes"), errors="coerce").to_numpy(dtype=float)
    counts = np.maximum(1.0, np.where(np.isnan(values), 1.0, np.round(values)))
    return counts.astype(np.int64)


def _speeds_ms(edges: pd.DataFrame) -> FloatArray:
    values = pd.to_numeric(_column(edges, "speed_kmh"), errors="coerce").to_numpy(dtype=float)
    if not np.all(values > 0):  # NaN fails the comparison too
        raise EngineError("every edge needs a positive speed_kmh", field="network_edges.speed_kmh")
    speeds: FloatArray = values / 3.6
    return speeds


def _shapes(geometries: npt.NDArray[np.object_]) -> list[str]:
    """Each line's vertices as SUMO's ``x,y x,y ...`` (centimetre precision)."""
    coords, owner = shapely.get_coordinates(geometries, return_index=True)
    points = [f"{x:.2f},{y:.2f}" for x, y in coords.tolist()]
    ends = np.searchsorted(owner, np.arange(len(geometries) + 1)).tolist()
    return [" ".join(points[ends[i] : ends[i + 1]]) for i in range(len(geometries))]


def _lengths(edges: pd.DataFrame) -> list[str]:
    values = pd.to_numeric(_column(edges, "length_m"), errors="coerce").to_numpy(dtype=float)
    return [f' length="{v:.2f}"' if v > 0 else "" for v in values.tolist()]


def _names(edges: pd.DataFrame) -> list[str]:
    return [
        f' name="{_escape(name)}"' if isinstance(name, str) and name else ""
        for name in _column(edges, "name").tolist()
    ]


def _permissions(edges: pd.DataFrame) -> list[str]:
    """``allow`` with the vehicle classes of the modes the edge permits, else ``disallow="all"``.

    A table without a ``bus`` column lets buses go wherever cars may.
    """
    allowed = [
        np.where(_flags(edges, "car" if mode == "bus" and "bus" not in edges.columns else mode), name, "")
        for mode, classes in VCLASSES.items()
        for name in classes
    ]
    joined = [" ".join(c for c in row if c) for row in zip(*(a.tolist() for a in allowed), strict=True)]
    return [f' allow="{classes}"' if classes else ' disallow="all"' for classes in joined]


def _flags(edges: pd.DataFrame, mode: str) -> npt.NDArray[np.bool_]:
    """Whether each edge permits ``mode`` (a missing value or column: no)."""
    values = _column(edges, mode)
    return np.array([bool(v) and not _is_missing(v) for v in values.tolist()], dtype=bool)


def _bus_lane_counts(edges: pd.DataFrame, lanes: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Bus-only lanes to write: only on car edges with more lanes than that."""
    wanted = pd.to_numeric(_column(edges, "bus_lanes"), errors="coerce").fillna(0).to_numpy(dtype=np.int64)
    return np.where((wanted > 0) & _flags(edges, "car") & (lanes > wanted), wanted, 0)


def _lane_children(bus_lanes: int) -> str:
    if not bus_lanes:
        return " />\n"
    allow = " ".join(VCLASSES["bus"])
    children = "".join(f'    <lane index="{i}" allow="{allow}" />\n' for i in range(bus_lanes))
    return f">\n{children}  </edge>\n"


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


def _is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
