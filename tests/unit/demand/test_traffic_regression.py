"""Traffic's numbers pinned across the engine seam: the tiny grid's KPIs, bit for bit.

The values were produced by the traffic pipeline before it moved onto the engine seam (commit 3337160,
``run_scenario`` on this twin with these parameters, seed 3); the engine must give exactly the same
floats for the baseline and for the closure. SUMO is deterministic per seed, and so is the demand
sampling, so any difference means the refactoring changed the model.

One change since, on purpose (issue 11 part 8): a run now ends with its last vehicle instead of
stepping to the end of the period, and the edges' noise is put back onto the whole period
(+10·log10(t / period)); the mean noise moved by 0.0002 dB (baseline) and 0.0013 dB (closure), every
other KPI is still the same float. And one more (issue 11, calibration): cars now enter at their
desired speed (``departSpeed="desired"`` instead of ``"max"``, see ``run.CAR_DEPARTURE``), which on
this uncongested grid moves the mean travel time by 0.04 s (baseline) and 0.01 s (closure), CO2 by
+0.01 % and −0.16 %, and the modal split in its seventh decimal through the feedback rounds; trips,
vehicle-km and teleports are the same.
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
        "mean_travel_time_s": 136.98901098901098,
        "total_travel_time_h": 3.4627777777777777,
        "total_delay_h": 0.6218472222222222,
        "vehicle_km": 91.55313000000001,
        "mean_speed_kmh": 26.439216107813255,
        "co2_kg": 17.69443809,
        "nox_kg": 0.0026426800000000005,
        "pmx_kg": 0.0017374100000000002,
        "mean_noise_db": 48.74539308006722,
        "teleports": 0.0,
        "unfinished": 0.0,
        "person_trips": 648.0,
        "share_car": 0.1765149229020905,
        "share_pt": 0.0703869979334593,
        "share_bike": 0.1197209604286201,
        "share_walk": 0.6333771187358301,
    },
    "close_main": {
        "trips": 91.0,
        "finished_share": 1.0,
        "mean_travel_time_s": 146.41758241758242,
        "total_travel_time_h": 3.701111111111111,
        "total_delay_h": 0.44483055555555556,
        "vehicle_km": 94.81797999999999,
        "mean_speed_kmh": 25.618787751425998,
        "co2_kg": 17.13116145,
        "nox_kg": 0.00233129,
        "pmx_kg": 0.0017563,
        "mean_noise_db": 48.56887117240668,
        "teleports": 0.0,
        "unfinished": 0.0,
        "person_trips": 648.0,
        "share_car": 0.17484613702766966,
        "share_pt": 0.07055911665764536,
        "share_bike": 0.11996273141476807,
        "share_walk": 0.6346320148999168,
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
