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

from civictwin.runs import ComparisonRecord, DifferenceRow, KpiRow, TableRecord

SHARE_UNITS: Mapping[str, float] = {"share": 100.0, "%": 1.0}
"""Units whose values are shares, with the factor that turns a value into percent."""

NEAR_RADIUS_M = 300.0
"""How far around a point "near me" looks by default (m): a few minutes' walk."""
MAX_RADIUS_M = 2000.0
"""The largest radius a caller may ask for (m)."""
NEAR_ITEMS = 5
"""How many of the nearby keys that change most are named."""

_SHARE_OF = re.compile(r"\bshare of (.+)$", re.IGNORECASE)


def is_share(unit: str) -> bool:
    """Whether values in ``unit`` are shares (said in percent, their changes in points)."""
    return unit in SHARE_UNITS


def number(value: float | None) -> str:
    """A value for people: three significant figures at most, thousands separated; '–' when unknown."""
    if value is None or not math.isfinite(value):
        return "–"
    size = abs(value)
    decimals = 0 if size >= 100 else 1 if size >= 10 else 2 if size >= 0.1 or size == 0 else 3
    text = f"{value:,.{decimals}f}"
    return "0" if text.strip("-0.,") == "" else text


def _points(value: float) -> str:
    return f"{abs(value):.1f}"


def share_text(value: float | None, unit: str) -> str:
    """A share in percent with one decimal (``0.186`` in unit ``share`` → ``18.6%``)."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value * SHARE_UNITS[unit]:.1f}%"


def value_text(row: KpiRow) -> str:
    """A scenario's KPI with its interval: ``18.6% (17.9% to 19.3%)`` or ``348 s (321 to 375)``."""
    if is_share(row.unit):
        return f"{share_text(row.mean, row.unit)} ({share_text(row.ci_low, row.unit)} to {share_text(row.ci_high, row.unit)})"
    unit = f" {row.unit}" if row.unit else ""
    return f"{number(row.mean)}{unit} ({number(row.ci_low)} to {number(row.ci_high)})"


def share_change_words(label: str, base: KpiRow, plan: KpiRow, change: DifferenceRow) -> str:
    """A change of a share in points, with its interval in points and the noise verdict, e.g.
    ``Car share of trips: from 18.6% to 16.2% of trips, 2.4 points fewer (95% CI 3.1 to 1.7 points
    fewer).`` The difference is the comparison's own (plan − baseline over the seeds), not the
    difference of the rounded means."""
    factor = SHARE_UNITS[base.unit]
    match = _SHARE_OF.search(label)
    of = f" of {match.group(1)}" if match else ""
    start = f"{label}: from {share_text(base.mean, base.unit)} to {share_text(plan.mean, plan.unit)}{of}"
    if change.mean is None or change.ci_low is None or change.ci_high is None:
        return f"{start}; the change has no interval (too few runs)."
    diff, low, high = change.mean * factor, change.ci_low * factor, change.ci_high * factor
    size = (
        "no change"
        if round(abs(diff), 1) == 0
        else f"{_points(diff)} points {'more' if diff > 0 else 'fewer'}"
    )
    interval = f"95% CI {_signed_points(low)} to {_signed_points(high)} points"
    if not change.distinguishable:
        return f"{start}, {size}: within run-to-run noise ({interval})."
    return f"{start}, {size} ({interval})."


def _signed_points(value: float) -> str:
    rounded = round(value, 1)
    return f"{'+' if rounded > 0 else '−' if rounded < 0 else ''}{abs(rounded):.1f}"


def kpi_entries(record: ComparisonRecord) -> list[dict[str, Any]]:
    """Every KPI of the comparison: per scenario its mean and interval, per plan its change in words
    and whether that change is within run-to-run noise; headline KPIs first, then the engines' order."""
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
            words = (
                share_change_words(label, base, rows[plan], change) if is_share(base.unit) else change.words
            )
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
                "label": label,
                "unit": base.unit,
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
                        "text": value_text(rows[scenario]),
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


def within_noise(record: ComparisonRecord, entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """Per plan, one sentence naming the KPIs whose change is within run-to-run noise."""
    sentences = []
    for plan in record.plans:
        labels = [
            e["label"] for e in entries for c in e["changes"] if c["plan"] == plan and c["within_noise"]
        ]
        if labels:
            sentences.append(
                f"'{plan}' compared with '{record.baseline}': within run-to-run noise, so no change can be "
                f"claimed, for {', '.join(labels)}."
            )
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
) -> dict[str, Any]:
    """What changes in ``table`` (its per-key differences for ``plan``, WGS84) within ``radius_m`` of
    a point: how many keys lie there, how many change beyond run-to-run noise in the table's first
    value, the few that change most, and a sentence saying so."""
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
        "label": table.label or table.name,
        "plan": plan,
        "column": column,
        "unit": unit,
        "nearby": len(near),
        "changed": len(real),
        "items": items,
        "sentence": _near_sentence(len(near), len(real), items, unit, radius_m),
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
    nearby: int, changed: int, items: Sequence[Mapping[str, Any]], unit: str, radius_m: float
) -> str:
    radius = f"{radius_m:.0f} m"
    if nearby == 0:
        return f"none within {radius} of this place."
    if changed == 0:
        return f"{nearby} within {radius}, none of which changes beyond run-to-run noise."
    named = "; ".join(
        f"{item['name']}: {number(item['base'])} → {number(item['plan'])} {unit} ({signed(item['diff'])})"
        for item in items
    )
    return (
        f"{nearby} within {radius}, of which {changed} change beyond run-to-run noise. "
        f"Largest changes: {named}."
    )


def signed(value: float | None) -> str:
    """A change with its sign: ``+40.0``, ``−80.0`` (a real minus sign); '–' when unknown."""
    text = number(value)
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
