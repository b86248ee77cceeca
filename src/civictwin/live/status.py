"""A sensor's state for people: the limits its rules draw, and its latest value judged against them.

The viewer colours each sensor by :func:`sensor_status` and draws :func:`limits_for` on its chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from civictwin.config_live import RuleConfig, RuleKind
from civictwin.live.engine import watches
from civictwin.store.observations import DatastreamInfo

_BASIS = {
    RuleKind.THRESHOLD: "value",
    RuleKind.EXCEEDANCES: "mean",
    RuleKind.PERIOD_MEAN: "mean",
}


class SensorStatus(StrEnum):
    """How a sensor stands now, from worst to best."""

    ALERT = "alert"
    """A rule has an open alert on it."""
    BEYOND = "beyond"
    """Its latest value is beyond a limit, with no alert open (yet)."""
    OK = "ok"
    """Its latest value is within every limit."""
    NO_DATA = "no_data"
    """It has no observation with a value."""


@dataclass(frozen=True)
class Limit:
    """A horizontal line on a sensor's chart: a rule's limit and what it applies to."""

    rule: str
    severity: str
    above: float | None
    below: float | None
    applies_to: str
    """``value`` (each observation) or e.g. ``hour mean`` / ``year mean`` (window rules)."""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def broken_by(self, value: float) -> bool:
        """Whether a value is beyond this limit."""
        return (self.above is not None and value > self.above) or (
            self.below is not None and value < self.below
        )


def limits_for(rules: Sequence[RuleConfig], info: DatastreamInfo) -> list[Limit]:
    """The limits of the rules watching a datastream (threshold values, window-mean limits)."""
    found = []
    for rule in rules:
        if rule.kind not in _BASIS or not watches(rule, info):
            continue
        applies = "value"
        if rule.kind is RuleKind.EXCEEDANCES:
            applies = f"{rule.window} mean"
        elif rule.kind is RuleKind.PERIOD_MEAN:
            applies = f"{rule.period} mean"
        found.append(Limit(rule.name, rule.severity, rule.above, rule.below, applies))
    return found


def sensor_status(latest: float | None, limits: Sequence[Limit], *, open_alerts: int) -> SensorStatus:
    """The status of a sensor from its latest value, its limits and its open alerts."""
    if open_alerts:
        return SensorStatus.ALERT
    if latest is None or math.isnan(latest):
        return SensorStatus.NO_DATA
    if any(limit.broken_by(latest) for limit in limits):
        return SensorStatus.BEYOND
    return SensorStatus.OK
