"""The rows the benchmarks lay down with SQL of their own (`make bench-history`,
`bench-prune`, `bench-memory`, `bench-api`, bench_dashboard.py) are rows Orbit can read:
a NOT NULL column added to a model after a seed was written broke every one of them at
its first statement, unseen until someone ran that benchmark. Each seed is run small
here, on PostgreSQL (they are PostgreSQL's), and its rows read back through the models."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest
from django.db import connection

from pipelines.models import Pipeline
from runs.models import Run, RunStatus, Step, StepAttempt, StepStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def postgresql_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the benchmarks' seeds are PostgreSQL SQL")


def bench_module(name: str) -> ModuleType:
    """Import a benchmark module without keeping what it sets in the environment at
    import (bench_dashboard.py sets DEBUG for its own process)."""
    saved = dict(os.environ)
    try:
        return importlib.import_module(f"bench.{name}")
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_history_is_finished_runs_each_with_its_step_and_attempt():
    Pipeline.objects.create(name="bench-noop", definition="bench-noop")
    bench_module("bench_history").insert_history(120)

    runs = list(Run.objects.all())
    assert len(runs) == 120
    assert {r.status for r in runs} == {RunStatus.SUCCEEDED}
    assert all(r.finished_at is not None and r.created_at <= r.finished_at for r in runs)
    assert all(r.trace_context == {} for r in runs)
    assert Step.objects.filter(status=StepStatus.SUCCEEDED).count() == 120
    assert StepAttempt.objects.filter(outcome="succeeded").count() == 120


def test_the_memory_benchmarks_queue_is_pending_runs_each_with_its_step():
    Pipeline.objects.create(name="bench-noop", definition="bench-noop")
    bench_module("bench_memory").queue_runs(50)

    assert Run.objects.filter(status=RunStatus.PENDING, current_step="noop").count() == 50
    assert Step.objects.filter(status=StepStatus.PENDING, name="noop").count() == 50


def test_the_api_benchmarks_history_has_runs_steps_attempts_and_logs():
    try:
        bench_module("bench_api").seed(600, reseed=True)  # the first 508 pending or running
    finally:
        connection.close()  # the seed turns synchronous_commit off for its session

    assert Run.objects.count() == 600
    assert Run.objects.filter(status=RunStatus.SUCCEEDED).exists()
    assert Step.objects.count() == 1_800
    assert StepAttempt.objects.filter(outcome="succeeded").exists()


def test_the_dashboard_benchmarks_history_is_finished_runs():
    bench_module("bench_dashboard").fill(40)

    assert Run.objects.count() == 40
    assert not Run.objects.exclude(
        status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED]
    ).exists()
