"""Alerts: what a firing finding becomes, kept open while its condition persists and closed when it clears.

One rule on one subject has at most one open alert. The first firing finding opens it with that
finding's evidence; further firing findings only count and keep the newest evidence (no new alert, no
new delivery); the first clear finding closes it. :func:`step` is that state machine, pure; the
store (:class:`civictwin.store.alerts.AlertStore`) keeps the result and the deliveries it calls for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from civictwin.live.triggers import Finding
from civictwin.store.alerts import Alert, AlertEvent, AlertStatus, iso_utc


@dataclass(frozen=True)
class Transition:
    """The outcome of one finding: the alert to keep (None: nothing to keep) and the event, if any."""

    alert: Alert | None
    event: AlertEvent | None


def step(
    open_alert: Alert | None, finding: Finding, *, severity: str, datasets: tuple[str, ...] = ()
) -> Transition:
    """Apply ``finding`` to the rule's open alert on its subject (None when there is none).

    * no open alert, firing: open one (event ``opened``);
    * open alert, firing: count it and keep the newest evidence (no event: de-duplicated);
    * open alert, clear: close it (event ``closed``);
    * no open alert, clear: nothing.

    A finding older than the open alert's newest firing one (an out-of-order observation) neither
    counts nor closes it: the condition is judged on the newest evidence.
    """
    if open_alert is not None and finding.at < open_alert.last_fired_at:
        return Transition(open_alert, None)
    if finding.firing:
        if open_alert is None:
            return Transition(
                Alert(
                    rule=finding.rule,
                    subject=finding.subject,
                    severity=severity,
                    status=AlertStatus.OPEN,
                    opened_at=finding.at,
                    last_fired_at=finding.at,
                    message=finding.message,
                    value=finding.value,
                    limit=finding.limit,
                    evidence=finding.evidence,
                    last_evidence=finding.evidence,
                    datasets=datasets,
                ),
                AlertEvent.OPENED,
            )
        updated = replace(
            open_alert, fired=open_alert.fired + 1, last_fired_at=finding.at, last_evidence=finding.evidence
        )
        return Transition(updated, None)
    if open_alert is None:
        return Transition(None, None)
    closed = replace(
        open_alert,
        status=AlertStatus.CLOSED,
        closed_at=finding.at,
        closing={"at": iso_utc(finding.at), "value": finding.value, "message": finding.message},
    )
    return Transition(closed, AlertEvent.CLOSED)
