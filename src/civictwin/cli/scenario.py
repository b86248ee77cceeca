"""Scenario commands: ``scenario new/list/show/validate``, ``simulate`` and ``compare``.

Scenario names resolve to ``<twin dir>/scenarios/<name>.toml`` (or a path to a .toml file); the name
``baseline`` is the twin as built. The demo's ready-made scenarios (``close_main_street``,
``zone_30``) are found when the twin has no file of that name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from civictwin.cli import app, console
from civictwin.errors import ScenarioError

if TYPE_CHECKING:
    from civictwin.compare.table import Comparison
    from civictwin.engines.traffic.pipeline import Ensemble
    from civictwin.scenarios.spec import Scenario

SCENARIOS_DIR = "scenarios"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

scenario_app = typer.Typer(help="Write, list, show and validate scenario files.", no_args_is_help=True)
app.add_typer(scenario_app, name="scenario")

TWIN = typer.Option(Path("."), "--twin", "-t", help="Directory holding twin.toml.")
SEEDS = typer.Option(5, "--seeds", "-n", min=1, max=100, help="Random seeds per scenario.")
WORKERS = typer.Option(2, "--workers", "-w", min=1, max=64, help="Seeds simulated in parallel processes.")
MESO = typer.Option(False, "--meso", help="SUMO's mesoscopic mode: faster, coarser (see docs).")
ITERATIONS = typer.Option(
    None, "--iterations", min=1, max=20, help="Simulation ↔ mode-choice rounds (default 3)."
)
SCALE = typer.Option(None, "--scale", min=0.01, max=100.0, help="Factor on the whole demand (default 1).")
OD = typer.Option(
    None, "--od", help="CSV OD matrix (origin, destination, trips) instead of the gravity model."
)
RUN_ID = typer.Option(None, "--id", help="Comparison id (folder under runs/); re-using one resumes it.")


# ------------------------------------------------------------------------------------------ resolution


def scenario_path(twin_dir: Path, name: str) -> Path | None:
    """The file a scenario name refers to: a path, the twin's ``scenarios/<name>.toml``, or a built-in."""
    from civictwin.engines.traffic.pipeline import BUILTIN_SCENARIOS

    direct = Path(name)
    if direct.suffix == ".toml" and direct.is_file():
        return direct
    for folder in (twin_dir / SCENARIOS_DIR, BUILTIN_SCENARIOS):
        candidate = folder / f"{name}.toml"
        if candidate.is_file():
            return candidate
    return None


def resolve(twin_dir: Path, name: str) -> Scenario:
    """The validated scenario called ``name`` with its derived-from chain applied."""
    from civictwin.engines.traffic.pipeline import resolve_scenario
    from civictwin.scenarios.spec import BASELINE, Scenario, load_scenario

    if name == BASELINE:
        return Scenario.baseline_scenario()
    path = scenario_path(twin_dir, name)
    if path is None:
        known = ", ".join(sorted(p.stem for p in (twin_dir / SCENARIOS_DIR).glob("*.toml"))) or "none"
        raise ScenarioError(
            f"no scenario '{name}' (scenarios in this twin: {known})", path=twin_dir / SCENARIOS_DIR
        )
    return resolve_scenario(load_scenario(path), path.parent)


# ------------------------------------------------------------------------------------ scenario commands


@scenario_app.command("new")
def new(
    name: str = typer.Argument(..., help="Scenario name: letters, digits, _ . -"),
    twin_dir: Path = TWIN,
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented scenario template to scenarios/NAME.toml next to twin.toml."""
    from civictwin.config import CONFIG_FILENAME
    from civictwin.scenarios.spec import scenario_template

    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$", name):
        raise ScenarioError("use letters, digits, '_', '.' and '-' (at most 80)", field=f"name '{name}'")
    if not (twin_dir / CONFIG_FILENAME).is_file():
        raise ScenarioError(f"no {CONFIG_FILENAME} here; pass the twin directory with --twin", path=twin_dir)
    path = twin_dir / SCENARIOS_DIR / f"{name}.toml"
    if path.exists() and not force:
        raise ScenarioError("already exists (use --force to overwrite)", path=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(scenario_template(name), encoding="utf-8")
    console.print(
        Text.assemble(
            "Wrote ", (str(path), "bold"), ": uncomment interventions, then ",
            (f"civictwin scenario validate {name}", "bold"), ".",
        )
    )  # fmt: skip


@scenario_app.command("list")
def list_scenarios(twin_dir: Path = TWIN) -> None:
    """List the twin's scenario files with their descriptions (and any that cannot be read)."""
    from civictwin.scenarios.spec import load_scenario

    files = sorted((twin_dir / SCENARIOS_DIR).glob("*.toml"))
    if not files:
        console.print(
            Text.assemble(
                f"No scenarios in {twin_dir / SCENARIOS_DIR}; write one with ",
                ("civictwin scenario new NAME", "bold"), ".",
            )
        )  # fmt: skip
        return
    table = Table("name", "interventions", "description", title=f"Scenarios of {twin_dir.resolve().name}")
    for path in files:
        try:
            scenario = load_scenario(path)
        except ScenarioError as exc:
            table.add_row(path.stem, Text("invalid", style="red"), exc.user_message())
            continue
        table.add_row(scenario.name, str(len(scenario.interventions)), scenario.description)
    console.print(table)


@scenario_app.command("show")
def show(name: str = typer.Argument(..., help="Scenario name or .toml path."), twin_dir: Path = TWIN) -> None:
    """Show a scenario: description, baseline, interventions in plain words, file hash."""
    from civictwin.scenarios.spec import intervention_label

    scenario = resolve(twin_dir, name)
    console.print(Text.assemble((scenario.name, "bold"), f" (derives from {scenario.baseline})"))
    console.print(scenario.description or "No description.")
    for index, intervention in enumerate(scenario.interventions):
        console.print(f"  {intervention_label(index, intervention)}: {intervention.describe()}")
    if scenario.path is not None:
        console.print(f"file {scenario.path}  sha256 {scenario.file_hash}", style="dim")


@scenario_app.command("validate")
def validate(
    name: str = typer.Argument(..., help="Scenario name or .toml path."), twin_dir: Path = TWIN
) -> None:
    """Check a scenario against the twin's network: every selection must match, no zone cut off."""
    from civictwin.engines.traffic.pipeline import load_twin
    from civictwin.scenarios.spec import validate_scenario

    scenario = resolve(twin_dir, name)
    inputs = load_twin(twin_dir)
    problems = validate_scenario(scenario, inputs.edges, crs=inputs.crs)
    if problems:
        for line in problems:
            console.print(Text.assemble(("✗", "red"), f" {line}"), highlight=False)
        raise ScenarioError(f"{len(problems)} problem(s) found", path=scenario.origin)
    console.print(
        Text.assemble(
            ("✓", "green"), f" {scenario.name}: {len(scenario.interventions)} intervention(s), all valid."
        )
    )


# ------------------------------------------------------------------------------------ simulate, compare


@contextmanager
def _progress() -> Iterator[Callable[[str, int, int], None]]:
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", style="progress.description", markup=False),
        BarColumn(),
        TextColumn("{task.fields[count]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("loading the twin", total=None, count="")

        def update(message: str, done: int, total: int) -> None:
            count = f"{done}/{total} seed runs" if total else ""
            progress.update(task, description=message, completed=done, total=total or None, count=count)

        yield update


def _ensemble(
    twin_dir: Path, names: Sequence[str], comparison_id: str, seeds: int, workers: int, **overrides: object
) -> Ensemble:
    from civictwin.engines.traffic.pipeline import load_params, run_ensemble

    if not _ID.match(comparison_id):
        raise ScenarioError(
            "use letters, digits, '_', '.' and '-' (at most 128)", field=f"--id '{comparison_id}'"
        )
    scenarios = [resolve(twin_dir, n) for n in names]
    params = load_params(twin_dir, **overrides)
    with _progress() as update:
        ensemble = run_ensemble(
            twin_dir,
            scenarios,
            comparison_id=comparison_id,
            seeds=seeds,
            workers=workers,
            params=params,
            progress=update,
        )
    if ensemble.resumed:
        console.print(
            f"Resumed: {len(ensemble.resumed)} seed run(s) were already complete under "
            f"{ensemble.comparison_dir} and were not simulated again."
        )
    return ensemble


def _fmt(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return "–"
    if unit == "share":
        return f"{100 * value:.1f}%"
    return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}"


def _cell(mean: float, low: float, high: float, unit: str, sign: str = "") -> Text:
    """``mean ±half-width`` of the 95% interval (just the mean when there is no interval)."""
    if not math.isfinite(low) or not math.isfinite(high):
        return Text(sign + _fmt(mean, unit))
    half = (high - low) / 2
    return Text.assemble(f"{sign}{_fmt(mean, unit)} ", (f"±{_fmt(half, unit)}", "dim"))


@app.command()
def simulate(
    scenario: str = typer.Argument(..., help="Scenario name, .toml path, or 'baseline'."),
    twin_dir: Path = TWIN,
    seeds: int = SEEDS,
    workers: int = WORKERS,
    meso: bool = MESO,
    iterations: int | None = ITERATIONS,
    scale: float | None = SCALE,
    od: Path | None = OD,
    run_id: str | None = RUN_ID,
) -> None:
    """Simulate one scenario over several seeds and print its KPIs with 95% intervals."""
    from civictwin.compare.table import kpi_label, kpi_rows

    demand = {"scale": scale} if scale is not None else None
    ensemble = _ensemble(
        twin_dir,
        [scenario],
        run_id or f"simulate-{Path(scenario).stem}",
        seeds,
        workers,
        mesoscopic=meso or None,
        iterations=iterations,
        demand=demand,
        od_csv=str(od.resolve()) if od is not None else None,
    )
    name = ensemble.scenarios[0].name
    table = Table("indicator", "unit", f"{name} (95% CI)", title=f"{name}: {len(ensemble.seeds)} seed(s)")
    for row in kpi_rows(ensemble.runs):
        table.add_row(kpi_label(row.kpi), row.unit, _cell(row.mean, row.ci_low, row.ci_high, row.unit))
    console.print(table)
    console.print(f"Seed results: {ensemble.comparison_dir / 'seeds' / name}")


@app.command()
def compare(
    base: str = typer.Argument(..., help="The baseline: 'baseline', a scenario name or .toml path."),
    plans: list[str] = typer.Argument(..., help="One or more plans to compare with it."),
    twin_dir: Path = TWIN,
    seeds: int = SEEDS,
    workers: int = WORKERS,
    meso: bool = MESO,
    iterations: int | None = ITERATIONS,
    scale: float | None = SCALE,
    od: Path | None = OD,
    run_id: str | None = RUN_ID,
) -> None:
    """Compare plans with a baseline over several seeds; print the KPI table and write the report."""
    from civictwin.compare import report_ensemble

    names = [base, *plans]
    comparison_id = run_id or "-vs-".join(Path(n).stem for n in names)[:128]
    demand = {"scale": scale} if scale is not None else None
    ensemble = _ensemble(
        twin_dir,
        names,
        comparison_id,
        seeds,
        workers,
        mesoscopic=meso or None,
        iterations=iterations,
        demand=demand,
        od_csv=str(od.resolve()) if od is not None else None,
    )
    with console.status("writing the comparison, maps and report"):
        comparison, report = report_ensemble(ensemble, baseline=ensemble.scenarios[0].name)
    console.print(_side_by_side(comparison))
    for sentence in comparison.summary:
        console.print(f"• {sentence}", highlight=False)
    console.print(Text.assemble("\nReport: ", (str(report), "bold")))


def _side_by_side(comparison: Comparison) -> Table:
    table = Table("KPI", title=f"Comparison {comparison.id}: mean ±95% CI half-width")
    for scenario in (comparison.baseline, *comparison.plans):
        table.add_column(scenario, justify="right")
    for plan in comparison.plans:
        table.add_column(f"{plan} − base", justify="right")
    for kpi in dict.fromkeys(r.kpi for r in comparison.kpis):
        unit = comparison.kpi(kpi, comparison.baseline).unit
        cells = [
            _cell(r.mean, r.ci_low, r.ci_high, unit)
            for r in (comparison.kpi(kpi, s) for s in (comparison.baseline, *comparison.plans))
        ]
        for plan in comparison.plans:
            d = comparison.difference(kpi, plan)
            verdict = Text("real", style="bold") if d.distinguishable else Text("noise", style="dim")
            sign = "+" if math.isfinite(d.mean) and d.mean > 0 else ""
            cells.append(Text.assemble(_cell(d.mean, d.ci_low, d.ci_high, unit, sign), " ", verdict))
        table.add_row(kpi, *cells)
    return table
