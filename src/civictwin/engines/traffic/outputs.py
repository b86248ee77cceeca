"""Read SUMO's light outputs (edgeData, tripinfo, statistics) into tidy pandas frames.

Only aggregated outputs are read: per-edge traffic, emissions and Harmonoise noise over the whole
simulated period, and one tripinfo per vehicle. SUMO writes emissions in milligrams; here they are grams.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from civictwin.errors import EngineError

EDGE_COLUMNS = [
    "edge_id",
    "entered",
    "vehicles",
    "speed_ms",
    "traveltime_s",
    "density",
    "sampled_s",
    "distance_m",
    "time_loss_s",
    "CO2_g",
    "NOx_g",
    "PMx_g",
    "noise_dB",
]
TRIP_COLUMNS = [
    "trip_id",
    "depart_s",
    "duration_s",
    "route_length_m",
    "time_loss_s",
    "waiting_s",
    "CO2_g",
    "NOx_g",
    "PMx_g",
    "arrived",
]


@dataclass
class SimResult:
    """One SUMO run (one seed): tidy per-edge and per-trip frames plus quality counts.

    ``edges``: one row per network edge (``EDGE_COLUMNS``); ``entered`` counts vehicles coming from
    another edge, ``vehicles`` adds those that started on it; speeds and noise are NaN without traffic.
    ``trips``: one row per trip given (``TRIP_COLUMNS``); trips that did not arrive by the end (or never
    started) have ``arrived = False``. ``unfinished`` = trips given − trips arrived. ``wall_s`` is the
    sumo process's own wall time.
    """

    edges: pd.DataFrame
    trips: pd.DataFrame
    teleports: int
    loaded: int
    inserted: int
    unfinished: int
    sumo_version: str
    wall_s: float
    seed: int
    workdir: Path


@dataclass(frozen=True)
class OutputFiles:
    """Where one run's outputs are written (relative to its work folder)."""

    traffic: str = "edges.traffic.xml"
    emissions: str = "edges.emissions.xml"
    noise: str = "edges.noise.xml"
    tripinfo: str = "tripinfo.xml"
    statistics: str = "statistics.xml"

    def paths(self, workdir: Path) -> list[Path]:
        """Every output file of a run in ``workdir``."""
        names = (self.traffic, self.emissions, self.noise, self.tripinfo, self.statistics)
        return [workdir / name for name in names]


def read_result(
    workdir: Path, files: OutputFiles, trip_ids: Sequence[str], *, seed: int, version: str, wall_s: float
) -> SimResult:
    """Parse one finished run's outputs in ``workdir`` into a :class:`SimResult`."""
    edges = read_edges(workdir / files.traffic, workdir / files.emissions, workdir / files.noise)
    trips = read_trips(workdir / files.tripinfo, trip_ids)
    stats = read_statistics(workdir / files.statistics)
    return SimResult(
        edges=edges,
        trips=trips,
        teleports=stats["teleports"],
        loaded=stats["loaded"],
        inserted=stats["inserted"],
        unfinished=int((~trips["arrived"]).sum()),
        sumo_version=version,
        wall_s=wall_s,
        seed=seed,
        workdir=workdir,
    )


def read_edges(traffic: Path, emissions: Path, noise: Path) -> pd.DataFrame:
    """Per-edge traffic, emissions (g) and noise (dB) over the run, one row per edge."""
    flow = pd.DataFrame(
        [
            {
                "edge_id": e.get("id"),
                "entered": int(float(e.get("entered", 0))),
                "vehicles": int(float(e.get("entered", 0))) + int(float(e.get("departed", 0))),
                "speed_ms": _num(e, "speed"),
                "traveltime_s": _num(e, "traveltime"),
                "density": _num(e, "density", 0.0),
                "sampled_s": _num(e, "sampledSeconds", 0.0),
                "distance_m": _num(e, "distance", 0.0),
                "time_loss_s": _num(e, "timeLoss", 0.0),
            }
            for e in _edge_elements(traffic)
        ],
        columns=EDGE_COLUMNS[:9],
    )
    emitted = pd.DataFrame(
        [
            {
                "edge_id": e.get("id"),
                "CO2_g": _num(e, "CO2_abs", 0.0) / 1000,
                "NOx_g": _num(e, "NOx_abs", 0.0) / 1000,
                "PMx_g": _num(e, "PMx_abs", 0.0) / 1000,
            }
            for e in _edge_elements(emissions)
        ],
        columns=["edge_id", "CO2_g", "NOx_g", "PMx_g"],
    )
    loud = pd.DataFrame(
        [{"edge_id": e.get("id"), "noise_dB": _num(e, "noise")} for e in _edge_elements(noise)],
        columns=["edge_id", "noise_dB"],
    )
    frame = flow.merge(emitted, on="edge_id", how="left").merge(loud, on="edge_id", how="left")
    frame[["CO2_g", "NOx_g", "PMx_g"]] = frame[["CO2_g", "NOx_g", "PMx_g"]].fillna(0.0)
    empty = frame["sampled_s"] <= 0
    frame.loc[empty, ["speed_ms", "traveltime_s", "noise_dB"]] = np.nan
    return frame[EDGE_COLUMNS].sort_values("edge_id", ignore_index=True)


def read_trips(tripinfo: Path, trip_ids: Sequence[str]) -> pd.DataFrame:
    """One row per trip given: SUMO's tripinfo (emissions in g), plus rows for trips never written."""
    rows = []
    for _, element in ET.iterparse(_existing(tripinfo), events=("end",)):
        if element.tag != "tripinfo":
            continue
        em = element.find("emissions")
        rows.append(
            {
                "trip_id": element.get("id"),
                "depart_s": _num(element, "depart"),
                "duration_s": _num(element, "duration"),
                "route_length_m": _num(element, "routeLength"),
                "time_loss_s": _num(element, "timeLoss"),
                "waiting_s": _num(element, "waitingTime"),
                "CO2_g": _num(em, "CO2_abs", 0.0) / 1000,
                "NOx_g": _num(em, "NOx_abs", 0.0) / 1000,
                "PMx_g": _num(em, "PMx_abs", 0.0) / 1000,
                "arrived": _num(element, "arrival", -1.0) >= 0,
            }
        )
        element.clear()
    frame = pd.DataFrame(rows, columns=TRIP_COLUMNS)
    missing = sorted(set(trip_ids) - set(frame["trip_id"]))
    if missing:
        absent = pd.DataFrame({"trip_id": missing, "arrived": False}, columns=TRIP_COLUMNS)
        frame = pd.concat([frame, absent], ignore_index=True) if len(frame) else absent
    frame["arrived"] = frame["arrived"].astype(bool)
    return frame.sort_values("trip_id", ignore_index=True)


def read_statistics(statistics: Path) -> dict[str, int]:
    """Loaded and inserted vehicles and teleports from SUMO's statistic output."""
    root = ET.parse(_existing(statistics)).getroot()
    vehicles = root.find("vehicles")
    teleports = root.find("teleports")
    return {
        "loaded": int(_num(vehicles, "loaded", 0.0)),
        "inserted": int(_num(vehicles, "inserted", 0.0)),
        "teleports": int(_num(teleports, "total", 0.0)),
    }


def _edge_elements(path: Path) -> Iterator[ET.Element]:
    intervals = 0
    for _, element in ET.iterparse(_existing(path), events=("end",)):
        if element.tag == "edge":
            yield element
        elif element.tag == "interval":
            intervals += 1
            element.clear()
    if intervals > 1:
        raise EngineError(f"expected one aggregation interval, found {intervals}", path=path)


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise EngineError("SUMO did not write this output", path=path, field="reading outputs")
    return path


def _num(element: ET.Element | None, key: str, default: float = np.nan) -> float:
    value = element.get(key) if element is not None else None
    return float(value) if value not in (None, "") else default
