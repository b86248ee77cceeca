"""The self-contained HTML report of a comparison: summary, KPI table, plots, maps, assumptions.

One file with everything inline (PNG images as data URIs, CSS in the page), so it can be mailed or
archived. Colours are colour-vision-deficiency safe: cividis/viridis for sequential values and PuOr
(purple–orange) for differences, centred on zero: purple for less, orange for more, as in the viewer.
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
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from civictwin.compare.table import HEADLINE_KPIS, Comparison, kpi_label
from civictwin.engines.traffic.modechoice import MODES
from civictwin.scenarios.spec import Scenario

_MODE_NAMES = {"car": "Car", "pt": "Public transport", "bike": "Bike", "walk": "Walk"}
_MAP_LAYERS = (
    ("flow_diff", "cars per hour on the street", 1.0),
    ("speed_ms_diff", "mean speed (km/h)", 3.6),
    ("co2_g_diff", "CO2 emitted (kg)", 0.001),
    ("noise_db_diff", "road noise (dB)", 1.0),
)
_ATTRIBUTION = "Map data © OpenStreetMap contributors (ODbL)."


def render_report(
    comparison: Comparison,
    *,
    scenarios: Sequence[Scenario],
    parameters: Mapping[str, Any],
    manifest: Mapping[str, Any],
    notes: Sequence[str] = (),
) -> str:
    """The report as one HTML string."""
    title = f"Traffic comparison: {', '.join(comparison.plans)} vs {comparison.baseline}"
    sections = [
        _section("In short", _list(comparison.summary)),
        _section(
            "What was simulated", _scenarios(scenarios) + ("<h3>Runs</h3>" + _list(notes) if notes else "")
        ),
        _section("Key indicators", _kpi_table(comparison)),
        _section("Changes against the baseline", _image(_difference_figure(comparison))),
        _section("How people travel (modal split)", _image(_modal_split_figure(comparison))),
        _section("Where it changes", _maps(comparison)),
        _section("By neighbourhood (analysis zones)", _zones(comparison)),
        _section("Assumptions and parameters", _parameters(parameters)),
        _section("Reproducing these numbers", _reproduce(manifest)),
    ]
    return _PAGE.format(
        title=html.escape(title),
        created=html.escape(comparison.created),
        comparison_id=html.escape(comparison.id),
        body="\n".join(sections),
        attribution=html.escape(_ATTRIBUTION),
    )


def _section(heading: str, body: str) -> str:
    return f"<section><h2>{html.escape(heading)}</h2>\n{body}\n</section>"


def _list(items: Sequence[str]) -> str:
    if not items:
        return ""
    return "<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in items) + "</ul>"


def _scenarios(scenarios: Sequence[Scenario]) -> str:
    parts = []
    for scenario in scenarios:
        changes = [f"{i.type.replace('_', ' ')}: {i.describe()}" for i in scenario.interventions]
        parts.append(
            f"<h3>{html.escape(scenario.name)}</h3><p>{html.escape(scenario.description or 'No description.')}</p>"
            + (_list(changes) if changes else "<p>No interventions: the network as built.</p>")
        )
    return "\n".join(parts)


def _number(value: float | None, unit: str) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    if unit == "share":
        return f"{100 * value:.1f}%"
    magnitude = abs(value)
    return f"{value:,.0f}" if magnitude >= 100 else f"{value:,.2f}" if magnitude >= 1 else f"{value:.3g}"


def _kpi_table(comparison: Comparison) -> str:
    scenarios = [comparison.baseline, *comparison.plans]
    head = "".join(f"<th>{html.escape(s)}</th>" for s in scenarios)
    head += "".join(
        f"<th>{html.escape(p)} − {html.escape(comparison.baseline)}</th>" for p in comparison.plans
    )
    rows = []
    for kpi in dict.fromkeys(r.kpi for r in comparison.kpis):
        unit = comparison.kpi(kpi, comparison.baseline).unit
        cells = []
        for scenario in scenarios:
            row = comparison.kpi(kpi, scenario)
            interval = (
                f"<br><small>{_number(row.ci_low, unit)} to {_number(row.ci_high, unit)}</small>"
                if math.isfinite(row.ci_low)
                else ""
            )
            cells.append(f"<td>{_number(row.mean, unit)}{interval}</td>")
        for plan in comparison.plans:
            diff = comparison.difference(kpi, plan)
            css = "real" if diff.distinguishable else "noise"
            cells.append(
                f'<td class="{css}" title="{html.escape(diff.words)}">{_number(diff.mean, unit)}'
                f"<br><small>{'real change' if diff.distinguishable else 'within noise'}</small></td>"
            )
        shown_unit = "%" if unit == "share" else unit
        rows.append(
            f"<tr><th>{html.escape(kpi_label(kpi))} <small>({html.escape(shown_unit)})</small></th>"
            + "".join(cells)
            + "</tr>"
        )
    return (
        "<p>Means over the seeds with their 95% confidence interval below; the last columns give plan minus "
        "baseline, marked <span class=real>real change</span> when the interval excludes zero and "
        "<span class=noise>within noise</span> otherwise. Car indicators describe the car trips that remain in "
        "each scenario: when a plan moves trips to other modes, the mean car travel time can fall even where "
        "driving a given route takes longer.</p>"
        f'<table class="kpis"><thead><tr><th>Indicator</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _image(figure: Figure, alt: str = "") -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{_png(figure)}">'


def _difference_figure(comparison: Comparison) -> Figure:
    """Relative change (%) of the headline KPIs with their 95% intervals, one colour per plan."""
    kpis = [k for k in HEADLINE_KPIS if any(d.kpi == k for d in comparison.differences)]
    figure, axis = plt.subplots(figsize=(8, 0.6 + 0.55 * len(kpis) * max(1, len(comparison.plans))))
    colours = plt.get_cmap("cividis")(np.linspace(0.15, 0.85, max(1, len(comparison.plans))))
    height = 0.8 / max(1, len(comparison.plans))
    for p, plan in enumerate(comparison.plans):
        for k, kpi in enumerate(kpis):
            diff = comparison.difference(kpi, plan)
            base = comparison.kpi(kpi, comparison.baseline).mean
            if not math.isfinite(diff.mean) or not base:
                continue
            scale = 100.0 / abs(base)
            y = k + (p - (len(comparison.plans) - 1) / 2) * height
            low = diff.ci_low * scale if math.isfinite(diff.ci_low) else diff.mean * scale
            high = diff.ci_high * scale if math.isfinite(diff.ci_high) else diff.mean * scale
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
    axis.set_yticks(range(len(kpis)), [kpi_label(k) for k in kpis])
    axis.invert_yaxis()
    axis.set_xlabel("Change against the baseline (%), with 95% interval; hollow = within noise")
    axis.legend(loc="best", frameon=False)
    return figure


def _modal_split_figure(comparison: Comparison) -> Figure:
    """Stacked bars of the mode shares per scenario."""
    frame = comparison.modal_split
    scenarios = [comparison.baseline, *comparison.plans]
    figure, axis = plt.subplots(figsize=(8, 0.8 + 0.5 * len(scenarios)))
    colours = plt.get_cmap("viridis")(np.linspace(0.05, 0.9, len(MODES)))
    left = np.zeros(len(scenarios))
    for m, mode in enumerate(MODES):
        shares = np.array(
            [
                float(frame.loc[(frame["scenario"] == s) & (frame["mode"] == mode), "share"].iloc[0])
                for s in scenarios
            ]
        )
        axis.barh(scenarios, 100 * shares, left=left, color=colours[m], label=_MODE_NAMES[mode])
        for y, (x0, share) in enumerate(zip(left, shares, strict=True)):
            if share > 0.06:
                axis.text(
                    x0 + 50 * share,
                    y,
                    f"{100 * share:.0f}%",
                    ha="center",
                    va="center",
                    color="white" if m < 2 else "black",
                    fontsize=8,
                )
        left += 100 * shares
    axis.set_xlim(0, 100)
    axis.set_xlabel("Share of person trips (%)")
    axis.invert_yaxis()
    axis.legend(ncols=4, loc="upper center", bbox_to_anchor=(0.5, -0.35), frameon=False)
    return figure


def _maps(comparison: Comparison) -> str:
    parts = [
        "<p>Purple streets lose (fewer cars, lower speed, less CO2, quieter), orange streets gain; the "
        "purple–orange scale stays readable with colour-vision deficiencies. Light grey streets carry no "
        "measured change. Values are means over the seeds.</p>"
    ]
    base = comparison.edges.get(comparison.baseline)
    if base is not None and not base.empty:
        parts.append(f"<h3>Baseline: cars per hour</h3>{_image(_flow_map(base), 'baseline car flow map')}")
    for plan, diff in comparison.edge_diffs.items():
        parts.append(f"<h3>{html.escape(plan)} − {html.escape(comparison.baseline)}</h3>")
        parts.append(_image(_difference_maps(diff), f"maps of the changes of {plan}"))
    return "\n".join(parts)


def _flow_map(edges: gpd.GeoDataFrame) -> Figure:
    figure, axis = plt.subplots(figsize=(7, 7))
    edges.plot(
        ax=axis,
        column="flow",
        cmap="cividis",
        linewidth=1.6,
        legend=True,
        legend_kwds={"label": "cars per hour", "shrink": 0.6},
    )
    _map_axis(axis)
    return figure


def _difference_maps(diff: gpd.GeoDataFrame) -> Figure:
    figure, axes = plt.subplots(2, 2, figsize=(11, 10))
    for axis, (column, label, factor) in zip(axes.flat, _MAP_LAYERS, strict=True):
        values = diff[column].to_numpy(dtype=float) * factor
        finite = values[np.isfinite(values)]
        limit = float(np.max(np.abs(finite))) if finite.size and np.max(np.abs(finite)) > 0 else 1.0
        diff.plot(ax=axis, color="0.85", linewidth=0.8)
        shown = diff.assign(_value=values)[np.isfinite(values)]
        if not shown.empty:
            _diverging(shown, axis, "_value", limit, linewidth=1.8)
        axis.set_title(f"Change in {label}")
        _map_axis(axis)
    return figure


_ZONE_ROWS = 10


def _zones(comparison: Comparison) -> str:
    if not comparison.zone_diffs:
        return "<p>No analysis zones were given, so there is no breakdown by neighbourhood.</p>"
    parts = [
        "<p>Car traffic (vehicle-km driven in the simulated hour) and CO2 summed over each analysis zone's "
        "streets (a street counts in the zone holding its midpoint). Each seed is totalled per zone first, "
        "so every zone gets its own 95% interval: a zone is coloured only where its change stands out from "
        "run-to-run noise; grey zones show no change beyond noise.</p>"
    ]
    for plan, diff in comparison.zone_diffs.items():
        real = int(diff["vehicle_km_real"].sum())
        co2_real = int(diff["co2_kg_real"].sum())
        parts.append(f"<h3>{html.escape(plan)} − {html.escape(comparison.baseline)}</h3>")
        parts.append(
            f"<p>{real} of {len(diff)} zones change their car traffic beyond noise, {co2_real} their CO2.</p>"
        )
        parts.append(_image(_zone_map(diff), f"map of the change in car traffic per zone for {plan}"))
        parts.append(_zone_table(diff))
    return "\n".join(parts)


def _zone_map(diff: gpd.GeoDataFrame) -> Figure:
    figure, axis = plt.subplots(figsize=(7, 7))
    diff.plot(ax=axis, color="0.9", edgecolor="0.6", linewidth=0.4)
    real = diff[diff["vehicle_km_real"].to_numpy(dtype=bool)]
    if not real.empty:
        limit = float(np.max(np.abs(real["vehicle_km_diff"].to_numpy(dtype=float)))) or 1.0
        _diverging(real, axis, "vehicle_km_diff", limit, label="change in vehicle-km (beyond noise)",
                   edgecolor="0.3", linewidth=0.4)  # fmt: skip
    _map_axis(axis)
    return figure


def _diverging(
    frame: gpd.GeoDataFrame, axis: Any, column: str, limit: float, *, label: str = "", **style: Any
) -> None:
    """``column`` on the purple (lower) – orange (higher) scale, centred on zero, with its colour bar."""
    frame.plot(
        ax=axis,
        column=column,
        cmap="PuOr_r",
        norm=TwoSlopeNorm(0.0, -limit, limit),
        legend=True,
        legend_kwds={"label": label, "shrink": 0.6},
        **style,
    )


def _zone_table(diff: gpd.GeoDataFrame) -> str:
    real = diff[diff["vehicle_km_real"].to_numpy(dtype=bool)]
    if real.empty:
        return "<p>No zone changes its car traffic beyond noise.</p>"
    largest = real.reindex(real["vehicle_km_diff"].abs().sort_values(ascending=False).index)[:_ZONE_ROWS]
    rows = "".join(
        f"<tr><td>{html.escape(str(z.zone_id))}</td><td>{_number(z.vehicle_km_base, 'km')}</td>"
        f"<td>{_number(z.vehicle_km_plan, 'km')}</td>"
        f"<td>{_number(z.vehicle_km_diff, 'km')}<br><small>{_number(z.vehicle_km_ci_low, 'km')} to "
        f"{_number(z.vehicle_km_ci_high, 'km')}</small></td>"
        f"<td>{_number(z.co2_kg_diff, 'kg')}<br><small>{'real change' if z.co2_kg_real else 'within noise'}"
        "</small></td></tr>"
        for z in largest.itertuples()
    )
    return (
        f"<p>The {len(largest)} zone(s) with the largest change in car traffic beyond noise:</p>"
        '<table class="kpis"><thead><tr><th>Zone</th><th>Baseline vehicle-km</th><th>Plan vehicle-km</th>'
        "<th>Change (95% CI)</th><th>Change in CO2 (kg)</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _map_axis(axis: Any) -> None:
    axis.set_axis_off()
    axis.set_aspect(1 / math.cos(math.radians(float(np.mean(axis.get_ylim())))))


def _parameters(parameters: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(key)}</th><td>{html.escape(str(value))}</td></tr>"
        for key, value in _flatten(parameters)
    )
    return (
        "<p>Demand comes from a gravity model of the zones' residents, jobs and points of interest; a "
        "logit model splits it over car, public transport, bike and walking, fed back with the simulated "
        "car times. The defaults are literature values to be calibrated locally (see "
        "docs/methods-demand.md). Simulation: Eclipse SUMO with dynamic rerouting; emissions from HBEFA "
        "classes, noise from Harmonoise.</p>"
        f'<table class="params"><tbody>{rows}</tbody></table>'
    )


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            items += _flatten(value, f"{name}.")
        else:
            items.append((name, value))
    return items


def _reproduce(manifest: Mapping[str, Any]) -> str:
    scenarios = [
        f"{s['name']}: sha256 {s['sha256'] or '(built in code)'}" for s in manifest.get("scenarios", [])
    ]
    software = ", ".join(f"{k} {v}" for k, v in manifest.get("software", {}).items())
    seeds = ", ".join(str(s) for s in manifest.get("seeds", []))
    return (
        f"<p>Seeds: {html.escape(seeds)}. The full record (data checksums, parameters, software) is in "
        "<code>manifest.json</code> beside this report.</p>"
        + _list(scenarios)
        + f"<p><small>{html.escape(software)}</small></p>"
    )


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       color: #1a1a1a; line-height: 1.45; }}
h1 {{ font-size: 1.6rem; }} h2 {{ border-bottom: 1px solid #ccc; padding-bottom: .2rem; margin-top: 2rem; }}
table {{ border-collapse: collapse; font-size: .9rem; }}
th, td {{ border: 1px solid #ddd; padding: .3rem .5rem; text-align: right; vertical-align: top; }}
th {{ text-align: left; background: #f6f6f6; }}
.real {{ background: #fde9c9; }} .noise {{ color: #555; }}
img {{ max-width: 100%; }}
.params td {{ text-align: left; font-family: ui-monospace, monospace; }}
footer {{ margin-top: 3rem; font-size: .8rem; color: #555; }}
</style></head>
<body>
<h1>{title}</h1>
<p>Comparison <code>{comparison_id}</code>, created {created}.</p>
{body}
<footer>{attribution} Made with civictwin and Eclipse SUMO.</footer>
</body></html>
"""
