"""Fixtures of the readiness tests: the hand-made twin of :mod:`readinesstwin`, built once per module."""

from __future__ import annotations

from pathlib import Path

import pytest
from readinesstwin import build_twin


@pytest.fixture(scope="module")
def twin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_twin(tmp_path_factory.mktemp("readiness") / "twin")
