"""Fixtures for the observation import tests: the shared real data, skipped when absent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sensortwin import SHARED_DATA


@pytest.fixture
def shared_path() -> Callable[[str], Path]:
    """``shared_path("sensors/cologne-uba")``: a path of the shared real data, or skip when absent."""

    def find(relative: str) -> Path:
        path = SHARED_DATA / relative
        if not path.exists():
            pytest.skip(f"shared data {relative} is absent (expected under {SHARED_DATA})")
        return path

    return find
