"""What a public consultation page says about one comparison, in plain words (docs/consultation.md).

The question, the scenarios, every KPI with its 95% interval per scenario and its change per plan,
which changes are within run-to-run noise, the validation the runs carried, and what changes near a
point of the map. Shares are said in percentage points ("from 18.6% to 16.2% of trips, 2.4 points
fewer"), never only as a relative change, which a reader would take for points. Pure: plain data
in (the comparison record, its manifest, its scenario files, a table's differences), plain data out;
the API reads the files and renders the page.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import geopandas as gpd
import pandas as pd
from shapely.geometry import Point

from civictwin.compare.table import not_evaluated_words
from civictwin.i18n import DEFAULT, N_, Language, language
from civictwin.kpis.ensemble import SHARE_UNITS
from civictwin.runs import ComparisonRecord, DifferenceRow, KpiRow, TableRecord

NEAR_RADIUS_M = 300.0
"""How far around a point "near me" looks by default (m): a few minutes' walk."""
MAX_RADIUS_M = 2000.0
"""The largest radius a caller may ask for (m)."""
NEAR_ITEMS = 5
"""How many of the nearby keys that change most are named."""

UNIT_WORDS = (N_("vehicles"), N_("trips"), N_("person trips"))
"""The KPI units that are words (the others are symbols: s, km/h, kg, dB(A)), translated where shown."""

_SHARE_OF = re.compile(r"\bshare of (.+)$", re.IGNORECASE)


def is_share(unit: str) -> bool:
    """Whether values in ``unit`` are shares (said in percent, their changes in points)."""
    return unit in SHARE_UNITS


def _english() -> Language:
    return language(DEFAULT)


def number(value: float | None, *, lang: Language | None = None) -> str:
    """A value for people: three significant figures at most, thousands separated in the locale's way
    (``1,731`` en, ``1 731`` sk, ``1.731`` it); '–' when unknown."""
    if value is None or not math.isfinite(value):
        return "–"
    size = abs(value)
    decimals = 0 if size >= 100 else 1 if size >= 10 else 2 if size >= 0.1 or size == 0 else 3
    if f"{value:.{decimals}f}".strip("-0.") == "":
        return "0"
    return (lang or _english()).decimal(value, decimals=decimals).replace("\u2212", "-")


def share_text(value: float | None, unit: str, *, lang: Language | None = None) -> str:
    """A share in percent with one decimal (``0.186`` in unit ``share`` → ``18.6%``, ``18,6 %`` sk)."""
    if value is None or not math.isfinite(value):
        return "–"
    return (lang or _english()).percent(value * SHARE_UNITS[unit] / 100, decimals=1)


def value_text(row: KpiRow, *, lang: Language | None = None) -> str:
    """A scenario's KPI with its interval: ``18.6% (17.9% to 19.3%)`` or ``348 s (321 to 375)``."""
    lang = lang or _english()
    if is_share(row.unit):
        low, high = share_text(row.ci_low, row.unit, lang=lang), share_text(row.ci_high, row.unit, lang=lang)
        value = share_text(row.mean, row.unit, lang=lang)
    else:
        low, high = number(row.ci_low, lang=lang), number(row.ci_high, lang=lang)
        value = number(row.mean, lang=lang) + (f" {lang.gettext(row.unit)}" if row.unit else "")
    return lang.gettext("{value} ({low} to {high})").format(value=value, low=low, high=high)


def share_change_words(
    label: str, base: KpiRow, plan: KpiRow, change: DifferenceRow, *, lang: Language | None = None
) -> str:
    """A change of a share in points, with its interval in points and the noise verdict, e.g.
    ``Car share of trips: from 18.6% to 16.2% of trips, 2.4 points fewer (95% CI 3.1 to 1.7 points
    fewer).`` The difference is the comparison's own (plan − baseline over the seeds), not the
    difference of the rounded means. Points always carry one decimal, so each language says them in
    the grammatical number its decimals take (Slovak "o 2,4 bodu menej")."""
    lang = lang or _english()
    factor = SHARE_UNITS[base.unit]
    match = _SHARE_OF.search(label)
    base_text, plan_text = (
        share_text(base.mean, base.unit, lang=lang),
        share_text(plan.mean, plan.unit, lang=lang),
    )
    if match and lang.code == DEFAULT:
        start = f"{label}: from {base_text} to {plan_text} of {match.group(1)}"
    else:
        start = lang.gettext("{label}: from {base} to {plan}").format(
            label=lang.gettext(label), base=base_text, plan=plan_text
        )
    if change.mean is None or change.ci_low is None or change.ci_high is None:
        return lang.gettext("{start}; the change has no interval (too few runs).").format(start=start)
    diff, low, high = change.mean * factor, change.ci_low * factor, change.ci_high * factor
    points = lang.decimal(abs(diff), decimals=1)
    if round(abs(diff), 1) == 0:
        size = lang.gettext("no change")
    elif diff > 0:
        size = lang.gettext("{points} points more").format(points=points)
    else:
        size = lang.gettext("{points} points fewer").format(points=points)
    interval = lang.gettext("95% CI {low} to {high} points").format(
        low=_signed_points(low, lang), high=_signed_points(high, lang)
    )
    if not change.distinguishable:
        return lang.gettext("{start}, {size}: within run-to-run noise ({interval}).").format(
            start=start, size=size, interval=interval
        )
    return lang.gettext("{start}, {size} ({interval}).").format(start=start, size=size, interval=interval)


def _signed_points(value: float, lang: Language) -> str:
    rounded = round(value, 1)
    sign = "+" if rounded > 0 else "−" if rounded < 0 else ""
    return sign + lang.decimal(abs(rounded), decimals=1)


def plain_change_words(label: str, change: DifferenceRow, *, unit: str, lang: Language) -> str:
    """A change of a value that is not a share, in ``lang``, from the comparison's numbers: up or down
    by how much with its 95% interval, or within run-to-run noise (the record's own ``words`` are
    English, written when the comparison ran)."""
    name = lang.gettext(label)
    if change.mean is None or change.ci_low is None or change.ci_high is None:
        return lang.gettext("{label}: too few runs to tell a change from run-to-run noise.").format(
            label=name
        )
    suffix = f" {lang.gettext(unit)}" if unit else ""
    interval = lang.gettext("95% CI {low} to {high}").format(
        low=signed(change.ci_low, lang=lang), high=signed(change.ci_high, lang=lang) + suffix
    )
    if not change.distinguishable:
        return lang.gettext("{label}: within run-to-run noise, no detectable change ({interval}).").format(
            label=name, interval=interval
        )
    amount = number(abs(change.mean), lang=lang) + suffix
    if change.mean > 0:
        return lang.gettext("{label}: up {amount} ({interval}).").format(
            label=name, amount=amount, interval=interval
        )
    return lang.gettext("{label}: down {amount} ({interval}).").format(
        label=name, amount=amount, interval=interval
    )


def kpi_entries(record: ComparisonRecord, *, lang: Language | None = None) -> list[dict[str, Any]]:
    """Every KPI of the comparison: per scenario its mean and interval, per plan its change in words
    and whether that change is within run-to-run noise; headline KPIs first, then the engines' order.
    Labels, words and numbers are in ``lang`` (English by default, the record's own words)."""
    lang = lang or _english()
    names = list(dict.fromkeys(r.kpi for r in record.kpis))
    headline = {r.kpi for r in record.kpis if r.headline}
    entries = []
    for name in sorted(names, key=lambda n: (n not in headline, names.index(n))):
        rows = {r.scenario: r for r in record.kpis if r.kpi == name}
        base = rows.get(record.baseline)
        if base is None:
            continue
        label = base.label or _label(name, base.unit)
        changes = []
        for plan in record.plans:
            change = next((d for d in record.differences if d.kpi == name and d.plan == plan), None)
            if change is None or plan not in rows:
                continue
            if is_share(base.unit):
                words = share_change_words(label, base, rows[plan], change, lang=lang)
            elif lang.code == DEFAULT:
                words = change.words
            else:
                words = plain_change_words(label, change, unit=base.unit, lang=lang)
            changes.append(
                {
                    "plan": plan,
                    "mean": change.mean,
                    "ci_low": change.ci_low,
                    "ci_high": change.ci_high,
                    "within_noise": not change.distinguishable,
                    "words": words,
                }
            )
        entries.append(
            {
                "kpi": name,
                "label": lang.gettext(label),
                "unit": lang.gettext(base.unit) if base.unit else "",
                "engine": base.engine,
                "headline": name in headline,
                "share": is_share(base.unit),
                "values": [
                    {
                        "scenario": scenario,
                        "mean": rows[scenario].mean,
                        "ci_low": rows[scenario].ci_low,
                        "ci_high": rows[scenario].ci_high,
                        "n": rows[scenario].n,
                        "text": value_text(rows[scenario], lang=lang),
                    }
                    for scenario in (record.baseline, *record.plans)
                    if scenario in rows
                ],
                "changes": changes,
            }
        )
    return entries


def _label(name: str, unit: str) -> str:
    """A KPI without a label named from its id, its unit suffix dropped (``co2_kg`` → ``CO2``)."""
    words = name.split("_")
    if len(words) > 1 and words[-1] == unit.lower():
        words = words[:-1]
    text = " ".join(words)
    return text.upper() if len(words) == 1 and any(ch.isdigit() for ch in text) else text.capitalize()


def within_noise(
    record: ComparisonRecord, entries: Sequence[Mapping[str, Any]], *, lang: Language | None = None
) -> list[str]:
    """Per plan, one sentence naming the KPIs whose change is within run-to-run noise."""
    lang = lang or _english()
    sentences = []
    for plan in record.plans:
        labels = [
            e["label"] for e in entries for c in e["changes"] if c["plan"] == plan and c["within_noise"]
        ]
        if labels:
            sentences.append(
                lang.gettext(
                    "'{plan}' compared with '{baseline}': within run-to-run noise, so no change can be "
                    "claimed, for {labels}."
                ).format(plan=plan, baseline=record.baseline, labels=", ".join(labels))
            )
    return sentences


def summary_words(
    record: ComparisonRecord, entries: Sequence[Mapping[str, Any]], *, lang: Language | None = None
) -> list[str]:
    """The comparison's summary in ``lang``. English keeps the record's own sentences (written when it
    ran); another language gets the same content from the numbers: how many seeds each scenario ran,
    and each headline KPI's change that stands out from run-to-run noise (what is within noise has its
    own section). Plans not evaluated (a failed quality check) come first, as their finding."""
    lang = lang or _english()
    if lang.code == DEFAULT:
        return list(record.summary)
    findings = [not_evaluated_words(finding, lang=lang) for finding in record.not_evaluated]
    if not record.plans:
        return findings
    return findings + _plan_words(record, entries, lang)


def _plan_words(record: ComparisonRecord, entries: Sequence[Mapping[str, Any]], lang: Language) -> list[str]:
    """The summary's sentences about the plans compared, in ``lang``."""
    seeds = min((r.n for r in record.kpis if r.n), default=0)
    if seeds < 2:
        return [
            lang.gettext(
                "Each scenario was simulated with a single random seed, so no difference can be told "
                "apart from run-to-run variation; run at least 2 seeds before drawing conclusions."
            )
        ]
    sentences = [
        lang.ngettext(
            "Each scenario was simulated {n} time with different random seeds.",
            "Each scenario was simulated {n} times with different random seeds.",
            seeds,
        ).format(n=seeds)
        + " "
        + lang.gettext(
            "A change is called real only when it stands out from the variation between those runs "
            "(95% confidence); otherwise it is reported as within noise."
        )
    ]
    for plan in record.plans:
        sentences += [
            lang.gettext("'{plan}' compared with '{baseline}': {words}").format(
                plan=plan, baseline=record.baseline, words=change["words"]
            )
            for entry in entries
            if entry["headline"]
            for change in entry["changes"]
            if change["plan"] == plan and not change["within_noise"]
        ]
    return sentences


def validation_status(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """The calibration the comparison's runs used (their ``details.calibration``, as the traffic
    engine records it), or None when no run carried one; ``meets_dmrb`` is its verdict against the
    DMRB / TAG M3.1 criterion after calibration."""
    for run in manifest.get("runs", []):
        details = run.get("details") if isinstance(run, Mapping) else None
        calibration = details.get("calibration") if isinstance(details, Mapping) else None
        if isinstance(calibration, Mapping):
            after = calibration.get("fit_after")
            return {
                "id": str(calibration.get("id", "")),
                "statement": str(calibration.get("statement", "")),
                "meets_dmrb": bool(after.get("meets_dmrb", False)) if isinstance(after, Mapping) else False,
                "held_back_note": str(calibration.get("held_back_note", "")),
            }
    return None


# ------------------------------------------------------------------------------------ near a point


def changes_near(
    frame: gpd.GeoDataFrame,
    table: TableRecord,
    *,
    plan: str,
    lon: float,
    lat: float,
    radius_m: float = NEAR_RADIUS_M,
    lang: Language | None = None,
) -> dict[str, Any]:
    """What changes in ``table`` (its per-key differences for ``plan``, WGS84) within ``radius_m`` of
    a point: how many keys lie there, how many change beyond run-to-run noise in the table's first
    value, the few that change most, and a sentence saying so (in ``lang``, English by default)."""
    lang = lang or _english()
    column, unit = table.values[0].column, table.values[0].unit
    shaped = frame[frame.geometry.notna() & ~frame.geometry.is_empty] if len(frame) else frame
    near = pd.DataFrame()
    if len(shaped):
        utm = gpd.GeoSeries([Point(lon, lat)], crs=4326).estimate_utm_crs()
        here = gpd.GeoSeries([Point(lon, lat)], crs=4326).to_crs(utm).iloc[0]
        distance = shaped.geometry.to_crs(utm).distance(here)
        near = shaped.assign(distance_m=distance)[distance <= radius_m]
    real = near[near[f"{column}_real"].fillna(False).astype(bool)] if len(near) else near
    ranked = (
        real.assign(size=real[f"{column}_diff"].abs()).sort_values(
            ["size", "distance_m"], ascending=[False, True]
        )
        if len(real)
        else real
    )
    items = [_near_item(row, table, column) for _, row in ranked.head(NEAR_ITEMS).iterrows()]
    return {
        "table": table.id,
        "label": lang.gettext(table.label) if table.label else table.name,
        "plan": plan,
        "column": column,
        "unit": unit,
        "nearby": len(near),
        "changed": len(real),
        "items": items,
        "sentence": _near_sentence(len(near), len(real), items, unit, radius_m, lang),
    }


def _near_item(row: pd.Series, table: TableRecord, column: str) -> dict[str, Any]:
    key = "/".join(str(row[k]) for k in table.key if k in row)
    name = row.get("name")
    return {
        "key": key,
        "name": str(name) if isinstance(name, str) and name else key,
        "distance_m": round(float(row["distance_m"])),
        "base": _float(row.get(f"{column}_base")),
        "plan": _float(row.get(f"{column}_plan")),
        "diff": _float(row.get(f"{column}_diff")),
        "ci_low": _float(row.get(f"{column}_ci_low")),
        "ci_high": _float(row.get(f"{column}_ci_high")),
    }


def _float(value: Any) -> float | None:
    try:
        number_ = float(value)
    except (TypeError, ValueError):
        return None
    return number_ if math.isfinite(number_) else None


def _near_sentence(
    nearby: int, changed: int, items: Sequence[Mapping[str, Any]], unit: str, radius_m: float, lang: Language
) -> str:
    radius = lang.decimal(radius_m, decimals=0) + " m"
    if nearby == 0:
        return lang.gettext("none within {radius} of this place.").format(radius=radius)
    if changed == 0:
        return lang.ngettext(
            "{nearby} within {radius}, which does not change beyond run-to-run noise.",
            "{nearby} within {radius}, none of which changes beyond run-to-run noise.",
            nearby,
        ).format(nearby=nearby, radius=radius)
    unit_text = lang.gettext(unit) if unit else ""
    named = "; ".join(
        f"{item['name']}: {number(item['base'], lang=lang)} → {number(item['plan'], lang=lang)} {unit_text}"
        f" ({signed(item['diff'], lang=lang)})"
        for item in items
    )
    within = lang.gettext("{nearby} within {radius}").format(nearby=nearby, radius=radius)
    beyond = lang.ngettext(
        "of which {changed} changes beyond run-to-run noise.",
        "of which {changed} change beyond run-to-run noise.",
        changed,
    ).format(changed=changed)
    largest = lang.gettext("Largest changes: {named}.").format(named=named)
    return f"{within}, {beyond} {largest}"


def signed(value: float | None, *, lang: Language | None = None) -> str:
    """A change with its sign: ``+40.0``, ``−80.0`` (a real minus sign); '–' when unknown."""
    text = number(value, lang=lang)
    if value is None or text in ("–", "0"):
        return text
    return f"+{text}" if value > 0 else f"−{text.lstrip('-')}"


# ------------------------------------------------------------------------------------ addresses


def split_address(text: str) -> tuple[str, str] | None:
    """``"Mannerheimintie 5"`` (or ``"5 Main Street"``) → street and house number: the first word
    holding a digit is the number, the words before it (or, when it comes first, after it) the
    street; None when the text names no street and number."""
    words = text.replace(",", " ").split()
    at = next((i for i, w in enumerate(words) if any(ch.isdigit() for ch in w)), None)
    if at is None:
        return None
    street = " ".join(words[:at] if at > 0 else words[1:])
    return (street, words[at]) if street else None
