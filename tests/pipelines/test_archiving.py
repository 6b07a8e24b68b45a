"""Archiving a pipeline whose definition is gone (pipelines/archiving.py): the rule, the
audit trail, the refusal to start runs, and the sync that brings it back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db.models.functions import Now

from orbit.core.audit import Actor
from orbit.core.exceptions import PipelineArchived
from orbit.core.models import AuditEvent, AuditSource
from pipelines.archiving import pipeline_archive, pipeline_unarchive
from pipelines.lifecycle import PipelineConflict
from pipelines.models import Pipeline
from pipelines.sync import sync_pipelines
from runs import enqueue
from runs.enqueueing import get_pipeline, run_create
from runs.models import Run
from runs.scheduler import fire_due_schedules, next_fire_time

pytestmark = pytest.mark.django_db

ALICE = Actor(source=AuditSource.CLI, name="alice")
BOB = Actor(source=AuditSource.CLI, name="bob")


def events() -> list[tuple[str, str, dict]]:
    return list(
        AuditEvent.objects.filter(action__in=["pipeline.archived", "pipeline.unarchived"])
        .order_by("id")
        .values_list("action", "actor", "changes")
    )


@pytest.fixture
def gone(test_pipelines) -> Pipeline:
    """A throwaway pipeline's row: its definition is not in code, and it has a run."""
    row = Pipeline.objects.create(name="scratch", definition="scratch-gone")
    Run.objects.create(pipeline=row, status="succeeded")
    return row


def test_archiving_and_unarchiving_keep_the_pipelines_runs(gone):
    """Set once, cleared once, audited: tests/pipelines/test_flags.py, with pausing."""
    assert pipeline_archive(gone, actor=ALICE) is True
    assert pipeline_unarchive(gone, actor=BOB) is True
    assert Run.objects.filter(pipeline=gone).count() == 1  # its history stays


def test_a_pipeline_still_defined_in_code_is_refused_with_the_reason(test_pipelines):
    row = Pipeline.objects.get(name="t-single")
    with pytest.raises(PipelineConflict) as refused:
        pipeline_archive(row, actor=ALICE)
    assert str(refused.value) == (
        "Pipeline 't-single' runs definition 't-single', which is still in code: only a "
        "pipeline whose definition is gone can be archived (the next sync would bring it "
        "back); disable it instead"
    )
    assert not Pipeline.objects.get(id=row.id).is_archived
    assert events() == []


def test_an_archived_pipeline_cannot_start_runs(gone):
    pipeline_archive(gone, actor=ALICE)
    with pytest.raises(PipelineArchived, match="Pipeline 'scratch' is archived; unarchive it"):
        run_create(gone)
    with pytest.raises(PipelineArchived):
        enqueue("scratch")
    assert Run.objects.filter(pipeline=gone).count() == 1


def test_the_insert_refuses_a_row_archived_since_this_process_cached_it(test_pipelines):
    """Another process, where the definition is gone, archives a row this one cached: the
    insert itself sees it, and the enqueue is refused on a fresh read."""
    get_pipeline("t-single")  # cached: enabled, in code
    Pipeline.objects.filter(name="t-single").update(archived_at=Now(), archived_by="elsewhere")
    with pytest.raises(PipelineArchived):
        enqueue("t-single")
    assert not Run.objects.exists()


def test_a_sync_unarchives_a_pipeline_whose_definition_is_back(test_pipelines, gone):
    pipeline_archive(gone, actor=ALICE)
    Pipeline.objects.filter(id=gone.id).update(definition="t-single")  # the code came back
    sync_pipelines()
    gone.refresh_from_db()
    assert not gone.is_archived
    assert events()[-1] == (
        "pipeline.unarchived",
        "pipeline sync",
        {"archived": [True, False], "archived_by": "alice"},
    )
    assert enqueue("scratch").status == "pending"


def test_a_sync_leaves_archived_a_pipeline_whose_definition_is_still_gone(gone):
    pipeline_archive(gone, actor=ALICE)
    sync_pipelines()
    assert Pipeline.objects.get(id=gone.id).is_archived


def test_an_archived_pipelines_schedule_never_fires(test_pipelines):
    row = Pipeline.objects.create(name="scratch", definition="t-single", schedule="* * * * *")
    Pipeline.objects.filter(id=row.id).update(
        archived_at=Now(), schedule_anchor=datetime(2026, 1, 1, tzinfo=UTC)
    )
    row.refresh_from_db()
    assert next_fire_time(row) is None
    assert [r.pipeline.name for r in fire_due_schedules(exclusive=False)] == []
