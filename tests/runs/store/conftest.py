"""The run store's behaviour suite runs unchanged against every implementation that can
work on the database under test: the portable store everywhere, the PostgreSQL store on
PostgreSQL (so on PostgreSQL both run, and each is the other's reference)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from django.db import connection

from orbit.core.ids import uuid7
from pipelines.models import Pipeline
from runs.store.portable import PortableStore
from runs.store.protocol import RunStore
from runs.store.records import Claim, ClaimRequest, NewRun

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


def claim(store: RunStore, limit: int = 10, **fields: Any) -> list[Claim]:
    values: dict[str, Any] = {
        "worker_id": None,
        "limit": limit,
        "queues": ("default",),
        "lease_seconds": LEASE,
    }
    values.update(fields)
    return store.claim(ClaimRequest(**values))
