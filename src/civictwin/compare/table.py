"""Side-by-side tables of an ensemble: KPI means with 95% intervals, plan − baseline differences,
modal splits and edge-level means and differences.

Every number here is computed from the per-seed results; nothing is re-simulated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import geopandas as gpd
import numpy as np
import pandas as pd

from civictwin.engines.traffic.modechoice import MODES
from civictwin.engines.traffic.pipeline import ScenarioRun
from civictwin.kpis.ensemble import difference, summarise
from civictwin.kpis.traffic import KPI_UNITS, energy_average_db, zone_totals

DEMAND_KPI_UNITS: dict[str, str] = {
    "person_trips": "person trips",
    **{f"share_{mode}": "share" for mode in MODES},
}

KPI_LABELS: dict[str, str] = {
    "trips": "Car trips",
    "finished_share": "Share of car trips finished",
    "mean_travel_time_s": "Mean car travel time",
    "total_travel_time_h": "Total car travel time",
    "total_delay_h": "Total car delay",
    "vehicle_km": "Vehicle-kilometres",
    "mean_speed_kmh": "Mean car speed",
    "co2_kg": "CO2 emissions",
    "nox_kg": "NOx emissions",
    "pmx_kg": "Particulate emissions",
    "mean_noise_db": "Road noise (mean level on used streets)",
    "teleports": "Teleported vehicles",
    "unfinished": "Unfinished car trips",
    "person_trips": "Person trips (all modes)",
    "share_car": "Car share of trips",
    "share_pt": "Public transport share of trips",
    "share_bike": "Bike share of trips",
    "share_walk": "Walking share of trips",
}

EDGE_COLUMNS = ["flow", "speed_ms", "co2_g", "noise_db"]


def kpi_unit(kpi: str) -> str:
    """The unit of a KPI (``""`` for one this table does not know)."""
    return KPI_UNITS.get(kpi) or DEMAND_KPI_UNITS.get(kpi, "")


def kpi_label(kpi: str) -> str:
    """A plain-language name of a KPI."""
    return KPI_LABELS.get(kpi, kpi.replace("_", " ").capitalize())


@dataclass(frozen=True)
class KpiRow:
    """One KPI of one scenario over its seeds (``comparison.json`` → ``kpis``)."""

    kpi: str
    unit: str
    scenario: str
    mean: float
    ci_low: float
    ci_high: float
    n: int

    def as_json(self) -> dict[str, object]:
        """The row with non-finite numbers as null."""
        return {k: _finite(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class DifferenceRow:
    """Plan − baseline for one KPI (``comparison.json`` → ``differences``)."""

    kpi: str
    plan: str
    mean: float
    ci_low: float
    ci_high: float
    distinguishable: bool
    words: str
    relative: float

    def as_json(self) -> dict[str, object]:
        """The row with non-finite numbers as null."""
        return {k: _finite(v) for k, v in asdict(self).items()}


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def kpi_names(runs: Mapping[str, Sequence[ScenarioRun]]) -> list[str]:
    """The KPIs present in every run, in a stable order (traffic first, then demand)."""
    order = [*KPI_UNITS, *DEMAND_KPI_UNITS]
    present = set.intersection(*(set(r.kpis) for rs in runs.values() for r in rs))
    return [k for k in order if k in present] + sorted(present - set(order))


def _values(runs: Sequence[ScenarioRun], kpi: str) -> list[float]:
    return [r.kpis[kpi] for r in runs if math.isfinite(r.kpis[kpi])]


def kpi_rows(runs: Mapping[str, Sequence[ScenarioRun]]) -> list[KpiRow]:
    """Mean and 95% interval of every KPI per scenario (seeds with a NaN value left out of that KPI)."""
    rows = []
    for kpi in kpi_names(runs):
        for scenario, scenario_runs in runs.items():
            values = _values(scenario_runs, kpi)
            if not values:
                rows.append(KpiRow(kpi, kpi_unit(kpi), scenario, math.nan, math.nan, math.nan, 0))
                continue
            estimate = summarise(values)
            rows.append(
                KpiRow(
                    kpi, kpi_unit(kpi), scenario, estimate.mean, estimate.ci_low, estimate.ci_high, estimate.n
                )
            )
    return rows


def difference_rows(
    base: Sequence[ScenarioRun], plans: Mapping[str, Sequence[ScenarioRun]]
) -> list[DifferenceRow]:
    """Plan − baseline for every KPI, with Welch's 95% interval and a verdict in words."""
    rows = []
    kpis = kpi_names({"": base, **plans})
    for plan, plan_runs in plans.items():
        for kpi in kpis:
            a, b = _values(base, kpi), _values(plan_runs, kpi)
            if not a or not b:
                words = f"{kpi_label(kpi)}: not measured in every scenario."
                rows.append(DifferenceRow(kpi, plan, math.nan, math.nan, math.nan, False, words, math.nan))
                continue
            d = difference(a, b, label=kpi_label(kpi))
            rows.append(
                DifferenceRow(kpi, plan, d.mean, d.ci_low, d.ci_high, d.distinguishable, d.words, d.relative)
            )
    return rows


def modal_split_table(runs: Mapping[str, Sequence[ScenarioRun]]) -> pd.DataFrame:
    """Per scenario and mode: mean share of person trips with its 95% interval."""
    rows = []
    for scenario, scenario_runs in runs.items():
        for mode in MODES:
            estimate = summarise([r.modal_split[mode] for r in scenario_runs])
            rows.append(
                {
                    "scenario": scenario,
                    "mode": mode,
                    "share": estimate.mean,
                    "ci_low": estimate.ci_low,
                    "ci_high": estimate.ci_high,
                }
            )
    return pd.DataFrame(rows, columns=["scenario", "mode", "share", "ci_low", "ci_high"])


def mean_edges(runs: Sequence[ScenarioRun]) -> pd.DataFrame:
    """Per edge, the mean over seeds: flow and CO2 (missing = 0), speed (seeds with traffic), noise
    (energy average over seeds with traffic)."""
    stacked = pd.concat([r.edges.assign(seed=r.seed) for r in runs], ignore_index=True)
    edge_ids = sorted(set(stacked["edge_id"]))
    n = len(runs)
    grouped = stacked.groupby("edge_id")
    result = pd.DataFrame({"edge_id": edge_ids}).set_index("edge_id")
    result["flow"] = grouped["flow"].sum().reindex(edge_ids).fillna(0.0) / n
    result["speed_ms"] = grouped["speed_ms"].mean().reindex(edge_ids)
    result["co2_g"] = grouped["co2_g"].sum().reindex(edge_ids).fillna(0.0) / n
    result["noise_db"] = grouped["noise_db"].agg(energy_average_db).reindex(edge_ids)
    return result.reset_index()


ZONE_DIFFERENCE_KPIS = ("vehicle_km", "co2_kg")


def zone_differences(
    base: Sequence[ScenarioRun], plan: Sequence[ScenarioRun], placement: pd.DataFrame, zones: gpd.GeoDataFrame
) -> gpd.GeoDataFrame:
    """Plan − baseline per zone for vehicle-km and CO2, each with Welch's 95% interval over the seeds.

    Each seed's edges are totalled per zone first (``placement`` from
    :func:`civictwin.kpis.traffic.edge_zones`), so a zone's interval reflects how much that zone varies
    from run to run. Columns per KPI: ``<kpi>_base``, ``<kpi>_plan`` (means), ``<kpi>_diff``,
    ``<kpi>_ci_low``, ``<kpi>_ci_high`` and ``<kpi>_real`` (distinguishable from noise); in WGS84.
    """
    zone_ids = zones["zone_id"]
    per_seed = {
        side: [zone_totals(r.edges, placement, zone_ids).set_index("zone_id") for r in runs]
        for side, runs in (("base", base), ("plan", plan))
    }
    columns: dict[str, list[float | bool]] = {}
    for kpi in ZONE_DIFFERENCE_KPIS:
        base_values = np.column_stack([t[kpi].to_numpy() for t in per_seed["base"]])
        plan_values = np.column_stack([t[kpi].to_numpy() for t in per_seed["plan"]])
        estimates = [difference(a, b) for a, b in zip(base_values, plan_values, strict=True)]
        columns[f"{kpi}_base"] = [e.base_mean for e in estimates]
        columns[f"{kpi}_plan"] = [e.plan_mean for e in estimates]
        columns[f"{kpi}_diff"] = [e.mean for e in estimates]
        columns[f"{kpi}_ci_low"] = [e.ci_low for e in estimates]
        columns[f"{kpi}_ci_high"] = [e.ci_high for e in estimates]
        columns[f"{kpi}_real"] = [e.distinguishable for e in estimates]
    return gpd.GeoDataFrame(
        {"zone_id": zone_ids.to_numpy(), **columns}, geometry=zones.geometry.to_numpy(), crs=zones.crs
    ).to_crs("EPSG:4326")


def with_geometry(frame: pd.DataFrame, geometry: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """``frame`` joined to the edges' ``name`` and geometry (by ``edge_id``), reprojected to WGS84."""
    shapes = geometry[["edge_id", "name", "geometry"]].assign(edge_id=geometry["edge_id"].astype(str))
    joined = shapes.drop_duplicates("edge_id").merge(frame, on="edge_id", how="inner")
    return gpd.GeoDataFrame(joined, geometry="geometry", crs=geometry.crs).to_crs("EPSG:4326")


def edge_differences(base: pd.DataFrame, plan: pd.DataFrame) -> pd.DataFrame:
    """Plan − baseline per edge for flow, speed, CO2 and noise (``<col>_base``, ``<col>_plan``, ``<col>_diff``).

    Edges missing from one side count as carrying no traffic there (flow and CO2 0, speed and noise NaN).
    """
    merged = base.merge(plan, on="edge_id", how="outer", suffixes=("_base", "_plan"))
    for column in ("flow", "co2_g"):
        merged[[f"{column}_base", f"{column}_plan"]] = merged[[f"{column}_base", f"{column}_plan"]].fillna(
            0.0
        )
    for column in EDGE_COLUMNS:
        merged[f"{column}_diff"] = merged[f"{column}_plan"] - merged[f"{column}_base"]
    ordered = ["edge_id"] + [f"{c}_{s}" for c in EDGE_COLUMNS for s in ("base", "plan", "diff")]
    return merged[ordered].sort_values("edge_id", ignore_index=True)


HEADLINE_KPIS = (
    "mean_travel_time_s",
    "total_delay_h",
    "vehicle_km",
    "share_car",
    "co2_kg",
    "mean_noise_db",
)
"""The KPIs the plain-language summary speaks about."""


@dataclass(frozen=True)
class Comparison:
    """A baseline and its plans: KPI table, differences, summary, modal split and edge layers."""

    id: str
    created: str
    baseline: str
    plans: tuple[str, ...]
    kpis: list[KpiRow]
    differences: list[DifferenceRow]
    summary: list[str]
    modal_split: pd.DataFrame
    edges: dict[str, gpd.GeoDataFrame]
    """Per scenario: mean edge values over seeds, WGS84."""
    edge_diffs: dict[str, gpd.GeoDataFrame]
    """Per plan: plan − baseline per edge, WGS84."""
    zones: dict[str, pd.DataFrame]
    """Per scenario: vehicle-km, CO2 and noise per analysis zone (empty when no zones were given)."""
    zone_diffs: dict[str, gpd.GeoDataFrame]
    """Per plan: plan − baseline per zone with 95% intervals, WGS84 (empty when no zones were given)."""

    def to_json(self) -> dict[str, object]:
        """The ``comparison.json`` document (the contract with the API)."""
        return {
            "id": self.id,
            "created": self.created,
            "baseline": self.baseline,
            "plans": list(self.plans),
            "kpis": [r.as_json() for r in self.kpis],
            "differences": [r.as_json() for r in self.differences],
            "summary": list(self.summary),
        }

    def kpi(self, kpi: str, scenario: str) -> KpiRow:
        """One KPI row."""
        return next(r for r in self.kpis if r.kpi == kpi and r.scenario == scenario)

    def difference(self, kpi: str, plan: str) -> DifferenceRow:
        """One difference row."""
        return next(r for r in self.differences if r.kpi == kpi and r.plan == plan)


def summary_sentences(
    baseline: str, differences: Sequence[DifferenceRow], runs: Mapping[str, Sequence[ScenarioRun]]
) -> list[str]:
    """Plain sentences for a non-technical reader: what changes, what is within noise, data quality."""
    n = min(len(r) for r in runs.values())
    plans = list(dict.fromkeys(d.plan for d in differences))
    if n < 2:
        return [
            f"Each scenario was simulated with a single random seed, so no difference can be told apart "
            f"from run-to-run variation; run at least 2 seeds (5 by default) before drawing conclusions "
            f"about {', '.join(repr(p) for p in plans)}.",
            *_quality_sentences(runs),
        ]
    sentences = [
        f"Each scenario was simulated {n} times with different random seeds. A change is called real only "
        "when it stands out from the variation between those runs (95% confidence); otherwise it is "
        "reported as within noise."
    ]
    for plan in plans:
        headline = [d for d in differences if d.plan == plan and d.kpi in HEADLINE_KPIS]
        headline.sort(key=lambda d: HEADLINE_KPIS.index(d.kpi))
        sentences += [
            f"'{plan}' compared with '{baseline}': {d.words}" for d in headline if d.distinguishable
        ]
        noise = [_in_sentence(kpi_label(d.kpi)) for d in headline if not d.distinguishable]
        if noise and len(noise) == len(headline):
            sentences.append(
                f"'{plan}': none of the main indicators differs from '{baseline}' by more than run-to-run "
                f"noise with {n} seeds ({', '.join(noise)}); more seeds could reveal a smaller effect."
            )
        elif noise:
            sentences.append(
                f"'{plan}': no detectable change, within run-to-run noise, in {', '.join(noise)}."
            )
    return sentences + _quality_sentences(runs)


def _in_sentence(label: str) -> str:
    """``Mean car travel time`` → ``mean car travel time``; acronyms such as ``CO2`` stay as they are."""
    return label[0].lower() + label[1:] if len(label) > 1 and label[1].islower() else label


def _quality_sentences(runs: Mapping[str, Sequence[ScenarioRun]]) -> list[str]:
    sentences = []
    for scenario, scenario_runs in runs.items():
        teleports = float(np.mean([r.kpis.get("teleports", 0.0) for r in scenario_runs]))
        if teleports > 0:
            sentences.append(
                f"In '{scenario}' SUMO teleported on average {teleports:.1f} stuck vehicles per run; "
                "results near capacity carry extra uncertainty."
            )
    return sentences
