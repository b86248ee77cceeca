"""Observation commands: ``sensors import`` and ``sensors list``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from civictwin.catalog.quality import QUALITY, percent
from civictwin.cli import app, console
from civictwin.config import load_config
from civictwin.ingest import ImportSummary, import_sensors
from civictwin.store.observations import describe_observations, open_observations

sensors_app = typer.Typer(help="Import observations and list the twin's datastreams.", no_args_is_help=True)
app.add_typer(sensors_app, name="sensors")

TWIN_DIR = typer.Argument(Path("."), help="Directory holding twin.toml.", show_default=True)


@sensors_app.command("import")
def import_(
    twin_dir: Path = TWIN_DIR,
    source: list[str] = typer.Option(
        [], "--source", "-s", help="Import only this [[sensors]] source (repeatable)."
    ),
) -> None:
    """Import the [[sensors]] sources of twin.toml; a second import of the same data stores nothing twice."""
    config = load_config(twin_dir)
    with console.status("importing observations") as status:
        summaries = import_sensors(config, names=source or None, on_step=lambda text: status.update(text))
    _print_imports(summaries)
    console.print(Text.assemble("Observations: ", (describe_observations(config), "bold")))


def _print_imports(summaries: list[ImportSummary]) -> None:
    table = Table(title="Imported observations")
    for column in ("source", "datastreams", "stored", "duplicates", "rejected", "edges"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for summary in summaries:
        edges = (
            f"{summary.matched_edges} ({summary.ambiguous_matches} ambiguous, {summary.unmatched} none)"
            if summary.matched_edges or summary.unmatched
            else "—"
        )
        table.add_row(
            summary.source,
            f"{summary.datastreams:,}",
            f"{summary.stored:,}",
            f"{summary.duplicates:,}",
            f"{sum(summary.rejected.values()):,}",
            edges,
        )
    console.print(table)
    for summary in summaries:
        for reason, count in sorted(summary.rejected.items()):
            console.print(f"  • {summary.source}: {count:,} rejected ({reason})", highlight=False)
        for note in summary.notes:
            style = "bold yellow" if note.startswith("warning:") else None
            console.print(f"  • {summary.source}: {note}", highlight=False, soft_wrap=True, style=style)


@sensors_app.command("list")
def list_(twin_dir: Path = TWIN_DIR) -> None:
    """List the datastreams with their unit, access level, observation count and completeness."""
    config = load_config(twin_dir)
    with open_observations(config, read_only=True) as store:
        counts = store.counts()
        quality = store.records(QUALITY)
        table = Table(title=f"{config.twin.name}: datastreams")
        for column in ("datastream", "unit", "access", "observations", "complete"):
            table.add_column(column, justify="right" if column in ("observations", "complete") else "left")
        for info in store.datastreams():
            share = (quality.get(info.key) or {}).get("completeness", {}).get("result")
            table.add_row(
                info.key,
                info.unit.code,
                info.access,
                f"{counts.get(info.id, 0):,}",
                "—" if share is None else percent(float(share)),
            )
    console.print(table)
