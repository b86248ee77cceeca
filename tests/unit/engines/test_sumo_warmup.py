"""A warm-up before the analysed period: SUMO runs it first, and nothing in it is counted or reported.

On the 3×3 grid (200 m blocks, Main Street ``101_*`` in the middle) eleven trips cross west to east
along Main Street, ten at 0, 10, …, 90 s and one at 590 s. With a 600 s warm-up the warm-up replays
all eleven (each departs before 600 s) and the window's trips leave at 600 + their time. A crossing
takes well under 300 s (the run test's ten trips are done by 400 s), so of the warm-up trips only the
one leaving at 590 s is on Main Street after 600 s: the counting point sees the eleven window trips
and that one, 12.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest

from civictwin.engines.traffic.network import build_sumo_network
from civictwin.engines.traffic.outputs import OutputFiles
from civictwin.engines.traffic.params import TrafficParams, load_params
from civictwin.engines.traffic.run import CarTrip, SimOptions, run_sumo, shifted, write_output_definitions
from civictwin.engines.traffic.warmup import WARMUP_PREFIX, original_id, warmup_trips
from civictwin.errors import ConfigError, EngineError

Grid = tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]
COUNTED = "101_1"


def crossing_trips() -> list[CarTrip]:
    """Ten trips 10 s apart from 0 s and one at 590 s, west column to east column along Main Street."""
    times = [10.0 * i for i in range(10)] + [590.0]
    return [CarTrip(f"t{i:02d}", "200_0", "202_1", t) for i, t in enumerate(times)]


def test_warmup_trips_replay_the_first_seconds_and_shifted_moves_the_window() -> None:
    trips = crossing_trips()
    replay = warmup_trips(trips, warmup_s=50.0)
    assert [(t.trip_id, t.depart_s) for t in replay] == [(f"wt{i:02d}", 10.0 * i) for i in range(5)]
    assert warmup_trips(trips, warmup_s=0.0) == []
    assert [t.depart_s for t in shifted(trips[:2], by_s=600.0)] == [600.0, 610.0]
    assert original_id("wt03") == "t03" and original_id("g0_1_2") == "g0_1_2"
    assert WARMUP_PREFIX == "w"


def test_warmup_is_simulated_but_neither_counted_nor_reported(grid: Grid, tmp_path: Path) -> None:
    edges, nodes = grid
    net = build_sumo_network(edges, nodes, tmp_path / "net", count_edges=[COUNTED])
    trips = crossing_trips()
    options = SimOptions(end_s=1800, count_edges=(COUNTED,), count_passages=True, warmup_s=600)
    result = run_sumo(
        net,
        trips,
        seed=1,
        workdir=tmp_path / "run",
        options=options,
        warmup=warmup_trips(trips, warmup_s=600.0),
    )
    assert result.loaded == 22 and result.teleports == 0
    # the trips given, in window time; the warm-up's are in no KPI
    assert sorted(result.trips["trip_id"]) == [t.trip_id for t in trips]
    assert result.trips["arrived"].all() and result.unfinished == 0
    departs = result.trips.set_index("trip_id")["depart_s"]
    assert departs["t00"] == pytest.approx(0.0) and departs["t10"] == pytest.approx(590.0)
    # counted from the warm-up's end: eleven window trips and the warm-up trip leaving at 590 s
    counts = result.counts.set_index(["edge_id", "interval"])["vehicles"]
    assert counts[(COUNTED, 0)] == 12
    passed = result.passages[result.passages["edge_id"] == COUNTED]
    assert sorted(passed["trip_id"]) == sorted([t.trip_id for t in trips] + ["wt10"])
    assert set(passed["interval"]) == {0}
    on_edges = dict(zip(result.edges["edge_id"], result.edges["vehicles"], strict=True))
    assert on_edges[COUNTED] == 12  # the run's per-edge traffic begins after the warm-up too


def test_edge_outputs_begin_after_the_warmup(tmp_path: Path) -> None:
    options = SimOptions(end_s=5400, count_edges=("a",), warmup_s=1800)
    text = write_output_definitions(OutputFiles(), options, tmp_path / "out.add.xml").read_text()
    assert text.count('begin="1800"') == 4 and text.count('end="7200"') == 3


def test_warmup_setting_is_checked_and_reaches_the_sumo_options(tmp_path: Path) -> None:
    assert TrafficParams(warmup_s=1800).sim_options().warmup_s == 1800
    assert TrafficParams().sim_options().warmup_s == 0
    (tmp_path / "traffic.toml").write_text("demand_window_s = 1200\nwarmup_s = 1800\n")
    with pytest.raises(ConfigError, match=r"warmup_s: .*longer than the demand window \(1200 s\)"):
        load_params(tmp_path)
    with pytest.raises(EngineError, match="must not be negative"):
        SimOptions(end_s=10, warmup_s=-1)


def test_a_focus_area_with_a_warm_up_is_refused_with_one_line() -> None:
    from pydantic import ValidationError

    from civictwin.engines.traffic.params import TrafficParams

    with pytest.raises(ValidationError, match="a focus area cannot be combined with a warm-up"):
        TrafficParams(warmup_s=600, focus_zones=("z1",))
    assert TrafficParams(focus_zones=("z1",)).sim_options().write_routes
