"""Apply a scenario's traffic interventions to the twin's directed network, keeping every edge id.

The result, :class:`ModifiedNetwork`, is plain data: the modified edge table, the extra pieces the
engine must build (timed closures, modal filters), a change log for the report, the edges drivable in
the connected car network (and those only leading into or out of it, where gateway traffic enters and
leaves), and the demand-side interventions passed through untouched. Interventions
of other engines' types are skipped. Nothing here knows about SUMO: modes are the twin's (``car``,
``bus``, ``bike``, ``walk``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components

from civictwin.engines.traffic.interventions import (
    BusLane,
    CloseStreets,
    CycleLane,
    DemandIntervention,
    ModalFilter,
    Mode,
    OneWay,
    Pedestrianise,
    Reverse,
    ScaleDemand,
    SpeedLimit,
    TransitFrequency,
    TransitLine,
    WorksClosure,
)
from civictwin.engines.traffic.transit import BusSettings, LineError, line_stops
from civictwin.errors import ScenarioError
from civictwin.scenarios.selection import nearest_node, resolve_intervention
from civictwin.scenarios.spec import Scenario, intervention_label

MODES = ("car", "bus", "bike", "walk")
_CHANGE_COLUMNS = ["intervention", "type", "edge_id", "attribute", "before", "after"]


@dataclass(frozen=True)
class TimedClosure:
    """Edges closed to some modes between two simulation times (roadworks); built as SUMO rerouters."""

    closure_id: str
    edges: tuple[str, ...]
    begin_s: float
    end_s: float
    modes: tuple[str, ...]


@dataclass(frozen=True)
class FilteredNode:
    """A node through which the given modes may not pass (a modal filter); U-turns stay possible."""

    node_id: int
    modes: tuple[str, ...] = ("car", "bus")


Additional = TimedClosure | FilteredNode


@dataclass
class ModifiedNetwork:
    """A scenario applied to the network: same edge ids, changed attributes, and what else to build."""

    scenario: str
    edges: gpd.GeoDataFrame
    additionals: list[Additional]
    changes: pd.DataFrame
    car_edges: frozenset[str]
    demand: list[DemandIntervention] = field(default_factory=list)
    car_entries: frozenset[str] = frozenset()
    """Car edges outside ``car_edges`` that lead into them: where a gateway's inbound trips may start."""
    car_exits: frozenset[str] = frozenset()
    """Car edges outside ``car_edges`` they lead to: where a gateway's outbound trips may end."""

    @property
    def filtered_nodes(self) -> list[FilteredNode]:
        """The modal filters among the additionals."""
        return [a for a in self.additionals if isinstance(a, FilteredNode)]

    @property
    def closures(self) -> list[TimedClosure]:
        """The timed closures among the additionals."""
        return [a for a in self.additionals if isinstance(a, TimedClosure)]


@dataclass
class _State:
    """The network being modified plus what was recorded so far."""

    edges: gpd.GeoDataFrame
    original: gpd.GeoDataFrame
    scenario: Scenario
    crs: str
    additionals: list[Additional] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    demand: list[DemandIntervention] = field(default_factory=list)

    def set(self, index: int, ids: list[str], column: str, value: Any) -> None:
        """Set ``column`` to ``value`` on edges ``ids``, logging each real change."""
        rows = self.edges.index[self.edges["edge_id"].isin(ids)]
        kind = self.scenario.interventions[index].type
        for row in rows:
            before = self.edges.at[row, column]
            if _same(before, value):
                continue
            self.edges.at[row, column] = value
            self.log(index, kind, str(self.edges.at[row, "edge_id"]), column, before, value)

    def log(
        self, index: int, kind: str, edge_id: str | None, attribute: str, before: Any, after: Any
    ) -> None:
        """Record one change for the report."""
        self.changes.append(
            {
                "intervention": index,
                "type": kind,
                "edge_id": edge_id,
                "attribute": attribute,
                "before": _plain(before),
                "after": _plain(after),
            }
        )

    def fail(self, index: int, message: str) -> ScenarioError:
        """A ScenarioError naming the file and the intervention."""
        label = intervention_label(index, self.scenario.interventions[index])
        return ScenarioError(message, path=self.scenario.origin, field=label)


def apply_interventions(
    edges: gpd.GeoDataFrame, scenario: Scenario, *, crs: str, zones: gpd.GeoDataFrame | None = None
) -> ModifiedNetwork:
    """Apply ``scenario``'s interventions, in file order, to a copy of ``edges`` (same edge ids).

    ``edges`` follows the ``network_edges`` contract (docs/data-model.md) in the metric ``crs``. Adds
    ``bus`` (defaults to ``car``) and ``bus_lanes`` (0) columns. With ``zones`` (``zone_id`` + polygon),
    raises :class:`ScenarioError` naming the zones cars could reach before but not after. Timed closures
    count as closed for ``car_edges`` and this check: the network must work while they are in force.
    """
    original = prepare_edges(edges)
    state = _State(edges=original.copy(), original=original, scenario=scenario, crs=crs)
    for index, intervention in enumerate(scenario.interventions):
        handler = _HANDLERS.get(type(intervention))
        if handler is not None:  # other engines' interventions are theirs to apply
            handler(state, index, intervention)
    car_edges, entries, exits = car_network_parts(_worst_moment(state), filtered_nodes=_filtered_nodes(state))
    if zones is not None and any(type(i) in _HANDLERS for i in scenario.interventions):
        _check_zones(state, car_edges, zones)
    changes = pd.DataFrame(state.changes, columns=_CHANGE_COLUMNS)
    return ModifiedNetwork(
        scenario.name,
        state.edges,
        state.additionals,
        changes,
        car_edges,
        state.demand,
        car_entries=entries,
        car_exits=exits,
    )


def prepare_edges(edges: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A copy with the columns interventions write: ``bus`` (= ``car``), ``bus_lanes`` and
    ``cycle_lanes`` (0)."""
    missing = [
        c for c in ("edge_id", "from_node", "to_node", "car", "bike", "walk", "geometry") if c not in edges
    ]
    if missing:
        raise ScenarioError(f"network edges lack column(s) {', '.join(missing)}", field="network_edges")
    out = edges.copy()
    out["edge_id"] = out["edge_id"].astype(str)
    for column in ("car", "bike", "walk"):
        out[column] = out[column].fillna(False).astype(bool)
    out["bus"] = out["bus"].fillna(False).astype(bool) if "bus" in out else out["car"]
    out["bus_lanes"] = out["bus_lanes"].fillna(0).astype(int) if "bus_lanes" in out else 0
    out["cycle_lanes"] = out["cycle_lanes"].fillna(0).astype(int) if "cycle_lanes" in out else 0
    out["lanes"] = out["lanes"].astype(float) if "lanes" in out else 1.0
    out["speed_kmh"] = out["speed_kmh"].astype(float) if "speed_kmh" in out else 50.0
    return out


def car_connected_edges(
    edges: gpd.GeoDataFrame, *, filtered_nodes: list[int] | tuple[int, ...] = ()
) -> frozenset[str]:
    """Car edges in the largest strongly connected part of the car network.

    Connectivity is computed on the line graph (edge → following edge) so that modal filters, which
    forbid passing through a node but allow turning round, are respected.
    """
    ids, graph = _car_line_graph(edges, filtered_nodes)
    if not len(ids):
        return frozenset()
    return frozenset(ids[_largest_strong_part(graph)].tolist())


def car_network_parts(
    edges: gpd.GeoDataFrame, *, filtered_nodes: list[int] | tuple[int, ...] = ()
) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """The car edges of the largest strongly connected part (:func:`car_connected_edges`), and those
    outside it that lead into it (**entries**) and that it leads to (**exits**), from one line graph.

    A trip cannot start and end on an entry or exit both (no way back), but a trip from outside may
    start on an entry and one leaving the area may end on an exit: a one-way road where the area's
    boundary cuts it (a one-way arterial feeding a bridge, say) is such an edge, and it carries
    traffic in or out.
    """
    ids, graph = _car_line_graph(edges, filtered_nodes)
    if not len(ids):
        return frozenset(), frozenset(), frozenset()
    inside = _largest_strong_part(graph)
    exits = _reached_from(graph, inside) & ~inside
    entries = _reached_from(graph.T.tocsr(), inside) & ~inside
    return frozenset(ids[inside].tolist()), frozenset(ids[entries].tolist()), frozenset(ids[exits].tolist())


def _car_line_graph(
    edges: gpd.GeoDataFrame, filtered_nodes: list[int] | tuple[int, ...]
) -> tuple[np.ndarray, csr_matrix]:
    """The car edges' ids and their line graph (edge ``i`` → edge ``j`` that starts where ``i`` ends),
    without passing straight through a node with a modal filter."""
    car = edges[edges["car"].astype(bool)]
    n = len(car)
    ids = car["edge_id"].astype(str).to_numpy()
    heads = pd.DataFrame(
        {"i": np.arange(n), "node": car["to_node"].to_numpy(), "back": car["from_node"].to_numpy()}
    )
    tails = pd.DataFrame(
        {"j": np.arange(n), "node": car["from_node"].to_numpy(), "far": car["to_node"].to_numpy()}
    )
    pairs = heads.merge(tails, on="node")
    through_filter = pairs["node"].isin(list(filtered_nodes)) & (pairs["far"] != pairs["back"])
    pairs = pairs[~through_filter]
    return ids, csr_matrix((np.ones(len(pairs)), (pairs["i"], pairs["j"])), shape=(n, n))


def _largest_strong_part(graph: csr_matrix) -> np.ndarray:
    """Which nodes of ``graph`` lie in its largest strongly connected component."""
    _, labels = connected_components(graph, directed=True, connection="strong")
    inside: np.ndarray = labels == np.bincount(labels).argmax()
    return inside


def _reached_from(graph: csr_matrix, start: np.ndarray) -> np.ndarray:
    """Which nodes of ``graph`` a path from any node flagged in ``start`` reaches (those included):
    one breadth-first search from an added source node (index 0) with an arc to each start."""
    n = graph.shape[0]
    starts = np.flatnonzero(start)
    source = csr_matrix(
        (np.ones(len(starts)), (np.zeros(len(starts), dtype=int), starts + 1)), shape=(1, n + 1)
    )
    shifted = sp.hstack([csr_matrix((n, 1)), graph])
    order = breadth_first_order(
        sp.vstack([source, shifted]).tocsr(), 0, directed=True, return_predecessors=False
    )
    reached = np.zeros(n, dtype=bool)
    reached[np.asarray(order)[1:] - 1] = True
    return reached


def _filtered_nodes(state: _State) -> list[int]:
    return [a.node_id for a in state.additionals if isinstance(a, FilteredNode) and "car" in a.modes]


def _worst_moment(state: _State) -> gpd.GeoDataFrame:
    """The car network while every timed closure is in force (trips must not start or end there)."""
    closed = {
        e for a in state.additionals if isinstance(a, TimedClosure) and "car" in a.modes for e in a.edges
    }
    if not closed:
        return state.edges
    worst = state.edges.copy()
    worst.loc[worst["edge_id"].isin(closed), "car"] = False
    return worst


def _close(state: _State, index: int, spec: CloseStreets) -> None:
    ids = resolve_intervention(state.edges, state.scenario, index, crs=state.crs)
    for mode in _expand(spec.modes):
        state.set(index, ids, mode, False)


def _one_way(state: _State, index: int, spec: OneWay) -> None:
    ids = resolve_intervention(state.edges, state.scenario, index, crs=state.crs)
    drop_reverse = spec.keep == "forward"
    drop = [i for i in ids if i.startswith("-") == drop_reverse]
    for mode in ("car", "bus"):
        state.set(index, drop, mode, False)


def _reverse(state: _State, index: int, spec: Reverse) -> None:
    ids = resolve_intervention(state.edges, state.scenario, index, crs=state.crs)
    frame = state.edges.set_index("edge_id", drop=False)
    driven = [i for i in ids if bool(frame.at[i, "car"])]
    if not driven:
        raise state.fail(index, "none of the selected edges is open to cars, so there is nothing to reverse")
    two_way = sorted(i for i in driven if _twin(i) in frame.index and bool(frame.at[_twin(i), "car"]))
    if two_way:
        raise state.fail(index, f"edge(s) {', '.join(two_way[:5])} are two-way for cars; use one_way instead")
    for edge_id in driven:
        twin = _twin(edge_id)
        if twin in frame.index:
            _move_car_to_twin(state, index, edge_id, twin)
        else:
            _turn_round(state, index, edge_id)


def _move_car_to_twin(state: _State, index: int, edge_id: str, twin: str) -> None:
    """Cars leave ``edge_id`` and use its opposite-direction twin (taking over lanes and speed)."""
    row = state.edges.index[state.edges["edge_id"] == edge_id][0]
    state.set(index, [twin], "lanes", state.edges.at[row, "lanes"])
    state.set(index, [twin], "speed_kmh", state.edges.at[row, "speed_kmh"])
    state.set(index, [twin], "bus", bool(state.edges.at[row, "bus"]))
    state.set(index, [twin], "car", True)
    state.set(index, [edge_id], "car", False)
    state.set(index, [edge_id], "bus", False)


def _turn_round(state: _State, index: int, edge_id: str) -> None:
    """An edge without a twin keeps its id and turns round: from/to swap, geometry reversed."""
    row = state.edges.index[state.edges["edge_id"] == edge_id][0]
    start, end = state.edges.at[row, "from_node"], state.edges.at[row, "to_node"]
    state.edges.at[row, "from_node"] = end
    state.edges.at[row, "to_node"] = start
    state.edges.at[row, "geometry"] = shapely.reverse(state.edges.at[row, "geometry"])
    state.log(index, "reverse", edge_id, "from_node/to_node", f"{start}->{end}", f"{end}->{start}")


def _speed(state: _State, index: int, spec: SpeedLimit) -> None:
    ids = resolve_intervention(state.edges, state.scenario, index, crs=state.crs)
    if spec.only_lower:
        frame = state.edges[state.edges["edge_id"].isin(ids)]
        ids = frame.loc[frame["speed_kmh"].isna() | (frame["speed_kmh"] > spec.speed_kmh), "edge_id"].tolist()
    state.set(index, ids, "speed_kmh", float(spec.speed_kmh))


def _bus_lane(state: _State, index: int, spec: BusLane) -> None:
    ids = resolve_intervention(state.edges, state.scenario, index, crs=state.crs)
    frame = state.edges[state.edges["edge_id"].isin(ids) & state.edges["car"]]
    lanes = frame["lanes"].fillna(1).clip(lower=1)
    fits = lanes > spec.lanes + frame["cycle_lanes"]
    for edge_id, n in zip(frame.loc[~fits, "edge_id"], lanes[~fits], strict=True):
        state.log(index, spec.type, edge_id, "skipped", None, f"only {int(n)} lane(s)")
    if not fits.any():
        raise state.fail(index, f"no selected car edge has more than {spec.lanes} lane(s) to convert")
    chosen = frame.loc[fits, "edge_id"].tolist()
    state.set(index, chosen, "bus", True)
    state.set(index, chosen, "bus_lanes", spec.lanes)


def _cycle_lane(state: _State, index: int, spec: CycleLane) -> None:
    """Open the edges to bikes; with ``from_cars`` take the rightmost car lane where one can go."""
    ids = resolve_intervention(state.edges, state.scenario, index, crs=state.crs)
    frame = state.edges[state.edges["edge_id"].isin(ids)]
    if spec.from_cars:
        driven = frame[frame["car"]]
        lanes = driven["lanes"].fillna(1).clip(lower=1)
        fits = lanes > 1 + driven["bus_lanes"]
        for edge_id, n in zip(driven.loc[~fits, "edge_id"], lanes[~fits], strict=True):
            state.log(index, spec.type, edge_id, "skipped", None, f"only {int(n)} lane(s) for cars")
        if not fits.any():
            raise state.fail(index, "no selected car edge has a lane to spare for a cycle lane")
        chosen = driven.loc[fits, "edge_id"].tolist()
        state.set(index, chosen, "cycle_lanes", 1)
        state.set(index, chosen, "bike", True)
        return
    barred = frame.loc[~frame["bike"], "edge_id"].tolist()
    if not barred:
        raise state.fail(
            index, "every selected edge is already open to bikes: a separate track changes nothing here"
        )
    state.set(index, barred, "bike", True)


def _transit_line(state: _State, index: int, spec: TransitLine) -> None:
    """Check that the line's stops lie on streets open to buses and join up; the line runs with the
    buses (:mod:`~civictwin.engines.traffic.transit`)."""
    try:
        line_stops(spec, index, state.edges, BusSettings(), crs=state.crs)
    except LineError as exc:
        raise state.fail(index, str(exc)) from None
    state.demand.append(spec)
    state.log(index, spec.type, None, "line", None, spec.describe())


def _modal_filter(state: _State, index: int, spec: ModalFilter) -> None:
    try:
        node = nearest_node(state.edges[state.edges["car"]], spec.at, spec.radius_m, crs=state.crs)
    except ScenarioError as exc:
        raise state.fail(index, exc.message) from None
    state.additionals.append(FilteredNode(node_id=node))
    state.log(index, spec.type, None, "node", None, node)


def _pedestrianise(state: _State, index: int, spec: Pedestrianise) -> None:
    ids = resolve_intervention(state.edges, state.scenario, index, crs=state.crs)
    state.set(index, ids, "car", False)
    state.set(index, ids, "bus", False)
    state.set(index, ids, "walk", True)
    state.set(index, ids, "bike", spec.allow_bikes)


def _works(state: _State, index: int, spec: WorksClosure) -> None:
    ids = resolve_intervention(state.edges, state.scenario, index, crs=state.crs)
    closure = TimedClosure(f"works_{index}", tuple(ids), spec.begin_s, spec.end_s, tuple(_expand(spec.modes)))
    state.additionals.append(closure)
    window = f"closed {spec.begin_s:g}-{spec.end_s:g} s to {', '.join(closure.modes)}"
    for edge_id in ids:
        state.log(index, spec.type, edge_id, "timed_closure", None, window)


def _demand(state: _State, _index: int, spec: TransitFrequency | ScaleDemand) -> None:
    state.demand.append(spec)


_HANDLERS: dict[type, Callable[[_State, int, Any], None]] = {
    CloseStreets: _close,
    OneWay: _one_way,
    Reverse: _reverse,
    SpeedLimit: _speed,
    BusLane: _bus_lane,
    CycleLane: _cycle_lane,
    TransitLine: _transit_line,
    ModalFilter: _modal_filter,
    Pedestrianise: _pedestrianise,
    WorksClosure: _works,
    TransitFrequency: _demand,
    ScaleDemand: _demand,
}


def validate_scenario(scenario: Scenario, edges: gpd.GeoDataFrame, *, crs: str) -> list[str]:
    """Every problem with ``scenario``'s traffic interventions on this network, one line each (empty:
    valid).

    Each selection is resolved on its own so that all bad selections are listed; then the whole
    scenario is applied, which finds problems that only appear in combination (no lane left for a bus
    lane, a reversal of a two-way street).
    """
    problems: list[str] = []
    for index, intervention in enumerate(scenario.interventions):
        if type(intervention) not in _HANDLERS:
            continue
        try:
            resolve_intervention(edges, scenario, index, crs=crs)
        except ScenarioError as exc:
            problems.append(exc.user_message())
    if problems:
        return problems
    try:
        apply_interventions(edges, scenario, crs=crs)
    except ScenarioError as exc:
        problems.append(exc.user_message())
    return problems


def _check_zones(state: _State, car_edges: frozenset[str], zones: gpd.GeoDataFrame) -> None:
    """Raise when a zone reachable by car in the baseline is not reachable after the interventions."""
    baseline_edges = car_connected_edges(state.original)
    mid = gpd.GeoDataFrame(
        {"edge_id": state.edges["edge_id"]},
        geometry=shapely.line_interpolate_point(state.edges.geometry.to_numpy(), 0.5, normalized=True),
        crs=state.edges.crs,
    )
    joined = gpd.sjoin(mid, zones[["zone_id", "geometry"]], predicate="within")
    before = set(joined.loc[joined["edge_id"].isin(baseline_edges), "zone_id"])
    after = set(joined.loc[joined["edge_id"].isin(car_edges), "zone_id"])
    lost = sorted(before - after, key=str)
    if lost:
        shown = ", ".join(map(str, lost[:10])) + (f" and {len(lost) - 10} more" if len(lost) > 10 else "")
        raise ScenarioError(
            f"the interventions leave zone(s) {shown} unreachable by car",
            path=state.scenario.origin,
            field="interventions",
        )


def _expand(modes: list[Mode]) -> list[str]:
    return list(MODES) if "all" in modes else [m for m in MODES if m in modes]


def _twin(edge_id: str) -> str:
    return edge_id[1:] if edge_id.startswith("-") else f"-{edge_id}"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _plain(value: Any) -> Any:
    """numpy scalars as Python values so the change log serialises cleanly."""
    return value.item() if isinstance(value, np.generic) else value
