"""The mode-choice constants calibrated to an observed split with SUMO in the loop on the tiny twin,
with counts and without, stored in the calibration record, used by every later run, shown in the
report; a split the twin cannot produce stops the calibration before any simulation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from traffic_tiny_twin import PARAMS, tiny_inputs

from civictwin.config import ModalSplitSection
from civictwin.engines.base import TwinContext
from civictwin.engines.traffic.calibration import (
    NO_COUNTS,
    Factors,
    _simulate,
    calibrate,
    save_record,
    with_calibration,
)
from civictwin.engines.traffic.demand import DemandParams
from civictwin.engines.traffic.engine import TrafficEngine
from civictwin.engines.traffic.fitreport import calibration_section, calibration_summary
from civictwin.engines.traffic.modechoice import MODES
from civictwin.engines.traffic.modesplit import ObservedSplit
from civictwin.engines.traffic.prepare import prepare_scenario
from civictwin.engines.traffic.sites import CalibrationSettings, CountSites, no_site
from civictwin.errors import ConfigError, EngineError
from civictwin.scenarios.spec import Scenario

OBSERVED = {"car": 0.4, "pt": 0.2, "bike": 0.1, "walk": 0.3}
"""Far from what the default constants give on the tiny twin (car about 0.6, walk about 0.2)."""


def _sites(counts: pd.DataFrame) -> CountSites:
    first_hour = counts[counts["hour"] == 0]
    hourly = pd.DataFrame(
        {
            "site": "synthetic/" + first_hour["edge_id"],
            "edge_id": first_hour["edge_id"],
            "hour": 8,
            "observed": first_hour["vehicles"].astype(float),
        }
    )
    return CountSites(sites=pd.DataFrame({"site": hourly["site"], "status": "used"}), hourly=hourly)


def test_constants_calibrated_with_sumo_in_the_loop_are_stored_and_used_by_later_runs(tmp_path: Path) -> None:
    inputs = tiny_inputs(tmp_path)
    counted = tuple(sorted(inputs.edges["edge_id"].astype(str)))[::3]
    params = PARAMS.model_copy(
        update={
            "iterations": 2,  # the second round sees the simulated car times
            "demand": DemandParams(scale=4.0, distance="crowfly"),
            "count_edges": counted,
            "calibration": CalibrationSettings(folds=2, max_iterations=1, seed=3, split_max_runs=4),
        }
    )
    prepared = prepare_scenario(inputs, Scenario.baseline_scenario(), tmp_path / "truth_net", params)
    sites = _sites(_simulate(prepared, Factors(), 7, tmp_path / "truth").counts)
    split = ObservedSplit.from_config(ModalSplitSection(shares=OBSERVED, source="synthetic survey"))

    record = calibrate(inputs, sites, params, tmp_path / "calibration", split=split)

    choice: dict[str, Any] = record["mode_choice"]
    runs = choice["runs"]
    # the first guess fits the free-flow service; simulated, congestion drives people out of their
    # cars, so the loop with the simulation needs another update
    assert runs[0]["modelled"]["car"] < OBSERVED["car"] and runs[0]["gap"] > 0.01
    assert runs[0]["constants"] == choice["first_guess"]
    assert choice["kept_run"] == len(runs) >= 2
    assert choice["converged"] and runs[-1]["gap"] <= 0.01, choice["statement"]
    for row in choice["fit"]:
        assert row["modelled"] == pytest.approx(OBSERVED[row["mode"]], abs=0.01)
        assert row["observed"] == pytest.approx(OBSERVED[row["mode"]])
        assert row["final"] == pytest.approx(OBSERVED[row["mode"]], abs=0.01)  # after the OD factors too
    assert choice["constants_before"] == {"car": 0.0, "pt": 0.0, "bike": -1.5, "walk": 0.5}
    after = choice["constants_after"]
    assert after["car"] == 0.0 and after["walk"] < 0.5 and after["pt"] != 0.0  # reference kept, others moved
    assert choice["inputs"]["source"] == "synthetic survey"
    # the count calibration ran with the calibrated constants, the split stage's kept run as its prior
    assert record["parameters"]["traffic"]["mode_choice"]["asc_walk"] == pytest.approx(after["walk"])
    # no separate prior run; one update: all sites, 2 folds; the check run with the mode choice again
    assert record["simulation_runs"] == len(runs) + 4
    assert record["check_first_round_reused"]  # the check run simulated its second round only
    assert record["statement"].endswith(choice["statement"])

    twin_dir = tmp_path / "twin"
    save_record(twin_dir, record)
    later = with_calibration(PARAMS, twin_dir)
    assert {m: later.mode_choice.asc(m) for m in MODES} == pytest.approx(after)
    assert later.mode_choice.beta_time_per_min == PARAMS.mode_choice.beta_time_per_min  # only the constants
    manifest = TrafficEngine().parameters(TwinContext(twin_dir=twin_dir))
    assert manifest["calibration_record"] == "calibration-001"
    assert manifest["mode_choice"]["asc_pt"] == pytest.approx(after["pt"])

    section = calibration_section(calibration_summary(record | {"id": "calibration-001"}))
    split_text = next(p for p in section.paragraphs if p.startswith("Modal split (synthetic survey): "))
    assert "car 40.0% observed" in split_text and choice["statement"] in split_text


def test_a_split_naming_a_mode_the_twin_cannot_produce_stops_before_any_simulation(tmp_path: Path) -> None:
    inputs = tiny_inputs(tmp_path)
    zones = inputs.zones.assign(car_availability=0.0)  # nobody has a car
    inputs = type(inputs)(**{**inputs.__dict__, "zones": zones})
    hourly = pd.DataFrame(
        {"site": ["s"], "edge_id": [str(inputs.edges["edge_id"].iloc[0])], "hour": [8], "observed": [10.0]}
    )
    sites = CountSites(sites=pd.DataFrame({"site": ["s"], "status": ["used"]}), hourly=hourly)
    split = ObservedSplit.from_config(ModalSplitSection(shares=OBSERVED, source="survey"))
    steps: list[str] = []
    with pytest.raises(ConfigError) as caught:
        calibrate(inputs, sites, PARAMS, tmp_path / "calibration", on_step=steps.append, split=split)
    assert caught.value.user_message() == (
        "twin.toml: modal_split.shares: observed share 0.4 for 'car', a mode the twin's mode choice gives "
        "no trip (it produces pt, bike, walk)"
    )
    assert steps == []  # no simulation ran


def test_without_a_count_site_only_the_split_is_calibrated_and_the_record_says_so(tmp_path: Path) -> None:
    inputs = tiny_inputs(tmp_path)
    params = PARAMS.model_copy(
        update={
            "demand": DemandParams(scale=4.0, distance="crowfly"),
            "calibration": CalibrationSettings(seed=3),
        }
    )
    split = ObservedSplit.from_config(ModalSplitSection(shares=OBSERVED, source="synthetic survey"))

    record = calibrate(inputs, no_site(), params, tmp_path / "calibration", split=split)

    choice = record["mode_choice"]
    assert choice["converged"] and record["converged"]
    assert all(row["modelled"] == pytest.approx(row["observed"], abs=0.01) for row in choice["fit"])
    assert record["od_factors"] == [] and record["count_edges"] == [] and record["scatter"] == []
    assert record["fit_after"]["site_hours"] == 0 and not record["fit_after"]["meets_dmrb"]
    assert record["simulation_runs"] == len(choice["runs"])
    assert record["statement"] == f"{NO_COUNTS} {choice['statement']}"

    twin_dir = tmp_path / "twin"
    save_record(twin_dir, record)
    later = with_calibration(PARAMS, twin_dir)
    assert {m: later.mode_choice.asc(m) for m in MODES} == pytest.approx(choice["constants_after"])
    assert later.od_factors == () and later.count_edges == ()
    section = calibration_section(calibration_summary(record | {"id": "calibration-001"}))
    assert (
        "No count site-hour could be compared: the DMRB criterion cannot be assessed." in section.paragraphs
    )
    assert any(p.startswith("Modal split (synthetic survey): car 40.0% observed") for p in section.paragraphs)


def test_without_a_count_site_or_a_split_there_is_nothing_to_calibrate(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="no usable count site"):
        calibrate(tiny_inputs(tmp_path), no_site(), PARAMS, tmp_path / "calibration")
