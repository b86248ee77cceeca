"""The equity view from hand-made seeds: zone values per income and age class, with Welch intervals."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from civictwin.compare import Comparison, compare, write_comparison
from civictwin.compare.equity import EQUITY_FILE, Grouping, groupings_of, zone_classes
from civictwin.compare.layers import TwinLayers
from civictwin.config import SociodemographicsSection
from civictwin.engines.base import TableSpec
from civictwin.runs import SeedKpi, SeedRecord

ZONES = gpd.GeoDataFrame(
    {
        "zone_id": ["z1", "z2", "z3", "z4"],
        "population": [100.0, 100.0, 200.0, 200.0],
        "stats_income": [10_000.0, 20_000.0, 30_000.0, 40_000.0],
        "stats_age65": [30.0, 10.0, 20.0, 100.0],
    },
    geometry=[shapely.box(i * 100, 0, i * 100 + 100, 100) for i in range(4)],
    crs="EPSG:3067",
)
INCOME = Grouping(column="stats_income", label="income", classes=2)
AGE = Grouping(column="stats_age65", label="age65", per_resident=True, classes=2)


@dataclass(frozen=True)
class Streets:
    """A made-up engine with one zone table: an amount (vehicle-km) and a level (noise)."""

    name: str = "streets"
    version: str = "1.0"
    tables: tuple[TableSpec, ...] = (
        TableSpec("zones", ("zone_id",), "zones", (("vehicle_km", "km"), ("noise_db", "dB(A)")), "Zones"),
    )
    reads: tuple[str, ...] = ("zones",)


def _seed(folder: Path, scenario: str, number: int) -> SeedRecord:
    """Baseline: vehicle-km 10+s, 20, 5, 5; plan: 5+s, 20, 6, 6. Noise 60/50/40/none, plan 57 in z1."""
    directory = folder / scenario / str(number)
    directory.mkdir(parents=True)
    plan = scenario == "plan"
    pd.DataFrame(
        {
            "zone_id": ["z1", "z2", "z3", "z4"],
            "vehicle_km": [
                (5.0 if plan else 10.0) + number,
                20.0,
                6.0 if plan else 5.0,
                6.0 if plan else 5.0,
            ],
            "noise_db": [57.0 if plan else 60.0, 50.0, 40.0, math.nan],
        }
    ).to_parquet(directory / "zones.parquet")
    kpi = SeedKpi(name="mean_travel_time_s", unit="s", value=100.0 + number, label="Mean travel time")
    return SeedRecord(
        engine="streets", engine_version="1.0", scenario=scenario, seed=number, fingerprint="x", kpis=[kpi],
        tables=["zones"], wall_s=0.1, directory=directory,
    )  # fmt: skip


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory) -> Comparison:
    folder = tmp_path_factory.mktemp("equity")
    runs = {"streets": {s: [_seed(folder, s, n) for n in (1, 2, 3)] for s in ("base", "plan")}}
    return compare(
        runs, engines=[Streets()], comparison_id="c", baseline="base", plans=["plan"],
        layers=TwinLayers(crs="EPSG:3067", frames={"zones": ZONES}), equity_by=[INCOME, AGE],
    )  # fmt: skip


def _row(comparison: Comparison, grouping: str, value: str, group_start: str):  # type: ignore[no-untyped-def]
    assert comparison.equity is not None
    return next(
        r for r in comparison.equity.rows
        if r.grouping == grouping and r.value == value and r.group.startswith(group_start)
    )  # fmt: skip


def test_zones_fall_into_quantile_classes() -> None:
    classes, names = zone_classes(ZONES, INCOME)
    assert names == ["1 of 2 (lowest): 10,000–25,000", "2 of 2 (highest): 25,000–40,000"]
    assert list(classes) == [names[0], names[0], names[1], names[1]]
    # a count is taken per resident: 0.3, 0.1, 0.1, 0.5 -> z2 and z3 below the median
    by_age, _ = zone_classes(ZONES, AGE)
    assert list(by_age.index[by_age == by_age["z2"]]) == ["z2", "z3"]


def test_amounts_are_summed_per_class_with_intervals_paired_by_seed(comparison: Comparison) -> None:
    low = _row(comparison, "income", "vehicle_km", "1 of 2")
    # class sums over seeds: baseline 31, 32, 33; plan 26, 27, 28: −5 in every seed, so the paired
    # interval has no width (Welch's, ignoring the pairing, would be ±t(0.975, 4)·√(2/3) = ±2.27)
    assert (low.zones, low.residents) == (2, 200.0)
    assert (low.base_mean, low.plan_mean, low.diff) == pytest.approx((32.0, 27.0, -5.0))
    assert (low.ci_low, low.ci_high) == pytest.approx((-5.0, -5.0))
    assert low.distinguishable
    high = _row(comparison, "income", "vehicle_km", "2 of 2")
    assert (high.base_mean, high.plan_mean, high.diff, high.residents) == pytest.approx(
        (10.0, 12.0, 2.0, 400.0)
    )


def test_levels_are_averaged_over_residents(comparison: Comparison) -> None:
    low = _row(comparison, "income", "noise_db", "1 of 2")
    # (100 · 60 + 100 · 50) / 200 = 55 -> (100 · 57 + 100 · 50) / 200 = 53.5
    assert (low.base_mean, low.plan_mean) == pytest.approx((55.0, 53.5))
    high = _row(comparison, "income", "noise_db", "2 of 2")
    assert (high.base_mean, high.diff, high.distinguishable) == (40.0, 0.0, False)  # z4 has no noise value
    older = _row(comparison, "age65", "vehicle_km", "2 of 2")  # z1 and z4
    assert older.base_mean == pytest.approx(12.0 + 5.0)  # z1: 10 + s, mean 12 over seeds 1-3; z4: 5


def test_network_wide_kpis_are_named_as_not_broken_down(comparison: Comparison, tmp_path: Path) -> None:
    assert comparison.equity is not None
    assert set(comparison.equity.not_broken_down) == {"mean_travel_time_s"}
    write_comparison(comparison, tmp_path, manifest={})
    saved = json.loads((tmp_path / EQUITY_FILE).read_text(encoding="utf-8"))
    assert len(saved["rows"]) == 2 * 2 * 2  # groupings × classes × values, one plan
    assert saved["groups"]["income"][0].startswith("1 of 2 (lowest)")
    report = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Who it changes for: zones by income or age group" in report
    assert "plan: by income" in report
    assert "vehicle_km (income 1 of 2 (lowest): 10,000–25,000): down 16% (95% CI -16% to -16%)." in report
    assert "are not: mean_travel_time_s." in report
    # the Slovak and Italian reports: the section's fixed words translated, numbers with decimal commas
    # (the lower-income class: −5 in every seed, a paired interval of no width)
    slovak = (tmp_path / "report.sk.html").read_text(encoding="utf-8")
    assert "<h2>Koho sa zmena týka: zóny podľa príjmovej alebo vekovej skupiny</h2>" in slovak
    assert "<h3>plan: podľa income</h3>" in slovak and "<th>obyvatelia</th>" in slovak
    assert "<td>-5 (-5 až -5) *</td>" in slovak and "<p>* interval nezahŕňa nulu.</p>" in slovak
    italian = (tmp_path / "report.it.html").read_text(encoding="utf-8")
    assert "<h3>plan: per income</h3>" in italian and "<td>-5 (da -5 a -5) *</td>" in italian


def test_groupings_follow_the_section() -> None:
    section = SociodemographicsSection(source="stats", intensive=["income"], equity_by=["income", "age65"])
    assert groupings_of(section) == [
        Grouping(column="stats_income", label="income", per_resident=False, classes=5),
        Grouping(column="stats_age65", label="age65", per_resident=True, classes=5),
    ]
    assert groupings_of(None) == []
