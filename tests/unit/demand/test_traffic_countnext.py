"""Where to count next: the variance a count removes from a plan KPI difference, against hand computation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from traffic_tiny_twin import CATALOG, PARAMS, tiny_inputs, with_stubs

from civictwin.engines.traffic.calibration import Factors
from civictwin.engines.traffic.countnext import (
    count_design,
    kpi_by_unknown,
    kpi_variance,
    latest_ranking,
    per_vehicle_cost,
    plan_design,
    plan_runs,
    posterior_covariance,
    rank_sites,
    save_ranking,
    sequence_sites,
    variance_reduction,
)
from civictwin.engines.traffic.fitreport import calibration_section, calibration_summary
from civictwin.engines.traffic.gateways import GatewaySettings
from civictwin.engines.traffic.simulate import SeedOutcome
from civictwin.engines.traffic.sites import CalibrationSettings
from civictwin.errors import EngineError
from civictwin.scenarios.spec import Scenario, parse_scenario


def test_variance_reduction_of_two_unknowns_is_the_hand_computed_rank_one_update() -> None:
    # two unknowns with prior variances 1/100 and 1/25 (Poisson form 1/T for 100 and 25 car trips)
    prior = np.array([0.01, 0.04])
    sensitivity = np.array([50.0, 20.0])  # kg CO2 of plan B − plan A per unit of each factor
    covariance = posterior_covariance(prior, np.zeros((0, 2)), np.zeros(0))
    assert covariance == pytest.approx(np.diag(prior))
    assert kpi_variance(covariance, sensitivity) == pytest.approx(41.0)  # 50² × 0.01 + 20² × 0.04
    # a count seeing all 100 + 25 trips, Poisson variance 125: (50 + 20)² / (125 + 100 + 25) = 19.6
    both = variance_reduction(covariance, sensitivity, np.array([[100.0, 25.0]]), np.array([125.0]))
    assert both == pytest.approx(19.6)
    # a count seeing only the second unknown's 25 trips: (20)² / (25 + 25) = 8
    second = variance_reduction(covariance, sensitivity, np.array([[0.0, 25.0]]), np.array([25.0]))
    assert second == pytest.approx(8.0)
    assert variance_reduction(covariance, sensitivity, np.zeros((1, 2)), np.array([1.0])) == 0.0
    # once that count exists, the covariance holds it: precision 25 + 25²/25 = 50 on the second unknown
    counted = posterior_covariance(prior, np.array([[0.0, 25.0]]), np.array([25.0]))
    assert counted == pytest.approx(np.diag([0.01, 0.02]))
    assert kpi_variance(counted, sensitivity) == pytest.approx(41.0 - 8.0)


def _hand_network() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Passages and counts on four edges: ``e1`` carries the 10 cars of pair a→b, ``e2`` the 20 of
    c→d, ``e3`` only 5 event cars (no calibrated pair), ``e0`` is counted today and carries c→d."""
    rows = [("e1", "od a b")] * 10 + [("e2", "od c d")] * 20 + [("e0", "od c d")] * 20
    passages = pd.DataFrame(
        {
            "trip_id": [f"t{n}" for n in range(len(rows))],
            "edge_id": [e for e, _ in rows],
            "hour": 0,
            "unknown": [u for _, u in rows],
        }
    )
    counts = pd.DataFrame(
        {"edge_id": ["e0", "e1", "e2", "e3"], "hour": 0, "vehicles": [20.0, 10.0, 20.0, 5.0]}
    )
    return passages, counts


def test_the_edge_carrying_the_pair_the_kpi_depends_on_ranks_first_with_the_hand_computed_reduction() -> None:
    passages, counts = _hand_network()
    observed = pd.DataFrame({"edge_id": ["e0"], "hour": [0], "observed": [20.0]})
    design = count_design(
        passages=passages,
        counts=counts,
        observed=observed,
        prior_variance={"od a b": 0.1, "od c d": 0.05},  # 1 / T for 10 and 20 car trips
        sensitivity={"od a b": 5.0},  # only a→b's trips change the KPI between the plans
        hours=1,
    )
    assert design.unknowns == ("od a b", "od c d")
    assert design.counted.tolist() == [[0.0, 20.0]]  # e0 is counted today: no candidate
    assert sorted(design.candidates) == ["e1", "e2", "e3"]

    variance, ranked = rank_sites(design)

    assert variance == pytest.approx(2.5)  # 5² × 0.1: today's count on e0 says nothing about a→b
    assert ranked["edge_id"].tolist() == ["e1", "e2", "e3"]
    assert ranked["rank"].tolist() == [1, 2, 3]
    # e1: (5 × 0.1 × 10)² / (10 + 10² × 0.1) = 25 / 20
    assert ranked["reduction"].tolist() == pytest.approx([1.25, 0.0, 0.0])
    assert ranked["share_removed"].tolist() == pytest.approx([0.5, 0.0, 0.0])
    assert ranked["sd_after"].iloc[0] == pytest.approx(math.sqrt(1.25))
    assert ranked["predicted_vph"].tolist() == [10.0, 20.0, 0.0]


def test_a_second_counter_on_the_same_trips_is_worth_less_once_the_first_is_placed() -> None:
    passages, counts = _hand_network()
    # e4 carries the same 10 cars of a→b as e1 (the next edge of the same road)
    twin = passages[passages["edge_id"] == "e1"].assign(edge_id="e4")
    passages = pd.concat([passages, twin], ignore_index=True)
    counts = pd.concat([counts, pd.DataFrame({"edge_id": ["e4"], "hour": [0], "vehicles": [10.0]})])
    design = count_design(
        passages=passages,
        counts=counts,
        observed=pd.DataFrame({"edge_id": ["e0"], "hour": [0], "observed": [20.0]}),
        prior_variance={"od a b": 0.1, "od c d": 0.05},
        sensitivity={"od a b": 5.0},
        hours=1,
    )
    _, alone = rank_sites(design)
    assert alone.set_index("edge_id")["reduction"][["e1", "e4"]].tolist() == pytest.approx([1.25, 1.25])

    chosen = sequence_sites(design, count=2)

    assert chosen["edge_id"].tolist() == ["e1", "e4"]
    # after e1 the pair's variance is 1 / (10 + 10²/10) = 0.05: e4 removes (5·0.05·10)² / (10 + 100·0.05)
    assert chosen["reduction"].tolist() == pytest.approx([1.25, 6.25 / 15.0])
    # both counted: variance 25 / (10 + 10 + 10) of the KPI
    assert chosen["sd_after"].tolist() == pytest.approx([math.sqrt(1.25), math.sqrt(25.0 / 30.0)])


def test_per_vehicle_costs_and_their_sum_by_unknown() -> None:
    run_edges = pd.DataFrame(
        {"edge_id": ["e1", "e2"], "flow": [4.0, 0.0], "co2_g": [2000.0, 0.0], "speed_ms": [5.0, 0.0]}
    )
    network = pd.DataFrame({"edge_id": ["e1", "e2"], "length_m": [100.0, 50.0], "speed_kmh": [36.0, 36.0]})
    outcome = _outcome(run_edges)
    co2 = per_vehicle_cost(outcome, network, "co2_kg")
    assert co2.to_dict() == pytest.approx({"e1": 0.5, "e2": 0.0})  # 2 kg over 4 cars; none on e2
    delay = per_vehicle_cost(outcome, network, "total_delay_h")
    assert delay["e1"] == pytest.approx(10.0 / 3600.0)  # 100 m at 5 m/s (20 s) vs 10 m/s (10 s)
    assert per_vehicle_cost(outcome, network, "vehicle_km").to_dict() == pytest.approx(
        {"e1": 0.1, "e2": 0.05}
    )
    passages = pd.DataFrame({"edge_id": ["e1", "e1", "e2"], "unknown": ["od a b", "od c d", "od a b"]})
    assert kpi_by_unknown(passages, co2) == pytest.approx({"od a b": 0.5, "od c d": 0.5})
    with pytest.raises(EngineError, match="unknown KPI 'noise'"):
        per_vehicle_cost(outcome, network, "noise")


def _outcome(edges: pd.DataFrame) -> SeedOutcome:
    """A run outcome holding only its edge table."""
    empty = pd.DataFrame()
    return SeedOutcome("baseline", 1, {}, {}, [], edges, empty, empty, empty, 0.0, 0.0, "")


CLOSE_MAIN_AND_WEST_GATEWAY = parse_scenario(
    {
        "name": "close_main_and_west",
        "description": "Main Street and the west gateway's road closed to cars.",
        "interventions": [{"type": "close_streets", "streets": ["Main Street", "Stub 0"], "modes": ["car"]}],
    },
    CATALOG,
    origin="close_main_and_west.toml",
)


def test_a_closure_on_the_tiny_twin_ranks_candidates_by_the_co2_difference_they_would_narrow(
    tmp_path: Path,
) -> None:
    inputs = tiny_inputs(tmp_path)
    edges, nodes = with_stubs(inputs.edges, inputs.nodes)
    inputs = type(inputs)(**{**inputs.__dict__, "edges": edges, "nodes": nodes})
    gateways = GatewaySettings(enabled=True, inbound_vph_per_lane=100, outbound_vph_per_lane=50)
    params = PARAMS.model_copy(
        update={"iterations": 1, "gateways": gateways, "calibration": CalibrationSettings(seed=3)}
    )
    # the plan closes the west gateway, so its gateway trips are numbered over fewer gateways
    plans = (Scenario.baseline_scenario(), CLOSE_MAIN_AND_WEST_GATEWAY)
    baseline, plan_a, plan_b = plan_runs(inputs, params, plans, tmp_path)
    assert plan_a is baseline  # the baseline is simulated once
    counted = sorted(inputs.edges["edge_id"].astype(str))[::3][:4]
    counts = baseline.outcome.counts
    observed = counts[counts["edge_id"].isin(counted) & (counts["hour"] == 0)]
    observed = observed.rename(columns={"vehicles": "observed"})

    design = plan_design(
        baseline, plan_a, plan_b, observed, kpi="co2_kg", factors=Factors(), edges=inputs.edges, hours=1
    )
    variance, ranked = rank_sites(design)

    # CO2 is a sum over the edges of each edge's grams per vehicle: the linearisation at the runs'
    # own demand gives back the plans' CO2 difference
    real = plan_b.outcome.kpis["co2_kg"] - plan_a.outcome.kpis["co2_kg"]
    assert design.sensitivity.sum() == pytest.approx(real, rel=1e-6)
    assert {u.split()[0] for u in design.unknowns} == {"od", "gateway"}
    assert "gateway in:901 out:902" in design.unknowns  # a cell of the gateway matrix: through traffic
    assert not set(counted) & set(ranked["edge_id"])  # counted edges are no candidates
    assert variance > 0
    assert ranked["reduction"].is_monotonic_decreasing
    assert ((ranked["reduction"] >= 0) & (ranked["reduction"] <= variance)).all()
    assert ranked["share_removed"].iloc[0] > 0


def test_the_report_lists_the_best_sites_of_a_ranking_made_from_the_calibration_it_shows(
    tmp_path: Path,
) -> None:
    fit = {"site_hours": 2, "share_geh_ok": 0.5, "rmse": 10.0, "r2": 0.5, "meets_dmrb": False}
    record = {"id": "calibration-003", "statement": "…", "fit_before": fit, "fit_after": fit, "scatter": []}
    site = {"rank": 1, "edge_id": "e1", "street": "Main Street", "share_removed": 0.5, "sd_after": 1.118}
    ranking = {
        "calibration_record": "calibration-003",
        "kpi": "co2_kg",
        "unit": "kg",
        "plan_a": "baseline",
        "plan_b": "close_main",
        "difference": -0.66,
        "sd_now": 1.58,
        "counted_site_hours": 1,
        "sites": [site, {**site, "rank": 2, "edge_id": "e2", "street": "", "share_removed": 0.0}],
    }
    assert save_ranking(tmp_path, ranking).name == "where-next-001.json"
    assert save_ranking(tmp_path, ranking).name == "where-next-002.json"
    latest = latest_ranking(tmp_path)
    assert latest is not None and latest["id"] == "where-next-002"

    section = calibration_section(calibration_summary(record, latest))

    assert section.paragraphs[-1] == (
        "Where to count next (where-next-002): the difference in co2_kg between close_main and baseline "
        "(-0.66 kg) has a standard deviation of 1.58 kg from the uncertainty of the calibrated demand "
        "with today's 1 counted site-hours; a count at one of these directed edges would narrow it most "
        "(methods-countnext.md): 1. e1 (Main Street): 50% of the variance removed, standard deviation "
        "1.12 kg after; 2. e2: 0% of the variance removed, standard deviation 1.12 kg after."
    )
    # a ranking made from another calibration is not shown with this one
    other = calibration_summary({**record, "id": "calibration-004"}, latest)
    assert other["where_next"] is None
