"""Live commands: ``live`` (the MQTT consumer) and ``alerts list|check|deliver``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from civictwin.cli import app, console
from civictwin.config import load_config
from civictwin.errors import ConfigError

TWIN_DIR = typer.Argument(Path("."), help="Twin directory (holding twin.toml).", show_default=True)

alerts_app = typer.Typer(
    help="List alerts, check a comparison against the scenario rules, deliver webhooks.", no_args_is_help=True
)
app.add_typer(alerts_app, name="alerts")


@app.command()
def live(twin_dir: Path = TWIN_DIR) -> None:
    """Listen to the twin's MQTT topics: store each valid observation, dead-letter the rest, raise alerts.

    Runs until Ctrl+C (or SIGTERM); what was received but not yet stored is stored and acknowledged
    first, and whatever the broker still holds waits for the next start.
    """
    from civictwin.live.service import client_id, run_live

    config = load_config(twin_dir)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if config.live is not None:
        console.print(
            Text.assemble(
                "Listening to ", (config.live.broker, "bold"), f" as {client_id(config)}: ",
                ", ".join(config.live.topics), " (Ctrl+C stops)",
            )
        )  # fmt: skip
    counters = run_live(config)
    console.print(
        f"Stopped: {counters.received} received, {counters.stored} stored, "
        f"{sum(counters.dead_lettered.values())} dead-lettered, {counters.alerts_opened} alerts opened."
    )


@alerts_app.command("list")
def alerts_list(
    twin_dir: Path = TWIN_DIR,
    open_only: bool = typer.Option(False, "--open", help="Only the alerts still open."),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000),
) -> None:
    """The newest alerts: rule, subject, status, when, and the finding that opened them."""
    from civictwin.store.alerts import AlertStatus, open_alert_store

    config = load_config(twin_dir)
    with open_alert_store(config) as store:
        found = store.alerts(status=AlertStatus.OPEN if open_only else None, limit=limit)
    table = Table("id", "rule", "subject", "status", "opened", "closed", "message")
    for alert in found:
        as_json = alert.as_json()
        table.add_row(
            str(alert.id), alert.rule, alert.subject, str(alert.status), as_json["opened_at"],
            as_json["closed_at"] or "", alert.message,
        )  # fmt: skip
    console.print(table if found else "No alerts.")


@alerts_app.command("check")
def alerts_check(
    comparison_id: str = typer.Argument(..., help="A comparison under <twin>/runs/."),
    twin_dir: Path = typer.Option(Path("."), "--twin", help="Twin directory."),
) -> None:
    """Judge the scenario rules on a finished comparison; open, close and deliver alerts."""
    from civictwin.live.service import raise_comparison_alerts

    config = load_config(twin_dir)
    path = config.base_dir / "runs" / comparison_id / "comparison.json"
    if "/" in comparison_id or not path.is_file():
        raise ConfigError("no finished comparison with this id", path=path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not a comparison document: {exc}", path=path) from None
    events = raise_comparison_alerts(config, document)
    for alert, event in events:
        console.print(f"alert {alert.id} {event}: {alert.rule} on {alert.subject}: {alert.message}")
    if not events:
        console.print("No alert opened or closed.")


@alerts_app.command("deliver")
def alerts_deliver(twin_dir: Path = TWIN_DIR) -> None:
    """Attempt every webhook delivery that is due now (``civictwin live`` does this by itself)."""
    from civictwin.live.service import deliver_pending, webhook_secrets
    from civictwin.store.alerts import open_alert_store

    config = load_config(twin_dir)
    with open_alert_store(config) as store:
        attempted = deliver_pending(store, config.webhooks, webhook_secrets(config))
        counts = store.delivery_counts()
    console.print(
        f"{attempted} attempted; deliveries now {counts.get('delivered', 0)} delivered, "
        f"{counts.get('pending', 0)} pending, {counts.get('failed', 0)} given up."
    )


@app.command("demo-live")
def demo_live(
    twin_dir: Path = typer.Argument(Path("demo-twin"), help="The demo twin (built by `civictwin demo`)."),
    counts: Path | None = typer.Option(
        None,
        "--counts",
        help="The Helsinki counts CSV (default: ../shared/data/counts/helsinki/ beside the repository).",
    ),
    step: float = typer.Option(2.0, "--step", min=0.05, help="Seconds between replayed hours."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port of the server."),
) -> None:
    """Serve the demo twin with live sensors: Helsinki's counts replayed over a local broker, alerts included.

    Imports the counts inside the demo area once, starts Mosquitto, the consumer and the replay, serves
    the twin until Ctrl+C, then stops the replay, the consumer and the broker.
    """
    from civictwin.api.settings import ServerSettings
    from civictwin.cli.serve import serve
    from civictwin.live.demo import add_counts, live_demo, shared_counts

    settings = ServerSettings()

    load_config(twin_dir)  # a missing or broken demo twin fails here, in one line
    source = counts or shared_counts()
    if not source.is_file():
        console.print(
            f"No live demo: the Helsinki counts are not at {source}; serving the twin without them."
        )
        serve(
            twin_dir,
            host="127.0.0.1",
            port=port,
            rate_limit=settings.rate_per_second,
            burst=settings.rate_burst,
            workers=1,
        )
        return
    with console.status("importing the Helsinki counts inside the demo area"):
        config = add_counts(twin_dir, source)
    replayer = None
    try:
        with live_demo(config, step_s=step) as replayer:
            console.print(
                f"Live: {max((len(h.counts) for h in replayer.day), default=0)} counting directions replayed, "
                f"one hour of counts every {step:g} s; the rule busy_street fires above 700 vehicles an hour."
            )
            serve(
                twin_dir,
                host="127.0.0.1",
                port=port,
                rate_limit=settings.rate_per_second,
                burst=settings.rate_burst,
                workers=1,
            )
    finally:  # also when Ctrl+C ends the server (exit 130): the replay and the broker are stopped by now
        if replayer is not None:
            console.print(f"Stopped the replay ({replayer.published} messages) and the broker.")
