"""Operations commands: ``audit verify`` (tamper evidence), ``backup`` and ``restore``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.text import Text

from civictwin.api.app import resolve_store
from civictwin.backup import backup_twin, restore_twin
from civictwin.cli import app, console
from civictwin.errors import CivicTwinError
from civictwin.governance.audit import audit_path
from civictwin.governance.chain import ChainReport, chain_files, verify_chain
from civictwin.governance.security import security_path

audit_app = typer.Typer(help="Check the audit and security logs.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


class ChainBroken(CivicTwinError):
    """A log's hash chain does not hold: records were altered, removed or inserted."""


@audit_app.command("verify")
def audit_verify(
    twin_dir: Path = typer.Argument(Path("."), help="Twin directory (holding twin.toml) or store file."),
    files: list[Path] = typer.Option(
        [], "--file", help="Verify these files, in this order, instead (e.g. after an external rotation)."
    ),
) -> None:
    """Check every record of the audit and security logs against its hash and its predecessor."""
    if files:
        chains = {"given files": files}
    else:
        store_path, _ = resolve_store(twin_dir)
        chains = {
            "audit log": chain_files(audit_path(store_path)),
            "security log": chain_files(security_path(store_path)),
        }
    problems = 0
    for label, paths in chains.items():
        report = verify_chain(paths)
        _print_report(label, report)
        problems += len(report.problems)
    if problems:
        raise ChainBroken(f"{problems} problem(s) found: the logs were altered or records removed")


def _print_report(label: str, report: ChainReport) -> None:
    for problem in report.problems:
        console.print(problem, highlight=False, soft_wrap=True)
    state = "chain intact" if report.intact else f"{len(report.problems)} problem(s)"
    start = (
        f"; continues from {report.starts_after[:16]}… (older files removed)" if report.starts_after else ""
    )
    console.print(
        Text.assemble(
            (label, "bold"), f": {report.records:,} records in {len(report.files)} file(s), {state}{start}; ",
            f"head {report.head}",
        ),
        highlight=False,
        soft_wrap=True,
    )  # fmt: skip


@app.command()
def backup(
    twin_dir: Path = typer.Argument(..., help="Twin directory (holding twin.toml)."),
    archive: Path = typer.Argument(..., help="The archive to write (.tar.gz), outside the twin directory."),
    logs: bool = typer.Option(False, "--logs", help="Include the audit and security logs (personal data)."),
) -> None:
    """Back the twin up into one checked archive (safe while it is served or rebuilt)."""
    summary = backup_twin(twin_dir, archive, logs=logs)
    console.print(
        Text.assemble(
            "Backed up ",
            (f"{summary.files} files", "bold"),
            f" ({summary.bytes:,} bytes) to ",
            (str(archive), "bold"),
        )
    )


@app.command()
def restore(
    archive: Path = typer.Argument(..., help="An archive written by `civictwin backup`."),
    twin_dir: Path = typer.Argument(..., help="A new directory to restore the twin into."),
    store: str | None = typer.Option(
        None,
        "--store",
        help="For a twin stored in PostGIS: the postgresql:// URI of an empty database (with postgis) "
        "to restore it into; no password in it (PGPASSWORD, ~/.pgpass or a service file).",
    ),
) -> None:
    """Restore a backup into a new twin directory, checking every file and that the store opens."""
    summary = restore_twin(archive, twin_dir, store=store)
    console.print(
        Text.assemble("Restored ", (f"{summary.files} files", "bold"), " into ", (str(twin_dir), "bold"), "; serve it with ",
                      (f"civictwin serve {twin_dir}", "bold"))
    )  # fmt: skip
