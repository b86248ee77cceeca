"""Build a SUMO network from the twin's directed edges, keeping track of every edge id.

The twin's ``network_edges``/``network_nodes`` (possibly modified by a scenario) are written as SUMO
plain XML and compiled with netconvert. The twin splits a street at every OSM node it shares with
another way (footway crossings, driveways, building passages), so most of its car edges are a few
metres long and meet only their own continuation. Such a run of edges (a *chain*: at every inner node
the street only continues, straight or nearly so, with the same attributes) is written as one SUMO
edge with the same lanes, speed, permissions and priority, named after its first twin edge;
:attr:`SumoNetwork.chains` says where each twin edge lies on it, so trips start and end where they did
and :mod:`~civictwin.engines.traffic.outputs` gives the results back per twin edge. netconvert itself
renames, joins or removes nothing (no ``--geometry.remove``, ``--edges.join``, ``--junctions.join``,
``--keep-edges.components``). Modal filters are applied in a second netconvert pass that withdraws car
permission from the connections through the filtered node; timed closures become SUMO rerouters in an
additional file. Nodes carrying a modal filter and the ends of edges under a timed closure always stay
junctions. Parts of the street network no trip can reach (not connected to any edge a trip starts or
ends on: another tile, a street cut off by the extract's border) can be left out, as they carry nothing
and cost loading time and per-lane work in every run.
"""

from __future__ import annotations

import html
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

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

MAX_BEND_DEG = 15.0
"""Sharpest bend (degrees) a chain runs through. netconvert slows no connection that turns by less
(``--junctions.limit-turn-speed.min-angle``, default 15°), so a junction at such a node changes nothing
but the cost of the run; at a sharper bend the junction stays and slows vehicles as before."""

CHAIN_COLUMNS = ["edge_id", "sumo_edge", "start_m", "length_m", "sumo_length_m"]
"""One row per twin edge in a network: the SUMO edge carrying it, where it starts on it and both lengths."""

_EDGE_TAG = re.compile(rb'<edge id="([^"]*)"( from=")?')

_NETCONVERT_OPTIONS = [
    "--offset.disable-normalization",
    "true",
    "--no-warnings",
    "true",
]


@dataclass(frozen=True)
class SumoNetwork:
    """A compiled SUMO network: the net file, additional files to load with it, and its edge ids.

    ``edge_ids`` are the twin's edge ids the network carries (``dropped_edges`` those it lost or left out);
    ``chains`` (columns :data:`CHAIN_COLUMNS`, one row per carried twin edge, in travel order along each
    SUMO edge) maps them onto the SUMO edges: ``start_m`` metres from the start of ``sumo_edge``,
    ``length_m`` long, on a SUMO edge ``sumo_length_m`` long. A twin edge not merged with others is a
    SUMO edge of the same id starting at 0.
    """

    net_file: Path
    additional_files: tuple[Path, ...]
    edge_ids: frozenset[str]
    dropped_edges: frozenset[str]
    workdir: Path
    wall_s: float
    chains: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CHAIN_COLUMNS), compare=False)


def build_sumo_network(
    edges: gpd.GeoDataFrame,
    nodes: gpd.GeoDataFrame,
    workdir: Path,
    *,
    additionals: Iterable[Additional] = (),
    guess_signals: bool = True,
    merge_chains: bool = True,
    count_edges: Iterable[str] = (),
    reachable_from: Iterable[str] | None = None,
) -> SumoNetwork:
    """Write plain XML for ``edges``/``nodes`` into ``workdir`` and compile it with netconvert.

    ``edges`` follows ``network_edges`` (optionally with ``bus`` and ``bus_lanes`` columns from
    :func:`~civictwin.engines.traffic.edits.apply_interventions`); ``nodes`` follows
    ``network_nodes``. Every edge is written, an edge closed to every mode with ``disallow="all"``.
    Nodes flagged in ``nodes``' ``traffic_signals`` column (the twin's OSM signals,
    :mod:`civictwin.model.signals`) become traffic lights (see :func:`signal_nodes`); without any
    such node, ``guess_signals`` lets netconvert place traffic lights at junctions of fast roads. ``merge_chains`` writes each chain of twin edges as one SUMO edge (see the module
    docstring and :func:`chain_edges`); without it every twin edge is its own SUMO edge, as before
    chains were merged (several times slower to simulate; kept to compare the two). ``count_edges``
    (twin edge ids with a counting point) stay SUMO edges of their own, so SUMO counts exactly them.
    ``reachable_from`` (twin edge ids, typically those car trips start and end on) keeps only the
    parts of the street network that hold one of them, a counting edge or an edge under a timed
    closure (see :func:`connected_parts`); the other edges are left out and listed in
    ``dropped_edges``. Raises :class:`EngineError` when netconvert fails or an edge references a
    missing node.
    """
    duplicated = edges["edge_id"][edges["edge_id"].duplicated()].astype(str).unique().tolist()
    if duplicated:
        raise EngineError(f"duplicate edge id(s) {', '.join(duplicated[:5])}", field="network_edges")
    wanted = frozenset(edges["edge_id"].astype(str))
    workdir.mkdir(parents=True, exist_ok=True)
    extras = list(additionals)
    filters = [a for a in extras if isinstance(a, FilteredNode)]
    closures = [a for a in extras if isinstance(a, TimedClosure)]
    if reachable_from is not None:
        anchors = set(reachable_from) | set(count_edges) | {e for c in closures for e in c.edges}
        edges = edges[connected_parts(edges, anchors)]
    signals = signal_nodes(nodes, edges)
    keep = _kept_nodes(edges, filters, closures, set(count_edges)) | signals if merge_chains else None
    sumo_edges, chains = chain_edges(edges, keep_nodes=keep)
    nod_file = _write_nodes(sumo_edges, nodes, workdir / "net.nod.xml", signals=signals)
    edg_file = _write_edges(sumo_edges, workdir / "net.edg.xml")
    net_file = workdir / "net.net.xml"
    first = workdir / "unfiltered.net.xml" if filters else net_file
    options = [*_NETCONVERT_OPTIONS, *_signal_options(signals, guess=guess_signals)]
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
    present_sumo = net_edge_ids(net_file)
    chains = chains[chains["sumo_edge"].isin(present_sumo)].reset_index(drop=True)
    present = frozenset(chains["edge_id"].tolist())
    add_files = (_write_closures(closures, sumo_edges, workdir / "closures.add.xml"),) if closures else ()
    return SumoNetwork(net_file, add_files, present, wanted - present, workdir, wall, chains)


SIGNAL_OPTIONS = ["--tls.guess", "false", "--tls.default-type", "actuated"]
"""netconvert options for a network whose traffic lights come from the twin's signal data: no guessed
lights besides them, and actuated programs (gap-based phase extension), SUMO's recommendation for
networks from OSM (Networks/Import/OpenStreetMap, "Recommended netconvert Options": "Default static
traffic lights are defined without knowledge about traffic patterns and may work badly in high
traffic"). Each signalled node keeps a program of its own: the same page's ``--tls.join`` (one joint
program for lights within 20 m) locked the demo's centre on count-matched routes (2,370 teleports
against 1 with separate programs; methods-calibration.md, section 4)."""


def signal_nodes(nodes: pd.DataFrame, edges: pd.DataFrame) -> set[str]:
    """The ids of the nodes that ``edges`` use and ``nodes``' ``traffic_signals`` column flags.

    A missing column or value counts as no signal.
    """
    if "traffic_signals" not in nodes.columns:
        return set()
    flagged = nodes.loc[nodes["traffic_signals"].fillna(False).astype(bool), "node_id"].astype(str)
    used = set(edges["from_node"].astype(str)) | set(edges["to_node"].astype(str))
    return set(flagged.tolist()) & used


def _signal_options(signals: set[str], *, guess: bool) -> list[str]:
    """The traffic light options: :data:`SIGNAL_OPTIONS` when the data has signals, else guessing or none."""
    if signals:
        return SIGNAL_OPTIONS
    return ["--tls.guess", "true" if guess else "false"]


def connected_parts(edges: pd.DataFrame, anchors: set[str]) -> npt.NDArray[np.bool_]:
    """Which rows of ``edges`` lie in a part of the street network holding one of the ``anchors``.

    A part is a weakly connected component of the edges' nodes: edges that share a node belong
    together whatever their direction or permissions. No vehicle can pass from one part to another,
    so an edge outside every part holding a trip's first or last edge is never driven on, in any
    scenario: interventions change permissions and directions, never which two nodes an edge joins.
    Such edges (another tile of a tiled extract, a street cut off by the extract's border) cost
    SUMO loading time and per-lane work in every run while carrying nothing.
    """
    starts = edges["from_node"].astype(str).to_numpy()
    ends = edges["to_node"].astype(str).to_numpy()
    nodes, index = np.unique(np.concatenate([starts, ends]), return_inverse=True)
    heads, tails = index[: len(edges)], index[len(edges) :]
    graph = csr_matrix((np.ones(len(edges)), (heads, tails)), shape=(len(nodes), len(nodes)))
    _, labels = connected_components(graph, directed=False)
    anchored = edges["edge_id"].astype(str).isin(anchors).to_numpy()
    kept: npt.NDArray[np.bool_] = np.isin(labels[heads], labels[heads[anchored]])
    return kept


def chain_edges(
    edges: gpd.GeoDataFrame, *, keep_nodes: Iterable[object] | None = ()
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """The SUMO edges for ``edges`` with every chain merged, and where each twin edge lies on them.

    A twin edge continues into the next at node ``n`` when ``n`` is not in ``keep_nodes``, its only
    neighbours are the two nodes ``u`` and ``w`` (edges ``u→n``, ``n→w``, and possibly ``w→n``,
    ``n→u``: the shape netconvert calls "geometry-like" and builds no turnaround at), both edges have
    the same SUMO attributes (priority, lanes, speed, permissions, bus lanes) and the street bends there
    by at most :data:`MAX_BEND_DEG`. So the merged network has the same connections and turn speeds as
    the unmerged one, and fewer junctions. A merged edge takes the id, name and attributes of its first
    twin edge, the concatenated shape and the summed length; a chain that would end where it starts (a
    loop) is split in two. ``keep_nodes=None`` merges nothing.
    Returns (SUMO edges in the twin's table shape, chains with :data:`CHAIN_COLUMNS`).
    """
    table = edges.reset_index(drop=True)
    lengths = _member_lengths(table)
    if keep_nodes is None:
        runs = [[row] for row in range(len(table))]
    else:
        runs = _chains(table, {str(node) for node in keep_nodes})
    sizes = np.array([len(run) for run in runs])
    members = np.concatenate([np.asarray(run) for run in runs]) if runs else np.zeros(0, dtype=int)
    owners = np.repeat(np.arange(len(runs)), sizes)
    totals = np.bincount(owners, weights=lengths[members], minlength=len(runs))
    within = np.cumsum(lengths[members]) - lengths[members]
    starts = within - np.repeat(np.cumsum(totals) - totals, sizes)
    merged = pd.DataFrame(table.drop(columns=table.geometry.name)).iloc[[run[0] for run in runs]]
    merged = merged.reset_index(drop=True)
    merged["to_node"] = table["to_node"].to_numpy()[[run[-1] for run in runs]]
    given = pd.to_numeric(_column(merged, "length_m"), errors="coerce").to_numpy(dtype=float)
    merged["length_m"] = np.where(sizes > 1, totals, given)
    lines = table.geometry.to_numpy()
    shapes = [lines[run[0]] if len(run) == 1 else _joined_line(lines[run]) for run in runs]
    chains = pd.DataFrame(
        {
            "edge_id": table["edge_id"].astype(str).to_numpy()[members],
            "sumo_edge": merged["edge_id"].astype(str).to_numpy()[owners],
            "start_m": np.maximum(np.round(starts, 6), 0.0),
            "length_m": lengths[members],
            "sumo_length_m": totals[owners],
        }
    )
    return gpd.GeoDataFrame(merged, geometry=shapes, crs=table.crs), chains


def _kept_nodes(
    edges: gpd.GeoDataFrame,
    filters: Sequence[FilteredNode],
    closures: Sequence[TimedClosure],
    counted: set[str],
) -> set[str]:
    """Nodes that must stay junctions: modal filters, and both ends of every edge under a closure or
    with a counting point."""
    closed = edges["edge_id"].astype(str).isin({e for c in closures for e in c.edges} | counted)
    ends = pd.concat([edges.loc[closed, "from_node"], edges.loc[closed, "to_node"]]).astype(str)
    return set(ends.tolist()) | {str(f.node_id) for f in filters}


def _chains(table: pd.DataFrame, keep: set[str]) -> list[list[int]]:
    """Row positions of ``table`` grouped into chains, each in travel order (see :func:`chain_edges`)."""
    starts = table["from_node"].astype(str).tolist()
    ends = table["to_node"].astype(str).tolist()
    into: dict[str, list[int]] = {}
    out_of: dict[str, list[int]] = {}
    for row, (start, end) in enumerate(zip(starts, ends, strict=True)):
        out_of.setdefault(start, []).append(row)
        into.setdefault(end, []).append(row)
    keys = _attribute_keys(table)
    leaving, arriving = _headings(table.geometry.to_numpy())
    following: dict[int, int] = {}
    for node, incoming in into.items():
        outgoing = out_of.get(node, [])
        if node in keep or not _geometry_like(node, incoming, outgoing, starts, ends):
            continue
        for row in incoming:
            (onward,) = [o for o in outgoing if ends[o] != starts[row]]
            bend = abs((leaving[onward] - arriving[row] + 180.0) % 360.0 - 180.0)
            if keys[onward] == keys[row] and bend <= MAX_BEND_DEG:
                following[row] = onward
    followed = set(following.values())
    runs: list[list[int]] = []
    for row in range(len(table)):
        if row in followed:
            continue
        run = [row]
        while run[-1] in following:
            run.append(following[run[-1]])
        runs.extend(_split_loop(run, starts, ends))
    covered = {row for run in runs for row in run}
    runs.extend([row] for row in range(len(table)) if row not in covered)  # closed rings of chain nodes
    return runs


def _geometry_like(
    node: str, incoming: list[int], outgoing: list[int], starts: list[str], ends: list[str]
) -> bool:
    """Exactly two neighbours, each reached by at most one edge per direction, and through traffic."""
    sources = [starts[row] for row in incoming]
    targets = [ends[row] for row in outgoing]
    neighbours = set(sources) | set(targets)
    if len(neighbours) != 2 or node in neighbours:
        return False
    one_way = len(sources) == 1 and len(targets) == 1
    two_way = sorted(sources) == sorted(targets) == sorted(neighbours)
    return one_way or two_way


def _split_loop(run: list[int], starts: list[str], ends: list[str]) -> list[list[int]]:
    """A run that ends at its own start node becomes two runs (SUMO refuses an edge from a node to itself)."""
    if len(run) < 2 or starts[run[0]] != ends[run[-1]]:
        return [run]
    middle = len(run) // 2
    return [run[:middle], run[middle:]]


def _attribute_keys(table: pd.DataFrame) -> list[tuple[object, ...]]:
    """What SUMO sees of each edge, as written: priority, lanes, speed, permissions, bus and cycle lanes."""
    lanes = _lane_counts(table)
    cycle = _cycle_lane_counts(table, lanes)
    return list(
        zip(
            _priorities(table),
            lanes.tolist(),
            [f"{v:.2f}" for v in _speeds_ms(table).tolist()],
            _permissions(table),
            _bus_lane_counts(table, lanes, cycle).tolist(),
            cycle.tolist(),
            strict=True,
        )
    )


def _headings(lines: npt.NDArray[np.object_]) -> tuple[FloatArray, FloatArray]:
    """Each line's direction (degrees) along its first segment and along its last one."""
    coords, owner = shapely.get_coordinates(lines, return_index=True)
    first = np.searchsorted(owner, np.arange(len(lines)))
    last = np.searchsorted(owner, np.arange(len(lines)), side="right") - 1
    first_step = coords[np.minimum(first + 1, last)] - coords[first]
    last_step = coords[last] - coords[np.maximum(last - 1, first)]
    leaving: FloatArray = np.degrees(np.arctan2(first_step[:, 1], first_step[:, 0]))
    arriving: FloatArray = np.degrees(np.arctan2(last_step[:, 1], last_step[:, 0]))
    return leaving, arriving


def _member_lengths(table: gpd.GeoDataFrame) -> FloatArray:
    """Each edge's length in metres: ``length_m`` where positive, else the length of its geometry."""
    given = pd.to_numeric(_column(table, "length_m"), errors="coerce").to_numpy(dtype=float)
    measured = shapely.length(table.geometry.to_numpy())
    lengths: FloatArray = np.where(given > 0, given, measured)
    return lengths


def _joined_line(lines: npt.NDArray[np.object_]) -> shapely.LineString:
    """Consecutive lines as one, the shared end points written once."""
    points = shapely.get_coordinates(lines)
    repeated = np.r_[False, np.all(points[1:] == points[:-1], axis=1)]
    return shapely.LineString(points[~repeated])


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


def _write_nodes(
    edges: gpd.GeoDataFrame, nodes: gpd.GeoDataFrame, path: Path, *, signals: AbstractSet[str] = frozenset()
) -> Path:
    """One ``<node>`` per node an edge uses; ``type="traffic_light"`` for those in ``signals``."""
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
        f'  <node id="{_escape(str(node_id))}" x="{x:.2f}" y="{y:.2f}"'
        f"{_TRAFFIC_LIGHT if str(node_id) in signals else ''} />\n"
        for node_id, (x, y) in zip(table["node_id"].tolist(), xy.tolist(), strict=True)
    ]
    return _write_plain(path, "nodes", lines)


_TRAFFIC_LIGHT = ' type="traffic_light"'


def _write_edges(edges: gpd.GeoDataFrame, path: Path) -> Path:
    """One ``<edge>`` per row: permissions, priority, lanes, speed, shape, length, name, bus and cycle
    lanes."""
    lanes = _lane_counts(edges)
    cycle = _cycle_lane_counts(edges, lanes)
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
        start + length + name + permissions + _lane_children(bus, bikes)
        for start, length, name, permissions, bus, bikes in zip(
            starts,
            _lengths(edges),
            _names(edges),
            _permissions(edges),
            _bus_lane_counts(edges, lanes, cycle).tolist(),
            cycle.tolist(),
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


def _bus_lane_counts(
    edges: pd.DataFrame, lanes: npt.NDArray[np.int64], cycle: npt.NDArray[np.int64] | None = None
) -> npt.NDArray[np.int64]:
    """Bus-only lanes to write: only on car edges with a car lane left beside them and the cycle lane."""
    wanted = pd.to_numeric(_column(edges, "bus_lanes"), errors="coerce").fillna(0).to_numpy(dtype=np.int64)
    taken = np.zeros(len(edges), dtype=np.int64) if cycle is None else cycle
    return np.where((wanted > 0) & _flags(edges, "car") & (lanes > wanted + taken), wanted, 0)


def _cycle_lane_counts(edges: pd.DataFrame, lanes: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Bike-only lanes to write (the rightmost): only on car edges with more lanes than that."""
    wanted = pd.to_numeric(_column(edges, "cycle_lanes"), errors="coerce").fillna(0).to_numpy(dtype=np.int64)
    return np.where((wanted > 0) & _flags(edges, "car") & (lanes > wanted), wanted, 0)


def _lane_children(bus_lanes: int, cycle_lanes: int = 0) -> str:
    """Lane elements: cycle lanes rightmost (index 0 up), then bus lanes; nothing when neither."""
    if not bus_lanes and not cycle_lanes:
        return " />\n"
    bikes = " ".join(VCLASSES["bike"])
    buses = " ".join(VCLASSES["bus"])
    children = "".join(f'    <lane index="{i}" allow="{bikes}" />\n' for i in range(cycle_lanes))
    children += "".join(
        f'    <lane index="{i}" allow="{buses}" />\n' for i in range(cycle_lanes, cycle_lanes + bus_lanes)
    )
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
