"""Governance and export commands: ``catalog``, ``quality`` and ``export``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from civictwin.catalog.metadata import CATALOG
from civictwin.catalog.observations import CombinedRecords
from civictwin.catalog.quality import QUALITY, quality_highlights, quality_parts
from civictwin.catalog.report import catalog_html, catalog_jsonld, quality_html, quality_jsonld
from civictwin.cli import app, console
from civictwin.config import load_config
from civictwin.export import FORMATS, export_dataset
from civictwin.export.layers import atomic_path
from civictwin.store.base import RecordReader, Store
from civictwin.store.observations import has_observations, open_observations
from civictwin.store.opening import open_store

TWIN_DIR = typer.Argument(Path("."), help="Directory holding twin.toml.", show_default=True)
JSON_LD = typer.Option(None, "--json-ld", help="Also write the JSON-LD document to this file.")
HTML = typer.Option(None, "--html", help="Also write a self-contained HTML page to this file.")


def _open(twin_dir: Path) -> Store:
    return open_store(load_config(twin_dir))


@contextmanager
def _records(twin_dir: Path) -> Iterator[RecordReader]:
    """The twin's records, with its datastreams' when it has observations."""
    config = load_config(twin_dir)
    with open_store(config) as store:
        if not has_observations(config):
            yield store
            return
        with open_observations(config, read_only=True) as observations:
            yield CombinedRecords(store, observations)


def _write(path: Path, text: str) -> None:
    with atomic_path(path) as partial:
        partial.write_text(text, encoding="utf-8")
    console.print(Text.assemble("Wrote ", (str(path), "bold")))


@app.command()
def catalog(twin_dir: Path = TWIN_DIR, json_ld: Path | None = JSON_LD, html: Path | None = HTML) -> None:
    """List the twin's datasets with publisher, steward, licence and access level (DCAT-AP JSON-LD, HTML).

    Titles, descriptions, extents and checksums are in the JSON-LD and HTML documents; the terminal
    table keeps to who answers for each dataset and who may use it.
    """
    with _records(twin_dir) as store:
        table = Table(title="Data catalogue")
        for column in ("table", "kind", "rows", "access", "licence", "publisher", "steward"):
            table.add_column(
                column,
                justify="right" if column == "rows" else "left",
                no_wrap=column in ("table", "rows"),
                overflow="fold",  # a long publisher or steward wraps; it is never cut off
            )
        for name, record in store.records(CATALOG).items():
            table.add_row(
                name,
                record["kind"],
                f"{int(record['rows']):,}",
                record["access"],
                record["licence"],
                record["publisher"],
                record["steward"],
            )
        console.print(table)
        if json_ld is not None:
            _write(json_ld, json.dumps(catalog_jsonld(store), indent=2, ensure_ascii=False))
        if html is not None:
            _write(html, catalog_html(store))


@app.command()
def quality(twin_dir: Path = TWIN_DIR, json_ld: Path | None = JSON_LD, html: Path | None = HTML) -> None:
    """Show what was repaired, dropped, left out, estimated or is missing, per dataset (DQV JSON-LD, HTML).

    The table counts features per dataset; the highlights under it say in words what a reader should
    know (notes included), so the table stays readable in an 80-column terminal.
    """
    with _records(twin_dir) as store:
        table = Table(title="Data quality")
        for column in ("table", "kept", "outside\narea", "invalid", "repaired", "dropped", "duplicates"):
            table.add_column(
                column, justify="left" if column == "table" else "right", no_wrap=column == "table"
            )
        counts = ("kept", "outside_area", "invalid_geometry", "repaired_geometry", "dropped_unrepairable")
        for table_name, whole in store.records(QUALITY).items():
            for name, record in quality_parts(table_name, whole):
                geometry = record.get("geometry") or {}
                table.add_row(
                    name, *(_count(geometry.get(key)) for key in counts), _count(record.get("duplicates"))
                )
        console.print(table)
        highlights = quality_highlights(store)
        if highlights:
            console.print("Highlights", style="bold")
            for line in highlights:
                console.print(f"  • {line}", highlight=False, soft_wrap=True)
        if json_ld is not None:
            _write(json_ld, json.dumps(quality_jsonld(store), indent=2, ensure_ascii=False))
        if html is not None:
            _write(html, quality_html(store))


def _count(value: Any) -> str:
    return "—" if value is None else f"{int(value):,}"


@app.command()
def export(
    layer: str = typer.Argument(..., help="The layer (table) to export, e.g. buildings_3d."),
    twin_dir: Path = TWIN_DIR,
    fmt: str = typer.Option(..., "--format", "-f", help=f"One of: {', '.join(FORMATS)}."),
    output: Path = typer.Option(..., "--output", "-o", help="File to write (replaced only when complete)."),
    crs: str | None = typer.Option(
        None, "--crs", help="Output CRS (default EPSG:4326; CityJSON always uses the twin's metric CRS)."
    ),
) -> None:
    """Export a layer as GeoParquet, GeoPackage, GeoJSON, or (buildings) CityJSON 2.0 LoD1."""
    with _open(twin_dir) as store:
        count = export_dataset(store, layer, output, fmt, crs=crs)
    unit = "buildings" if fmt == "cityjson" else "rows"
    console.print(
        Text.assemble(
            f"Wrote {count:,} {unit} of ", (layer, "bold"), " to ", (str(output), "bold"), f" ({fmt})"
        )
    )
