"""Fuzz every operation of the OpenAPI document with schemathesis: no input may cause a 5xx.

Schemathesis generates valid and invalid requests from the app's own OpenAPI document (its pytest plugin does not run
under this pytest, so its Hypothesis strategies are driven directly). Bounded to a few dozen
examples per operation to keep the suite fast; each request is sent as the admin, who reaches every
layer, and anonymously, which exercises access control.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from apitwin import auth
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from civictwin.api.app import create_app
from civictwin.api.settings import ServerSettings


@pytest.fixture(scope="module")
def api_schema(twin_dir: Path) -> Any:
    loose = ServerSettings(rate_per_second=100_000, rate_burst=1_000_000)
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(twin_dir, settings=loose))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_is_fuzzed_without_server_errors(
    api_schema: Any, tokens: dict[str, str], mode: GenerationMode
) -> None:
    """Schema-valid (positive) and schema-violating (negative) requests to every operation: never a
    5xx; every error is a problem document."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    labels = {f"{op.method.upper()} {op.path}" for op in operations}
    assert {"GET /collections/{collection_id}/items", "GET /tiles/{layer}/{z}/{x}/{y}.mvt"} <= labels

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            for role in ("admin", "anonymous"):
                response = case.call(headers=auth(tokens, role))
                where = f"{case.method} {case.formatted_path} {case.query}"
                assert response.status_code < 500, f"{where}: {response.text}"
                if response.status_code >= 400:
                    assert response.headers["content-type"] == ["application/problem+json"], where
                    assert response.json()["status"] == response.status_code, where

        try:
            check()
        except Unsatisfiable:
            # an operation without parameters (e.g. GET /tiles) has nothing to send wrongly
            assert mode is GenerationMode.NEGATIVE and not operation.query and not operation.path_parameters
