"""Finding scenarios: the twin's own files (``<twin dir>/scenarios/*.toml``) and the built-in ones.

A scenario name resolves to a ``.toml`` path given directly, then ``<twin dir>/scenarios/<name>.toml``,
then the demo's ready-made files shipped with civictwin (``close_main_street``, ``zone_30``,
``netzero_zone``, ``green_main_street``); the
name ``baseline`` is the twin as built. The CLI and the API both list and resolve scenarios here.
"""

from __future__ import annotations

import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from civictwin.errors import ScenarioError
from civictwin.scenarios.spec import BASELINE, InterventionCatalog, Scenario, load_scenario

SCENARIOS_DIR = "scenarios"
BUILTIN_SCENARIOS = Path(__file__).resolve().parents[1] / "data" / "scenarios"
"""The demo's ready-made scenario files."""


def twin_scenarios_dir(twin_dir: Path) -> Path:
    """``<twin dir>/scenarios``."""
    return twin_dir / SCENARIOS_DIR


def scenario_path(twin_dir: Path, name: str) -> Path | None:
    """The file a scenario name refers to: a path, the twin's ``scenarios/<name>.toml``, or a built-in."""
    direct = Path(name)
    if direct.suffix == ".toml" and direct.is_file():
        return direct
    for folder in (twin_scenarios_dir(twin_dir), BUILTIN_SCENARIOS):
        candidate = folder / f"{name}.toml"
        if candidate.is_file():
            return candidate
    return None


def find_scenario(twin_dir: Path, name: str, catalog: InterventionCatalog) -> Scenario:
    """The validated scenario called ``name``, with the interventions of its baseline chain applied."""
    if name == BASELINE:
        return Scenario.baseline_scenario()
    path = scenario_path(twin_dir, name)
    if path is None:
        folder = twin_scenarios_dir(twin_dir)
        known = ", ".join(sorted(p.stem for p in folder.glob("*.toml"))) or "none"
        raise ScenarioError(f"no scenario '{name}' (scenarios in this twin: {known})", path=folder)
    return resolve_chain(load_scenario(path, catalog), path.parent, catalog)


def resolve_chain(scenario: Scenario, scenarios_dir: Path, catalog: InterventionCatalog) -> Scenario:
    """The scenario with the interventions of the scenarios it derives from prepended (chains allowed).

    ``baseline = "baseline"`` is the twin as built; any other name is ``<scenarios_dir>/<name>.toml``.
    """
    chain: list[Scenario] = [scenario]
    while chain[-1].baseline != BASELINE:
        parent_name = chain[-1].baseline
        if parent_name in {s.name for s in chain}:
            raise ScenarioError(
                f"baseline '{parent_name}' makes a cycle", path=scenario.origin, field="baseline"
            )
        path = scenarios_dir / f"{parent_name}.toml"
        if not path.is_file():
            raise ScenarioError(
                f"baseline '{parent_name}' has no file {path}", path=scenario.origin, field="baseline"
            )
        chain.append(load_scenario(path, catalog))
    if len(chain) == 1:
        return scenario
    interventions = [i for s in reversed(chain) for i in s.interventions]
    return scenario.model_copy(update={"interventions": interventions})


@dataclass(frozen=True)
class ScenarioFile:
    """What a scenario file says, read without validating its interventions (for listings).

    A file that cannot be read is listed with its ``error`` rather than hidden.
    """

    id: str
    path: Path
    name: str
    description: str
    baseline: str | None
    interventions: list[dict[str, Any]]
    error: str | None


def scenario_files(twin_dir: Path) -> list[ScenarioFile]:
    """Every ``<twin dir>/scenarios/*.toml``, sorted by file name."""
    folder = twin_scenarios_dir(twin_dir)
    if not folder.is_dir():
        return []
    return [_describe_file(path) for path in sorted(folder.glob("*.toml"))]


def _describe_file(path: Path) -> ScenarioFile:
    error = None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        data, error = {}, f"{path.name}: {exc}"
    section = data.get("scenario")
    table: dict[str, Any] = section if isinstance(section, dict) else data
    interventions = table.get("interventions", data.get("interventions", []))
    baseline = table.get("baseline")
    return ScenarioFile(
        id=path.stem,
        path=path,
        name=str(table.get("name") or path.stem),
        description=str(table.get("description", "")),
        baseline=str(baseline) if baseline is not None else None,
        interventions=[i for i in interventions if isinstance(i, dict)]
        if isinstance(interventions, list)
        else [],
        error=error,
    )


def copy_builtin_scenarios(twin_dir: Path) -> list[Path]:
    """Copy the demo's scenario files into ``<twin dir>/scenarios/`` (existing files are kept)."""
    target = twin_scenarios_dir(twin_dir)
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for source in sorted(BUILTIN_SCENARIOS.glob("*.toml")):
        destination = target / source.name
        if not destination.exists():
            shutil.copyfile(source, destination)
            copied.append(destination)
    return copied
