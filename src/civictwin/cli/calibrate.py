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
from civictwin.engines.traffic.countnext import KPIS, save_ranking, where_to_count

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
    """Calibrate the demand to the used count sites (k-fold held-back validation included) and, with a
    ``[modal_split]`` in twin.toml, the mode choice's constants to that split first; store the result as
    the twin's next calibration record; every later traffic run uses it."""
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
    split = record.get("mode_choice")
    if split:
        shares = Table(title=f"Modal split: {split['inputs']['source']}")
        for column in ("mode", "observed", "modelled", "after the counts"):
            shares.add_column(column, justify="left" if column == "mode" else "right")
        for row in split["fit"]:
            shares.add_row(
                row["mode"], _share(row["observed"]), _share(row["modelled"]), _share(row["final"])
            )
        console.print(shares)
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


@app.command("demo-calibrate")
def demo_calibrate(
    twin_dir: Path = typer.Argument(Path("demo-twin"), help="The demo twin (built by `civictwin demo`)."),
    counts: Path | None = typer.Option(
        None,
        "--counts",
        help="The Helsinki counts CSV (default: ../shared/data/counts/helsinki/ beside the repository).",
    ),
) -> None:
    """Calibrate the demo twin's traffic demand to the City of Helsinki counts inside its area.

    Writes the demo's ``traffic.toml`` (unless the twin has one), imports the counts by vehicle class
    (once) and runs ``civictwin calibrate run``; every later traffic run of the twin uses the record. A
    twin that already has a calibration record is left as it is.
    """
    from civictwin.config import load_config
    from civictwin.demo import add_calibration_counts, write_demo_traffic
    from civictwin.engines.traffic.calibration import latest_record_path
    from civictwin.live.demo import shared_counts

    load_config(twin_dir)  # a missing or broken demo twin fails here, in one line
    source = counts or shared_counts()
    if not source.is_file():
        console.print(
            f"Not calibrated: the Helsinki counts are not at {source}; the traffic runs use the priors."
        )
        return
    existing = latest_record_path(twin_dir, "calibration")
    if existing is not None:
        console.print(
            f"Already calibrated ({existing.stem}); `civictwin calibrate run {twin_dir}` calibrates it again."
        )
        return
    written = write_demo_traffic(twin_dir)
    console.print(
        f"Traffic settings: {written}." if written else "Traffic settings: the twin's own traffic.toml, kept."
    )
    with console.status("importing the Helsinki counts inside the demo area"):
        add_calibration_counts(twin_dir, source)
    run(twin_dir)


def _share(value: Any) -> str:
    return "—" if value is None or math.isnan(float(value)) else f"{float(value):.0%}"


def _decimal(value: Any) -> str:
    return "—" if value is None or math.isnan(float(value)) else f"{float(value):.2f}"


def _text(value: Any) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _number(value: Any) -> str:
    return "—" if value is None or math.isnan(float(value)) else f"{float(value):.0f}"


@calibrate_app.command("where-next")
def where_next(
    plan_a: str = typer.Argument(..., help="The first plan (a scenario name, or 'baseline')."),
    plan_b: str = typer.Argument(..., help="The plan compared with it."),
    twin_dir: Path = TWIN_DIR,
    kpi: str = typer.Option("co2_kg", "--kpi", help=f"The KPI whose difference matters: {', '.join(KPIS)}."),
    top: int = typer.Option(10, "--top", min=1, help="How many candidate sites to list."),
    sequence: int = typer.Option(
        5,
        "--sequence",
        min=1,
        help="How many counters to place one after another (each given the ones before).",
    ),
) -> None:
    """Rank the uncounted directed edges by how much a count there would narrow the difference of a KPI
    between two plans (the twin's latest calibration linearised); stored beside the calibration records."""
    from civictwin.cli.scenario import catalog_of, installed, resolve

    catalog = catalog_of(installed())
    plans = resolve(twin_dir, plan_a, catalog), resolve(twin_dir, plan_b, catalog)
    with console.status("ranking count sites") as status:
        ranking = where_to_count(
            twin_dir,
            *plans,
            kpi=kpi,
            sequence=sequence,
            on_step=lambda text: status.update(f"ranking count sites: {text}"),
        )
    path = save_ranking(twin_dir, ranking)
    unit = ranking["unit"]
    table = Table(title=f"Where to count next: {kpi} of {plan_b} − {plan_a}")
    for column in ("rank", "edge", "street", "peak veh/h", f"sd after ({unit})", "variance removed"):
        table.add_column(column, justify="left" if column in ("edge", "street") else "right")
    for site in ranking["sites"][:top]:
        table.add_row(
            str(site["rank"]),
            site["edge_id"],
            site["street"] or "—",
            _number(site["predicted_vph"]),
            f"{site['sd_after']:.3g}",
            _share(site["share_removed"]),
        )
    console.print(table)
    placed = Table(title="Counters placed one after another (each given the ones before it)")
    for column in ("order", "edge", "street", f"sd after ({unit})"):
        placed.add_column(column, justify="left" if column in ("edge", "street") else "right")
    for site in ranking["sequence"]:
        placed.add_row(str(site["order"]), site["edge_id"], site["street"] or "—", f"{site['sd_after']:.3g}")
    console.print(placed)
    console.print(
        f"Difference {_decimal(ranking['difference'])} {unit} (one seed), standard deviation from the demand's "
        f"uncertainty {ranking['sd_now']:.3g} {unit} with today's {ranking['counted_site_hours']} counted "
        f"site-hours; ranking: {path}",
        soft_wrap=True,
        highlight=False,
    )
