"""The run store's behaviour suite runs unchanged against every implementation that can
work on the database under test: the portable store everywhere, the PostgreSQL store on
PostgreSQL (so on PostgreSQL both run, and each is the other's reference)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection, connections

from orbit.core.ids import uuid7
from pipelines.models import Pipeline
from runs.store.portable import PortableStore
from runs.store.protocol import RunStore
from runs.store.records import ClaimRequest, Claims, NewRun

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
