"""Knowing that Ctrl+C arrived, even where a library turned it into something else.

Python raises :class:`KeyboardInterrupt` on SIGINT, but the exception does not always survive: DuckDB
cancels the running query and raises its own ``Query interrupted`` error, and Typer turns the
interrupt into a return value of 130. :func:`install` replaces the SIGINT handler with one that
raises the same ``KeyboardInterrupt`` *and* remembers that an interrupt arrived, so the command line
can report any failure after that moment as what it is: an interrupt (one line, exit 130).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from civictwin.entry import EXIT_CODE, MESSAGE

__all__ = ["EXIT_CODE", "MESSAGE", "install", "received"]

_received = threading.Event()


def install() -> None:
    """Handle SIGINT from now on (main thread only): remember it, then raise KeyboardInterrupt.

    Earlier interrupts are forgotten: each was already raised where it landed.
    """
    _received.clear()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_interrupt)


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    _received.set()
    raise KeyboardInterrupt


def received() -> bool:
    """Whether SIGINT arrived since the last :func:`install`."""
    return _received.is_set()
