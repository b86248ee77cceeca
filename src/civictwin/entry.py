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

EXIT_CODE = 130
"""What a shell reports for a command ended by Ctrl+C (128 + SIGINT)."""
MESSAGE = "interrupted: nothing half-written was kept"


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
    except KeyboardInterrupt:
        _report_interrupt()
    except Exception:
        # An interrupt during an import can surface as an ImportError (numpy turns it into one).
        if "civictwin.interrupts" in sys.modules and sys.modules["civictwin.interrupts"].received():
            _report_interrupt()
        raise


def _report_interrupt() -> None:
    print(MESSAGE, file=sys.stderr)
    sys.exit(EXIT_CODE)
