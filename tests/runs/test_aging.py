"""Priority aging (runs/worker/aging.py): when a worker probes, and the bound it keeps with
a real worker under a stream of higher-priority runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.db.models import Max

from runs import enqueue, enqueue_many
from runs.models import Run
from runs.models import Worker as WorkerRow
from runs.worker.aging import probe_due, probe_interval
from tests.processes import wait_until


@pytest.mark.parametrize(
    ("aging", "interval"),
    [
        (300.0, 30.0),  # a tenth of the threshold
        (1.0, 0.1),
        (0.1, 0.05),  # never more often than MIN_PROBE_INTERVAL
        (0.0, None),  # aging off: no probe at all
        (-5.0, None),  # nonsense reads as off
    ],
)
def test_probe_interval(aging, interval):
    assert probe_interval(aging) == interval


def test_probe_due_once_an_interval_has_passed_since_the_last():
    assert not probe_due(100.0, 129.9, 300.0)
    assert probe_due(100.0, 130.0, 300.0)
    assert not probe_due(0.0, 1e9, 0.0)  # off


AGING = 1.0


@pytest.mark.django_db(transaction=True)
def test_an_old_low_priority_run_is_not_starved_by_a_stream_of_higher_ones(test_pipelines, workers):
    """One worker, one slot, 400 higher-priority runs queued with a low-priority one: by
    priority alone it would run last, after their 400 sleeps of 10 ms, some seconds later
    however fast the machine (400 no-ops take one slot about a second). With
    ORBIT_PRIORITY_AGING_SECONDS=1 it starts within the bound (aging + a tenth of it, plus
    a slot's turn) while higher ones still wait."""
    workers(
        "--concurrency",
        "1",
        "--no-schedules",
        env={"ORBIT_PRIORITY_AGING_SECONDS": str(AGING), "ORBIT_POLL_INTERVAL": "0.2"},
    )
    wait_until(lambda: WorkerRow.objects.filter(state="running").exists(), message="the worker")
    with transaction.atomic():  # committed together: no claim sees the low one alone
        low = enqueue("t-single", priority=-10)
        enqueue_many("t-slow", [{"seconds": 0.01} for _ in range(400)], priority=10)
    wait_until(lambda: Run.objects.filter(id=low.id, status="succeeded").exists(), timeout=60)
    run = Run.objects.get(id=low.id)
    assert (run.started_at - run.available_at).total_seconds() >= AGING  # held by priority
    # Claimable by a probe from the later of: aged, and committed (the last insert).
    committed = Run.objects.aggregate(last=Max("created_at"))["last"]
    claimable = max(committed, run.available_at + timedelta(seconds=AGING))
    late = (run.started_at - claimable).total_seconds()
    assert late <= AGING * 0.1 + 0.5, late  # the next probe, plus one slot's turn
    behind = Run.objects.filter(priority=10).exclude(started_at__lt=run.started_at).count()
    assert behind > 0, "the higher-priority runs had all started: nothing was proven"
