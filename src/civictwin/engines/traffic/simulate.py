"""One seed of a prepared scenario: mode choice ↔ SUMO, iterated with the method of successive averages.

Iteration 0 splits demand with free-flow car times; each later iteration uses the car times of the
previous simulation and averages the shares with the earlier ones. A closure therefore shifts trips
away from car and evaporates some car traffic instead of only adding delay. Each iteration samples its
own car trips from ``(seed, iteration)``; SUMO runs with ``seed``. Only the last simulation's outputs
are kept. A calibrated twin's mode choice pivots on its base day's shares (:mod:`.pivot`). A seed may
start from a first round simulated elsewhere (:class:`FirstRound`: the calibration's check run takes the
loop's last run, which repeats its first round) and simulate only the rounds after it.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from civictwin.engines.traffic.demand import OdMatrix, sample_car_trips, trip_pair
from civictwin.engines.traffic.focus import focus_seed_kpis
from civictwin.engines.traffic.gateways import GATEWAY_PREFIX, gateway_car_trips
from civictwin.engines.traffic.inputs import TwinInputs, load_twin, needs_routes
from civictwin.engines.traffic.kpis import (
    bike_kpis,
    bus_kpis,
    bus_speed_kmh,
    edge_table,
    run_kpis,
    zone_totals,
)
from civictwin.engines.traffic.modechoice import (
    MODES,
    LevelOfService,
    Mode,
    modal_split,
    mode_shares,
    msa_update,
    split_by_mode,
    utilities,
)
from civictwin.engines.traffic.outputs import SimResult
from civictwin.engines.traffic.params import TrafficParams
from civictwin.engines.traffic.prepare import PreparedScenario, prepare_scenario
from civictwin.engines.traffic.run import BIKE_PREFIX, CarTrip, run_sumo
from civictwin.engines.traffic.transit import GTFS_RUN_PREFIX
from civictwin.engines.traffic.transitpaths import line_speeds
from civictwin.engines.traffic.warmup import warmup_trips
from civictwin.scenarios.spec import Scenario
from civictwin.store.base import Store


@dataclass(frozen=True)
class SeedOutcome:
    """The outcome of one scenario and one seed after the last simulation."""

    scenario: str
    seed: int
    kpis: dict[str, float]
    modal_split: dict[str, float]
    car_share_by_iteration: list[float]
    edges: pd.DataFrame
    """edge_id, flow (vehicles that used the edge in the run), speed_ms, co2_g, noise_db."""
    zones: pd.DataFrame
    """zone_id, vehicle_km, co2_kg, noise_db of every analysis zone (see :func:`zone_totals`)."""
    counts: pd.DataFrame
    """edge_id, hour (from the start of the run), vehicles: at every counting edge, hour by hour."""
    passages: pd.DataFrame
    """trip_id, edge_id, hour: which trip a counting edge saw when (calibration runs only)."""
    wall_s: float
    sumo_wall_s: float
    sumo_version: str
    bus_trips: pd.DataFrame | None = None
    """The last simulation's transit runs (``outputs.BUS_TRIP_COLUMNS``); None without buses."""
    mode_shares: dict[Mode, np.ndarray] | None = dataclasses.field(default=None, compare=False, repr=False)
    """Each mode's share of every OD pair in the last simulation (what the calibration holds fixed)."""
    service: LevelOfService | None = dataclasses.field(default=None, compare=False, repr=False)
    """The level of service the last simulation showed (``keep_service`` only)."""


@dataclass(frozen=True)
class FirstRound:
    """A seed's first mode-choice round simulated elsewhere: the shares it split the demand with and
    the level of service its simulation showed (what the second round's mode choice starts from)."""

    shares: dict[Mode, np.ndarray]
    """Each mode's share of every OD pair."""
    service: LevelOfService


def first_round_of(outcome: SeedOutcome) -> FirstRound:
    """``outcome``'s last simulation as the first round of another seed's simulation; the outcome must
    have kept its level of service (``keep_service``), else ValueError."""
    if outcome.mode_shares is None or outcome.service is None:
        raise ValueError("the outcome kept no level of service (simulate it with keep_service=True)")
    return FirstRound(shares=outcome.mode_shares, service=outcome.service)


SAME_SHARES = 1e-9
"""Largest difference of any mode's share of any OD pair between a given first round and the seed's own
first round (:func:`simulate_seed`): float rounding (about 1e-16, e.g. the pivot's normalisation
``s_m / Σ s_k`` of shares that sum to 1), not a different split."""


def simulate_seed(
    prepared: PreparedScenario,
    seed: int,
    workdir: Path,
    *,
    passages: bool = False,
    fixed_shares: dict[Mode, np.ndarray] | None = None,
    keep_service: bool = False,
    first_round: FirstRound | None = None,
) -> SeedOutcome:
    """Simulate one seed of a prepared scenario with mode-choice feedback (MSA over ``iterations``);
    with ``passages`` the last simulation also records which trip passed which counting edge. With
    ``fixed_shares`` (each mode's share of every OD pair) the mode choice is not evaluated: every
    iteration splits the demand with those shares (the calibration's inner simulations). With
    ``keep_service`` the outcome keeps the level of service the last simulation showed (the base day a
    calibration records). With ``first_round`` the first round is not simulated: the service it showed
    stands for iteration 0's, and SUMO runs iterations 1 to ``iterations`` − 1 only. The caller vouches
    that it simulated this demand (same seed and trips); its shares must be the seed's own first-round
    shares up to :data:`SAME_SHARES`, which then carry on, so the outcome is the full run's. ValueError
    when they differ, with ``fixed_shares`` or with fewer than two iterations."""
    start = time.perf_counter()
    params = prepared.params
    if first_round is not None and (fixed_shares is not None or params.iterations < 2):
        raise ValueError("a given first round needs the mode choice evaluated over at least two iterations")
    shares = (
        fixed_shares
        if fixed_shares is not None
        else chosen_shares(prepared, prepared.free_flow, free_flow=True)
    )
    car_share_history: list[float] = []
    if first_round is not None:
        _check_first_round(first_round, shares)
        car_share_history.append(modal_split(prepared.person_trips, shares)["car"])
    sumo_wall = 0.0
    result: SimResult | None = None
    for iteration in range(0 if first_round is None else 1, params.iterations):
        if iteration > 0 and fixed_shares is None:
            los = _previous_service(prepared, result, first_round)
            shares = msa_update(shares, chosen_shares(prepared, los), iteration)
        if result is not None:
            shutil.rmtree(result.workdir, ignore_errors=True)
        car_share_history.append(modal_split(prepared.person_trips, shares)["car"])
        trips = _car_trips(prepared, shares, params, seed, iteration)
        run_dir = workdir / f"iteration_{iteration}"
        run_dir.mkdir(parents=True, exist_ok=True)
        last = iteration == params.iterations - 1
        options = dataclasses.replace(params.sim_options(), count_passages=passages and last)
        result = run_sumo(
            prepared.network,
            trips,
            seed=seed,
            workdir=run_dir,
            options=options,
            buses=prepared.buses,
            bikes=_bike_trips(prepared, shares, seed, iteration),
            warmup=warmup_trips(trips, warmup_s=params.warmup_s),
        )
        sumo_wall += result.wall_s
    assert result is not None  # at least one round simulated here
    split = modal_split(prepared.person_trips, shares)
    service = _simulated_service(prepared, result) if keep_service else None
    edges = edge_table(result)
    return SeedOutcome(
        scenario=prepared.scenario.name,
        seed=seed,
        kpis={
            **run_kpis(result),
            **bus_kpis(result.bus_trips),
            **bike_kpis(result.bike_trips),
            **_demand_kpis(prepared.person_trips, shares),
            **_focus_kpis(prepared, result, seed, workdir),
        },
        modal_split={str(mode): share for mode, share in split.items()},
        car_share_by_iteration=car_share_history,
        edges=edges,
        zones=zone_totals(edges, prepared.placement, prepared.zones["zone_id"]),
        counts=result.counts.rename(columns={"interval": "hour"}),
        passages=result.passages.rename(columns={"interval": "hour"}),
        wall_s=time.perf_counter() - start,
        sumo_wall_s=sumo_wall,
        sumo_version=result.sumo_version,
        bus_trips=result.bus_trips if prepared.buses is not None else None,
        mode_shares=shares,
        service=service,
    )


def chosen_shares(
    prepared: PreparedScenario, los: LevelOfService, *, free_flow: bool = False
) -> dict[Mode, np.ndarray]:
    """Each mode's share of every OD pair at ``los``: the logit's, or with a calibrated base day
    (``params.base_modes``) the base day's shares moved by the change in utility from it
    (:meth:`~civictwin.engines.traffic.pivot.BaseModes.shares_at`; ``free_flow`` for a first round)."""
    choice = prepared.params.mode_choice
    absolute = mode_shares(los, choice)
    base = prepared.params.base_modes
    if base is None:
        return absolute
    return base.shares_at(utilities(los, choice), absolute=absolute, free_flow=free_flow)


def run_scenario(
    twin: Path | Store | TwinInputs, scenario: Scenario, seed: int, workdir: Path, params: TrafficParams
) -> SeedOutcome:
    """One scenario, one seed, in this process: load the twin, prepare the scenario, simulate.

    ``twin`` is a twin directory, an open store or already loaded inputs. The network goes to
    ``workdir/network`` and SUMO's outputs to ``workdir/sumo``.
    """
    if isinstance(twin, TwinInputs):
        inputs = twin
    elif isinstance(twin, Store):
        inputs = load_twin(twin, twin_dir=workdir, need_routes=needs_routes([scenario]))
    else:
        inputs = load_twin(twin, need_routes=needs_routes([scenario]))
    prepared = prepare_scenario(inputs, scenario, workdir / "network", params)
    return simulate_seed(prepared, seed, workdir / "sumo")


def _car_trips(
    prepared: PreparedScenario,
    shares: dict[Mode, np.ndarray],
    params: TrafficParams,
    seed: int,
    iteration: int,
) -> list[CarTrip]:
    occupancy = params.mode_choice.car_occupancy
    trips: list[CarTrip] = []
    for layer in prepared.layers:
        for od, begin_s, end_s, prefix in layer.slices():
            trips += sample_car_trips(
                split_by_mode(od, shares)["car"].scaled(1.0 / occupancy),
                layer.edges_by_zone,
                seed=seed,
                iteration=iteration,
                begin_s=begin_s,
                end_s=end_s,
                prefix=prefix,
            )
    if prepared.gateways is not None:
        trips += gateway_car_trips(prepared.gateways, seed=seed, iteration=iteration)
    return sorted(trips, key=lambda t: (t.depart_s, t.trip_id))


def _bike_trips(
    prepared: PreparedScenario, shares: dict[Mode, np.ndarray], seed: int, iteration: int
) -> list[CarTrip]:
    """The bike person trips as bicycles (``simulate_bikes``), sampled as car trips are."""
    if prepared.bike_edges_by_zone is None:
        return []
    trips: list[CarTrip] = []
    for layer in prepared.layers:
        for od, begin_s, end_s, prefix in layer.slices(f"{BIKE_PREFIX}{layer.prefix}"):
            trips += sample_car_trips(
                split_by_mode(od, shares)["bike"],
                prepared.bike_edges_by_zone,
                seed=seed,
                iteration=iteration,
                begin_s=begin_s,
                end_s=end_s,
                prefix=prefix,
            )
    return trips


def _check_first_round(first_round: FirstRound, shares: dict[Mode, np.ndarray]) -> None:
    """Raise ValueError unless ``first_round`` split the demand with ``shares`` (the seed's own first
    round's) up to :data:`SAME_SHARES`: its service would otherwise answer a different demand."""
    for mode in MODES:
        given, own = np.asarray(first_round.shares[mode]), np.asarray(shares[mode])
        if given.shape != own.shape or not np.allclose(
            given, own, rtol=0.0, atol=SAME_SHARES, equal_nan=True
        ):
            raise ValueError(
                f"the given first round split the {mode} trips otherwise than this seed's first round"
            )


def _previous_service(
    prepared: PreparedScenario, result: SimResult | None, first_round: FirstRound | None
) -> LevelOfService:
    """The level of service the previous round showed: its simulation's, or the given first round's
    when the previous round is that one (not simulated here)."""
    if result is not None:
        return _simulated_service(prepared, result)
    assert first_round is not None  # a later round without a simulation before it follows a given first round
    return first_round.service


def _simulated_service(prepared: PreparedScenario, result: SimResult) -> LevelOfService:
    """Free-flow service with car times replaced by what the simulation showed, transit times over the
    simulated lines at each line's simulated speed (elsewhere the assumed in-vehicle times at the
    simulated speed of the twin's GTFS runs) and cycling times at the simulated bikes' speed when they
    were simulated (docs/methods-transit.md)."""
    n = len(prepared.zones)
    trips = result.trips
    arrived = trips[
        trips["arrived"].astype(bool) & ~trips["trip_id"].astype(str).str.startswith(GATEWAY_PREFIX)
    ]
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
    service = prepared.free_flow.with_car_times(minutes)
    planned = prepared.params.mode_choice
    bus_speed = bus_speed_kmh(result.bus_trips, prefix=GTFS_RUN_PREFIX)
    if prepared.line_transit is not None:
        service = prepared.line_transit.applied(
            service,
            prepared.zones,
            planned,
            line_speed_kmh=line_speeds(result.bus_trips),
            assumed_factor=1.0 if bus_speed is None else planned.pt_speed_kmh / bus_speed,
        )
    elif bus_speed is not None:
        service = service.with_pt_speed(bus_speed, planned_kmh=planned.pt_speed_kmh)
    bike_speed = bike_kpis(result.bike_trips).get("bike_mean_speed_kmh", float("nan"))
    if np.isfinite(bike_speed) and bike_speed > 0:
        service = service.with_bike_speed(bike_speed, planned_kmh=planned.bike_speed_kmh)
    return service


def _focus_kpis(prepared: PreparedScenario, result: SimResult, seed: int, workdir: Path) -> dict[str, float]:
    """The focus area's KPIs from a microscopic run on the last city run's traffic (none without
    ``focus_zones``)."""
    if not prepared.params.focus_zones:
        return {}
    return focus_seed_kpis(prepared, result.workdir, seed=seed, workdir=workdir / "focus")


def _demand_kpis(od: OdMatrix, shares: dict[Mode, np.ndarray]) -> dict[str, float]:
    split = modal_split(od, shares)
    return {"person_trips": od.total, **{f"share_{m}": float(split[m]) for m in MODES}}
