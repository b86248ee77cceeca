"""The ``civictwin`` command line: a thin Typer layer over the library.

Each command module registers its commands on :data:`app`; :func:`main` turns civictwin errors into
one line on stderr and a non-zero exit, with a traceback only under ``--debug``. Both consoles have
Rich markup switched off: names, paths and messages from the user's files are printed as they are (a
steward called "GIS [planning]" must not lose its brackets); styles are given as ``Text`` parts.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console
from rich.text import Text

from civictwin import interrupts
from civictwin.errors import CivicTwinError

app = typer.Typer(
    name="civictwin",
    help="An open-source urban digital twin: build, simulate, compare, publish.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(markup=False)
err_console = Console(stderr=True, markup=False)

_state = {"debug": False}


@app.callback()
def _global_options(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    _state["debug"] = debug


def _register_commands() -> None:
    from civictwin.cli import calibrate, catalog, live, ops, readiness, scenario, sensors, serve, twin  # noqa: F401  (each module registers its commands)


def main(argv: list[str] | None = None) -> None:
    """Run the command line: one line and a non-zero exit for errors, exit 130 for Ctrl+C.

    An interrupt can surface as :class:`KeyboardInterrupt`, as Typer's return value 130, or as
    another library's error raised because of it (DuckDB's "Query interrupted"); all three are
    reported the same way. :mod:`civictwin.entry` installs the handler that tells them apart before
    this module is even imported; a direct call installs it here.
    """
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    interrupts.install()
    _register_commands()
    try:
        code = app(args=args, standalone_mode=False)
    except CivicTwinError as exc:
        if interrupts.received():
            _interrupted()
        if debug:
            raise
        err_console.print(
            Text.assemble(("error:", "bold red"), " ", exc.user_message()), highlight=False, soft_wrap=True
        )
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _interrupted()
    except Exception as exc:
        # Usage errors come from Typer's own copy of click (typer._click): TyperException is their public
        # base class (exit code 2 for usage errors), Abort its "stop here" (a declined prompt).
        if isinstance(exc, typer.TyperException):
            _show_usage_error(exc)
            sys.exit(exc.exit_code)
        if isinstance(exc, typer.Abort):
            sys.exit(1)
        if interrupts.received():
            _interrupted()
        if debug:
            raise
        err_console.print(
            Text.assemble(
                ("internal error:", "bold red"),
                f" {type(exc).__name__}: {exc} (re-run with --debug for details)",
            ),
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(3)
    if code == interrupts.EXIT_CODE or interrupts.received():
        _interrupted()
    if isinstance(code, int) and code != 0:
        sys.exit(code)


def _show_usage_error(exc: typer.TyperException) -> None:
    """The exception's own report (usage line, hint and message) when it has one, else its message."""
    show = getattr(exc, "show", None)
    if callable(show):
        show()
    else:
        err_console.print(Text.assemble(("error:", "bold red"), " ", exc.format_message()), highlight=False)


def _interrupted() -> NoReturn:
    err_console.print(
        Text.assemble(("interrupted", "bold red"), interrupts.MESSAGE.removeprefix("interrupted"))
    )
    sys.exit(interrupts.EXIT_CODE)
