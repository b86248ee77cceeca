"""Rules against hand-computed windows: thresholds, rates, silence, hourly/daily exceedances, period
means (with time zones and the daylight-saving change), and scenario rules over comparison rows."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from civictwin.config_live import RuleConfig
from civictwin.live.triggers import (
    check_comparison,
    daily_means,
    hourly_means,
    period_bounds,
    rate_findings,
    series_findings,
    silence_finding,
    threshold_findings,
)

BERLIN = ZoneInfo("Europe/Berlin")


def rule(**options: Any) -> RuleConfig:
    return RuleConfig.model_validate({"name": "r", **options})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_threshold_fires_per_point_in_time_order() -> None:
    points = [(at("2026-03-01T10:20:00Z"), 150.0), (at("2026-03-01T10:00:00Z"), 250.0)]
    findings = threshold_findings(rule(kind="threshold", above=200), "datastream:a", points)
    assert [(f.at, f.firing, f.value) for f in findings] == [
        (at("2026-03-01T10:00:00Z"), True, 250.0),
        (at("2026-03-01T10:20:00Z"), False, 150.0),
    ]
    assert findings[0].message == "250 at 2026-03-01T10:00:00Z is above 200"
    assert findings[0].evidence == {"observations": [{"time": "2026-03-01T10:00:00Z", "result": 250.0}]}
    below = threshold_findings(rule(kind="threshold", below=5), "s", [(at("2026-03-01T10:00:00Z"), 4.0)])
    assert below[0].firing and below[0].limit == 5.0


def test_rate_of_change_per_hour_between_consecutive_points() -> None:
    points = [(at("2026-03-01T10:30:00Z"), 160.0), (at("2026-03-01T11:30:00Z"), 170.0)]
    previous = (at("2026-03-01T10:00:00Z"), 100.0)
    findings = rate_findings(rule(kind="rate_of_change", per_hour=100), "s", previous, points)
    # (160 − 100) / 0.5 h = 120 per hour > 100: fires; (170 − 160) / 1 h = 10: clear.
    assert [(f.firing, f.value) for f in findings] == [(True, 120.0), (False, 10.0)]
    assert findings[0].evidence["observations"][0] == {"time": "2026-03-01T10:00:00Z", "result": 100.0}
    falling = rate_findings(
        rule(kind="rate_of_change", per_hour=100), "s", previous, [(at("2026-03-01T10:15:00Z"), 50.0)]
    )
    assert falling[0].firing and falling[0].value == -200.0  # |−50 / 0.25 h| = 200 per hour
    assert rate_findings(rule(kind="rate_of_change", per_hour=1), "s", None, points[:1]) == []


def test_silence_counts_minutes_since_the_newest_observation() -> None:
    silent = rule(kind="silence", minutes=15)
    finding = silence_finding(silent, "s", at("2026-03-01T10:00:00Z"), at("2026-03-01T10:20:00Z"))
    assert finding.firing and finding.value == 20.0
    assert not silence_finding(silent, "s", at("2026-03-01T10:10:00Z"), at("2026-03-01T10:20:00Z")).firing
    never = silence_finding(silent, "s", None, at("2026-03-01T10:20:00Z"))
    assert never.firing and never.value is None and never.message == "no observation at all"


def _hourly(start: str, values: list[float]) -> list[tuple[datetime, float]]:
    first = at(start)
    return [(first + timedelta(hours=i), v) for i, v in enumerate(values)]


def test_no2_hourly_limit_fires_on_the_nineteenth_exceedance_of_the_calendar_year() -> None:
    no2 = rule(kind="exceedances", window="hour", above=200, allowed=18)
    eighteen = _hourly("2026-01-05T00:00:00Z", [201.0] * 18 + [200.0, 150.0])
    last_year = [(at("2025-12-31T22:00:00Z"), 400.0)]  # another calendar year: not counted
    finding = series_findings(no2, "s", last_year + eighteen, now=at("2026-01-06T00:00:00Z"))[0]
    assert (finding.firing, finding.value, finding.limit) == (False, 18.0, 18.0)  # 200.0 is not above 200
    assert finding.evidence["windows_counted"] == 20
    assert finding.evidence["period"] == {"start": "2026-01-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"}
    # two observations in one hour: 190 and 230 average 210 (> 200), so the hour counts once.
    nineteenth = [(at("2026-02-01T08:10:00Z"), 190.0), (at("2026-02-01T08:50:00Z"), 230.0)]
    fired = series_findings(no2, "s", eighteen + nineteenth, now=at("2026-02-02T00:00:00Z"))[0]
    assert (fired.firing, fired.value) == (True, 19.0)
    assert fired.evidence["exceedances"][-1] == {"start": "2026-02-01T08:00:00Z", "mean": 210.0, "values": 2}
    assert fired.message == "19 hourly means above 200 in the year from 2026-01-01 (18 allowed)"


def test_the_calendar_year_follows_the_rule_time_zone() -> None:
    berlin = rule(kind="exceedances", window="hour", above=200, allowed=0, timezone="Europe/Berlin")
    # 23:30 UTC on 31 December is 00:30 on 1 January in Berlin: in the new year there, not in UTC.
    points = [(at("2025-12-31T23:30:00Z"), 300.0), (at("2026-01-01T01:00:00Z"), 10.0)]
    assert series_findings(berlin, "s", points, now=at("2026-01-01T02:00:00Z"))[0].value == 1.0
    utc = rule(kind="exceedances", window="hour", above=200, allowed=0)
    assert series_findings(utc, "s", points, now=at("2026-01-01T02:00:00Z"))[0].value == 0.0


def test_daily_means_are_means_of_hourly_means_and_need_min_values() -> None:
    pm10 = rule(kind="exceedances", window="day", above=50, allowed=1, period="month", min_values=2)
    days = (
        _hourly("2026-03-01T00:00:00Z", [40.0, 60.0])  # day mean 50: not above 50
        + _hourly("2026-03-02T00:00:00Z", [48.0, 56.0])  # 52: above
        + _hourly("2026-03-03T00:00:00Z", [100.0])  # one hourly value < min_values 2: not counted
    )
    finding = series_findings(pm10, "s", days, now=at("2026-03-04T00:00:00Z"))[0]
    assert (finding.firing, finding.value, finding.evidence["windows_counted"]) == (False, 1.0, 2)
    more = [*days, (at("2026-03-04T00:00:00Z"), 70.0), (at("2026-03-04T00:30:00Z"), 90.0)]  # one hour: 80
    assert not series_findings(pm10, "s", more, now=at("2026-03-05T00:00:00Z"))[0].firing  # 1 hourly mean
    more += [(at("2026-03-04T05:00:00Z"), 70.0)]  # hourly means 80 and 70: day mean 75
    fired = series_findings(pm10, "s", more, now=at("2026-03-05T00:00:00Z"))[0]
    assert (fired.firing, fired.value) == (True, 2.0)
    assert [e["mean"] for e in fired.evidence["exceedances"]] == [52.0, 75.0]


def test_period_mean_is_the_mean_of_hourly_means() -> None:
    annual = rule(kind="period_mean", period="year", above=40)
    # hour 1: 20 and 40 (mean 30); hour 2: 50; hour 3: 44 → (30 + 50 + 44) / 3 = 41.33 > 40
    points = [(at("2026-05-01T00:05:00Z"), 20.0), (at("2026-05-01T00:55:00Z"), 40.0)]
    points += _hourly("2026-05-01T01:00:00Z", [50.0, 44.0])
    finding = series_findings(annual, "s", points, now=at("2026-05-02T00:00:00Z"))[0]
    assert finding.firing and finding.value == pytest.approx(124 / 3)
    assert finding.evidence["hourly_means"] == 3
    strict = rule(kind="period_mean", period="year", above=40, min_values=4)
    assert not series_findings(strict, "s", points, now=at("2026-05-02T00:00:00Z"))[0].firing


def test_the_repeated_hour_at_the_end_of_summer_time_stays_two_hours() -> None:
    # 25 October 2026: Berlin turns clocks back from 03:00 CEST to 02:00 CET; 02:30 happens twice.
    points = [(at("2026-10-25T00:30:00Z"), 10.0), (at("2026-10-25T01:30:00Z"), 30.0)]
    hours = hourly_means(points, BERLIN)
    assert [(h.start, h.mean) for h in hours] == [
        (at("2026-10-25T00:00:00Z"), 10.0),
        (at("2026-10-25T01:00:00Z"), 30.0),
    ]
    assert daily_means(hours, BERLIN)[0].count == 2
    start, end = period_bounds(at("2026-10-25T12:00:00Z"), "day", BERLIN)
    assert (end - start) == timedelta(hours=25)


COMPARISON: dict[str, Any] = {
    "id": "cmp-1",
    "created": "2026-11-21T10:00:00Z",
    "baseline": "baseline",
    "plans": ["close_main", "zone30"],
    "kpis": [
        {"kpi": "co2_kg", "unit": "kg", "scenario": "baseline", "mean": 1731.0, "ci_low": 1700.0, "ci_high": 1762.0, "n": 5},
        {"kpi": "share_car", "unit": "share", "scenario": "baseline", "mean": 0.50, "ci_low": 0.48, "ci_high": 0.52, "n": 5},
        {"kpi": "share_car", "unit": "share", "scenario": "close_main", "mean": 0.42, "ci_low": 0.40, "ci_high": 0.44, "n": 5},
        {"kpi": "share_car", "unit": "share", "scenario": "zone30", "mean": 0.36, "ci_low": 0.33, "ci_high": 0.39, "n": 5},
    ],
    "differences": [
        {"kpi": "co2_kg", "plan": "close_main", "mean": 988.0, "ci_low": 870.0, "ci_high": 1106.0},
        {"kpi": "co2_kg", "plan": "zone30", "mean": -29.0, "ci_low": -90.0, "ci_high": 32.0},
        {"kpi": "mean_noise_db", "plan": "zone30", "mean": None, "ci_low": None, "ci_high": None},
    ],
}  # fmt: skip


def test_scenario_difference_needs_the_whole_interval_above_the_limit() -> None:
    co2 = rule(kind="scenario_difference", kpis=["co2_kg", "mean_noise_db"], by_more_than=900)
    findings = {f.subject: f for f in check_comparison([co2], COMPARISON)}
    assert set(findings) == {"scenario:close_main:co2_kg", "scenario:zone30:co2_kg"}  # no NaN row
    close = findings["scenario:close_main:co2_kg"]
    assert (close.firing, close.value) == (False, 870.0)  # mean 988 > 900, but 95% CI starts at 870
    assert close.at == at("2026-11-21T10:00:00Z")
    assert close.evidence["difference"]["unit"] == "kg" and close.evidence["comparison"] == "cmp-1"
    loose = rule(kind="scenario_difference", kpis=["co2_kg"], by_more_than=900, confident=False)
    assert [f.firing for f in check_comparison([loose], COMPARISON)] == [True, False]
    lower = rule(kind="scenario_difference", kpis=["co2_kg"], by_more_than=500)
    assert [f.firing for f in check_comparison([lower], COMPARISON)] == [True, False]


def test_car_share_above_the_plan_target() -> None:
    target = rule(kind="scenario_target", kpis=["share_car"], above=0.38)
    findings = check_comparison([target], COMPARISON)
    assert [(f.subject, f.firing, f.value) for f in findings] == [
        ("scenario:close_main:share_car", True, 0.40),  # whole interval 0.40–0.44 above 0.38
        ("scenario:zone30:share_car", False, 0.33),  # interval 0.33–0.39 reaches below
    ]  # the baseline is not a plan: not checked unless named
    assert "with 95% confidence" in findings[0].message
    named = rule(kind="scenario_target", kpis=["share_car"], above=0.38, scenarios=["baseline"])
    assert [f.subject for f in check_comparison([named], COMPARISON)] == ["scenario:baseline:share_car"]
    below = rule(kind="scenario_target", kpis=["share_car"], below=0.35, confident=False)
    assert [f.firing for f in check_comparison([below], COMPARISON)] == [False, False]
