"""What lets a signal-less centre carry heavy traffic: driver impatience and how cars enter.

Impatience: how long a side-street car waits for a gap.

On the 3×3 grid built without traffic signals (as the twin's networks are where streets are slow:
netconvert guesses none), Main Street (``101_*``, primary, priority over the residential avenues)
carries one car every 3 s in each direction from 0 s, and one car crosses it from the south avenue
(``201_0``) to the north one (``201_1``), leaving at 30 s. Perfect drivers (``sigma`` 0, no speed
deviation) make the run deterministic. With SUMO's default ``--time-to-impatience`` of 180 s the
crossing car waits 138 s for a gap; with 30 s its impatience reaches 1 after 30 s of waiting, it
takes a gap the priority cars must brake for, and it waits 24 s.

Entering: every car is written to enter on the lane best for its route at its desired speed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import geopandas as gpd
import pytest

from civictwin.engines.traffic.network import build_sumo_network
from civictwin.engines.traffic.outputs import OutputFiles
from civictwin.engines.traffic.params import TrafficParams
from civictwin.engines.traffic.run import CarTrip, SimOptions, run_sumo, sumo_options, write_trips
from civictwin.errors import EngineError

Grid = tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]


def main_street_streams() -> list[CarTrip]:
    """One car every 3 s for 600 s, eastbound and westbound along Main Street."""
    directions = [("101_0", "101_1"), ("-101_1", "-101_0")]
    return [
        CarTrip(f"t{d}_{i:03d}", start, end, 3.0 * i)
        for d, (start, end) in enumerate(directions)
        for i in range(200)
    ]


@pytest.mark.parametrize(("impatience_s", "waiting_s"), [(180.0, 138.0), (30.0, 24.0)])
def test_a_side_street_car_waits_until_impatient(
    grid: Grid, tmp_path: Path, impatience_s: float, waiting_s: float
) -> None:
    edges, nodes = grid
    net = build_sumo_network(edges, nodes, tmp_path / "net", guess_signals=False)
    options = SimOptions(
        end_s=1800,
        time_to_impatience_s=impatience_s,
        driver_imperfection=0,
        speed_deviation=0,
    )
    trips = [*main_street_streams(), CarTrip("x", "201_0", "201_1", 30.0)]
    result = run_sumo(net, trips, seed=1, workdir=tmp_path / "run", options=options)
    crossing = result.trips[result.trips["trip_id"] == "x"]
    assert crossing["arrived"].tolist() == [True] and result.teleports == 0
    assert crossing["waiting_s"].tolist() == [pytest.approx(waiting_s, abs=1.0)]


def test_impatience_reaches_sumo_from_the_parameters(grid: Grid, tmp_path: Path) -> None:
    edges, nodes = grid
    net = build_sumo_network(edges, nodes, tmp_path / "net")
    default = sumo_options(net, TrafficParams().sim_options(), seed=1, files=OutputFiles(), n_trips=1)
    set_30 = sumo_options(
        net, TrafficParams(time_to_impatience_s=30).sim_options(), seed=1, files=OutputFiles(), n_trips=1
    )
    assert default["time-to-impatience"] == "180" and set_30["time-to-impatience"] == "30"
    # a junction blocker is never passed unless set (SUMO's default), then after the seconds set
    blocker = TrafficParams(ignore_junction_blocker_s=60).sim_options()
    assert "ignore-junction-blocker" not in default
    assert (
        sumo_options(net, blocker, seed=1, files=OutputFiles(), n_trips=1)["ignore-junction-blocker"] == "60"
    )
    with pytest.raises(EngineError, match="simulation options: ignore_junction_blocker_s: must be positive"):
        SimOptions(end_s=60, ignore_junction_blocker_s=0)


def test_cars_enter_on_their_best_lane_at_their_desired_speed(tmp_path: Path) -> None:
    trips = [CarTrip("t1", "a", "b", 5.0), CarTrip("t0", "a", "c", 0.0)]
    path = write_trips(trips, SimOptions(end_s=60), tmp_path / "trips.rou.xml")
    written = [t.attrib for t in ET.parse(path).getroot().iter("trip")]
    assert [(t["id"], t["departLane"], t["departSpeed"]) for t in written] == [
        ("t0", "best", "desired"),
        ("t1", "best", "desired"),
    ]
