"""Compare scenarios: KPI tables with confidence intervals, edge-level differences, report, manifest.

:func:`compare` turns per-seed runs into a :class:`~civictwin.compare.table.Comparison`;
:func:`write_comparison` writes it into the comparison folder with the contract the API reads
(``comparison.json``, ``edges_<scenario>.parquet``, ``edge_diff_<plan>.parquet``, ``zones_<scenario>.parquet``,
``zone_diff_<plan>.parquet``, ``manifest.json``, ``report.html``) and writes the ``complete`` marker last.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from civictwin.compare.manifest import build_manifest
from civictwin.compare.report import render_report
from civictwin.compare.table import (
    Comparison,
    difference_rows,
    edge_differences,
    kpi_rows,
    mean_edges,
    modal_split_table,
    summary_sentences,
    with_geometry,
    zone_differences,
)
from civictwin.engines.traffic.pipeline import COMPLETE, Ensemble, ScenarioRun
from civictwin.errors import ScenarioError
from civictwin.kpis.traffic import edge_zones, zone_totals

COMPARISON_FILE = "comparison.json"
MANIFEST_FILE = "manifest.json"
REPORT_FILE = "report.html"

__all__ = ["Comparison", "compare", "compare_ensemble", "report_ensemble", "write_comparison"]


def compare(
    base: Sequence[ScenarioRun],
    plans: Mapping[str, Sequence[ScenarioRun]],
    *,
    comparison_id: str,
    edge_geometry: gpd.GeoDataFrame,
    zones: gpd.GeoDataFrame | None = None,
    created: str | None = None,
) -> Comparison:
    """KPI table, differences, summary, modal split and edge layers of a baseline and its plans.

    ``edge_geometry`` (``edge_id``, ``name``, ``length_m``, geometry in any CRS) gives the edge layers
    their shapes; they come out in WGS84. With ``zones`` (same CRS), each scenario also gets per-zone
    totals (:func:`civictwin.kpis.traffic.zone_totals`) and each plan its per-zone differences with
    intervals (:func:`civictwin.compare.table.zone_differences`).
    """
    if not base or not plans or any(not runs for runs in plans.values()):
        raise ScenarioError("a comparison needs runs of the baseline and of at least one plan")
    baseline = base[0].scenario
    runs: dict[str, Sequence[ScenarioRun]] = {baseline: base, **plans}
    means = {name: mean_edges(scenario_runs) for name, scenario_runs in runs.items()}
    differences = difference_rows(base, plans)
    placement = edge_zones(edge_geometry, zones) if zones is not None else None
    return Comparison(
        id=comparison_id,
        created=created or datetime.now(UTC).isoformat(timespec="seconds"),
        baseline=baseline,
        plans=tuple(plans),
        kpis=kpi_rows(runs),
        differences=differences,
        summary=summary_sentences(baseline, differences, runs),
        modal_split=modal_split_table(runs),
        edges={name: with_geometry(frame, edge_geometry) for name, frame in means.items()},
        edge_diffs={
            plan: with_geometry(edge_differences(means[baseline], means[plan]), edge_geometry)
            for plan in plans
        },
        zones={
            name: zone_totals(frame, placement, zones["zone_id"])
            for name, frame in means.items()
            if zones is not None and placement is not None
        },
        zone_diffs={
            plan: zone_differences(base, plan_runs, placement, zones)
            for plan, plan_runs in plans.items()
            if zones is not None and placement is not None
        },
    )


def compare_ensemble(ensemble: Ensemble, *, baseline: str | None = None) -> Comparison:
    """The comparison of an ensemble: its first scenario (or ``baseline``) against all others."""
    names = [s.name for s in ensemble.scenarios]
    base_name = baseline or names[0]
    if base_name not in ensemble.runs:
        raise ScenarioError(f"no scenario '{base_name}' in this ensemble", field="baseline")
    plans = {name: ensemble.runs[name] for name in names if name != base_name}
    return compare(
        ensemble.runs[base_name],
        plans,
        comparison_id=ensemble.comparison_id,
        edge_geometry=ensemble.inputs.edges,
        zones=ensemble.inputs.zones,
    )


def ensemble_manifest(ensemble: Ensemble, comparison: Comparison) -> dict[str, Any]:
    """The manifest of an ensemble's comparison (data versions, scenario hashes, seeds, software)."""
    all_runs = [run for runs in ensemble.runs.values() for run in runs]
    return build_manifest(
        comparison_id=comparison.id,
        created=comparison.created,
        twin_dir=str(ensemble.inputs.twin_dir),
        catalog=ensemble.inputs.catalog,
        scenarios=ensemble.scenarios,
        seeds=ensemble.seeds,
        parameters=ensemble.params.model_dump(mode="json"),
        runs=[
            {
                "scenario": r.scenario,
                "seed": r.seed,
                "fingerprint": r.fingerprint,
                "wall_s": round(r.wall_s, 3),
                "sumo_wall_s": round(r.sumo_wall_s, 3),
                "resumed": (r.scenario, r.seed) in ensemble.resumed,
                "car_share_by_iteration": r.car_share_by_iteration,
            }
            for r in all_runs
        ],
        sumo_version=next((r.sumo_version for r in all_runs if r.sumo_version), "unknown"),
    )


def ensemble_notes(ensemble: Ensemble) -> list[str]:
    """Facts about the runs for the report: changed edges, transit data used, convergence, resumed seeds."""
    notes = []
    for name, prepared in ensemble.prepared.items():
        changed = prepared.changes["edge_id"].nunique() if not prepared.changes.empty else 0
        car_shares = [r.car_share_by_iteration for r in ensemble.runs[name]]
        last_step = max((abs(c[-1] - c[-2]) for c in car_shares if len(c) > 1), default=0.0)
        notes.append(
            f"'{name}': {changed} street edges changed; transit times from "
            f"{'the GTFS timetable' if prepared.transit_source == 'gtfs' else 'the fallback assumption (no GTFS)'}; "
            f"{ensemble.params.iterations} simulation/mode-choice round(s), last change of the car share "
            f"{100 * last_step:.2f} percentage points."
        )
    if ensemble.resumed:
        notes.append(f"{len(ensemble.resumed)} seed run(s) were reused from an earlier, identical run.")
    return notes


def report_ensemble(ensemble: Ensemble, *, baseline: str | None = None) -> tuple[Comparison, Path]:
    """Compare an ensemble and write all its files into its comparison folder; returns the report path."""
    comparison = compare_ensemble(ensemble, baseline=baseline)
    report = write_comparison(
        comparison,
        ensemble.comparison_dir,
        manifest=ensemble_manifest(ensemble, comparison),
        scenarios=ensemble.scenarios,
        notes=ensemble_notes(ensemble),
    )
    return comparison, report


def write_comparison(
    comparison: Comparison,
    directory: Path,
    *,
    manifest: Mapping[str, Any],
    scenarios: Sequence[Any] = (),
    parameters: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
) -> Path:
    """Write every file of the comparison into ``directory``; the ``complete`` marker goes last.

    An existing marker is removed first, so readers never see old and new files mixed as complete.
    Each file is written to a temporary name and renamed into place. Returns the report's path.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / COMPLETE).unlink(missing_ok=True)
    _atomic_text(directory / COMPARISON_FILE, json.dumps(comparison.to_json(), indent=1, allow_nan=False))
    for name, edges in comparison.edges.items():
        columns = ["edge_id", "name", "flow", "speed_ms", "co2_g", "noise_db", "geometry"]
        _atomic_parquet(directory / f"edges_{name}.parquet", edges[columns])
    for plan, diff in comparison.edge_diffs.items():
        _atomic_parquet(directory / f"edge_diff_{plan}.parquet", diff)
    for name, zone_frame in comparison.zones.items():
        _atomic_parquet(directory / f"zones_{name}.parquet", zone_frame)
    for plan, zone_diff in comparison.zone_diffs.items():
        _atomic_parquet(directory / f"zone_diff_{plan}.parquet", zone_diff)
    _atomic_text(directory / MANIFEST_FILE, json.dumps(manifest, indent=1, default=str))
    report = render_report(
        comparison,
        scenarios=scenarios,
        parameters=parameters or manifest.get("parameters", {}),
        manifest=manifest,
        notes=notes,
    )
    _atomic_text(directory / REPORT_FILE, report)
    (directory / COMPLETE).write_text(comparison.created + "\n", encoding="utf-8")
    return directory / REPORT_FILE


def _atomic_text(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(text, encoding="utf-8")
    os.replace(staging, path)


def _atomic_parquet(path: Path, frame: pd.DataFrame) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    frame.to_parquet(staging, index=False)
    os.replace(staging, path)
