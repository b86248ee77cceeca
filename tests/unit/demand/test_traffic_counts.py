"""The simulation counts vehicles hour by hour on the counting edges, exactly what passed them."""

from __future__ import annotations

from pathlib import Path

import pytest
from traffic_tiny_twin import CLOSURE, PARAMS, tiny_inputs

from civictwin.engines.traffic.engine import COUNTS, TrafficEngine
from civictwin.engines.traffic.prepare import prepare_scenario
from civictwin.engines.traffic.simulate import simulate_seed

COUNTED = ("102_1", "-102_1", "201_0", "no_such_edge")


def test_hourly_counts_add_up_to_the_edge_flow(tmp_path: Path) -> None:
    params = PARAMS.model_copy(update={"count_edges": COUNTED, "iterations": 1})
    prepared = prepare_scenario(tiny_inputs(tmp_path), CLOSURE.baseline_scenario(), tmp_path / "net", params)
    outcome = simulate_seed(prepared, 1, tmp_path / "sumo")
    counts = outcome.counts
    # 3600 s of demand + 1800 s of clearance = two counting hours; an edge the net lacks is not counted
    assert sorted(set(counts["edge_id"])) == ["-102_1", "102_1", "201_0"]
    assert sorted(set(counts["hour"])) == [0, 1]
    assert len(counts) == 6 and not counts.duplicated(["edge_id", "hour"]).any()
    per_edge = counts.groupby("edge_id")["vehicles"].sum()
    flow = outcome.edges.set_index("edge_id")["flow"]
    for edge in ("102_1", "-102_1", "201_0"):
        assert per_edge[edge] == pytest.approx(flow[edge])
    assert per_edge["102_1"] > 0
    assert COUNTS in TrafficEngine.tables and COUNTS.key == ("edge_id", "hour")
