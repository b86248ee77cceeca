"""Comparison tables, files, report and manifest from hand-made seeds of a made-up engine (no
simulation): KPIs with t intervals, Welch differences in words, per-key table differences with
their own intervals, shapes from the twin layer, and the files the API reads."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from scipy import stats

from civictwin.api.scenarios import ComparisonStore
from civictwin.compare import Comparison, compare, write_comparison
from civictwin.compare.layers import TwinLayers
from civictwin.compare.manifest import build_manifest
from civictwin.engines.base import TableSpec
from civictwin.engines.traffic.synthetic import grid_network
from civictwin.errors import EngineError
from civictwin.runs import ComparisonRecord, SeedKpi, SeedRecord, table_diff_file, table_mean_file
from civictwin.scenarios.spec import Scenario

EDGES, _ = grid_network(2, 2, 100.0)  # 4 streets, 8 edges: 100_0/-100_0, 101_0, 200_0, 201_0
_MINX, _MINY, _MAXX, _MAXY = EDGES.total_bounds
ZONES = gpd.GeoDataFrame(
    {"zone_id": ["all", "far"]},
    geometry=[
        shapely.box(_MINX - 10, _MINY - 10, _MAXX + 10, _MAXY + 10),
        shapely.box(_MAXX + 5000, _MAXY + 5000, _MAXX + 5100, _MAXY + 5100),
    ],
    crs=EDGES.crs,
)
LAYERS = TwinLayers(crs=str(EDGES.crs), frames={"network_edges": EDGES, "zones": ZONES})


@dataclass(frozen=True)
class Roads:
    """What compare needs of an engine: its name, version, tables and the layers it reads."""

    name: str = "roads"
    version: str = "1.0"
    tables: tuple[TableSpec, ...] = (
        TableSpec(
            "edges", ("edge_id",), "network_edges", (("flow", "vehicles"), ("speed_ms", "m/s")), "Streets"
        ),
        TableSpec("zones", ("zone_id",), "zones", (("vehicle_km", "km"),), "Zones"),
    )
    reads: tuple[str, ...] = ("network_edges", "zones")


def seed(folder: Path, scenario: str, number: int, travel: float, car: float, flow_100: float) -> SeedRecord:
    """One saved seed: three KPIs, an edge table and a zone table (vehicle-km = (f + 15) × 0.1)."""
    directory = folder / scenario / str(number)
    directory.mkdir(parents=True)
    pd.DataFrame(
        {
            "edge_id": ["100_0", "-100_0", "101_0"],
            "flow": [flow_100, 5.0, 10.0],
            "speed_ms": [8.0, 9.0, math.nan if flow_100 == 0 else 10.0],
        }
    ).to_parquet(directory / "edges.parquet")
    pd.DataFrame({"zone_id": ["all", "far"], "vehicle_km": [(flow_100 + 15.0) * 0.1, 0.0]}).to_parquet(
        directory / "zones.parquet"
    )
    kpis = [
        SeedKpi(name="mean_travel_time_s", unit="s", value=travel, label="Mean car travel time", better="lower", headline=True),
        SeedKpi(name="share_car", unit="share", value=car, label="Car share of trips", better="lower", headline=True),
        SeedKpi(name="co2_kg", unit="kg", value=1.0 + number, label="CO2 emissions", better="lower", headline=True),
        SeedKpi(name="teleports", unit="vehicles", value=0.0, label="Teleported vehicles"),
    ]  # fmt: skip
    return SeedRecord(
        engine="roads",
        engine_version="1.0",
        scenario=scenario,
        seed=number,
        fingerprint="fp",
        kpis=kpis,
        notes=["Made by hand."],
        tables=["edges", "zones"],
        wall_s=1.0,
        directory=directory,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[SeedRecord]]]:
    folder = tmp_path_factory.mktemp("seeds")
    return {
        "roads": {
            "baseline": [seed(folder, "baseline", s, t, 0.3, f) for s, t, f in ((1, 100.0, 10.0), (2, 110.0, 20.0), (3, 120.0, 30.0))],
            "close_x": [seed(folder, "close_x", s, t, 0.2, 0.0) for s, t in ((1, 150.0), (2, 160.0), (3, 170.0))],
            "zone_30": [seed(folder, "zone_30", s, t, 0.3, 20.0) for s, t in ((1, 105.0), (2, 115.0), (3, 110.0))],
        }
    }  # fmt: skip


@pytest.fixture(scope="module")
def comparison(runs: dict[str, dict[str, list[SeedRecord]]]) -> Comparison:
    return compare(
        runs,
        engines=[Roads()],  # type: ignore[list-item]
        comparison_id="demo-1",
        baseline="baseline",
        plans=["close_x", "zone_30"],
        layers=LAYERS,
        created="2026-11-22T01:00:00+00:00",
        question="Should street x close to cars?",
    )


def test_kpi_means_and_t_intervals(comparison: Comparison) -> None:
    row = comparison.record.kpi("mean_travel_time_s", "baseline")
    half = stats.t.ppf(0.975, 2) * 10.0 / math.sqrt(3)  # sd 10 over 3 seeds: ±24.84 s
    assert (row.mean, row.n, row.unit, row.engine, row.label) == (
        110.0,
        3,
        "s",
        "roads",
        "Mean car travel time",
    )
    assert row.ci_low == pytest.approx(110 - half) and row.ci_high == pytest.approx(110 + half)
    assert half == pytest.approx(24.84, abs=0.01)
    assert comparison.record.kpi("share_car", "close_x").unit == "share"
    assert [e.name for e in comparison.record.engines] == ["roads"] and comparison.record.sources == [
        "network_edges",
        "zones",
    ]


def test_differences_paired_by_seed_with_words(comparison: Comparison) -> None:
    record = comparison.record
    diff = record.difference("mean_travel_time_s", "close_x")
    # seeds 1-3: 100, 110, 120 against 150, 160, 170: every seed +50, so the paired interval has no width
    # (Welch's, ignoring the pairing, would be ±t(0.975, 4)·√(200/3) = ±22.7 s)
    assert diff.mean == pytest.approx(50.0)
    assert (diff.ci_low, diff.ci_high) == pytest.approx((50.0, 50.0))
    assert diff.distinguishable and diff.words.startswith("Mean car travel time: up 45%")
    assert diff.words.endswith(", a worsening.")
    noise = record.difference("mean_travel_time_s", "zone_30")
    # per seed: 105 − 100, 115 − 110, 110 − 120 = 5, 5, −10: mean 0, sd √75, half t(0.975, 2)·√75/√3
    half = stats.t.ppf(0.975, 2) * math.sqrt(75) / math.sqrt(3)
    assert (noise.mean, noise.ci_low, noise.ci_high) == pytest.approx((0.0, -half, half))
    assert not noise.distinguishable and "within run-to-run noise" in noise.words
    assert record.summary[0].startswith("Each scenario was simulated 3 times")
    assert record.summary[1].startswith("'close_x' compared with 'baseline': Mean car travel time: up 45%")
    assert record.summary[2] == (
        "'close_x' compared with 'baseline': Car share of trips: from 30.0% to 20.0%, down 10.0 points "
        "(95% CI -10.0 to -10.0 points), an improvement."
    )
    assert record.summary[3] == "'close_x': no detectable change, within run-to-run noise, in CO2 emissions."
    assert record.summary[4].startswith(
        "'zone_30': none of the main indicators differs from 'baseline' by more than run-to-run noise with 3 seeds "
        "(mean car travel time, car share of trips, CO2 emissions)"
    )
    assert "Teleported" not in " ".join(record.summary)  # not a headline KPI
    assert comparison.notes == ["roads: Made by hand."]


def test_table_means_and_per_key_differences_with_their_own_intervals(comparison: Comparison) -> None:
    base = comparison.means["roads.edges"]["baseline"].set_index("edge_id")
    assert base.crs.to_epsg() == 4326  # shapes from the twin layer, in WGS84
    assert base.loc["100_0", "flow"] == pytest.approx(20.0)  # mean of 10, 20, 30
    diff = comparison.diffs["roads.edges"]["close_x"].set_index("edge_id")
    assert diff.loc["100_0", "flow_diff"] == pytest.approx(-20.0)
    half = stats.t.ppf(0.975, 2) * 10.0 / math.sqrt(3)  # baseline sd 10, plan sd 0: Welch dof 2
    assert (diff.loc["100_0", "flow_ci_low"], diff.loc["100_0", "flow_ci_high"]) == pytest.approx(
        (-20 - half, -20 + half)
    )
    assert not diff.loc["100_0", "flow_real"]  # -44.8 to 4.8: within noise
    assert (diff.loc["-100_0", "flow_diff"], diff.loc["-100_0", "flow_real"]) == (0.0, False)
    assert math.isnan(diff.loc["101_0", "speed_ms_plan"]) and not diff.loc["101_0", "speed_ms_real"]
    assert diff.loc["101_0", "speed_ms_base"] == pytest.approx(10.0)
    assert diff.geometry.loc["100_0"].geom_type == "LineString"

    zones = comparison.diffs["roads.zones"]["close_x"].set_index("zone_id")
    # zone "all": baseline 2.5, 3.5, 4.5; plan 1.5 every seed: -2 ± t(2)·√(1/3)
    half = stats.t.ppf(0.975, 2) * math.sqrt(1 / 3)
    assert (zones.loc["all", "vehicle_km_base"], zones.loc["all", "vehicle_km_plan"]) == pytest.approx(
        (3.5, 1.5)
    )
    assert (zones.loc["all", "vehicle_km_ci_low"], zones.loc["all", "vehicle_km_ci_high"]) == pytest.approx(
        (-2.0 - half, -2.0 + half)
    )
    assert zones.loc["far", "vehicle_km_diff"] == 0.0 and not zones.loc["far", "vehicle_km_real"]


def test_steady_seeds_make_a_key_change_real(
    tmp_path: Path, runs: dict[str, dict[str, list[SeedRecord]]]
) -> None:
    steady = [seed(tmp_path, "baseline", s, 100.0, 0.3, f) for s, f in ((1, 10.0), (2, 11.0), (3, 12.0))]
    tight = compare(
        {"roads": {"baseline": steady, "close_x": runs["roads"]["close_x"]}},
        engines=[Roads()],  # type: ignore[list-item]
        comparison_id="c",
        baseline="baseline",
        plans=["close_x"],
        layers=LAYERS,
    )
    zone = tight.diffs["roads.zones"]["close_x"].set_index("zone_id").loc["all"]
    half = stats.t.ppf(0.975, 2) * math.sqrt(0.01 / 3)  # 2.5, 2.6, 2.7 vs 1.5: -1.1 ± 0.25
    assert zone["vehicle_km_diff"] == pytest.approx(-1.1)
    assert (zone["vehicle_km_ci_low"], zone["vehicle_km_ci_high"]) == pytest.approx(
        (-1.1 - half, -1.1 + half)
    )
    assert zone["vehicle_km_real"]


def test_two_engines_may_not_report_the_same_kpi(runs: dict[str, dict[str, list[SeedRecord]]]) -> None:
    doubled = {"roads": runs["roads"], "other": runs["roads"]}
    with pytest.raises(
        EngineError, match="engines 'roads' and 'other' both report the KPI 'mean_travel_time_s'"
    ):
        compare(
            doubled,
            engines=[Roads(), Roads(name="other")],  # type: ignore[list-item]
            comparison_id="c",
            baseline="baseline",
            plans=["close_x"],
            layers=TwinLayers(crs=None),
        )


def test_written_files_follow_the_runs_layout_and_the_api_contract(
    comparison: Comparison, tmp_path: Path
) -> None:
    twin_dir = tmp_path / "twin"
    directory = twin_dir / "runs" / "demo-1"
    scenario = Scenario(name="close_x", description="Close X.")
    manifest = build_manifest(
        comparison_id="demo-1",
        created=comparison.record.created,
        twin_dir=str(twin_dir),
        catalog={
            "roads": {"rows": 10, "issued": "2026-11-21", "source": {"name": "osm", "path": "a.pbf", "sha256": "ab" * 32}},
            "zones": {"rows": 4, "issued": "2026-11-21", "inputs": ["buildings_3d"]},
        },
        scenarios=[Scenario.baseline_scenario(), scenario],
        seeds=[1, 2, 3],
        engines={"roads": {"version": "1.0", "package": "roads 1.0", "parameters": {"iterations": 3}}},
        owners={},
        runs=[{"engine": "roads", "scenario": "baseline", "seed": 1}],
        command=["civictwin", "compare"],
    )  # fmt: skip
    report = write_comparison(comparison, directory, manifest=manifest, scenarios=[scenario])
    assert sorted(p.name for p in directory.iterdir()) == [
        "comparison.json", "complete", "manifest.json", "report.html", "report.it.html", "report.sk.html", "tables",
    ]  # fmt: skip
    assert sorted(p.name for p in (directory / "tables" / "roads.edges").iterdir()) == [
        "diff_close_x.parquet", "diff_zone_30.parquet", "mean_baseline.parquet", "mean_close_x.parquet", "mean_zone_30.parquet",
    ]  # fmt: skip
    document = ComparisonRecord.model_validate_json((directory / "comparison.json").read_bytes())
    assert document.question == "Should street x close to cars?"  # for the consultation page
    assert document.plans == ["close_x", "zone_30"] and document.table("roads.zones").layer == "zones"
    assert json.loads((directory / "comparison.json").read_text())["kpis"][0]["ci_low"] is not None
    # the API lists it as complete and serves its tables in WGS84
    store = ComparisonStore(twin_dir)
    assert [c.id for c in store.all_comparisons()] == ["demo-1"]
    edges = store.table_differences("demo-1", "roads.edges", "close_x")
    assert edges.crs.to_epsg() == 4326 and "flow_diff" in edges.columns
    assert gpd.read_parquet(table_mean_file(directory, "roads.zones", "baseline")).crs.to_epsg() == 4326
    assert list(gpd.read_parquet(table_diff_file(directory, "roads.zones", "close_x"))["zone_id"]) == [
        "all",
        "far",
    ]
    saved = json.loads((directory / "manifest.json").read_text())
    assert saved["twin"]["data"]["roads"]["sha256"] == "ab" * 32
    assert saved["twin"]["data"]["zones"]["derived_from"] == ["buildings_3d"]
    assert saved["engines"]["roads"]["parameters"] == {"iterations": 3} and saved["seeds"] == [1, 2, 3]
    assert {"civictwin", "python", "duckdb", "numpy"} <= set(saved["software"])
    page = report.read_text()
    # the difference figure, a baseline map per table, and a change map per table and plan
    assert page.count("data:image/png;base64,") == 1 + 2 + 4
    assert not re.search(r"(src|href)=\"https?://", page)  # self-contained
    assert "within noise" in page and "Close X." in page and "Assumptions and parameters" in page
    assert "Of 2 rows, beyond run-to-run noise: 0 change vehicle_km." in page
    assert "<td>iterations</td>" not in page and "<th>iterations</th><td>3</td>" in page
    # the same report in Slovak and Italian beside it, with the same figures and maps
    for code, heading in (("sk", "Hlavné ukazovatele"), ("it", "Indicatori principali")):
        translated = (directory / f"report.{code}.html").read_text(encoding="utf-8")
        assert f'<html lang="{code}">' in translated and f"<h2>{heading}</h2>" in translated
        assert translated.count("data:image/png;base64,") == 1 + 2 + 4
    assert "Z 2 riadkov nad rámec náhodného kolísania medzi behmi simulácie: 0 mení vehicle_km." in (
        directory / "report.sk.html"
    ).read_text(encoding="utf-8")


def test_rewriting_removes_the_marker_first(comparison: Comparison, tmp_path: Path) -> None:
    directory = tmp_path / "runs" / "c"
    write_comparison(comparison, directory, manifest={})
    assert (directory / "complete").read_text().startswith("2026-11-22")
    (directory / "report.html").unlink()
    (directory / "report.html").mkdir()  # the report cannot be replaced: writing fails half-way
    with pytest.raises(OSError):
        write_comparison(comparison, directory, manifest={})
    assert not (directory / "complete").exists()  # the earlier complete comparison is no longer marked


def test_an_engine_warning_comes_first_and_replaces_within_noise(comparison: Comparison) -> None:
    from civictwin.compare.report import render_report
    from civictwin.engines.base import EngineReport

    def page(reports: dict[str, EngineReport]) -> str:
        return render_report(
            comparison.record, scenarios=[], tables={}, baseline_tables={}, engine_reports=reports,
            parameters={}, manifest={},
        )  # fmt: skip

    warned = page({"roads": EngineReport(warnings=("Implausible demand: 40 car trips per hour.",))})
    assert warned.index("Warning: results rest on an implausible input") < warned.index("In short")
    assert "<li>roads: Implausible demand: 40 car trips per hour.</li>" in warned
    assert "<small>within noise</small>" not in warned
    # 4 KPIs × 2 plans, all of the warned engine: none says "within noise"
    assert warned.count("not assessed: implausible input, see the warning") == 2 * 4
    assert "reported as within noise. (But see the warning above: the input is implausible" in warned
    plain = page({})
    assert "implausible" not in plain and "<small>within noise</small>" in plain


def test_a_layerless_tables_shapes_come_from_every_scenario() -> None:
    """A new bus line exists in the plan only: its shape is still found for the maps."""
    import typing

    from civictwin.compare import own_shapes

    class Seed:
        def __init__(self, frame: pd.DataFrame) -> None:
            self.frame = frame

        def table(self, name: str) -> pd.DataFrame:
            return self.frame

    empty = pd.DataFrame({"line": pd.Series(dtype=str), "geometry": pd.Series(dtype=object)})
    plan = pd.DataFrame({"line": ["X1 (new)"], "geometry": [b"wkb"]})
    runs: typing.Any = {"baseline": [Seed(empty)], "new_line": [Seed(plan)]}
    shapes = own_shapes(runs, "bus_lines")
    assert shapes["line"].tolist() == ["X1 (new)"]
    assert shapes["geometry"].tolist() == [b"wkb"]
