"""Mode-choice constants calibrated to an observed modal split: the logit with constants by hand, the
update, a synthetic truth, the loop with a stand-in simulation, and every bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from civictwin.cli import main
from civictwin.config import ModalSplitSection, parse_config
from civictwin.engines.traffic.calibration import save_record, with_calibration
from civictwin.engines.traffic.countnext import where_to_count
from civictwin.engines.traffic.demand import OdMatrix
from civictwin.engines.traffic.fitreport import split_paragraph, split_summary
from civictwin.engines.traffic.modechoice import (
    MODES,
    LevelOfService,
    Mode,
    ModeChoiceParams,
    modal_split,
    mode_shares,
)
from civictwin.engines.traffic.modesplit import (
    ObservedSplit,
    Simulate,
    calibrate_split,
    check_producible,
    constants,
    fit_to_service,
    producible_modes,
    recalibrated,
    split_record,
    with_constants,
)
from civictwin.engines.traffic.params import TrafficParams
from civictwin.engines.traffic.simulate import SeedOutcome
from civictwin.errors import ConfigError, EngineError
from civictwin.scenarios.spec import Scenario

EMPTY = pd.DataFrame()


def _service(
    car_min: np.ndarray, *, walk_min: np.ndarray, pt_ivt: np.ndarray, bike_min: np.ndarray
) -> LevelOfService:
    zeros = np.zeros_like(car_min)
    return LevelOfService(
        zones=tuple(f"z{k}" for k in range(car_min.shape[0])),
        car_min=car_min,
        car_km=zeros,
        pt_in_vehicle_min=pt_ivt,
        pt_wait_min=zeros,
        pt_access_min=zeros,
        walk_min=walk_min,
        bike_min=bike_min,
    )


def _one_pair(*, bike_min: float = np.inf, pt_ivt: float = 10.0) -> LevelOfService:
    return _service(
        np.array([[10.0]]),
        walk_min=np.array([[20.0]]),
        pt_ivt=np.array([[pt_ivt]]),
        bike_min=np.array([[bike_min]]),
    )


def _split(**shares: float) -> ObservedSplit:
    return ObservedSplit.from_config(ModalSplitSection(shares=shares, source="test survey"))


def _outcome(split: dict[Mode, float]) -> SeedOutcome:
    """A stand-in for a simulation's outcome: only its modal split matters here."""
    return SeedOutcome(
        scenario="baseline",
        seed=1,
        kpis={},
        modal_split={str(m): float(v) for m, v in split.items()},
        car_share_by_iteration=[],
        edges=EMPTY,
        zones=EMPTY,
        counts=EMPTY,
        passages=EMPTY,
        wall_s=0.0,
        sumo_wall_s=0.0,
        sumo_version="none",
    )


def test_logit_shares_with_constants_match_hand_computed_values() -> None:
    params = ModeChoiceParams(asc_car=0.0, asc_pt=0.3, asc_walk=-0.2)
    shares = mode_shares(_one_pair(), params)
    # generalised minutes (defaults): car 10 + 1.5 × 3 access + 6 min/€ × 3 € parking = 32.5;
    # pt 10 + 6 × 3 € fare = 28; walk 1.5 × 20 = 30; bike unavailable (inf)
    u_car, u_pt, u_walk = 0.0 - 0.05 * 32.5, 0.3 - 0.05 * 28.0, -0.2 - 0.05 * 30.0  # -1.625, -1.1, -1.7
    total = math.exp(u_car) + math.exp(u_pt) + math.exp(u_walk)
    assert shares["car"][0, 0] == pytest.approx(math.exp(u_car) / total)  # 0.19691 / 0.71246 = 0.2764
    assert shares["pt"][0, 0] == pytest.approx(0.4672, abs=1e-4)  # 0.33287 / 0.71246
    assert shares["walk"][0, 0] == pytest.approx(0.2564, abs=1e-4)  # 0.18268 / 0.71246
    assert shares["bike"][0, 0] == 0.0


def test_one_update_reproduces_the_split_of_a_homogeneous_population_and_keeps_the_reference() -> None:
    params = ModeChoiceParams()
    od = OdMatrix(("z0",), np.array([[100.0]]))
    service = _one_pair()
    observed = _split(car=0.2, pt=0.5, walk=0.3)
    before = modal_split(od, mode_shares(service, params))
    updated = recalibrated(constants(params), observed.shares, before, reference="car")
    after = modal_split(od, mode_shares(service, with_constants(params, updated)))
    for mode in ("car", "pt", "walk"):
        assert after[mode] == pytest.approx(observed.shares[mode], abs=1e-12)  # Train's update: exact here
    assert updated["car"] == params.asc_car  # the reference keeps its constant
    assert updated["bike"] == params.asc_bike  # no observed share: unchanged
    # the shift is ln(S_obs/S_mod) minus the reference's: pt by hand
    expected_pt = params.asc_pt + math.log(0.5 / before["pt"]) - math.log(0.2 / before["car"])
    assert updated["pt"] == pytest.approx(expected_pt, abs=1e-12)


def _synthetic_service(n: int, rng: np.random.Generator) -> LevelOfService:
    distance_km = rng.uniform(0.3, 6.0, size=(n, n))
    return _service(
        distance_km / 25.0 * 60.0 + rng.uniform(0.0, 8.0, size=(n, n)),
        walk_min=distance_km / 4.8 * 60.0,
        pt_ivt=distance_km * 1.3 / 18.0 * 60.0 + rng.uniform(2.0, 10.0, size=(n, n)),
        bike_min=distance_km / 15.0 * 60.0,
    )


def test_synthetic_truth_choices_drawn_with_known_constants_are_recovered() -> None:
    rng = np.random.default_rng(11)
    service = _synthetic_service(30, rng)
    od = OdMatrix(service.zones, np.full((30, 30), 50.0))  # 45,000 trips
    truth = ModeChoiceParams(asc_car=0.0, asc_pt=-0.4, asc_bike=-1.2, asc_walk=0.8)
    probabilities = mode_shares(service, truth)
    stacked = np.stack([probabilities[m] for m in MODES], axis=-1).reshape(-1, len(MODES))
    drawn = np.array([rng.multinomial(50, p / p.sum()) for p in stacked]).sum(axis=0)
    observed = _split(**{m: float(drawn[k] / drawn.sum()) for k, m in enumerate(MODES)})

    wrong = ModeChoiceParams(asc_car=0.0, asc_pt=1.0, asc_bike=0.0, asc_walk=-1.0)
    assert max(abs(modal_split(od, mode_shares(service, wrong))[m] - observed.shares[m]) for m in MODES) > 0.1

    fitted, rounds = fit_to_service(service, od, wrong, observed, tolerance=0.0005)
    modelled = modal_split(od, mode_shares(service, fitted))
    for mode in MODES:
        assert modelled[mode] == pytest.approx(observed.shares[mode], abs=0.0005)  # the tolerance
        # the constants within 0.05 of the truth: the drawn shares' sampling error (about 0.002 per
        # share with 45,000 trips) moves a constant by about 0.01
        assert fitted.asc(mode) == pytest.approx(truth.asc(mode), abs=0.05)
    assert fitted.asc_car == 0.0  # the reference
    assert 1 < rounds < 50  # heterogeneous pairs: more than the one exact step, well within the limit


def _congested(service: LevelOfService, od: OdMatrix, *, delay_per_car_share: float) -> Simulate:
    """A stand-in simulation: car times grow with the car share (minutes × (1 + k × share)), the
    split re-evaluated once, as the mode choice's feedback round does."""

    def simulate(params: ModeChoiceParams) -> SeedOutcome:
        free_split = modal_split(od, mode_shares(service, params))
        slowed = service.with_car_times(service.car_min * (1.0 + delay_per_car_share * free_split["car"]))
        return _outcome(modal_split(od, mode_shares(slowed, params)))

    return simulate


def test_the_loop_with_a_simulation_whose_car_times_respond_converges_and_records_every_run() -> None:
    rng = np.random.default_rng(5)
    service = _synthetic_service(12, rng)
    od = OdMatrix(service.zones, np.full((12, 12), 20.0))
    observed = _split(car=0.3, pt=0.3, bike=0.1, walk=0.3)
    simulate = _congested(service, od, delay_per_car_share=3.0)
    before = ModeChoiceParams()

    result = calibrate_split(before, observed, service, od, simulate, tolerance=0.005, max_runs=6)

    assert result.converged
    assert result.runs[0].gap > 0.005  # the free-flow first guess overestimates the car share
    assert result.runs[0].modelled["car"] < 0.3  # congestion drives people out of their cars
    assert result.best == len(result.runs) - 1 and len(result.runs) <= 6
    kept = result.runs[result.best]
    assert kept.gap <= 0.005
    assert result.params.asc_car == before.asc_car
    assert constants(result.params) == kept.constants
    for mode in MODES:
        assert simulate(result.params).modal_split[mode] == pytest.approx(observed.shares[mode], abs=0.005)

    record = split_record(
        result, before=before, tolerance=0.005, max_runs=6, final_split=result.outcome.modal_split
    )
    assert record["inputs"] == {
        "shares": {"car": 0.3, "pt": 0.3, "bike": 0.1, "walk": 0.3},
        "normalised": pytest.approx({"car": 0.3, "pt": 0.3, "bike": 0.1, "walk": 0.3}),
        "source": "test survey",
        "sum_tolerance": 0.02,
    }
    assert record["constants_before"] == {"car": 0.0, "pt": 0.0, "bike": -1.5, "walk": 0.5}
    assert record["constants_after"] == kept.constants and record["converged"] is True
    assert [row["mode"] for row in record["fit"]] == list(MODES)
    assert all(abs(row["modelled"] - row["observed"]) <= 0.005 for row in record["fit"])
    assert record["statement"] == (
        "The mode choice's constants reproduce the observed modal split within 0.5 percentage point(s) per "
        f"mode (largest difference {kept.gap * 100:.1f}, after {len(result.runs)} simulation(s))."
    )
    late = split_record(
        result,
        before=before,
        tolerance=0.005,
        max_runs=6,
        final_split={"car": 0.25, "pt": 0.32, "bike": 0.1, "walk": 0.33},  # as if the OD factors moved it
    )
    assert late["final_gap"] == pytest.approx(0.05) and late["converged"] is True
    assert late["statement"].endswith(
        "After the calibration to the counts changed the demand, the modelled split is 5.0 percentage "
        "points off in one mode, outside the tolerance."
    )


def test_a_loop_that_runs_out_of_simulations_says_so_and_keeps_the_closest_run() -> None:
    rng = np.random.default_rng(5)
    service = _synthetic_service(12, rng)
    od = OdMatrix(service.zones, np.full((12, 12), 20.0))
    observed = _split(car=0.3, pt=0.3, bike=0.1, walk=0.3)
    result = calibrate_split(
        ModeChoiceParams(),
        observed,
        service,
        od,
        _congested(service, od, delay_per_car_share=3.0),
        tolerance=0.005,
        max_runs=1,
    )
    assert not result.converged and len(result.runs) == 1 and result.best == 0
    assert constants(result.params) == result.runs[0].constants  # never an update no run has tried
    record = split_record(
        result,
        before=ModeChoiceParams(),
        tolerance=0.005,
        max_runs=1,
        final_split=None,  # no count calibration after it
    )
    assert record["converged"] is False and record["final_gap"] is None
    assert all(row["final"] is None for row in record["fit"])
    assert record["statement"] == (
        "The mode-choice constants did not converge to the observed modal split: after 1 simulation(s) the "
        f"closest run is still {result.runs[0].gap * 100:.1f} percentage points off in one mode (tolerance 0.5)."
    )


# ------------------------------------------------------------------------------------------ bad input

BASE = {
    "twin": {"name": "t"},
    "area": {"bbox": [24.9, 60.1, 25.0, 60.2]},
    "sources": [
        {
            "name": "osm",
            "kind": "osm",
            "path": "x.pbf",
            "licence": "ODbL",
            "publisher": "OSM",
            "steward": "GIS",
        }
    ],
}


@pytest.mark.parametrize(
    ("shares", "problem"),
    [
        ({"car": 0.3, "pt": 0.3, "bike": 0.1, "walk": 0.4}, "the shares sum to 1.1, not 1 (± 0.02)"),
        ({"car": 0.3, "pt": 0.3, "walk": 0.3}, "the shares sum to 0.9, not 1 (± 0.02)"),
        ({"car": -0.1, "pt": 0.5, "walk": 0.6}, "share of 'car' is -0.1: a share is a number from 0 to 1"),
        ({"car": 0.5, "tram": 0.5}, "unknown mode 'tram' (the mode choice's modes: car, pt, bike, walk)"),
        ({"car": 0.0, "walk": 1.0}, "share of 'car' is 0: a logit gives every mode it can produce"),
    ],
)
def test_a_bad_split_in_twin_toml_is_one_line_naming_the_field(
    shares: dict[str, float], problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({**BASE, "modal_split": {"shares": shares, "source": "survey"}}, base_dir=Path("."))
    message = caught.value.user_message()
    assert message.startswith("twin.toml: modal_split.shares: " + problem)
    assert "\n" not in message


def test_shares_within_the_rounding_tolerance_are_accepted_and_normalised() -> None:
    config = parse_config(
        {
            **BASE,
            "modal_split": {"shares": {"car": 0.31, "pt": 0.3, "bike": 0.1, "walk": 0.3}, "source": "s"},
        },
        base_dir=Path("."),
    )
    assert config.modal_split is not None
    split = ObservedSplit.from_config(config.modal_split)
    assert split.given["car"] == 0.31
    assert split.shares["car"] == pytest.approx(0.31 / 1.01) and sum(split.shares.values()) == pytest.approx(
        1.0
    )
    with pytest.raises(ConfigError, match=r"modal_split\.source: required key is missing"):
        parse_config({**BASE, "modal_split": {"shares": {"car": 1.0}}}, base_dir=Path("."))


def test_a_mode_the_twin_cannot_produce_or_a_produced_mode_left_out_is_refused() -> None:
    no_transit = _one_pair(pt_ivt=np.inf)  # no stop within reach: transit unavailable everywhere
    od = OdMatrix(("z0",), np.array([[100.0]]))
    produced = producible_modes(no_transit, od, ModeChoiceParams())
    assert produced == {"car", "walk"}  # bike unavailable too (inf minutes)
    with pytest.raises(ConfigError) as caught:
        check_producible(_split(car=0.4, pt=0.2, walk=0.4), produced)
    assert caught.value.user_message() == (
        "twin.toml: modal_split.shares: observed share 0.2 for 'pt', a mode the twin's mode choice gives no "
        "trip (it produces car, walk)"
    )
    with pytest.raises(ConfigError, match="no share for 'walk', which the twin's mode choice produces"):
        check_producible(_split(car=1.0), produced)
    check_producible(_split(car=0.5, walk=0.5), produced)  # exactly the produced modes: fine


def test_calibrate_run_with_a_bad_split_exits_with_one_line_and_stores_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "twin.toml").write_text(
        """
[twin]
name = "t"

[area]
bbox = [24.9, 60.1, 25.0, 60.2]

[[sources]]
name = "osm"
kind = "osm"
path = "x.pbf"
licence = "ODbL"
publisher = "OSM"
steward = "GIS"

[modal_split]
shares = { car = 0.5, pt = 0.3, walk = 0.3 }
source = "survey"
""",
        encoding="utf-8",
    )
    with pytest.raises(SystemExit) as exit_:
        main(["calibrate", "run", str(tmp_path)])
    assert exit_.value.code != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert (
        err.startswith("error: ")
        and "twin.toml: modal_split.shares: the shares sum to 1.1, not 1 (± 0.02)" in err
    )
    assert not (tmp_path / "calibration").exists()


def test_the_report_states_observed_against_modelled_split() -> None:
    mode_choice = {
        "inputs": {"source": "Survey 2024"},
        "statement": "The mode-choice constants did not converge to the observed modal split: …",
        "converged": False,
        "fit": [
            {"mode": "car", "observed": 0.3, "modelled": 0.3412, "final": 0.35},
            {"mode": "pt", "observed": None, "modelled": 0.0, "final": 0.0},
            {"mode": "walk", "observed": 0.7, "modelled": 0.6588, "final": 0.65},
        ],
    }
    summary = split_summary(mode_choice)
    assert summary is not None and split_summary(None) is None
    assert split_paragraph(summary) == (
        "Modal split (Survey 2024): car 30.0% observed, 34.1% modelled (35.0% after the count calibration); "
        "walk 70.0% observed, 65.9% modelled (65.0% after the count calibration). "
        "The mode-choice constants did not converge to the observed modal split: …"
    )


def test_where_to_count_refuses_a_record_without_counts(tmp_path: Path) -> None:
    save_record(
        tmp_path, {"od_factors": [], "count_edges": [], "mode_choice": {"constants_after": {"pt": 0.2}}}
    )
    baseline = Scenario.baseline_scenario()
    with pytest.raises(EngineError, match=r"calibration record calibration-001 has no count site"):
        where_to_count(tmp_path, baseline, baseline, kpi="co2_kg")
    assert with_calibration(TrafficParams(), tmp_path).mode_choice.asc_pt == 0.2
