"""Count sites from count datastreams: the typical day, the chosen classes, and every reason to exclude."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from civictwin.engines.traffic.sites import CalibrationSettings, count_sites
from civictwin.store.observations import DatastreamInfo, Unit

H = 3_600_000  # ms per hour
Y2015 = 1_420_070_400_000  # 2015-01-01T00:00Z
Y2016 = 1_451_606_400_000
EDGES = pd.DataFrame({"edge_id": ["e1", "-e1", "e2", "e3"], "capacity_vph": [900.0, 900.0, 900.0, 900.0]})


def stream(ident: int, point: str, direction: str, cls: str, **match: Any) -> DatastreamInfo:
    props = {"point": point, "direction": direction, "vehicle_class": cls, "ambiguous": False, **match}
    return DatastreamInfo(
        id=ident,
        key=f"hki/{point}/{direction}/{cls}",
        name=point,
        dataset="hki",
        access="public",
        thing_key=point,
        observed_property="hki/count",
        unit=Unit("{vehicle}", "vehicle", "veh"),
        observation_type="count",
        valid_range=(0.0, None),
        interval_s=3600,
        properties=props,
    )


def day(start_ms: int, values: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {"phenomenon_time": [start_ms + h * H for h in range(24)], "result": values, "quality": 0}
    )


def test_sites_pick_the_year_sum_the_classes_and_name_every_problem() -> None:
    cars_2015 = [float(10 * h) for h in range(24)]  # 08:00 → 80 cars
    cars_2016 = list(cars_2015)  # a copy of 2015
    vans = [1.0] * 24
    busy = [100.0] * 24
    busy[8] = 1000.0  # above 900 veh/h
    gap = [5.0] * 24
    gap[8] = np.nan
    streams = [
        stream(
            1, "A", "1", "ha", edge_ids=["e1"], match_distance_m=4.0, matched_street="Katu", heading="inbound"
        ),
        stream(2, "A", "1", "pa", edge_ids=["e1"]),
        stream(3, "A", "1", "la", edge_ids=["e1"]),  # buses: not a chosen class
        stream(
            4, "A", "2", "ha", edge_ids=["-e1"], ambiguous=True, match_notes=["within 300 m of the centre"]
        ),
        stream(5, "B", "1", "ha", edge_ids=[], match_notes=["no drivable edge within 50 m"]),
        stream(6, "C", "1", "ha", edge_ids=["e2"]),
        stream(7, "D", "1", "ha", edge_ids=["e3"]),
        stream(8, "E", "both", "ha", edge_ids=["e1", "-e1"]),
    ]
    observations = {
        1: pd.concat([day(Y2015, cars_2015), day(Y2016, cars_2016)]),
        2: pd.concat([day(Y2015, vans), day(Y2016, vans)]),
        3: day(Y2015, [500.0] * 24),
        4: day(Y2015, cars_2015),
        5: day(Y2015, cars_2015),
        6: day(Y2015, busy),
        7: day(Y2015, gap),
        8: day(Y2015, cars_2015),
    }
    settings = CalibrationSettings(classes=("ha", "pa"), timezone="UTC", start_hour=8)
    found = count_sites(streams, observations, EDGES, settings, window_hours=1)
    sites = found.sites.set_index("site")
    a1 = sites.loc["hki/A/1"]
    assert (a1["edge_id"], a1["day"], a1["status"], a1["street"]) == ("e1", "2015-01-01", "used", "Katu")
    assert a1["distance_m"] == 4.0
    assert a1["peak_vph"] == 231.0  # 230 cars + 1 van at 23:00; the 500 buses are not counted
    assert a1["reasons"] == "2016-01-01 repeats the day before it hour by hour: not used"
    assert sites.loc["hki/A/2", "status"] == "excluded"
    assert sites.loc["hki/A/2", "reasons"] == "ambiguous match: within 300 m of the centre"
    assert sites.loc["hki/B/1", "reasons"] == "no edge: no drivable edge within 50 m"
    assert sites.loc["hki/C/1", "reasons"] == "busiest hour 1000 veh/h above the edge's capacity 900 veh/h"
    assert (
        sites.loc["hki/D/1", "reasons"] == "missing hours 08:00"
        and sites.loc["hki/D/1", "missing_hours"] == 1
    )
    assert sites.loc["hki/E/both", "reasons"].startswith("a count without a direction spans two edges")
    assert found.used == ["hki/A/1"]
    window = found.window(settings, 1)
    assert window[["site", "edge_id", "hour", "observed"]].values.tolist() == [["hki/A/1", "e1", 0, 81.0]]
    # with ambiguous matches allowed, A/2 is used and still flagged
    lenient = count_sites(streams, observations, EDGES, settings.model_copy(update={"use_ambiguous": True}))
    a2 = lenient.sites.set_index("site").loc["hki/A/2"]
    assert (a2["status"], a2["reasons"]) == ("used", "ambiguous match: within 300 m of the centre")


def test_the_local_clock_decides_the_hour() -> None:
    streams = [stream(1, "A", "1", "ha", edge_ids=["e1"])]
    values = [float(h) for h in range(24)]
    helsinki = CalibrationSettings(timezone="Europe/Helsinki", start_hour=8)
    # observations stored from 2015-01-01T00:00 local (EET, UTC+2) = 2014-12-31T22:00Z
    found = count_sites(streams, {1: day(Y2015 - 2 * H, values)}, EDGES, helsinki)
    assert found.window(helsinki, 2)["observed"].tolist() == [8.0, 9.0]
    assert found.sites.loc[0, "day"] == "2015-01-01"
    with pytest.raises(ValueError, match="unknown time zone"):
        CalibrationSettings(timezone="Mars/Olympus")
