"""Traffic's numbers pinned across the engine seam: the tiny grid's KPIs, bit for bit.

The values were produced by the traffic pipeline before it moved onto the engine seam (commit 3337160,
``run_scenario`` on this twin with these parameters, seed 3); the engine must give exactly the same
floats for the baseline and for the closure. SUMO is deterministic per seed, and so is the demand
sampling, so any difference means the refactoring changed the model.

One change since, on purpose (issue 11 part 8): a run now ends with its last vehicle instead of
stepping to the end of the period, and the edges' noise is put back onto the whole period
(+10·log10(t / period)); the mean noise moved by 0.0002 dB (baseline) and 0.0013 dB (closure), every
other KPI is still the same float.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from traffic_tiny_twin import CLOSURE, PARAMS, tiny_inputs

from civictwin.engines.base import TwinContext
from civictwin.engines.traffic.engine import TrafficEngine
from civictwin.scenarios.spec import Scenario

PINNED = {
    "baseline": {
        "trips": 91.0,
        "finished_share": 1.0,
        "mean_travel_time_s": 137.03296703296704,
        "total_travel_time_h": 3.463888888888889,
        "total_delay_h": 0.6229611111111112,
        "vehicle_km": 91.55313000000001,
        "mean_speed_kmh": 26.43073520449078,
        "co2_kg": 17.69230846,
        "nox_kg": 0.0026442499999999995,
        "pmx_kg": 0.00173695,
        "mean_noise_db": 48.74797783536563,
        "teleports": 0.0,
        "unfinished": 0.0,
        "person_trips": 648.0,
        "share_car": 0.1765143386193465,
        "share_pt": 0.07038704082101832,
        "share_bike": 0.1197210209564655,
        "share_walk": 0.6333775996031697,
    },
    "close_main": {
        "trips": 91.0,
        "finished_share": 1.0,
        "mean_travel_time_s": 146.42857142857142,
        "total_travel_time_h": 3.701388888888889,
        "total_delay_h": 0.4437194444444445,
        "vehicle_km": 94.81797999999999,
        "mean_speed_kmh": 25.616865140712942,
        "co2_kg": 17.158898259999997,
        "nox_kg": 0.0023337500000000003,
        "pmx_kg": 0.0017592500000000002,
        "mean_noise_db": 48.56457245658345,
        "teleports": 0.0,
        "unfinished": 0.0,
        "person_trips": 648.0,
        "share_car": 0.17484270690075687,
        "share_pt": 0.07055938642346342,
        "share_bike": 0.11996325252723056,
        "share_walk": 0.6346346541485492,
    },
}


@pytest.mark.parametrize("scenario", [Scenario.baseline_scenario(), CLOSURE], ids=lambda s: s.name)
def test_the_engine_gives_the_pipelines_numbers_bit_for_bit(tmp_path: Path, scenario: Scenario) -> None:
    engine = TrafficEngine(inputs=tiny_inputs(tmp_path), params=PARAMS)
    prepared = engine.prepare(TwinContext(tmp_path), scenario, workdir=tmp_path / "network")
    result = engine.run(prepared, seed=3, workdir=tmp_path / "sumo")
    assert {k.name: k.value for k in result.kpis} == PINNED[scenario.name]
    assert list(result.details["modal_split"].values()) == [
        PINNED[scenario.name][f"share_{mode}"] for mode in ("car", "pt", "bike", "walk")
    ]
