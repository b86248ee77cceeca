"""Synthetic truth: counts from a known demand, a wrong prior, calibration recovers the counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from traffic_tiny_twin import PARAMS, tiny_inputs, with_stubs

from civictwin.engines.base import TwinContext
from civictwin.engines.traffic.calibration import (
    Factors,
    _simulate,
    calibrate,
    latest_record,
    save_record,
    with_calibration,
)
from civictwin.engines.traffic.demand import DemandError, DemandParams, OdMatrix
from civictwin.engines.traffic.engine import TrafficEngine
from civictwin.engines.traffic.fit import geh
from civictwin.engines.traffic.gateways import GatewaySettings
from civictwin.engines.traffic.inputs import TwinInputs
from civictwin.engines.traffic.prepare import prepare_scenario, with_od_factors
from civictwin.engines.traffic.sites import CalibrationSettings, CountSites
from civictwin.errors import EngineError
from civictwin.scenarios.spec import Scenario

TRUTH = {
    ("sw", "ne"): 4.0,
    ("sw", "se"): 3.0,
    ("se", "nw"): 3.0,
    ("nw", "sw"): 0.25,
    ("ne", "sw"): 3.0,
    ("nw", "ne"): 3.0,
}
"""The true demand: the gravity matrix (the prior) with these pairs scaled."""


def inputs_zones(inputs: TwinInputs) -> tuple[str, ...]:
    """The twin's zone ids in their order (the order of every OD matrix)."""
    return tuple(str(z) for z in inputs.zones["zone_id"])


def test_od_factors_scale_exactly_their_cells() -> None:
    od = OdMatrix(("a", "b"), np.array([[1.0, 2.0], [3.0, 4.0]]))
    scaled = with_od_factors(od, [("a", "b", 2.5), ("b", "a", 0.0)])
    assert scaled.trips.tolist() == [[1.0, 5.0], [0.0, 4.0]]
    with pytest.raises(DemandError, match="zone\\(s\\) c the twin does not have"):
        with_od_factors(od, [("a", "c", 2.0)])


def test_calibration_recovers_counts_of_a_known_demand_and_improves_held_back_sites(tmp_path: Path) -> None:
    inputs = tiny_inputs(tmp_path)
    counted = tuple(sorted(inputs.edges["edge_id"].astype(str)))[::3]  # 16 of the 48 directed edges
    params = PARAMS.model_copy(
        update={
            "iterations": 1,
            "demand": DemandParams(scale=4.0, distance="crowfly"),
            "count_edges": counted,
            "calibration": CalibrationSettings(folds=2, max_iterations=1, seed=3, start_hour=8),
        }
    )
    prepared = prepare_scenario(inputs, Scenario.baseline_scenario(), tmp_path / "truth_net", params)
    truth = _simulate(prepared, Factors(od=TRUTH), 7, tmp_path / "truth").counts
    first_hour = truth[truth["hour"] == 0]
    hourly = pd.DataFrame(
        {
            "site": "synthetic/" + first_hour["edge_id"],
            "edge_id": first_hour["edge_id"],
            "hour": 8,  # the run's hour 0 is 08:00
            "observed": first_hour["vehicles"].astype(float),
        }
    )
    sites = CountSites(sites=pd.DataFrame({"site": hourly["site"], "status": "used"}), hourly=hourly)

    record = calibrate(inputs, sites, params, tmp_path / "calibration")

    before, after = record["fit_before"], record["fit_after"]
    assert (before["site_hours"], after["site_hours"]) == (16, 16)
    assert before["share_geh_ok"] < 0.85 and not before["meets_dmrb"]  # the prior is wrong
    assert after["share_geh_ok"] >= 0.85 and after["meets_dmrb"]  # DMRB: GEH < 5 at ≥ 85 %
    assert after["rmse"] < before["rmse"]
    held_before, held_after = record["kfold"]["held_back_before"], record["kfold"]["held_back_after"]
    assert held_before["site_hours"] == held_after["site_hours"] == 16  # every site held back once
    assert held_after["share_geh_ok"] > held_before["share_geh_ok"]  # sites it never saw improve too
    assert held_after["rmse"] < held_before["rmse"]
    assert len(record["kfold"]["folds"]) == 2
    factors = {(o, d): f for o, d, f in record["od_factors"]}
    assert (
        factors[("sw", "ne")] > 1.5
    )  # the pair the truth scales most grows (16 counts cannot identify all 16 pairs)
    assert record["simulation_runs"] == 4  # the prior, then one update each for all sites and 2 folds
    assert record["shares_by_run"][0] == before["share_geh_ok"]
    assert "meets the DMRB / TAG M3.1 criterion of 85%" in record["statement"]
    assert len(record["scatter"]) == 16 and {"observed", "before", "after"} <= set(record["scatter"][0])

    # the record is versioned in the twin and every later run of the engine uses it
    twin_dir = tmp_path / "twin"
    assert save_record(twin_dir, record).name == "calibration-001.json"
    assert save_record(twin_dir, record).name == "calibration-002.json"
    latest = latest_record(twin_dir)
    assert latest is not None and latest["id"] == "calibration-002" and latest["version"] == 2
    calibrated = with_calibration(PARAMS, twin_dir)
    assert calibrated.calibration_record == "calibration-002"
    assert dict(((o, d), f) for o, d, f in calibrated.od_factors) == pytest.approx(factors, abs=1e-6)
    assert calibrated.count_edges == counted
    # the base day later runs pivot on: the loop's held shares, one per mode summing to 1 per pair
    base = calibrated.base_modes
    assert base is not None and base.zones == tuple(record["base_modes"]["zones"]) == inputs_zones(inputs)
    assert np.allclose(sum(base.shares[m] for m in ("car", "pt", "bike", "walk")), 1.0)
    assert "base_modes" not in calibrated.model_dump()  # named by calibration_record, not dumped
    engine = TrafficEngine()
    assert engine.parameters(TwinContext(twin_dir=twin_dir))["calibration_record"] == "calibration-002"


def test_no_usable_site_is_an_error(tmp_path: Path) -> None:
    empty = pd.DataFrame(columns=["site", "edge_id", "hour", "observed"])
    sites = CountSites(sites=pd.DataFrame({"site": [], "status": []}), hourly=empty)
    with pytest.raises(EngineError, match="no usable count site"):
        calibrate(tiny_inputs(tmp_path), sites, PARAMS, tmp_path / "c")


def test_calibration_recovers_a_known_gateway_inflow_from_counts_inside_the_area(tmp_path: Path) -> None:
    inputs = tiny_inputs(tmp_path)
    edges, nodes = with_stubs(inputs.edges, inputs.nodes)
    inputs = type(inputs)(**{**inputs.__dict__, "edges": edges, "nodes": nodes})
    # counted: every edge leaving node 5, where the west gateway's road (901) joins the grid, and a few
    # more inside; none on the gateway road itself, so its flow is not given by a count
    leaving_5 = edges.loc[(edges["from_node"] == 5) & (edges["to_node"] != 901), "edge_id"].astype(str)
    counted = tuple(sorted({*leaving_5, *sorted(inputs.edges["edge_id"].astype(str))[::6]}))
    params = PARAMS.model_copy(
        update={
            "iterations": 1,
            "count_edges": counted,
            "gateways": GatewaySettings(enabled=True, inbound_vph_per_lane=100, outbound_vph_per_lane=50),
            "calibration": CalibrationSettings(folds=2, max_iterations=1, seed=3, start_hour=8),
        }
    )
    prepared = prepare_scenario(inputs, Scenario.baseline_scenario(), tmp_path / "truth_net", params)
    assert prepared.gateways is not None
    # 300 veh/h enter at 901, not 100: every cell of its row three times the prior
    truth = {("in:901", end): 3.0 for end in prepared.gateways.od.zones if not end.startswith("in:")}
    counts = _simulate(prepared, Factors(gateways=truth), 7, tmp_path / "truth").counts
    first_hour = counts[counts["hour"] == 0]
    hourly = pd.DataFrame(
        {
            "site": "synthetic/" + first_hour["edge_id"],
            "edge_id": first_hour["edge_id"],
            "hour": 8,
            "observed": first_hour["vehicles"].astype(float),
        }
    )
    sites = CountSites(
        sites=pd.DataFrame(
            {
                "site": hourly["site"],
                "edge_id": hourly["edge_id"],
                "heading": None,
                "status": "used",
                "reasons": "",
            }
        ),
        hourly=hourly,
    )

    record = calibrate(inputs, sites, params, tmp_path / "calibration")

    fitted = {f["node"]: f for f in record["gateway_flows"]}
    inflow = fitted["901"]["inbound_vph"][0] + fitted["901"]["through_vph"][0]
    assert float(geh(inflow, 300.0)) < 5.0  # the true inflow recovered within GEH < 5 (prior: 100)
    assert float(geh(100.0, 300.0)) > 5.0
    assert fitted["901"]["inbound_source"] == "stated default, fitted to the counts"
    assert record["fit_after"]["rmse"] < record["fit_before"]["rmse"]
    assert record["parameters"]["gateway_prior"][0]["inbound_vph"] == [70.0]  # 100 × (1 − 0.3 through)
    assert "gateway flows" in record["method"] and record["gateway_flags"] == []
    assert {g["node"]: g["inbound"] for g in record["inputs"]["gateway_sources"]} == {
        f.node: f.inbound_source for f in prepared.gateways.flows
    }
    # the unknowns are the gateway matrix's cells: the record keeps each fitted cell's factor
    assert {(start, end) for start, end, _ in record["gateway_factors"]} <= {
        (start, end) for start in prepared.gateways.od.zones for end in prepared.gateways.od.zones
    }
    # later runs apply the fitted cells to the same prior, giving the fitted flows
    twin_dir = tmp_path / "twin"
    save_record(twin_dir, record)
    later = with_calibration(PARAMS.model_copy(update={"gateways": params.gateways}), twin_dir)
    assert later.gateway_factors == tuple((s, e, f) for s, e, f in record["gateway_factors"])
    again = prepare_scenario(inputs, Scenario.baseline_scenario(), tmp_path / "later_net", later)
    assert again.gateways is not None
    assert {f.node: f.inbound_vph for f in again.gateways.flows}["901"] == pytest.approx(
        tuple(fitted["901"]["inbound_vph"])
    )
