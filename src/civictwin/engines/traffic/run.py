"""Run one SUMO simulation (one seed) of car trips on a compiled network and read its outputs.

Each call writes its inputs (trips, output definitions, a generated ``.sumocfg``) into its own work
folder and runs the ``sumo`` binary as a separate process, so seeds can run in parallel processes and
the same seed gives identical results. Every vehicle reroutes dynamically (static shortest paths lock
the network up). Only light outputs are written: per-edge traffic, emissions and noise, tripinfo with
the emissions device, and statistics. A run whose teleports or unfinished trips pass the configured
shares raises :class:`~civictwin.errors.EngineError` rather than returning doubtful numbers.

A run costs what its traffic costs: it ends when its last vehicle has arrived (no fixed end time;
trips arriving after ``end_s`` still count as unfinished, and a run past its teleport limit stops
there), and the rerouting device refreshes its edge speeds every ``rerouting_adaptation_s`` seconds
over SUMO's default 180 s window instead of every step (SUMO's own docs call the per-step update "a
major slowdown"). Trips start and end on the twin's edges even where a SUMO edge carries several.
"""

from __future__ import annotations

import dataclasses
import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import pandas as pd

from civictwin.engines.traffic.busfiles import BusFiles, BusPlan, is_bus, write_bus_files
from civictwin.engines.traffic.network import SumoNetwork
from civictwin.engines.traffic.outputs import OutputFiles, SimResult, read_result
from civictwin.engines.traffic.sumo import run_binary
from civictwin.engines.traffic.transit import BusService
from civictwin.errors import EngineError, QualityCheckFailed

__all__ = ["DEFAULT_FLEET_MIX", "CarTrip", "SimOptions", "SimResult", "run_sumo"]

DEFAULT_FLEET_MIX: Mapping[str, float] = MappingProxyType(
    {
        "HBEFA4/PC_petrol_Euro-6d": 0.45,
        "HBEFA4/PC_diesel_Euro-6d": 0.30,
        "HBEFA4/PC_petrol_Euro-4": 0.10,
        "HBEFA4/PC_BEV": 0.15,
    }
)
"""An illustrative passenger-car mix (HBEFA 4 classes); set the city's own in the options."""

FLEET_TYPE = "fleet"

BIKE_PREFIX = "bk"
"""How the ids of simulated bicycle trips begin (never a car's: ``t``, ``e…x``, ``g``)."""
BIKE_TYPE = "bike"
BIKE_ROUTES = "bikes.rou.xml"

ROUTING_WINDOW_S = 180.0
"""Length (s) of the moving average of edge speeds the rerouting device routes on: SUMO's default
(``--device.rerouting.adaptation-steps 180`` × ``--device.rerouting.adaptation-interval 1``)."""

MESO_OPTIONS: Mapping[str, str] = MappingProxyType(
    {
        "mesosim": "true",
        "meso-junction-control": "true",
        "meso-overtaking": "true",
        "routing-algorithm": "CCH",
    }
)
"""The sumo options of a mesoscopic run (SUMO's Simulation/Meso documentation, SUMO 1.28):
``meso-junction-control``: SUMO's default (false) lets vehicles pass junctions with no control at all,
which the documentation says "should only be used for motorway scenarios"; true models junctions as
the microscopic model without internal links, so right of way and the traffic lights' red phases
hold vehicles as in a micro run. ``meso-overtaking``: vehicles on a multi-lane edge may pass slower
ones (as they change lanes in a micro run) instead of queueing behind them. Segment length
(``meso-edgelength``, 98 m) and the jam threshold stay SUMO's defaults; ``meso-tls-penalty`` (a delay
and capacity factor replacing the signal phases) is not used: the lights' own phases are simulated.
``routing-algorithm`` CCH (SUMO 1.28's customizable contraction hierarchies, ``sumo --help``): the
rerouting device's queries are answered on a hierarchy built once per run and re-customised with the
edge speeds at every adaptation interval, instead of an A* search per query. It finds the same
shortest paths (up to ties) at a fraction of the cost: on the 8×8 city A* explored 8,000–10,000
edges a query (86–98 ms under load) and rerouting every 60 s tripled a run's cost; CCH explored 83
(0.26 ms), and the same run cost a fifth (BENCHMARKS.md, "Region-sized traffic"). Micro runs
keep A* (they are small, and their tested numbers stay as they were).
Measured against micro runs on the demo in docs/traffic-engine.md, "Micro and meso"."""

BASE_DEPART_POS_M = 5.1
"""Where SUMO's ``departPos="base"`` puts a car's front on its first edge: the length of a ``passenger``
vehicle (5 m, SUMO's default) plus 0.1 m (SUMO's ``POSITION_EPS``; tripinfo reports ``departPos`` 5.10).
A trip starting on a twin edge inside a merged SUMO edge starts that far into the twin edge."""


CAR_DEPARTURE: Mapping[str, str] = MappingProxyType({"departLane": "best", "departSpeed": "desired"})
"""How a car enters the network: on the lane best for its route, at its desired speed (SUMO's
``departSpeed="desired"``: the insertion waits until that is safe). ``departSpeed="max"`` (the
fastest safe speed, however slow) put cars into standing queues; with the same routes, seed and
impatience it left 358 teleports and the demo's counted streets at 375–971 of their observed
634–1,327 vehicles an hour, where ``desired`` had none and all five within GEH 1.6
(docs/methods-calibration.md, section 4)."""


@dataclass(frozen=True)
class CarTrip:
    """One car trip: start and end edge (ids of the twin's directed edges) and departure second."""

    trip_id: str
    from_edge: str
    to_edge: str
    depart_s: float


@dataclass(frozen=True)
class SimOptions:
    """How to simulate: period, step, micro/meso, rerouting, quality limits and the fleet mix.

    ``max_teleport_share`` / ``max_unfinished_share`` are fractions of the trips given; a run beyond
    either fails. ``speed_deviation`` is the spread of drivers' desired speeds around the limit (SUMO's
    ``speedDev``; ``None`` keeps SUMO's default 0.1, 0 makes every driver keep the limit);
    ``driver_imperfection`` is the Krauss model's random dawdling (SUMO's ``sigma``; ``None`` keeps 0.5,
    0 gives perfect drivers, useful for checking numbers by hand). With
    ``ignore_route_errors`` a trip SUMO cannot route is dropped by SUMO and counts
    as unfinished (instead of aborting the whole run). ``rerouting_adaptation_s`` is how often (s) the
    rerouting device refreshes its edge speeds (averaged over :data:`ROUTING_WINDOW_S` either way; SUMO
    refreshes every step by default). ``stop_when_done`` ends the run when every vehicle has arrived;
    without it SUMO steps on to ``end_s`` (the results are the same, the run slower).
    ``count_edges`` (twin edge ids, each its own SUMO edge: see ``build_sumo_network``'s
    ``count_edges``) get vehicle counts per ``count_interval_s`` (s) from the start, as a counting
    point on them would record them (:attr:`SimResult.counts`); with ``count_passages`` also which
    trip passed which counting edge in which interval (:attr:`SimResult.passages`, from SUMO's
    vehroute output with exit times: what a calibration needs to know whose trips a count saw).
    ``warmup_s`` (s) is simulated before the analysed period (:mod:`~civictwin.engines.traffic.warmup`):
    every time given or returned (departures, ``end_s``, counting intervals) is from the end of the
    warm-up; SUMO's own clock runs ``warmup_s`` ahead of it. ``time_to_impatience_s`` (s) is how long
    a driver waits at a junction before accepting to impede traffic with priority (SUMO's
    ``--time-to-impatience``: impatience grows from 0 to 1 over that waiting time; SUMO's default
    180 s): under heavy demand a shorter time keeps minor-road queues from waiting for gaps that never
    come (docs/methods-calibration.md, section 4). ``ignore_junction_blocker_s`` (s), when set, lets
    vehicles pass one that has stood blocking a junction that long (SUMO's
    ``--ignore-junction-blocker``; SUMO's default, None here, never does): a turning queue standing
    inside a junction whose exit is jammed otherwise holds its foes until they teleport.
    ``write_routes`` keeps every vehicle's route with the times it left each edge (SUMO's vehroute
    output, ``OutputFiles.routes``) for a focus area's cut (:mod:`~civictwin.engines.traffic.focus`).
    """

    end_s: float
    step_length: float = 1.0
    mesoscopic: bool = False
    rerouting_period_s: float = 60.0
    max_teleport_share: float = 0.05
    max_unfinished_share: float = 0.05
    fleet_mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_FLEET_MIX))
    ignore_route_errors: bool = True
    time_to_teleport_s: float = 300.0
    speed_deviation: float | None = None
    driver_imperfection: float | None = None
    rerouting_adaptation_s: float = 10.0
    stop_when_done: bool = True
    count_edges: tuple[str, ...] = ()
    count_interval_s: float = 3600.0
    count_passages: bool = False
    warmup_s: float = 0.0
    time_to_impatience_s: float = 180.0
    ignore_junction_blocker_s: float | None = None
    write_routes: bool = False

    def __post_init__(self) -> None:
        checks = [
            (self.end_s > 0, "end_s", "must be positive"),
            (0 < self.step_length <= 5, "step_length", "must be in (0, 5] seconds"),
            (self.rerouting_period_s > 0, "rerouting_period_s", "must be positive"),
            (
                0 < self.rerouting_adaptation_s <= ROUTING_WINDOW_S,
                "rerouting_adaptation_s",
                f"must be in (0, {ROUTING_WINDOW_S:g}] seconds",
            ),
            (0 <= self.max_teleport_share <= 1, "max_teleport_share", "must be a share in [0, 1]"),
            (0 <= self.max_unfinished_share <= 1, "max_unfinished_share", "must be a share in [0, 1]"),
            (self.time_to_teleport_s > 0, "time_to_teleport_s", "must be positive"),
            (self.count_interval_s > 0, "count_interval_s", "must be positive"),
            (self.warmup_s >= 0, "warmup_s", "must not be negative"),
            (self.time_to_impatience_s > 0, "time_to_impatience_s", "must be positive"),
            (
                self.ignore_junction_blocker_s is None or self.ignore_junction_blocker_s > 0,
                "ignore_junction_blocker_s",
                "must be positive (or unset: never)",
            ),
            (
                self.speed_deviation is None or 0 <= self.speed_deviation <= 1,
                "speed_deviation",
                "must be in [0, 1]",
            ),
            (bool(self.fleet_mix), "fleet_mix", "needs at least one emission class"),
            (all(v > 0 for v in self.fleet_mix.values()), "fleet_mix", "shares must be positive"),
            (
                math.isclose(sum(self.fleet_mix.values()), 1.0, abs_tol=1e-6),
                "fleet_mix",
                "shares must sum to 1",
            ),
        ]
        for ok, key, problem in checks:
            if not ok:
                raise EngineError(problem, field=f"simulation options: {key}")


def run_sumo(
    network: SumoNetwork,
    trips: Sequence[CarTrip],
    *,
    seed: int,
    workdir: Path,
    options: SimOptions,
    buses: BusPlan | None = None,
    bikes: Sequence[CarTrip] = (),
    warmup: Sequence[CarTrip] = (),
) -> SimResult:
    """Simulate ``trips`` on ``network`` with one ``seed`` in a sumo process; outputs go to ``workdir``.

    ``warmup`` (car trips departing in ``[0, options.warmup_s)``, ids from
    :func:`~civictwin.engines.traffic.warmup.warmup_trips`) run before ``trips``, bikes and buses,
    which are written ``options.warmup_s`` later; the warm-up trips appear in no result but the edges
    and counts they pass after the warm-up.

    With ``buses`` their runs are simulated too (:mod:`~civictwin.engines.traffic.busfiles`): their
    tripinfo goes to :attr:`SimResult.bus_trips`, the car trips alone stay in ``trips`` and in the
    quality check, and edges carry both. ``bikes`` (ids starting with :data:`BIKE_PREFIX`) ride as SUMO
    ``bicycle`` vehicles; their tripinfo goes to :attr:`SimResult.bike_trips`. Raises :class:`EngineError` when a trip names an edge the
    network lacks, when sumo fails (quoting its message), or when teleports/unfinished trips exceed
    their allowed shares.
    """
    _check_trips(network, [*trips, *warmup])
    _check_bikes(network, bikes)
    options = dataclasses.replace(options, count_edges=countable_edges(network, options.count_edges))
    workdir.mkdir(parents=True, exist_ok=True)
    files = OutputFiles()
    for stale in files.paths(workdir):  # never read a previous, interrupted run's outputs
        stale.unlink(missing_ok=True)
    chains = network.chains if len(network.chains) else None
    later = options.warmup_s
    write_trips([*warmup, *shifted(trips, by_s=later)], options, workdir / "trips.rou.xml", chains=chains)
    write_output_definitions(files, options, workdir / "outputs.add.xml")
    bus_files = None
    if buses is not None and buses.service.runs:
        bus_files = write_bus_files(
            shifted_service(buses.service, by_s=later),
            buses.settings,
            workdir,
            chains=chains,
            cycle_lanes=buses.cycle_lanes,
        )
    if bikes:
        write_bike_trips(shifted(bikes, by_s=later), workdir / BIKE_ROUTES, chains=chains)
    n_vehicles = len(trips) + len(warmup) + len(bikes) + (len(bus_files.lines) if bus_files else 0)
    config = write_config(
        network,
        options,
        seed=seed,
        files=files,
        path=workdir / "run.sumocfg",
        n_trips=n_vehicles,
        buses=bus_files,
        bikes=bool(bikes),
    )
    process = run_binary("sumo", ["-c", config.name], step=f"simulating (seed {seed})", cwd=workdir)
    trip_edges = pd.DataFrame(
        {
            "trip_id": [t.trip_id for t in trips],
            "from_edge": [t.from_edge for t in trips],
            "to_edge": [t.to_edge for t in trips],
        }
    )
    if bus_files is not None:  # buses start and end at stops inside merged chains too
        runs = list(bus_files.ends)
        bus_edges = pd.DataFrame(
            {
                "trip_id": runs,
                "from_edge": [bus_files.ends[r][0] for r in runs],
                "to_edge": [bus_files.ends[r][1] for r in runs],
            }
        )
        trip_edges = pd.concat([trip_edges, bus_edges], ignore_index=True)
    if bikes:
        bike_edges = pd.DataFrame(
            {
                "trip_id": [t.trip_id for t in bikes],
                "from_edge": [t.from_edge for t in bikes],
                "to_edge": [t.to_edge for t in bikes],
            }
        )
        trip_edges = pd.concat([trip_edges, bike_edges], ignore_index=True)
    result = read_result(
        workdir,
        files,
        [t.trip_id for t in trips],
        seed=seed,
        wall_s=process.wall_s,
        period_s=options.end_s,
        chains=chains,
        trip_edges=trip_edges,
        count_edges=options.count_edges,
        count_interval_s=options.count_interval_s,
        count_passages=options.count_passages,
        offset_s=later,
    )
    if warmup:
        result = _without(result, {t.trip_id for t in warmup})
    if bus_files is not None:
        result = _split_buses(result, bus_files, offset_s=later)
    if bikes:
        result = _split_bikes(result, [t.trip_id for t in bikes])
    _check_quality(result, len(trips), options)
    return result


def _without(result: SimResult, warmup_ids: set[str]) -> SimResult:
    """The run without its warm-up trips' tripinfo (they are in no KPI and no quality check)."""
    trips = result.trips
    kept = trips[~trips["trip_id"].astype(str).isin(warmup_ids)].reset_index(drop=True)
    return dataclasses.replace(result, trips=kept, unfinished=int((~kept["arrived"].astype(bool)).sum()))


def _split_bikes(result: SimResult, bike_ids: Sequence[str]) -> SimResult:
    """The run with its bicycles' tripinfo in ``bike_trips`` (every bike trip given, arrived or not)
    and only the car trips in ``trips`` and ``unfinished``."""
    trips = result.trips
    bike = trips["trip_id"].astype(str).str.startswith(BIKE_PREFIX)
    found = trips[bike]
    missing = sorted(set(bike_ids) - set(found["trip_id"].astype(str)))
    if missing:
        absent = pd.DataFrame({"trip_id": missing, "arrived": False}, columns=found.columns)
        found = pd.concat([found, absent], ignore_index=True) if len(found) else absent
    cars = trips[~bike].reset_index(drop=True)
    return dataclasses.replace(
        result,
        trips=cars,
        unfinished=int((~cars["arrived"]).sum()),
        bike_trips=found.assign(arrived=found["arrived"].astype(bool)).sort_values(
            "trip_id", ignore_index=True
        ),
    )


def shifted(trips: Sequence[CarTrip], *, by_s: float) -> list[CarTrip]:
    """``trips`` departing ``by_s`` seconds later (window time to simulation time: a warm-up)."""
    return [dataclasses.replace(trip, depart_s=trip.depart_s + by_s) for trip in trips]


def shifted_service(service: BusService, *, by_s: float) -> BusService:
    """``service`` with every run leaving ``by_s`` seconds later (window time to simulation time)."""
    runs = tuple(dataclasses.replace(run, depart_s=run.depart_s + by_s) for run in service.runs)
    return dataclasses.replace(service, runs=runs)


def write_bike_trips(trips: Sequence[CarTrip], path: Path, *, chains: pd.DataFrame | None = None) -> Path:
    """Bicycle trips (SUMO's ``bicycle`` class with its default type) placed on their twin edges as
    :func:`write_trips` places cars."""
    places = _places(chains)
    root = ET.Element("routes")
    ET.SubElement(root, "vType", id=BIKE_TYPE, vClass="bicycle")
    for trip in sorted(trips, key=lambda t: (t.depart_s, t.trip_id)):
        ET.SubElement(root, "trip", _placed_trip(trip, places, vtype=BIKE_TYPE, depart_ahead_m=0.0))
    _write_xml(root, path)
    return path


def _split_buses(result: SimResult, buses: BusFiles, *, offset_s: float = 0.0) -> SimResult:
    """The run with its transit runs' tripinfo in ``bus_trips`` (every run, arrived or not, with its
    line) and only the car trips in ``trips`` and ``unfinished``.

    A bus's ``duration_s`` and ``time_loss_s`` count from its *scheduled* departure: a bus that could
    not enter when due (a queue reaching back over its first stop) waited that long too
    (``depart_delay_s``).
    """
    trips = result.trips
    bus = is_bus(trips["trip_id"])
    found = trips[bus]
    missing = sorted(set(buses.lines) - set(found["trip_id"].astype(str)))
    if missing:
        absent = pd.DataFrame({"trip_id": missing, "arrived": False}, columns=found.columns)
        found = pd.concat([found, absent], ignore_index=True) if len(found) else absent
    scheduled = found["trip_id"].astype(str).map(buses.departs).astype(float) - offset_s
    late = (found["depart_s"].astype(float) - scheduled).clip(lower=0.0)
    found = found.assign(
        duration_s=found["duration_s"] + late,
        time_loss_s=found["time_loss_s"] + late,
        depart_delay_s=late,
        line=found["trip_id"].astype(str).map(buses.lines),
        arrived=found["arrived"].astype(bool),
    )
    cars = trips[~bus].reset_index(drop=True)
    return dataclasses.replace(
        result,
        trips=cars,
        unfinished=int((~cars["arrived"]).sum()),
        bus_trips=found.sort_values("trip_id", ignore_index=True),
    )


def countable_edges(network: SumoNetwork, edges: Sequence[str]) -> tuple[str, ...]:
    """Those of ``edges`` that are whole SUMO edges of ``network`` (what SUMO can count exactly)."""
    chains = network.chains
    if len(chains) == 0:
        return tuple(sorted(e for e in set(edges) if e in network.edge_ids))
    whole = chains[
        (chains["edge_id"] == chains["sumo_edge"]) & (chains["length_m"] >= chains["sumo_length_m"] - 1e-6)
    ]
    return tuple(sorted(set(edges) & set(whole["edge_id"].astype(str))))


def sumo_options(
    network: SumoNetwork,
    options: SimOptions,
    *,
    seed: int,
    files: OutputFiles,
    n_trips: int,
    buses: BusFiles | None = None,
    bikes: bool = False,
) -> dict[str, str]:
    """The sumo options of one run of ``n_trips`` trips, as a mapping (so no option can be given twice).

    With ``stop_when_done`` there is no ``--end``: SUMO stops once every vehicle has arrived (or been
    skipped: a trip not inserted within ``end_s`` of its departure time is dropped, as it could not
    have arrived by ``end_s``), and ``--max-num-teleports`` stops a run as soon as it has more
    teleports than the quality check allows.
    """
    additional = ["outputs.add.xml", *(str(p.resolve()) for p in network.additional_files)]
    routes = ["trips.rou.xml"]
    if buses is not None:
        additional.append(buses.stops.name)
        routes.append(buses.routes.name)
    if bikes:
        routes.append(BIKE_ROUTES)
    adaptation = options.rerouting_adaptation_s
    if options.stop_when_done:
        limits = {
            "max-depart-delay": f"{options.end_s:g}",
            "max-num-teleports": str(math.floor(options.max_teleport_share * n_trips)),
        }
    else:
        limits = {"end": f"{options.warmup_s + options.end_s:g}"}
    values: dict[str, str] = {
        "net-file": str(network.net_file.resolve()),
        "route-files": ",".join(routes),
        "additional-files": ",".join(additional),
        "begin": "0",
        **limits,
        "step-length": f"{options.step_length:g}",
        "seed": str(seed),
        "routing-algorithm": "astar",
        "device.rerouting.probability": "1",
        "device.rerouting.period": f"{options.rerouting_period_s:g}",
        "device.rerouting.adaptation-interval": f"{adaptation:g}",
        "device.rerouting.adaptation-steps": str(max(1, round(ROUTING_WINDOW_S / adaptation))),
        "device.emissions.probability": "1",
        "time-to-teleport": f"{options.time_to_teleport_s:g}",
        "time-to-impatience": f"{options.time_to_impatience_s:g}",
        **(
            {"ignore-junction-blocker": f"{options.ignore_junction_blocker_s:g}"}
            if options.ignore_junction_blocker_s is not None
            else {}
        ),
        "ignore-route-errors": _bool(options.ignore_route_errors),
        "tripinfo-output": files.tripinfo,
        "tripinfo-output.write-unfinished": "true",
        "statistic-output": files.statistics,
        "no-step-log": "true",
        "duration-log.disable": "true",
        "no-warnings": "true",
    }
    if options.mesoscopic:
        values.update(MESO_OPTIONS)
    if (options.count_passages and options.count_edges) or options.write_routes:
        values["vehroute-output"] = files.routes
        values["vehroute-output.exit-times"] = "true"
        values["vehroute-output.last-route"] = "true"
    return values


def write_config(
    network: SumoNetwork,
    options: SimOptions,
    *,
    seed: int,
    files: OutputFiles,
    path: Path,
    n_trips: int,
    buses: BusFiles | None = None,
    bikes: bool = False,
) -> Path:
    """Write the run's ``.sumocfg``."""
    root = ET.Element("configuration")
    values = sumo_options(network, options, seed=seed, files=files, n_trips=n_trips, buses=buses, bikes=bikes)
    for key, value in values.items():
        ET.SubElement(root, key, value=value)
    _write_xml(root, path)
    return path


def write_trips(
    trips: Sequence[CarTrip], options: SimOptions, path: Path, *, chains: pd.DataFrame | None = None
) -> Path:
    """The trips, sorted by departure, drawing vehicle types from the fleet-mix distribution.

    With ``chains`` (:attr:`SumoNetwork.chains`) a trip on a twin edge inside a merged SUMO edge starts
    with its back at the twin edge's start (``departPos``) and ends at the twin edge's end
    (``arrivalPos``), where it would on an edge of its own.
    """
    places = _places(chains)
    root = ET.Element("routes")
    distribution = ET.SubElement(root, "vTypeDistribution", id=FLEET_TYPE)
    for index, (emission_class, share) in enumerate(options.fleet_mix.items()):
        vtype = ET.SubElement(
            distribution,
            "vType",
            id=f"car_{index}",
            vClass="passenger",
            emissionClass=emission_class,
            probability=f"{share:.6g}",
        )
        if options.speed_deviation is not None:
            vtype.set("speedDev", f"{options.speed_deviation:g}")
        if options.driver_imperfection is not None:
            vtype.set("sigma", f"{options.driver_imperfection:g}")
    for trip in sorted(trips, key=lambda t: (t.depart_s, t.trip_id)):
        attributes = _placed_trip(
            trip, places, vtype=FLEET_TYPE, depart_ahead_m=BASE_DEPART_POS_M,
            extra=CAR_DEPARTURE,
        )  # fmt: skip
        ET.SubElement(root, "trip", attributes)
    _write_xml(root, path)
    return path


def _placed_trip(
    trip: CarTrip,
    places: Mapping[str, _Place],
    *,
    vtype: str,
    depart_ahead_m: float,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A ``<trip>``'s attributes: from and to the SUMO edges holding its twin edges, departing
    ``depart_ahead_m`` (m, at most the twin edge's length) into its first twin edge where that does not
    start its SUMO edge, and arriving at the end of its last twin edge where that does not end its."""
    start, end = places.get(trip.from_edge), places.get(trip.to_edge)
    attributes = {
        "id": trip.trip_id,
        "type": vtype,
        "depart": f"{trip.depart_s:.2f}",
        "from": start.sumo_edge if start else trip.from_edge,
        "to": end.sumo_edge if end else trip.to_edge,
        **(extra or {}),
    }
    if start and start.start_m > 0:
        attributes["departPos"] = f"{start.start_m + min(depart_ahead_m, start.length_m):.2f}"
    if end and end.start_m + end.length_m < end.sumo_length_m - 0.005:
        attributes["arrivalPos"] = f"{end.start_m + end.length_m:.2f}"
    return attributes


@dataclass(frozen=True)
class _Place:
    """Where a twin edge lies on its SUMO edge (a row of :attr:`SumoNetwork.chains`)."""

    sumo_edge: str
    start_m: float
    length_m: float
    sumo_length_m: float


def _places(chains: pd.DataFrame | None) -> dict[str, _Place]:
    if chains is None:
        return {}
    columns = (chains[c].tolist() for c in ("edge_id", "sumo_edge", "start_m", "length_m", "sumo_length_m"))
    return {edge: _Place(*rest) for edge, *rest in zip(*columns, strict=True)}


def write_output_definitions(files: OutputFiles, options: SimOptions, path: Path) -> Path:
    """edgeData definitions: traffic, emissions and Harmonoise noise, one interval over the run after
    its warm-up; and the counting edges' traffic per counting interval from the warm-up's end, when
    there are any."""
    root = ET.Element("additional")
    begin, end = f"{options.warmup_s:g}", f"{options.warmup_s + options.end_s:g}"
    ET.SubElement(root, "edgeData", id="traffic", file=files.traffic, begin=begin, end=end)
    ET.SubElement(
        root, "edgeData", id="emissions", type="emissions", file=files.emissions, begin=begin, end=end
    )
    ET.SubElement(root, "edgeData", id="noise", type="harmonoise", file=files.noise, begin=begin, end=end)
    if options.count_edges:
        ET.SubElement(
            root,
            "edgeData",
            id="counts",
            file=files.counts,
            begin=begin,
            period=f"{options.count_interval_s:g}",
            edges=" ".join(sorted(options.count_edges)),
        )
    _write_xml(root, path)
    return path


def _check_trips(network: SumoNetwork, trips: Sequence[CarTrip]) -> None:
    if not trips:
        raise EngineError("no car trips to simulate", field="trips")
    ids = [t.trip_id for t in trips]
    if len(set(ids)) != len(ids):
        raise EngineError("trip ids must be unique", field="trips")
    unknown = sorted({e for t in trips for e in (t.from_edge, t.to_edge)} - network.edge_ids)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise EngineError(f"trips use edge(s) {shown} that the SUMO network lacks", field="trips")


def _check_bikes(network: SumoNetwork, bikes: Sequence[CarTrip]) -> None:
    wrong = sorted(t.trip_id for t in bikes if not t.trip_id.startswith(BIKE_PREFIX))
    if wrong:
        raise EngineError(
            f"bike trip ids must start with '{BIKE_PREFIX}': {', '.join(wrong[:5])}", field="bikes"
        )
    unknown = sorted({e for t in bikes for e in (t.from_edge, t.to_edge)} - network.edge_ids)
    if unknown:
        raise EngineError(
            f"bike trips use edge(s) {', '.join(unknown[:5])} that the SUMO network lacks", field="bikes"
        )


def _check_quality(result: SimResult, n_trips: int, options: SimOptions) -> None:
    """Fail loudly when the run is too broken to report on."""
    step = f"quality check (seed {result.seed}, outputs in {result.workdir})"
    if result.teleports > options.max_teleport_share * n_trips:
        raise QualityCheckFailed(
            f"{result.teleports:,} teleports for {n_trips:,} trips exceed the allowed share "
            f"{options.max_teleport_share:.0%}: the network is gridlocked or broken",
            field=step,
        )
    if result.unfinished > options.max_unfinished_share * n_trips:
        raise QualityCheckFailed(
            f"{result.unfinished:,} of {n_trips:,} trips did not arrive by {options.end_s:g} s, more than the "
            f"allowed {options.max_unfinished_share:.0%}: lengthen end_s or check the demand",
            field=step,
        )


def _bool(flag: bool) -> str:
    return "true" if flag else "false"


def _write_xml(root: ET.Element, path: Path) -> None:
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
