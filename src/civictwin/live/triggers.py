"""Rules as pure functions: observations or a comparison's rows in, findings (firing or clear) out.

Nothing here reads a store, a clock or the network; the consumer (:mod:`civictwin.live.consumer`) and
the comparison hook (:func:`check_comparison`) feed the data in and turn findings into alerts
(:mod:`civictwin.live.alerts`). Every finding carries the evidence that decided it.

Window rules work on hourly means, as the EU air-quality limit values do (Directive 2008/50/EC,
Annex XI: NO2 200 µg/m³ as a one-hour mean not to be exceeded more than 18 times a calendar year,
40 µg/m³ as a calendar-year mean; PM10 50 µg/m³ as a daily mean not more than 35 times a year):

* an hour's mean is the mean of the observations timed in that clock hour of the rule's time zone;
* a day's mean is the mean of that day's hourly means; so is a period's (month, year) mean.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from civictwin.config_live import RuleConfig, RuleKind

Point = tuple[datetime, float]
"""One observation: its phenomenon time (timezone-aware) and its numeric result."""


@dataclass(frozen=True)
class Finding:
    """The verdict of one rule on one subject at one moment: firing or clear, and why."""

    rule: str
    subject: str
    """``datastream:<id>``, or ``scenario:<plan>:<kpi>`` for scenario rules."""
    firing: bool
    at: datetime
    """When the deciding evidence is from (an observation's phenomenon time, a comparison's creation)."""
    value: float | None
    """The number compared with the limit (a value, a rate per hour, a count, a mean, an interval end)."""
    limit: float
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


def _option(value: float | None) -> float:
    """A rule option its kind requires (the configuration refuses a rule without it)."""
    if value is None:
        raise ValueError("a rule option its kind requires is missing")
    return float(value)


def datastream_subject(datastream_id: str) -> str:
    """The subject of findings about one datastream."""
    return f"datastream:{datastream_id}"


def _iso(moment: datetime) -> str:
    spec = "seconds" if moment.microsecond == 0 else "milliseconds"
    return moment.astimezone(UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def _fmt(value: float) -> str:
    return f"{value:.6g}"


# ---- point rules: threshold, rate of change ---------------------------------------------------------


def threshold_findings(rule: RuleConfig, subject: str, points: Sequence[Point]) -> list[Finding]:
    """One finding per point, in time order: firing while the value is beyond the limit."""
    above = rule.above is not None
    limit = _option(rule.above if above else rule.below)
    findings = []
    for moment, value in sorted(points):
        firing = value > limit if above else value < limit
        relation = ("above" if firing else "not above") if above else ("below" if firing else "not below")
        findings.append(
            Finding(
                rule=rule.name,
                subject=subject,
                firing=firing,
                at=moment,
                value=value,
                limit=limit,
                message=f"{_fmt(value)} at {_iso(moment)} is {relation} {_fmt(limit)}",
                evidence={"observations": [{"time": _iso(moment), "result": value}]},
            )
        )
    return findings


def rate_findings(
    rule: RuleConfig, subject: str, previous: Point | None, points: Sequence[Point]
) -> list[Finding]:
    """One finding per point that has a predecessor: firing when |Δvalue| per hour exceeds ``per_hour``.

    ``previous`` is the newest observation before ``points`` (None when there is none); two points at
    the same instant give no rate and no finding.
    """
    limit = _option(rule.per_hour)
    findings = []
    before = previous
    for moment, value in sorted(points):
        if before is not None and moment > before[0]:
            hours = (moment - before[0]).total_seconds() / 3600
            rate = (value - before[1]) / hours
            firing = abs(rate) > limit
            findings.append(
                Finding(
                    rule=rule.name,
                    subject=subject,
                    firing=firing,
                    at=moment,
                    value=rate,
                    limit=limit,
                    message=(
                        f"changed by {_fmt(rate)} per hour between {_iso(before[0])} and {_iso(moment)}"
                        f" ({'more' if firing else 'not more'} than ±{_fmt(limit)} per hour)"
                    ),
                    evidence={
                        "observations": [
                            {"time": _iso(before[0]), "result": before[1]},
                            {"time": _iso(moment), "result": value},
                        ],
                        "rate_per_hour": rate,
                    },
                )
            )
        if before is None or moment >= before[0]:
            before = (moment, value)
    return findings


def silence_finding(rule: RuleConfig, subject: str, newest: datetime | None, now: datetime) -> Finding:
    """Firing when the newest observation is older than ``minutes`` (or there is none at all)."""
    limit = _option(rule.minutes)
    silent = None if newest is None else (now - newest).total_seconds() / 60
    firing = silent is None or silent > limit
    if newest is None:
        message = "no observation at all"
    else:
        message = f"newest observation {_fmt(silent or 0.0)} minutes old (limit {_fmt(limit)})"
    return Finding(
        rule=rule.name,
        subject=subject,
        firing=firing,
        at=now,
        value=silent,
        limit=limit,
        message=message,
        evidence={"newest_observation": _iso(newest) if newest else None, "checked_at": _iso(now)},
    )


# ---- calendar windows -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowMean:
    """The mean of one calendar window (an hour, a day) and how many values made it."""

    start: datetime
    """The window's first instant, in UTC (a day starts at local midnight in the rule's time zone)."""
    mean: float
    count: int


class HourlyMeans:
    """Running sums per clock hour of one time zone: the basis of every window rule.

    Feeding observations one by one (the live consumer) or all at once (:func:`hourly_means`) gives
    the same hours. An hour is keyed by its first instant in UTC, so the repeated wall-clock hour at
    the end of daylight-saving time stays two hours.
    """

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._sums: dict[datetime, tuple[float, int]] = {}

    def add(self, moment: datetime, value: float) -> None:
        """Count one observation in its hour (NaN values are not counted)."""
        if math.isnan(value):
            return
        start = hour_start(moment, self.zone).astimezone(UTC)
        total, count = self._sums.get(start, (0.0, 0))
        self._sums[start] = (total + value, count + 1)

    def extend(self, points: Iterable[Point]) -> None:
        for moment, value in points:
            self.add(moment, value)

    def means(self, *, start: datetime | None = None, end: datetime | None = None) -> list[WindowMean]:
        """The hourly means whose hour starts in [start, end), in time order."""
        return [
            WindowMean(hour, total / count, count)
            for hour, (total, count) in sorted(self._sums.items())
            if (start is None or hour >= start) and (end is None or hour < end)
        ]

    def forget_before(self, moment: datetime) -> None:
        """Drop hours before ``moment`` (a period that has ended)."""
        self._sums = {hour: v for hour, v in self._sums.items() if hour >= moment}


def hour_start(moment: datetime, zone: ZoneInfo) -> datetime:
    """The first instant of the clock hour holding ``moment`` in ``zone`` (DST fold kept)."""
    local = moment.astimezone(zone)
    return local.replace(minute=0, second=0, microsecond=0)


def hourly_means(points: Iterable[Point], zone: ZoneInfo) -> list[WindowMean]:
    """Hourly means of a series in ``zone``, in time order."""
    hours = HourlyMeans(zone)
    hours.extend(points)
    return hours.means()


def daily_means(hours: Sequence[WindowMean], zone: ZoneInfo) -> list[WindowMean]:
    """Daily means: the mean of each local calendar day's hourly means (``count`` = hours with data)."""
    days: dict[date, list[float]] = {}
    for hour in hours:
        days.setdefault(hour.start.astimezone(zone).date(), []).append(hour.mean)
    return [
        WindowMean(datetime(d.year, d.month, d.day, tzinfo=zone).astimezone(UTC), sum(v) / len(v), len(v))
        for d, v in sorted(days.items())
    ]


def period_bounds(moment: datetime, period: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The calendar day, month or year holding ``moment`` in ``zone``, as [start, end) in UTC.

    (UTC, because Python compares and subtracts two times of the same zone by their wall clocks.)
    """
    local = moment.astimezone(zone)
    if period == "day":
        start = datetime(local.year, local.month, local.day, tzinfo=zone)
        nxt = start.date() + timedelta(days=1)
        end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
    elif period == "month":
        start = datetime(local.year, local.month, 1, tzinfo=zone)
        end = datetime(local.year + local.month // 12, local.month % 12 + 1, 1, tzinfo=zone)
    elif period == "year":
        start, end = datetime(local.year, 1, 1, tzinfo=zone), datetime(local.year + 1, 1, 1, tzinfo=zone)
    else:
        raise ValueError(f"unknown period {period!r}")
    return start.astimezone(UTC), end.astimezone(UTC)


def exceedance_finding(rule: RuleConfig, subject: str, hours: Sequence[WindowMean], at: datetime) -> Finding:
    """Count the windows of the period holding ``at`` whose mean is above ``above``; fire beyond ``allowed``.

    ``hours`` are hourly means (at least those of the period); windows with fewer than ``min_values``
    values (observations per hour, hourly means per day) do not count.
    """
    zone = rule.zone
    period = rule.period or "year"
    start, end = period_bounds(at, period, zone)
    in_period = [h for h in hours if start <= h.start < end]
    windows = in_period if rule.window == "hour" else daily_means(in_period, zone)
    limit = _option(rule.above)
    allowed = int(_option(rule.allowed))
    valid = [w for w in windows if w.count >= (rule.min_values or 1)]
    above = [w for w in valid if w.mean > limit]
    firing = len(above) > allowed
    return Finding(
        rule=rule.name,
        subject=subject,
        firing=firing,
        at=at,
        value=float(len(above)),
        limit=float(allowed),
        message=(
            f"{len(above)} {rule.window}ly means above {_fmt(limit)} in the {period} from "
            f"{start.astimezone(zone).date()}"
            f" ({allowed} allowed)"
        ),
        evidence={
            "period": {"start": _iso(start), "end": _iso(end)},
            "window": rule.window,
            "windows_counted": len(valid),
            "exceedances": [{"start": _iso(w.start), "mean": w.mean, "values": w.count} for w in above],
        },
    )


def period_mean_finding(rule: RuleConfig, subject: str, hours: Sequence[WindowMean], at: datetime) -> Finding:
    """The mean of the hourly means in the period holding ``at``; firing when above ``above``.

    With fewer than ``min_values`` hourly means in the period the mean is not judged (not firing).
    """
    zone = rule.zone
    period = str(rule.period)
    start, end = period_bounds(at, period, zone)
    values = [h.mean for h in hours if start <= h.start < end]
    limit = _option(rule.above)
    enough = len(values) >= (rule.min_values or 1)
    mean = sum(values) / len(values) if values else None
    firing = bool(enough and mean is not None and mean > limit)
    shown = "no data" if mean is None else _fmt(mean)
    return Finding(
        rule=rule.name,
        subject=subject,
        firing=firing,
        at=at,
        value=mean,
        limit=limit,
        message=(
            f"{period} mean {shown} from {len(values)} hourly means since {start.astimezone(zone).date()}"
            f" (limit {_fmt(limit)})"
        ),
        evidence={
            "period": {"start": _iso(start), "end": _iso(end)},
            "hourly_means": len(values),
            "mean": mean,
        },
    )


def window_finding(rule: RuleConfig, subject: str, hours: Sequence[WindowMean], at: datetime) -> Finding:
    """The finding of an exceedance or period-mean rule for the period holding ``at``."""
    if rule.kind is RuleKind.EXCEEDANCES:
        return exceedance_finding(rule, subject, hours, at)
    return period_mean_finding(rule, subject, hours, at)


def history_start(rule: RuleConfig, newest: datetime) -> datetime | None:
    """How far back a rule must look from ``newest`` (None: only the new points and their predecessor)."""
    if rule.kind in (RuleKind.EXCEEDANCES, RuleKind.PERIOD_MEAN):
        return period_bounds(newest, rule.period or "year", rule.zone)[0]
    return None


def series_findings(
    rule: RuleConfig, subject: str, points: Sequence[Point], *, now: datetime
) -> list[Finding]:
    """Every finding of an observation rule over a whole series (the batch view of the live consumer).

    Point rules give one finding per point; window rules one for the period of the newest point;
    silence rules one for ``now``.
    """
    ordered = sorted(points)
    if rule.kind is RuleKind.THRESHOLD:
        return threshold_findings(rule, subject, ordered)
    if rule.kind is RuleKind.RATE_OF_CHANGE:
        return rate_findings(rule, subject, None, ordered)
    if rule.kind is RuleKind.SILENCE:
        return [silence_finding(rule, subject, ordered[-1][0] if ordered else None, now)]
    if not ordered:
        return []
    return [window_finding(rule, subject, hourly_means(ordered, rule.zone), ordered[-1][0])]


# ---- scenario rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioRow:
    """A KPI of a scenario, or a plan − baseline difference, with its 95% confidence interval."""

    kpi: str
    scenario: str
    mean: float
    ci_low: float
    ci_high: float
    unit: str = ""

    @classmethod
    def of(cls, row: Mapping[str, Any], units: Mapping[str, str] | None = None) -> ScenarioRow:
        """A row of ``comparison.json`` (``differences`` name the scenario ``plan``; ``kpis`` ``scenario``)."""
        scenario = row.get("scenario", row.get("plan"))
        kpi = str(row["kpi"])
        return cls(
            kpi=kpi,
            scenario=str(scenario),
            mean=_number(row.get("mean")),
            ci_low=_number(row.get("ci_low")),
            ci_high=_number(row.get("ci_high")),
            unit=str(row.get("unit") or (units or {}).get(kpi, "")),
        )


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def scenario_subject(scenario: str, kpi: str) -> str:
    """The subject of findings about one KPI of one scenario."""
    return f"scenario:{scenario}:{kpi}"


def difference_findings(
    rule: RuleConfig, differences: Sequence[ScenarioRow], *, comparison_id: str, baseline: str, at: datetime
) -> list[Finding]:
    """Plans whose KPI exceeds the baseline by more than ``by_more_than``.

    With ``confident`` (the default) the whole 95% interval of the difference must lie above the limit
    (its lower end above it); otherwise the mean difference decides. Rows without a finite interval
    (a KPI not measured in every run) give no finding.
    """
    limit = _option(rule.by_more_than)
    findings = []
    for row in differences:
        if not _selected(rule, row) or not _finite_row(row):
            continue
        decisive = row.ci_low if rule.confident else row.mean
        firing = decisive > limit
        unit = f" {row.unit}" if row.unit else ""
        basis = "the lower end of its 95% interval" if rule.confident else "its mean"
        findings.append(
            Finding(
                rule=rule.name,
                subject=scenario_subject(row.scenario, row.kpi),
                firing=firing,
                at=at,
                value=decisive,
                limit=limit,
                message=(
                    f"{row.scenario} − {baseline}: {row.kpi} {_fmt(row.mean)}{unit} "
                    f"(95% CI {_fmt(row.ci_low)} to {_fmt(row.ci_high)}); {basis} is "
                    f"{'above' if firing else 'not above'} {_fmt(limit)}{unit}"
                ),
                evidence=_scenario_evidence(row, comparison_id, baseline, "difference"),
            )
        )
    return findings


def target_findings(
    rule: RuleConfig, kpis: Sequence[ScenarioRow], *, comparison_id: str, baseline: str, at: datetime
) -> list[Finding]:
    """Scenarios whose KPI is beyond a target (``above`` or ``below``), e.g. a car share above a plan's.

    By default every plan (not the baseline) is checked; ``scenarios`` names others. With ``confident``
    the whole 95% interval must be beyond the target.
    """
    above = rule.above is not None
    limit = _option(rule.above if above else rule.below)
    findings = []
    for row in kpis:
        if rule.scenarios is None and row.scenario == baseline:
            continue
        if not _selected(rule, row) or not _finite_row(row):
            continue
        decisive = (row.ci_low if above else row.ci_high) if rule.confident else row.mean
        firing = decisive > limit if above else decisive < limit
        word = "above" if above else "below"
        unit = f" {row.unit}" if row.unit else ""
        findings.append(
            Finding(
                rule=rule.name,
                subject=scenario_subject(row.scenario, row.kpi),
                firing=firing,
                at=at,
                value=decisive,
                limit=limit,
                message=(
                    f"{row.scenario}: {row.kpi} {_fmt(row.mean)}{unit} (95% CI {_fmt(row.ci_low)} to "
                    f"{_fmt(row.ci_high)}) is {'' if firing else 'not '}{word} the target {_fmt(limit)}{unit}"
                    + ("" if not rule.confident else " with 95% confidence")
                ),
                evidence=_scenario_evidence(row, comparison_id, baseline, "kpi"),
            )
        )
    return findings


def _selected(rule: RuleConfig, row: ScenarioRow) -> bool:
    return (rule.kpis is None or row.kpi in rule.kpis) and (
        rule.scenarios is None or row.scenario in rule.scenarios
    )


def _finite_row(row: ScenarioRow) -> bool:
    return all(math.isfinite(v) for v in (row.mean, row.ci_low, row.ci_high))


def _scenario_evidence(row: ScenarioRow, comparison_id: str, baseline: str, what: str) -> dict[str, Any]:
    return {
        "comparison": comparison_id,
        "baseline": baseline,
        what: {
            "kpi": row.kpi,
            "scenario": row.scenario,
            "unit": row.unit,
            "mean": row.mean,
            "ci_low": row.ci_low,
            "ci_high": row.ci_high,
            "confidence": 0.95,
        },
    }


def check_comparison(rules: Sequence[RuleConfig], comparison: Mapping[str, Any]) -> list[Finding]:
    """Every scenario rule's findings for one comparison (the ``comparison.json`` document).

    Reads ``id``, ``created``, ``baseline``, ``kpis`` (rows with ``scenario``) and ``differences``
    (rows with ``plan``); units come from the KPI rows when the difference rows lack them.
    """
    comparison_id = str(comparison.get("id", ""))
    baseline = str(comparison.get("baseline", ""))
    created = comparison.get("created")
    at = _parse_time(created) if isinstance(created, str) else datetime.now(UTC)
    kpi_rows = [ScenarioRow.of(r) for r in comparison.get("kpis", [])]
    units = {r.kpi: r.unit for r in kpi_rows if r.unit}
    differences = [ScenarioRow.of(r, units) for r in comparison.get("differences", [])]
    findings: list[Finding] = []
    for rule in rules:
        if rule.kind is RuleKind.SCENARIO_DIFFERENCE:
            findings += difference_findings(
                rule, differences, comparison_id=comparison_id, baseline=baseline, at=at
            )
        elif rule.kind is RuleKind.SCENARIO_TARGET:
            findings += target_findings(rule, kpi_rows, comparison_id=comparison_id, baseline=baseline, at=at)
    return findings


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
