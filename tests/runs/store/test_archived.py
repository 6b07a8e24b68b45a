"""Archived pipelines in the claim and the insert, against every store (conftest.py): an
archived pipeline's pending runs stay out of every claim, and a checked insert for it
writes nothing (pipelines/archiving.py)."""

from __future__ import annotations

import pytest
from django.db.models.functions import Now

from orbit.core.exceptions import StalePipeline
from pipelines.models import Pipeline
from runs.models import Run
from tests.runs.store.conftest import check_of, claim, insert, new_run

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_claim_leaves_the_runs_of_an_archived_pipeline(store, pipeline):
    other = Pipeline.objects.create(name="other", definition="t-three")
    held = [insert(store, pipeline), insert(store, pipeline, queue="q2")]
    free = insert(store, other, priority=-5)  # lower priority: it comes after the held ones
    Pipeline.objects.filter(id=pipeline.id).update(archived_at=Now(), archived_by="alice")
    assert [c.run_id for c in claim(store, queues=("default", "q2"))] == [free]
    assert claim(store, queues=("q2",)) == []  # one queue: the other claim statement
    assert set(Run.objects.filter(id__in=held).values_list("status", flat=True)) == {"pending"}
    Pipeline.objects.filter(id=pipeline.id).update(archived_at=None)
    assert sorted(c.run_id for c in claim(store, queues=("default", "q2"))) == sorted(held)


def test_seconds_until_due_leaves_an_archived_pipelines_runs_out(store, pipeline):
    """An idle worker sleeps until the next run it could claim, not an archived one's."""
    insert(store, pipeline)
    Pipeline.objects.filter(id=pipeline.id).update(archived_at=Now())
    assert store.seconds_until_due(["default"]) is None
    Pipeline.objects.filter(id=pipeline.id).update(archived_at=None)
    assert store.seconds_until_due(["default"]) == 0.0


def test_a_checked_insert_for_an_archived_pipeline_writes_nothing(store, pipeline):
    Pipeline.objects.filter(id=pipeline.id).update(archived_at=Now())
    check = check_of(pipeline)
    with pytest.raises(StalePipeline):
        store.insert_runs([new_run(pipeline)], pipeline=check)
    assert not Run.objects.exists()
