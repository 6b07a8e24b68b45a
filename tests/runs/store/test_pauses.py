"""Pauses in the claim, against every store (conftest.py): a paused queue or pipeline keeps
its pending runs out of every claim, in the claim statement itself (runs/pausing.py)."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections
from django.db.models.functions import Now

from pipelines.models import Pipeline
from runs.models import QueuePause, Run
from tests.runs.store.conftest import claim, insert

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_claim_leaves_the_runs_of_a_paused_queue(store, pipeline):
    held = insert(store, pipeline, queue="held")
    free = insert(store, pipeline)
    QueuePause.objects.create(queue="held", paused_by="alice")
    assert claim(store, queues=("held",)) == []  # one queue: the claim statement
    assert [c.run_id for c in claim(store, queues=("held", "default"))] == [free]
    QueuePause.objects.filter(queue="held").delete()
    assert [c.run_id for c in claim(store, queues=("held",))] == [held]


def test_a_claim_leaves_the_runs_of_a_paused_pipeline_on_every_queue(store, pipeline):
    other = Pipeline.objects.create(name="other", definition="t-three")
    held = [insert(store, pipeline), insert(store, pipeline, queue="q2")]
    free = insert(store, other, priority=-5)  # lower priority: it comes after the held ones
    Pipeline.objects.filter(id=pipeline.id).update(paused_at=Now(), paused_by="alice")
    assert [c.run_id for c in claim(store, queues=("default", "q2"))] == [free]
    assert claim(store, queues=("q2",)) == []
    Pipeline.objects.filter(id=pipeline.id).update(paused_at=None)
    assert sorted(c.run_id for c in claim(store, queues=("default", "q2"))) == sorted(held)


def test_seconds_until_due_leaves_paused_runs_out(store, pipeline):
    """An idle worker sleeps until the next run it could claim, not a paused one."""
    insert(store, pipeline, queue="held")
    QueuePause.objects.create(queue="held", paused_by="alice")
    assert store.seconds_until_due(["held"]) is None
    insert(store, pipeline, queue="held", delay=30.0)
    other = Pipeline.objects.create(name="other", definition="t-three")
    insert(store, other, delay=20.0)
    Pipeline.objects.filter(id=other.id).update(paused_at=Now())
    assert store.seconds_until_due(["held", "default"]) is None
    QueuePause.objects.all().delete()
    assert store.seconds_until_due(["held", "default"]) == 0.0  # the first one, due now


def test_no_claim_that_starts_after_a_pause_commits_takes_a_paused_run(store, pipeline):
    """Six connections claim one run at a time while the queue is paused: once the pause
    has committed, at most the claims already under way (one per connection) finish with
    a run; every later claim takes none."""
    for _ in range(300):
        insert(store, pipeline)
    stop = threading.Event()
    started = threading.Barrier(7)

    def claimant() -> None:
        try:
            started.wait()
            while not stop.is_set():
                claim(store, limit=1)
                time.sleep(0.01)  # leave the pause a way in (SQLite's one writer)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claimant) for _ in range(6)]
    for thread in threads:
        thread.start()
    started.wait()
    QueuePause.objects.create(queue="default", paused_by="alice")  # committed on return
    at_pause = Run.objects.filter(status="running").count()
    # Each connection finishes at most the one claim it may have begun before the pause.
    for _ in range(50):
        claim(store, limit=1)  # this connection's claims start after the pause: none
    stop.set()
    for thread in threads:
        thread.join(30)
    after = Run.objects.filter(status="running").count()
    assert at_pause < 300  # the pause came while runs were left to claim
    assert after - at_pause <= 6, (at_pause, after)
    assert Run.objects.filter(status="pending").count() == 300 - after
