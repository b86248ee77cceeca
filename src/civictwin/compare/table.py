"""Side-by-side numbers of an ensemble: every engine's KPIs with 95% intervals, plan − baseline
differences with a verdict in words, a plain-language summary, and per-key table statistics.

Every number here is computed from the saved seeds; nothing is re-simulated, and nothing here knows
which engine made a KPI or a table beyond what the seeds and the engine's table declarations say.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from civictwin.engines.base import TableSpec
from civictwin.errors import EngineError
from civictwin.i18n import DEFAULT, Language, language
from civictwin.kpis.ensemble import Better, difference_by_seed, key_differences, summarise
from civictwin.runs import (
    ComparisonRecord,
    DifferenceRow,
    KpiRow,
    NotEvaluated,
    SeedFailure,
    SeedKpi,
    SeedRecord,
)

EngineRuns = Mapping[str, Mapping[str, Sequence[SeedRecord]]]
"""``runs[engine][scenario]``: the saved seeds of each engine and scenario."""


def not_evaluated(runs: EngineRuns, scenario: str) -> NotEvaluated | None:
    """``scenario`` as a finding when any of its seeds, with any engine, failed the engine's quality
    check (None when every seed has results).

    The whole scenario is then left out, not only its failed seeds: the seeds that happened to pass
    are the ones whose traffic still flowed, so their numbers would flatter the plan.
    """
    seeds = [seed for scenarios in runs.values() for seed in scenarios.get(scenario, ())]
    failures = [SeedFailure(engine=s.engine, seed=s.seed, reason=s.failure) for s in seeds if s.failed]
    if not failures:
        return None
    finding = NotEvaluated(scenario=scenario, runs=len(seeds), failures=failures, statement="")
    return finding.model_copy(update={"statement": not_evaluated_words(finding)})


def not_evaluated_words(finding: NotEvaluated, *, lang: Language | None = None) -> str:
    """The finding in words, in ``lang`` (English by default); the first failed seed's message is the
    engine's own, in English."""
    first = finding.failures[0]
    return (
        (lang or language(DEFAULT))
        .gettext(
            "'{scenario}' could not be evaluated: the simulation failed the quality check in {failed} of "
            "{runs} runs (seed {seed}: {reason}); under this model the plan leaves the simulated network "
            "gridlocked or its trips unfinished, and its indicators are not reported."
        )
        .format(
            scenario=finding.scenario,
            failed=len(finding.failures),
            runs=finding.runs,
            seed=first.seed,
            reason=first.reason,
        )
    )


def kpi_definitions(runs: EngineRuns) -> dict[str, tuple[str, SeedKpi]]:
    """Every KPI present in every seed of its engine, in the engines' own order: name → (engine, KPI).

    A KPI name two engines both report is an EngineError (names must be unique across engines).
    """
    found: dict[str, tuple[str, SeedKpi]] = {}
    for engine, scenarios in runs.items():
        seeds = [seed for scenario_seeds in scenarios.values() for seed in scenario_seeds]
        if not seeds:
            continue
        present = set.intersection(*({k.name for k in seed.kpis} for seed in seeds))
        for kpi in seeds[0].kpis:
            if kpi.name not in present:
                continue
            if kpi.name in found and found[kpi.name][0] != engine:
                raise EngineError(
                    f"engines '{found[kpi.name][0]}' and '{engine}' both report the KPI '{kpi.name}'"
                )
            found[kpi.name] = (engine, kpi)
    return found


def _values(seeds: Sequence[SeedRecord], kpi: str) -> list[float]:
    return [v for v in (seed.kpi(kpi) for seed in seeds) if math.isfinite(v)]


def _by_seed(seeds: Sequence[SeedRecord], kpi: str) -> dict[int, float]:
    """The KPI's finite values by seed number."""
    return {seed.seed: v for seed in seeds if math.isfinite(v := seed.kpi(kpi))}


def kpi_rows(runs: EngineRuns) -> list[KpiRow]:
    """Mean and 95% interval of every KPI per scenario (seeds with a NaN value left out of that KPI)."""
    rows = []
    for name, (engine, kpi) in kpi_definitions(runs).items():
        for scenario, seeds in runs[engine].items():
            values = _values(seeds, name)
            estimate = summarise(values) if values else None
            rows.append(
                KpiRow(
                    engine=engine,
                    kpi=name,
                    unit=kpi.unit,
                    label=kpi.label,
                    better=kpi.better,
                    headline=kpi.headline,
                    scenario=scenario,
                    mean=estimate.mean if estimate else math.nan,
                    ci_low=estimate.ci_low if estimate else math.nan,
                    ci_high=estimate.ci_high if estimate else math.nan,
                    n=estimate.n if estimate else 0,
                )
            )
    return rows


def difference_rows(runs: EngineRuns, baseline: str, plans: Sequence[str]) -> list[DifferenceRow]:
    """Plan − baseline for every KPI, with its 95% interval (paired by seed where both scenarios ran the
    same seeds, Welch's otherwise: :func:`~civictwin.kpis.ensemble.difference_by_seed`) and a verdict in
    words."""
    rows = []
    definitions = kpi_definitions(runs)
    for plan in plans:
        for name, (engine, kpi) in definitions.items():
            a, b = _by_seed(runs[engine][baseline], name), _by_seed(runs[engine][plan], name)
            if not a or not b:
                words = f"{kpi.label}: not measured in every scenario."
                rows.append(
                    DifferenceRow(
                        engine=engine,
                        kpi=name,
                        plan=plan,
                        mean=math.nan,
                        ci_low=math.nan,
                        ci_high=math.nan,
                        distinguishable=False,
                        words=words,
                        relative=math.nan,
                    )
                )
                continue
            better: Better = kpi.better if kpi.better in ("lower", "higher") else "neither"  # type: ignore[assignment]
            d = difference_by_seed(a, b, label=kpi.label, better=better, unit=kpi.unit)
            rows.append(
                DifferenceRow(
                    engine=engine,
                    kpi=name,
                    plan=plan,
                    mean=d.mean,
                    ci_low=d.ci_low,
                    ci_high=d.ci_high,
                    distinguishable=d.distinguishable,
                    words=d.words,
                    relative=d.relative,
                )
            )
    return rows


def headline_kpis(rows: Sequence[KpiRow]) -> list[str]:
    """The KPIs the summary and the difference figure speak about: those their engine marks as
    headline (all of an engine's KPIs when it marks none), in table order."""
    chosen: list[str] = []
    for engine in dict.fromkeys(r.engine for r in rows):
        own = list(dict.fromkeys(r.kpi for r in rows if r.engine == engine))
        marked = list(dict.fromkeys(r.kpi for r in rows if r.engine == engine and r.headline))
        chosen += marked or own
    return chosen


def headline_kpis_of(record: ComparisonRecord) -> list[str]:
    """:func:`headline_kpis` of a written comparison."""
    return headline_kpis(record.kpis)


def summary_sentences(
    baseline: str, kpis: Sequence[KpiRow], differences: Sequence[DifferenceRow], seeds: int
) -> list[str]:
    """Plain sentences for a non-technical reader: what changes and what is within noise (``seeds``:
    the fewest seeds any scenario has)."""
    n = seeds
    labels = {r.kpi: r.label or r.kpi for r in kpis}
    plans = list(dict.fromkeys(d.plan for d in differences))
    if n < 2:
        return [
            f"Each scenario was simulated with a single random seed, so no difference can be told apart "
            f"from run-to-run variation; run at least 2 seeds (5 by default) before drawing conclusions "
            f"about {', '.join(repr(p) for p in plans)}."
        ]
    sentences = [
        f"Each scenario was simulated {n} times with different random seeds. A change is called real only "
        "when it stands out from the variation between those runs (95% confidence); otherwise it is "
        "reported as within noise."
    ]
    headline = headline_kpis(kpis)
    for plan in plans:
        rows = sorted(
            (d for d in differences if d.plan == plan and d.kpi in headline),
            key=lambda d: headline.index(d.kpi),
        )
        sentences += [f"'{plan}' compared with '{baseline}': {d.words}" for d in rows if d.distinguishable]
        noise = [_in_sentence(labels[d.kpi]) for d in rows if not d.distinguishable]
        if noise and len(noise) == len(rows):
            sentences.append(
                f"'{plan}': none of the main indicators differs from '{baseline}' by more than run-to-run "
                f"noise with {n} seeds ({', '.join(noise)}); more seeds could reveal a smaller effect."
            )
        elif noise:
            sentences.append(
                f"'{plan}': no detectable change, within run-to-run noise, in {', '.join(noise)}."
            )
    return sentences


def _in_sentence(label: str) -> str:
    """``Mean car travel time`` → ``mean car travel time``; acronyms such as ``CO2`` stay as they are."""
    return label[0].lower() + label[1:] if len(label) > 1 and label[1].islower() else label


# ---------------------------------------------------------------------------------------- tables


Stacked = dict[str, pd.DataFrame]
"""One table over the seeds: value column → keys × seeds (NaN where a seed lacks a key)."""


def stack_table(seeds: Sequence[SeedRecord], spec: TableSpec) -> Stacked:
    """Every value column of table ``spec`` over ``seeds``, each seed's file read once."""
    frames = [seed.table(spec.name).set_index(list(spec.key)) for seed in seeds]
    return {
        column: pd.concat(
            [frame[column].rename(seed.seed) for frame, seed in zip(frames, seeds, strict=True)], axis=1
        ).sort_index()
        for column, _ in spec.values
    }


def table_means(stacked: Stacked, spec: TableSpec) -> pd.DataFrame:
    """Per key, the mean of every value column over the seeds (seeds without a value left out)."""
    means = {column: stacked[column].mean(axis=1) for column, _ in spec.values}
    return pd.DataFrame(means).rename_axis(list(spec.key)).reset_index()


def table_differences(base: Stacked, plan: Stacked, spec: TableSpec) -> pd.DataFrame:
    """Plan − baseline per key for every value column, each with its 95% interval over the seeds (paired
    by seed where a key has values for the same seeds on both sides, Welch's otherwise).

    Columns per value: ``<col>_base``, ``<col>_plan`` (means), ``<col>_diff``, ``<col>_ci_low``,
    ``<col>_ci_high`` and ``<col>_real`` (the interval excludes zero). Keys missing on one side have
    no values there (NaN), so no interval.
    """
    first = spec.values[0][0]
    index = base[first].index.union(plan[first].index)
    out: dict[str, np.ndarray] = {}
    paired = list(base[first].columns) == list(plan[first].columns)  # the same seeds, in the same order
    for column, _ in spec.values:
        d = key_differences(
            base[column].reindex(index).to_numpy(), plan[column].reindex(index).to_numpy(), paired=paired
        )
        out |= {
            f"{column}_base": d.base_mean,
            f"{column}_plan": d.plan_mean,
            f"{column}_diff": d.diff,
            f"{column}_ci_low": d.ci_low,
            f"{column}_ci_high": d.ci_high,
            f"{column}_real": d.real,
        }
    return pd.DataFrame(out, index=index).rename_axis(list(spec.key)).reset_index()
