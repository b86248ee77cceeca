"""Read SUMO's light outputs (edgeData, tripinfo, statistics) into tidy pandas frames.

Only aggregated outputs are read: per-edge traffic, emissions and Harmonoise noise over the whole
simulated period, and one tripinfo per vehicle. SUMO writes emissions in milligrams; here they are grams.

Two things make SUMO's numbers differ in form from the twin's, and are undone here. A run stops when
its last vehicle has arrived, so SUMO closes the edgeData interval then, not at the nominal end: the
two quantities that are averages over the interval's length (density and Harmonoise noise) are put
back onto the nominal period (exactly: nothing happens in the rest of it). And a SUMO edge may carry a
chain of twin edges (:mod:`~civictwin.engines.traffic.network`): its counts are split at the twin
edges by the trips that start and end on each (exact), its vehicle-seconds, distance, time loss,
emissions and noise energy in proportion to vehicles × length (uniform speed along the chain), its
speed shared by all of them.

The edgeData and tripinfo outputs are written by SUMO as CSV (SUMO ≥ 1.24 picks the format from the
file name; see https://sumo.dlr.de/docs/TabularOutputs.html): ``;``-separated, one column per XML
attribute named ``<element>_<attribute>`` (``edge_speed``, ``emissions_CO2_abs``), an empty field where
the XML would omit the attribute, and the same number formatting (``--precision``) as the XML. Reading
them with pyarrow is an order of magnitude faster than walking the XML, and gives the same numbers:
pyarrow's float parsing is correctly rounded, as Python's ``float`` is. SUMO refuses ``;`` in edge
and trip ids ("Invalid edge id", "Invalid trip id"), so the unquoted CSV is unambiguous. The small
statistic output stays XML.
"""

from __future__ import annotations

import io
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

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
COUNT_COLUMNS = ["edge_id", "interval", "vehicles"]
PASSAGE_COLUMNS = ["trip_id", "edge_id", "interval"]
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

_TRAFFIC = {
    "edge_id": "edge_id",
    "edge_entered": "entered",
    "edge_departed": "departed",
    "edge_speed": "speed_ms",
    "edge_traveltime": "traveltime_s",
    "edge_density": "density",
    "edge_sampledSeconds": "sampled_s",
    "edge_distance": "distance_m",
    "edge_timeLoss": "time_loss_s",
}
_EMISSIONS = {"edge_id": "edge_id", "edge_CO2_abs": "CO2_g", "edge_NOx_abs": "NOx_g", "edge_PMx_abs": "PMx_g"}
_NOISE = {"edge_id": "edge_id", "edge_noise": "noise_dB"}
_TRIPINFO = {
    "tripinfo_id": "trip_id",
    "tripinfo_depart": "depart_s",
    "tripinfo_duration": "duration_s",
    "tripinfo_routeLength": "route_length_m",
    "tripinfo_timeLoss": "time_loss_s",
    "tripinfo_waitingTime": "waiting_s",
    "emissions_CO2_abs": "CO2_g",
    "emissions_NOx_abs": "NOx_g",
    "emissions_PMx_abs": "PMx_g",
    "tripinfo_arrival": "arrival_s",
}
_INTERVAL = "interval_begin"
_INTERVAL_END = "interval_end"
_GENERATED_BY = re.compile(rb"<!-- generated on \S+ by ([^\r\n]+)")
_HEADER_BYTES = 512
_MASSES = ["CO2_g", "NOx_g", "PMx_g"]


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
    counts: pd.DataFrame = field(default_factory=lambda: no_counts())
    """``edge_id``, ``interval`` (0 = the first counting interval from the start), ``vehicles`` (that
    entered the edge or started on it in the interval): one row per counting edge and interval."""
    passages: pd.DataFrame = field(default_factory=lambda: no_passages())
    """``trip_id``, ``edge_id``, ``interval``: each arrived trip's entry onto each counting edge (only
    when asked for: :attr:`~civictwin.engines.traffic.run.SimOptions.count_passages`)."""
    bike_trips: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=TRIP_COLUMNS))
    """One row per simulated bicycle trip (:data:`TRIP_COLUMNS`), when bikes were simulated."""
    bus_trips: pd.DataFrame = field(default_factory=lambda: no_bus_trips())
    """One row per simulated transit run (:data:`BUS_TRIP_COLUMNS`: :data:`TRIP_COLUMNS`, with
    ``duration_s`` and ``time_loss_s`` from the scheduled departure, the ``depart_delay_s`` behind it
    and the ``line``); ``trips`` then holds the car trips only."""


@dataclass(frozen=True)
class OutputFiles:
    """Where one run's outputs are written (relative to its work folder); the suffix sets the format."""

    traffic: str = "edges.traffic.csv"
    emissions: str = "edges.emissions.csv"
    noise: str = "edges.noise.csv"
    tripinfo: str = "tripinfo.csv"
    statistics: str = "statistics.xml"
    counts: str = "edges.counts.csv"
    routes: str = "vehroutes.xml"

    def paths(self, workdir: Path) -> list[Path]:
        """Every output file of a run in ``workdir``."""
        names = (
            self.traffic,
            self.emissions,
            self.noise,
            self.tripinfo,
            self.statistics,
            self.counts,
            self.routes,
        )
        return [workdir / name for name in names]


def read_result(
    workdir: Path,
    files: OutputFiles,
    trip_ids: Sequence[str],
    *,
    seed: int,
    wall_s: float,
    period_s: float | None = None,
    chains: pd.DataFrame | None = None,
    trip_edges: pd.DataFrame | None = None,
    count_edges: Sequence[str] = (),
    count_interval_s: float = 3600.0,
    count_passages: bool = False,
    offset_s: float = 0.0,
) -> SimResult:
    """Parse one finished run's outputs in ``workdir`` into a :class:`SimResult`.

    ``period_s``: the nominal end of the run (s); trips arriving later count as unfinished and the
    edge averages are over ``[0, period_s]``. ``chains`` (the network's
    :attr:`~civictwin.engines.traffic.network.SumoNetwork.chains`) with ``trip_edges`` (``trip_id``,
    ``from_edge``, ``to_edge``: each trip's first and last twin edge) give the edges per twin edge.
    ``count_edges`` were counted per ``count_interval_s`` over ``[0, period_s]`` (:func:`read_counts`).
    ``offset_s`` (s): how far SUMO's clock runs ahead of the analysed period (a warm-up, see
    :mod:`~civictwin.engines.traffic.warmup`): ``period_s``, the intervals and the trips' ``depart_s``
    count from it.
    """
    edges = read_edges(
        workdir / files.traffic, workdir / files.emissions, workdir / files.noise, period_s=period_s
    )
    arrived_by = None if period_s is None else offset_s + period_s
    trips = read_trips(workdir / files.tripinfo, trip_ids, arrived_by=arrived_by)
    trips["depart_s"] = trips["depart_s"].astype(float) - offset_s
    if chains is not None and trip_edges is not None:
        edges = split_chains(edges, chains, trip_counts(trips, trip_edges))
    stats = read_statistics(workdir / files.statistics)
    version = written_by(workdir / files.statistics)
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
        counts=(
            read_counts(
                workdir / files.counts,
                count_edges,
                interval_s=count_interval_s,
                period_s=period_s,
                offset_s=offset_s,
            )
            if count_edges
            else no_counts()
        ),
        passages=(
            read_passages(workdir / files.routes, count_edges, interval_s=count_interval_s, offset_s=offset_s)
            if count_edges and count_passages
            else no_passages()
        ),
    )


BUS_TRIP_COLUMNS = [*TRIP_COLUMNS, "depart_delay_s", "line"]


def no_bus_trips() -> pd.DataFrame:
    """An empty bus-trips frame (:data:`BUS_TRIP_COLUMNS`)."""
    frame = pd.DataFrame({c: pd.Series(dtype=float) for c in BUS_TRIP_COLUMNS})
    return frame.astype({"trip_id": str, "line": str, "arrived": bool})


def no_counts() -> pd.DataFrame:
    """An empty counts frame (:data:`COUNT_COLUMNS`) with its column types."""
    return pd.DataFrame(
        {
            "edge_id": pd.Series(dtype=str),
            "interval": pd.Series(dtype=np.int64),
            "vehicles": pd.Series(dtype=np.int64),
        }
    )


def no_passages() -> pd.DataFrame:
    """An empty passages frame (:data:`PASSAGE_COLUMNS`) with its column types."""
    return pd.DataFrame(
        {
            "trip_id": pd.Series(dtype=str),
            "edge_id": pd.Series(dtype=str),
            "interval": pd.Series(dtype=np.int64),
        }
    )


def read_passages(
    path: Path, edges: Sequence[str], *, interval_s: float, offset_s: float = 0.0
) -> pd.DataFrame:
    """Which trip entered which of ``edges`` in which interval, from SUMO's vehroute output with exit
    times (:data:`PASSAGE_COLUMNS`). A trip enters an edge when it leaves the edge before it (or at
    its departure, on its first edge), as SUMO's edgeData counts it. Intervals count from SUMO's
    second ``offset_s`` (a warm-up's end); an entry before it is no passage."""
    wanted = set(edges)
    rows: list[tuple[str, str, int]] = []
    for _, element in ET.iterparse(_existing(path)):
        if element.tag != "vehicle":
            continue
        route = element.find("route")
        if route is not None:
            route_edges = (route.get("edges") or "").split()
            exits = [float(t) for t in (route.get("exitTimes") or "").split()]
            entries = [float(element.get("depart", "0")), *exits[:-1]]
            rows.extend(
                (str(element.get("id")), edge, math.floor((entry - offset_s) / interval_s + 1e-9))
                for edge, entry in zip(route_edges, entries, strict=False)
                if edge in wanted and entry >= offset_s
            )
        element.clear()
    if not rows:
        return no_passages()
    frame = pd.DataFrame(rows, columns=PASSAGE_COLUMNS)
    frame["interval"] = frame["interval"].astype(np.int64)
    return frame


def read_counts(
    path: Path, edges: Sequence[str], *, interval_s: float, period_s: float | None, offset_s: float = 0.0
) -> pd.DataFrame:
    """Vehicles per counting edge and interval from the periodic edgeData output (:data:`COUNT_COLUMNS`).

    Every edge gets every interval that starts within ``[0, period_s)`` (or within the run, without
    ``period_s``): SUMO writes nothing for the intervals after a run that ended early, and in them
    nothing passed. ``vehicles`` = entered + started on the edge (a counter on it sees both).
    Intervals count from SUMO's second ``offset_s`` (where the counting began: a warm-up's end).
    """
    frame = _read_csv(
        path,
        {_INTERVAL: "begin", "edge_id": "edge_id", "edge_entered": "entered", "edge_departed": "departed"},
    )
    frame = frame[frame["edge_id"].isin(set(edges))]
    since = frame["begin"].astype(float) - offset_s
    frame["interval"] = np.floor(since / interval_s + 1e-9).astype(np.int64)
    frame["vehicles"] = frame["entered"].fillna(0) + frame["departed"].fillna(0)
    last = (
        math.ceil(period_s / interval_s - 1e-9)
        if period_s
        else int(frame["interval"].max() + 1 if len(frame) else 0)
    )
    grid = pd.MultiIndex.from_product([sorted(set(edges)), range(last)], names=["edge_id", "interval"])
    summed = frame.groupby(["edge_id", "interval"])["vehicles"].sum()
    counts = summed.reindex(grid, fill_value=0).astype(np.int64).reset_index()
    return counts[COUNT_COLUMNS]


def read_edges(traffic: Path, emissions: Path, noise: Path, *, period_s: float | None = None) -> pd.DataFrame:
    """Per-edge traffic, emissions (g) and noise (dB) over the run, one row per edge (SUMO's CSV).

    With ``period_s``, an interval SUMO closed early (the run ended at ``t`` < ``period_s``) is put back
    onto ``[0, period_s]``: density × t / period_s, noise + 10·log10(t / period_s). Both are exact, as
    SUMO computes them as a sum over the interval's steps divided by its length, and an empty network
    adds nothing.
    """
    flow, written_s = _edge_table(traffic, _TRAFFIC)
    entered = flow["entered"].fillna(0).astype(np.int64)
    flow["entered"] = entered
    flow["vehicles"] = entered + flow.pop("departed").fillna(0).astype(np.int64)
    flow[["density", "sampled_s", "distance_m", "time_loss_s"]] = flow[
        ["density", "sampled_s", "distance_m", "time_loss_s"]
    ].fillna(0.0)
    emitted, _ = _edge_table(emissions, _EMISSIONS)
    emitted[_MASSES] = emitted[_MASSES].fillna(0.0) / 1000
    heard, _ = _edge_table(noise, _NOISE)
    frame = flow.merge(emitted, on="edge_id", how="left").merge(heard, on="edge_id", how="left")
    frame[_MASSES] = frame[_MASSES].fillna(0.0)
    if period_s is not None and 0 < written_s < period_s:
        frame["density"] *= written_s / period_s
        frame["noise_dB"] += 10 * np.log10(written_s / period_s)
    empty = frame["sampled_s"] <= 0
    frame.loc[empty, ["speed_ms", "traveltime_s", "noise_dB"]] = np.nan
    return frame[EDGE_COLUMNS].sort_values("edge_id", ignore_index=True)


def read_trips(tripinfo: Path, trip_ids: Sequence[str], *, arrived_by: float | None = None) -> pd.DataFrame:
    """One row per trip given: SUMO's tripinfo (emissions in g), plus rows for trips never written.

    A trip arrived when SUMO gives it an arrival time, no later than ``arrived_by`` (s) when given.
    """
    info = _read_csv(tripinfo, _TRIPINFO)
    info[_MASSES] = info[_MASSES].fillna(0.0) / 1000
    arrival = info.pop("arrival_s").fillna(-1.0)
    info["arrived"] = (arrival >= 0) & (arrival <= (np.inf if arrived_by is None else arrived_by))
    frame = info[TRIP_COLUMNS]
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


def written_by(output: Path) -> str:
    """The SUMO that wrote an XML output, from its header (``Eclipse SUMO sumo 1.28.0``; else ``unknown``).

    Every XML output opens with ``<!-- generated on <time> by <program and version>``: reading it costs
    nothing, where asking the binary (``sumo --version``) starts a process.
    """
    with _existing(output).open("rb") as stream:
        found = _GENERATED_BY.search(stream.read(_HEADER_BYTES))
    return found.group(1).decode("utf-8", errors="replace").strip() if found else "unknown"


def trip_counts(trips: pd.DataFrame, trip_edges: pd.DataFrame) -> pd.DataFrame:
    """Per twin edge: trips that started on it (``departed``) and trips that arrived on it (``arrived``).

    ``trips`` is :func:`read_trips`' frame; ``trip_edges`` has ``trip_id``, ``from_edge``, ``to_edge``.
    """
    joined = trip_edges.merge(trips[["trip_id", "depart_s", "arrived"]], on="trip_id", how="inner")
    departed = joined.loc[joined["depart_s"].fillna(-1.0) >= 0, "from_edge"].astype(str).value_counts()
    arrived = joined.loc[joined["arrived"].astype(bool), "to_edge"].astype(str).value_counts()
    counts = pd.DataFrame({"departed": departed, "arrived": arrived}).fillna(0).astype(np.int64)
    return counts.rename_axis("edge_id").reset_index()


def split_chains(edges: pd.DataFrame, chains: pd.DataFrame, counts: pd.DataFrame) -> pd.DataFrame:
    """Per-SUMO-edge ``edges`` (:data:`EDGE_COLUMNS`) as one row per twin edge of ``chains``.

    A twin edge that is its own SUMO edge keeps SUMO's row. Along a merged chain, with ``counts`` from
    :func:`trip_counts`: vehicles on the i-th twin edge = vehicles entering the chain + trips starting
    on edges 1…i − trips ending on edges 1…i−1; vehicle-seconds, distance, time loss, emissions and
    noise energy are split in proportion to vehicles × length, density follows (vehicle-seconds per
    metre), speed is the chain's and travel time the chain's per metre.
    """
    rows = chains.merge(edges, left_on="sumo_edge", right_on="edge_id", how="inner", suffixes=("", "_sumo"))
    rows = rows.drop(columns="edge_id_sumo").merge(counts, on="edge_id", how="left")
    rows[["departed", "arrived"]] = rows[["departed", "arrived"]].fillna(0)
    merged = rows["sumo_edge"].duplicated(keep=False).to_numpy()
    split = rows.loc[merged].copy()
    if split.empty:
        return rows[EDGE_COLUMNS].sort_values("edge_id", ignore_index=True)
    by_chain = split.groupby("sumo_edge", sort=False)
    started = by_chain["departed"].cumsum()
    ended_before = by_chain["arrived"].cumsum() - split["arrived"]
    vehicles = (split["entered"] + started - ended_before).clip(lower=0)
    split["entered"] = (vehicles - split["departed"]).clip(lower=0).astype(np.int64)
    split["vehicles"] = vehicles.astype(np.int64)
    weight = vehicles * split["length_m"]
    total = weight.groupby(split["sumo_edge"]).transform("sum")
    by_length = split["length_m"] / split["sumo_length_m"]
    share = np.where(total > 0, weight / total.where(total > 0, 1.0), by_length)
    for column in ("sampled_s", "distance_m", "time_loss_s", *_MASSES):
        split[column] = split[column] * share
    stretch = np.divide(
        split["sumo_length_m"], split["length_m"], out=np.zeros(len(split)), where=split["length_m"] > 0
    )
    split["density"] = split["density"] * share * stretch
    split["traveltime_s"] = split["traveltime_s"] * by_length
    with np.errstate(divide="ignore"):
        split["noise_dB"] = split["noise_dB"] + 10 * np.log10(share)
    empty = split["sampled_s"] <= 0
    split.loc[empty, ["speed_ms", "traveltime_s", "noise_dB"]] = np.nan
    frame = pd.concat([rows.loc[~merged], split], ignore_index=True)
    return frame[EDGE_COLUMNS].sort_values("edge_id", ignore_index=True)


def _edge_table(path: Path, columns: Mapping[str, str]) -> tuple[pd.DataFrame, float]:
    """One edgeData output, checked to hold a single aggregation interval, and that interval's length (s)."""
    frame = _read_csv(path, {_INTERVAL: _INTERVAL, _INTERVAL_END: _INTERVAL_END, **columns})
    begins, ends = frame.pop(_INTERVAL), frame.pop(_INTERVAL_END)
    intervals = begins.nunique()
    if intervals > 1:
        raise EngineError(f"expected one aggregation interval, found {intervals}", path=path)
    return frame, float(ends.iloc[0] - begins.iloc[0]) if len(frame) else 0.0


def _read_csv(path: Path, columns: Mapping[str, str]) -> pd.DataFrame:
    """The named columns of one of SUMO's CSV outputs, renamed; the ids (``*_id``) read as text.

    SUMO writes an empty file (no header) when no element was written, e.g. no trip ever started.
    """
    data = _existing(path).read_bytes()
    names = list(columns)
    if not data.strip():
        return pd.DataFrame({name: pd.Series(dtype=float) for name in columns.values()})
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            parse_options=pacsv.ParseOptions(delimiter=";"),
            convert_options=pacsv.ConvertOptions(
                include_columns=names, column_types={n: pa.string() for n in names if n.endswith("_id")}
            ),
        )
    except (pa.ArrowInvalid, KeyError) as exc:
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EngineError(f"unreadable SUMO output: {problem}", path=path) from None
    frame: pd.DataFrame = table.to_pandas()
    return frame.rename(columns=dict(columns))


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise EngineError("SUMO did not write this output", path=path, field="reading outputs")
    return path


def _num(element: ET.Element | None, key: str, default: float = np.nan) -> float:
    value = element.get(key) if element is not None else None
    return float(value) if value not in (None, "") else default
