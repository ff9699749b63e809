"""Schemathesis generates requests from the app's own OpenAPI schema: no input may get a 5xx."""

from __future__ import annotations

from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis not installed (test extra)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from dfdetect.runtime.torch_backend import TorchPredictor  # noqa: E402
from dfdetect.serving.app import create_app  # noqa: E402


@pytest.fixture(scope="module")
def schema(trained_run: Path):  # type: ignore[no-untyped-def]
    app = create_app(TorchPredictor.from_checkpoint(trained_run, device="cpu"))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def no_server_error(path: str):  # type: ignore[no-untyped-def]
    def check(case) -> None:  # type: ignore[no-untyped-def]
        response = case.call()
        assert response.status_code < 500, (path, response.status_code, response.text[:300])
        case.validate_response(response, checks=[not_a_server_error])

    return check


def test_no_input_gets_a_server_error(schema) -> None:  # type: ignore[no-untyped-def]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/predict", "/v1/explain", "/v1/model", "/health"}
    for operation in operations:
        limits = settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        given(operation.as_strategy())(limits(no_server_error(operation.path)))()
