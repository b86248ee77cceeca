"""Compare scenarios across every engine: KPI tables with confidence intervals, per-key table
differences, the report and the manifest.

:func:`compare` turns the saved seeds of each engine into a :class:`Comparison`;
:func:`write_comparison` writes it into the comparison folder with the layout of :mod:`civictwin.runs`
(``comparison.json``, ``tables/<engine>.<table>/mean_<scenario>.parquet`` and ``diff_<plan>.parquet``,
``manifest.json``, ``report.html`` and one ``report.<code>.html`` per other language) and writes the ``complete`` marker last. Nothing here knows a
particular engine: KPIs carry their own names, units and labels, tables their own keys and layers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from civictwin import durable
from civictwin.compare.equity import (
    EQUITY_FILE,
    EquityView,
    Grouping,
    equity_view,
    groupings_of,
    render_equity,
)
from civictwin.compare.layers import TwinLayers, read_layers, with_geometry
from civictwin.compare.manifest import build_manifest
from civictwin.compare.report import render_report
from civictwin.compare.table import (
    EngineRuns,
    difference_rows,
    kpi_rows,
    not_evaluated,
    stack_table,
    summary_sentences,
    table_differences,
    table_means,
)
from civictwin.engines.base import Engine, EngineReport, Reports
from civictwin.engines.ensemble import Ensemble
from civictwin.engines.registry import intervention_catalog
from civictwin.errors import QualityCheckFailed, ScenarioError
from civictwin.i18n import LANGUAGES, language
from civictwin.runs import (
    COMPARISON_FILE,
    COMPLETE,
    MANIFEST_FILE,
    REPORT_FILE,
    ComparisonRecord,
    EngineRecord,
    NotEvaluated,
    SeedRecord,
    TableColumn,
    TableRecord,
    report_file,
    table_diff_file,
    table_id,
    table_mean_file,
)
from civictwin.scenarios.spec import Scenario

__all__ = ["Comparison", "compare", "compare_ensemble", "report_ensemble", "write_comparison"]


@dataclass(frozen=True)
class Comparison:
    """A baseline and its plans across engines: the ``comparison.json`` record, the tables' per-key
    means (per scenario) and differences (per plan), WGS84 where they can be mapped, and what each
    engine adds to the report."""

    record: ComparisonRecord
    means: dict[str, dict[str, pd.DataFrame]]
    diffs: dict[str, dict[str, pd.DataFrame]]
    reports: dict[str, EngineReport] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """The engines' caveats from their seeds (each distinct note once, with its engine)."""
    equity: EquityView | None = None
    """Zone values broken down by income or age group (``[sociodemographics] equity_by``)."""


def compare(
    runs: EngineRuns,
    *,
    engines: Sequence[Engine],
    comparison_id: str,
    baseline: str,
    plans: Sequence[str],
    layers: TwinLayers,
    created: str | None = None,
    question: str = "",
    equity_by: Sequence[Grouping] = (),
) -> Comparison:
    """KPIs, differences, summary and table statistics of ``baseline`` and ``plans`` for every engine.

    ``runs[engine][scenario]`` are the saved seeds; ``layers`` the twin layers the engines' tables map
    onto (an empty :class:`TwinLayers` gives tables without shapes); ``question`` the plain-words
    question the comparison answers, for its consultation page; ``equity_by`` the groupings of zones
    the equity view breaks zone values down by (it needs the ``zones`` layer in ``layers``).

    A plan with any seed that failed the engine's quality check is not compared: it is recorded in
    ``not_evaluated`` with the finding in words (first in the summary), and the other plans are
    compared as usual. A failed baseline stops the comparison (QualityCheckFailed, one line).
    """
    if not plans:
        raise ScenarioError("a comparison needs a baseline and at least one plan")
    for engine in engines:
        missing = [s for s in [baseline, *plans] if not runs.get(engine.name, {}).get(s)]
        if missing:
            raise ScenarioError(f"no runs of '{missing[0]}' with engine '{engine.name}' to compare")
    findings = _findings(runs, baseline, plans)
    plans = [p for p in plans if p not in {f.scenario for f in findings}]
    order = [baseline, *plans]
    ordered = {e.name: {s: runs[e.name][s] for s in order} for e in engines}
    kpis = kpi_rows(ordered)
    differences = difference_rows(ordered, baseline, plans)
    seeds = min(len(seeds) for scenarios in ordered.values() for seeds in scenarios.values())
    means: dict[str, dict[str, pd.DataFrame]] = {}
    diffs: dict[str, dict[str, pd.DataFrame]] = {}
    tables = []
    for engine in engines:
        for spec in engine.tables:
            name = table_id(engine.name, spec.name)
            stacks = {s: stack_table(ordered[engine.name][s], spec) for s in order}
            own = own_shapes(ordered[engine.name], spec.name) if spec.layer is None else None
            means[name] = {s: with_geometry(table_means(stacks[s], spec), spec, layers, own) for s in order}
            diffs[name] = {
                p: with_geometry(table_differences(stacks[baseline], stacks[p], spec), spec, layers, own)
                for p in plans
            }
            tables.append(
                TableRecord(
                    id=name,
                    engine=engine.name,
                    name=spec.name,
                    label=spec.label,
                    key=list(spec.key),
                    layer=spec.layer,
                    values=[TableColumn(column=c, unit=u) for c, u in spec.values],
                )
            )
    record = ComparisonRecord(
        id=comparison_id,
        created=created or datetime.now(UTC).isoformat(timespec="seconds"),
        baseline=baseline,
        plans=list(plans),
        engines=[EngineRecord(name=e.name, version=e.version) for e in engines],
        sources=sorted({layer for e in engines for layer in e.reads}),
        tables=tables,
        kpis=kpis,
        differences=differences,
        summary=[
            *(f.statement for f in findings),
            *(summary_sentences(baseline, kpis, differences, seeds) if plans else []),
        ],
        question=question,
        not_evaluated=findings,
    )
    reports = {e.name: e.report(ordered[e.name]) for e in engines if isinstance(e, Reports)}
    notes = [
        f"{engine}: {note}"
        for engine, scenarios in ordered.items()
        for note in dict.fromkeys(n for seeds in scenarios.values() for seed in seeds for n in seed.notes)
    ]
    zones = layers.frames.get("zones")
    equity = (
        equity_view(
            ordered, engines=engines, baseline=baseline, plans=plans, zones=zones, groupings=equity_by
        )
        if equity_by and zones is not None
        else None
    )
    return Comparison(record=record, means=means, diffs=diffs, reports=reports, notes=notes, equity=equity)


def _findings(runs: EngineRuns, baseline: str, plans: Sequence[str]) -> list[NotEvaluated]:
    """The plans not evaluated because a seed failed the quality check; a QualityCheckFailed when the
    baseline is one of them (nothing can be compared with it)."""
    failed_base = not_evaluated(runs, baseline)
    if failed_base is not None:
        first = failed_base.failures[0]
        raise QualityCheckFailed(
            f"the baseline '{baseline}' could not be evaluated: the simulation failed the quality check in "
            f"{len(failed_base.failures)} of {failed_base.runs} runs (engine '{first.engine}', seed "
            f"{first.seed}: {first.reason}), so no plan can be compared with it"
        )
    return [finding for plan in plans if (finding := not_evaluated(runs, plan)) is not None]


def compare_ensemble(ensemble: Ensemble, *, baseline: str | None = None, question: str = "") -> Comparison:
    """The comparison of an ensemble: its first scenario (or ``baseline``) against all others."""
    names = [s.name for s in ensemble.scenarios]
    base_name = baseline or names[0]
    if base_name not in names:
        raise ScenarioError(f"no scenario '{base_name}' in this ensemble", field="baseline")
    layers = read_layers(ensemble.twin, {s.layer for e in ensemble.engines for s in e.tables if s.layer})
    config = ensemble.twin.config
    return compare(
        ensemble.runs,
        engines=ensemble.engines,
        comparison_id=ensemble.comparison_id,
        baseline=base_name,
        plans=[n for n in names if n != base_name],
        layers=layers,
        question=question,
        equity_by=groupings_of(config.sociodemographics if config is not None else None),
    )


def ensemble_manifest(
    ensemble: Ensemble, comparison: Comparison, *, packages: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The manifest of an ensemble's comparison (data versions, scenarios, seeds, engines, software).

    ``packages`` names the distribution (and version) that provides each engine, when known; each run
    records where it ran (``worker``), and ``run_notes`` what the executor reported (workers lost on a
    Dask cluster, seeds run again).
    """
    resumed = set(ensemble.resumed)
    manifest = build_manifest(
        comparison_id=comparison.record.id,
        created=comparison.record.created,
        twin_dir=str(ensemble.twin.twin_dir),
        catalog=ensemble.twin.catalog(),
        scenarios=ensemble.scenarios,
        seeds=ensemble.seeds,
        engines={
            e.name: {
                "version": e.version,
                "package": (packages or {}).get(e.name),
                "parameters": ensemble.parameters[e.name],
            }
            for e in ensemble.engines
        },
        owners=intervention_catalog(ensemble.engines).owners,
        runs=[
            {
                "engine": seed.engine,
                "scenario": seed.scenario,
                "seed": seed.seed,
                "fingerprint": seed.fingerprint,
                "wall_s": round(seed.wall_s, 3),
                "worker": seed.worker,
                "resumed": (seed.engine, seed.scenario, seed.seed) in resumed,
                "status": "failed" if seed.failed else "complete",
                "failure": seed.failure,
                "details": seed.details,
            }
            for scenarios in ensemble.runs.values()
            for seeds in scenarios.values()
            for seed in seeds
        ],
    )
    return {**manifest, "run_notes": list(ensemble.notes)}


def own_shapes(runs: Mapping[str, Sequence[SeedRecord]], table: str) -> pd.DataFrame:
    """A layer-less table's rows of every scenario's first seed together, for their geometry: a key
    may exist in a plan only (a new bus line, absent from the baseline)."""
    frames: list[pd.DataFrame] = [seeds[0].table(table) for seeds in runs.values()]
    return pd.concat(frames, ignore_index=True)


def report_ensemble(
    ensemble: Ensemble,
    *,
    baseline: str | None = None,
    packages: Mapping[str, str] | None = None,
    question: str = "",
) -> tuple[Comparison, Path]:
    """Compare an ensemble and write all its files into its comparison folder; returns the report path."""
    comparison = compare_ensemble(ensemble, baseline=baseline, question=question)
    notes = (
        [f"{len(ensemble.resumed)} seed run(s) were reused from an earlier, identical run."]
        if ensemble.resumed
        else []
    )
    report = write_comparison(
        comparison,
        ensemble.directory,
        manifest=ensemble_manifest(ensemble, comparison, packages=packages),
        scenarios=ensemble.scenarios,
        parameters=ensemble.parameters,
        notes=[*comparison.notes, *notes, *ensemble.notes],
    )
    return comparison, report


def write_comparison(
    comparison: Comparison,
    directory: Path,
    *,
    manifest: Mapping[str, Any],
    scenarios: Sequence[Scenario] = (),
    parameters: Mapping[str, Mapping[str, Any]] | None = None,
    notes: Sequence[str] = (),
) -> Path:
    """Write every file of the comparison into ``directory``; the ``complete`` marker goes last.

    An existing marker is removed first, so readers never see old and new files mixed as complete.
    Each file is written to a temporary name and renamed into place. Returns the report's path.
    """
    record = comparison.record
    directory.mkdir(parents=True, exist_ok=True)
    (directory / COMPLETE).unlink(missing_ok=True)
    _atomic_text(directory / COMPARISON_FILE, record.to_json())
    for table, frames in comparison.means.items():
        for scenario, frame in frames.items():
            _atomic_parquet(table_mean_file(directory, table, scenario), frame)
    for table, frames in comparison.diffs.items():
        for plan, frame in frames.items():
            _atomic_parquet(table_diff_file(directory, table, plan), frame)
    _atomic_text(directory / MANIFEST_FILE, json.dumps(manifest, indent=1, default=str))
    if comparison.equity is not None:
        _atomic_text(directory / EQUITY_FILE, comparison.equity.to_json())
    for code in LANGUAGES:
        lang = language(code)
        report = render_report(
            record,
            scenarios=scenarios,
            tables=comparison.diffs,
            baseline_tables={table: frames[record.baseline] for table, frames in comparison.means.items()},
            engine_reports=comparison.reports,
            parameters=parameters or manifest_parameters(manifest),
            manifest=manifest,
            notes=notes,
            equity_html=render_equity(comparison.equity, lang=lang) if comparison.equity is not None else "",
            lang=lang,
        )
        _atomic_text(directory / report_file(code), report)
    (directory / COMPLETE).write_text(record.created + "\n", encoding="utf-8")
    return directory / REPORT_FILE


def manifest_parameters(manifest: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Each engine's parameters as recorded in a manifest."""
    return {name: entry.get("parameters", {}) for name, entry in manifest.get("engines", {}).items()}


def _atomic_text(path: Path, text: str) -> None:
    durable.write_text(path, text)


def _atomic_parquet(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with durable.atomic_path(path) as staging:
        frame.to_parquet(staging, index=False)
