"""The energy engine on the demo twin: notes, determinism, interventions that change exactly what
they select, and one-line errors for bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from civictwin.engines.base import EngineResult, TwinContext
from civictwin.engines.energy.engine import EnergyEngine
from civictwin.engines.energy.model import EnergyInputs
from civictwin.engines.energy.params import RANGES, sample, sampled
from civictwin.engines.registry import intervention_catalog
from civictwin.errors import ConfigError, ScenarioError
from civictwin.kpis.ensemble import summarise
from civictwin.scenarios.spec import Scenario

SHARED = Path(__file__).resolve().parents[4].parent / "shared" / "data"
Twin = TwinContext
EnergyRun = EngineResult
CATALOG = intervention_catalog([EnergyEngine()])


def Plan(items: list[dict[str, Any]] | None = None) -> Scenario:
    """A scenario of ``items`` as if read from ``plan.toml`` (validated by the engine's catalogue)."""
    parsed = [CATALOG.parse(item, index=i, origin="plan.toml") for i, item in enumerate(items or [])]
    return Scenario(name="plan", interventions=parsed, path=Path("plan.toml"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twin]:
    if not (SHARED / "tabula" / "sweden.csv").is_file():
        pytest.skip("shared typology and weather absent")
    from civictwin.demo import build_demo

    twin_dir = tmp_path_factory.mktemp("energy-demo")
    build_demo(twin_dir)  # finds ../shared/data and writes [energy] into twin.toml
    yield TwinContext.load(twin_dir)


@pytest.fixture(scope="module")
def central(demo: Twin) -> Twin:
    """The demo twin with every uncertain parameter at its central value (the hand checks' numbers)."""
    return TwinContext(demo.twin_dir, demo.config, options={"energy": {"sample_assumed_ranges": False}})


@pytest.fixture(scope="module")
def baseline(central: Twin) -> tuple[EnergyInputs, EnergyRun]:
    inputs = EnergyEngine().prepare(central, Plan(), workdir=Path("."))
    return inputs, EnergyEngine().run(inputs, seed=1, workdir=Path("."))


def _kpis(run: EnergyRun) -> dict[str, float]:
    return {k.name: k.value for k in run.kpis}


def test_baseline_totals_are_consistent_and_notes_state_the_fallbacks(
    baseline: tuple[EnergyInputs, EnergyRun],
) -> None:
    _, run = baseline
    kpis = _kpis(run)
    buildings = run.tables["buildings"]
    assert len(buildings) == 446 and not buildings[["osm_type", "osm_id"]].duplicated().any()
    # totals are the sums of the buildings; district heat carries space heating and hot water
    assert kpis["buildings_heating_need_mwh"] == pytest.approx(buildings["heating_need_kwh"].sum() / 1000)
    assert kpis["buildings_final_district_heating_mwh"] == pytest.approx(
        (buildings["heating_need_kwh"].sum() + buildings["hot_water_need_kwh"].sum()) / 1000
    )
    co2 = (
        kpis["buildings_final_district_heating_mwh"] * 0.182 + kpis["buildings_final_electricity_mwh"] * 0.074
    )
    assert kpis["buildings_co2_t"] == pytest.approx(co2)
    assert (
        100 < kpis["buildings_heating_need_kwh_m2"] < 250
    )  # pre-war Swedish archetypes in Helsinki's climate
    assert kpis["buildings_pv_mwh"] == 0.0  # no PV before a scenario adds it
    assert run.tables["zones"]["zone_id"].is_unique
    assert any("without a construction year took 1921" in n and "82%" in n for n in run.notes)
    assert any("stands in for Finland's" in n for n in run.notes)


def test_seeds_draw_the_assumed_ranges_by_default_and_agree_without_them(
    demo: Twin, baseline: tuple[EnergyInputs, EnergyRun]
) -> None:
    inputs, run = baseline
    here = Path(".")
    # without the assumed ranges (none of methods-energy.md's is published) every seed takes the centre
    assert _kpis(EnergyEngine().run(inputs, seed=2, workdir=here)) == _kpis(run)
    assert any("no uncertain parameter has a published range" in n for n in run.notes)
    drawn = EnergyEngine().prepare(demo, Plan(), workdir=here)  # the default: the assumed ranges drawn
    assert any(
        "ranges that are assumptions" in n for n in EnergyEngine().run(drawn, seed=1, workdir=here).notes
    )
    one, again = (_kpis(EnergyEngine().run(drawn, seed=1, workdir=here)) for _ in range(2))
    other = _kpis(EnergyEngine().run(drawn, seed=2, workdir=here))
    assert one == again and other["buildings_heating_need_mwh"] != one["buildings_heating_need_mwh"]


def test_every_draw_lies_within_its_range_and_only_requested_ranges_are_drawn() -> None:
    # the order of RANGES fixes the draw: a seed's values come from one default_rng(seed) in that order
    assert sampled(assumed=False) == [] and sampled(assumed=True) == list(RANGES)
    for seed in range(1, 201):
        drawn, central = sample(seed, assumed=True), sample(seed)
        values = {
            "u_value_factor": drawn.u_value_factor,
            "setpoint_offset_k": drawn.setpoint_offset_k,
            "gains_factor": drawn.gains_factor,
            "air_change_factor": drawn.air_change_factor,
            "cop_factor": drawn.cop_factor,
            "pv_losses_percent": drawn.pv.losses_percent,
            "pv_module_efficiency": drawn.pv.module_efficiency,
        }
        assert all(RANGES[n].low <= v <= RANGES[n].high for n, v in values.items()), (seed, values)
        assert (central.u_value_factor, central.setpoint_offset_k, central.cop_factor) == (1.0, 0.0, 1.0)
    first = np.random.default_rng(7).uniform(RANGES["u_value_factor"].low, RANGES["u_value_factor"].high)
    assert sample(7, assumed=True).u_value_factor == first


def test_sampled_seeds_give_intervals_that_hold_the_central_run(
    demo: Twin, baseline: tuple[EnergyInputs, EnergyRun]
) -> None:
    _, central = baseline
    sampling = TwinContext(demo.twin_dir, demo.config, options={"energy": {"sample_assumed_ranges": True}})
    drawn = EnergyEngine().prepare(sampling, Plan(), workdir=Path("."))
    runs = [_kpis(EnergyEngine().run(drawn, seed=seed, workdir=Path("."))) for seed in range(1, 6)]
    for name in ("buildings_heating_need_mwh", "buildings_co2_t", "buildings_final_energy_mwh"):
        estimate = summarise([run[name] for run in runs])
        assert estimate.ci_high - estimate.ci_low > 0.01 * estimate.mean, name  # not a zero interval
        assert estimate.ci_low < _kpis(central)[name] < estimate.ci_high, (name, estimate)


def test_retrofit_and_pv_change_exactly_the_selected_zone(
    central: Twin, baseline: tuple[EnergyInputs, EnergyRun]
) -> None:
    _, run = baseline
    zone = run.tables["zones"].sort_values("floor_area_m2")["zone_id"].iloc[-1]
    plan = Plan([
        {"type": "envelope_retrofit", "zones": [zone], "level": "advanced"},
        {"type": "pv_uptake", "zones": [zone], "share": 1.0},
    ])  # fmt: skip
    after = (
        EnergyEngine()
        .run(EnergyEngine().prepare(central, plan, workdir=Path(".")), seed=1, workdir=Path("."))
        .tables["buildings"]
    )
    before = run.tables["buildings"]
    inside = (before["zone_id"] == zone).to_numpy()
    heated = before["heating_need_kwh"].to_numpy() > 0
    assert (after["variant"].to_numpy()[inside] == 3).all() and (
        after["variant"].to_numpy()[~inside] == 1
    ).all()
    assert np.array_equal(
        after["heating_need_kwh"].to_numpy()[~inside], before["heating_need_kwh"].to_numpy()[~inside]
    )
    assert (
        after["heating_need_kwh"].to_numpy()[inside & heated]
        < before["heating_need_kwh"].to_numpy()[inside & heated]
    ).all()
    assert (after["pv_kwh"].to_numpy()[~inside] == 0).all() and after["pv_kwh"].to_numpy()[inside].sum() > 0


def test_heat_pump_switch_moves_heat_to_electricity(
    central: Twin, baseline: tuple[EnergyInputs, EnergyRun]
) -> None:
    _, run = baseline
    plan = Plan([{"type": "heating_system", "uses": ["residential"], "system": "heat_pump"}])
    after = (
        EnergyEngine()
        .run(EnergyEngine().prepare(central, plan, workdir=Path(".")), seed=1, workdir=Path("."))
        .tables["buildings"]
    )
    before = run.tables["buildings"]
    residential = (before["use"] == "residential").to_numpy()
    assert (after.loc[residential, "final_district_heating_kwh"] == 0).all()
    assert (
        after.loc[~residential, "final_district_heating_kwh"].to_numpy()
        == before.loc[~residential, "final_district_heating_kwh"].to_numpy()
    ).all()
    extra = (
        after.loc[residential, "final_electricity_kwh"].sum()
        - before.loc[residential, "final_electricity_kwh"].sum()
    )
    heat = before.loc[residential, ["heating_need_kwh", "hot_water_need_kwh"]].to_numpy().sum()
    assert 1.5 < heat / extra < 4.0  # a seasonal COP between the regression's cold and mild ends


def test_emission_factors_of_a_target_year(demo: Twin) -> None:
    plan = Plan([{"type": "emission_factors", "year": 2040, "district_heating": 0.0, "electricity": 0.0,
                  "source": "Helen zero-emission target for 2040"}])  # fmt: skip
    run = EnergyEngine().run(EnergyEngine().prepare(demo, plan, workdir=Path(".")), seed=1, workdir=Path("."))
    assert _kpis(run)["buildings_co2_t"] == 0.0
    assert any("2040" in n for n in run.notes)


def test_a_selection_of_nothing_is_one_line_naming_the_intervention(demo: Twin) -> None:
    plan = Plan(
        [{"type": "envelope_retrofit", "uses": ["residential"], "built_from": 2090, "level": "usual"}]
    )
    with pytest.raises(ScenarioError) as err:
        EnergyEngine().prepare(demo, plan, workdir=Path("."))
    assert err.value.user_message().startswith(
        "plan.toml: interventions[0] (envelope_retrofit): buildings: the selection"
    )
    with pytest.raises(ScenarioError, match=r"interventions\[0\] \(pv_uptake\): zones: no zone 'nowhere'"):
        EnergyEngine().prepare(
            demo, Plan([{"type": "pv_uptake", "zones": ["nowhere"], "share": 0.5}]), workdir=Path(".")
        )
    with pytest.raises(ScenarioError, match=r"interventions\[0\] \(pv_uptake\)"):
        Plan([{"type": "pv_uptake", "uses": ["residential"], "share": 2}])


def test_check_reports_a_bad_selection_in_one_line_and_passes_a_good_one(demo: Twin) -> None:
    bad = Plan([{"type": "pv_uptake", "zones": ["nowhere"], "share": 0.5}])
    assert EnergyEngine().check(demo, bad) == [
        "plan.toml: interventions[0] (pv_uptake): zones: no zone 'nowhere' in the twin"
    ]
    assert (
        EnergyEngine().check(demo, Plan([{"type": "pv_uptake", "uses": ["residential"], "share": 0.5}])) == []
    )


def test_missing_weather_settings_and_files_are_one_line(demo: Twin, tmp_path: Path) -> None:
    assert demo.config is not None
    bare = demo.config.model_copy(update={"energy": demo.config.energy.model_copy(update={"weather": None})})
    with pytest.raises(
        ConfigError, match=r"twin.toml: energy.weather: not set: the energy engine needs an EPW"
    ):
        EnergyEngine().prepare(TwinContext(demo.twin_dir, bare), Plan(), workdir=Path("."))
    gone = demo.config.energy.weather.model_copy(update={"path": str(tmp_path / "gone.epw")})  # type: ignore[union-attr]
    missing = demo.config.model_copy(
        update={"energy": demo.config.energy.model_copy(update={"weather": gone})}
    )
    with pytest.raises(ConfigError, match=r"gone.epw: weather file not found"):
        EnergyEngine().prepare(TwinContext(demo.twin_dir, missing), Plan(), workdir=Path("."))


def test_inputs_are_plain_picklable_data(baseline: tuple[EnergyInputs, EnergyRun]) -> None:
    import pickle

    inputs, _ = baseline
    copy = pickle.loads(pickle.dumps(inputs))
    assert isinstance(copy.buildings, pd.DataFrame) and len(copy.buildings) == 446


def test_weekly_blocks_and_small_chunks_give_the_whole_year_answer(
    baseline: tuple[EnergyInputs, EnergyRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mass temperature carried across blocks and chunks: one block of 8,760 hours and one chunk of
    every building give the same per-building sums and hourly totals as 168-hour blocks (with a last
    block of 24 hours) and chunks of 100 buildings (some ending mid-way through the heated ones)."""
    from civictwin.engines.energy import model

    inputs, _ = baseline
    blocked = model.simulate_city(inputs, seed=2)
    monkeypatch.setattr(model, "BLOCK_HOURS", 8760)
    whole = model.simulate_city(inputs, seed=2)
    monkeypatch.setattr(model, "BLOCK_HOURS", 168)
    monkeypatch.setattr(model, "CHUNK_BUILDINGS", 100)
    chunked = model.simulate_city(inputs, seed=2)
    numbers = whole.buildings.select_dtypes("number").columns
    for other in (blocked, chunked):
        pd.testing.assert_frame_equal(other.buildings[numbers], whole.buildings[numbers], rtol=1e-12)
        pd.testing.assert_frame_equal(other.hourly, whole.hourly, rtol=1e-12)
    assert whole.buildings["heating_need_kwh"].sum() > 0
