"""The equity view of a comparison: each zone KPI's change broken down by income or age group.

Zones are put into classes (quintiles by default) by a socio-demographic column of the twin's
``zones`` layer (``[sociodemographics] equity_by``; a count such as people aged 65+ is taken per
resident of the zone). For every engine table keyed by ``zone_id`` on the ``zones`` layer, each seed's
value of a class is the sum over its zones (amounts: vehicle-km, CO2, residents exposed) or the
resident-weighted mean (levels, whose unit is in :data:`LEVEL_UNITS`: noise in dB, temperatures,
shares); plan − baseline per class then gets its 95% interval over the seeds (paired by seed), exactly
as a KPI does (:func:`civictwin.kpis.ensemble.difference_by_seed`). A network-wide KPI (a mean travel time, a mode
share) has no per-zone value in the seeds and cannot be broken down; the view lists which were left
out. Method: docs/methods-sociodemographics.md.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from civictwin.compare.table import EngineRuns, kpi_definitions, stack_table
from civictwin.config import SociodemographicsSection
from civictwin.engines.base import Engine, TableSpec
from civictwin.i18n import DEFAULT, MINUS, Language, language
from civictwin.kpis.ensemble import Difference, difference_by_seed

EQUITY_FILE = "equity.json"
"""The equity view in a comparison folder."""

LEVEL_UNITS = frozenset({"dB(A)", "dB", "°C", "share", "%", "kWh/m²", "m/s", "km/h"})
"""Units of levels (averaged over a class's residents); every other unit is an amount (summed)."""

ZONE_LAYER = "zones"


@dataclass(frozen=True)
class Grouping:
    """Which zones column classes the zones, and how."""

    column: str
    """A column of the ``zones`` layer (``<source>_<column>``)."""
    label: str
    """Plain words for the report (the source's column name)."""
    per_resident: bool = False
    """A count: classes by its value per resident of the zone (``zones.population``)."""
    classes: int = 5


@dataclass(frozen=True)
class EquityRow:
    """Plan − baseline of one zone value in one class of zones, with its 95% interval over seeds."""

    engine: str
    table: str
    value: str
    unit: str
    grouping: str
    group: str
    zones: int
    residents: float
    plan: str
    base_mean: float
    plan_mean: float
    diff: float
    ci_low: float
    ci_high: float
    distinguishable: bool
    words: str


@dataclass(frozen=True)
class EquityView:
    """The rows, the classes' definitions, and what could not be broken down (with why)."""

    rows: list[EquityRow]
    groups: dict[str, list[str]]
    """Per grouping, its classes in order (lowest first), with their ranges."""
    not_broken_down: dict[str, str] = field(default_factory=dict)
    """KPI name → why it has no breakdown."""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        """The view as the ``equity.json`` of a comparison (NaN as null)."""
        rows = [
            {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(r).items()}
            for r in self.rows
        ]
        data = {
            "groups": self.groups,
            "rows": rows,
            "not_broken_down": self.not_broken_down,
            "notes": self.notes,
        }
        return json.dumps(data, indent=1, ensure_ascii=False)


def zone_classes(zones: pd.DataFrame, grouping: Grouping) -> tuple[pd.Series, list[str]]:
    """Each zone's class (``zone_id`` → class name; None without a value) and the class names in order.

    Quantiles of the zones with a value (ties may merge classes); names carry their value range.
    """
    values = pd.to_numeric(zones[grouping.column], errors="coerce")
    if grouping.per_resident:
        residents = pd.to_numeric(zones["population"], errors="coerce")
        values = values / residents.where(residents > 0)
    ids = zones["zone_id"].astype(str)
    known = values.notna().to_numpy()
    if known.sum() < 2:
        return pd.Series([None] * len(zones), index=ids.to_numpy(), dtype=object), []
    codes, edges = pd.qcut(values[known], grouping.classes, labels=False, retbins=True, duplicates="drop")
    names = [_class_name(k, len(edges) - 1, edges[k], edges[k + 1]) for k in range(len(edges) - 1)]
    classes = np.full(len(zones), None, dtype=object)
    classes[known] = [names[int(c)] for c in codes]
    return pd.Series(classes, index=ids.to_numpy(), dtype=object), names


def _class_name(k: int, n: int, low: float, high: float) -> str:
    position = " (lowest)" if k == 0 else " (highest)" if k == n - 1 else ""
    return f"{k + 1} of {n}{position}: {_short(low)}–{_short(high)}"


def _short(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def zone_tables(engines: Sequence[Engine]) -> list[tuple[str, TableSpec]]:
    """(engine, table) of every table keyed by ``zone_id`` on the ``zones`` layer."""
    return [(e.name, s) for e in engines for s in e.tables if s.layer == ZONE_LAYER and s.key == ("zone_id",)]


def equity_view(
    runs: EngineRuns,
    *,
    engines: Sequence[Engine],
    baseline: str,
    plans: Sequence[str],
    zones: pd.DataFrame,
    groupings: Sequence[Grouping],
) -> EquityView:
    """Every zone table's values per class of every grouping, plan − baseline with 95% intervals.

    ``runs[engine][scenario]`` are the saved seeds; ``zones`` the twin's zones layer (``zone_id``,
    ``population`` and the grouping columns).
    """
    residents = pd.Series(
        pd.to_numeric(zones["population"], errors="coerce").fillna(0.0).to_numpy(),
        index=zones["zone_id"].astype(str).to_numpy(),
    )
    tables = zone_tables(engines)
    rows: list[EquityRow] = []
    groups: dict[str, list[str]] = {}
    notes: list[str] = []
    for grouping in groupings:
        if grouping.column not in zones.columns:
            notes.append(
                f"{grouping.label}: the twin's zones have no column '{grouping.column}'; rebuild the twin"
            )
            continue
        classes, names = zone_classes(zones, grouping)
        groups[grouping.label] = names
        if not names:
            notes.append(f"{grouping.label}: fewer than two zones have a value; no classes")
            continue
        for engine, spec in tables:
            stacks = {s: stack_table(runs[engine][s], spec) for s in (baseline, *plans)}
            for column, unit in spec.values:
                per_class = {s: _class_values(stacks[s][column], classes, residents, unit) for s in stacks}
                rows += _rows(
                    engine,
                    spec,
                    (column, unit),
                    grouping,
                    names,
                    per_class,
                    plans,
                    baseline=baseline,
                    counts=(classes, residents),
                )
    return EquityView(rows=rows, groups=groups, not_broken_down=_not_broken_down(runs, tables), notes=notes)


def _class_values(stack: pd.DataFrame, classes: pd.Series, residents: pd.Series, unit: str) -> pd.DataFrame:
    """Class × seed: the sum (amounts) or the resident-weighted mean (levels) over each class's zones."""
    stack = stack.copy()
    stack.index = stack.index.astype(str)
    labels = classes.reindex(stack.index)
    stack, labels = stack[labels.notna()], labels[labels.notna()]
    if unit not in LEVEL_UNITS:
        return stack.groupby(labels).sum(min_count=1)
    weights = residents.reindex(stack.index).fillna(0.0)
    finite = stack.notna()
    weighted = stack.fillna(0.0).mul(weights, axis=0).groupby(labels).sum()
    total = finite.mul(weights, axis=0).groupby(labels).sum()
    plain = stack.groupby(labels).mean()
    return (weighted / total.where(total > 0)).fillna(plain)


def _rows(
    engine: str,
    spec: TableSpec,
    value: tuple[str, str],
    grouping: Grouping,
    names: Sequence[str],
    per_class: Mapping[str, pd.DataFrame],
    plans: Sequence[str],
    *,
    baseline: str,
    counts: tuple[pd.Series, pd.Series],
) -> list[EquityRow]:
    column, unit = value
    classes, residents = counts
    rows = []
    for plan in plans:
        for name in names:
            a, b = (_by_seed(per_class[s], name) for s in (baseline, plan))
            label = f"{column} ({grouping.label} {name})"
            members = classes.index[classes == name]
            d = (
                difference_by_seed(a, b, label=label, unit=unit)
                if a and b
                else Difference(
                    math.nan,
                    math.nan,
                    math.nan,
                    False,
                    f"{label}: not measured in every scenario.",
                    math.nan,
                    math.nan,
                    math.nan,
                )
            )
            rows.append(
                EquityRow(
                    engine=engine,
                    table=spec.name,
                    value=column,
                    unit=unit,
                    grouping=grouping.label,
                    group=name,
                    zones=len(members),
                    residents=round(float(residents.reindex(members).sum()), 1),
                    plan=plan,
                    base_mean=d.base_mean,
                    plan_mean=d.plan_mean,
                    diff=d.mean,
                    ci_low=d.ci_low,
                    ci_high=d.ci_high,
                    distinguishable=d.distinguishable,
                    words=d.words,
                )
            )
    return rows


def _by_seed(frame: pd.DataFrame, name: str) -> dict[int, float]:
    """Class ``name``'s finite values by seed (the frame's columns are seed numbers)."""
    if name not in frame.index:
        return {}
    row = frame.loc[name]
    values = row.to_numpy(dtype=float)
    return {
        int(seed): float(v)
        for seed, v in zip(row.index.tolist(), values.tolist(), strict=True)
        if math.isfinite(v)
    }


def _not_broken_down(runs: EngineRuns, tables: Sequence[tuple[str, TableSpec]]) -> dict[str, str]:
    """Every KPI of the runs: each is one network- or city-wide number per seed, with no zone split."""
    with_zones = {engine for engine, _ in tables}
    reasons = {}
    for name, (engine, _kpi) in kpi_definitions(runs).items():
        reasons[name] = (
            f"one number per seed for the whole twin; the {engine} engine's zone table is broken down instead"
            if engine in with_zones
            else f"one number per seed for the whole twin, and the {engine} engine declares no zone table"
        )
    return reasons


def render_equity(view: EquityView, *, lang: Language | None = None) -> str:
    """The view as an HTML fragment for the comparison report: one table per grouping and plan, its
    fixed words and numbers in ``lang`` (English by default); the view's own sentences and notes, built
    when the comparison ran, stay English."""
    lang = lang or language(DEFAULT)
    _ = lang.gettext
    if not view.rows:
        return "<p>" + html.escape(" ".join(view.notes) or _("No zone values to break down.")) + "</p>"
    intro = _(
        "Zones are grouped by the socio-demographic columns of the twin's zones; each zone value is "
        "summed over a group's zones (amounts) or averaged over its residents (levels), seed by seed, and "
        "the change gets its 95% interval over the seeds."
    )
    rest = (
        _(
            "Only zone values can be broken down; these KPIs are one number for the whole twin and are not: {kpis}."
        )
        if view.not_broken_down
        else _("Only zone values can be broken down.")
    ).format(kpis=", ".join(view.not_broken_down))
    parts = [f"<p>{html.escape(intro)} {html.escape(rest)}</p>"]
    parts_by: dict[tuple[str, str], list[EquityRow]] = {}
    for row in view.rows:
        parts_by.setdefault((row.grouping, row.plan), []).append(row)
    for (grouping, plan), rows in parts_by.items():
        heading = _("{plan}: by {grouping}").format(plan=plan, grouping=grouping)
        parts.append(f"<h3>{html.escape(heading)}</h3>")
        parts.append(_html_table(rows, lang))
        said = [r.words for r in rows if r.distinguishable]
        if said:
            parts.append("<ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in said) + "</ul>")
    if view.notes:
        parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in view.notes) + "</ul>")
    return "\n".join(parts)


def _html_table(rows: Sequence[EquityRow], lang: Language) -> str:
    _ = lang.gettext
    titles = (
        _("value"),
        _("group"),
        _("zones"),
        _("residents"),
        _("baseline"),
        _("plan"),
        _("change (95% CI)"),
    )
    head = "<tr>" + "".join(f"<th>{html.escape(t)}</th>" for t in titles) + "</tr>"
    body = "".join(
        "<tr>"
        f"<td>{html.escape(r.value)} ({html.escape(r.unit)})</td><td>{html.escape(r.group)}</td>"
        f"<td>{r.zones}</td><td>{_cell(r.residents, lang, whole=True)}</td>"
        f"<td>{_cell(r.base_mean, lang)}</td><td>{_cell(r.plan_mean, lang)}</td>"
        f"<td>{_cell(r.diff, lang)} ("
        + html.escape(_("{low} to {high}").format(low=_cell(r.ci_low, lang), high=_cell(r.ci_high, lang)))
        + f"){' *' if r.distinguishable else ''}</td></tr>"
        for r in rows
    )
    footnote = html.escape(_("* the interval excludes zero."))
    return f'<table class="equity">{head}{body}</table><p>{footnote}</p>'


def _cell(value: float, lang: Language, *, whole: bool = False) -> str:
    """A number in the locale's form: whole from 100 (or when ``whole``), else three significant
    digits; '–' when unknown."""
    if not math.isfinite(value):
        return "–"
    if whole or abs(value) >= 100:
        return lang.decimal(value, decimals=0).replace(MINUS, "-")
    significant = f"{value:.3g}"
    if "e" in significant:
        return significant.replace(".", lang.decimal(0.5, decimals=1)[1])  # the locale's decimal sign
    return lang.decimal(value, decimals=len(significant.partition(".")[2])).replace(MINUS, "-")


def groupings_of(section: SociodemographicsSection | None) -> list[Grouping]:
    """The groupings ``[sociodemographics] equity_by`` asks for (none without the section)."""
    if section is None:
        return []
    return [
        Grouping(
            column=f"{section.source}_{name}",
            label=name,
            per_resident=name not in section.intensive,
            classes=section.classes,
        )
        for name in section.equity_by
    ]
