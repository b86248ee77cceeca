"""The self-contained HTML report of a comparison: summary, KPI table, plots, maps, assumptions.

One file with everything inline (PNG images as data URIs, CSS in the page), so it can be mailed or
archived. Colours are colour-vision-deficiency safe: cividis for sequential values and PuOr
(purple–orange) for differences, centred on zero: purple for less, orange for more, as in the viewer.
Every engine's KPIs and tables are shown from what they declare; engines add their own figures and
notes through :class:`~civictwin.engines.base.EngineReport`.

The report is written in each language of :data:`civictwin.i18n.LANGUAGES` (``lang``): its fixed
words through the gettext catalogue, numbers and the date in the locale's form, KPI labels and units
the engines declare (extracted from their ``KpiMeaning``) translated, the summary rebuilt from the
numbers (:func:`~civictwin.compare.consultation.summary_words`). Data keeps its own words: scenario
names and descriptions, table and column ids, parameters, and engines' sentences built from their runs
(an engine's fixed headings and paragraphs marked with ``N_`` are translated).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import geopandas as gpd
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

from civictwin.compare.consultation import kpi_entries, summary_words, within_noise
from civictwin.compare.table import headline_kpis_of, not_evaluated_words
from civictwin.engines.base import EngineReport
from civictwin.i18n import DEFAULT, MINUS, N_, Language, language
from civictwin.runs import ComparisonRecord, TableColumn, TableRecord
from civictwin.scenarios.spec import Scenario, intervention_label

_ATTRIBUTION = N_("Map data © OpenStreetMap contributors (ODbL).")
_KEY_ROWS = 10
_MAPS_PER_TABLE = 6
"""At most this many difference maps per table and plan (an engine may declare many value columns)."""


def render_report(
    record: ComparisonRecord,
    *,
    scenarios: Sequence[Scenario],
    tables: Mapping[str, Mapping[str, pd.DataFrame]],
    baseline_tables: Mapping[str, pd.DataFrame],
    engine_reports: Mapping[str, EngineReport],
    parameters: Mapping[str, Mapping[str, Any]],
    manifest: Mapping[str, Any],
    notes: Sequence[str] = (),
    equity_html: str = "",
    lang: Language | None = None,
) -> str:
    """The report as one HTML string, in ``lang`` (English by default).

    ``tables[table id][plan]`` are the per-key differences and ``baseline_tables[table id]`` the
    baseline's means (WGS84 geometry when mappable); ``parameters`` are each engine's; ``equity_html``
    the equity view's fragment (:func:`civictwin.compare.equity.render_equity`), when there is one.
    """
    lang = lang or language(DEFAULT)
    _ = lang.gettext
    title = _("Comparison: {plans} vs {baseline}").format(
        plans=", ".join([*record.plans, *(f.scenario for f in record.not_evaluated)]),
        baseline=record.baseline,
    )
    run_notes = [_(n) for report in engine_reports.values() for n in report.notes] + list(notes)
    warned = {name: report.warnings for name, report in engine_reports.items() if report.warnings}
    entries = kpi_entries(record, lang=lang)
    summary = summary_words(record, entries, lang=lang)
    if lang.code != DEFAULT:  # the record's English summary names what is within noise too
        summary += within_noise(record, entries, lang=lang)
    sections = [
        _warnings(warned, lang),
        _section(
            _("In short"),
            _list(
                [
                    *_caveated(summary, warned, lang),
                    *(_(s) for r in engine_reports.values() for s in r.summary),
                ]
            ),
        ),
        _section(
            _("What was simulated"),
            _scenarios(scenarios, manifest, lang)
            + (_element("h3", _("Runs")) + _list(run_notes) if run_notes else ""),
        ),
        _section(_("Key indicators"), _kpi_table(record, warned=set(warned), lang=lang)),
        _section(_("Changes against the baseline"), _image(_difference_figure(record, lang))),
        *(
            _section(
                _(part.heading),
                _list([_(p) for p in part.paragraphs]) + "".join(_png_tag(png) for png in part.figures),
            )
            for report in engine_reports.values()
            for part in report.sections
        ),
        _section(_("Where it changes"), _tables(record, tables, baseline_tables, lang)),
        _section(_("Who it changes for: zones by income or age group"), equity_html) if equity_html else "",
        _section(_("Assumptions and parameters"), _parameters(parameters, engine_reports, lang)),
        _section(_("Reproducing these numbers"), _reproduce(manifest, lang)),
    ]
    engines = ", ".join(f"{e.name} {e.version}" for e in record.engines)
    created = (
        f'<time datetime="{html.escape(record.created)}">{html.escape(lang.date(record.created))}</time>'
    )
    return _PAGE.format(
        code=lang.code,
        title=html.escape(title),
        created_line=_("Comparison {id}, created {date}.").format(
            id=f"<code>{html.escape(record.id)}</code>", date=created
        ),
        body="\n".join(sections),
        footer=html.escape(
            _("{attribution} Made with civictwin; engines: {engines}.").format(
                attribution=_(_ATTRIBUTION), engines=engines
            )
        ),
    )


def _warnings(warned: Mapping[str, Sequence[str]], lang: Language) -> str:
    """The engines' warnings of a broken input, first and prominent (empty when there are none)."""
    if not warned:
        return ""
    items = [f"{engine}: {warning}" for engine, warnings in warned.items() for warning in warnings]
    heading = lang.gettext("Warning: results rest on an implausible input")
    explanation = lang.gettext(
        "The differences of {engines} between scenarios are not called \u201cwithin noise\u201d below: the "
        "runs vary around numbers that are wrong from the start, so a small difference says nothing about "
        "the plans."
    ).format(engines=", ".join(warned))
    return (
        f'<section class="warning" role="alert"><h2>{html.escape(heading)}</h2>'
        + _list(items)
        + f"<p>{html.escape(explanation)}</p></section>"
    )


def _caveated(summary: Sequence[str], warned: Mapping[str, Sequence[str]], lang: Language) -> list[str]:
    """The summary, each sentence about noise pointing to the warnings when there are any."""
    if not warned:
        return list(summary)
    caveat = " " + lang.gettext(
        "(But see the warning above: the input is implausible, so this says nothing about the plans.)"
    )
    noise = lang.gettext("noise")
    return [f"{s}{caveat}" if noise in s else s for s in summary]


def _section(heading: str, body: str) -> str:
    return f"<section><h2>{html.escape(heading)}</h2>\n{body}\n</section>"


def _element(tag: str, text: str) -> str:
    """``text`` escaped in one ``tag`` element (``<p>``, ``<h3>``)."""
    return f"<{tag}>{html.escape(text)}</{tag}>"


def _list(items: Sequence[str]) -> str:
    if not items:
        return ""
    return "<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in items) + "</ul>"


def _scenarios(scenarios: Sequence[Scenario], manifest: Mapping[str, Any], lang: Language) -> str:
    owners = {
        entry["label"]: entry.get("engine")
        for scenario in manifest.get("scenarios", [])
        for entry in scenario.get("interventions", [])
    }
    parts = []
    for scenario in scenarios:
        changes = []
        for index, item in enumerate(scenario.interventions):
            engine = owners.get(intervention_label(index, item))
            changes.append(
                f"{item.type.replace('_', ' ')}{f' ({engine})' if engine else ''}: {item.describe()}"
            )
        parts.append(
            f"<h3>{html.escape(scenario.name)}</h3>"
            + _element("p", scenario.description or lang.gettext("No description."))
            + (
                _list(changes)
                if changes
                else _element("p", lang.gettext("No interventions: the twin as built."))
            )
        )
    return "\n".join(parts)


def _number(value: float | None, unit: str, lang: Language) -> str:
    """A table's number in the locale's form: a share in percent with one decimal, 100 and more
    whole, 1 and more with two decimals, smaller values with three significant digits; '–' unknown."""
    if value is None or not math.isfinite(value):
        return "–"
    if unit == "share":
        return lang.percent(value, decimals=1).replace(MINUS, "-")
    magnitude = abs(value)
    if magnitude >= 1:
        return lang.decimal(value, decimals=0 if magnitude >= 100 else 2).replace(MINUS, "-")
    significant = f"{value:.3g}"
    if "e" in significant:  # below 1e-4: the exponent form, with the locale's decimal sign
        return significant.replace(".", _decimal_sign(lang))
    decimals = len(significant.partition(".")[2])
    return lang.decimal(value, decimals=decimals, grouped=False).replace(MINUS, "-")


def _decimal_sign(lang: Language) -> str:
    """The locale's decimal sign ("." en, "," sk and it)."""
    return lang.decimal(0.5, decimals=1)[1]


class _LocaleTicks(ScalarFormatter):
    """Matplotlib's tick numbers with the locale's decimal sign (``0,5`` in sk and it)."""

    def __init__(self, lang: Language) -> None:
        super().__init__()
        self.sign = _decimal_sign(lang)

    def __call__(self, x: float, pos: int | None = None) -> str:
        return str(super().__call__(x, pos)).replace(".", self.sign)


def _kpi_table(record: ComparisonRecord, *, warned: set[str], lang: Language) -> str:
    """The KPI table; an engine in ``warned`` gets no "within noise" verdicts, only a pointer to its
    warning. A plan not evaluated (a failed quality check) has a last column saying so in every row,
    its finding as the cells' title, instead of numbers."""
    scenarios = [record.baseline, *record.plans]
    head = "".join(f"<th>{html.escape(s)}</th>" for s in scenarios)
    head += "".join(f"<th>{html.escape(p)} − {html.escape(record.baseline)}</th>" for p in record.plans)
    head += "".join(f"<th>{html.escape(f.scenario)}</th>" for f in record.not_evaluated)
    columns = 1 + len(scenarios) + len(record.plans) + len(record.not_evaluated)
    not_shown = html.escape(lang.gettext("not evaluated"))
    unevaluated = "".join(
        f'<td class="warned" title="{html.escape(not_evaluated_words(f, lang=lang))}">{not_shown}</td>'
        for f in record.not_evaluated
    )
    rows = []
    words = {
        (entry["kpi"], change["plan"]): str(change["words"])
        for entry in kpi_entries(record, lang=lang)
        for change in entry["changes"]
    }
    engines = list(dict.fromkeys(r.engine for r in record.kpis))
    for engine in engines:
        if len(engines) > 1:
            rows.append(f'<tr><th colspan="{columns}">{html.escape(engine)}</th></tr>')
        for kpi in dict.fromkeys(r.kpi for r in record.kpis if r.engine == engine):
            row = _kpi_row(record, kpi, scenarios, warned=engine in warned, words=words, lang=lang)
            rows.append(row.removesuffix("</tr>") + unevaluated + "</tr>")
    explanation = lang.gettext(
        "Means over the seeds with their 95% confidence interval below; the last columns give plan minus "
        "baseline, marked {real} when the interval excludes zero and {noise} otherwise."
    ).format(
        real="<span class=real>" + html.escape(lang.gettext("real change")) + "</span>",
        noise="<span class=noise>" + html.escape(lang.gettext("within noise")) + "</span>",
    )
    indicator = html.escape(lang.gettext("Indicator"))
    return (
        f"<p>{explanation}</p>"
        f'<table class="kpis"><thead><tr><th>{indicator}</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _kpi_row(
    record: ComparisonRecord,
    kpi: str,
    scenarios: Sequence[str],
    *,
    warned: bool,
    words: Mapping[tuple[str, str], str],
    lang: Language,
) -> str:
    """One KPI's row; ``words`` are each (KPI, plan) change in words in ``lang`` (the cells' titles)."""
    first = record.kpi(kpi, record.baseline)
    unit = first.unit
    cells = []
    for scenario in scenarios:
        row = record.kpi(kpi, scenario)
        interval = (
            "<br><small>"
            + lang.gettext("{low} to {high}").format(
                low=_number(row.ci_low, unit, lang), high=_number(row.ci_high, unit, lang)
            )
            + "</small>"
            if row.ci_low is not None and row.ci_high is not None
            else ""
        )
        cells.append(f"<td>{_number(row.mean, unit, lang)}{interval}</td>")
    for plan in record.plans:
        diff = record.difference(kpi, plan)
        css = "real" if diff.distinguishable else "noise"
        verdict = lang.gettext("real change") if diff.distinguishable else lang.gettext("within noise")
        if warned:
            css, verdict = "warned", lang.gettext("not assessed: implausible input, see the warning")
        title = words.get((kpi, plan), diff.words)
        cells.append(
            f'<td class="{css}" title="{html.escape(title)}">{_number(diff.mean, unit, lang)}'
            f"<br><small>{html.escape(verdict)}</small></td>"
        )
    shown_unit = "%" if unit == "share" else lang.gettext(unit) if unit else unit
    label = lang.gettext(first.label) if first.label else kpi
    return (
        f"<tr><th>{html.escape(label)} <small>({html.escape(shown_unit)})</small></th>"
        + "".join(cells)
        + "</tr>"
    )


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _png_tag(png: bytes, alt: str = "") -> str:
    return (
        f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
    )


def _image(figure: Figure, alt: str = "") -> str:
    return _png_tag(_png(figure), alt)


def _difference_figure(record: ComparisonRecord, lang: Language) -> Figure:
    """Relative change (%) of the headline KPIs with their 95% intervals, one colour per plan."""
    kpis = [k for k in headline_kpis_of(record) if any(d.kpi == k for d in record.differences)]
    labels = {r.kpi: lang.gettext(r.label) if r.label else r.kpi for r in record.kpis}
    figure, axis = plt.subplots(figsize=(8, 0.6 + 0.55 * max(1, len(kpis)) * max(1, len(record.plans))))
    colours = plt.get_cmap("cividis")(np.linspace(0.15, 0.85, max(1, len(record.plans))))
    height = 0.8 / max(1, len(record.plans))
    for p, plan in enumerate(record.plans):
        for k, kpi in enumerate(kpis):
            diff = record.difference(kpi, plan)
            base = record.kpi(kpi, record.baseline).mean
            if diff.mean is None or not base:
                continue
            scale = 100.0 / abs(base)
            y = k + (p - (len(record.plans) - 1) / 2) * height
            low = diff.ci_low * scale if diff.ci_low is not None else diff.mean * scale
            high = diff.ci_high * scale if diff.ci_high is not None else diff.mean * scale
            axis.errorbar(
                diff.mean * scale,
                y,
                xerr=[[diff.mean * scale - low], [high - diff.mean * scale]],
                fmt="o",
                mfc=colours[p] if diff.distinguishable else "white",
                color=colours[p],
                capsize=3,
                label=plan if k == 0 else None,
            )
    axis.axvline(0, color="0.4", lw=0.8)
    axis.set_yticks(range(len(kpis)), [labels[k] for k in kpis])
    axis.invert_yaxis()
    axis.set_xlabel(lang.gettext("Change against the baseline (%), with 95% interval; hollow = within noise"))
    axis.xaxis.set_major_formatter(_LocaleTicks(lang))
    if kpis:
        axis.legend(loc="best", frameon=False)
    return figure


def _tables(
    record: ComparisonRecord,
    tables: Mapping[str, Mapping[str, pd.DataFrame]],
    baseline_tables: Mapping[str, pd.DataFrame],
    lang: Language,
) -> str:
    _ = lang.gettext
    intro = _(
        "Each engine's results per street, building, zone or grid cell, as means over the seeds. Every "
        "value gets its own 95% interval from the variation between seeds: it is coloured only where its "
        "change stands out from run-to-run noise (purple lower, orange higher; the scale stays readable "
        "with colour-vision deficiencies); grey shows no change beyond noise."
    )
    parts = [f"<p>{html.escape(intro)}</p>"]
    for table in record.tables:
        parts.append(
            f"<h3>{html.escape(table.label or table.id)} <small>({html.escape(table.id)})</small></h3>"
        )
        base = baseline_tables.get(table.id)
        if isinstance(base, gpd.GeoDataFrame) and not base.empty:
            first = table.values[0]
            alt = _("{scenario}: {column} per {table}").format(
                scenario=record.baseline, column=first.column, table=table.name
            )
            parts.append(
                f"<h4>{html.escape(alt)}</h4>{_image(_value_map(base, first.column, first.unit, lang), alt)}"
            )
        for plan, diff in tables.get(table.id, {}).items():
            parts.append(f"<h4>{html.escape(plan)} − {html.escape(record.baseline)}</h4>")
            parts.append(f"<p>{html.escape(_real_counts(table, diff, lang))}</p>")
            mapped = _changed_values(diff, table)
            if isinstance(diff, gpd.GeoDataFrame) and not diff.empty:
                alt = _("maps of the changes of {plan} in {table}").format(plan=plan, table=table.id)
                parts.append(_image(_difference_maps(diff, mapped, lang), alt))
            unmapped = _unmapped_sentence(table, mapped, lang)
            if unmapped:
                parts.append(f"<p>{html.escape(unmapped)}</p>")
            parts.append(_key_table(diff, table, lang))
    return "\n".join(parts)


def _real_counts(table: TableRecord, diff: pd.DataFrame, lang: Language) -> str:
    """How many rows change each value beyond noise, in words."""
    counts = [
        lang.ngettext("{count} changes {column}", "{count} change {column}", count).format(
            count=lang.decimal(count, decimals=0), column=v.column
        )
        for v in table.values
        for count in [int(diff[f"{v.column}_real"].sum())]
    ]
    rows = len(diff)
    return lang.ngettext(
        "Of {rows} row, beyond run-to-run noise: {counts}.",
        "Of {rows} rows, beyond run-to-run noise: {counts}.",
        rows,
    ).format(rows=lang.decimal(rows, decimals=0), counts="; ".join(counts))


def _value_map(frame: gpd.GeoDataFrame, column: str, unit: str, lang: Language) -> Figure:
    figure, axis = plt.subplots(figsize=(7, 7))
    frame.plot(ax=axis, column=column, cmap="cividis", legend=True,
               legend_kwds={"label": f"{column} ({unit})", "shrink": 0.6, "format": _LocaleTicks(lang)},
               **_style(frame))  # fmt: skip
    _map_axis(axis)
    return figure


def _changed_values(diff: pd.DataFrame, table: TableRecord) -> list[TableColumn]:
    """The value columns to map: those with a change beyond noise in some row, in declared order, at
    most :data:`_MAPS_PER_TABLE` (an engine may declare many); the first column alone, all grey, when
    nothing changes beyond noise."""
    changed = [v for v in table.values if diff[f"{v.column}_real"].to_numpy(dtype=bool).any()]
    return changed[:_MAPS_PER_TABLE] or table.values[:1]


def _unmapped_sentence(table: TableRecord, mapped: Sequence[TableColumn], lang: Language) -> str:
    shown = {v.column for v in mapped}
    rest = [v.column for v in table.values if v.column not in shown]
    if not rest:
        return ""
    return lang.gettext(
        "Not mapped (no change beyond noise, or beyond the first {count} that change): {columns}."
    ).format(count=_MAPS_PER_TABLE, columns=", ".join(rest))


def _difference_maps(diff: gpd.GeoDataFrame, mapped: Sequence[TableColumn], lang: Language) -> Figure:
    columns = len(mapped)
    rows = math.ceil(columns / 2)
    figure, axes = plt.subplots(
        rows, min(2, columns), figsize=(11 if columns > 1 else 7, 5.5 * rows), squeeze=False
    )
    for axis in axes.flat[columns:]:
        axis.set_visible(False)
    for axis, value in zip(axes.flat, mapped, strict=False):
        column = f"{value.column}_diff"
        real = diff[diff[f"{value.column}_real"].to_numpy(dtype=bool)]
        diff.plot(ax=axis, color="0.85", **_style(diff, thin=True))
        values = real[column].to_numpy(dtype=float)
        if values.size and np.nanmax(np.abs(values)) > 0:
            limit = float(np.nanmax(np.abs(values)))
            real.plot(ax=axis, column=column, cmap="PuOr_r", norm=TwoSlopeNorm(0.0, -limit, limit), legend=True,
                      legend_kwds={"label": lang.gettext("change ({unit})").format(unit=value.unit), "shrink": 0.6,
                                   "format": _LocaleTicks(lang)},
                      **_style(real))  # fmt: skip
        axis.set_title(
            lang.gettext("Change in {value} (beyond noise)").format(value=value.column.replace("_", " "))
        )
        _map_axis(axis)
    return figure


def _style(frame: gpd.GeoDataFrame, *, thin: bool = False) -> dict[str, Any]:
    """Lines drawn as lines, areas with thin outlines, points as dots."""
    kinds = set(frame.geom_type.dropna())
    if kinds <= {"LineString", "MultiLineString"}:
        return {"linewidth": 0.8 if thin else 1.8}
    if kinds <= {"Point", "MultiPoint"}:
        return {"markersize": 4 if thin else 8}
    return {"edgecolor": "0.6", "linewidth": 0.3}


def _key_table(diff: pd.DataFrame, table: TableRecord, lang: Language) -> str:
    """The rows with the largest change beyond noise of the table's first value."""
    _ = lang.gettext
    first = table.values[0]
    real = diff[diff[f"{first.column}_real"].to_numpy(dtype=bool)]
    if real.empty:
        return _element("p", _("No row changes its {column} beyond noise.").format(column=first.column))
    largest = real.reindex(real[f"{first.column}_diff"].abs().sort_values(ascending=False).index)[:_KEY_ROWS]
    head = "".join(f"<th>{html.escape(k)}</th>" for k in table.key)
    head += "".join(
        f"<th>{html.escape(text)}</th>"
        for text in (_("Baseline"), _("Plan"), _("Change (95% CI), {unit}").format(unit=first.unit))
    )

    def cell(row: pd.Series, suffix: str) -> str:
        return _number(row[f"{first.column}_{suffix}"], first.unit, lang)

    rows = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(str(row[k]))}</td>" for k in table.key)
        + f"<td>{cell(row, 'base')}</td><td>{cell(row, 'plan')}</td><td>{cell(row, 'diff')}<br><small>"
        + _("{low} to {high}").format(low=cell(row, "ci_low"), high=cell(row, "ci_high"))
        + "</small></td></tr>"
        for _index, row in largest.iterrows()
    )
    intro = lang.ngettext(
        "The {count} row with the largest change in {column} beyond noise:",
        "The {count} rows with the largest change in {column} beyond noise:",
        len(largest),
    ).format(count=len(largest), column=first.column)
    return (
        f"<p>{html.escape(intro)}</p>"
        f'<table class="kpis"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
    )


def _map_axis(axis: Any) -> None:
    axis.set_axis_off()
    axis.set_aspect(1 / math.cos(math.radians(float(np.mean(axis.get_ylim())))))


def _parameters(
    parameters: Mapping[str, Mapping[str, Any]], reports: Mapping[str, EngineReport], lang: Language
) -> str:
    parts = []
    for engine, values in parameters.items():
        rows = "".join(
            f"<tr><th>{html.escape(key)}</th><td>{html.escape(str(value))}</td></tr>"
            for key, value in _flatten(values)
        )
        method = lang.gettext(reports[engine].method) if engine in reports and reports[engine].method else ""
        parts.append(
            f"<h3>{html.escape(engine)}</h3>"
            + (f"<p>{html.escape(method)}</p>" if method else "")
            + f'<table class="params"><tbody>{rows}</tbody></table>'
        )
    return "\n".join(parts)


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            items += _flatten(value, f"{name}.")
        else:
            items.append((name, value))
    return items


def _reproduce(manifest: Mapping[str, Any], lang: Language) -> str:
    _ = lang.gettext
    built_in_code = _("(built in code)")
    scenarios = [f"{s['name']}: sha256 {s['sha256'] or built_in_code}" for s in manifest.get("scenarios", [])]
    engines = [
        _("engine {name} {version} ({package})").format(
            name=name,
            version=entry.get("version", ""),
            package=entry.get("package") or _("not installed as a package"),
        )
        for name, entry in manifest.get("engines", {}).items()
    ]
    software = ", ".join(f"{k} {v}" for k, v in manifest.get("software", {}).items())
    seeds = ", ".join(str(s) for s in manifest.get("seeds", []))
    record = _(
        "Seeds: {seeds}. The full record (data checksums, parameters, software) is in {manifest} beside "
        "this report."
    ).format(seeds=html.escape(seeds), manifest="<code>manifest.json</code>")
    return f"<p>{record}</p>" + _list(engines + scenarios) + f"<p><small>{html.escape(software)}</small></p>"


_PAGE = """<!DOCTYPE html>
<html lang="{code}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       color: #1a1a1a; line-height: 1.45; }}
h1 {{ font-size: 1.6rem; }} h2 {{ border-bottom: 1px solid #ccc; padding-bottom: .2rem; margin-top: 2rem; }}
table {{ border-collapse: collapse; font-size: .9rem; }}
th, td {{ border: 1px solid #ddd; padding: .3rem .5rem; text-align: right; vertical-align: top; }}
th {{ text-align: left; background: #f6f6f6; }}
.real {{ background: #fde9c9; }} .noise {{ color: #555; }} .warned {{ color: #8a1c00; }}
.warning {{ border: 3px solid #8a1c00; background: #fff3ef; padding: .2rem 1rem; }}
img {{ max-width: 100%; }}
.params td {{ text-align: left; font-family: ui-monospace, monospace; }}
footer {{ margin-top: 3rem; font-size: .8rem; color: #555; }}
</style></head>
<body>
<h1>{title}</h1>
<p>{created_line}</p>
{body}
<footer>{footer}</footer>
</body></html>
"""
