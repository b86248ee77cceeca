"""The traffic engine's part of a comparison's report: facts about the runs, the modal split figure,
teleport warnings, the calibration the runs used, warnings of implausible demand and a paragraph on
the method. Built from the saved seeds only."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np

from civictwin.engines.base import EngineReport, ReportSection
from civictwin.engines.traffic.fitreport import calibration_section
from civictwin.engines.traffic.modechoice import MODES
from civictwin.i18n import N_
from civictwin.runs import SeedRecord

_MODE_NAMES = {"car": "Car", "pt": "Public transport", "bike": "Bike", "walk": "Walk"}

METHOD = N_(
    "Demand comes from a gravity model of the zones' residents, jobs and points of interest; a logit "
    "model splits it over car, public transport, bike and walking, fed back with the simulated car "
    "times. The defaults are literature values to be calibrated locally (see docs/methods-demand.md). "
    "Simulation: Eclipse SUMO with dynamic rerouting; emissions from HBEFA classes, noise from "
    "Harmonoise. Car indicators describe the car trips that remain in each scenario: when a plan moves "
    "trips to other modes, the mean car travel time can fall even where driving a given route takes "
    "longer. Money values are the defaults' euros at Finnish prices (value of time 10 EUR/h from "
    "Finnish appraisal unit values, fares of the order of an HSL single ticket, car cost per km and "
    "parking); a twin elsewhere sets its own in traffic.toml, in euros or converted to them."
)


def traffic_report(runs: Mapping[str, Sequence[SeedRecord]]) -> EngineReport:
    """Notes per scenario, teleport warnings for the summary, the method, the modal split figure, the
    calibration the runs used and warnings of implausible demand."""
    sections = [ReportSection(N_("How people travel (modal split)"), figures=(_modal_split_png(runs),))]
    recorded = [s.details for seeds in runs.values() for s in seeds if "calibration" in s.details]
    if recorded:
        sections.append(calibration_section(recorded[0]["calibration"]))
    return EngineReport(
        summary=tuple(_teleport_sentences(runs)),
        notes=tuple(_notes(name, seeds) for name, seeds in runs.items()),
        method=METHOD,
        sections=tuple(sections),
        warnings=tuple(implausible_demand(runs)),
    )


def implausible_demand(runs: Mapping[str, Sequence[SeedRecord]]) -> list[str]:
    """Each scenario's warnings of implausible demand (each distinct sentence once)."""
    return [
        f"'{scenario}': {warning}"
        for scenario, seeds in runs.items()
        for warning in dict.fromkeys(w for s in seeds for w in s.details.get("implausible_demand", []))
    ]


def _notes(name: str, seeds: Sequence[SeedRecord]) -> str:
    first = seeds[0].details
    car_shares = [list(s.details.get("car_share_by_iteration", [])) for s in seeds]
    last_step = max((abs(c[-1] - c[-2]) for c in car_shares if len(c) > 1), default=0.0)
    source = str(first.get("transit_source", ""))
    transit = "the GTFS timetable" if source.startswith("gtfs") else "the fallback assumption (no GTFS)"
    if source.endswith("simulated lines"):
        transit += ", and for the OD pairs the simulated bus and tram lines connect their own routes, headways and speeds"
    return (
        f"'{name}': {first.get('changed_edges', 0)} street edges changed; demand from "
        f"{first.get('demand_source', 'the gravity model')}; transit times from {transit}; "
        f"{first.get('iterations', len(car_shares[0]))} simulation/mode-choice round(s), last change of the "
        f"car share {100 * last_step:.2f} percentage points."
        + _gateway_note(first.get("gateway_sources"), first.get("gateway_notes", ()))
        + (f" {first['simulation_levels']}" if first.get("simulation_levels") else "")
    )


def _gateway_note(sources: Sequence[Mapping[str, str]] | None, notes: Sequence[str] = ()) -> str:
    """Where the gateways' inbound, through and outbound flows came from, in words, the gateways with
    the same sources named together, then the ``notes`` (empty without gateways)."""
    if not sources:
        return ""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for s in sources:
        inbound = s["inbound"]
        key = (inbound, s.get("through", inbound), s["outbound"])
        groups.setdefault(key, []).append(s["node"])
    each = "; ".join(
        f"{', '.join(nodes)}: in from {inbound}"
        + (f", across from {through}" if through != inbound else "")
        + f", out from {outbound}"
        for (inbound, through, outbound), nodes in groups.items()
    )
    return f" Traffic from outside through {len(sources)} gateway(s) ({each})." + "".join(
        f" {note}" for note in notes
    )


def _teleport_sentences(runs: Mapping[str, Sequence[SeedRecord]]) -> list[str]:
    sentences = []
    for scenario, seeds in runs.items():
        teleports = float(np.mean([s.kpi("teleports") for s in seeds]))
        if teleports > 0:
            sentences.append(
                f"In '{scenario}' SUMO teleported on average {teleports:.1f} stuck vehicles per run; "
                "results near capacity carry extra uncertainty."
            )
    return sentences


def _modal_split_png(runs: Mapping[str, Sequence[SeedRecord]]) -> bytes:
    """Stacked bars of the mean mode shares per scenario, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(runs)
    figure, axis = plt.subplots(figsize=(8, 0.8 + 0.5 * len(scenarios)))
    colours = plt.get_cmap("viridis")(np.linspace(0.05, 0.9, len(MODES)))
    left = np.zeros(len(scenarios))
    for m, mode in enumerate(MODES):
        shares = np.array(
            [np.mean([s.details["modal_split"][mode] for s in runs[name]]) for name in scenarios]
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
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()
