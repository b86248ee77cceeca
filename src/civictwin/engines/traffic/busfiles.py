"""A bus service as SUMO input: ``busStop`` additionals and one ``trip`` per run with its stops.

Each run departs with its front at the end of its first stop and arrives at the end of its last;
SUMO routes it through its stops (the fastest path at departure) and, having no rerouting device
(``has.rerouting.device`` false on its type), keeps that route: a line does not wander off to avoid
traffic as cars do. Stops lie on the lane a bus may use: the first lane left of any cycle lane, which
is the bus lane where there is one. Vehicle ids are the runs' (``pt…``, ``new…``), never a car's
(``t…``, ``e…``, ``g…``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from civictwin.engines.traffic.transit import BusService, BusSettings

BUS_TYPE = "pt_bus"

BUS_PREFIXES = ("pt", "new")
"""How the ids of simulated transit runs begin (GTFS runs, new lines' runs)."""


@dataclass(frozen=True)
class BusPlan:
    """What a SUMO run needs to simulate buses: the service, how, and the cycle lanes per twin edge
    (a stop goes on the first lane left of them)."""

    service: BusService
    settings: BusSettings
    cycle_lanes: Mapping[str, int]


@dataclass(frozen=True)
class BusFiles:
    """The written inputs of one run's buses: additional (stops) and route (runs) files."""

    stops: Path
    routes: Path
    lines: Mapping[str, str]
    """Line of each run id."""
    departs: Mapping[str, float]
    """Scheduled departure (s) of each run id."""
    ends: Mapping[str, tuple[str, str]]
    """Twin edges of each run's first and last stop (where it starts and ends)."""


def is_bus(trip_ids: pd.Series) -> pd.Series:
    """Which ids are simulated transit runs."""
    return trip_ids.astype(str).str.match(r"^(pt|new)\d")


def write_bus_files(
    service: BusService,
    settings: BusSettings,
    workdir: Path,
    *,
    chains: pd.DataFrame | None = None,
    cycle_lanes: Mapping[str, int] | None = None,
) -> BusFiles:
    """Write ``busstops.add.xml`` and ``buses.rou.xml`` into ``workdir`` for ``service``.

    ``chains`` (:attr:`~civictwin.engines.traffic.network.SumoNetwork.chains`) places each twin edge
    on its SUMO edge; ``cycle_lanes`` (twin edge id → cycle lanes written) moves a stop left of them.
    """
    places = _places(chains)
    lanes = cycle_lanes or {}
    spans: dict[str, tuple[str, float, float]] = {}
    root = ET.Element("additional")
    for stop in service.stops:
        sumo_edge, offset, sumo_length = places.get(stop.edge_id, (stop.edge_id, 0.0, None))
        start, end = _span(offset + stop.pos_m, stop.length_m, sumo_length)
        spans[stop.stop_id] = (sumo_edge, start, end)
        ET.SubElement(
            root,
            "busStop",
            id=stop.stop_id,
            lane=f"{sumo_edge}_{lanes.get(stop.edge_id, 0)}",
            startPos=f"{start:.2f}",
            endPos=f"{end:.2f}",
            friendlyPos="true",
        )
    edge_of = {stop.stop_id: stop.edge_id for stop in service.stops}
    stops_path = workdir / "busstops.add.xml"
    _write_xml(root, stops_path)
    routes = ET.Element("routes")
    vtype = ET.SubElement(routes, "vType", id=BUS_TYPE, vClass="bus")
    ET.SubElement(vtype, "param", key="has.rerouting.device", value="false")
    for run in sorted(service.runs, key=lambda r: (r.depart_s, r.run_id)):
        first, last = spans[run.stops[0]], spans[run.stops[-1]]
        attributes = {
            "id": run.run_id,
            "type": BUS_TYPE,
            "depart": f"{run.depart_s:.2f}",
            "from": first[0],
            "to": last[0],
            "departPos": f"{first[2]:.2f}",
            "arrivalPos": f"{last[2]:.2f}",
            "line": run.line,
        }
        trip = ET.SubElement(routes, "trip", attributes)
        for stop_id in run.stops:
            ET.SubElement(trip, "stop", busStop=stop_id, duration=f"{settings.stop_duration_s:g}")
    routes_path = workdir / "buses.rou.xml"
    _write_xml(routes, routes_path)
    return BusFiles(
        stops_path,
        routes_path,
        {run.run_id: run.line for run in service.runs},
        {run.run_id: run.depart_s for run in service.runs},
        {run.run_id: (edge_of[run.stops[0]], edge_of[run.stops[-1]]) for run in service.runs},
    )


def _span(centre_m: float, length_m: float, edge_length_m: float | None) -> tuple[float, float]:
    """A stop's start and end on its lane: ``length_m`` long around ``centre_m``, kept on the lane."""
    end = max(centre_m + length_m / 2.0, length_m)
    if edge_length_m is not None:
        end = min(end, edge_length_m)
    return max(0.0, end - length_m), end


def _places(chains: pd.DataFrame | None) -> dict[str, tuple[str, float, float | None]]:
    if chains is None or len(chains) == 0:
        return {}
    return {
        str(edge): (str(sumo), float(start), float(total))
        for edge, sumo, start, total in zip(
            chains["edge_id"], chains["sumo_edge"], chains["start_m"], chains["sumo_length_m"], strict=True
        )
    }


def _write_xml(root: ET.Element, path: Path) -> None:
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
