"""The worker's two statements on PostgreSQL read the runs they touch through indexes,
whatever the size of the tables: a scan of the whole run table in every claim or commit
costs each batch a read of every run ever kept (2 ms a commit at 12,000 runs), which the
benchmarks showed as a slower drain and no test of behaviour could see."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection, transaction

from runs.store import transitions as t
from runs.store.records import AttemptRecord, Outcome
from tests.runs.store.conftest import claim, new_run

pytestmark = pytest.mark.django_db(transaction=True)

#: Enough runs that a scan of the table costs the planner more than the lookups, and
#: few enough (under ~25,000) that it chose the scan when it misjudged the batch's size.
KEPT = 3_000


@pytest.fixture
def pg_store():
    if connection.vendor != "postgresql":
        pytest.skip("the plans are PostgreSQL's; the portable store's queries are the ORM's")
    from runs.store.postgres import PostgresStore

    return PostgresStore()


@contextmanager
def whole_table_scans(*tables: str) -> Iterator[dict[str, int]]:
    """How many sequential scans of `tables` the block made (this transaction's counts,
    pg_stat_xact_user_tables: exact, and seen before the statistics are flushed)."""
    found: dict[str, int] = {}

    def counts() -> dict[str, int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT relname, seq_scan FROM pg_stat_xact_user_tables WHERE relname = ANY(%s)",
                [list(tables)],
            )
            return dict(cursor.fetchall())

    with transaction.atomic():
        before = counts()
        yield found
        after = counts()
    found.update({table: after.get(table, 0) - before.get(table, 0) for table in tables})


def test_a_claim_and_a_commit_read_runs_and_steps_by_index_beside_thousands_kept(
    pg_store, pipeline
):
    pg_store.insert_runs([new_run(pipeline, steps=("one",)) for _ in range(KEPT)])
    with connection.cursor() as cursor:  # statistics, as autovacuum soon gives them
        cursor.execute("ANALYZE runs_run; ANALYZE runs_step")

    with whole_table_scans("runs_run", "runs_step") as claiming:
        claims = claim(pg_store, limit=20)
    assert len(claims) == 20
    assert claiming == {"runs_run": 0, "runs_step": 0}

    outcomes = [
        Outcome(
            held=c.held,
            run=t.SUCCEED,
            step_id=c.steps[0].id,
            step=t.STEP_SUCCEED,
            step_values={"result": None, "result_json": "null", "duration": 0.1},
            attempt=AttemptRecord(
                step_id=c.steps[0].id, number=1, outcome="succeeded", duration=0.1
            ),
        )
        for c in claims
    ]
    with whole_table_scans("runs_run", "runs_step") as committing:
        committed = pg_store.commit(outcomes)
    assert committed == {c.run_id for c in claims}
    assert committing == {"runs_run": 0, "runs_step": 0}


def test_renewing_sweeping_and_recovering_read_runs_by_index_beside_thousands_kept(
    pg_store, pipeline
):
    """The worker's timed statements (lease renewal with its heartbeat, the sweep for
    expired leases) run every few seconds on every worker, so they too must not read
    every run kept."""
    from runs.models import Run, Worker

    pg_store.insert_runs([new_run(pipeline, steps=("one",)) for _ in range(KEPT)])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE runs_run; ANALYZE runs_step")
    worker = Worker.objects.create(name="w", hostname="h", pid=1, state="running")
    held = [c.held for c in claim(pg_store, limit=20, worker_id=worker.id)]

    with whole_table_scans("runs_run", "runs_step") as renewing:
        pg_store.heartbeat(worker.id, state="running", held=held, lease_seconds=30)
    with whole_table_scans("runs_run", "runs_step") as sweeping:
        assert pg_store.take_interrupted(max_interruptions=5) == []
    Run.objects.filter(id__in=[h.run_id for h in held[:5]]).update(
        lease_expires_at="2000-01-01T00:00:00Z"
    )
    with whole_table_scans("runs_run", "runs_step") as recovering:
        assert len(pg_store.take_interrupted(max_interruptions=5)) == 5
    assert renewing == sweeping == recovering == {"runs_run": 0, "runs_step": 0}
