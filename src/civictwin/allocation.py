"""How a build's process allocates: no transparent huge pages, and Python's garbage collector run less often.

A build makes and drops large arrays and many short-lived objects. With transparent huge pages, each
first touch of a fresh 2 MiB region of a large allocation made the kernel zero all of it: about a
seventh of the 8×8 build's CPU time was the kernel zeroing pages (``perf``), its system time 2.1–3.2 s
against 1.5–1.7 s without them. Python's collector, at its default first threshold of 700
allocations, ran about 1,070 times in that build for 0.43 s, which held the interpreter lock against
the network's worker thread; at 100,000 it ran 230 times for 0.06 s, the build's peak memory equal
within run-to-run noise. Measured side by side in BENCHMARKS.md ("Where the build's time goes").
"""

from __future__ import annotations

import ctypes
import gc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["FIRST_GENERATION_THRESHOLD", "huge_pages_disabled", "tuned_for_build"]

FIRST_GENERATION_THRESHOLD = 100_000
"""Allocations (net of deallocations) of container objects between two collections of Python's
youngest generation during a build (Python's default: 700). Older generations keep their counts, so
reference cycles are still collected, about 140 times less often."""

_PR_SET_THP_DISABLE = 41  # Linux prctl(2)
_PR_GET_THP_DISABLE = 42

_lock = threading.Lock()
_builds = 0
_restore: tuple[tuple[int, int, int], bool] | None = None


@contextmanager
def tuned_for_build() -> Iterator[None]:
    """The process without transparent huge pages (Linux; where the kernel allows it) and with the
    collector's first threshold at :data:`FIRST_GENERATION_THRESHOLD` for the block, as it was after.

    Process-wide settings: builds that overlap (threads of one server) share them, set by the first to
    start and restored by the last to end. A process started meanwhile inherits the huge-page setting.
    """
    global _builds, _restore
    with _lock:
        if _builds == 0:
            thresholds = gc.get_threshold()
            _restore = (thresholds, _set_huge_pages(disabled=True))
            gc.set_threshold(max(thresholds[0], FIRST_GENERATION_THRESHOLD), *thresholds[1:])
        _builds += 1
    try:
        yield
    finally:
        with _lock:
            _builds -= 1
            if _builds == 0 and _restore is not None:
                thresholds, changed = _restore
                gc.set_threshold(*thresholds)
                if changed:
                    _set_huge_pages(disabled=False)
                _restore = None


def huge_pages_disabled() -> bool | None:
    """Whether transparent huge pages are disabled for this process (None: not Linux, or unknown)."""
    prctl = _prctl()
    if prctl is None:
        return None
    state = prctl(_PR_GET_THP_DISABLE, 0, 0, 0, 0)
    return None if state < 0 else bool(state)


def _set_huge_pages(*, disabled: bool) -> bool:
    """Disable (or enable again) transparent huge pages for the process; whether the setting changed."""
    prctl = _prctl()
    if prctl is None or huge_pages_disabled() in (None, disabled):
        return False
    return bool(prctl(_PR_SET_THP_DISABLE, int(disabled), 0, 0, 0) == 0)


def _prctl() -> ctypes._NamedFuncPointer | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.restype = ctypes.c_int
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return prctl
