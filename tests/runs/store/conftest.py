"""The run store's behaviour suite runs unchanged against every implementation that can
work on the database under test: the portable store everywhere, the PostgreSQL store on
PostgreSQL (so on PostgreSQL both run, and each is the other's reference)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections
from django.utils import timezone

from orbit.core.ids import uuid7
from pipelines.models import Pipeline
from runs.models import Run
from runs.store import transitions as t
from runs.store.portable import PortableStore
from runs.store.protocol import RunStore
from runs.store.records import (
    AttemptRecord,
    ClaimRequest,
    Claims,
    Fence,
    NewRun,
    Outcome,
    PipelineCheck,
)

LEASE = 30.0


@pytest.fixture(params=["portable", "postgresql"])
def store(request: pytest.FixtureRequest) -> RunStore:
    if request.param == "portable":
        return PortableStore()
    if connection.vendor != "postgresql":
        pytest.skip("the PostgreSQL store needs PostgreSQL")
    from runs.store.postgres import PostgresStore

    return PostgresStore()


@pytest.fixture
def pipeline(db: Any) -> Pipeline:
    return Pipeline.objects.get_or_create(name="t-three", defaults={"definition": "t-three"})[0]


def new_run(
    pipeline: Pipeline, steps: Sequence[str] = ("one", "two", "three"), **fields: Any
) -> NewRun:
    """A run as runs/lifecycle lays it out: its steps in order, the first one current."""
    values: dict[str, Any] = {
        "id": uuid7(),
        "pipeline_id": pipeline.pk,
        "steps": tuple(steps),
        "current_step": steps[0] if steps else "",
        "metadata": {},
    }
    values.update(fields)
    return NewRun(**values)


def check_of(pipeline: Pipeline, **fields: Any) -> PipelineCheck:
    """The caller's check of `pipeline` as stored, as runs/enqueueing.py makes it."""
    values: dict[str, Any] = {
        "id": pipeline.pk,
        "name": pipeline.name,
        "definition": pipeline.definition,
        "default_metadata": pipeline.default_metadata or {},
    }
    values.update(fields)
    return PipelineCheck(**values)


def insert(store: RunStore, pipeline: Pipeline, **fields: Any) -> uuid.UUID:
    (inserted,) = store.insert_runs([new_run(pipeline, **fields)])
    assert inserted.created
    return inserted.id


def claim(store: RunStore, limit: int = 10, **fields: Any) -> Claims:
    values: dict[str, Any] = {
        "worker_id": None,
        "limit": limit,
        "queues": ("default",),
        "lease_seconds": LEASE,
    }
    values.update(fields)
    return store.claim(ClaimRequest(**values))


def succeeded(held: Fence, step_id: int, number: int = 1, **changes: object) -> Outcome:
    """The outcome of a step attempt that succeeded and ends its run."""
    values = {
        "held": held,
        "run": t.SUCCEED,
        "step_id": step_id,
        "step": t.STEP_SUCCEED,
        "step_values": {"result": {"n": 1}, "result_json": '{"n": 1}', "duration": 0.5},
        "attempt": AttemptRecord(step_id=step_id, number=number, outcome="succeeded", duration=0.5),
    }
    values.update(changes)
    return Outcome(**values)  # type: ignore[arg-type]


def expire(run_id: object) -> None:
    """The run's lease ran out a few seconds ago."""
    Run.objects.filter(id=run_id).update(lease_expires_at=timezone.now() - timedelta(seconds=5))


@contextmanager
def held_elsewhere(*statements: tuple[str, Sequence[Any]]) -> Iterator[None]:
    """Another session runs `statements` in one open transaction (taking its locks) and
    keeps it open until the block ends, then rolls it back: a claimer or pruner in
    another process, mid-transaction."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("BEGIN")
                for sql, params in statements:
                    cursor.execute(sql, params)
                holding.set()
                release.wait(30)
                cursor.execute("ROLLBACK")
        finally:
            other.close()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert holding.wait(30), "the other session did not take its locks"
        yield
    finally:
        release.set()
        thread.join(30)
