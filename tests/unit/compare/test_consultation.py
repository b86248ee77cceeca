"""The consultation page's words: shares in points, intervals, noise, validation, near a point."""

from __future__ import annotations

import geopandas as gpd
import pytest
from shapely.geometry import LineString

from civictwin.compare.consultation import (
    changes_near,
    kpi_entries,
    number,
    share_change_words,
    signed,
    split_address,
    validation_status,
    value_text,
    within_noise,
)
from civictwin.runs import ComparisonRecord, DifferenceRow, KpiRow, TableColumn, TableRecord

LON0, LAT0 = 24.94, 60.17
DEG_LAT_M = 111_300.0
"""About a degree of latitude in metres at 60° N (WGS84: 111 412 m; the tests keep 10% margins)."""


def _kpi(kpi: str, unit: str, scenario: str, mean: float, low: float, high: float, **extra: object) -> KpiRow:
    return KpiRow.model_validate(
        {
            "kpi": kpi,
            "unit": unit,
            "scenario": scenario,
            "mean": mean,
            "ci_low": low,
            "ci_high": high,
            "n": 5,
            **extra,
        }
    )


def _diff(kpi: str, mean: float, low: float, high: float, real: bool, words: str = "") -> DifferenceRow:
    return DifferenceRow(
        kpi=kpi, plan="plan", mean=mean, ci_low=low, ci_high=high, distinguishable=real, words=words
    )


CAR_BASE = _kpi(
    "share_car", "share", "baseline", 0.186, 0.179, 0.193, label="Car share of trips", headline=True
)
CAR_PLAN = _kpi("share_car", "share", "plan", 0.162, 0.155, 0.169, label="Car share of trips", headline=True)


def test_a_share_changes_in_points_not_as_a_relative_change() -> None:
    words = share_change_words(
        "Car share of trips", CAR_BASE, CAR_PLAN, _diff("share_car", -0.024, -0.031, -0.017, True)
    )
    # 18.6% → 16.2%: 2.4 points fewer; interval −3.1 to −1.7 points (never "−13%", the relative change)
    assert (
        words
        == "Car share of trips: from 18.6% to 16.2% of trips, 2.4 points fewer (95% CI −3.1 to −1.7 points)."
    )


def test_a_share_within_noise_says_so_with_its_interval_in_points() -> None:
    plan = _kpi("share_pt", "%", "plan", 31.0, 29.0, 33.0)
    base = _kpi("share_pt", "%", "baseline", 30.5, 28.5, 32.5)
    words = share_change_words(
        "Public transport share", base, plan, _diff("share_pt", 0.5, -1.25, 2.25, False)
    )
    assert words == (
        "Public transport share: from 30.5% to 31.0%, 0.5 points more: within run-to-run noise "
        "(95% CI −1.2 to +2.2 points)."
    )  # round-half-even: −1.25 → −1.2, 2.25 → 2.2


def test_values_read_with_their_intervals() -> None:
    assert value_text(CAR_BASE) == "18.6% (17.9% to 19.3%)"
    assert (
        value_text(_kpi("mean_travel_time_s", "s", "baseline", 348.0, 320.7, 375.3)) == "348 s (321 to 375)"
    )
    assert [number(v) for v in (1731.0, 42.0, 0.125, -0.0001, None)] == ["1,731", "42.0", "0.12", "0", "–"]
    assert [signed(v) for v in (40.0, -80.0, 0.0)] == ["+40.0", "−80.0", "0"]


def test_kpi_entries_put_headlines_first_and_name_what_is_within_noise() -> None:
    record = ComparisonRecord(
        id="c",
        created="2026-12-01T00:00:00Z",
        baseline="baseline",
        plans=["plan"],
        kpis=[
            _kpi("co2_kg", "kg", "baseline", 1731.0, 1700.0, 1762.0),
            _kpi("co2_kg", "kg", "plan", 1702.0, 1650.0, 1754.0),
            CAR_BASE,
            CAR_PLAN,
        ],
        differences=[
            _diff("co2_kg", -29.0, -90.0, 32.0, False, "CO2: within run-to-run noise."),
            _diff("share_car", -0.024, -0.031, -0.017, True, "relative words the page must not use"),
        ],
        summary=[],
    )
    entries = kpi_entries(record)
    assert [e["kpi"] for e in entries] == ["share_car", "co2_kg"]
    assert entries[0]["changes"][0]["words"].startswith(
        "Car share of trips: from 18.6% to 16.2% of trips, 2.4 points"
    )
    assert entries[1]["label"] == "CO2"  # unlabelled: named from its id, unit suffix dropped
    assert [v["text"] for v in entries[1]["values"]] == [
        "1,731 kg (1,700 to 1,762)",
        "1,702 kg (1,650 to 1,754)",
    ]
    assert within_noise(record, entries) == [
        "'plan' compared with 'baseline': within run-to-run noise, so no change can be claimed, for CO2."
    ]


def test_validation_status_is_the_calibration_the_runs_carried() -> None:
    manifest = {
        "runs": [
            {"engine": "energy", "details": {}},
            {"engine": "traffic", "details": {"calibration": {
                "id": "calibration-002", "statement": "GEH < 5 at 88% of 40 site-hours.",
                "fit_after": {"meets_dmrb": True}, "held_back_note": "",
            }}},
        ]
    }  # fmt: skip
    assert validation_status(manifest) == {
        "id": "calibration-002",
        "statement": "GEH < 5 at 88% of 40 site-hours.",
        "meets_dmrb": True,
        "held_back_note": "",
    }
    assert validation_status({"runs": [{"details": {}}]}) is None


def _edge(lat_offset_m: float) -> LineString:
    lat = LAT0 + lat_offset_m / DEG_LAT_M
    return LineString([(LON0 - 0.001, lat), (LON0 + 0.001, lat)])


TABLE = TableRecord(
    id="traffic.edges", engine="traffic", name="edges", label="Street edges", key=["edge_id"],
    layer="network_edges", values=[TableColumn(column="vehicles", unit="vehicles")],
)  # fmt: skip


def test_changes_near_a_point_count_what_lies_there_and_name_the_largest() -> None:
    frame = gpd.GeoDataFrame(
        {
            "edge_id": ["e1", "e2", "e3", "e4"],
            "name": [None, "Mannerheimintie", "Kaivokatu", "Far street"],
            "vehicles_base": [100.0, 200.0, 50.0, 400.0],
            "vehicles_plan": [140.0, 120.0, 55.0, 200.0],
            "vehicles_diff": [40.0, -80.0, 5.0, -200.0],
            "vehicles_ci_low": [30.0, -95.0, -2.0, -220.0],
            "vehicles_ci_high": [50.0, -65.0, 12.0, -180.0],
            "vehicles_real": [True, True, False, True],
        },
        geometry=[_edge(0.0), _edge(110.0), _edge(-150.0), _edge(450.0)],  # metres north of the point
        crs="EPSG:4326",
    )
    near = changes_near(frame, TABLE, plan="plan", lon=LON0, lat=LAT0, radius_m=300.0)
    assert (near["nearby"], near["changed"]) == (3, 2)  # e4 lies 450 m away; e3 is within noise
    assert [i["key"] for i in near["items"]] == ["e2", "e1"]  # largest change first
    assert near["items"][0]["distance_m"] == pytest.approx(110, abs=2)
    assert near["sentence"] == (
        "3 within 300 m, of which 2 change beyond run-to-run noise. Largest changes: "
        "Mannerheimintie: 200 → 120 vehicles (−80.0); e1: 100 → 140 vehicles (+40.0)."
    )
    wider = changes_near(frame, TABLE, plan="plan", lon=LON0, lat=LAT0, radius_m=500.0)
    assert (wider["nearby"], wider["changed"], wider["items"][0]["name"]) == (4, 3, "Far street")
    nowhere = changes_near(frame, TABLE, plan="plan", lon=LON0 + 1, lat=LAT0, radius_m=300.0)
    assert nowhere["sentence"] == "none within 300 m of this place."


def test_addresses_split_into_street_and_number() -> None:
    assert split_address("Mannerheimintie 5") == ("Mannerheimintie", "5")
    assert split_address("  Pohjoisesplanadi 11-13, Helsinki") == ("Pohjoisesplanadi", "11-13")
    assert split_address("221B Baker Street") == ("Baker Street", "221B")
    assert split_address("Mannerheimintie") is None
    assert split_address("5") is None
