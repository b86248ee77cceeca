"""A microscopic focus area inside a mesoscopic run, on the 3 × 3 grid (200 m blocks).

The focus area is a box around the east half of Main Street (``101_1``/``-101_1``, 200 m at 50 km/h).
Ten trips from the west column to the east column take Main Street (``200_0 → 101_0 → 101_1 →
202_1``), so all ten enter the area; five trips along the south street (``100_0 → 100_1``) never do.
With no traffic lights, every driver keeping the limit and no dawdling, a car enters the area at its departure plus the
time to drive the rest of ``200_0`` (200 m less the 5.1 m it starts in, at 30 km/h: 23.4 s) and
``101_0`` (200 m at 50 km/h: 14.4 s), 37.8 s in all, and crosses it in 200 m / 13.9 m/s = 14.4 s.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from civictwin.engines.traffic.focus import focus_edges, focus_kpis, simulate_focus
from civictwin.engines.traffic.network import build_sumo_network
from civictwin.engines.traffic.outputs import OutputFiles
from civictwin.engines.traffic.run import CarTrip, SimOptions, run_sumo
from civictwin.errors import EngineError

Grid = tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]
AREA = shapely.box(385_250, 6_671_150, 385_350, 6_671_250)  # around 101_1's middle, off every other street
MAIN = [CarTrip(f"t{i:02d}", "200_0", "202_1", 10.0 * i) for i in range(10)]
BIKE = CarTrip(
    "bk00", "200_0", "202_1", 200.0
)  # a bicycle along Main Street after the cars: not in the focus run
SOUTH = [CarTrip(f"s{i:02d}", "100_0", "100_1", 5.0 + 10.0 * i) for i in range(5)]
OPTIONS = SimOptions(end_s=1800, mesoscopic=True, write_routes=True, speed_deviation=0, driver_imperfection=0)
ENTRY_S = (200 - 5.1) / (30 / 3.6) + 200 / (50 / 3.6)


def _exit_times(routes: Path, edge: str) -> dict[str, float]:
    """Per vehicle of a vehroute output, when it left ``edge``."""
    left = {}
    for vehicle in ET.parse(routes).getroot().iter("vehicle"):
        route = vehicle.find("route")
        assert route is not None
        edges, exits = route.get("edges", "").split(), route.get("exitTimes", "").split()
        if edge in edges:
            left[vehicle.get("id", "")] = float(exits[edges.index(edge)])
    return left


def test_trips_entering_the_focus_area_are_simulated_from_their_entry_times(
    grid: Grid, tmp_path: Path
) -> None:
    edges, nodes = grid
    network = build_sumo_network(edges, nodes, tmp_path / "net", guess_signals=False)
    city = run_sumo(network, MAIN + SOUTH, seed=1, workdir=tmp_path / "city", options=OPTIONS, bikes=[BIKE])
    assert city.trips["arrived"].all()
    assert BIKE.trip_id in _exit_times(tmp_path / "city" / OutputFiles().routes, "101_1")  # through the area
    area = focus_edges(network, edges, AREA)
    assert area == {"101_1", "-101_1"}
    routes = tmp_path / "city" / OutputFiles().routes
    focus = simulate_focus(network, tmp_path / "city", area, seed=1, end_s=1800, workdir=tmp_path / "focus")
    trips = focus.trips.set_index("trip_id")
    assert sorted(trips.index) == [t.trip_id for t in MAIN]
    entered = _exit_times(routes, "101_0")
    for trip in MAIN:
        assert trips.loc[trip.trip_id, "depart_s"] == pytest.approx(entered[trip.trip_id], abs=0.01)
        assert trips.loc[trip.trip_id, "depart_s"] == pytest.approx(trip.depart_s + ENTRY_S, abs=3.0)
    kpis = focus_kpis(focus)
    assert (kpis["focus_trips"], kpis["focus_unfinished"]) == (10.0, 0.0)
    assert kpis["focus_mean_travel_time_s"] == pytest.approx(200 / (50 / 3.6), abs=3.0)
    assert kpis["focus_vehicle_km"] == pytest.approx(10 * 0.2, abs=0.1)


def test_an_area_off_the_network_is_refused(grid: Grid, tmp_path: Path) -> None:
    edges, nodes = grid
    network = build_sumo_network(edges, nodes, tmp_path / "net")
    far = focus_edges(network, edges, shapely.box(0, 0, 10, 10))
    with pytest.raises(EngineError, match="the focus area holds none of the simulated network's edges"):
        simulate_focus(network, tmp_path / "none", far, seed=1, end_s=60, workdir=tmp_path / "focus")
