"""Reading SUMO's CSV outputs: numbers, defaults for empty fields, unfinished and missing trips, errors."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from civictwin.engines.traffic.outputs import (
    EDGE_COLUMNS,
    TRIP_COLUMNS,
    read_edges,
    read_trips,
    split_chains,
    trip_counts,
    written_by,
)
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


def test_an_interval_closed_early_is_put_back_on_the_nominal_period(tmp_path: Path) -> None:
    half = {name: text.replace("600.00;", "300.00;") for name, text in (("t", TRAFFIC), ("n", NOISE))}
    p = write(tmp_path, traffic=half["t"], emissions=EMISSIONS, noise=half["n"])
    edges = read_edges(p["traffic"], p["emissions"], p["noise"], period_s=600.0)
    b = edges.iloc[1]
    assert b["density"] == pytest.approx(0.2)  # 0.40 veh/km over 300 s is 0.20 over 600 s
    assert b["noise_dB"] == pytest.approx(55.25 - 10 * math.log10(2))  # the same energy over twice the time
    assert (b["sampled_s"], b["distance_m"], b["CO2_g"], b["vehicles"]) == (12.5, 100.0, 2.5, 3)
    full = read_edges(
        *write(tmp_path, traffic=TRAFFIC, emissions=EMISSIONS, noise=NOISE).values(), period_s=600
    )
    assert full.iloc[1]["density"] == 0.4 and full.iloc[1]["noise_dB"] == 55.25


def test_trips_arriving_after_the_period_are_unfinished(tmp_path: Path) -> None:
    p = write(tmp_path, tripinfo=TRIPINFO)
    assert list(read_trips(p["tripinfo"], ["t1", "t2"], arrived_by=69.0)["arrived"]) == [False, False]
    assert list(read_trips(p["tripinfo"], ["t1", "t2"], arrived_by=70.0)["arrived"]) == [False, True]


# One SUMO edge "c" carrying twin edges c1, c2, c3 (10, 20, 30 m), and a SUMO edge "s" of its own.
CHAINS = pd.DataFrame(
    {
        "edge_id": ["c1", "c2", "c3", "s"],
        "sumo_edge": ["c", "c", "c", "s"],
        "start_m": [0.0, 10.0, 30.0, 0.0],
        "length_m": [10.0, 20.0, 30.0, 40.0],
        "sumo_length_m": [60.0, 60.0, 60.0, 40.0],
    }
)


def sumo_edges() -> pd.DataFrame:
    """Per-SUMO-edge output: 3 vehicles enter "c", 3 more start on it (on c2), 2 of them end on c2."""
    return pd.DataFrame(
        {
            "edge_id": ["c", "s"],
            "entered": [3, 1],
            "vehicles": [6, 1],
            "speed_ms": [10.0, 8.0],
            "traveltime_s": [6.0, 5.0],
            "density": [0.75, 0.2],
            "sampled_s": [27.0, 5.0],
            "distance_m": [270.0, 40.0],
            "time_loss_s": [9.0, 1.0],
            "CO2_g": [27.0, 4.0],
            "NOx_g": [0.9, 0.1],
            "PMx_g": [0.09, 0.01],
            "noise_dB": [60.0, 50.0],
        }
    )[EDGE_COLUMNS]


def test_a_chain_is_split_back_onto_its_twin_edges() -> None:
    counts = pd.DataFrame({"edge_id": ["c2", "s"], "departed": [3, 0], "arrived": [2, 0]})
    edges = split_chains(sumo_edges(), CHAINS, counts).set_index("edge_id")
    assert list(edges.index) == ["c1", "c2", "c3", "s"]
    # vehicles: 3 entering; + 3 starting on c2; − 2 ending on c2 → 3, 6, 4 (vehicle-metres 30, 120, 120)
    assert edges["vehicles"].tolist() == [3, 6, 4, 1]
    assert edges["entered"].tolist() == [3, 3, 4, 1]
    assert edges["sampled_s"].tolist() == pytest.approx([3.0, 12.0, 12.0, 5.0])
    assert edges["distance_m"].tolist() == pytest.approx([30.0, 120.0, 120.0, 40.0])
    assert edges["CO2_g"].tolist() == pytest.approx([3.0, 12.0, 12.0, 4.0])
    assert edges["time_loss_s"].tolist() == pytest.approx([1.0, 4.0, 4.0, 1.0])
    assert edges["speed_ms"].tolist() == [10.0, 10.0, 10.0, 8.0]
    assert edges["traveltime_s"].tolist() == pytest.approx([1.0, 2.0, 3.0, 5.0])
    # density = vehicle-seconds per km and second of the run: 27 s on 60 m is 0.75 → 3/10, 12/20, 12/30 m
    assert edges["density"].tolist() == pytest.approx([0.5, 1.0, 2 / 3, 0.2])
    # noise energy in proportion to vehicle-seconds: 1/9, 4/9, 4/9 of the chain's
    nine = 10 * math.log10(9)
    four_ninths = 60 - nine + 10 * math.log10(4)
    assert edges["noise_dB"].tolist() == pytest.approx([60 - nine, four_ninths, four_ninths, 50.0])
    assert edges[["sampled_s", "CO2_g"]].sum().tolist() == pytest.approx([32.0, 31.0])  # totals kept


def test_an_unused_twin_edge_of_a_chain_has_no_speed_or_noise() -> None:
    frame = sumo_edges()
    frame.loc[0, ["entered", "vehicles"]] = [0, 2]
    counts = pd.DataFrame({"edge_id": ["c3"], "departed": [2], "arrived": [0]})
    edges = split_chains(frame, CHAINS, counts).set_index("edge_id")
    assert edges["vehicles"].tolist() == [0, 0, 2, 1] and edges["sampled_s"].tolist()[:3] == [0.0, 0.0, 27.0]
    assert edges.loc[["c1", "c2"], ["speed_ms", "traveltime_s", "noise_dB"]].isna().all().all()
    assert edges.at["c3", "noise_dB"] == 60.0 and edges.at["c3", "density"] == pytest.approx(1.5)


def test_trip_counts_per_twin_edge() -> None:
    trips = pd.DataFrame(
        {"trip_id": ["t1", "t2", "t3"], "depart_s": [1.0, 2.0, float("nan")], "arrived": [True, False, False]}
    )
    ends = pd.DataFrame(
        {"trip_id": ["t1", "t2", "t3"], "from_edge": ["a", "a", "b"], "to_edge": ["b", "c", "a"]}
    )
    counts = trip_counts(trips, ends).set_index("edge_id")
    assert counts.to_dict("index") == {
        "a": {"departed": 2, "arrived": 0},
        "b": {"departed": 0, "arrived": 1},
    }
