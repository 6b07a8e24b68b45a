"""On PostgreSQL a step's two updates as its run runs, started by the claim and finished by
the commit, rewrite the row in place (HOT): no index of the step table covers a column
they change, and its pages keep room for the new version (migration 0027). Each such
update that is not HOT adds an entry to every index of the table for every step, which
the drain pays for in PostgreSQL's CPU (docs/PERFORMANCE.md, "Steps updated in place")."""

from __future__ import annotations

import pytest
from django.db import connection

from runs.store.protocol import RunStore
from tests.runs.store.conftest import claim, new_run, succeeded

pytestmark = [
    # Each claim and commit its own transaction, as a worker's are, and the statistics
    # read after each has ended (the counts of a transaction still open are its own).
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="HOT updates and fill factors are PostgreSQL's"
    ),
]

#: What the step table's indexes may cover: a step's id, run, name and position never change.
UNCHANGING = {"id", "run_id", "name", "position"}


def _step_updates() -> tuple[int, int]:
    """The step table's updates so far: all of them, and the HOT ones. This session's
    counts reach the statistics when it next goes idle (forced: not a second later)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'runs_step'"
        )
        row = cursor.fetchone()
    return (row[0], row[1]) if row else (0, 0)


def test_the_claim_and_the_commit_update_steps_in_place(store: RunStore, pipeline):
    if connection.pg_version < 150000:
        pytest.skip("reading this session's counts at once takes pg_stat_force_next_flush (15)")
    # Few enough steps that their pages hold every version without pruning, so the count
    # depends on the indexes alone, not on when PostgreSQL may prune.
    store.insert_runs([new_run(pipeline, steps=("one", "two")) for _ in range(10)])
    before = _step_updates()
    claims = claim(store, limit=10)
    assert len(claims) == 10
    store.commit([succeeded(c.held, c.steps[0].id) for c in claims])
    updated, hot = (now - then for now, then in zip(_step_updates(), before, strict=True))
    assert updated == 20  # each run's first step: started, then finished
    assert hot == updated


def test_the_step_tables_indexes_cover_only_what_never_changes():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.attname, i.indexprs IS NOT NULL OR i.indpred IS NOT NULL "
            "FROM pg_index AS i "
            "JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = 'runs_step'::regclass"
        )
        rows = cursor.fetchall()
        cursor.execute("SELECT reloptions FROM pg_class WHERE oid = 'runs_step'::regclass")
        (options,) = cursor.fetchone()
    assert {column for column, _ in rows} == UNCHANGING
    assert not any(expression_or_predicate for _, expression_or_predicate in rows)
    assert "fillfactor=50" in (options or [])
