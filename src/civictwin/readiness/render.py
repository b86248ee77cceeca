"""The readiness report as JSON (plain data) or Markdown (for people, in their language: the objective,
the level, what is missing and how to get it, then every need)."""

from __future__ import annotations

import json

from civictwin.i18n import DEFAULT, N_, Language, language
from civictwin.readiness.assess import LEVEL_NAMES, NeedReport, ReadinessReport

FORMATS = ("markdown", "json")

HELD_LABELS = (N_("licence {value}"), N_("access {value}"), N_("steward {value}"), N_("validation {value}"))
"""The labels of what the twin records about a need's holding: licence, access level, steward, validation."""
STATUS_WORDS = (N_("present"), N_("missing"), N_("incomplete"), N_("ungoverned"), N_("stale"), N_("failed"))
"""A need's status words (civictwin.readiness.assess), marked for the catalogues."""


def as_json(report: ReadinessReport) -> str:
    """The report as indented JSON."""
    return json.dumps(report.as_dict(), indent=2, ensure_ascii=False)


def as_markdown(report: ReadinessReport, *, lang: Language | None = None) -> str:
    """The report as a Markdown page, its fixed words in ``lang`` (English by default); what the
    template and the twin's records say (objective, needs, details) is shown as written."""
    lang = lang or language(DEFAULT)
    _ = lang.gettext
    lines = [
        "# " + _("Readiness: {title}").format(title=report.title),
        "",
        _("**Objective.** {objective}").format(objective=report.objective),
        "",
        _("**Maturity: level {level} of 4 ({name}).** Scale: docs/readiness.md.").format(
            level=report.maturity, name=_(report.maturity_name)
        ),
        "",
    ]
    if report.next_level:
        target = _(LEVEL_NAMES[report.maturity + 1])
        lines += [
            "## " + _("To reach level {level} ({name})").format(level=report.maturity + 1, name=target),
            "",
        ]
        by_id = {n.id: n for n in report.needs}
        lines += [
            f"- **{by_id[i].what}** ({_(by_id[i].status)}): {by_id[i].how_to_get}" for i in report.next_level
        ]
        lines.append("")
    header = (_("KPI"), _("engine"), _("ready"), _("unmet needs"))
    lines += ["## " + _("KPIs"), "", "| " + " | ".join(header) + " |", "| --- | --- | --- | --- |"]
    yes, no = _("yes"), _("no")
    lines += [
        f"| {k.label} (`{k.name}`) | {k.engine} | {yes if k.ready else no} | {', '.join(k.unmet) or '—'} |"
        for k in report.kpis
    ]
    lines += ["", "## " + _("Data"), ""]
    for need in sorted(report.needs, key=lambda n: (n.level, n.id)):
        lines += _need_lines(need, lang)
    lines += [
        _("Assessed {time} with the template {template}.").format(
            time=report.assessed_at, template=report.template
        ),
        "",
    ]
    return "\n".join(lines)


def _need_lines(need: NeedReport, lang: Language) -> list[str]:
    _ = lang.gettext
    lines = [
        f"### {need.id}: {need.what}",
        "",
        "- "
        + _("level {level} ({name}), {kind} `{target}`: **{status}**").format(
            level=need.level,
            name=_(LEVEL_NAMES[need.level]),
            kind=need.kind,
            target=need.target,
            status=_(need.status),
        ),
    ]
    lines += [f"- {detail}" for detail in need.details]
    recorded = (need.licence, need.access, need.steward, need.validation)
    held = [_(label).format(value=value) for label, value in zip(HELD_LABELS, recorded, strict=True) if value]
    if held:
        lines.append("- " + "; ".join(held))
    if need.as_of:
        age = ""
        if need.age_days is not None:
            days = round(need.age_days)
            age = " " + lang.ngettext("({days} day ago)", "({days} days ago)", days).format(days=days)
        lines.append("- " + _("as of {date}").format(date=lang.date(need.as_of)) + age)
    lines += ["- " + _("quality: {line}").format(line=line) for line in need.quality]
    if need.how_to_get:
        lines.append("- " + _("how to get it: {how}").format(how=need.how_to_get))
    return [*lines, ""]
