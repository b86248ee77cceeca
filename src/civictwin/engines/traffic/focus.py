"""A microscopic focus area inside a mesoscopic city-wide run, by cutting the city's routes.

SUMO's documented way to study part of a large scenario in detail: simulate the whole city (here
mesoscopically, with every vehicle's route and the times it left each edge written out), cut the
network down to the focus area with netconvert (``--keep-edges.input-file``), cut every route to the
part inside the area with SUMO's ``tools/route/cutRoutes.py`` (a vehicle's new departure is the time
it entered the area in the city-wide run, from the route's exit times), and simulate the cut routes
microscopically on the cut network. A route that leaves the area and comes back becomes one route per
visit (``--disconnected-action keep``). The focus run keeps the routes the city-wide run chose (no
rerouting inside the area), so traffic entering the area is the city's, and only the area's queues,
junctions and lane changes are simulated in detail.

The focus area is a set of the twin's analysis zones; a SUMO edge belongs to it when one of the twin
edges it carries crosses one of their polygons.
"""

from __future__ import annotations

import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely

from civictwin.engines.traffic.kpis import FOCUS_KPI_UNITS
from civictwin.engines.traffic.network import SumoNetwork
from civictwin.engines.traffic.outputs import OutputFiles
from civictwin.engines.traffic.params import TrafficParams
from civictwin.engines.traffic.prepare import PreparedScenario
from civictwin.engines.traffic.sumo import run_binary, sumo_env, sumo_home
from civictwin.errors import EngineError

FOCUS_NET = "focus.net.xml"
FOCUS_ROUTES = "focus.rou.xml"
FOCUS_TRIPINFO = "focus.tripinfo.xml"
FOCUS_TYPES = "focus.types.xml"
CITY_CARS = "city.cars.rou.xml"
TRIPS_FILE = "trips.rou.xml"
"""The city run's trips, with the vehicle types (``run.write_trips``) its routes refer to."""
CUT_TOOL = Path("tools") / "route" / "cutRoutes.py"


@dataclass(frozen=True)
class FocusResult:
    """The microscopic focus run: one row per visit of the area (``trip_id`` as cut, ``depart_s`` the
    entry time in the city-wide run, ``duration_s``, ``time_loss_s``, ``route_length_m``, ``arrived``)."""

    trips: pd.DataFrame
    edges: frozenset[str]
    """The SUMO edges of the focus area."""
    wall_s: float
    """Seconds spent in netconvert, cutRoutes.py and sumo together."""


def focus_edges(network: SumoNetwork, edges: gpd.GeoDataFrame, area: shapely.Geometry) -> frozenset[str]:
    """The SUMO edges of ``network`` carrying a twin edge (``edges``: ``edge_id``, geometry in the
    network's coordinates) that crosses ``area``."""
    inside = edges[edges.geometry.intersects(area)]["edge_id"].astype(str)
    carried = inside[inside.isin(network.edge_ids)]
    chains = network.chains
    if len(chains) == 0:
        return frozenset(carried)
    sumo_edge = chains.set_index("edge_id")["sumo_edge"].astype(str)
    return frozenset(sumo_edge.reindex(carried).dropna())


def simulate_focus(
    network: SumoNetwork,
    city_run: Path,
    area_edges: frozenset[str],
    *,
    seed: int,
    end_s: float,
    workdir: Path,
) -> FocusResult:
    """Cut ``network`` and the routes of the city-wide run in ``city_run`` (its work folder, run with
    ``SimOptions.write_routes``) to ``area_edges``; simulate the cut routes microscopically, with the
    city run's vehicle types, ``seed``, until ``end_s`` (s)."""
    if not area_edges:
        raise EngineError("the focus area holds none of the simulated network's edges", field="focus_zones")
    workdir.mkdir(parents=True, exist_ok=True)
    keep = workdir / "focus.edges.txt"
    keep.write_text("\n".join(sorted(area_edges)) + "\n", encoding="utf-8")
    cut_net = run_binary(
        "netconvert",
        ["--sumo-net-file", network.net_file.resolve(), "--keep-edges.input-file", keep.name,
         "--output-file", FOCUS_NET, "--offset.disable-normalization", "true", "--no-warnings", "true"],
        step="cutting the network to the focus area",
        cwd=workdir,
    )  # fmt: skip
    city_routes = (city_run / OutputFiles().routes).resolve()
    if not city_routes.is_file():
        raise EngineError("the city-wide run wrote no routes (run it with write_routes)", path=city_routes)
    types = _write_types(city_run / TRIPS_FILE, workdir / FOCUS_TYPES)
    cars = _car_routes(city_routes, types, workdir / CITY_CARS)
    cut = _cut_routes(cars.resolve(), workdir)
    micro = run_binary(
        "sumo",
        ["--net-file", FOCUS_NET, "--route-files", f"{FOCUS_TYPES},{FOCUS_ROUTES}",
         "--tripinfo-output", FOCUS_TRIPINFO,
         "--tripinfo-output.write-unfinished", "true", "--end", f"{end_s:g}", "--seed", str(seed),
         "--ignore-route-errors", "true", "--no-step-log", "true", "--no-warnings", "true",
         "--duration-log.disable", "true"],
        step=f"simulating the focus area (seed {seed})",
        cwd=workdir,
    )  # fmt: skip
    return FocusResult(
        trips=read_tripinfo(workdir / FOCUS_TRIPINFO),
        edges=area_edges,
        wall_s=cut_net.wall_s + cut + micro.wall_s,
    )


def _write_types(trips: Path, path: Path) -> frozenset[str]:
    """The vehicle types and type distributions of the city run's car trips, alone, into ``path``;
    the ids of the car types."""
    root = ET.Element("routes")
    for element in ET.parse(trips).getroot():
        if element.tag in ("vType", "vTypeDistribution"):
            root.append(element)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return frozenset(t.get("id", "") for t in root.iter("vType"))


def _car_routes(routes: Path, car_types: frozenset[str], path: Path) -> Path:
    """The city run's vehroute output without its buses and bicycles (their own types and stops stay
    out of the focus run, whose KPIs are about cars), into ``path``."""
    root = ET.Element("routes")
    for vehicle in ET.parse(routes).getroot().iter("vehicle"):
        if vehicle.get("type") in car_types:
            root.append(vehicle)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def _cut_routes(city_routes: Path, workdir: Path) -> float:
    """Run SUMO's cutRoutes.py in ``workdir``; its wall time (s). Every route carries its exit times, so
    the tool needs no ``--orig-net`` (which it reads whole, minutes on a region-sized network, only to
    extrapolate entry times for routes without them)."""
    tool = sumo_home() / CUT_TOOL
    command = [sys.executable, str(tool), FOCUS_NET, str(city_routes),
               "--routes-output", FOCUS_ROUTES, "--disconnected-action", "keep"]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, cwd=workdir, env=sumo_env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise EngineError(f"cutRoutes.py failed (exit {done.returncode}): {last}", field="focus area")
    return time.perf_counter() - start


def read_tripinfo(path: Path) -> pd.DataFrame:
    """One row per vehicle of a tripinfo XML file written with ``write-unfinished``."""
    rows = []
    for info in ET.parse(path).getroot().iter("tripinfo"):
        arrival = float(info.get("arrival", "-1"))
        rows.append({
            "trip_id": info.get("id", ""),
            "depart_s": float(info.get("depart", "nan")),
            "duration_s": float(info.get("duration", "nan")),
            "time_loss_s": float(info.get("timeLoss", "nan")),
            "route_length_m": float(info.get("routeLength", "nan")),
            "arrived": arrival >= 0,
        })  # fmt: skip
    columns = ["trip_id", "depart_s", "duration_s", "time_loss_s", "route_length_m", "arrived"]
    return pd.DataFrame(rows, columns=columns).sort_values("trip_id", ignore_index=True)


def focus_kpis(result: FocusResult) -> dict[str, float]:
    """The focus area's KPIs from its microscopic run, named ``focus_*`` so they never mix with the
    city-wide (mesoscopic) ones: visits of the area, mean time inside it (s), total delay inside it
    (vehicle-hours of time lost against driving at the desired speed), vehicle-km inside it."""
    done = result.trips[result.trips["arrived"]]
    values = {
        "focus_trips": float(len(result.trips)),
        "focus_unfinished": float(len(result.trips) - len(done)),
        "focus_mean_travel_time_s": float(done["duration_s"].mean()) if len(done) else 0.0,
        "focus_total_delay_h": float(done["time_loss_s"].sum() / 3600.0),
        "focus_vehicle_km": float(done["route_length_m"].sum() / 1000.0),
    }
    assert set(values) == set(FOCUS_KPI_UNITS)
    return values


def focus_area(prepared: PreparedScenario) -> shapely.Geometry:
    """The union of the scenario's ``focus_zones`` polygons; EngineError naming any zone the twin lacks."""
    wanted = [str(z) for z in prepared.params.focus_zones]
    zones = prepared.zones.assign(zone_id=prepared.zones["zone_id"].astype(str))
    missing = sorted(set(wanted) - set(zones["zone_id"]))
    if missing:
        raise EngineError(
            f"zone(s) {', '.join(missing[:5])} are not analysis zones of the twin", field="focus_zones"
        )
    return shapely.union_all(zones[zones["zone_id"].isin(wanted)].geometry.to_numpy())


def focus_seed_kpis(
    prepared: PreparedScenario, city_run: Path, *, seed: int, workdir: Path
) -> dict[str, float]:
    """The focus area's ``focus_*`` KPIs for one seed, from the last city-wide run in ``city_run``."""
    area = focus_edges(prepared.network, prepared.edges, focus_area(prepared))
    end_s = prepared.params.sim_options().end_s
    return focus_kpis(
        simulate_focus(prepared.network, city_run, area, seed=seed, end_s=end_s, workdir=workdir)
    )


def simulation_levels(params: TrafficParams) -> str:
    """Which SUMO model each group of KPIs comes from, in words (for the report's notes)."""
    city = "mesoscopic" if params.mesoscopic else "microscopic"
    text = f"City-wide KPIs from SUMO's {city} model"
    if params.focus_zones:
        zones = ", ".join(str(z) for z in params.focus_zones)
        text += f"; focus_* KPIs from a microscopic run of zone(s) {zones} on the city run's traffic entering them"
    return text + "."
