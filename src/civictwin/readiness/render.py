"""The readiness report as JSON (plain data) or Markdown (for people, in their language: the objective,
the level, what is missing and how to get it, the KPIs, the observed modal split and the calibrated
constants' fit to it where the use case has traffic KPIs, then every need)."""

from __future__ import annotations

import json

from civictwin.i18n import DEFAULT, N_, Language, language
from civictwin.readiness.assess import LEVEL_NAMES, SPLIT_STATES, NeedReport, ReadinessReport, SplitReport

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
    if report.modal_split is not None:
        lines += ["", *_split_lines(report.modal_split, lang)]
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


def _split_lines(split: SplitReport, lang: Language) -> list[str]:
    """The modal split section: where the twin stands in one sentence, then observed vs modelled share
    per mode (shares in the locale's percent form, differences in percentage points)."""
    _ = lang.gettext
    source, record = split.source or "", split.record or ""
    points = {
        "tolerance": lang.decimal((split.tolerance or 0.0) * 100, decimals=1),
        "gap": lang.decimal((split.gap or 0.0) * 100, decimals=1),
    }
    sentences = {
        SPLIT_STATES[0]: _(
            "No observed modal split is configured (`[modal_split]` in twin.toml): the mode choice's "
            "constants are defaults, not fitted to how this city's residents travel."
        ),
        SPLIT_STATES[1]: _(
            "An observed modal split is configured ({source}), but no calibration has fitted the mode "
            "choice's constants to it yet: run `civictwin calibrate run`."
        ).format(source=source),
        SPLIT_STATES[2]: _(
            "The latest calibration ({record}) fitted the mode choice's constants to another split than "
            "the one configured now ({source}): run `civictwin calibrate run` again."
        ).format(record=record, source=source),
        SPLIT_STATES[3]: _(
            "The calibrated constants ({record}) reproduce the observed split ({source}) within "
            "{tolerance} percentage points per mode: the largest difference is {gap}."
        ).format(record=record, source=source, **points),
        SPLIT_STATES[4]: _(
            "The calibrated constants ({record}) do not reproduce the observed split ({source}): one mode "
            "is {gap} percentage points off, more than the tolerance of {tolerance}."
        ).format(record=record, source=source, **points),
        SPLIT_STATES[5]: _(
            "An observed modal split is configured ({source}); how the calibrated constants fit it is "
            "withheld: the calibration derives from layers you may not read."
        ).format(source=source),
    }
    lines = ["## " + _("Modal split"), "", f"**{_(split.status)}.** {sentences[split.status]}"]
    if split.shares:
        header = (_("mode"), _("observed"), _("modelled"))
        lines += ["", "| " + " | ".join(header) + " |", "| --- | --- | --- |"]
        lines += [
            f"| `{row.mode}` | {_share(row.observed, lang)} | {_share(row.modelled, lang)} |"
            for row in split.shares
        ]
    return lines


def _share(value: float | None, lang: Language) -> str:
    return "—" if value is None else lang.percent(value)
