"""Comparison tables, files and manifest from hand-made per-seed results (no simulation needed)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from scipy import stats

from civictwin.api.scenarios import Comparison as ApiComparison
from civictwin.api.scenarios import ComparisonStore
from civictwin.compare import compare, write_comparison
from civictwin.compare.manifest import build_manifest
from civictwin.compare.report import render_report
from civictwin.engines.traffic.pipeline import ScenarioRun
from civictwin.engines.traffic.synthetic import grid_network
from civictwin.scenarios.spec import Scenario, parse_scenario

EDGES, _ = grid_network(2, 2, 100.0)  # 4 streets, 8 edges: 100_0/-100_0, 101_0, 200_0, 201_0
# one zone covering the whole little grid, one far away
_MINX, _MINY, _MAXX, _MAXY = EDGES.total_bounds
ZONES = gpd.GeoDataFrame(
    {"zone_id": ["all", "far"]},
    geometry=[
        shapely.box(_MINX - 10, _MINY - 10, _MAXX + 10, _MAXY + 10),
        shapely.box(_MAXX + 5000, _MAXY + 5000, _MAXX + 5100, _MAXY + 5100),
    ],
    crs=EDGES.crs,
)


def run(scenario: str, seed: int, travel_time: float, car_share: float, flow_100: float) -> ScenarioRun:
    edges = pd.DataFrame(
        {
            "edge_id": ["100_0", "-100_0", "101_0"],
            "flow": [flow_100, 5.0, 10.0],
            "speed_ms": [8.0, 9.0, math.nan if flow_100 == 0 else 10.0],
            "co2_g": [2.0 * flow_100, 10.0, 20.0],
            "noise_db": [60.0, 50.0, 55.0],
        }
    )
    shares = {"car": car_share, "pt": 0.3, "bike": 0.1, "walk": 0.6 - car_share}
    kpis = {
        "mean_travel_time_s": travel_time,
        "co2_kg": 1.0 + seed,
        "teleports": 0.0,
        "person_trips": 100.0,
        **{f"share_{m}": v for m, v in shares.items()},
    }
    return ScenarioRun(scenario, seed, kpis, shares, [car_share], edges, 1.0, 0.5, "fp", "SUMO 1.x")


BASE = [run("baseline", s, t, 0.3, f) for s, t, f in ((1, 100.0, 10.0), (2, 110.0, 20.0), (3, 120.0, 30.0))]
PLAN = [run("close_x", s, t, 0.2, 0.0) for s, t in ((1, 150.0), (2, 160.0), (3, 170.0))]
SAME = [run("zone_30", s, t, 0.3, 20.0) for s, t in ((1, 105.0), (2, 115.0), (3, 110.0))]


@pytest.fixture
def comparison():  # type: ignore[no-untyped-def]
    return compare(
        BASE,
        {"close_x": PLAN, "zone_30": SAME},
        comparison_id="demo-1",
        edge_geometry=EDGES,
        zones=ZONES,
        created="2026-11-22T01:00:00+00:00",
    )


def test_kpi_means_and_t_intervals(comparison) -> None:  # type: ignore[no-untyped-def]
    row = comparison.kpi("mean_travel_time_s", "baseline")
    half = stats.t.ppf(0.975, 2) * 10.0 / math.sqrt(3)  # sd 10 over 3 seeds: ±24.84 s
    assert (row.mean, row.n, row.unit) == (110.0, 3, "s")
    assert row.ci_low == pytest.approx(110 - half) and row.ci_high == pytest.approx(110 + half)
    assert half == pytest.approx(24.84, abs=0.01)
    assert comparison.kpi("share_car", "close_x").unit == "share"


def test_differences_with_welch_intervals_and_words(comparison) -> None:  # type: ignore[no-untyped-def]
    diff = comparison.difference("mean_travel_time_s", "close_x")
    # equal variances (100) and sizes (3): se = sqrt(200/3), Welch dof = 4
    half = stats.t.ppf(0.975, 4) * math.sqrt(200 / 3)
    assert diff.mean == pytest.approx(50.0)
    assert diff.ci_low == pytest.approx(50 - half) and diff.ci_high == pytest.approx(50 + half)
    assert diff.distinguishable and "up 45%" in diff.words
    noise = comparison.difference("mean_travel_time_s", "zone_30")
    assert not noise.distinguishable and "within run-to-run noise" in noise.words
    assert "'close_x' compared with 'baseline': Mean car travel time: up 45%" in comparison.summary[1]
    assert comparison.summary[2] == (
        "'close_x' compared with 'baseline': Car share of trips: down 33% (95% CI -33% to -33%)."
    )
    assert (
        comparison.summary[3] == "'close_x': no detectable change, within run-to-run noise, in CO2 emissions."
    )
    assert comparison.summary[4].startswith(
        "'zone_30': none of the main indicators differs from 'baseline' by more than run-to-run noise with 3 seeds "
        "(mean car travel time, car share of trips, CO2 emissions)"
    )
    assert comparison.summary[0].startswith("Each scenario was simulated 3 times")


def test_modal_split_and_edge_layers(comparison) -> None:  # type: ignore[no-untyped-def]
    split = comparison.modal_split.set_index(["scenario", "mode"])["share"]
    assert split[("close_x", "car")] == pytest.approx(0.2)
    assert split[("baseline", "walk")] == pytest.approx(0.3)
    base = comparison.edges["baseline"].set_index("edge_id")
    assert base.crs.to_epsg() == 4326
    assert base.loc["100_0", "flow"] == pytest.approx(20.0)  # mean of 10, 20, 30
    assert base.loc["100_0", "co2_g"] == pytest.approx(40.0)
    diff = comparison.edge_diffs["close_x"].set_index("edge_id")
    assert diff.loc["100_0", "flow_diff"] == pytest.approx(-20.0)
    assert diff.loc["-100_0", "flow_diff"] == 0.0
    assert math.isnan(diff.loc["101_0", "speed_ms_plan"])  # no traffic measured: no speed
    assert diff.loc["100_0", "name"] == "Row 0 Street"


def test_zone_totals_sum_flow_times_length(comparison) -> None:  # type: ignore[no-untyped-def]
    zones = comparison.zones["baseline"].set_index("zone_id")
    lengths = EDGES.set_index("edge_id")["length_m"]
    # baseline mean flows: 100_0 → 20, -100_0 → 5, 101_0 → 10; CO2 means 40 + 10 + 20 g
    expected_km = (20 * lengths["100_0"] + 5 * lengths["-100_0"] + 10 * lengths["101_0"]) / 1000
    assert zones.loc["all", "vehicle_km"] == pytest.approx(expected_km)
    assert zones.loc["all", "co2_kg"] == pytest.approx(0.070)
    assert zones.loc["far", "vehicle_km"] == 0.0 and math.isnan(zones.loc["far", "noise_db"])


def test_zone_differences_have_their_own_intervals(comparison) -> None:  # type: ignore[no-untyped-def]
    length = EDGES.set_index("edge_id")["length_m"]
    assert length["100_0"] == length["-100_0"] == length["101_0"] == pytest.approx(100.0)
    # zone "all", vehicle-km per seed: baseline (f + 5 + 10) × 0.1 for f = 10, 20, 30 → 2.5, 3.5, 4.5;
    # close_x (f = 0) → 1.5 every seed. Welch: se = √(1/3), 2 degrees of freedom.
    zones = comparison.zone_diffs["close_x"].set_index("zone_id")
    half = stats.t.ppf(0.975, 2) * math.sqrt(1 / 3)
    assert (zones.loc["all", "vehicle_km_base"], zones.loc["all", "vehicle_km_plan"]) == pytest.approx(
        (3.5, 1.5)
    )
    assert zones.loc["all", "vehicle_km_diff"] == pytest.approx(-2.0)
    assert zones.loc["all", "vehicle_km_ci_low"] == pytest.approx(-2.0 - half)  # -4.48 to 0.48
    assert zones.loc["all", "vehicle_km_ci_high"] == pytest.approx(-2.0 + half)
    assert not zones.loc["all", "vehicle_km_real"]  # three seeds vary too much for this zone
    assert zones.loc["all", "co2_kg_diff"] == pytest.approx(-0.04)  # (2f + 30) g: 70 → 30 g on average
    assert zones.loc["far", "vehicle_km_diff"] == 0.0 and not zones.loc["far", "vehicle_km_real"]

    steady = [run("baseline", s, 100.0, 0.3, f) for s, f in ((1, 10.0), (2, 11.0), (3, 12.0))]
    tight = compare(steady, {"close_x": PLAN}, comparison_id="c", edge_geometry=EDGES, zones=ZONES)
    zone = tight.zone_diffs["close_x"].set_index("zone_id").loc["all"]
    half = stats.t.ppf(0.975, 2) * math.sqrt(0.01 / 3)  # 2.5, 2.6, 2.7 vs 1.5: -1.1 ± 0.25
    assert zone["vehicle_km_diff"] == pytest.approx(-1.1)
    assert (zone["vehicle_km_ci_low"], zone["vehicle_km_ci_high"]) == pytest.approx(
        (-1.1 - half, -1.1 + half)
    )
    assert zone["vehicle_km_real"]
    page = render_report(tight, scenarios=[], parameters={}, manifest={"parameters": {}})
    assert "1 of 2 zones change their car traffic beyond noise, 1 their CO2." in page
    assert "<tr><td>all</td><td>2.60</td><td>1.50</td><td>-1.10<br>" in page


def test_written_files_follow_the_api_contract(comparison, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    twin_dir = tmp_path / "twin"
    directory = twin_dir / "runs" / "demo-1"
    scenario = parse_scenario(
        {
            "name": "close_x",
            "description": "Close X.",
            "interventions": [{"type": "close_streets", "streets": ["Row 0 Street"], "modes": ["car"]}],
        },
        origin="x.toml",
    )
    manifest = build_manifest(
        comparison_id="demo-1",
        created=comparison.created,
        twin_dir=str(twin_dir),
        catalog={
            "roads": {
                "rows": 10,
                "issued": "2026-11-21",
                "source": {"name": "osm", "path": "a.pbf", "sha256": "ab" * 32},
            },
            "zones": {"rows": 4, "issued": "2026-11-21", "inputs": ["buildings_3d"]},
        },
        scenarios=[Scenario.baseline_scenario(), scenario],
        seeds=[1, 2, 3],
        parameters={"iterations": 3},
        runs=[{"scenario": "baseline", "seed": 1}],
        sumo_version="Eclipse SUMO 1.x",
        command=["civictwin", "compare"],
    )
    report = write_comparison(comparison, directory, manifest=manifest, scenarios=[scenario])
    names = sorted(p.name for p in directory.iterdir())
    assert names == [
        "comparison.json",
        "complete",
        "edge_diff_close_x.parquet",
        "edge_diff_zone_30.parquet",
        "edges_baseline.parquet",
        "edges_close_x.parquet",
        "edges_zone_30.parquet",
        "manifest.json",
        "report.html",
        "zone_diff_close_x.parquet",
        "zone_diff_zone_30.parquet",
        "zones_baseline.parquet",
        "zones_close_x.parquet",
        "zones_zone_30.parquet",
    ]
    document = json.loads((directory / "comparison.json").read_text())
    parsed = ApiComparison.model_validate(document)
    assert parsed.plans == ["close_x", "zone_30"] and parsed.baseline == "baseline"
    assert {"kpi", "unit", "scenario", "mean", "ci_low", "ci_high", "n"} <= set(document["kpis"][0])
    assert {"kpi", "plan", "mean", "ci_low", "ci_high", "distinguishable", "words"} <= set(
        document["differences"][0]
    )
    # the API lists it as complete and serves its edges in WGS84
    store = ComparisonStore(twin_dir)
    assert [c.id for c in store.all_comparisons()] == ["demo-1"]
    edges = store.edge_differences("demo-1", "close_x")
    assert edges.crs.to_epsg() == 4326 and "flow_diff" in edges.columns
    plain = gpd.read_parquet(directory / "edges_baseline.parquet")
    assert list(plain.columns) == ["edge_id", "name", "flow", "speed_ms", "co2_g", "noise_db", "geometry"]
    saved = json.loads((directory / "manifest.json").read_text())
    assert saved["twin"]["data"]["roads"]["sha256"] == "ab" * 32
    assert saved["twin"]["data"]["zones"]["derived_from"] == ["buildings_3d"]
    assert saved["scenarios"][1]["interventions"][0]["streets"] == ["Row 0 Street"]
    assert saved["seeds"] == [1, 2, 3]
    assert {"civictwin", "python", "duckdb", "sumo", "numpy"} <= set(saved["software"])
    page = report.read_text()
    assert page.count("data:image/png;base64,") >= 4  # differences, modal split, baseline map, 2 plan maps
    assert not re.search(r"(src|href)=\"https?://", page)  # self-contained
    assert "within noise" in page and "Close X." in page and "Assumptions and parameters" in page
    assert "0 of 2 zones change their car traffic beyond noise" in page  # see the zone test below
    zone_file = gpd.read_parquet(directory / "zone_diff_close_x.parquet")
    assert zone_file.crs.to_epsg() == 4326 and list(zone_file["zone_id"]) == ["all", "far"]


def test_rewriting_removes_the_marker_first(comparison, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    directory = tmp_path / "runs" / "c"
    write_comparison(comparison, directory, manifest={"parameters": {}})
    assert (directory / "complete").read_text().startswith("2026-11-22")
    (directory / "report.html").unlink()
    (directory / "report.html").mkdir()  # the report cannot be replaced: writing fails half-way
    with pytest.raises(OSError):
        write_comparison(comparison, directory, manifest={"parameters": {}})
    assert not (directory / "complete").exists()  # the earlier complete comparison is no longer marked
