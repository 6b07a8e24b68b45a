"""What an enqueue costs, and the cached pipeline rows that keep it one round trip.

A single `enqueue` on PostgreSQL is one statement (the run, its steps, its audit event
and the NOTIFY, after the check that the cached pipeline row is current); `enqueue_many`
is one statement whatever its size. The counts are pinned on both databases, so a change
that adds a round trip shows. The cache (pipelines/lookup.py) is per process: a pipeline
changed by another process must be seen by the next enqueue here.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orbit.core.exceptions import PipelineDisabled, UnknownPipeline
from orbit.core.models import AuditEvent
from pipelines import lookup
from pipelines.models import Pipeline
from runs import enqueue, enqueue_many
from runs.models import Run, Step
from tests.processes import ROOT, database_env

pytestmark = pytest.mark.django_db(transaction=True)

#: Statements of one enqueue of a known pipeline. PostgreSQL: the insert statement alone.
#: SQLite: BEGIN IMMEDIATE, the pipeline check, one INSERT each for the run, its steps and
#: its audit event, COMMIT (the wake-up is a datagram, not a statement).
SINGLE = {"postgresql": 1, "sqlite": 6}
#: Statements of one `enqueue_many`: the same as one run's, whatever the batch's size on
#: PostgreSQL; SQLite splits an INSERT past its bound-variable limit (about 40 runs).
BATCH = {"postgresql": 1, "sqlite": 6}


def in_another_process(code: str) -> None:
    """Run `code` in a fresh Django process against this test's database."""
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=database_env(),
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_one_enqueue_is_one_statement_on_postgresql_and_six_on_sqlite(test_pipelines):
    enqueue("t-three")  # warm up: the row is read once and cached
    with CaptureQueriesContext(connection) as queries:
        run = enqueue("t-three", metadata={"a": 1}, priority=3)
    assert len(queries) == SINGLE[connection.vendor], [
        q["sql"][:70] for q in queries.captured_queries
    ]
    stored = Run.objects.get(id=run.id)
    assert (stored.status, stored.metadata, stored.priority) == ("pending", {"a": 1}, 3)
    assert (stored.created_at, stored.available_at) == (run.created_at, run.available_at)
    assert list(
        Step.objects.filter(run=run).order_by("position").values_list("name", "position")
    ) == [("one", 0), ("two", 1), ("three", 2)]
    event = AuditEvent.objects.get(target_id=str(run.id))
    assert (event.action, event.changes["priority"]) == ("run.created", 3)
    assert event.target_repr == f"t-three run {run.id}"


def test_enqueue_many_is_as_many_statements_for_a_batch_as_for_one_run(test_pipelines):
    # a first batch reads the sequences its function numbers steps and events from, once
    # a process (a run alone takes its ids from the columns' defaults)
    enqueue_many("t-three", [{}, {}])
    with CaptureQueriesContext(connection) as queries:
        runs = enqueue_many("t-three", [{"n": i} for i in range(20)], delay=30)
    assert len(queries) == BATCH[connection.vendor], [
        q["sql"][:70] for q in queries.captured_queries
    ]
    assert Run.objects.filter(id__in=[r.id for r in runs]).count() == 20
    assert Step.objects.filter(run__in=[r.id for r in runs]).count() == 60
    assert AuditEvent.objects.filter(target_id__in=[str(r.id) for r in runs]).count() == 20
    assert all(r.created_at is not None and r.available_at > r.created_at for r in runs)


@pytest.mark.postgres
def test_ten_thousand_runs_are_one_statement_on_postgresql(test_pipelines):
    enqueue("t-three")
    with CaptureQueriesContext(connection) as queries:
        runs = enqueue_many("t-three", [{"n": i} for i in range(10_000)])
    assert len(queries) == 1
    assert Step.objects.filter(run__in=[r.id for r in runs]).count() == 30_000
    assert [r.metadata["n"] for r in runs] == list(range(10_000))


def test_a_pipeline_disabled_by_another_process_refuses_the_next_enqueue_here(test_pipelines):
    enqueue("t-single")  # cached here as enabled
    in_another_process(
        "from pipelines.models import Pipeline; "
        "Pipeline.objects.filter(name='t-single').update(enabled=False)"
    )
    with pytest.raises(PipelineDisabled, match="'t-single' is disabled"):
        enqueue("t-single")
    with pytest.raises(PipelineDisabled):
        enqueue_many("t-single", [{}, {}])
    assert Run.objects.count() == 1
    Pipeline.objects.filter(name="t-single").update(enabled=True)
    assert enqueue("t-single").pipeline.name == "t-single"  # enabled again: queued


def test_default_metadata_changed_elsewhere_is_merged_into_the_next_run(test_pipelines):
    enqueue("t-single")
    Pipeline.objects.filter(name="t-single").update(default_metadata={"region": "eu"})
    assert lookup.cached("t-single") is not None  # the copy here is stale
    run = enqueue("t-single", {"n": 1})
    assert Run.objects.get(id=run.id).metadata == {"region": "eu", "n": 1} == run.metadata


def test_a_renamed_pipeline_is_not_found_by_its_old_name(test_pipelines):
    enqueue("t-three")
    row = Pipeline.objects.get(name="t-three")
    Pipeline.objects.filter(pk=row.pk).update(name="t-three-renamed")
    with pytest.raises(UnknownPipeline, match="'t-three'"):
        enqueue("t-three")
    assert enqueue("t-three-renamed").pipeline.pk == row.pk
    assert Run.objects.filter(pipeline=row).count() == 2


def test_a_pipeline_synced_anew_by_another_process_takes_the_next_enqueue_here(test_pipelines):
    old = enqueue("t-single").pipeline.pk  # cached here with its id
    in_another_process(
        "from pipelines.models import Pipeline; from runs.models import Run; "
        "from pipelines.sync import sync_pipelines; "
        "Run.objects.filter(pipeline__name='t-single').delete(); "
        "Pipeline.objects.filter(name='t-single').delete(); sync_pipelines()"
    )
    new = Pipeline.objects.get(name="t-single").pk
    assert new != old
    run = enqueue("t-single")
    assert Run.objects.get(id=run.id).pipeline_id == new == run.pipeline.pk


def test_a_row_given_by_the_caller_is_checked_too(test_pipelines):
    """The API passes the row it read: disabled since, it queues nothing."""
    from runs.enqueueing import enqueue as enqueue_row

    row = Pipeline.objects.get(name="t-single")
    Pipeline.objects.filter(pk=row.pk).update(enabled=False)
    with pytest.raises(PipelineDisabled):
        enqueue_row(row)
    assert Run.objects.count() == 0


@pytest.mark.postgres
def test_an_enqueue_waits_for_a_disable_in_progress_and_then_refuses(test_pipelines):
    """The insert locks the pipeline row FOR SHARE: an UPDATE that disables it and has not
    committed yet makes the enqueue wait; once it commits, the enqueue sees it and queues
    nothing (no run is created after a disable has committed)."""
    import threading

    import psycopg

    from tests.processes import database_env, wait_until

    enqueue("t-single")  # cached here as enabled
    url = database_env()["DATABASE_URL"]
    outcome: list[BaseException | str] = []
    with psycopg.connect(url) as disabling, psycopg.connect(url, autocommit=True) as watcher:
        disabling.execute("UPDATE pipelines_pipeline SET enabled = false WHERE name = 't-single'")

        def queue_one() -> None:
            from django.db import connections

            try:
                outcome.append(str(enqueue("t-single").id))
            except BaseException as exc:  # handed to the test, which asserts on it
                outcome.append(exc)
            finally:
                connections.close_all()

        thread = threading.Thread(target=queue_one)
        thread.start()
        wait_until(
            lambda: (
                watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query LIKE '%%orbit: insert_run%%'"
                ).fetchone()[0]  # type: ignore[index]
                == 1
            ),
            timeout=20,
            message="the enqueue never waited for the disabling transaction",
        )
        assert not outcome  # still waiting
        disabling.commit()
        thread.join(timeout=20)
    assert len(outcome) == 1 and isinstance(outcome[0], PipelineDisabled), outcome
    assert Run.objects.count() == 1
