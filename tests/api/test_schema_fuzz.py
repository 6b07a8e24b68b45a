"""Schemathesis over the OpenAPI schema: authenticated as a superuser, no response is a
5xx and every response matches the schema (status, content type, body)."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from orbit.core.tokens import create_token
from runs import enqueue
from tests.api.conftest import make_user

schema = schemathesis.openapi.from_wsgi("/api/openapi.json", WSGIHandler())


@pytest.fixture
def admin_key(db, test_pipelines):
    """A superuser token, some runs to find, and requests that share the test's transaction."""
    # Like Django's test client: a request must not close the connection holding the
    # test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    _, key = create_token(make_user("fuzzer", is_superuser=True, is_staff=True), "fuzz")
    for name in ("t-single", "t-three"):
        enqueue(name, metadata={"n": 1})
    yield key
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case, admin_key):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {admin_key}"},
        # Some input rules cannot be written in JSON Schema (a cron expression must parse,
        # a definition must exist in code), so schema-valid input may still get a 422.
        excluded_checks=[positive_data_acceptance],
    )
