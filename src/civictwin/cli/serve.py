"""Publishing commands: ``serve`` (the API and viewer over a twin) and ``token create|rotate|list|revoke``.

Tokens are written to ``<store>.tokens.json`` beside the twin's store; a running server picks up a
new or revoked token on its next request, so these commands work whether the server runs or not.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table
from rich.text import Text

from civictwin.api.app import resolve_store
from civictwin.api.settings import ServerSettings
from civictwin.cli import app, console
from civictwin.config import CONFIG_FILENAME, AuditSection, ServerSection, load_config
from civictwin.governance.security import record_event
from civictwin.governance.tokens import (
    Role,
    TokenRecord,
    create_token,
    list_tokens,
    revoke_token,
    rotate_token,
    token_place,
    token_uses,
    tokens_path,
)

if TYPE_CHECKING:
    from civictwin.governance.tokens import TokenPlace

TWIN_DIR = typer.Argument(
    Path("."), help="Twin directory (holding twin.toml) or store file.", show_default=True
)

token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")


@app.command()
def serve(
    twin_dir: Path = TWIN_DIR,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    rate_limit: float = typer.Option(
        ServerSettings.rate_per_second,
        "--rate-limit",
        min=0.001,
        help="Sustained requests per second per client.",
    ),
    burst: int = typer.Option(
        ServerSettings.rate_burst, "--burst", min=1, help="Requests a client may send at once."
    ),
    workers: int = typer.Option(
        1, "--workers", min=1, max=64, help="Worker processes (they share tokens, logs and rate limits)."
    ),
) -> None:
    """Serve the twin: OGC API – Features, vector tiles and the viewer, behind access control.

    Network behaviour (public URL, trusted hosts, proxies, TLS, CORS) and log rotation come from the
    [server] and [audit] sections of twin.toml. SIGTERM or Ctrl+C stops accepting connections and lets
    requests in flight finish (up to [server] shutdown_timeout_s); SIGHUP reopens the logs after an
    external rotation. With --workers N, N processes serve the twin (docs/api.md, several workers).
    """
    from civictwin.api.app import create_app
    from civictwin.api.serving import run_server, run_workers

    settings = server_settings(
        twin_dir, host=host, port=port, rate_per_second=rate_limit, rate_burst=burst, workers=workers
    )
    application = create_app(twin_dir, settings=settings)  # the twin checked (one line) before any worker
    url = settings.public_url or f"{'https' if settings.tls else 'http'}://{host}:{port}/"
    url = url if url.endswith("/") else url + "/"
    console.print(
        Text.assemble("Serving ", (application.title, "bold"), " at ", (url, "bold"), " (Ctrl+C stops)")
    )
    console.print(
        Text.assemble("Viewer: ", (f"{url}viewer/", "bold"), f"  API definition: {url}openapi.json")
    )
    if workers == 1:
        stopped_by = run_server(application, settings)
    else:
        stopped_by = run_workers(
            twin_dir, settings, on_ready=lambda count: console.print(f"{count} workers accept requests.")
        )
    if stopped_by == "SIGTERM":
        console.print("Stopped on SIGTERM after the requests in flight finished.")


def server_settings(twin_dir: Path, **overrides: Any) -> ServerSettings:
    """The serving settings of a twin: its twin.toml [server] and [audit] sections (defaults without one)."""
    config_file = twin_dir / CONFIG_FILENAME
    if twin_dir.is_dir() and config_file.is_file():
        config = load_config(twin_dir)
        server, audit, base = config.server, config.audit, config.base_dir
    else:
        server, audit, base = (
            ServerSection(),
            AuditSection(),
            twin_dir.parent if twin_dir.is_file() else twin_dir,
        )
    return ServerSettings.from_config(server, audit, base_dir=base, **overrides)


def _store(twin_dir: Path) -> Path:
    store_path, _ = resolve_store(twin_dir)
    return store_path


def _tokens(twin_dir: Path) -> tuple[Path, TokenPlace]:
    """The twin's store path (its security log is named after it) and where its tokens are: the
    token file, or with ``[server] tokens = "database"`` its PostGIS database."""
    store = _store(twin_dir)
    if not (twin_dir / CONFIG_FILENAME).is_file():
        return store, tokens_path(store)
    from civictwin.store.opening import store_location

    config = load_config(twin_dir)
    return store, token_place(tokens=config.server.tokens, location=store_location(config), store_path=store)


DAYS = typer.Option(365, "--days", min=0, max=36_500, help="Lifetime in days (0: never expires).")


def _lifetime(days: int) -> timedelta | None:
    return timedelta(days=days) if days else None


@token_app.command("create")
def token_create(
    twin_dir: Path = TWIN_DIR,
    role: Role = typer.Option(..., "--role", help="admin, steward, analyst, viewer or moderator."),
    datasets: str = typer.Option("", "--datasets", help="Comma-separated datasets a steward stewards."),
    name: str = typer.Option("", "--name", help="Who or what the token is for."),
    days: int = DAYS,
) -> None:
    """Create a token and print it once: only its hash is kept."""
    store, path = _tokens(twin_dir)
    issued = create_token(path, role=role, datasets=datasets.split(","), name=name, lifetime=_lifetime(days))
    _token_event(store, "token created", issued.record)
    expiry = f", expires {issued.record.expires}" if issued.record.expires else ", never expires"
    console.print(
        Text.assemble(
            "Created token ",
            (issued.record.id, "bold"),
            f" ({role}{expiry}). Store it now; it is not shown again:",
        )
    )
    console.print(issued.token, highlight=False, soft_wrap=True)


@token_app.command("rotate")
def token_rotate(
    token_id: str = typer.Argument(..., help="The token to replace (see `civictwin token list`)."),
    twin_dir: Path = TWIN_DIR,
    grace_hours: float = typer.Option(
        24.0, "--grace-hours", min=0.0, max=8_760.0, help="How long the old token keeps working."
    ),
    days: int = DAYS,
) -> None:
    """Issue a successor with the same role and datasets; the old token expires after the grace period."""
    store, path = _tokens(twin_dir)
    issued = rotate_token(path, token_id, grace=timedelta(hours=grace_hours), lifetime=_lifetime(days))
    _token_event(store, "token rotated", issued.record, replaces=token_id)
    console.print(
        Text.assemble(
            "Token ", (token_id, "bold"), f" keeps working for {grace_hours:g} h. Its successor ",
            (issued.record.id, "bold"), " is shown once; store it now:",
        )
    )  # fmt: skip
    console.print(issued.token, highlight=False, soft_wrap=True)


@token_app.command("list")
def token_list(twin_dir: Path = TWIN_DIR) -> None:
    """List tokens (ids, roles, datasets, expiry, last use; never the secrets)."""
    _, path = _tokens(twin_dir)
    records = list_tokens(path)
    used = token_uses(path)
    table = Table()
    table.add_column("id", no_wrap=True, min_width=8)  # never cut: it is what revoke and rotate take
    for heading in ("role", "datasets", "name", "created", "expires", "last used", "revoked"):
        table.add_column(heading)
    for record in records:
        table.add_row(
            record.id,
            str(record.role),
            ",".join(record.datasets),
            record.name,
            record.created,
            (record.expires or "never") + (" (expired)" if record.expired() else ""),
            used.get(record.id, ""),
            record.revoked or "",
        )
    console.print(table if records else "No tokens yet (create one with `civictwin token create`).")


@token_app.command("revoke")
def token_revoke(
    token_id: str = typer.Argument(..., help="The token's id (see `civictwin token list`)."),
    twin_dir: Path = TWIN_DIR,
) -> None:
    """Revoke a token; a running server refuses it from its next request on."""
    store, path = _tokens(twin_dir)
    record = revoke_token(path, token_id)
    _token_event(store, "token revoked", record)
    console.print(
        Text.assemble("Revoked token ", (record.id, "bold"), f" ({record.role}) at {record.revoked}.")
    )


def _token_event(store_path: Path, event: str, record: TokenRecord, **details: str) -> None:
    """Note a token change in the twin's security log."""
    record_event(
        store_path,
        event,
        token=record.id,
        role=str(record.role),
        name=record.name,
        expires=record.expires,
        **details,
    )
