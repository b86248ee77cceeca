"""Shared data for the energy engine tests (skipped with a reason when ../shared is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[4].parent / "shared" / "data"
HELSINKI_EPW = SHARED / "weather" / "FIN_Helsinki.029740_IWEC.epw"
SWEDEN_TABULA = SHARED / "tabula" / "sweden.csv"


@pytest.fixture(scope="session")
def helsinki_epw() -> Path:
    """The Helsinki EPW file (skips when absent)."""
    if not HELSINKI_EPW.is_file():
        pytest.skip(f"shared weather file absent: {HELSINKI_EPW}")
    return HELSINKI_EPW


@pytest.fixture(scope="session")
def helsinki_weather():  # type: ignore[no-untyped-def]
    """The Helsinki IWEC year, read once."""
    if not HELSINKI_EPW.is_file():
        pytest.skip(f"shared weather file absent: {HELSINKI_EPW}")
    from civictwin.engines.energy.weather import read_weather

    return read_weather(HELSINKI_EPW)


@pytest.fixture(scope="session")
def sweden_typology():  # type: ignore[no-untyped-def]
    """The Swedish TABULA typology, read once."""
    if not SWEDEN_TABULA.is_file():
        pytest.skip(f"shared typology absent: {SWEDEN_TABULA}")
    from civictwin.engines.energy.archetypes import read_typology

    return read_typology(SWEDEN_TABULA)
