"""End to end on the Helsinki demo twin: `civictwin compare baseline close_main_street` with 2 seeds.

Checks that the closed street carries no cars in any seed, that the plan shifts trips away from the
car, and that the comparison files follow the contract the API reads. Small demand keeps it short.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from civictwin.api.scenarios import ComparisonStore
from civictwin.engines.traffic.inputs import load_twin
from civictwin.runs import ComparisonRecord
from civictwin.scenarios.library import BUILTIN_SCENARIOS

pytestmark = pytest.mark.e2e

COMPARISON = "e2e-closure"


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo twin with a finished comparison of baseline vs close_main_street."""
    import civictwin.cli.scenario  # noqa: F401  (registers the scenario commands)
    from civictwin.cli import main
    from civictwin.demo import build_demo

    workdir = tmp_path_factory.mktemp("demo")
    built = build_demo(workdir)
    twin_dir = built if isinstance(built, Path) else workdir
    main(
        [
            "compare",
            "baseline",
            "close_main_street",
            "--twin",
            str(twin_dir),
            "--seeds",
            "2",
            "--workers",
            "2",
            "--iterations",
            "2",
            "--scale",
            "0.25",
            "--id",
            COMPARISON,
        ]
    )
    return twin_dir


def test_closed_street_carries_no_cars(compared: Path) -> None:
    edges = load_twin(compared).edges
    closed = set(edges.loc[(edges["name"] == "Mannerheimintie") & edges["car"], "edge_id"])
    assert len(closed) > 20
    run_dir = compared / "runs" / COMPARISON
    for seed in (1, 2):
        plan = pd.read_parquet(
            run_dir / "seeds" / "traffic" / "close_main_street" / f"seed_{seed}" / "edges.parquet"
        )
        base = pd.read_parquet(run_dir / "seeds" / "traffic" / "baseline" / f"seed_{seed}" / "edges.parquet")
        assert closed <= set(plan["edge_id"])  # still in the network, with no car permission
        assert plan.loc[plan["edge_id"].isin(closed), "flow"].sum() == 0
        assert base.loc[base["edge_id"].isin(closed), "flow"].sum() > 0
    mean = gpd.read_parquet(run_dir / "tables" / "traffic.edges" / "mean_close_main_street.parquet")
    assert mean.crs.to_epsg() == 4326
    assert mean.loc[mean["edge_id"].isin(closed), "flow"].sum() == 0


def test_comparison_files_follow_the_contract(compared: Path) -> None:
    run_dir = compared / "runs" / COMPARISON
    assert (run_dir / "complete").is_file()
    comparison = ComparisonRecord.model_validate_json((run_dir / "comparison.json").read_bytes())
    assert (comparison.baseline, comparison.plans) == ("baseline", ["close_main_street"])
    rows = {(k.kpi, k.scenario): k for k in comparison.kpis}
    assert rows[("trips", "baseline")].n == 2
    assert rows[("share_car", "close_main_street")].mean < rows[("share_car", "baseline")].mean
    diff = next(d for d in comparison.differences if d.kpi == "share_car")
    assert diff.mean is not None and diff.mean < 0 and diff.words
    assert comparison.summary[0].startswith("Each scenario was simulated 2 times")

    edges = ComparisonStore(compared).table_differences(COMPARISON, "traffic.edges", "close_main_street")
    assert {"edge_id", "flow_diff", "speed_ms_diff", "co2_g_diff", "noise_db_diff", "flow_real"} <= set(
        edges.columns
    )
    closed = set(load_twin(compared).edges.query("name == 'Mannerheimintie' and car")["edge_id"])
    assert (edges.loc[edges["edge_id"].isin(closed), "flow_plan"] == 0).all()
    zones = ComparisonStore(compared).table_differences(COMPARISON, "traffic.zones", "close_main_street")
    assert {"vehicle_km_diff", "vehicle_km_ci_low", "vehicle_km_real"} <= set(zones.columns)

    manifest = json.loads((run_dir / "manifest.json").read_text())
    scenario_file = BUILTIN_SCENARIOS / "close_main_street.toml"
    plan_entry = next(s for s in manifest["scenarios"] if s["name"] == "close_main_street")
    assert plan_entry["sha256"] == hashlib.sha256(scenario_file.read_bytes()).hexdigest()
    assert manifest["seeds"] == [1, 2]
    traffic = manifest["engines"]["traffic"]
    assert traffic["parameters"]["iterations"] == 2 and traffic["parameters"]["demand"]["scale"] == 0.25
    assert "SUMO" in traffic["version"] and traffic["package"].startswith("civictwin ")
    assert "network_edges" in manifest["twin"]["data"]
    assert len(manifest["runs"]) == 4 and all(r["details"]["sumo_version"] for r in manifest["runs"])
    report = (run_dir / "report.html").read_text()
    assert report.count("data:image/png;base64,") >= 3 and "close_main_street" in report
