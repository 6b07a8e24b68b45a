"""Pruning and its rollups, against every store (conftest.py): runs/store `prune_runs`,
`count_prunable`, `prune_audit`, `count_audit`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orbit.core.clock import db_now
from orbit.core.models import AuditEvent
from runs.models import Run, RunRollup, Step, StepAttempt
from services.models import VeryfiDocument
from tests.factories import RunFactory, StepAttemptFactory, StepFactory
from tests.runs.store.conftest import held_elsewhere

pytestmark = pytest.mark.django_db(transaction=True)

#: An hour boundary well in the past, so every run below finishes in a known hour.
HOUR = datetime(2030, 1, 1, 10, 0, tzinfo=UTC)


def finished(pipeline, status="succeeded", at=HOUR, took=2.0, attempts=(("succeeded", 2.0),)):
    """A finished run with one step and its attempts, as a worker leaves it."""
    run = RunFactory(
        pipeline=pipeline,
        status=status,
        started_at=at - timedelta(seconds=took),
        running_time=took,
        finished_at=at,
    )
    step = StepFactory(run=run, name="one", position=0, status="succeeded")
    for number, (outcome, duration) in enumerate(attempts, start=1):
        StepAttemptFactory(step=step, number=number, outcome=outcome, duration=duration)
    StepAttempt.objects.filter(run=run).update(finished_at=at)
    return run


def before(moment=HOUR + timedelta(hours=1), **statuses):
    return {"succeeded": moment, "failed": moment, "cancelled": moment, **statuses}


def test_a_pruned_run_goes_with_its_steps_and_attempts(store, pipeline):
    old = finished(pipeline)
    kept = finished(pipeline, at=HOUR + timedelta(hours=2))
    pruned = store.prune_runs(before(), limit=100)
    assert (dict(pruned.runs), pruned.attempts, pruned.total) == ({"succeeded": 1}, 1, 1)
    assert list(Run.objects.values_list("id", flat=True)) == [kept.id]
    assert not Step.objects.filter(run_id=old.id).exists()
    assert not StepAttempt.objects.filter(run_id=old.id).exists()
    assert Step.objects.filter(run_id=kept.id).count() == 1


def test_pending_and_running_runs_are_never_pruned(store, pipeline):
    RunFactory(pipeline=pipeline, status="pending")
    RunFactory(pipeline=pipeline, status="running", finished_at=HOUR - timedelta(days=1))
    assert store.prune_runs(before(), limit=100).total == 0
    assert Run.objects.count() == 2
    with pytest.raises(ValueError, match="only finished runs are pruned, not pending ones"):
        store.prune_runs({"pending": HOUR}, limit=100)


def test_each_status_has_its_own_cutoff(store, pipeline):
    finished(pipeline, "succeeded")
    failed = finished(pipeline, "failed", attempts=(("failed", 1.0),))
    cutoffs = {"succeeded": HOUR + timedelta(hours=1), "failed": HOUR - timedelta(days=1)}
    assert store.count_prunable(cutoffs) == {"succeeded": 1}
    assert dict(store.prune_runs(cutoffs, limit=100).runs) == {"succeeded": 1}
    assert list(Run.objects.values_list("id", flat=True)) == [failed.id]


def test_a_status_without_a_cutoff_is_kept(store, pipeline):
    finished(pipeline, "cancelled", attempts=())
    assert store.prune_runs({"succeeded": HOUR + timedelta(hours=1)}, limit=100).total == 0
    assert store.count_prunable({}) == {}
    assert Run.objects.count() == 1


def test_a_batch_takes_the_oldest_first_and_at_most_its_limit(store, pipeline):
    runs = [finished(pipeline, at=HOUR - timedelta(minutes=m)) for m in (1, 3, 2)]
    assert store.prune_runs(before(), limit=2).total == 2
    assert list(Run.objects.values_list("id", flat=True)) == [runs[0].id]  # the newest
    assert store.prune_runs(before(), limit=2).total == 1
    assert store.prune_runs(before(), limit=2).total == 0


def test_counting_what_would_go_deletes_nothing(store, pipeline):
    finished(pipeline, "succeeded")
    finished(pipeline, "succeeded", at=HOUR - timedelta(days=3))
    finished(pipeline, "failed")
    assert store.count_prunable(before()) == {"succeeded": 2, "failed": 1}
    assert Run.objects.count() == 3


def test_the_figures_of_pruned_runs_go_to_their_hours_rollup(store, pipeline):
    finished(pipeline, "succeeded", at=HOUR + timedelta(minutes=10), took=0.05)
    finished(
        pipeline,
        "failed",
        at=HOUR + timedelta(minutes=50),
        took=7.0,
        attempts=(("crashed", 3.0), ("failed", 4.0)),
    )
    finished(
        pipeline, "cancelled", at=HOUR + timedelta(minutes=59), attempts=(("cancelled", None),)
    )
    finished(pipeline, "succeeded", at=HOUR - timedelta(minutes=1), took=4000)  # the hour before
    store.prune_runs(before(HOUR + timedelta(hours=2)), limit=100)
    earlier, hour = RunRollup.objects.order_by("hour")
    assert (hour.pipeline_id, hour.hour) == (pipeline.id, HOUR)
    assert (hour.succeeded, hour.failed, hour.cancelled) == (1, 1, 1)
    # Buckets: <=0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, +Inf; cancelled runs untimed.
    assert hour.run_durations == [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    assert hour.run_seconds == pytest.approx(7.05)
    assert hour.attempts == {"cancelled": 1, "crashed": 1, "failed": 1, "succeeded": 1}
    assert hour.retries == 1
    # 2 s, 3 s and 4 s; the cancelled attempt had no duration.
    assert hour.attempt_durations == [0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0]
    assert hour.attempt_seconds == pytest.approx(9.0)
    assert (earlier.hour, earlier.succeeded, earlier.run_durations[-1]) == (
        HOUR - timedelta(hours=1),
        1,
        1,
    )


def test_batches_in_the_same_hour_add_up_in_one_rollup_row(store, pipeline):
    for minute in range(5):
        finished(pipeline, at=HOUR + timedelta(minutes=minute), took=0.2)
    while store.prune_runs(before(), limit=2).total:
        pass
    (row,) = RunRollup.objects.all()
    assert (row.succeeded, row.run_durations[1], row.attempts) == (5, 5, {"succeeded": 5})
    assert row.run_seconds == pytest.approx(1.0)


def test_rows_of_other_apps_pointing_at_a_pruned_run_are_kept_without_it(store, pipeline):
    run = finished(pipeline)
    document = VeryfiDocument.objects.create(veryfi_id=42, run=run)
    store.prune_runs(before(), limit=100)
    document.refresh_from_db()
    assert document.run_id is None  # on_delete=SET_NULL, as Django's delete would do


def test_audit_events_go_oldest_first_in_batches(store, pipeline):
    now = db_now()
    for days in (40, 35, 1):
        event = AuditEvent.objects.create(
            action="run.created", source="cli", actor="a", target_type="runs.run", target_id="x"
        )
        AuditEvent.objects.filter(id=event.id).update(created_at=now - timedelta(days=days))
    cutoff = now - timedelta(days=30)
    assert store.count_audit(cutoff) == 2
    assert store.prune_audit(cutoff, limit=1) == 1
    assert store.prune_audit(cutoff, limit=10) == 1
    assert store.prune_audit(cutoff, limit=10) == 0
    assert [e.created_at.date() for e in AuditEvent.objects.all()] == [
        (now - timedelta(days=1)).date()
    ]


@pytest.mark.postgres
def test_a_run_another_transaction_holds_is_skipped_not_waited_for(store, pipeline):
    held = finished(pipeline, at=HOUR - timedelta(minutes=5))
    other = finished(pipeline)
    with held_elsewhere(("SELECT 1 FROM runs_run WHERE id = %s FOR UPDATE", [held.id])):
        assert dict(store.prune_runs(before(), limit=100).runs) == {"succeeded": 1}
        assert list(Run.objects.values_list("id", flat=True)) == [held.id]
    assert not Run.objects.filter(id=other.id).exists()
