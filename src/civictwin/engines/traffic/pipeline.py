"""One scenario × one seed, and ensembles of them: demand → mode choice ↔ SUMO → KPIs.

For each scenario the network is built once (:func:`prepare_scenario`); then every seed runs in its
own process (:func:`run_ensemble`, a ``ProcessPoolExecutor``): car trips are sampled from the car share
of the OD matrix, simulated, and the simulated car times feed the mode choice again; shares are
averaged with the method of successive averages for ``iterations`` simulations. A closure therefore
shifts trips away from car and evaporates some car traffic instead of only adding delay.

Results live under ``<twin dir>/runs/<comparison id>/seeds/<scenario>/seed_<n>/``. A seed is written
into a temporary folder that is renamed into place only when complete (a ``complete`` marker inside
it is written last), so an interrupted run leaves nothing marked complete. Re-running the same
comparison id skips seeds whose results are complete *and* were made from the same inputs
(scenario file, parameters, twin data: the fingerprint in ``run.json``).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import geopandas as gpd
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from pyproj import Transformer

from civictwin.config import load_config
from civictwin.engines.traffic.demand import (
    DemandError,
    DemandParams,
    OdMatrix,
    add_event,
    gravity_od,
    load_od_csv,
    sample_car_trips,
    trip_pair,
    zone_edges,
)
from civictwin.engines.traffic.modechoice import (
    MODES,
    CarPaths,
    LevelOfService,
    Mode,
    ModeChoiceParams,
    car_paths,
    level_of_service,
    modal_split,
    mode_shares,
    msa_update,
    split_by_mode,
    transit_access,
)
from civictwin.engines.traffic.network import SumoNetwork, build_sumo_network
from civictwin.engines.traffic.outputs import SimResult
from civictwin.engines.traffic.run import CarTrip, SimOptions, run_sumo
from civictwin.errors import CivicTwinError, ScenarioError, StoreError
from civictwin.kpis.traffic import run_kpis
from civictwin.locking import LockHeld, exclusive
from civictwin.scenarios.interventions import ModifiedNetwork, apply_interventions
from civictwin.scenarios.spec import BASELINE, ScaleDemand, Scenario, TransitFrequency, load_scenario
from civictwin.store.base import Store

RUNS_DIR = "runs"
SEEDS_DIR = "seeds"
COMPLETE = "complete"
RUN_FILE = "run.json"
EDGES_FILE = "edges.parquet"

Progress = Callable[[str, int, int], None]
"""Called with (message, done, total) as seeds finish."""

FrameT = TypeVar("FrameT", bound=pd.DataFrame)


class PipelineParams(BaseModel):
    """Everything besides the scenario and the seed that shapes a run's numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    demand: DemandParams = DemandParams()
    mode_choice: ModeChoiceParams = ModeChoiceParams()
    iterations: Annotated[int, Field(ge=1, le=20)] = 3
    """Simulations per seed; between them the mode choice sees the simulated car times."""
    od_csv: str | None = None
    """A user OD matrix (person trips per hour) replacing the gravity model."""
    demand_window_s: Annotated[float, Field(gt=0)] = 3600.0
    clearance_s: Annotated[float, Field(ge=0)] = 1800.0
    """Simulated time after the demand window for the last trips to arrive."""
    mesoscopic: bool = False
    max_teleport_share: Annotated[float, Field(ge=0, le=1)] = 0.05
    max_unfinished_share: Annotated[float, Field(ge=0, le=1)] = 0.05

    def sim_options(self) -> SimOptions:
        """The SUMO options these parameters imply."""
        return SimOptions(
            end_s=self.demand_window_s + self.clearance_s,
            mesoscopic=self.mesoscopic,
            max_teleport_share=self.max_teleport_share,
            max_unfinished_share=self.max_unfinished_share,
        )


# ----------------------------------------------------------------------------------------- twin inputs


@dataclass(frozen=True)
class TwinInputs:
    """The tables of a twin the traffic pipeline reads, loaded once (the store is closed afterwards)."""

    twin_dir: Path
    crs: str
    edges: gpd.GeoDataFrame
    nodes: gpd.GeoDataFrame
    zones: gpd.GeoDataFrame
    stops: gpd.GeoDataFrame | None
    stop_frequency: pd.DataFrame | None
    stop_routes: pd.DataFrame | None
    """feed, stop_id, route_id, route_short_name, trips: how often each route serves each stop."""
    catalog: dict[str, dict[str, Any]]

    @property
    def data_fingerprint(self) -> str:
        """A hash of the catalogue records (source checksums, row counts): changes when the data does."""
        return hashlib.sha256(json.dumps(self.catalog, sort_keys=True, default=str).encode()).hexdigest()


def load_twin(twin: Path | Store, *, twin_dir: Path | None = None, need_routes: bool = False) -> TwinInputs:
    """Read network, zones and transit tables from a twin directory (``twin.toml``) or an open store.

    A twin directory's tables are kept in memory for the next call in this process (two twins at most):
    opening the store alone (DuckDB plus its spatial extension) takes 0.1–0.3 s, a real share of a
    single-seed run. The cache is keyed by the store file's identity, size and modification time (and
    its write-ahead log's), so a rebuilt twin (the build renames a new file into place) or any write to
    the store is read afresh. Each call gets its own shallow copies of the frames (copy-on-write), so a
    caller changing a frame never changes the cached one.
    """
    if isinstance(twin, Store):
        return _read_inputs(twin, twin_dir or Path.cwd(), need_routes)
    config = load_config(twin)
    path = config.store_path.resolve()
    return _shallow_copy(_load_cached(path, config.base_dir, _file_stamp(path), need_routes))


def _file_stamp(store_path: Path) -> tuple[tuple[int, int, int], ...]:
    """Identity, size and modification time of the store file and of its write-ahead log, if any."""
    stamps = []
    for path in (store_path, store_path.with_name(store_path.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            stat = path.stat()
            stamps.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(stamps)


@functools.lru_cache(maxsize=2)
def _load_cached(
    store_path: Path, twin_dir: Path, stamp: tuple[tuple[int, int, int], ...], need_routes: bool
) -> TwinInputs:
    """The tables of one version (``stamp``) of a store; see :func:`load_twin`."""
    from civictwin.store.duckdb import DuckDBStore

    with DuckDBStore.open(store_path, read_only=True) as store:
        return _read_inputs(store, twin_dir, need_routes)


def _shallow_copy(inputs: TwinInputs) -> TwinInputs:
    return dataclasses.replace(
        inputs,
        edges=inputs.edges.copy(deep=False),
        nodes=inputs.nodes.copy(deep=False),
        zones=inputs.zones.copy(deep=False),
        stops=_copy_or_none(inputs.stops),
        stop_frequency=_copy_or_none(inputs.stop_frequency),
        stop_routes=_copy_or_none(inputs.stop_routes),
        catalog=copy.deepcopy(inputs.catalog),
    )


def _copy_or_none(frame: FrameT | None) -> FrameT | None:
    return None if frame is None else frame.copy(deep=False)


def _read_inputs(store: Store, twin_dir: Path, need_routes: bool) -> TwinInputs:
    for table in ("network_edges", "network_nodes", "zones"):
        if not store.has_table(table):
            raise StoreError(f"the twin has no '{table}' table; build the twin first (civictwin build)")
    has_transit = store.has_table("transit_stops") and store.has_table("transit_stop_frequency")
    stops = store.read_frame("transit_stops") if has_transit else None
    frequency = store.read_table("transit_stop_frequency") if has_transit else None
    return TwinInputs(
        twin_dir=twin_dir,
        crs=store.crs,
        edges=store.read_frame("network_edges"),
        nodes=store.read_frame("network_nodes"),
        zones=store.read_frame("zones"),
        stops=stops,
        stop_frequency=frequency,
        stop_routes=_stop_routes(store) if need_routes and has_transit else None,
        catalog=store.records("catalog"),
    )


def _stop_routes(store: Store) -> pd.DataFrame | None:
    needed = ("transit_stop_times", "transit_trips", "transit_routes")
    if not all(store.has_table(t) for t in needed):
        return None
    times = store.read_table("transit_stop_times", columns=["feed", "trip_id", "stop_id"])
    trips = store.read_table("transit_trips", columns=["feed", "trip_id", "route_id"])
    routes = store.read_table("transit_routes", columns=["feed", "route_id", "route_short_name"])
    joined = times.merge(trips, on=["feed", "trip_id"]).merge(routes, on=["feed", "route_id"])
    counted = joined.groupby(["feed", "stop_id", "route_id", "route_short_name"], dropna=False).size()
    return counted.rename("trips").reset_index()


# ------------------------------------------------------------------------------------------ scenarios


def resolve_scenario(scenario: Scenario, scenarios_dir: Path) -> Scenario:
    """The scenario with the interventions of the scenarios it derives from prepended (chains allowed).

    ``baseline = "baseline"`` is the twin as built; any other name is ``<scenarios_dir>/<name>.toml``.
    """
    chain: list[Scenario] = [scenario]
    while chain[-1].baseline != BASELINE:
        parent_name = chain[-1].baseline
        if parent_name in {s.name for s in chain}:
            raise ScenarioError(
                f"baseline '{parent_name}' makes a cycle", path=scenario.origin, field="baseline"
            )
        path = scenarios_dir / f"{parent_name}.toml"
        if not path.is_file():
            raise ScenarioError(
                f"baseline '{parent_name}' has no file {path}", path=scenario.origin, field="baseline"
            )
        chain.append(load_scenario(path))
    if len(chain) == 1:
        return scenario
    interventions = [i for s in reversed(chain) for i in s.interventions]
    return scenario.model_copy(update={"interventions": interventions})


@dataclass(frozen=True)
class DemandLayer:
    """Person trips departing uniformly within ``[begin_s, end_s)``; events get a layer of their own."""

    od: OdMatrix
    begin_s: float
    end_s: float
    prefix: str
    edges_by_zone: dict[str, list[str]]


@dataclass(frozen=True)
class PreparedScenario:
    """A scenario made ready for its seeds: network built, demand and free-flow service computed."""

    scenario: Scenario
    network: SumoNetwork
    zones: gpd.GeoDataFrame
    edges: gpd.GeoDataFrame
    changes: pd.DataFrame
    layers: tuple[DemandLayer, ...]
    has_car_edges: np.ndarray
    free_flow: LevelOfService
    car_paths: CarPaths
    transit_source: str
    fingerprint: str

    @property
    def person_trips(self) -> OdMatrix:
        """All layers together."""
        total = sum((layer.od.trips for layer in self.layers), np.zeros_like(self.layers[0].od.trips))
        return OdMatrix(self.layers[0].od.zones, total)


def prepare_scenario(
    inputs: TwinInputs, scenario: Scenario, workdir: Path, params: PipelineParams
) -> PreparedScenario:
    """Apply the interventions, build the SUMO network and the demand of one scenario.

    The simulated edge set is the baseline's car edges for every scenario (a closed edge stays in the
    net with no car permission), so edge ids line up between scenarios. The OD matrix is distributed
    on the baseline network: a plan changes how people travel, not where they go.
    """
    modified = apply_interventions(inputs.edges, scenario, crs=inputs.crs, zones=inputs.zones)
    simulated_ids = set(
        inputs.edges.loc[inputs.edges["car"].fillna(False).astype(bool), "edge_id"].astype(str)
    )
    simulated = modified.edges[modified.edges["edge_id"].astype(str).isin(simulated_ids)]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="netconvert") as pool:
        building = pool.submit(
            build_sumo_network, simulated, inputs.nodes, workdir, additionals=modified.additionals
        )
        try:
            demand = _network_free_demand(inputs, scenario, modified, params)
        except CivicTwinError:
            building.result()  # a broken network is reported first, as it is the first step
            raise
        network = building.result()
    usable = set(modified.car_edges) & set(network.edge_ids)
    by_zone = {zone: [e for e in ids if e in usable] for zone, ids in demand.car_edges_by_zone.items()}
    has_car = np.array([len(by_zone[str(z)]) > 0 for z in inputs.zones["zone_id"]])
    layers = _demand_layers(inputs, modified, params, demand.od, by_zone)
    if sum(layer.od.total for layer in layers) <= 0:
        raise DemandError(
            "no trips to simulate: the zones have no residents or no destinations (check population, "
            "jobs_proxy_m2 and poi_* in the zones table, or give an OD matrix)",
            field="zones",
        )
    car_min = demand.car.minutes(has_car_edges=has_car)
    return PreparedScenario(
        scenario=scenario,
        network=network,
        zones=inputs.zones,
        edges=modified.edges,
        changes=modified.changes,
        layers=layers,
        has_car_edges=has_car,
        free_flow=demand.service.with_car_times(car_min),
        car_paths=demand.car,
        transit_source=demand.transit_source,
        fingerprint=_fingerprint(scenario, params, inputs),
    )


@dataclass(frozen=True)
class _NetworkFreeDemand:
    """What :func:`prepare_scenario` computes while netconvert runs: nothing here needs the SUMO net."""

    od: OdMatrix
    car_edges_by_zone: dict[str, list[str]]
    car: CarPaths
    service: LevelOfService
    """Free-flow service before zones without a simulated car edge are barred from car trips."""
    transit_source: str


def _network_free_demand(
    inputs: TwinInputs, scenario: Scenario, modified: ModifiedNetwork, params: PipelineParams
) -> _NetworkFreeDemand:
    od = _base_od(inputs, params)
    by_zone = zone_edges(inputs.zones, modified.edges, present=set(modified.car_edges))
    transit = transit_access(
        inputs.zones,
        inputs.stops,
        inputs.stop_frequency,
        params.mode_choice,
        _stop_factors(inputs, scenario, modified),
    )
    car = car_paths(inputs.zones, modified.edges)
    return _NetworkFreeDemand(
        od=od,
        car_edges_by_zone=by_zone,
        car=car,
        service=level_of_service(inputs.zones, modified.edges, transit, params.mode_choice, car=car),
        transit_source=transit.source,
    )


def _fingerprint(scenario: Scenario, params: PipelineParams, inputs: TwinInputs) -> str:
    # the interventions as resolved (a derived scenario includes its parents'), plus the file itself
    parts = [
        scenario.file_hash,
        scenario.model_dump_json(),
        params.model_dump_json(),
        inputs.data_fingerprint,
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _base_od(inputs: TwinInputs, params: PipelineParams) -> OdMatrix:
    zone_ids = [str(z) for z in inputs.zones["zone_id"]]
    if params.od_csv is not None:
        return load_od_csv(inputs.twin_dir / params.od_csv, zone_ids).scaled(params.demand.scale)
    return gravity_od(inputs.zones, params.demand, inputs.edges)


def _demand_layers(
    inputs: TwinInputs,
    modified: ModifiedNetwork,
    params: PipelineParams,
    od: OdMatrix,
    by_zone: dict[str, list[str]],
) -> tuple[DemandLayer, ...]:
    window = params.demand_window_s
    events: list[DemandLayer] = []
    to_twin = Transformer.from_crs("EPSG:4326", inputs.crs, always_xy=True)
    for item in (i for i in modified.demand if isinstance(i, ScaleDemand)):
        if item.factor is not None:
            od = od.scaled(item.factor)
            continue
        assert item.at is not None and item.extra_trips is not None  # checked by the scenario model
        xy = to_twin.transform(*item.at)
        extra = add_event(od, inputs.zones, xy, float(item.extra_trips), direction=item.direction)
        events.append(
            DemandLayer(
                od=extra,
                begin_s=item.begin_s,
                end_s=item.end_s if item.end_s is not None else window,
                prefix=f"e{len(events)}x",
                edges_by_zone=_event_edges(inputs, modified, by_zone, xy, item.radius_m),
            )
        )
    return (DemandLayer(od, 0.0, window, "t", by_zone), *events)


def _event_edges(
    inputs: TwinInputs,
    modified: ModifiedNetwork,
    by_zone: dict[str, list[str]],
    xy: tuple[float, float],
    radius_m: float,
) -> dict[str, list[str]]:
    """Car edges of the event's zone narrowed to those within ``radius_m`` of the event (if any are)."""
    from shapely.geometry import Point

    point = Point(xy)
    zone = str(inputs.zones.loc[inputs.zones.geometry.contains(point), "zone_id"].iloc[0])
    edges = modified.edges.set_index(modified.edges["edge_id"].astype(str))
    candidates = by_zone[zone]
    near = [e for e in candidates if edges.geometry.loc[e].distance(point) <= radius_m]
    return {**by_zone, zone: near or candidates}


def _stop_factors(
    inputs: TwinInputs, scenario: Scenario, modified: ModifiedNetwork
) -> dict[tuple[str, str], float]:
    """Departure factors per (feed, stop) from ``transit_frequency`` interventions.

    A route running ``factor`` times as often changes a stop's departures by ``(factor - 1)`` times that
    route's share of the stop's scheduled trips.
    """
    wanted = [i for i in modified.demand if isinstance(i, TransitFrequency)]
    if not wanted:
        return {}
    routes = inputs.stop_routes
    if routes is None or routes.empty:
        raise ScenarioError(
            "transit_frequency needs the twin's GTFS tables (none found)", path=scenario.origin
        )
    factors: dict[tuple[str, str], float] = {}
    per_stop = routes.groupby(["feed", "stop_id"])["trips"].sum()
    for item in wanted:
        match = routes[
            (routes["route_short_name"].astype(str) == item.route)
            | (routes["route_id"].astype(str) == item.route)
        ]
        if match.empty:
            raise ScenarioError(
                f"transit_frequency: route '{item.route}' is not in the twin's GTFS routes",
                path=scenario.origin,
                field="route",
            )
        share = match.groupby(["feed", "stop_id"])["trips"].sum() / per_stop
        for key, value in share.dropna().items():
            feed, stop = cast(tuple[str, str], key)
            factors[(feed, stop)] = factors.get((feed, stop), 1.0) + (item.factor - 1.0) * float(value)
    return factors


# ---------------------------------------------------------------------------------- one scenario, one seed


@dataclass(frozen=True)
class ScenarioRun:
    """The outcome of one scenario and one seed after the last simulation."""

    scenario: str
    seed: int
    kpis: dict[str, float]
    modal_split: dict[str, float]
    car_share_by_iteration: list[float]
    edges: pd.DataFrame
    """edge_id, flow (vehicles that used the edge in the run), speed_ms, co2_g, noise_db."""
    wall_s: float
    sumo_wall_s: float
    fingerprint: str = ""
    sumo_version: str = ""
    files: dict[str, str] = field(default_factory=dict)


def run_scenario(
    twin: Path | Store | TwinInputs,
    scenario: Scenario,
    seed: int,
    workdir: Path,
    params: PipelineParams | None = None,
) -> ScenarioRun:
    """One scenario, one seed, in this process: load the twin, prepare the scenario, simulate.

    ``twin`` is a twin directory, an open store or already loaded inputs. The network goes to
    ``workdir/network`` and SUMO's outputs to ``workdir/sumo``.
    """
    params = params or PipelineParams()
    if isinstance(twin, TwinInputs):
        inputs = twin
    elif isinstance(twin, Store):
        inputs = load_twin(twin, twin_dir=workdir, need_routes=_needs_routes([scenario]))
    else:
        inputs = load_twin(twin, need_routes=_needs_routes([scenario]))
    prepared = prepare_scenario(inputs, scenario, workdir / "network", params)
    return run_prepared(prepared, seed, workdir / "sumo", params)


def run_prepared(prepared: PreparedScenario, seed: int, workdir: Path, params: PipelineParams) -> ScenarioRun:
    """Simulate one seed of a prepared scenario with mode-choice feedback (MSA over ``iterations``).

    Iteration 0 splits demand with free-flow car times; each later iteration uses the car times of the
    previous simulation and averages the shares with the earlier ones. Each iteration samples its own
    trips from ``(seed, iteration)``; SUMO runs with ``seed``. Only the last simulation's outputs are kept.
    """
    start = time.perf_counter()
    shares = mode_shares(prepared.free_flow, params.mode_choice)
    car_share_history: list[float] = []
    sumo_wall = 0.0
    result: SimResult | None = None
    for iteration in range(params.iterations):
        if result is not None:
            los = _simulated_service(prepared, result)
            shares = msa_update(shares, mode_shares(los, params.mode_choice), iteration)
            shutil.rmtree(result.workdir, ignore_errors=True)
        car_share_history.append(modal_split(prepared.person_trips, shares)["car"])
        trips = _car_trips(prepared, shares, params, seed, iteration)
        run_dir = workdir / f"iteration_{iteration}"
        run_dir.mkdir(parents=True, exist_ok=True)
        result = run_sumo(prepared.network, trips, seed=seed, workdir=run_dir, options=params.sim_options())
        sumo_wall += result.wall_s
    assert result is not None  # iterations >= 1
    split = modal_split(prepared.person_trips, shares)
    kpis = {**run_kpis(result), **_demand_kpis(prepared.person_trips, shares)}
    return ScenarioRun(
        scenario=prepared.scenario.name,
        seed=seed,
        kpis=kpis,
        modal_split={str(mode): share for mode, share in split.items()},
        car_share_by_iteration=car_share_history,
        edges=_edge_table(result),
        wall_s=time.perf_counter() - start,
        sumo_wall_s=sumo_wall,
        fingerprint=prepared.fingerprint,
        sumo_version=result.sumo_version,
    )


def _car_trips(
    prepared: PreparedScenario,
    shares: dict[Mode, np.ndarray],
    params: PipelineParams,
    seed: int,
    iteration: int,
) -> list[CarTrip]:
    occupancy = params.mode_choice.car_occupancy
    trips: list[CarTrip] = []
    for layer in prepared.layers:
        cars = split_by_mode(layer.od, shares)["car"].scaled(1.0 / occupancy)
        trips += sample_car_trips(
            cars,
            layer.edges_by_zone,
            seed=seed,
            iteration=iteration,
            begin_s=layer.begin_s,
            end_s=layer.end_s,
            prefix=layer.prefix,
        )
    return sorted(trips, key=lambda t: (t.depart_s, t.trip_id))


def _simulated_service(prepared: PreparedScenario, result: SimResult) -> LevelOfService:
    """Free-flow service with car times replaced by what the simulation showed."""
    n = len(prepared.zones)
    arrived = result.trips[result.trips["arrived"].astype(bool)]
    observed = np.full((n, n), np.nan)
    if not arrived.empty:
        pairs = np.array([trip_pair(str(t)) for t in arrived["trip_id"]])
        frame = pd.DataFrame(
            {"o": pairs[:, 0], "d": pairs[:, 1], "min": arrived["duration_s"].to_numpy() / 60.0}
        )
        means = frame.groupby(["o", "d"])["min"].mean()
        observed[means.index.get_level_values(0), means.index.get_level_values(1)] = means.to_numpy()
    moving = result.edges[result.edges["speed_ms"].notna()]
    speeds = dict(zip(moving["edge_id"].astype(str), moving["speed_ms"].astype(float), strict=True))
    minutes = prepared.car_paths.minutes(
        edge_speed_ms=speeds, observed_min=observed, has_car_edges=prepared.has_car_edges
    )
    return prepared.free_flow.with_car_times(minutes)


def _demand_kpis(od: OdMatrix, shares: dict[Mode, np.ndarray]) -> dict[str, float]:
    split = modal_split(od, shares)
    return {"person_trips": od.total, **{f"share_{m}": float(split[m]) for m in MODES}}


def _edge_table(result: SimResult) -> pd.DataFrame:
    edges = result.edges
    return pd.DataFrame(
        {
            "edge_id": edges["edge_id"].astype(str),
            "flow": edges["vehicles"].fillna(0.0).astype(float),
            "speed_ms": edges["speed_ms"].astype(float),
            "co2_g": edges["CO2_g"].fillna(0.0).astype(float),
            "noise_db": edges["noise_dB"].astype(float),
        }
    )


# ----------------------------------------------------------------------------------- persisted seed results


def seed_dir(comparison_dir: Path, scenario: str, seed: int) -> Path:
    """Where one scenario-seed result lives."""
    return comparison_dir / SEEDS_DIR / scenario / f"seed_{seed}"


def save_run(run: ScenarioRun, final_dir: Path, staging: Path) -> ScenarioRun:
    """Write ``run`` into ``staging``, mark it complete and rename it to ``final_dir`` (atomic on POSIX)."""
    staging.mkdir(parents=True, exist_ok=True)
    run.edges.to_parquet(staging / EDGES_FILE, index=False)
    record = {
        "scenario": run.scenario,
        "seed": run.seed,
        "fingerprint": run.fingerprint,
        "kpis": run.kpis,
        "modal_split": run.modal_split,
        "car_share_by_iteration": run.car_share_by_iteration,
        "wall_s": run.wall_s,
        "sumo_wall_s": run.sumo_wall_s,
        "sumo_version": run.sumo_version,
    }
    (staging / RUN_FILE).write_text(json.dumps(record, indent=1, default=_json_number), encoding="utf-8")
    (staging / COMPLETE).write_text("", encoding="utf-8")
    if final_dir.exists():
        shutil.rmtree(final_dir)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, final_dir)
    return load_run(final_dir)


def _json_number(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load_run(directory: Path) -> ScenarioRun:
    """A complete seed result read back from disk."""
    record = json.loads((directory / RUN_FILE).read_text(encoding="utf-8"))
    return ScenarioRun(
        scenario=record["scenario"],
        seed=int(record["seed"]),
        kpis={k: float(v) if v is not None else float("nan") for k, v in record["kpis"].items()},
        modal_split={k: float(v) for k, v in record["modal_split"].items()},
        car_share_by_iteration=[float(v) for v in record["car_share_by_iteration"]],
        edges=pd.read_parquet(directory / EDGES_FILE),
        wall_s=float(record["wall_s"]),
        sumo_wall_s=float(record["sumo_wall_s"]),
        fingerprint=str(record["fingerprint"]),
        sumo_version=str(record.get("sumo_version", "")),
        files={"run": str(directory / RUN_FILE), "edges": str(directory / EDGES_FILE)},
    )


def complete_run(directory: Path, fingerprint: str) -> ScenarioRun | None:
    """The saved result in ``directory`` if it is complete and made from the same inputs, else None."""
    if not (directory / COMPLETE).is_file():
        return None
    try:
        run = load_run(directory)
    except (OSError, ValueError, KeyError):
        return None
    return run if run.fingerprint == fingerprint else None


def run_and_save(
    prepared: PreparedScenario, seed: int, final_dir: Path, params: PipelineParams
) -> ScenarioRun:
    """Run one seed in a staging folder beside ``final_dir`` and move it into place when complete.

    The staging folder is removed on failure, so nothing partial is left behind.
    """
    staging = final_dir.with_name(f".{final_dir.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        run = run_prepared(prepared, seed, staging / "sumo", params)
        return save_run(run, final_dir, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# ------------------------------------------------------------------------------------------------ ensembles


@dataclass(frozen=True)
class Ensemble:
    """Every scenario's runs over the seeds, and what the orchestration did."""

    comparison_id: str
    comparison_dir: Path
    scenarios: tuple[Scenario, ...]
    seeds: tuple[int, ...]
    params: PipelineParams
    inputs: TwinInputs
    prepared: dict[str, PreparedScenario]
    runs: dict[str, list[ScenarioRun]]
    resumed: list[tuple[str, int]]
    wall_s: float


def comparison_dir(twin_dir: Path, comparison_id: str) -> Path:
    """``<twin dir>/runs/<comparison id>``."""
    return twin_dir / RUNS_DIR / comparison_id


def seed_list(seeds: int | Sequence[int]) -> tuple[int, ...]:
    """``5`` → seeds 1 … 5; an explicit list is kept (duplicates dropped)."""
    if isinstance(seeds, int):
        if seeds < 1:
            raise ScenarioError("the number of seeds must be at least 1", field="seeds")
        return tuple(range(1, seeds + 1))
    return tuple(dict.fromkeys(int(s) for s in seeds))


def run_ensemble(
    twin: Path | TwinInputs,
    scenarios: Sequence[Scenario],
    *,
    comparison_id: str,
    seeds: int | Sequence[int] = 5,
    workers: int = 2,
    params: PipelineParams | None = None,
    progress: Progress | None = None,
) -> Ensemble:
    """Run every scenario over every seed, one process per seed (at most ``workers`` at a time).

    Seeds whose results are already complete under the same comparison id (and fingerprint) are
    skipped and listed in :attr:`Ensemble.resumed`.
    """
    start = time.perf_counter()
    params = params or PipelineParams()
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        raise ScenarioError(f"scenario names must differ, got {', '.join(names)}", field="scenarios")
    chosen = seed_list(seeds)
    with _seed_pool(workers, len(scenarios) * len(chosen)) as pool:
        inputs = (
            twin if isinstance(twin, TwinInputs) else load_twin(twin, need_routes=_needs_routes(scenarios))
        )
        directory = comparison_dir(inputs.twin_dir, comparison_id)
        with _sole_run(directory, comparison_id):
            prepared = {}
            for scenario in scenarios:
                if progress:
                    progress(f"preparing '{scenario.name}': network and demand", 0, 0)
                prepared[scenario.name] = prepare_scenario(
                    inputs, scenario, directory / "networks" / scenario.name, params
                )
            runs, resumed, todo = _resume(directory, prepared, chosen)
            total = len(todo) + len(resumed)
            if progress:
                progress(
                    f"{len(resumed)} seed run(s) already complete, {len(todo)} to run", len(resumed), total
                )
            _execute(pool, todo, prepared, directory, params, runs, progress, len(resumed), total)
    return Ensemble(
        comparison_id=comparison_id,
        comparison_dir=directory,
        scenarios=tuple(scenarios),
        seeds=chosen,
        params=params,
        inputs=inputs,
        prepared=prepared,
        runs={name: [runs[name][seed] for seed in chosen] for name in names},
        resumed=resumed,
        wall_s=time.perf_counter() - start,
    )


@contextlib.contextmanager
def _sole_run(directory: Path, comparison_id: str) -> Iterator[None]:
    """Hold the comparison's lock (``<dir>/.lock``) while it runs.

    A second run of the same comparison id would rewrite the scenario networks under the first one and
    remove its seed folders in progress as if a killed run had left them, so it is refused.
    """
    try:
        with exclusive(directory / ".lock", wait=False):
            yield
    except LockHeld:
        raise ScenarioError(
            f"comparison '{comparison_id}' is already running in another process; wait for it to finish "
            "or give this one another --id",
            path=directory,
        ) from None


def _resume(
    directory: Path, prepared: dict[str, PreparedScenario], seeds: Sequence[int]
) -> tuple[dict[str, dict[int, ScenarioRun]], list[tuple[str, int]], list[tuple[str, int]]]:
    """The seed runs already complete (with a matching fingerprint), which those are, and which remain.

    Staging folders left by a killed run are removed: they are never resumed from.
    """
    runs: dict[str, dict[int, ScenarioRun]] = {name: {} for name in prepared}
    resumed: list[tuple[str, int]] = []
    todo: list[tuple[str, int]] = []
    for name, scenario in prepared.items():
        for seed in seeds:
            final = seed_dir(directory, name, seed)
            done = complete_run(final, scenario.fingerprint)
            if done is not None:
                runs[name][seed] = done
                resumed.append((name, seed))
                continue
            todo.append((name, seed))
            for stale in final.parent.glob(f".{final.name}.partial-*"):
                shutil.rmtree(stale, ignore_errors=True)
    return runs, resumed, todo


def _needs_routes(scenarios: Collection[Scenario]) -> bool:
    return any(isinstance(i, TransitFrequency) for s in scenarios for i in s.interventions)


@contextlib.contextmanager
def _seed_pool(workers: int, most_runs: int) -> Iterator[ProcessPoolExecutor]:
    """Worker processes for the seed runs, started at once so that their interpreters start and import
    while this process loads the twin and prepares the scenarios.

    On any error or interrupt, queued seeds are cancelled and running ones interrupted.
    """
    size = max(1, min(workers, most_runs))
    # spawn: a fresh interpreter per worker, safe beside threads (progress bars) and open libraries
    pool = ProcessPoolExecutor(
        max_workers=size, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init
    )
    with pool:
        with _children_ignore_interrupts():
            for _ in range(size):  # a spawn pool starts one worker per submitted task, up to its size
                pool.submit(_started)
        try:
            yield pool
        except BaseException:
            _stop(pool)
            raise


@contextlib.contextmanager
def _children_ignore_interrupts() -> Iterator[None]:
    """Processes started inside begin with SIGINT ignored (an ignored signal survives exec) until their
    initializer installs the handler: a Ctrl-C while a worker still starts up cannot kill it with a
    traceback. Only the main thread may change signal handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _execute(
    pool: ProcessPoolExecutor,
    todo: list[tuple[str, int]],
    prepared: dict[str, PreparedScenario],
    directory: Path,
    params: PipelineParams,
    runs: dict[str, dict[int, ScenarioRun]],
    progress: Progress | None,
    done: int,
    total: int,
) -> None:
    futures: dict[Future[ScenarioRun], tuple[str, int]] = {
        pool.submit(_seed_job, prepared[name], seed, seed_dir(directory, name, seed), params): (name, seed)
        for name, seed in todo
    }
    for future in as_completed(futures):
        name, seed = futures[future]
        runs[name][seed] = future.result()
        done += 1
        if progress:
            progress(f"{name} seed {seed} done", done, total)


_interrupted = False
"""Set in a worker once it was interrupted: seeds queued to it afterwards are not started."""
_running_seed = False
"""Whether this worker is inside a seed run (an interrupt then stops that run)."""


def _worker_init() -> None:
    def on_interrupt(signum: int, frame: object) -> None:
        # Ctrl-C reaches the worker twice (from the terminal and from the parent's _stop): only the
        # first stops the running seed, so the second cannot cut its clean-up short. An idle worker
        # just waits to be shut down by the parent.
        global _interrupted
        first = not _interrupted
        _interrupted = True
        if first and _running_seed:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_interrupt)


def _started() -> None:
    """Nothing: submitted once per worker so that each starts (and imports this module) at once."""


def _seed_job(prepared: PreparedScenario, seed: int, final_dir: Path, params: PipelineParams) -> ScenarioRun:
    global _running_seed
    if _interrupted:
        raise KeyboardInterrupt(f"seed {seed} not started: the run was interrupted")
    _running_seed = True
    try:
        return run_and_save(prepared, seed, final_dir, params)
    finally:
        _running_seed = False


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel queued seeds and interrupt running ones (each removes its staging folder and SUMO process)."""
    pool.shutdown(wait=False, cancel_futures=True)
    for child in multiprocessing.active_children():
        if child.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGINT)


# ------------------------------------------------------------------------------------------- parameters

PARAMS_FILENAME = "traffic.toml"
BUILTIN_SCENARIOS = Path(__file__).resolve().parents[2] / "data" / "scenarios"
"""The demo's ready-made scenario files (``close_main_street``, ``zone_30``)."""


def load_params(twin_dir: Path, **overrides: Any) -> PipelineParams:
    """The twin's traffic parameters: ``<twin dir>/traffic.toml`` if present, else the defaults.

    ``overrides`` (e.g. ``iterations=2`` from the command line) replace top-level values; ``None`` values
    are ignored. The file holds the :class:`PipelineParams` fields, with ``[demand]`` and
    ``[mode_choice]`` tables.
    """
    import tomllib

    from pydantic import ValidationError

    from civictwin.errors import ConfigError

    path = twin_dir / PARAMS_FILENAME
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"not valid TOML: {exc}", path=path) from None
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return PipelineParams.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise ConfigError(f"{key}: {message}", path=path if path.is_file() else "parameters") from None


def copy_builtin_scenarios(twin_dir: Path) -> list[Path]:
    """Copy the demo's scenario files into ``<twin dir>/scenarios/`` (existing files are kept)."""
    target = twin_dir / "scenarios"
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for source in sorted(BUILTIN_SCENARIOS.glob("*.toml")):
        destination = target / source.name
        if not destination.exists():
            shutil.copyfile(source, destination)
            copied.append(destination)
    return copied
