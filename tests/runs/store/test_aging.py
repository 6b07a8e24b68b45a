"""The aging probe's claim (`ClaimRequest.older_than`), against every store (conftest.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orbit.core.clock import db_now
from runs.models import QueuePause
from tests.runs.store.conftest import claim, insert

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_probe_takes_the_longest_waiting_run_whatever_its_priority(store, pipeline):
    now = db_now()
    old_low = insert(store, pipeline, priority=-5, run_after=now - timedelta(seconds=60))
    older_low = insert(store, pipeline, priority=-9, run_after=now - timedelta(seconds=90))
    insert(store, pipeline, priority=10, run_after=now - timedelta(seconds=1))  # not aged
    assert [c.run_id for c in claim(store, limit=5, older_than=30.0)] == [older_low, old_low]
    assert claim(store, limit=5, older_than=30.0) == []  # the high-priority one is too young
    assert len(claim(store, limit=5)) == 1


def test_the_probe_leaves_paused_runs(store, pipeline):
    insert(store, pipeline, run_after=db_now() - timedelta(seconds=60))
    QueuePause.objects.create(queue="default", paused_by="alice")
    assert claim(store, older_than=30.0) == []
