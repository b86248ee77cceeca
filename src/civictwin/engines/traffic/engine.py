"""The traffic engine behind the engine seam: SUMO with demand that reacts, as a civictwin plug-in.

Registered like any third-party engine (``pyproject.toml``, entry point group ``civictwin.engines``).
:meth:`TrafficEngine.prepare` applies the scenario's traffic interventions and builds the SUMO network
and the demand; :meth:`TrafficEngine.run` simulates one seed and returns its KPIs, the per-edge table
(mapped onto ``network_edges``) and the per-zone table (mapped onto ``zones``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from civictwin import __version__
from civictwin.engines.base import EngineReport, EngineResult, TableSpec, TwinContext
from civictwin.engines.traffic.calibration import latest_record, with_calibration
from civictwin.engines.traffic.countnext import latest_ranking
from civictwin.engines.traffic.demand import hour_factors
from civictwin.engines.traffic.edits import validate_scenario
from civictwin.engines.traffic.fitreport import calibration_summary, missing_summary
from civictwin.engines.traffic.focus import simulation_levels
from civictwin.engines.traffic.inputs import READS, TwinInputs, load_twin, needs_routes
from civictwin.engines.traffic.interventions import INTERVENTIONS, SCENARIO_EXAMPLES
from civictwin.engines.traffic.kpis import as_kpis, bus_line_table
from civictwin.engines.traffic.params import TrafficParams, load_params
from civictwin.engines.traffic.plausibility import DemandFacts, demand_caveats, demand_warnings
from civictwin.engines.traffic.prepare import PreparedScenario, prepare_scenario
from civictwin.engines.traffic.report import traffic_report
from civictwin.engines.traffic.simulate import SeedOutcome, simulate_seed
from civictwin.engines.traffic.sumo import sumo_version
from civictwin.engines.traffic.transit import line_shapes, line_window_problems
from civictwin.i18n import N_
from civictwin.runs import SeedRecord
from civictwin.scenarios.spec import Intervention, Scenario

EDGES = TableSpec(
    name="edges",
    key=("edge_id",),
    layer="network_edges",
    values=(("flow", "vehicles"), ("speed_ms", "m/s"), ("co2_g", "g"), ("noise_db", "dB(A)")),
    label=N_("Street edges: cars, speed, CO2 and noise"),
)
ZONES = TableSpec(
    name="zones",
    key=("zone_id",),
    layer="zones",
    values=(("vehicle_km", "km"), ("co2_kg", "kg"), ("noise_db", "dB(A)")),
    label=N_("Analysis zones: car traffic, CO2 and noise"),
)
COUNTS = TableSpec(
    name="counts",
    key=("edge_id", "hour"),
    layer="network_edges",
    values=(("vehicles", "vehicles"),),
    label=N_("Counting edges: vehicles hour by hour from the start of the run"),
)
BUS_LINES = TableSpec(
    name="bus_lines",
    key=("line",),
    layer=None,
    values=(("runs", "vehicles"), ("travel_time_s", "s"), ("delay_s", "s")),
    label=N_("Bus and tram lines: runs, travel time and delay"),
)


class TrafficEngine:
    """SUMO traffic with gravity demand and logit mode choice, one seed per worker process.

    ``inputs`` and ``params`` replace what :meth:`prepare` would read from the twin (tests and
    benchmarks on a twin held in memory); by default both come from the twin directory
    (``traffic.toml`` with the command line's overrides).
    """

    name = "traffic"
    intervention_types: Mapping[str, type[Intervention]] = INTERVENTIONS
    tables = (EDGES, ZONES, COUNTS, BUS_LINES)
    reads = READS

    def __init__(self, *, inputs: TwinInputs | None = None, params: TrafficParams | None = None) -> None:
        self._inputs = inputs
        self._params = params

    @cached_property
    def version(self) -> str:
        """civictwin's version with SUMO's (asked once; a new SUMO recomputes saved seeds)."""
        return f"{__version__} ({sumo_version()})"

    def params(self, twin: TwinContext) -> TrafficParams:
        """The parameters for ``twin``: the given ones, else its ``traffic.toml`` with the overrides and
        its latest calibration (OD factors and counting edges; named in the parameters)."""
        if self._params is not None:
            return self._params
        return with_calibration(load_params(twin.twin_dir, **twin.options_for(self.name)), twin.twin_dir)

    def parameters(self, twin: TwinContext) -> Mapping[str, Any]:
        """Every traffic parameter for ``twin`` (see :class:`TrafficParams`)."""
        return self.params(twin).model_dump(mode="json")

    def prepare(self, twin: TwinContext, scenario: Scenario, *, workdir: Path) -> PreparedScenario:
        """Apply the traffic interventions, build the SUMO network (into ``workdir``) and the demand;
        the calibration record the demand uses travels along for the report."""
        inputs = self._inputs or load_twin(twin.twin_dir, need_routes=needs_routes([scenario]))
        params = self.params(twin)
        prepared = prepare_scenario(inputs, scenario, workdir, params)
        if not params.calibration_record:
            return prepared
        record = latest_record(twin.twin_dir)
        if record is None or record.get("id") != params.calibration_record:
            summary = missing_summary(params.calibration_record)
        else:
            summary = calibration_summary(record, latest_ranking(twin.twin_dir))
        return dataclasses.replace(prepared, calibration=summary)

    def run(self, inputs: PreparedScenario, *, seed: int, workdir: Path) -> EngineResult:
        """One seed: mode choice ↔ SUMO; KPIs, the edge and zone tables, and details for the report."""
        outcome = simulate_seed(inputs, seed, workdir)
        facts = demand_facts(inputs, outcome)
        implausible = demand_warnings(facts)
        return EngineResult(
            kpis=as_kpis(outcome.kpis),
            tables={
                EDGES.name: outcome.edges,
                ZONES.name: outcome.zones,
                COUNTS.name: outcome.counts,
                BUS_LINES.name: bus_line_table(
                    outcome.bus_trips, line_shapes(inputs.buses.service) if inputs.buses else {}
                ),
            },
            notes=(*implausible, *demand_caveats(facts)),
            details={
                "calibration": inputs.calibration,
                "implausible_demand": implausible,
                "modal_split": outcome.modal_split,
                "car_share_by_iteration": outcome.car_share_by_iteration,
                "iterations": inputs.params.iterations,
                "simulation_levels": simulation_levels(inputs.params),
                "changed_edges": int(inputs.changes["edge_id"].nunique()) if not inputs.changes.empty else 0,
                "transit_source": inputs.transit_source,
                "demand_source": inputs.demand_source,
                "gateway_sources": inputs.gateways.sources() if inputs.gateways is not None else [],
                "gateway_notes": list(inputs.gateways.notes) if inputs.gateways is not None else [],
                "bus_sources": list(inputs.buses.service.sources) if inputs.buses else [],
                "bus_stops_unmatched": inputs.buses.service.unmatched_stops if inputs.buses else 0,
                "bus_runs_dropped": inputs.buses.service.dropped_runs if inputs.buses else 0,
                "sumo_wall_s": round(outcome.sumo_wall_s, 3),
                "netconvert_s": round(inputs.network.wall_s, 3),
                "sumo_version": outcome.sumo_version,
            },
        )

    def check(self, twin: TwinContext, scenario: Scenario) -> list[str]:
        """Every problem of the scenario's traffic interventions on the twin's network, and new lines
        with no run in the simulated window."""
        inputs = self._inputs or load_twin(twin.twin_dir)
        problems = validate_scenario(scenario, inputs.edges, crs=inputs.crs)
        return problems + line_window_problems(scenario, self.params(twin).demand_window_s)

    def scenario_examples(self) -> str:
        """The commented traffic interventions for ``civictwin scenario new``."""
        return SCENARIO_EXAMPLES

    def report(self, runs: Mapping[str, Sequence[SeedRecord]]) -> EngineReport:
        """Run facts, teleport warnings, the method and the modal split figure."""
        return traffic_report(runs)


def demand_facts(prepared: PreparedScenario, outcome: SeedOutcome) -> DemandFacts:
    """Residents, jobs and the run's trips per hour of the demand window (averaged over it; the
    expected trips follow the residents' hourly profile), for the plausibility check (no residents,
    so no check, when the zones carry no population)."""
    demand = prepared.params.demand
    zones = prepared.zones

    def total(column: str) -> float:
        """A zone column's sum (0 when the zones lack it, e.g. with a user OD matrix)."""
        return float(zones[column].fillna(0).sum()) if column in zones.columns else 0.0

    residents = total("population")
    params = prepared.params
    hours = params.demand_window_s / 3600.0
    profile = hour_factors(
        demand.hourly_profile, start_hour=prepared.first_hour, window_s=params.demand_window_s
    )
    return DemandFacts(
        residents=residents,
        jobs=total("jobs_proxy_m2") / demand.floor_area_per_job_m2,
        expected_person_trips=residents
        * demand.trips_per_resident_day
        * demand.peak_hour_share
        * sum(profile)
        / hours,
        person_trips=float(outcome.kpis.get("person_trips", 0.0)) / hours,
        car_trips=float(outcome.kpis.get("trips", 0.0)) / hours,
        gateways=prepared.gateways is not None,
        present=prepared.presence.people if prepared.presence is not None else None,
        present_hour=prepared.presence.hour if prepared.presence is not None else None,
    )
