"""Use-case readiness and the decision log: ``readiness``, ``decision record``, ``decision list``,
``decision export``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from civictwin.cli import app, console
from civictwin.config import load_config
from civictwin.errors import ConfigError
from civictwin.i18n import LANGUAGES, from_environment, language
from civictwin.readiness import readiness_report
from civictwin.readiness.decisions import export_decisions, read_decisions, record_decision
from civictwin.readiness.render import FORMATS, as_json, as_markdown

TWIN_DIR = typer.Argument(Path("."), help="Directory holding twin.toml.", show_default=True)

decision_app = typer.Typer(
    help="The decision log: which comparison informed which decision.", no_args_is_help=True
)
app.add_typer(decision_app, name="decision")


@app.command()
def readiness(
    twin_dir: Path = TWIN_DIR,
    use_case: str = typer.Option(..., "--use-case", help="A use-case template, e.g. traffic-plan, netzero."),
    fmt: str = typer.Option("markdown", "--format", help=f"One of: {', '.join(FORMATS)}."),
    templates: Path | None = typer.Option(None, "--templates", help="A folder of your own templates."),
    lang: str | None = typer.Option(
        None,
        "--lang",
        help=f"Language of the Markdown report, one of: {', '.join(LANGUAGES)} "
        "(default: from LANGUAGE, LC_ALL, LC_MESSAGES or LANG, else en).",
    ),
) -> None:
    """What the twin holds of the data a use case needs, what is missing and how to get it, its level."""
    if fmt not in FORMATS:
        raise ConfigError(f"expected one of {', '.join(FORMATS)}, got '{fmt}'", field="--format")
    if lang is not None and lang not in LANGUAGES:
        raise ConfigError(f"expected one of {', '.join(LANGUAGES)}, got '{lang[:20]}'", field="--lang")
    report = readiness_report(load_config(twin_dir), use_case, templates=templates)
    text = as_json(report) if fmt == "json" else as_markdown(report, lang=language(from_environment(lang)))
    console.print(text, highlight=False, soft_wrap=True)


@decision_app.command("record")
def decision_record(
    twin_dir: Path = TWIN_DIR,
    comparison: str = typer.Option(..., "--comparison", help="The id of the comparison that informed it."),
    decision: str = typer.Option(..., "--decision", help="The decision, in plain words."),
    by: str = typer.Option(..., "--by", help="Who decided, as a role (e.g. 'city council'), not a name."),
) -> None:
    """Append a decision to the comparison's log, with the time and its manifest's SHA-256."""
    entry = record_decision(twin_dir, comparison=comparison, decision=decision, by=by)
    console.print(
        Text.assemble(
            "Recorded the decision of ", (entry.by, "bold"), f" on {entry.comparison} at {entry.time}"
        )
    )


@decision_app.command("list")
def decision_list(
    twin_dir: Path = TWIN_DIR,
    comparison: str | None = typer.Option(None, "--comparison", help="Only this comparison's decisions."),
) -> None:
    """Every recorded decision, oldest first, and whether each log is intact."""
    log = read_decisions(twin_dir, comparison=comparison)
    table = Table(title="Decisions")
    for column in ("time", "comparison", "by", "decision", "manifest sha256"):
        table.add_column(column, overflow="fold")
    for entry in log.entries:
        table.add_row(entry.time, entry.comparison, entry.by, entry.decision, entry.manifest_sha256[:12])
    console.print(table)
    for problem in log.problems:
        console.print(Text.assemble(("tampered: ", "bold red"), problem), highlight=False, soft_wrap=True)
    if log.problems:
        raise typer.Exit(1)


@decision_app.command("export")
def decision_export(
    twin_dir: Path = TWIN_DIR,
    output: Path = typer.Option(..., "--output", "-o", help="File to write (.csv or .json)."),
    comparison: str | None = typer.Option(None, "--comparison", help="Only this comparison's decisions."),
) -> None:
    """Write the decisions as CSV or JSON (by the file's suffix), written only when complete."""
    count = export_decisions(twin_dir, output, comparison=comparison)
    console.print(Text.assemble(f"Wrote {count} decision(s) to ", (str(output), "bold")))
