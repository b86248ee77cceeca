"""The calibration the runs used and the plausibility of their demand, as the report shows them: from a
hand-made calibration record and hand-made seeds (no simulation)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from civictwin.engines.traffic.fitreport import (
    UNCALIBRATED,
    calibration_section,
    calibration_summary,
    missing_summary,
)
from civictwin.engines.traffic.plausibility import DemandFacts, demand_caveats, demand_warnings
from civictwin.engines.traffic.report import traffic_report
from civictwin.runs import SeedKpi, SeedRecord


def _fit(share: float, rmse: float, r2: float | None, hours: int = 4) -> dict[str, Any]:
    return {"site_hours": hours, "share_geh_ok": share, "rmse": rmse, "r2": r2, "meets_dmrb": share >= 0.85}


# GEH after: A/0 400 vs 400 → 0; B/0 100 vs 200 → √(2·100²/300) = 8.16; C/0 900 vs 880 → √(2·20²/1780)
# = 0.67; D/0 50 vs 10 → √(2·40²/60) = 7.30: 2 of 4 site-hours below 5.
RECORD: dict[str, Any] = {
    "id": "calibration-002",
    "statement": "After calibration GEH < 5 holds at 50% of 4 count site-hours (25% before).",
    "converged": True,
    "fit_before": _fit(0.25, 312.4, -0.52),
    "fit_after": _fit(0.5, 51.0, 0.93),
    "kfold": {"held_back_before": _fit(0.0, 400.0, None, 2), "held_back_after": _fit(0.5, 80.6, 0.41, 2)},
    "scatter": [
        {"site": "A", "edge_id": "a", "hour": 0, "observed": 400.0, "before": 100.0, "after": 400.0},
        {"site": "B", "edge_id": "b", "hour": 0, "observed": 100.0, "before": 300.0, "after": 200.0},
        {"site": "C", "edge_id": "c", "hour": 0, "observed": 900.0, "before": 400.0, "after": 880.0},
        {"site": "D", "edge_id": "d", "hour": 0, "observed": 50.0, "before": 20.0, "after": 10.0},
    ],
}


def test_report_section_states_the_fit_of_a_hand_made_record() -> None:
    section = calibration_section(calibration_summary(RECORD))
    assert section.heading == "Calibration to traffic counts"
    record, verdict, used, held, misfits = section.paragraphs
    assert record.startswith("Calibration record calibration-002: After calibration GEH < 5 holds at 50%")
    assert verdict == (
        "The model does not meet the DMRB / TAG M3.1 criterion (GEH < 5 at 85% of count site-hours or "
        "more): 50% of 4 site-hours."
    )
    assert used == (
        "Sites used by the calibration: 4 site-hours; GEH < 5 at 25% before, 50% after; "
        "RMSE 312 → 51 vehicles/hour; R² -0.52 → 0.93."
    )
    assert held == (
        "Sites held back from it (k-fold): 2 site-hours; GEH < 5 at 0% before, 50% after; "
        "RMSE 400 → 81 vehicles/hour; R² undefined → 0.41."
    )
    assert misfits == (
        "Where it does not fit (GEH ≥ 5 after calibration): B hour 0 (observed 100, simulated 200, GEH 8.2); "
        "D hour 0 (observed 50, simulated 10, GEH 7.3)."
    )
    (png,) = section.figures
    assert png.startswith(b"\x89PNG")


def test_a_record_that_meets_the_criterion_says_so_and_one_without_folds_says_why() -> None:
    record = {
        **RECORD,
        "fit_after": _fit(0.9, 20.0, 0.99, 10),
        "kfold": {"folds": [], "note": "1 site(s): too few"},
    }
    section = calibration_section(calibration_summary({**record, "scatter": []}))
    assert section.paragraphs[1].startswith("The model meets the DMRB / TAG M3.1 criterion")
    assert section.paragraphs[1].endswith(": 90% of 10 site-hours.")
    assert section.paragraphs[3] == "No held-back figure: 1 site(s): too few."
    assert section.figures == ()


def test_without_a_record_the_demand_is_called_uncalibrated() -> None:
    section = calibration_section(None)
    assert section.paragraphs == (UNCALIBRATED,)
    assert UNCALIBRATED.startswith("The demand is uncalibrated")
    (gone,) = calibration_section(missing_summary("calibration-007")).paragraphs
    assert gone.startswith("The runs used calibration record calibration-007, which the twin no longer holds")


# 12,000 residents × 2.7 trips/day × 10 % in the peak hour = 3,240 person trips per hour expected.
DENSE = DemandFacts(
    residents=12_000,
    jobs=8_000,
    expected_person_trips=3_240,
    person_trips=3_240,
    car_trips=40,
    gateways=False,
)


def test_a_dense_district_with_a_few_dozen_car_trips_is_implausible() -> None:
    assert demand_warnings(DENSE) == [
        "Implausible demand: 12,000 residents yield only 40 simulated car trips per hour (3.3 per 1,000 "
        "residents; below 10 is a broken input, not a result)."
    ]


def test_a_plausible_demand_gives_no_warning() -> None:
    plausible = DemandFacts(
        residents=12_000,
        jobs=8_000,
        expected_person_trips=3_240,
        person_trips=3_240,
        car_trips=600,
        gateways=False,
    )  # 50 car trips per 1,000 residents
    assert demand_warnings(plausible) == []
    small = DemandFacts(
        residents=900, jobs=0, expected_person_trips=243, person_trips=10, car_trips=2, gateways=False
    )
    assert demand_warnings(small) == []  # too few residents to judge


@pytest.mark.parametrize("gateways", [False, True])
def test_too_few_person_trips_is_implausible_and_a_jobs_heavy_area_without_gateways_incomplete(
    gateways: bool,
) -> None:
    # 500 < 25 % of 3,240 = 810; 200 car trips = 16.7 per 1,000 residents (plausible);
    # 30,000 jobs > 2 × 12,000 residents
    facts = DemandFacts(
        residents=12_000,
        jobs=30_000,
        expected_person_trips=3_240,
        person_trips=500,
        car_trips=200,
        gateways=gateways,
    )
    (warning,) = demand_warnings(facts)
    assert warning.startswith(
        "Implausible demand: 500 person trips per hour where the residents imply about 3,240 (less than 25%"
    )
    caveats = demand_caveats(facts)
    if gateways:
        assert caveats == []
    else:
        (caveat,) = caveats
        assert caveat.startswith("Incomplete demand: 30,000 jobs for 12,000 residents")
    assert demand_caveats(DENSE) == []  # 8,000 jobs for 12,000 residents


def _seed(scenario: str, details: dict[str, Any]) -> SeedRecord:
    split = {"car": 0.3, "pt": 0.3, "bike": 0.1, "walk": 0.3}
    return SeedRecord(
        engine="traffic",
        engine_version="1",
        scenario=scenario,
        seed=1,
        fingerprint="fp",
        kpis=[SeedKpi(name="teleports", unit="vehicles", value=0.0, label="Teleported vehicles")],
        details={"modal_split": split, "car_share_by_iteration": [0.3], **details},
        wall_s=1.0,
    )


def test_the_traffic_report_carries_the_calibration_and_the_warnings_of_its_seeds() -> None:
    warning = demand_warnings(DENSE)
    details = {"calibration": calibration_summary(RECORD), "implausible_demand": warning}
    report = traffic_report({"baseline": [_seed("baseline", details)], "plan": [_seed("plan", details)]})
    assert report.warnings == (f"'baseline': {warning[0]}", f"'plan': {warning[0]}")
    calibration = report.sections[1]
    assert calibration.paragraphs[1].startswith("The model does not meet")
    uncalibrated = traffic_report(
        {"baseline": [_seed("baseline", {"calibration": None, "implausible_demand": []})]}
    )
    assert uncalibrated.sections[1].paragraphs == (UNCALIBRATED,)
    assert uncalibrated.warnings == ()
    assert "euros at Finnish prices" in uncalibrated.method


def test_demand_facts_of_a_run_per_hour_of_its_window() -> None:
    import pandas as pd

    from civictwin.engines.traffic.engine import demand_facts
    from civictwin.engines.traffic.params import TrafficParams

    zones = pd.DataFrame({"population": [1_000.0, 2_000.0, None], "jobs_proxy_m2": [3_500.0, 0.0, 350.0]})
    prepared = SimpleNamespace(
        params=TrafficParams(demand_window_s=7200.0), zones=zones, gateways=None, presence=None, first_hour=8
    )
    outcome = SimpleNamespace(kpis={"trips": 100.0, "person_trips": 500.0})
    facts = demand_facts(prepared, outcome)  # type: ignore[arg-type]
    # 3,000 residents × 2.7 × 0.10 = 810 person trips in the first hour (8:00), the profile's 9:00
    # weight over its 8:00 one (13,080.4 / 17,913.9) in the second: 700.72 an hour on average;
    # 500 person trips and 100 cars in 2 h; 3,850 m² ÷ 35 m² = 110 jobs
    expected = 810.0 * (17_913.9 + 13_080.4) / (2 * 17_913.9)
    assert facts == DemandFacts(
        residents=3_000.0, jobs=110.0, expected_person_trips=pytest.approx(expected), person_trips=250.0,
        car_trips=50.0, gateways=False,
    )  # fmt: skip
    assert expected == pytest.approx(700.72, abs=0.01)
    bare = SimpleNamespace(
        params=TrafficParams(),
        zones=pd.DataFrame({"zone_id": ["a"]}),
        gateways=None,
        presence=None,
        first_hour=8,
    )
    assert demand_facts(bare, outcome).residents == 0.0  # type: ignore[arg-type]
