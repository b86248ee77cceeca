"""Calibration commands: ``calibrate sites`` (the counts on the network and what is wrong with them)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from civictwin.cli import app, console
from civictwin.engines.traffic.calibration import twin_count_sites

calibrate_app = typer.Typer(help="Calibrate the traffic demand to the twin's counts.", no_args_is_help=True)
app.add_typer(calibrate_app, name="calibrate")

TWIN_DIR = typer.Argument(Path("."), help="Directory holding twin.toml.", show_default=True)


@calibrate_app.command("sites")
def sites(twin_dir: Path = TWIN_DIR) -> None:
    """List every count site: its directed edge, match distance, busiest hour, and why it is not used."""
    found = twin_count_sites(twin_dir)
    table = Table(title=f"Count sites ({len(found.used)} of {len(found.sites)} used)")
    for column in ("site", "edge", "street", "heading", "m", "day", "peak veh/h", "status", "reasons"):
        table.add_column(column, justify="right" if column in ("m", "peak veh/h") else "left")
    for row in found.sites.to_dict("records"):
        table.add_row(
            str(row["site"]),
            _text(row["edge_id"]),
            _text(row["street"]),
            _text(row["heading"]),
            _number(row["distance_m"]),
            _text(row["day"]),
            _number(row["peak_vph"]),
            str(row["status"]),
            str(row["reasons"]),
        )
    console.print(table)


def _text(value: Any) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _number(value: Any) -> str:
    return "—" if value is None or math.isnan(float(value)) else f"{float(value):.0f}"
