"""Fixtures for the API tests: the small real twin of :mod:`apitwin`, tokens per role, a client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from apitwin import build_twin
from fastapi.testclient import TestClient

from civictwin.api.app import create_app
from civictwin.api.settings import ServerSettings
from civictwin.governance.tokens import Role, create_token, revoke_token, tokens_path


@pytest.fixture(scope="session")
def twin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A twin directory holding the test store."""
    directory = tmp_path_factory.mktemp("twin")
    build_twin(directory)
    return directory


@pytest.fixture(scope="session")
def store_path(twin_dir: Path) -> Path:
    return twin_dir / "test-twin.duckdb"


@pytest.fixture(scope="session")
def tokens(store_path: Path) -> dict[str, str]:
    """One bearer token per role (the steward stewards ``zones``), plus a revoked one."""
    path = tokens_path(store_path)
    issued = {
        "viewer": create_token(path, role=Role.VIEWER, name="a viewer").token,
        "analyst": create_token(path, role=Role.ANALYST, name="an analyst").token,
        "steward": create_token(path, role=Role.STEWARD, datasets=["zones"], name="zones steward").token,
        "admin": create_token(path, role=Role.ADMIN, name="the admin").token,
        "moderator": create_token(path, role=Role.MODERATOR, name="consultation desk").token,
    }
    revoked = create_token(path, role=Role.ADMIN, name="gone")
    revoke_token(path, revoked.record.id)
    issued["revoked"] = revoked.token
    return issued


@pytest.fixture(scope="session")
def client(twin_dir: Path, tokens: dict[str, str]) -> Iterator[TestClient]:
    """A client of the app over the test twin, with limits loose enough never to trigger."""
    settings = ServerSettings(rate_per_second=10_000, rate_burst=100_000)
    with TestClient(create_app(twin_dir, settings=settings)) as test_client:
        yield test_client
