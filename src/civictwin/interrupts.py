"""Knowing that Ctrl+C arrived, even where a library turned it into something else.

Python raises :class:`KeyboardInterrupt` on SIGINT, but the exception does not always survive: DuckDB
cancels the running query and raises its own ``Query interrupted`` error, and Typer turns the
interrupt into a return value of 130. :func:`install` replaces the SIGINT handler with one that
raises the same ``KeyboardInterrupt`` *and* remembers that an interrupt arrived, so the command line
can report any failure after that moment as what it is: an interrupt (one line, exit 130). Where the
interrupt lands in code that cannot pass an exception on (a compiled extension's callback, a weakref
callback, a finaliser), Python swallows it as "unraisable"; the handler then delivers it again.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from types import FrameType

__all__ = ["EXIT_CODE", "MESSAGE", "install", "received"]

EXIT_CODE = 130
"""What a shell reports for a command ended by Ctrl+C (128 + SIGINT)."""
MESSAGE = "interrupted: nothing half-written was kept"

_received = threading.Event()
_previous_unraisablehook = sys.unraisablehook


def install() -> None:
    """Handle SIGINT from now on (main thread only): remember it, then raise KeyboardInterrupt.

    Earlier interrupts are forgotten: each was already raised where it landed.
    """
    global _previous_unraisablehook
    _received.clear()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_interrupt)
    if sys.unraisablehook is not _on_unraisable:
        _previous_unraisablehook = sys.unraisablehook
        sys.unraisablehook = _on_unraisable


RETRY_S = 0.01
"""How soon an interrupt that landed where it could not be raised is delivered again (seconds)."""


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    _received.set()
    if frame is not None and frame.f_code.co_filename.startswith("<frozen importlib"):
        # Raised here, the interrupt could land in the import system's clean-up of a module lock (a
        # weakref callback), where Python swallows it with an "Exception ignored" traceback on stderr:
        # the interrupt lost, the output no longer one line. Deliver it again a moment later instead,
        # once the interpreter is back in ordinary code.
        threading.Timer(RETRY_S, signal.raise_signal, args=(signum,)).start()
        return
    raise KeyboardInterrupt


def _on_unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """Deliver again an interrupt Python swallowed; report anything else as before.

    Raised inside code that cannot pass an exception on (measured: a compiled extension's callback,
    "Exception ignored in: 'cls_name'", in the middle of a build), the interrupt would be lost and its
    traceback printed on stderr; the command would run on. It is raised again a moment later instead,
    in ordinary code.
    """
    if issubclass(unraisable.exc_type, KeyboardInterrupt) and received():
        threading.Timer(RETRY_S, signal.raise_signal, args=(signal.SIGINT,)).start()
        return
    _previous_unraisablehook(unraisable)


def received() -> bool:
    """Whether SIGINT arrived since the last :func:`install`."""
    return _received.is_set()


def exit_interrupted() -> None:
    """End the process as interrupted: exit status 130, without the interpreter's finalisation.

    The one-line message is printed by the caller. Clean-up already ran while the interrupt unwound
    the stack (staging files are removed in ``finally`` blocks). Finalising native libraries after an
    interrupt landed inside them (an extension module half imported, a DuckDB query cancelled)
    crashed the process now and then (exit -11 instead of 130), so the process ends here, after the
    exit handlers (logging's flush, multiprocessing's release of a worker pool's semaphores) and a
    flush of the standard streams.
    """
    atexit._run_exitfuncs()  # the interpreter's own first step of a normal exit
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(EXIT_CODE)
