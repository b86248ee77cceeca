"""The finding the alert tests feed to ``step``: rule ``no2_high`` on one NO2 datastream, limit 200."""

from __future__ import annotations

from datetime import UTC, datetime

from civictwin.live.triggers import Finding


def finding(firing: bool, minute: int, value: float) -> Finding:
    """``no2_high`` on ``datastream:no2-1`` at 10:``minute`` UTC on 2026-03-01, firing or clearing with
    ``value`` against the limit 200, that observation as its evidence."""
    return Finding(
        rule="no2_high",
        subject="datastream:no2-1",
        firing=firing,
        at=datetime(2026, 3, 1, 10, minute, tzinfo=UTC),
        value=value,
        limit=200.0,
        message=f"{value} vs 200",
        evidence={"observations": [{"time": f"10:{minute:02d}", "result": value}]},
    )
