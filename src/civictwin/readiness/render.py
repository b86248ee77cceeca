"""The readiness report as JSON (plain data) or Markdown (for people: the objective, the level, what
is missing and how to get it, then every need)."""

from __future__ import annotations

import json

from civictwin.readiness.assess import LEVEL_NAMES, NeedReport, ReadinessReport

FORMATS = ("markdown", "json")


def as_json(report: ReadinessReport) -> str:
    """The report as indented JSON."""
    return json.dumps(report.as_dict(), indent=2, ensure_ascii=False)


def as_markdown(report: ReadinessReport) -> str:
    """The report as a Markdown page."""
    lines = [
        f"# Readiness: {report.title}",
        "",
        f"**Objective.** {report.objective}",
        "",
        f"**Maturity: level {report.maturity} of 4 ({report.maturity_name}).** Scale: docs/readiness.md.",
        "",
    ]
    if report.next_level:
        target = LEVEL_NAMES[report.maturity + 1]
        lines += [f"## To reach level {report.maturity + 1} ({target})", ""]
        by_id = {n.id: n for n in report.needs}
        lines += [
            f"- **{by_id[i].what}** ({by_id[i].status}): {by_id[i].how_to_get}" for i in report.next_level
        ]
        lines.append("")
    lines += ["## KPIs", "", "| KPI | engine | ready | unmet needs |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {k.label} (`{k.name}`) | {k.engine} | {'yes' if k.ready else 'no'} | {', '.join(k.unmet) or '—'} |"
        for k in report.kpis
    ]
    lines += ["", "## Data", ""]
    for need in sorted(report.needs, key=lambda n: (n.level, n.id)):
        lines += _need_lines(need)
    lines += [f"Assessed {report.assessed_at} with the template {report.template}.", ""]
    return "\n".join(lines)


def _need_lines(need: NeedReport) -> list[str]:
    lines = [
        f"### {need.id}: {need.what}",
        "",
        f"- level {need.level} ({LEVEL_NAMES[need.level]}), {need.kind} `{need.target}`: **{need.status}**",
    ]
    lines += [f"- {detail}" for detail in need.details]
    held = [
        f"{label} {value}"
        for label, value in (
            ("licence", need.licence),
            ("access", need.access),
            ("steward", need.steward),
            ("validation", need.validation),
        )
        if value
    ]
    if held:
        lines.append("- " + "; ".join(held))
    if need.as_of:
        age = f" ({need.age_days:g} days ago)" if need.age_days is not None else ""
        lines.append(f"- as of {need.as_of}{age}")
    lines += [f"- quality: {line}" for line in need.quality]
    if need.how_to_get:
        lines.append(f"- how to get it: {need.how_to_get}")
    return [*lines, ""]
