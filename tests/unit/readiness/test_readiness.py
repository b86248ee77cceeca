"""Readiness reports of every built-in template (and a city's own) on a hand-made twin, checked
against hand-made expectations; the templates' KPI names against the engines' own; malformed templates."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from readinesstwin import NOW

from civictwin.cli import main
from civictwin.config import load_config
from civictwin.engines.heat.settings import HeatSettings
from civictwin.engines.traffic.kpis import MEANINGS
from civictwin.errors import ConfigError
from civictwin.readiness import template_folders
from civictwin.readiness.assess import ReadinessReport, assess
from civictwin.readiness.holdings import Holdings, gather
from civictwin.readiness.render import as_json, as_markdown
from civictwin.readiness.templates import find_template, load_template, template_files
from civictwin.store.duckdb import DuckDBStore

SRC = Path(__file__).resolve().parents[3] / "src" / "civictwin"

# use case → (maturity, next level's unmet needs, {need: status}, KPIs ready). Worked out by hand from
# the twin described in readinesstwin.py.
EXPECTED = {
    "traffic-plan": (
        2,
        ["transit_service"],
        {"network": "present", "zones": "present", "counts": "present", "transit_service": "missing",
         "validation": "failed"},
        [],
    ),
    "netzero": (
        1,
        ["roofs"],
        {"buildings": "present", "zones": "present", "roofs": "missing", "weather": "present",
         "typology": "missing", "validation": "missing"},
        [],
    ),
    "heat-green": (
        0,
        ["trees", "land_use"],
        {"buildings": "present", "trees": "ungoverned", "green": "present", "land_use": "missing",
         "walk_network": "present", "air_temperature": "missing", "weather": "missing", "validation": "missing"},
        ["residents_green_access_share"],
    ),
    "tourism": (
        1,
        ["visitors"],
        {"attractions": "present", "network": "present", "zones": "present", "visitors": "missing",
         "transit_service": "missing", "validation": "failed"},
        [],
    ),
    "housing-growth": (
        1,
        ["network"],
        {"population": "present", "buildings": "present", "green": "present", "network": "stale",
         "transit_service": "missing", "weather": "present", "population_check": "present"},
        ["buildings_co2_t"],
    ),
    "school-streets": (
        2,
        ["school_trips"],
        {"network": "present", "counts": "present", "school_trips": "missing", "validation": "failed"},
        [],
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def holdings(twin_dir: Path) -> Holdings:
    """What the twin holds, read once (opening the store costs most of a report's time)."""
    config = load_config(twin_dir)
    with DuckDBStore.open(config.store_path) as store:
        return gather(config, store, record_kinds={"validation", "survey"})


def report(twin_dir: Path, holdings: Holdings, use_case: str) -> ReadinessReport:
    """The report of ``use_case``, its template found as the command finds it (the city's folder too)."""
    template = find_template(use_case, template_folders(load_config(twin_dir)))
    return assess(template, holdings, now=NOW)


@pytest.mark.parametrize("use_case", sorted(EXPECTED))
def test_each_template_on_the_small_twin(twin_dir: Path, holdings: Holdings, use_case: str) -> None:
    result = report(twin_dir, holdings, use_case)
    maturity, next_level, statuses, ready = EXPECTED[use_case]
    assert result.maturity == maturity
    assert result.next_level == next_level
    assert {n.id: n.status for n in result.needs} == statuses
    assert [k.name for k in result.kpis if k.ready] == ready
    for need in result.needs:  # how to get it is said exactly for what is not met
        assert (need.how_to_get is None) == (need.status == "present")


def test_what_each_need_reports(twin_dir: Path, holdings: Holdings) -> None:
    traffic = {n.id: n for n in report(twin_dir, holdings, "traffic-plan").needs}
    network = traffic["network"]
    assert (network.licence, network.access, network.steward) == ("ODbL-1.0", "public", "City GIS team")
    assert (network.as_of, network.age_days) == ("2022-06-01T00:00:00+00:00", 1644.0)  # 4 years + 183 days
    counts = traffic["counts"]
    assert (counts.as_of, counts.age_days) == ("2026-11-29T00:00:00Z", 2.0)
    assert counts.quality == ["1 datastream(s), completeness 100%"]  # 3 hourly results of 3 expected
    assert (counts.licence, counts.steward) == ("CC-BY-4.0", "Mobility team")
    assert traffic["validation"].validation == "failed"
    assert traffic["zones"].validation == "passed"
    assert traffic["transit_service"].details == ["the twin has no table 'transit_stop_frequency'"]
    housing = {n.id: n for n in report(twin_dir, holdings, "housing-growth").needs}
    assert housing["network"].details == ["1644 days old; this use case needs at most 1100"]
    assert housing["population_check"].validation == "passed"
    assert housing["buildings"].quality == ["population is an estimate"]
    heat = {n.id: n for n in report(twin_dir, holdings, "heat-green").needs}
    assert heat["trees"].details == ["no licence and no access in the catalogue"]
    assert heat["weather"].details == [f"heat.epw names {twin_dir / 'missing.epw'}, which does not exist"]


def test_json_and_markdown(twin_dir: Path, holdings: Holdings) -> None:
    netzero = report(twin_dir, holdings, "netzero")
    data = json.loads(as_json(netzero))
    assert (data["maturity"], data["maturity_name"]) == (1, "status")
    assert [n["id"] for n in data["needs"] if not n["met"]] == ["roofs", "typology", "validation"]
    page = as_markdown(netzero)
    assert "**Maturity: level 1 of 4 (status).**" in page
    assert "## To reach level 2 (informative)" in page
    assert (
        "- typology is not set in twin.toml" not in page
        and "- energy.typology is not set in twin.toml" in page
    )


def _engine_kpi_names() -> set[str]:
    """Every KPI name the engines return: traffic's table, the names written in energy's and heat's code."""
    energy = (SRC / "engines/energy/results.py").read_text(encoding="utf-8")
    heat = (SRC / "engines/heat/run.py").read_text(encoding="utf-8")
    heat = heat.replace("{settings.stress_class}", HeatSettings().stress_class)
    names = set(MEANINGS)
    names |= set(re.findall(r'Kpi\(\s*f?"([a-z0-9_]+)"', energy))
    names |= {f"buildings_final_{c}_mwh" for c in ("electricity", "district_heating", "gas", "oil")}
    names |= set(re.findall(r'Kpi\(\s*f?"([a-z0-9_]+)"', heat))
    return names


def test_template_kpis_are_named_as_the_engines_name_them() -> None:
    known = _engine_kpi_names()
    assert {"buildings_netzero_gap_t", "residents_utci_strong_heat", "canopy_cover", "share_car"} <= known
    for name, path in template_files([]).items():
        template = load_template(path)
        unknown = [k.name for k in template.kpis if k.name not in known]
        assert unknown == [], name
        assert {k.engine for k in template.kpis} <= {"traffic", "energy", "heat"}


def test_malformed_templates_are_one_line_naming_file_and_field(tmp_path: Path) -> None:
    good = (SRC / "readiness/templates/tourism.toml").read_text(encoding="utf-8")
    cases = {
        "level.toml": (good.replace("level = 2", "level = 5"), "needs.visitors.level: Input should be less than or equal to 4"),
        "unknown.toml": (good.replace('needs = ["attractions", "network", "zones", "transit_service", "visitors"]',
                                      'needs = ["attractions", "parking"]'),
                         "kpis[1] (share_pt).needs: unknown need(s) parking"),
        "kind.toml": (good.replace('table = "pois"', 'observed_property = "pois"'),
                      "needs.attractions: a 'layer' need requires 'table'"),
        "broken.toml": ("title = ", "not valid TOML"),
    }  # fmt: skip
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_template(tmp_path / name)
        assert caught.value.user_message().startswith(f"{tmp_path / name}: {message}")


def test_cli_city_template_and_a_malformed_one(
    twin_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["readiness", str(twin_dir), "--use-case", "school-streets", "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert (data["use_case"], data["maturity"], data["next_level"]) == ("school-streets", 2, ["school_trips"])
    assert data["template"] == str(twin_dir / "usecases" / "school-streets.toml")
    (tmp_path / "bad.toml").write_text('title = "x"\nobjective = "y"\nkpis = []\n[needs]\n', encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        main(["readiness", str(twin_dir), "--use-case", "bad", "--templates", str(tmp_path)])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {tmp_path / 'bad.toml'}: kpis: Tuple should have at least 1 item after validation, not 0"
    ]


def test_an_unknown_use_case_names_the_known_ones(twin_dir: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        find_template("parking", template_folders(load_config(twin_dir)))
    assert caught.value.user_message() == (
        "--use-case: no use-case template 'parking' "
        "(known: heat-green, housing-growth, netzero, school-streets, tourism, traffic-plan)"
    )


def test_the_json_on_stdout_is_all_there_is_on_it(twin_dir: Path) -> None:
    """Run as ``python -c`` (interactive to DuckDB, which would draw its progress bar on stdout), the
    command's stdout is its JSON document and nothing else."""
    ran = subprocess.run(
        [sys.executable, "-c", "from civictwin.entry import main; main()", "readiness", str(twin_dir),
         "--use-case", "traffic-plan", "--format", "json"],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    document = json.loads(ran.stdout)
    assert (document["use_case"], document["maturity"]) == ("traffic-plan", 2)
