"""The ``civictwin`` console script: catches Ctrl+C from its very first instruction.

Importing the command line (Typer, Rich, pandas, DuckDB) takes a noticeable fraction of a second; an
interrupt landing there would otherwise print a traceback. This module imports nothing but ``signal``
and ``sys`` (loaded with the interpreter), takes over SIGINT first thing, and only then loads the
interrupt bookkeeping (:mod:`civictwin.interrupts`) and the CLI. (An interrupt during the interpreter's
own start-up, before any civictwin code runs, remains Python's to report.)
"""

from __future__ import annotations

import signal
import sys
from types import FrameType


def _interrupted_early(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Entry point of the ``civictwin`` script."""
    signal.signal(signal.SIGINT, _interrupted_early)
    try:
        from civictwin import interrupts

        interrupts.install()
        from civictwin.cli import main as cli_main

        cli_main()
        # The command's work is done and kept: a Ctrl+C during the interpreter's own teardown (which
        # restores the default handler and would kill the process) must not turn success into a signal.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except SystemExit as done:
        if done.code == 130:  # the CLI reported an interrupt: end without finalising native libraries
            from civictwin import interrupts

            interrupts.exit_interrupted()
        raise
    except KeyboardInterrupt:
        _report_interrupt()
    except Exception:
        # An interrupt during an import can surface as an ImportError (numpy turns it into one).
        if "civictwin.interrupts" in sys.modules and sys.modules["civictwin.interrupts"].received():
            _report_interrupt()
        raise


def _report_interrupt() -> None:
    from civictwin import interrupts  # light: the standard library only

    print(interrupts.MESSAGE, file=sys.stderr)
    interrupts.exit_interrupted()


if __name__ == "__main__":  # python -m civictwin.entry
    main()
