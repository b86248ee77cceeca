"""Publishing commands: ``serve`` (the API and viewer over a twin) and ``token create|list|revoke``.

Tokens are written to ``<store>.tokens.json`` beside the twin's store; a running server picks up a
new or revoked token on its next request, so these commands work whether the server runs or not.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from civictwin.api.app import resolve_store
from civictwin.api.settings import ServerSettings
from civictwin.cli import app, console
from civictwin.governance.tokens import Role, create_token, list_tokens, revoke_token, tokens_path

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
) -> None:
    """Serve the twin: OGC API – Features, vector tiles and the viewer, behind access control."""
    import uvicorn

    from civictwin.api.app import create_app

    settings = ServerSettings(host=host, port=port, rate_per_second=rate_limit, rate_burst=burst)
    application = create_app(twin_dir, settings=settings)
    url = f"http://{host}:{port}/"
    console.print(
        Text.assemble("Serving ", (application.title, "bold"), " at ", (url, "bold"), " (Ctrl+C stops)")
    )
    console.print(
        Text.assemble("Viewer: ", (f"{url}viewer/", "bold"), f"  API definition: {url}openapi.json")
    )
    uvicorn.run(application, host=host, port=port, log_level="warning", server_header=False)


def _tokens_file(twin_dir: Path) -> Path:
    store_path, _ = resolve_store(twin_dir)
    return tokens_path(store_path)


@token_app.command("create")
def token_create(
    twin_dir: Path = TWIN_DIR,
    role: Role = typer.Option(..., "--role", help="admin, steward, analyst or viewer."),
    datasets: str = typer.Option("", "--datasets", help="Comma-separated datasets a steward stewards."),
    name: str = typer.Option("", "--name", help="Who or what the token is for."),
) -> None:
    """Create a token and print it once: only its hash is kept."""
    issued = create_token(_tokens_file(twin_dir), role=role, datasets=datasets.split(","), name=name)
    console.print(
        Text.assemble(
            "Created token ", (issued.record.id, "bold"), f" ({role}). Store it now; it is not shown again:"
        )
    )
    console.print(issued.token, highlight=False, soft_wrap=True)


@token_app.command("list")
def token_list(twin_dir: Path = TWIN_DIR) -> None:
    """List tokens (ids, roles, datasets; never the secrets)."""
    records = list_tokens(_tokens_file(twin_dir))
    table = Table("id", "role", "datasets", "name", "created", "revoked")
    for record in records:
        table.add_row(
            record.id,
            str(record.role),
            ",".join(record.datasets),
            record.name,
            record.created,
            record.revoked or "",
        )
    console.print(table if records else "No tokens yet (create one with `civictwin token create`).")


@token_app.command("revoke")
def token_revoke(
    token_id: str = typer.Argument(..., help="The token's id (see `civictwin token list`)."),
    twin_dir: Path = TWIN_DIR,
) -> None:
    """Revoke a token; a running server refuses it from its next request on."""
    record = revoke_token(_tokens_file(twin_dir), token_id)
    console.print(
        Text.assemble("Revoked token ", (record.id, "bold"), f" ({record.role}) at {record.revoked}.")
    )
