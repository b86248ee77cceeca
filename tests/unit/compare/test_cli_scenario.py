"""The scenario commands through the real CLI entry point (files written and read back)."""

from __future__ import annotations

from pathlib import Path

import pytest

import civictwin.cli.scenario  # noqa: F401  (registers the commands)
from civictwin.cli import main
from civictwin.engines.registry import intervention_catalog
from civictwin.engines.traffic.engine import TrafficEngine
from civictwin.scenarios.spec import load_scenario

CATALOG = intervention_catalog([TrafficEngine()])


@pytest.fixture
def twin_dir(tmp_path: Path) -> Path:
    (tmp_path / "twin.toml").write_text("# a twin\n")
    return tmp_path


def test_new_writes_a_loadable_template(twin_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["scenario", "new", "my_plan", "--twin", str(twin_dir)])
    path = twin_dir / "scenarios" / "my_plan.toml"
    scenario = load_scenario(path, CATALOG)
    assert scenario.name == "my_plan" and scenario.interventions == []
    assert 'type = "close_streets"' in path.read_text()  # the traffic engine's commented examples
    with pytest.raises(SystemExit) as exit_info:
        main(["scenario", "new", "my_plan", "--twin", str(twin_dir)])
    assert exit_info.value.code == 1
    assert "already exists (use --force to overwrite)" in capsys.readouterr().err


def test_bad_names_and_missing_twin_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["scenario", "new", "bad name", "--twin", str(tmp_path)])
    assert "name 'bad name': use letters, digits" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["scenario", "new", "ok", "--twin", str(tmp_path)])
    assert "no twin.toml here" in capsys.readouterr().err


def test_list_and_show(twin_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = twin_dir / "scenarios"
    folder.mkdir()
    (folder / "shut.toml").write_text(
        'name = "shut"\ndescription = "Shut Main Street."\n\n[[interventions]]\ntype = "close_streets"\n'
        'streets = ["Main Street"]\nmodes = ["car"]\n'
    )
    (folder / "broken.toml").write_text('name = "broken"\n[[interventions]]\ntype = "teleport"\n')
    main(["scenario", "list", "--twin", str(twin_dir)])
    listed = capsys.readouterr().out
    assert "shut" in listed and "Shut Main Street." in listed and "invalid" in listed
    main(["scenario", "show", "shut", "--twin", str(twin_dir)])
    shown = capsys.readouterr().out
    assert "interventions[0] (close_streets): streets Main Street [traffic]" in shown and "sha256" in shown
    # the demo's ready-made scenarios are found when the twin has no file of that name
    main(["scenario", "show", "zone_30", "--twin", str(twin_dir)])
    assert "interventions[0] (speed_limit)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["scenario", "show", "nothing", "--twin", str(twin_dir)])
    assert "no scenario 'nothing' (scenarios in this twin: broken, shut)" in capsys.readouterr().err


def test_engines_lists_the_installed_engines(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: no cell wraps
    main(["engines"])
    listed = capsys.readouterr().out
    assert "traffic" in listed and "close_streets" in listed and "edges, zones" in listed
    assert "civictwin 0.1.0" in listed  # the package that provides it
