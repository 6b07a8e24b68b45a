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


@pytest.fixture(autouse=True)
def _no_webhook_endpoints_known():
    """Each test starts with an empty, fresh list of enabled webhook endpoints, as a
    process with none configured has (runs/webhooks/endpoints.py): one test's endpoints,
    rolled back with its transaction, are not another's, and no test pays a first load."""
    from runs.webhooks import endpoints

    endpoints.assume(())


@pytest.fixture
def test_pipelines():
    """Register the pipelines in tests/pipelines_for_tests.py and give their rows."""
    from pipelines.sync import sync_pipelines
    from tests import pipelines_for_tests

    sync_pipelines()
    return pipelines_for_tests


@pytest.fixture
def workers(tmp_path):
    """Start real worker processes; all are killed at the end of the test."""
    from tests.processes import WorkerProcess

    started: list[WorkerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> WorkerProcess:
        worker = WorkerProcess(tmp_path, *args, env=env, name=f"worker{len(started)}")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def spans():
    """Tracing on for the test, every span ended in this process (a step's own spans
    included: its child process relays them) kept by an in-memory exporter."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from orbit.core import tracing

    exporter = InMemorySpanExporter()
    tracing.start(SimpleSpanProcessor(exporter))
    yield exporter
    tracing.stop()


@pytest.fixture
def effects(db):
    """A table the test steps write one row to per execution: counts side effects
    across processes, so a step that ran twice shows up twice."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS orbit_test_effects")
        cursor.execute(
            "CREATE TABLE orbit_test_effects (run_id varchar(64), step varchar(100), attempt integer, pid integer)"
        )

    def counts(run_id: object = None) -> dict[tuple[str, str], int]:
        sql = "SELECT run_id, step, COUNT(*) FROM orbit_test_effects"
        params: list[str] = []
        if run_id is not None:
            sql += " WHERE run_id = %s"
            params.append(str(run_id))
        with connection.cursor() as cursor:
            cursor.execute(sql + " GROUP BY run_id, step", params)
            return {(r[0], r[1]): r[2] for r in cursor.fetchall()}

    yield counts
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS orbit_test_effects")


@pytest.fixture
def documents_root(tmp_path, settings):
    """An empty ORBIT_DOCUMENTS_ROOT of the test's own, the only folder documents come from."""
    root = tmp_path / "documents"
    root.mkdir()
    settings.ORBIT_DOCUMENTS_ROOT = str(root)
    return root
