"""The worker's statements on PostgreSQL read the runs they touch through indexes,
whatever the size of the tables: a scan of the whole run table in every claim or commit
costs each batch a read of every run ever kept (2 ms a commit at 12,000 runs), which the
benchmarks showed as a slower drain and no test of behaviour could see."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection, transaction

from pipelines.models import Pipeline
from runs.store.protocol import RunStore
from tests.factories import WorkerFactory
from tests.runs.store.conftest import claim, expire, new_run, succeeded

# The plans are PostgreSQL's; the portable store's queries are the ORM's.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.parametrize("store", ["postgresql"], indirect=True),
]

#: Enough runs that a scan of the table costs the planner more than the lookups, and
#: few enough (under ~25,000) that it chose the scan when it misjudged the batch's size.
KEPT = 3_000


@pytest.fixture
def kept(store: RunStore, pipeline: Pipeline) -> None:
    """KEPT pending runs of one step each, the tables analysed as autovacuum soon would."""
    store.insert_runs([new_run(pipeline, steps=("one",)) for _ in range(KEPT)])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE runs_run; ANALYZE runs_step")


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


#: A batch as a busy worker claims it (its concurrency).
BATCH = 32


@pytest.fixture
def young(store: RunStore, pipeline: Pipeline) -> None:
    """A new deployment's first minute: the tables last analysed when they held a few
    runs, and 2,000 queued since (autovacuum analyses them within a minute or so). The
    planner reads such a table as small, where a scan looks cheap."""
    store.insert_runs([new_run(pipeline, steps=("one",)) for _ in range(10)])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE runs_run; ANALYZE runs_step")
    store.insert_runs([new_run(pipeline, steps=("one",)) for _ in range(2_000)])


def test_a_claim_and_a_commit_read_by_index_while_the_tables_look_small(store, young):
    """Planned on those statistics, a claim of 32 updated its runs and started their
    steps through a nested loop with a scan inside: 32 scans of the run table and 32 of
    the step table in one claim, a commit one more of the run table."""
    with whole_table_scans("runs_run", "runs_step") as claiming:
        claims = claim(store, limit=BATCH)
    assert len(claims) == BATCH
    assert claiming == {"runs_run": 0, "runs_step": 0}

    with whole_table_scans("runs_run", "runs_step") as committing:
        committed = store.commit([succeeded(c.held, c.steps[0].id) for c in claims])
    assert committed == {c.run_id for c in claims}
    assert committing == {"runs_run": 0, "runs_step": 0}


def test_a_claim_and_a_commit_read_runs_and_steps_by_index_beside_thousands_kept(store, kept):
    with whole_table_scans("runs_run", "runs_step") as claiming:
        claims = claim(store, limit=20)
    assert len(claims) == 20
    assert claiming == {"runs_run": 0, "runs_step": 0}

    with whole_table_scans("runs_run", "runs_step") as committing:
        committed = store.commit([succeeded(c.held, c.steps[0].id) for c in claims])
    assert committed == {c.run_id for c in claims}
    assert committing == {"runs_run": 0, "runs_step": 0}


def test_renewing_sweeping_and_recovering_read_runs_by_index_beside_thousands_kept(store, kept):
    """The worker's timed statements (lease renewal with its heartbeat, the sweep for
    expired leases) run every few seconds on every worker, so they too must not read
    every run kept."""
    worker = WorkerFactory()
    held = [c.held for c in claim(store, limit=20, worker_id=worker.id)]

    with whole_table_scans("runs_run", "runs_step") as renewing:
        store.heartbeat(worker.id, state="running", held=held, lease_seconds=30)
    with whole_table_scans("runs_run", "runs_step") as sweeping:
        assert store.take_interrupted(max_interruptions=5) == []
    for fence in held[:5]:
        expire(fence.run_id)
    with whole_table_scans("runs_run", "runs_step") as recovering:
        assert len(store.take_interrupted(max_interruptions=5)) == 5
    assert renewing == sweeping == recovering == {"runs_run": 0, "runs_step": 0}
