"""Reading SUMO's CSV outputs: numbers, defaults for empty fields, unfinished and missing trips, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from civictwin.engines.traffic.outputs import EDGE_COLUMNS, TRIP_COLUMNS, read_edges, read_trips, written_by
from civictwin.errors import EngineError

TRAFFIC = (
    "interval_begin;interval_end;interval_id;edge_id;edge_sampledSeconds;edge_traveltime;edge_density;"
    "edge_timeLoss;edge_speed;edge_departed;edge_entered;edge_distance\n"
    "0.00;600.00;traffic;b;12.50;6.25;0.40;1.50;8.00;1;2;100.00\n"
    "0.00;600.00;traffic;a;0.00;;;;;0;0;0.00\n"
)
EMISSIONS = (
    "interval_begin;interval_end;interval_id;edge_id;edge_CO2_abs;edge_NOx_abs;edge_PMx_abs\n"
    "0.00;600.00;emissions;b;2500.00;3.00;0.50\n"
    "0.00;600.00;emissions;a;0.00;0.00;0.00\n"
)
NOISE = "interval_begin;interval_end;interval_id;edge_id;edge_noise\n0.00;600.00;noise;b;55.25\n"
TRIPINFO = (
    "tripinfo_id;tripinfo_depart;tripinfo_arrival;tripinfo_duration;tripinfo_routeLength;"
    "tripinfo_waitingTime;tripinfo_timeLoss;emissions_CO2_abs;emissions_NOx_abs;emissions_PMx_abs\n"
    "t2;10.00;70.00;60.00;500.00;4.00;12.00;90000.00;30.00;2.00\n"
    "t1;5.00;-1.00;595.00;800.00;100.00;400.00;;;\n"
)


def write(folder: Path, **files: str) -> dict[str, Path]:
    paths = {}
    for name, text in files.items():
        paths[name] = folder / f"{name}.csv"
        paths[name].write_text(text, encoding="utf-8")
    return paths


def test_edges_join_three_outputs_with_units_and_defaults(tmp_path: Path) -> None:
    p = write(tmp_path, traffic=TRAFFIC, emissions=EMISSIONS, noise=NOISE)
    edges = read_edges(p["traffic"], p["emissions"], p["noise"])
    assert list(edges.columns) == EDGE_COLUMNS and list(edges["edge_id"]) == ["a", "b"]
    b = edges.iloc[1]
    assert (b["entered"], b["vehicles"]) == (2, 3)  # entered + departed
    assert (b["speed_ms"], b["sampled_s"], b["distance_m"], b["density"]) == (8.0, 12.5, 100.0, 0.4)
    assert (b["CO2_g"], b["NOx_g"], b["PMx_g"], b["noise_dB"]) == (2.5, 0.003, 0.0005, 55.25)
    a = edges.iloc[0]  # no traffic: empty fields read as 0 or NaN, as SUMO's XML omits them
    assert (a["vehicles"], a["density"], a["time_loss_s"], a["CO2_g"]) == (0, 0.0, 0.0, 0.0)
    assert edges.loc[0, ["speed_ms", "traveltime_s", "noise_dB"]].isna().all()


def test_trips_mark_unfinished_and_add_trips_never_started(tmp_path: Path) -> None:
    p = write(tmp_path, tripinfo=TRIPINFO)
    trips = read_trips(p["tripinfo"], ["t1", "t2", "t3"])
    assert list(trips.columns) == TRIP_COLUMNS and list(trips["trip_id"]) == ["t1", "t2", "t3"]
    assert list(trips["arrived"]) == [False, True, False]
    assert trips.loc[1, "CO2_g"] == 90.0 and trips.loc[1, "duration_s"] == 60.0
    assert trips.loc[0, "CO2_g"] == 0.0 and trips.loc[2, ["duration_s", "depart_s"]].isna().all()


def test_an_empty_tripinfo_means_no_trip_started(tmp_path: Path) -> None:
    p = write(tmp_path, tripinfo="\n")
    trips = read_trips(p["tripinfo"], ["t1", "t2"])
    assert list(trips["trip_id"]) == ["t1", "t2"] and not trips["arrived"].any()


def test_unexpected_outputs_fail_with_one_line(tmp_path: Path) -> None:
    p = write(
        tmp_path, traffic=TRAFFIC.replace("edge_speed", "edge_velocity"), emissions=EMISSIONS, noise=NOISE
    )
    with pytest.raises(EngineError, match=r"traffic\.csv: unreadable SUMO output: .*edge_speed"):
        read_edges(p["traffic"], p["emissions"], p["noise"])
    two = NOISE + "600.00;1200.00;noise;b;50.00\n"
    p = write(tmp_path, traffic=TRAFFIC, emissions=EMISSIONS, noise=two)
    with pytest.raises(EngineError, match="one aggregation interval, found 2"):
        read_edges(p["traffic"], p["emissions"], p["noise"])
    with pytest.raises(EngineError, match="SUMO did not write this output"):
        read_trips(tmp_path / "absent.csv", [])


def test_the_sumo_version_comes_from_the_output_header(tmp_path: Path) -> None:
    stats = tmp_path / "statistics.xml"
    stats.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n\n'
        "<!-- generated on 2026-11-22T02:39:43.627418+00:00 by Eclipse SUMO sumo 1.28.0\n"
        "<sumoConfiguration/>\n-->\n<statistics/>\n",
        encoding="utf-8",
    )
    assert written_by(stats) == "Eclipse SUMO sumo 1.28.0"
    stats.write_text("<statistics/>\n", encoding="utf-8")
    assert written_by(stats) == "unknown"
