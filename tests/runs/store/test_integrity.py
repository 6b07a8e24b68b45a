"""A run's tree stays whole: no run without its pipeline, no step without its run, no
attempt without its run and step.

The foreign-key constraints from a run to its pipeline and from a step to its run are
gone (migration 0026), and those from an attempt to its run and step (migration 0028):
their checks ran once per row inserted. What they did for a DELETE is done by Django
(PROTECT, CASCADE) on both databases, and on PostgreSQL by triggers that refuse whoever
deletes (runs/store/sql/functions.sql)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from django.db import IntegrityError, connection, connections, transaction

from orbit.core.models import AuditEvent
from pipelines.lifecycle import PipelineConflict, pipeline_delete
from pipelines.models import Pipeline
from runs.models import Run, Step, StepAttempt
from runs.store import transitions as t
from tests.runs.store.conftest import check_of, claim, insert, new_run, succeeded

pytestmark = pytest.mark.django_db(transaction=True)


def needs_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the database's own refusal is PostgreSQL's (SQLite has no trigger functions)")


def test_a_run_deleted_through_django_takes_its_steps_with_it(store, pipeline):
    kept = insert(store, pipeline)
    gone = insert(store, pipeline)
    Run.objects.filter(id=gone).delete()
    assert not Step.objects.filter(run_id=gone).exists()
    assert Step.objects.filter(run_id=kept).count() == 3


@pytest.mark.parametrize("checked", [False, True], ids=["unchecked", "checked"])
def test_runs_of_a_pipeline_that_does_not_exist_are_refused_whole(store, pipeline, checked):
    gone = Pipeline.objects.create(name="gone", definition="t-single")
    gone_id = gone.pk
    gone.delete()
    batch = [new_run(pipeline), new_run(pipeline, pipeline_id=gone_id), new_run(pipeline)]
    with pytest.raises(IntegrityError, match=f"pipeline {gone_id} does not exist"):
        store.insert_runs(batch, pipeline=check_of(pipeline) if checked else None)
    assert not Run.objects.exists()
    assert not Step.objects.exists() and not AuditEvent.objects.exists()
    (alone,) = store.insert_runs([new_run(pipeline)], pipeline=check_of(pipeline))
    assert alone.created


def test_a_pipeline_with_runs_is_not_deleted_through_django(store, pipeline):
    insert(store, pipeline)
    with pytest.raises(PipelineConflict, match="has 1 run; disable it instead"):
        pipeline_delete(pipeline)
    assert Pipeline.objects.filter(id=pipeline.id).exists()


def test_the_database_refuses_to_delete_a_pipeline_that_has_runs(store, pipeline):
    needs_postgresql()
    run_id = insert(store, pipeline)
    spare = Pipeline.objects.create(name="spare", definition="t-single")
    with (
        pytest.raises(IntegrityError, match="pipeline t-three has runs"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "DELETE FROM pipelines_pipeline WHERE id = ANY(%s)", [[pipeline.id, spare.id]]
        )
    assert Run.objects.get(id=run_id).pipeline == pipeline
    with connection.cursor() as cursor:  # a pipeline no run points to goes
        cursor.execute("DELETE FROM pipelines_pipeline WHERE id = %s", [spare.id])
    assert not Pipeline.objects.filter(id=spare.id).exists()


def test_the_database_refuses_to_delete_a_run_that_still_has_steps(store, pipeline):
    needs_postgresql()
    run_id = insert(store, pipeline)
    with (
        pytest.raises(IntegrityError, match=f"run {run_id} still has steps"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM runs_run WHERE id = %s", [run_id])
    assert Step.objects.filter(run_id=run_id).count() == 3
    with connection.cursor() as cursor:  # with its steps, in one statement, it goes
        cursor.execute(
            "WITH steps AS (DELETE FROM runs_step WHERE run_id = %(id)s) "
            "DELETE FROM runs_run WHERE id = %(id)s",
            {"id": run_id},
        )
    assert not Run.objects.filter(id=run_id).exists()
    assert not Step.objects.filter(run_id=run_id).exists()


def first_step_succeeded(held):
    """The outcome of a claimed run's first step succeeding, the run going on to its second."""
    continuing = {"current_step": held.steps[1].name, "lease_expires_at": 60.0}
    return succeeded(held.held, held.steps[0].id, run=t.CONTINUE, run_values=continuing)


def attempted(store, pipeline) -> tuple[object, int]:
    """A run whose first step has one attempt committed (the run goes on to its second):
    its id and that step's."""
    run_id = insert(store, pipeline)
    (held,) = claim(store)
    assert store.commit([first_step_succeeded(held)])
    first = held.steps[0].id
    assert StepAttempt.objects.filter(run_id=run_id, step_id=first).count() == 1
    return run_id, first


def test_a_run_deleted_through_django_takes_its_attempts_with_it(store, pipeline):
    run_id, _ = attempted(store, pipeline)
    Run.objects.filter(id=run_id).delete()
    assert not StepAttempt.objects.exists()
    assert not Step.objects.filter(run_id=run_id).exists()


def test_the_database_refuses_to_delete_a_run_that_still_has_attempts(store, pipeline):
    needs_postgresql()
    run_id, _ = attempted(store, pipeline)
    with (
        pytest.raises(IntegrityError, match=f"run {run_id} still has attempts"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "WITH steps AS (DELETE FROM runs_step WHERE run_id = %(id)s) "
            "DELETE FROM runs_run WHERE id = %(id)s",
            {"id": run_id},
        )
    assert Run.objects.filter(id=run_id).exists()
    assert StepAttempt.objects.filter(run_id=run_id).count() == 1
    with connection.cursor() as cursor:  # with its attempts and steps, in one statement, it goes
        cursor.execute(
            "WITH attempts AS (DELETE FROM runs_stepattempt WHERE run_id = %(id)s), "
            "steps AS (DELETE FROM runs_step WHERE run_id = %(id)s) "
            "DELETE FROM runs_run WHERE id = %(id)s",
            {"id": run_id},
        )
    assert not Run.objects.filter(id=run_id).exists()
    assert not StepAttempt.objects.exists()


def test_the_database_refuses_to_delete_a_step_that_still_has_attempts(store, pipeline):
    needs_postgresql()
    run_id, step_id = attempted(store, pipeline)
    with (
        pytest.raises(IntegrityError, match=f"step {step_id} still has attempts"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM runs_step WHERE run_id = %s", [run_id])
    assert Step.objects.filter(run_id=run_id).count() == 3
    assert StepAttempt.objects.get().step_id == step_id


@pytest.mark.parametrize("checked", [False, True], ids=["unchecked", "checked"])
def test_a_pipeline_deleted_while_a_batch_holds_it_is_refused_once_the_runs_commit(
    store, pipeline, checked
):
    """The race the foreign key closed: the delete finds no runs (the batch has not
    committed), then waits for the batch's lock on the pipeline row (the caller's check
    takes it, or the insert holds it without one); once the batch commits, the database
    refuses, and the caller hears it as a conflict."""
    needs_postgresql()
    error = _race(
        lambda: store.insert_runs(
            [new_run(pipeline), new_run(pipeline)],
            pipeline=check_of(pipeline) if checked else None,
        ),
        lambda: pipeline_delete(Pipeline.objects.get(id=pipeline.id)),
        waits_on="pipelines_pipeline",
    )
    assert isinstance(error, PipelineConflict), error
    assert "has 2 runs" in str(error)
    assert Run.objects.filter(pipeline_id=pipeline.id).count() == 2
    assert Pipeline.objects.filter(id=pipeline.id).exists()


def test_a_run_deleted_while_its_worker_commits_an_attempt_is_refused_once_the_commit_ends(
    store, pipeline
):
    """The race the attempt's foreign keys closed: Django's delete reads the run's
    attempts before the worker's commit is in (none), then waits for the commit's lock on
    the step it finishes; once the commit ends, the database refuses the delete, and the
    run keeps its steps and its new attempt."""
    needs_postgresql()
    run_id = insert(store, pipeline)
    (held,) = claim(store)
    error = _race(
        lambda: store.commit([first_step_succeeded(held)]),
        lambda: Run.objects.filter(id=run_id).delete(),
        waits_on="runs_step",
    )
    assert isinstance(error, IntegrityError), error
    assert "still has attempts" in str(error)
    assert Run.objects.filter(id=run_id).exists()
    assert Step.objects.filter(run_id=run_id).count() == 3
    assert StepAttempt.objects.get().step_id == held.steps[0].id


def _race(
    hold: Callable[[], object], act: Callable[[], object], *, waits_on: str
) -> BaseException | None:
    """`hold` in a transaction of its own, kept open while `act` runs in another thread
    until some session waits for a lock of `waits_on`; then the holder commits. What `act`
    raised (None: nothing), once both threads are done."""
    held = threading.Event()
    release = threading.Event()
    outcome: dict[str, BaseException | None] = {}

    def holder() -> None:
        try:
            with transaction.atomic():
                hold()
                held.set()
                assert release.wait(30)
        finally:
            connections.close_all()

    def actor() -> None:
        try:
            act()
            outcome["error"] = None
        except BaseException as error:
            outcome["error"] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=holder)]
    threads[0].start()
    assert held.wait(30)
    threads.append(threading.Thread(target=actor))
    threads[1].start()
    try:
        _wait_for_a_lock_wait_on(waits_on)
    finally:
        release.set()
        for thread in threads:
            thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    return outcome["error"]


def _wait_for_a_lock_wait_on(table: str, timeout: float = 30) -> None:
    """Until some session waits for a row lock of `table` (pg_locks), or fail."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND "
                "(relation = %s::regclass OR locktype = 'transactionid')",
                [table],
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.01)
    raise AssertionError(f"no session waited for a lock on {table} within {timeout} s")
