"""The observation rules at work: what the consumer stored goes in, alerts (and their deliveries) come out.

After each stored batch, :meth:`RuleEngine.observe` judges the point rules (threshold, rate of
change) on every observation newer than its datastream's newest so far, in time order: a spike inside
one batch opens and closes its alert. Out-of-order observations are history: they are counted, and
they enter the window rules, but they neither open nor close point alerts. Window rules (exceedance
counts, period means) are judged on the store's own hourly means
(:meth:`~civictwin.store.observations.ObservationStore.aggregate`) of the period holding the
datastream's newest observation, at most once per ``window_check_s`` per datastream; silence rules on
every :meth:`RuleEngine.tick`. Each finding goes through :func:`civictwin.live.alerts.step`, so an
alert opens once, counts while its condition persists, and closes when it clears.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from civictwin.config_live import RuleConfig, RuleKind, WebhookConfig
from civictwin.live.alerts import step
from civictwin.live.messages import Reading
from civictwin.live.triggers import (
    Finding,
    Point,
    WindowMean,
    datastream_subject,
    period_bounds,
    rate_findings,
    silence_finding,
    threshold_findings,
    window_finding,
)
from civictwin.store.alerts import Alert, AlertEvent, AlertStore
from civictwin.store.observations import AggregateQuery, DatastreamInfo, ObservationStore, Window

_POINT_KINDS = (RuleKind.THRESHOLD, RuleKind.RATE_OF_CHANGE)
_WINDOW_KINDS = (RuleKind.EXCEEDANCES, RuleKind.PERIOD_MEAN)


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


@dataclass
class Outcome:
    """What one call of the engine did: the alerts it opened or closed (saved, with ids)."""

    events: list[tuple[Alert, AlertEvent]] = field(default_factory=list)
    out_of_order: int = 0


def watches(rule: RuleConfig, info: DatastreamInfo) -> bool:
    """Whether an observation rule applies to a datastream (by id or key, by observed property, or all)."""
    if not rule.watches_observations:
        return False
    if rule.datastreams is not None:
        return str(info.id) in rule.datastreams or info.key in rule.datastreams
    if rule.observed_property is not None:
        return info.observed_property.casefold() == rule.observed_property.casefold()
    return True


def webhook_targets(rules: Sequence[RuleConfig], webhooks: Sequence[WebhookConfig]) -> dict[str, list[str]]:
    """For each rule, the webhooks its alerts go to."""
    return {rule.name: [hook.name for hook in webhooks if hook.wants(rule.name)] for rule in rules}


class RuleEngine:
    """Observation rules over one twin's datastreams, with the open alerts they keep."""

    def __init__(
        self,
        rules: Sequence[RuleConfig],
        *,
        datastreams: Sequence[DatastreamInfo],
        observations: ObservationStore,
        alerts: AlertStore,
        webhooks: Sequence[WebhookConfig] = (),
        window_check_s: float = 1.0,
    ) -> None:
        self.observations = observations
        self.alerts = alerts
        self.webhooks = list(webhooks)
        self.window_check_s = window_check_s
        self._open = alerts.open_alerts(subject_prefix="datastream:")
        self._newest: dict[int, Point] = {}
        self._dirty: dict[tuple[str, int], datetime] = {}
        self._checked: dict[tuple[str, int], float] = {}
        self.set_datastreams(datastreams)
        self.set_rules(rules)

    def set_rules(self, rules: Sequence[RuleConfig]) -> None:
        """Use these observation rules from now on (scenario rules are ignored here)."""
        self.rules = [rule for rule in rules if rule.watches_observations]
        self._targets = webhook_targets(self.rules, self.webhooks)
        self._index()

    def set_datastreams(self, datastreams: Sequence[DatastreamInfo]) -> None:
        """Use this list of datastreams (after new ones were created)."""
        self.datastreams = {info.id: info for info in datastreams}
        unseen = [ds for ds in self.datastreams if ds not in self._newest]
        if unseen:
            latest = self.observations.latest(unseen)
            for ds, moment, result in zip(
                latest["datastream_id"].tolist(),
                latest["phenomenon_time"].tolist(),
                latest["result"].tolist(),
                strict=True,
            ):
                self._newest[int(ds)] = (_moment(int(moment)), float(result))
        if hasattr(self, "rules"):
            self._index()

    def _index(self) -> None:
        self._by_datastream: dict[int, list[RuleConfig]] = {
            ds: [rule for rule in self.rules if watches(rule, info)] for ds, info in self.datastreams.items()
        }

    def newest(self, datastream_id: int) -> Point | None:
        """The newest observation the engine knows of a datastream (time, result; NaN for a null)."""
        return self._newest.get(datastream_id)

    # ---- judging ------------------------------------------------------------------------------------

    def observe(self, stored: Sequence[Reading], *, now: datetime) -> Outcome:
        """Judge the rules on observations just stored (in one batch); save and return the alert events."""
        outcome = Outcome()
        by_datastream: dict[int, list[Point]] = defaultdict(list)
        for reading in stored:
            by_datastream[reading.datastream_id].append((_moment(reading.phenomenon_time), reading.result))
        findings: list[Finding] = []
        for ds, points in by_datastream.items():
            before = self._newest.get(ds)
            fresh: list[Point] = []  # newer than everything that arrived before it, so in time order
            for point in points:  # in arrival order
                newest = fresh[-1] if fresh else before
                if newest is None or point[0] > newest[0]:
                    fresh.append(point)
                else:
                    outcome.out_of_order += 1
            if fresh:
                self._newest[ds] = fresh[-1]
            findings += self._point_findings(ds, before, fresh, now)
        findings += self._window_findings(now=time.monotonic(), force=False)
        outcome.events = self._apply(findings)
        return outcome

    def _point_findings(
        self, ds: int, before: Point | None, fresh: list[Point], now: datetime
    ) -> list[Finding]:
        subject = datastream_subject(str(ds))
        valued = [p for p in fresh if not math.isnan(p[1])]
        previous = before if before is not None and not math.isnan(before[1]) else None
        findings: list[Finding] = []
        for rule in self._by_datastream.get(ds, []):
            if rule.kind is RuleKind.THRESHOLD:
                findings += threshold_findings(rule, subject, valued)
            elif rule.kind is RuleKind.RATE_OF_CHANGE:
                findings += rate_findings(rule, subject, previous, valued)
            elif rule.kind is RuleKind.SILENCE and fresh:
                findings.append(silence_finding(rule, subject, fresh[-1][0], now))
            elif rule.kind in _WINDOW_KINDS and fresh:
                self._dirty[(rule.name, ds)] = fresh[-1][0]
        return findings

    def tick(self, *, now: datetime) -> Outcome:
        """Judge silence rules, and window rules whose datastreams got data since they were last judged."""
        findings = self._window_findings(now=time.monotonic(), force=False)
        for rule in self.rules:
            if rule.kind is not RuleKind.SILENCE:
                continue
            for ds, info in self.datastreams.items():
                if watches(rule, info):
                    newest = self._newest.get(ds)
                    findings.append(
                        silence_finding(rule, datastream_subject(str(ds)), newest[0] if newest else None, now)
                    )
        return Outcome(events=self._apply(findings))

    def judge_windows(self) -> Outcome:
        """Judge every pending window rule now (at shutdown, and in tests)."""
        return Outcome(events=self._apply(self._window_findings(now=time.monotonic(), force=True)))

    def _window_findings(self, *, now: float, force: bool) -> list[Finding]:
        findings = []
        rules = {rule.name: rule for rule in self.rules}
        for key, at in list(self._dirty.items()):
            rule = rules.get(key[0])
            if rule is None:
                del self._dirty[key]
                continue
            if not force and now - self._checked.get(key, -math.inf) < self.window_check_s:
                continue
            del self._dirty[key]
            self._checked[key] = now
            hours = self._hourly_means(rule, key[1], at)
            findings.append(window_finding(rule, datastream_subject(str(key[1])), hours, at))
        return findings

    def _hourly_means(self, rule: RuleConfig, ds: int, at: datetime) -> list[WindowMean]:
        start, end = period_bounds(at, rule.period or "year", rule.zone)
        frame = self.observations.aggregate(
            AggregateQuery(
                datastream_ids=(ds,),
                window=Window.HOUR,
                start=_ms(start),
                end=_ms(end),
                statistics=("mean",),
                timezone=rule.timezone or "UTC",
            )
        )
        return [
            WindowMean(_moment(int(start_ms)), float(mean), int(count))
            for start_ms, mean, count in zip(
                frame["window_start"].tolist(), frame["mean"].tolist(), frame["count"].tolist(), strict=True
            )
        ]

    # ---- alerts -------------------------------------------------------------------------------------

    def _apply(self, findings: Sequence[Finding]) -> list[tuple[Alert, AlertEvent]]:
        if not findings:
            return []
        severity = {rule.name: rule.severity for rule in self.rules}
        changes: list[tuple[Alert, AlertEvent | None]] = []
        for finding in findings:
            key = (finding.rule, finding.subject)
            ds = int(finding.subject.split(":", 1)[1])
            info = self.datastreams.get(ds)
            transition = step(
                self._open.get(key),
                finding,
                severity=severity.get(finding.rule, "warning"),
                datasets=(info.dataset,) if info else (),
            )
            if transition.alert is None:
                continue
            changes.append((transition.alert, transition.event))
            if transition.event is AlertEvent.CLOSED:
                self._open.pop(key, None)
            else:
                self._open[key] = transition.alert
        if not changes:
            return []
        saved = self.alerts.save(_coalesce(changes), targets=self._targets)
        for alert in saved:  # in order: an alert opened and closed in this call ends closed
            if alert.status == "open":
                self._open[(alert.rule, alert.subject)] = alert
            else:
                self._open.pop((alert.rule, alert.subject), None)
        events = [(a, e) for a, e in _coalesce(changes) if e is not None]
        by_key = {(a.rule, a.subject, a.opened_at, a.status): a for a in saved}
        return [(by_key.get((a.rule, a.subject, a.opened_at, a.status), a), e) for a, e in events]


def _coalesce(changes: list[tuple[Alert, AlertEvent | None]]) -> list[tuple[Alert, AlertEvent | None]]:
    """Keep every event, and of the plain updates (repeated firing) only the last per alert."""
    kept: list[tuple[Alert, AlertEvent | None]] = []
    seen: set[tuple[str, str, datetime]] = set()
    for alert, event in reversed(changes):
        key = (alert.rule, alert.subject, alert.opened_at)
        if event is None and key in seen:
            continue
        seen.add(key)
        kept.append((alert, event))
    return kept[::-1]
