"""Scenario commands: ``scenario new/list/show/validate``, ``engines``, ``simulate`` and ``compare``.

Scenario names resolve through :mod:`civictwin.scenarios.library` (a path, the twin's
``scenarios/<name>.toml``, or a built-in); the name ``baseline`` is the twin as built. Engines come
from the registry (:mod:`civictwin.engines.registry`): a comparison runs every engine its scenarios'
interventions belong to, plus those named with ``--engine``.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from civictwin.cli import app, console
from civictwin.errors import ScenarioError

if TYPE_CHECKING:
    from civictwin.compare import Comparison
    from civictwin.engines.ensemble import Ensemble
    from civictwin.engines.registry import Installed
    from civictwin.scenarios.spec import InterventionCatalog, Scenario

scenario_app = typer.Typer(help="Write, list, show and validate scenario files.", no_args_is_help=True)
app.add_typer(scenario_app, name="scenario")

TWIN = typer.Option(Path("."), "--twin", "-t", help="Directory holding twin.toml.")
SEEDS = typer.Option(5, "--seeds", "-n", min=1, max=100, help="Random seeds per scenario.")
WORKERS = typer.Option(2, "--workers", "-w", min=1, max=64, help="Seeds simulated in parallel processes.")
ENGINES = typer.Option(
    [], "--engine", "-e", help="Also run this engine (repeatable); by default those the scenarios use."
)
SETTINGS = typer.Option(
    [], "--set", help="An engine parameter, ENGINE.KEY=VALUE (TOML value), e.g. traffic.iterations=2."
)
SEED_TIMEOUT = typer.Option(
    7200.0, "--seed-timeout", min=1.0, help="Seconds one seed may run before it counts as hanging."
)
MESO = typer.Option(False, "--meso", help="Traffic: SUMO's mesoscopic mode, faster and coarser (see docs).")
ITERATIONS = typer.Option(
    None, "--iterations", min=1, max=20, help="Traffic: simulation ↔ mode-choice rounds (default 3)."
)
SCALE = typer.Option(
    None, "--scale", min=0.01, max=100.0, help="Traffic: factor on the whole demand (default 1)."
)
OD = typer.Option(
    None, "--od", help="Traffic: CSV OD matrix (origin, destination, trips) instead of the gravity model."
)
RUN_ID = typer.Option(None, "--id", help="Comparison id (folder under runs/); re-using one resumes it.")
CLUSTER = typer.Option(
    None,
    "--cluster",
    help="Run the seeds on a Dask cluster: a scheduler address (tcp://host:8786) or 'local' for a Dask "
    "LocalCluster of --workers processes (default: [compute] cluster in twin.toml, else the local pool).",
)
CLUSTER_TIMEOUT = typer.Option(
    None, "--cluster-timeout", min=0.1, help="Seconds to wait for the Dask scheduler (default 10)."
)


# ------------------------------------------------------------------------------------------ resolution


def installed() -> dict[str, Installed]:
    """Every installed engine, loaded."""
    from civictwin.engines.registry import load_engines

    return load_engines()


def catalog_of(engines: dict[str, Installed]) -> InterventionCatalog:
    """The intervention types of ``engines``."""
    from civictwin.engines.registry import intervention_catalog

    return intervention_catalog(engines)


def resolve(twin_dir: Path, name: str, catalog: InterventionCatalog) -> Scenario:
    """The validated scenario called ``name`` with its derived-from chain applied."""
    from civictwin.scenarios.library import find_scenario

    return find_scenario(twin_dir, name, catalog)


# ------------------------------------------------------------------------------------ scenario commands


@scenario_app.command("new")
def new(
    name: str = typer.Argument(..., help="Scenario name: letters, digits, _ . -"),
    twin_dir: Path = TWIN,
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented scenario template to scenarios/NAME.toml next to twin.toml."""
    from civictwin.config import CONFIG_FILENAME
    from civictwin.engines.base import DocumentsScenarios
    from civictwin.scenarios.library import twin_scenarios_dir
    from civictwin.scenarios.spec import scenario_template

    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$", name):
        raise ScenarioError("use letters, digits, '_', '.' and '-' (at most 80)", field=f"name '{name}'")
    if not (twin_dir / CONFIG_FILENAME).is_file():
        raise ScenarioError(f"no {CONFIG_FILENAME} here; pass the twin directory with --twin", path=twin_dir)
    path = twin_scenarios_dir(twin_dir) / f"{name}.toml"
    if path.exists() and not force:
        raise ScenarioError("already exists (use --force to overwrite)", path=path)
    examples = {
        n: e.engine.scenario_examples()
        for n, e in installed().items()
        if isinstance(e.engine, DocumentsScenarios)
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(scenario_template(name, examples=examples), encoding="utf-8")
    console.print(
        Text.assemble(
            "Wrote ", (str(path), "bold"), ": uncomment interventions, then ",
            (f"civictwin scenario validate {name}", "bold"), ".",
        )
    )  # fmt: skip


@scenario_app.command("list")
def list_scenarios(twin_dir: Path = TWIN) -> None:
    """List the twin's scenario files with their descriptions (and any that cannot be read)."""
    from civictwin.scenarios.library import scenario_files, twin_scenarios_dir
    from civictwin.scenarios.spec import load_scenario

    files = scenario_files(twin_dir)
    if not files:
        console.print(
            Text.assemble(
                f"No scenarios in {twin_scenarios_dir(twin_dir)}; write one with ",
                ("civictwin scenario new NAME", "bold"), ".",
            )
        )  # fmt: skip
        return
    catalog = catalog_of(installed())
    table = Table("name", "interventions", "description", title=f"Scenarios of {twin_dir.resolve().name}")
    for entry in files:
        try:
            scenario = load_scenario(entry.path, catalog)
        except ScenarioError as exc:
            table.add_row(entry.id, Text("invalid", style="red"), exc.user_message())
            continue
        table.add_row(scenario.name, str(len(scenario.interventions)), scenario.description)
    console.print(table)


@scenario_app.command("show")
def show(name: str = typer.Argument(..., help="Scenario name or .toml path."), twin_dir: Path = TWIN) -> None:
    """Show a scenario: description, baseline, interventions in plain words (and their engine), file hash."""
    from civictwin.scenarios.spec import intervention_label

    catalog = catalog_of(installed())
    scenario = resolve(twin_dir, name, catalog)
    console.print(Text.assemble((scenario.name, "bold"), f" (derives from {scenario.baseline})"))
    console.print(scenario.description or "No description.")
    for index, intervention in enumerate(scenario.interventions):
        engine = catalog.owners[intervention.type]
        console.print(f"  {intervention_label(index, intervention)}: {intervention.describe()} [{engine}]")
    if scenario.path is not None:
        console.print(f"file {scenario.path}  sha256 {scenario.file_hash}", style="dim")


@scenario_app.command("validate")
def validate(
    name: str = typer.Argument(..., help="Scenario name or .toml path."), twin_dir: Path = TWIN
) -> None:
    """Check a scenario against the twin: every engine it uses checks its own interventions."""
    from civictwin.engines.base import TwinContext, Validates
    from civictwin.engines.registry import engines_for

    engines = installed()
    catalog = catalog_of(engines)
    scenario = resolve(twin_dir, name, catalog)
    twin = TwinContext.load(twin_dir)
    problems = []
    for engine_name in engines_for([scenario], catalog):
        engine = engines[engine_name].engine
        if isinstance(engine, Validates):
            problems += engine.check(twin, scenario)
    if problems:
        for line in problems:
            console.print(Text.assemble(("✗", "red"), f" {line}"), highlight=False)
        raise ScenarioError(f"{len(problems)} problem(s) found", path=scenario.origin)
    console.print(
        Text.assemble(
            ("✓", "green"), f" {scenario.name}: {len(scenario.interventions)} intervention(s), all valid."
        )
    )


@app.command("engines")
def list_engines() -> None:
    """List the installed engines: version, package, intervention types and tables."""
    table = Table("engine", "version", "package", "intervention types", "tables", title="Installed engines")
    for name, entry in installed().items():
        engine = entry.engine
        table.add_row(
            name,
            engine.version,
            f"{entry.distribution} {entry.distribution_version}".strip(),
            ", ".join(engine.intervention_types),
            ", ".join(spec.name for spec in engine.tables),
        )
    console.print(table)


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


def engine_options(settings: Sequence[str], **traffic: Any) -> dict[str, dict[str, Any]]:
    """``--set ENGINE.KEY=VALUE`` settings (values in TOML syntax, else text) and the traffic shortcuts."""
    options: dict[str, dict[str, Any]] = {}
    shortcuts = {k: v for k, v in traffic.items() if v is not None}
    if shortcuts:
        options["traffic"] = shortcuts
    for setting in settings:
        match = re.match(r"^([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)=(.*)$", setting)
        if not match:
            raise ScenarioError("expected ENGINE.KEY=VALUE", field=f"--set '{setting}'")
        engine, key, text = match.groups()
        try:
            value: Any = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        options.setdefault(engine, {})[key] = value
    return options


def _ensemble(
    twin_dir: Path,
    names: Sequence[str],
    comparison_id: str,
    *,
    seeds: int,
    workers: int,
    named: Sequence[str],
    options: dict[str, dict[str, Any]],
    seed_timeout_s: float,
    cluster: str | None = None,
    cluster_timeout_s: float | None = None,
) -> tuple[Ensemble, dict[str, str]]:
    """Run the scenarios with their engines; also returns each engine's package for the manifest.

    The seeds run on the local process pool, or on a Dask cluster (``cluster``, else the twin's
    ``[compute] cluster``)."""
    from civictwin.engines.base import TwinContext
    from civictwin.engines.ensemble import run_ensemble
    from civictwin.engines.registry import engines_for
    from civictwin.runs import is_valid_id

    if not is_valid_id(comparison_id):
        raise ScenarioError(
            "use letters, digits, '_', '.' and '-' (at most 128)", field=f"--id '{comparison_id}'"
        )
    engines = installed()
    catalog = catalog_of(engines)
    scenarios = [resolve(twin_dir, n, catalog) for n in names]
    chosen = engines_for(scenarios, catalog, named=named)
    twin = TwinContext.load(twin_dir, options=options)
    compute = twin.config.compute if twin.config is not None else None
    address = cluster or (compute.cluster if compute is not None else None)
    executor = None
    if address is not None:
        from civictwin.engines.cluster import DEFAULT_CONNECT_TIMEOUT_S, open_cluster

        timeout = cluster_timeout_s or (compute.connect_timeout_s if compute else DEFAULT_CONNECT_TIMEOUT_S)
        executor = open_cluster(address, workers=workers, connect_timeout_s=timeout)
    with _progress() as update:
        ensemble = run_ensemble(
            twin,
            scenarios,
            [engines[name].engine for name in chosen],
            comparison_id=comparison_id,
            seeds=seeds,
            workers=workers,
            seed_timeout_s=seed_timeout_s,
            progress=update,
            executor=executor,
        )
    if ensemble.resumed:
        console.print(
            f"Resumed: {len(ensemble.resumed)} seed run(s) were already complete under "
            f"{ensemble.directory} and were not simulated again."
        )
    for note in ensemble.notes:
        console.print(note, highlight=False)
    packages = {
        name: f"{engines[name].distribution} {engines[name].distribution_version}".strip() for name in chosen
    }
    return ensemble, packages


def _fmt(value: float | None, unit: str) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    if unit == "share":
        return f"{100 * value:.1f}%"
    return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}"


def _cell(mean: float | None, low: float | None, high: float | None, unit: str, sign: str = "") -> Text:
    """``mean ±half-width`` of the 95% interval (just the mean when there is no interval)."""
    if low is None or high is None or not math.isfinite(low) or not math.isfinite(high):
        return Text(sign + _fmt(mean, unit))
    half = (high - low) / 2
    return Text.assemble(f"{sign}{_fmt(mean, unit)} ", (f"±{_fmt(half, unit)}", "dim"))


@app.command()
def simulate(
    scenario: str = typer.Argument(..., help="Scenario name, .toml path, or 'baseline'."),
    twin_dir: Path = TWIN,
    seeds: int = SEEDS,
    workers: int = WORKERS,
    engine: list[str] = ENGINES,
    settings: list[str] = SETTINGS,
    seed_timeout: float = SEED_TIMEOUT,
    meso: bool = MESO,
    iterations: int | None = ITERATIONS,
    scale: float | None = SCALE,
    od: Path | None = OD,
    run_id: str | None = RUN_ID,
    cluster: str | None = CLUSTER,
    cluster_timeout: float | None = CLUSTER_TIMEOUT,
) -> None:
    """Simulate one scenario over several seeds and print its KPIs with 95% intervals (or, when a seed
    failed the engine's quality check, that finding instead of any numbers)."""
    from civictwin.compare.table import kpi_rows, not_evaluated

    ensemble, _ = _ensemble(
        twin_dir,
        [scenario],
        run_id or f"simulate-{Path(scenario).stem}",
        seeds=seeds,
        workers=workers,
        named=engine,
        options=engine_options(settings, **_traffic_shortcuts(meso, iterations, scale, od)),
        seed_timeout_s=seed_timeout,
        cluster=cluster,
        cluster_timeout_s=cluster_timeout,
    )
    name = ensemble.scenarios[0].name
    finding = not_evaluated(ensemble.runs, name)
    if finding is not None:
        console.print(Text.assemble(("Warning: ", "bold yellow"), finding.statement), highlight=False)
        console.print(f"Seed results: {ensemble.directory / 'seeds'}")
        return
    table = Table("indicator", "unit", f"{name} (95% CI)", title=f"{name}: {len(ensemble.seeds)} seed(s)")
    for row in kpi_rows(ensemble.runs):
        table.add_row(row.label or row.kpi, row.unit, _cell(row.mean, row.ci_low, row.ci_high, row.unit))
    console.print(table)
    console.print(f"Seed results: {ensemble.directory / 'seeds'}")


@app.command()
def compare(
    base: str = typer.Argument(..., help="The baseline: 'baseline', a scenario name or .toml path."),
    plans: list[str] = typer.Argument(..., help="One or more plans to compare with it."),
    twin_dir: Path = TWIN,
    seeds: int = SEEDS,
    workers: int = WORKERS,
    engine: list[str] = ENGINES,
    settings: list[str] = SETTINGS,
    seed_timeout: float = SEED_TIMEOUT,
    meso: bool = MESO,
    iterations: int | None = ITERATIONS,
    scale: float | None = SCALE,
    od: Path | None = OD,
    run_id: str | None = RUN_ID,
    cluster: str | None = CLUSTER,
    cluster_timeout: float | None = CLUSTER_TIMEOUT,
    question: str = typer.Option(
        "", "--question", help="The question the comparison answers, in plain words (its consultation page)."
    ),
) -> None:
    """Compare plans with a baseline over several seeds; print the KPI table and write the report."""
    from civictwin.compare import report_ensemble

    names = [base, *plans]
    comparison_id = run_id or "-vs-".join(Path(n).stem for n in names)[:128]
    ensemble, packages = _ensemble(
        twin_dir,
        names,
        comparison_id,
        seeds=seeds,
        workers=workers,
        named=engine,
        options=engine_options(settings, **_traffic_shortcuts(meso, iterations, scale, od)),
        seed_timeout_s=seed_timeout,
        cluster=cluster,
        cluster_timeout_s=cluster_timeout,
    )
    with console.status("writing the comparison, maps and report"):
        comparison, report = report_ensemble(
            ensemble, baseline=ensemble.scenarios[0].name, packages=packages, question=question
        )
    console.print(_side_by_side(comparison))
    findings = [f.statement for f in comparison.record.not_evaluated]
    for finding in findings:
        console.print(Text.assemble(("Warning: ", "bold yellow"), finding), highlight=False)
    for sentence in [
        *(s for s in comparison.record.summary if s not in findings),
        *(s for r in comparison.reports.values() for s in r.summary),
    ]:
        console.print(f"• {sentence}", highlight=False)
    console.print(Text.assemble("\nReport: ", (str(report), "bold")))
    _judge_scenario_rules(twin_dir, json.loads(comparison.record.to_json()))


def _judge_scenario_rules(twin_dir: Path, comparison: dict[str, Any]) -> None:
    """The twin's scenario rules ([[rules]] and rules added through the API) on the finished comparison."""
    from civictwin.config import load_config
    from civictwin.live.service import raise_comparison_alerts

    for alert, event in raise_comparison_alerts(load_config(twin_dir), comparison):
        console.print(f"alert {alert.id} {event}: {alert.rule} on {alert.subject}: {alert.message}")


def _traffic_shortcuts(
    meso: bool, iterations: int | None, scale: float | None, od: Path | None
) -> dict[str, Any]:
    """The traffic engine's command-line shortcuts as parameter overrides (None: not given)."""
    return {
        "mesoscopic": meso or None,
        "iterations": iterations,
        "demand": {"scale": scale} if scale is not None else None,
        "od_csv": str(od.resolve()) if od is not None else None,
    }


def _side_by_side(comparison: Comparison) -> Table:
    """The KPIs of the baseline and the plans, then each plan's change; a plan not evaluated (its
    simulation failed the quality check) has a column that says so instead of numbers."""
    record = comparison.record
    table = Table("KPI", title=f"Comparison {record.id}: mean ±95% CI half-width")
    for scenario in (record.baseline, *record.plans):
        table.add_column(scenario, justify="right")
    for plan in record.plans:
        table.add_column(f"{plan} − base", justify="right")
    for finding in record.not_evaluated:
        table.add_column(finding.scenario, justify="right")
    for kpi in dict.fromkeys(r.kpi for r in record.kpis):
        unit = record.kpi(kpi, record.baseline).unit
        cells = [
            _cell(r.mean, r.ci_low, r.ci_high, unit)
            for r in (record.kpi(kpi, s) for s in (record.baseline, *record.plans))
        ]
        for plan in record.plans:
            d = record.difference(kpi, plan)
            verdict = Text("real", style="bold") if d.distinguishable else Text("noise", style="dim")
            sign = "+" if d.mean is not None and d.mean > 0 else ""
            cells.append(Text.assemble(_cell(d.mean, d.ci_low, d.ci_high, unit, sign), " ", verdict))
        cells += [Text("not evaluated", style="yellow") for _ in record.not_evaluated]
        table.add_row(kpi, *cells)
    return table
