"""Exclusive advisory file locks between civictwin processes, on POSIX and Windows alike (portalocker).

Two commands that rewrite the same file (two builds of one twin, two token edits) must not interleave.
The lock lives on a separate ``.lock`` file, is released by the operating system if the process dies
(``flock`` on POSIX, ``msvcrt.locking`` on Windows), and so never needs cleaning up by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import portalocker


class LockHeld(Exception):
    """Another process holds the lock (only raised when not waiting for it)."""


@contextmanager
def exclusive(lock_path: Path, *, wait: bool) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (created if missing) for the block.

    With ``wait`` the call blocks until the lock is free; without it, :class:`LockHeld` is raised at
    once, for work that should rather be refused than queued (a second build of the same twin).
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    flags = portalocker.LockFlags.EXCLUSIVE
    if not wait:
        flags |= portalocker.LockFlags.NON_BLOCKING
    with open(lock_path, "a") as handle:
        try:
            portalocker.lock(handle, flags)
        except portalocker.LockException:
            raise LockHeld(str(lock_path)) from None
        try:
            yield
        finally:
            portalocker.unlock(handle)
