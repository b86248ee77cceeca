"""Fixtures of the heat engine's tests."""

from __future__ import annotations

import pytest
from heat_surfaces import small_surface

from civictwin.engines.heat.rasters import Surface


@pytest.fixture
def surface() -> Surface:
    """A fresh 20 x 30 surface of 2 m cells (see heat_surfaces.small_surface)."""
    return small_surface()
