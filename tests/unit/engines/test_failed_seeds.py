"""A plan whose simulation fails the engine's quality check (the toy's ``toy_gridlock`` raises the
traffic engine's QualityCheckFailed) is a finding, not an error: its seeds are saved as failed seeds
and reused on a rerun, the comparison leaves the whole plan out (no numbers from the seeds that
passed) and says why in words, the other plan gets exactly the numbers of a comparison without it,
the manifest records every seed's status, the command line exits 0 with a warning, and the API
serves it. A failed baseline still stops the comparison with one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import shapely
from fastapi.testclient import TestClient
from plugin import subprocess_env, write_twin

from civictwin.compare import compare_ensemble, report_ensemble
from civictwin.engines.base import TwinContext
from civictwin.engines.ensemble import Ensemble, run_ensemble
from civictwin.errors import QualityCheckFailed
from civictwin.runs import RUN_FILE, NotEvaluated, SeedFailure, SeedRecord
from civictwin.scenarios.spec import Scenario

CIVICTWIN = Path(sys.executable).parent / "civictwin"
ZONES = gpd.GeoDataFrame(
    {"zone_id": ["a", "b", "c"]},
    geometry=[shapely.box(385_000 + 200 * i, 6_672_000, 385_100 + 200 * i, 6_672_100) for i in range(3)],
    crs="EPSG:32635",
)
SEEDS = (1, 2, 3)
REASON = "{seed}00 teleports for 5,390 trips exceed the allowed share 5%: the network is gridlocked or broken"
JAM_STATEMENT = (
    "'jam' could not be evaluated: the simulation failed the quality check in 1 of 3 runs (seed 2: 200 "
    "teleports for 5,390 trips exceed the allowed share 5%: the network is gridlocked or broken); under "
    "this model the plan leaves the simulated network gridlocked or its trips unfinished, and its "
    "indicators are not reported."
)


@pytest.fixture(scope="module")
def site(toy_site: list[str]) -> list[str]:
    """The toy engine's import paths (conftest's ``toy_site``)."""
    return toy_site


@pytest.fixture(scope="module")
def scenarios(site: list[str]) -> dict[str, Scenario]:
    """baseline; warm (zone b × 1.5); jam (gridlocks on seed 2 only); stuck (gridlocks on every seed)."""
    from civictwin_toy.engine import Gridlock, Nudge

    return {
        "baseline": Scenario.baseline_scenario(),
        "warm": Scenario(name="warm", interventions=[Nudge(type="toy_nudge", factor=1.5, zones=["b"])]),
        "jam": Scenario(name="jam", interventions=[Gridlock(type="toy_gridlock", seeds=[2])]),
        "stuck": Scenario(name="stuck", interventions=[Gridlock(type="toy_gridlock")]),
    }


def ensemble(twin: Path, scenarios: list[Scenario], comparison: str) -> Ensemble:
    from civictwin_toy.engine import ToyEngine

    return run_ensemble(
        TwinContext.load(twin), scenarios, [ToyEngine()], comparison_id=comparison, seeds=SEEDS, workers=2
    )


@pytest.fixture(scope="module")
def jammed(tmp_path_factory: pytest.TempPathFactory, scenarios: dict[str, Scenario]) -> Ensemble:
    """baseline, warm and jam, compared and written."""
    twin = write_twin(tmp_path_factory.mktemp("jam-twin"), ZONES)
    result = ensemble(twin, [scenarios[n] for n in ("baseline", "warm", "jam")], "jammed")
    report_ensemble(result)
    return result


def test_a_seed_that_fails_the_quality_check_is_saved_as_a_failed_seed(jammed: Ensemble) -> None:
    jam = jammed.runs["toy"]["jam"]
    assert [(s.seed, s.failed, s.failure) for s in jam] == [
        (1, False, ""), (2, True, REASON.format(seed=2)), (3, False, ""),
    ]  # fmt: skip
    failed = jam[1]
    assert (failed.kpis, failed.tables, failed.notes) == ([], [], [])
    assert failed.directory is not None and (failed.directory / "complete").is_file()
    assert json.loads((failed.directory / RUN_FILE).read_text())["failure"] == REASON.format(seed=2)
    assert sorted(p.name for p in failed.directory.iterdir()) == ["complete", "run.json", "work"]
    assert jam[0].directory is not None
    earlier = json.loads((jam[0].directory / RUN_FILE).read_text())
    del earlier["failure"]  # as written before failed seeds were kept
    assert SeedRecord.model_validate(earlier).failed is False


def test_the_failed_plan_is_a_finding_and_the_other_plan_keeps_its_numbers(
    jammed: Ensemble, scenarios: dict[str, Scenario], tmp_path: Path
) -> None:
    record = compare_ensemble(jammed).record
    assert record.plans == ["warm"]
    assert record.not_evaluated == [
        NotEvaluated(
            scenario="jam",
            runs=3,
            failures=[SeedFailure(engine="toy", seed=2, reason=REASON.format(seed=2))],
            statement=JAM_STATEMENT,
        )
    ]
    assert record.summary[0] == JAM_STATEMENT
    assert {r.scenario for r in record.kpis} == {"baseline", "warm"}
    assert {d.plan for d in record.differences} == {"warm"}
    # the same seeds without the failing plan: the same numbers, to the bit
    twin = write_twin(tmp_path / "twin", ZONES)
    alone = compare_ensemble(ensemble(twin, [scenarios["baseline"], scenarios["warm"]], "alone")).record
    assert record.kpis == alone.kpis and record.differences == alone.differences
    assert record.summary[1:] == alone.summary
    warm = record.difference("toy_heat_mwh", "warm")
    assert warm.mean == pytest.approx(0.05, rel=1e-9) and warm.distinguishable  # +50 kWh in zone b


def test_the_manifest_and_the_reports_record_the_failed_seeds(jammed: Ensemble) -> None:
    manifest = json.loads((jammed.directory / "manifest.json").read_text())
    assert manifest["manifest_version"] == 3
    statuses = {(r["scenario"], r["seed"]): (r["status"], r["failure"]) for r in manifest["runs"]}
    assert statuses == {
        **{(s, n): ("complete", "") for s in ("baseline", "warm", "jam") for n in SEEDS},
        ("jam", 2): ("failed", REASON.format(seed=2)),
    }
    record = json.loads((jammed.directory / "comparison.json").read_text())
    assert record["plans"] == ["warm"] and record["not_evaluated"][0]["failures"][0]["seed"] == 2
    english = (jammed.directory / "report.html").read_text()
    assert JAM_STATEMENT.replace("'", "&#x27;") in english
    kpis = english[english.index('<table class="kpis">') :]
    kpis = kpis[: kpis.index("</table>")]
    assert "<th>baseline</th><th>warm</th><th>warm − baseline</th><th>jam</th>" in kpis
    assert kpis.count(">not evaluated</td></tr>") == 1  # the toy's one KPI, its row ends with it
    slovak = (jammed.directory / "report.sk.html").read_text()
    assert "&#x27;jam&#x27; nebolo možné vyhodnotiť" in slovak and "200 teleports for 5,390 trips" in slovak
    assert ">nevyhodnotené</td></tr>" in slovak
    italian = (jammed.directory / "report.it.html").read_text()
    assert "Non è stato possibile valutare &#x27;jam&#x27;" in italian


def test_a_rerun_reuses_the_failed_seed_without_simulating_it(
    jammed: Ensemble, scenarios: dict[str, Scenario]
) -> None:
    twin = jammed.twin.twin_dir
    log = (twin / "toy-runs.log").read_text()
    assert sorted(log.splitlines()) == sorted(f"{s} {n}" for s in ("baseline", "warm", "jam") for n in SEEDS)
    saved = (jammed.directory / "seeds" / "toy" / "jam" / "seed_2" / RUN_FILE).read_bytes()
    again = ensemble(twin, [scenarios[n] for n in ("baseline", "warm", "jam")], "jammed")
    assert again.computed == () and len(again.resumed) == 9
    assert (twin / "toy-runs.log").read_text() == log  # nothing ran again
    assert (again.directory / "seeds" / "toy" / "jam" / "seed_2" / RUN_FILE).read_bytes() == saved
    assert again.runs["toy"]["jam"][1].failure == REASON.format(seed=2)


def test_a_failed_baseline_stops_the_comparison_with_one_line(
    scenarios: dict[str, Scenario], tmp_path: Path
) -> None:
    twin = write_twin(tmp_path / "twin", ZONES)
    result = ensemble(twin, [scenarios["stuck"], scenarios["warm"]], "stuck")
    with pytest.raises(QualityCheckFailed) as failed:
        compare_ensemble(result)
    assert failed.value.user_message() == (
        "the baseline 'stuck' could not be evaluated: the simulation failed the quality check in 3 of 3 "
        f"runs (engine 'toy', seed 1: {REASON.format(seed=1)}), so no plan can be compared with it"
    )


def cli(twin: Path, site: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CIVICTWIN), *args, "--twin", str(twin)],
        env=subprocess_env(site, COLUMNS="400"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def write_scenario(twin: Path, name: str, text: str) -> None:
    (twin / "scenarios").mkdir(exist_ok=True)
    (twin / "scenarios" / f"{name}.toml").write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory, site: list[str]) -> tuple[Path, Any]:
    """``civictwin compare baseline stuck warm`` on a twin (stuck gridlocks on every seed)."""
    twin = write_twin(tmp_path_factory.mktemp("cli-twin"), ZONES)
    write_scenario(twin, "warm", 'name = "warm"\n[[interventions]]\ntype = "toy_nudge"\nfactor = 1.5\n')
    write_scenario(twin, "stuck", 'name = "stuck"\n[[interventions]]\ntype = "toy_gridlock"\n')
    done = cli(twin, site, "compare", "baseline", "stuck", "warm", "--seeds", "2", "--id", "cmp")
    return twin, done


def test_the_command_line_exits_0_and_warns_of_the_finding(compared: tuple[Path, Any]) -> None:
    _, done = compared
    assert done.returncode == 0, done.stderr
    statement = (
        "'stuck' could not be evaluated: the simulation failed the quality check in 2 of 2 runs (seed 1: "
        f"{REASON.format(seed=1)}); under this model the plan leaves the simulated network gridlocked or "
        "its trips unfinished, and its indicators are not reported."
    )
    assert f"Warning: {statement}" in done.stdout.splitlines()
    row = next(line for line in done.stdout.splitlines() if "toy_heat_mwh" in line)
    assert row.rstrip(" │").endswith("not evaluated")  # the stuck plan's column, after warm's change
    header = next(line for line in done.stdout.splitlines() if "warm − base" in line)
    assert header.index("warm − base") < header.index("stuck")


def test_a_failed_baseline_on_the_command_line_is_one_line(
    compared: tuple[Path, Any], site: list[str]
) -> None:
    twin, _ = compared
    done = cli(twin, site, "compare", "stuck", "warm", "--seeds", "2", "--id", "stuck-base")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: the baseline 'stuck' could not be evaluated: the simulation failed the quality check in 2 "
        f"of 2 runs (engine 'toy', seed 1: {REASON.format(seed=1)}), so no plan can be compared with it"
    ]


def test_simulate_prints_the_finding_instead_of_numbers(compared: tuple[Path, Any], site: list[str]) -> None:
    twin, _ = compared
    done = cli(twin, site, "simulate", "stuck", "--seeds", "1", "--id", "one")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2] == (
        "Warning: 'stuck' could not be evaluated: the simulation failed the quality check in 1 of 1 runs "
        f"(seed 1: {REASON.format(seed=1)}); under this model the plan leaves the simulated network "
        "gridlocked or its trips unfinished, and its indicators are not reported."
    )
    assert "toy_heat_mwh" not in done.stdout and "Toy heat demand" not in done.stdout


def test_the_api_serves_the_finding(compared: tuple[Path, Any]) -> None:
    from civictwin.api.app import create_app

    twin, _ = compared
    with TestClient(create_app(twin)) as client:
        listed = client.get("/comparisons").json()["comparisons"]
        assert [(c["id"], c["plans"]) for c in listed] == [("cmp", ["warm"])]
        assert sorted(listed[0]["links"]["tables"]["toy.zones"]) == ["warm"]
        record = client.get("/comparisons/cmp").json()
        finding = record["not_evaluated"][0]
        assert (finding["scenario"], finding["runs"], [f["seed"] for f in finding["failures"]]) == (
            "stuck", 2, [1, 2],
        )  # fmt: skip
        assert record["summary"][0] == finding["statement"]
        kpis = client.get("/comparisons/cmp/kpis").json()
        assert kpis["not_evaluated"] == record["not_evaluated"]
        assert {k["scenario"] for k in kpis["kpis"]} == {"baseline", "warm"}
        assert client.get("/comparisons/cmp/tables/toy.zones/stuck").status_code == 404
        manifest = client.get("/comparisons/cmp/manifest").json()
        assert {(r["scenario"], r["status"]) for r in manifest["runs"]} == {
            ("baseline", "complete"), ("warm", "complete"), ("stuck", "failed"),
        }  # fmt: skip
        slovak = client.get("/comparisons/cmp/report", params={"lang": "sk"})
        assert slovak.status_code == 200 and "&#x27;stuck&#x27; nebolo možné vyhodnotiť" in slovak.text
        consult = client.get("/consultations/cmp/data", params={"lang": "sk"}).json()
        assert consult["plans"] == ["warm"] and consult["plan"] == "warm"
        assert consult["summary"][0].startswith("'stuck' nebolo možné vyhodnotiť: simulácia neprešla")


def test_a_comparison_whose_only_plan_failed_is_written_and_served(
    scenarios: dict[str, Scenario], tmp_path: Path
) -> None:
    from civictwin.api.app import create_app

    twin = write_twin(tmp_path / "twin", ZONES)
    comparison, report = report_ensemble(ensemble(twin, [scenarios["baseline"], scenarios["stuck"]], "only"))
    record = comparison.record
    assert (
        record.plans == [] and record.differences == [] and {k.scenario for k in record.kpis} == {"baseline"}
    )
    assert record.summary == [record.not_evaluated[0].statement] and "in 3 of 3 runs" in record.summary[0]
    assert "<title>Comparison: stuck vs baseline</title>" in report.read_text()
    with TestClient(create_app(twin)) as client:
        assert client.get("/comparisons/only").json()["summary"] == record.summary
        page = client.get("/consultations/only/data")
        assert page.status_code == 404
        assert page.json()["detail"] == (
            "comparison 'only' has no plan to consult: 'stuck' failed the simulation's quality check"
        )
