from __future__ import annotations

import pytest
from django.db import connection

from orbit.console.dashboard.paging import COUNT_LIMIT, Cursor, estimated_count, is_capped
from runs.models import Run
from tests.factories import RunFactory

pytestmark = pytest.mark.django_db


def test_small_tables_are_counted_exactly(test_pipelines):
    for _ in range(3):
        RunFactory()
    assert estimated_count(Run.objects.all()) == 3
    assert estimated_count(Run.objects.filter(status="failed")) == 0


def test_counts_stop_at_the_cap(test_pipelines, monkeypatch):
    monkeypatch.setattr("orbit.console.dashboard.paging.COUNT_LIMIT", 2)
    for _ in range(5):
        RunFactory(status="failed")
    assert estimated_count(Run.objects.filter(status="failed")) == 3


@pytest.mark.postgres
def test_postgres_estimates_an_unfiltered_large_table_from_statistics(test_pipelines):
    RunFactory()
    with connection.cursor() as cursor:
        # What ANALYZE would record for a big table; the estimate must not scan it.
        cursor.execute("UPDATE pg_class SET reltuples = 2000000 WHERE oid = 'runs_run'::regclass")
    assert estimated_count(Run.objects.all()) == 2_000_000
    assert estimated_count(Run.objects.filter(status="pending")) == 1


@pytest.mark.parametrize("text", ["", "garbage", "2026-01-01T00:00:00_x"])
def test_malformed_cursors_start_over(text):
    assert Cursor.decode(text) is None


def test_is_capped():
    assert is_capped(COUNT_LIMIT + 1)
    assert not is_capped(COUNT_LIMIT)
