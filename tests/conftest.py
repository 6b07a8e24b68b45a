"""Shared fixtures. The suite runs twice: on SQLite (no DATABASE_URL) and on PostgreSQL."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("ORBIT_TESTING", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from django.db import connection

    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (run with DATABASE_URL=postgres://...)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def test_pipelines():
    """Register the pipelines in tests/pipelines_for_tests.py and give their rows."""
    from pipelines.sync import sync_pipelines
    from tests import pipelines_for_tests

    sync_pipelines()
    return pipelines_for_tests
