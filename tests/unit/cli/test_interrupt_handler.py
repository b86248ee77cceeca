"""The SIGINT handler: raised where it lands, except inside the import system, where it comes again."""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType, ModuleType
from typing import Any

import pytest

from civictwin import interrupts


class _Capture:
    """A meta-path finder that keeps the import system's frame that asked it, and finds nothing."""

    frame: FrameType | None = None

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> None:
        if name == "civictwin_no_such_module":
            self.frame = sys._getframe(1)


def test_an_interrupt_inside_the_import_system_is_delivered_again(monkeypatch: pytest.MonkeyPatch) -> None:
    capture = _Capture()
    monkeypatch.setattr(sys, "meta_path", [capture, *sys.meta_path])
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("civictwin_no_such_module")
    assert capture.frame is not None and capture.frame.f_code.co_filename.startswith("<frozen importlib")

    delivered = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: delivered.set())
    try:
        interrupts._received.clear()
        interrupts._on_interrupt(signal.SIGINT, capture.frame)  # does not raise there
        assert interrupts.received()
        # the interrupt comes again a moment later (here to the recording handler)
        for _ in range(200):
            if delivered.wait(0.01):
                break
        assert delivered.is_set()
    finally:
        signal.signal(signal.SIGINT, previous)
        interrupts._received.clear()


def test_an_interrupt_in_ordinary_code_raises_at_once() -> None:
    frame: Any = sys._getframe()
    interrupts._received.clear()
    with pytest.raises(KeyboardInterrupt):
        interrupts._on_interrupt(signal.SIGINT, frame)
    assert interrupts.received()
    interrupts._received.clear()
