"""The calibration a traffic run used, for its seeds and the comparison report.

:func:`calibration_summary` keeps from a calibration record (``<twin>/calibration/calibration-NNN.json``,
see :mod:`civictwin.engines.traffic.calibration`) what a report shows: the statement, the fit before
and after on the sites used and on the held-back sites, the observed-vs-simulated pairs, and the
observed vs modelled modal split when the mode-choice constants were calibrated to one. Each
seed carries it in its details, so the report is built from the saved seeds alone.
:func:`calibration_section` turns it into the report's section, or says the demand is uncalibrated.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from civictwin.engines.base import ReportSection
from civictwin.engines.traffic.fit import DMRB_SHARE, GEH_OK, geh
from civictwin.i18n import N_

HEADING = N_("Calibration to traffic counts")
UNCALIBRATED = N_(
    "The demand is uncalibrated: no calibration record exists for this twin, so the simulated traffic "
    "has not been compared with any observed count (`civictwin calibrate run TWIN`)."
)


WHERE_NEXT_SHOWN = 5
"""Candidate count sites the report lists from a where-to-count ranking."""


def calibration_summary(
    record: Mapping[str, Any], ranking: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What the report shows of a calibration record (plain JSON), with the best candidate count sites
    of a where-to-count ``ranking`` (:mod:`civictwin.engines.traffic.countnext`) made from it."""
    kfold = record.get("kfold", {})
    made_from_it = ranking is not None and ranking.get("calibration_record") == record.get("id")
    return {
        "id": str(record.get("id", "")),
        "statement": str(record.get("statement", "")),
        "converged": bool(record.get("converged", False)),
        "fit_before": dict(record["fit_before"]),
        "fit_after": dict(record["fit_after"]),
        "held_back_before": kfold.get("held_back_before"),
        "held_back_after": kfold.get("held_back_after"),
        "held_back_note": kfold.get("note", ""),
        "scatter": [dict(row) for row in record.get("scatter", [])],
        "where_next": where_next_summary(ranking) if ranking is not None and made_from_it else None,
        "modal_split": split_summary(record.get("mode_choice")),
    }


def split_summary(mode_choice: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What the report shows of a record's mode-choice calibration (None without one): the source,
    the statement, and observed vs modelled share per mode."""
    if not mode_choice:
        return None
    return {
        "source": str(mode_choice["inputs"]["source"]),
        "statement": str(mode_choice["statement"]),
        "converged": bool(mode_choice["converged"]),
        "fit": [dict(row) for row in mode_choice["fit"]],
    }


def split_paragraph(split: Mapping[str, Any]) -> str:
    """Observed vs modelled modal split in words, for the report."""
    shares = "; ".join(
        f"{row['mode']} {_percent(row['observed'])} observed, {_percent(row['modelled'])} modelled"
        + (f" ({_percent(row['final'])} after the count calibration)" if row.get("final") is not None else "")
        for row in split["fit"]
        if row.get("observed") is not None
    )
    return f"Modal split ({split['source']}): {shares}. {split['statement']}"


def _percent(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1%}"


def where_next_summary(ranking: Mapping[str, Any]) -> dict[str, Any]:
    """The ranking's KPI, plans, today's spread and its first :data:`WHERE_NEXT_SHOWN` sites."""
    keys = ("id", "kpi", "unit", "plan_a", "plan_b", "difference", "sd_now", "counted_site_hours")
    return {
        **{key: ranking.get(key) for key in keys},
        "sites": [dict(site) for site in ranking.get("sites", [])[:WHERE_NEXT_SHOWN]],
    }


def missing_summary(record_id: str) -> dict[str, Any]:
    """What the report shows when the runs' parameters name a record the twin no longer holds."""
    return {"id": record_id, "missing": True}


def calibration_section(summary: Mapping[str, Any] | None) -> ReportSection:
    """The report's calibration section: the verdict in words, the figures and the scatter."""
    if summary is None:
        return ReportSection(HEADING, paragraphs=(UNCALIBRATED,))
    if summary.get("missing"):
        return ReportSection(
            HEADING,
            paragraphs=(
                f"The runs used calibration record {summary['id']}, which the twin no longer holds (or "
                "holds only as an older version): its fit cannot be shown here.",
            ),
        )
    paragraphs = [
        f"Calibration record {summary['id']}: {summary['statement']}",
        _verdict(summary["fit_after"]),
        "Sites used by the calibration: " + _before_after(summary["fit_before"], summary["fit_after"]),
    ]
    if summary.get("held_back_after"):
        paragraphs.append(
            "Sites held back from it (k-fold): "
            + _before_after(summary["held_back_before"], summary["held_back_after"])
        )
    else:
        paragraphs.append(f"No held-back figure: {summary.get('held_back_note') or 'no folds'}.")
    if summary.get("modal_split"):
        paragraphs.append(split_paragraph(summary["modal_split"]))
    if summary.get("where_next"):
        paragraphs.append(where_next_paragraph(summary["where_next"]))
    misfits = _misfits(summary["scatter"])
    if misfits:
        paragraphs.append("Where it does not fit (GEH ≥ 5 after calibration): " + "; ".join(misfits) + ".")
    figures = (scatter_png(summary["scatter"]),) if summary["scatter"] else ()
    return ReportSection(HEADING, paragraphs=tuple(paragraphs), figures=figures)


def site_fits(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every site of a record with its fit: the worst site-hour after calibration (``geh``, with its
    ``observed`` and ``simulated`` vehicles/hour), the worst before (``geh_before``), ``geh_ok``
    (``geh`` < 5); None for a site the calibration did not use (its ``status`` and ``reasons`` say why)."""
    hours: dict[str, list[Mapping[str, Any]]] = {}
    for row in record.get("scatter", []):
        hours.setdefault(str(row["site"]), []).append(row)
    fits = []
    for site in record.get("inputs", {}).get("sites", []):
        rows = hours.get(str(site["site"]), [])
        worst = max(rows, key=lambda r: float(geh(r["after"], r["observed"])), default=None)
        after = None if worst is None else round(float(geh(worst["after"], worst["observed"])), 3)
        before = max((float(geh(r["before"], r["observed"])) for r in rows), default=None)
        fits.append(
            {
                "site": str(site["site"]),
                "edge_id": site.get("edge_id"),
                "street": site.get("street"),
                "status": site.get("status"),
                "reasons": site.get("reasons") or "",
                "site_hours": len(rows),
                "geh": after,
                "geh_before": None if before is None else round(before, 3),
                "geh_ok": None if after is None else after < GEH_OK,
                "observed": None if worst is None else float(worst["observed"]),
                "simulated": None if worst is None else float(worst["after"]),
            }
        )
    return fits


def where_next_paragraph(where_next: Mapping[str, Any]) -> str:
    """Where the next count would narrow the plans' KPI difference most, in words."""
    unit = where_next["unit"]
    sites = "; ".join(
        f"{site['rank']}. {site['edge_id']}"
        + (f" ({site['street']})" if site.get("street") else "")
        + f": {site['share_removed']:.0%} of the variance removed, standard deviation "
        f"{site['sd_after']:.3g} {unit} after"
        for site in where_next["sites"]
    )
    return (
        f"Where to count next ({where_next['id']}): the difference in {where_next['kpi']} between "
        f"{where_next['plan_b']} and {where_next['plan_a']} ({_number(where_next['difference'], 2)} {unit}) has a "
        f"standard deviation of {where_next['sd_now']:.3g} {unit} from the uncertainty of the calibrated "
        f"demand with today's {where_next['counted_site_hours']} counted site-hours; a count at one of "
        f"these directed edges would narrow it most (methods-countnext.md): {sites or 'none'}."
    )


def _verdict(after: Mapping[str, Any]) -> str:
    share = after.get("share_geh_ok")
    if share is None or not after.get("site_hours"):
        return "No count site-hour could be compared: the DMRB criterion cannot be assessed."
    word = "meets" if after.get("meets_dmrb") else "does not meet"
    return (
        f"The model {word} the DMRB / TAG M3.1 criterion (GEH < {GEH_OK:g} at {DMRB_SHARE:.0%} of count "
        f"site-hours or more): {share:.0%} of {after['site_hours']} site-hours."
    )


def _number(value: Any, digits: int) -> str:
    if value is None or not math.isfinite(float(value)):
        return "undefined"
    return f"{float(value):,.{digits}f}"


def _before_after(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """GEH < 5 share, RMSE and R² before → after, in words."""
    return (
        f"{after['site_hours']} site-hours; GEH < 5 at {_share(before)} before, {_share(after)} after; "
        f"RMSE {_number(before['rmse'], 0)} → {_number(after['rmse'], 0)} vehicles/hour; "
        f"R² {_number(before['r2'], 2)} → {_number(after['r2'], 2)}."
    )


def _share(fit: Mapping[str, Any]) -> str:
    share = fit.get("share_geh_ok")
    return "undefined" if share is None else f"{share:.0%}"


def _misfits(scatter: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each site-hour with GEH ≥ 5 after calibration, worst first."""
    rows = [(float(geh(r["after"], r["observed"])), r) for r in scatter]
    return [
        f"{r['site']} hour {r['hour']} (observed {r['observed']:,.0f}, simulated {r['after']:,.0f}, GEH {g:.1f})"
        for g, r in sorted(rows, key=lambda item: -item[0])
        if g >= GEH_OK
    ]


def scatter_png(scatter: Sequence[Mapping[str, Any]]) -> bytes:
    """Observed vs simulated per site-hour, before (hollow) and after (filled), with the 1:1 line and
    the band where GEH < 5 (exact), as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    observed = np.array([r["observed"] for r in scatter], dtype=float)
    before = np.array([r["before"] for r in scatter], dtype=float)
    after = np.array([r["after"] for r in scatter], dtype=float)
    top = max(1.0, float(max(observed.max(), before.max(), after.max()))) * 1.1
    line = np.linspace(0.0, top, 200)
    # GEH = 5 ⇔ d² = 12.5 (2C + d) with d = M − C ⇔ d = (12.5 ± √(12.5² + 100 C)) / 2
    half = GEH_OK**2 / 2.0
    root = np.sqrt(half**2 + 4.0 * GEH_OK**2 * line)
    upper, lower = line + (half + root) / 2.0, np.maximum(line + (half - root) / 2.0, 0.0)
    colours = plt.get_cmap("cividis")([0.2, 0.8])
    figure, axis = plt.subplots(figsize=(5.5, 5.5))
    axis.fill_between(line, lower, upper, color="0.9", label="GEH < 5")
    axis.plot(line, line, color="0.4", lw=0.8)
    axis.scatter(observed, before, facecolors="none", edgecolors=colours[0], label="before calibration")
    axis.scatter(observed, after, color=colours[1], label="after calibration")
    axis.set_xlim(0, top)
    axis.set_ylim(0, top)
    axis.set_xlabel("Observed (vehicles/hour)")
    axis.set_ylabel("Simulated (vehicles/hour)")
    axis.legend(loc="upper left", frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()
