"""A scenario that combines interventions of two engines: each engine applies its own, both run over
the same seeds in one ensemble, and one comparison holds both engines' KPIs and tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from traffic_tiny_twin import PARAMS, tiny_inputs

from civictwin.compare import compare
from civictwin.compare.layers import TwinLayers
from civictwin.engines.base import TwinContext
from civictwin.engines.ensemble import fingerprint, run_ensemble
from civictwin.engines.registry import engines_for, intervention_catalog
from civictwin.engines.traffic.engine import TrafficEngine
from civictwin.scenarios.spec import Scenario, parse_scenario

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
MIXED = {
    "name": "shut_and_warm",
    "interventions": [
        {"type": "close_streets", "streets": ["Main Street"], "modes": ["car"]},
        {"type": "toy_nudge", "factor": 2.0},
    ],
}


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The toy engine from tests/plugins, importable here and in the worker processes."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    from civictwin_toy.engine import ToyEngine

    return ToyEngine()


def test_a_mixed_scenario_runs_both_engines_over_the_same_seeds(tmp_path: Path, toy: Any) -> None:
    traffic = TrafficEngine(inputs=tiny_inputs(tmp_path), params=PARAMS.model_copy(update={"iterations": 1}))
    catalog = intervention_catalog([traffic, toy])
    mixed = parse_scenario(MIXED, catalog, origin="mixed.toml")
    assert [catalog.owners[i.type] for i in mixed.interventions] == ["traffic", "toy"]
    baseline = Scenario.baseline_scenario()
    assert engines_for([baseline, mixed], catalog) == ["toy", "traffic"]
    assert engines_for([baseline], catalog, named=["toy"]) == ["toy"]

    ensemble = run_ensemble(
        TwinContext(tmp_path),
        [baseline, mixed],
        [traffic, toy],
        comparison_id="mixed",
        seeds=[1, 2],
        workers=2,
    )
    assert len(ensemble.computed) == 8  # 2 engines × 2 scenarios × 2 seeds
    # each engine applied only its own intervention
    edges = ensemble.runs["traffic"]["shut_and_warm"][0].table("edges")
    main = set(tiny_inputs(tmp_path).edges.query("name == 'Main Street'")["edge_id"])
    assert edges.loc[edges["edge_id"].isin(main), "flow"].sum() == 0
    for seed, run in zip((1, 2), ensemble.runs["toy"]["shut_and_warm"], strict=True):
        expected = (200.0 + np.random.default_rng(seed).normal(0.0, 5.0, 3)).sum() / 1000
        assert run.kpi("toy_heat_mwh") == pytest.approx(expected, rel=1e-12)

    result = compare(
        ensemble.runs,
        engines=ensemble.engines,
        comparison_id="mixed",
        baseline="baseline",
        plans=["shut_and_warm"],
        layers=TwinLayers(crs=None),
    )
    record = result.record
    assert [e.name for e in record.engines] == ["traffic", "toy"]
    assert {r.engine for r in record.kpis} == {"traffic", "toy"}
    warm = record.difference("toy_heat_mwh", "shut_and_warm")
    assert warm.mean == pytest.approx(0.3) and warm.distinguishable  # +100 kWh in each of 3 zones, same draws
    assert sorted(t.id for t in record.tables) == [
        "toy.cells", "toy.zones", "traffic.bus_lines", "traffic.counts", "traffic.edges", "traffic.zones",
    ]  # fmt: skip
    assert record.sources == sorted({*traffic.reads, "zones"})
    assert result.diffs["toy.zones"]["shut_and_warm"]["heat_kwh_diff"].tolist() == pytest.approx([100.0] * 3)


def test_editing_one_engines_intervention_recomputes_only_that_engine(tmp_path: Path, toy: Any) -> None:
    traffic = TrafficEngine(inputs=tiny_inputs(tmp_path), params=PARAMS)
    catalog = intervention_catalog([traffic, toy])
    first = parse_scenario(MIXED, catalog, origin="mixed.toml")
    edited = {**MIXED, "interventions": [MIXED["interventions"][0], {"type": "toy_nudge", "factor": 3.0}]}
    second = parse_scenario(edited, catalog, origin="mixed.toml")
    parameters = {"any": 1}
    assert fingerprint(traffic, first, parameters, "data") == fingerprint(traffic, second, parameters, "data")
    assert fingerprint(toy, first, parameters, "data") != fingerprint(toy, second, parameters, "data")
