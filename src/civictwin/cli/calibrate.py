"""Calibration commands: ``calibrate sites`` (the counts on the network and what is wrong with them) and
``calibrate run`` (the demand calibrated to them, stored as the twin's next calibration record)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from civictwin.cli import app, console
from civictwin.engines.traffic.calibration import calibrate_twin, twin_count_sites

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


@calibrate_app.command("run")
def run(twin_dir: Path = TWIN_DIR) -> None:
    """Calibrate the demand to the used count sites (k-fold held-back validation included) and store
    the result as the twin's next calibration record; every later traffic run uses it."""
    with console.status("calibrating") as status:
        path, record = calibrate_twin(twin_dir, on_step=lambda text: status.update(f"calibrating: {text}"))
    table = Table(title=f"Fit to {record['inputs']['site_hours']} count site-hours")
    for column in ("", "GEH < 5", "mean GEH", "RMSE veh/h", "R²"):
        table.add_column(column, justify="left" if not column else "right")
    rows = [("before", record["fit_before"]), ("after", record["fit_after"])]
    kfold = record["kfold"]
    if kfold.get("held_back_after"):
        rows += [
            ("held back, before", kfold["held_back_before"]),
            ("held back, after", kfold["held_back_after"]),
        ]
    for label, values in rows:
        table.add_row(
            label,
            _share(values["share_geh_ok"]),
            _decimal(values["mean_geh"]),
            _decimal(values["rmse"]),
            _decimal(values["r2"]),
        )
    console.print(table)
    console.print(record["statement"], soft_wrap=True, highlight=False)
    flows = record.get("gateway_flows") or []
    if flows:
        counted = [f for f in flows if "stated default" not in f["inbound_source"] + f["outbound_source"]]
        console.print(
            f"Gateway flows fitted for {len(flows)} gateways ({len(counted)} with both priors from counts "
            "on their road, the others from the stated defaults in at least one direction).",
            soft_wrap=True,
            highlight=False,
        )
    for flag in record.get("gateway_flags") or []:
        console.print(
            f"gateway {flag['node']}: count {flag['site']} not used: {flag['reason']}",
            soft_wrap=True,
            highlight=False,
        )
    console.print(f"{record['simulation_runs']} simulations in {record['wall_s']:.0f} s; record: {path}")


def _share(value: Any) -> str:
    return "—" if value is None or math.isnan(float(value)) else f"{float(value):.0%}"


def _decimal(value: Any) -> str:
    return "—" if value is None or math.isnan(float(value)) else f"{float(value):.2f}"


def _text(value: Any) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _number(value: Any) -> str:
    return "—" if value is None or math.isnan(float(value)) else f"{float(value):.0f}"
