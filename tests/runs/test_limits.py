"""Flow limits with real worker processes (docs/FLOW-CONTROL.md, "Limits"): what overlapped
is measured by the steps themselves (orbit_test_spans, the host's clock), outside Orbit.
Every wait is bounded (wait_until); nothing sleeps hoping for luck."""

from __future__ import annotations

import importlib
import itertools
import signal
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from pipelines.definition import registry
from pipelines.sync import sync_pipelines
from runs import enqueue_many
from runs.models import Run
from tests.processes import stays_true, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

#: The workers load the limited pipelines too (tests/pipelines_limited.py).
MODULES = {
    "ORBIT_PIPELINE_MODULES": "tests.pipelines_for_tests,tests.pipelines_limited",
    "ORBIT_POLL_INTERVAL": "0.2",
}


@pytest.fixture
def limited_pipelines(test_pipelines: Any) -> Iterator[Any]:
    """tests/pipelines_limited.py registered (and its rows synced) for this test only."""
    module = importlib.import_module("tests.pipelines_limited")
    for definition in module.ALL:
        registry.register(definition)
    sync_pipelines()
    yield module
    for definition in module.ALL:
        registry.unregister(definition.name)


@pytest.fixture
def spans(db: Any) -> Iterator[Any]:
    """The table tests.steps.span writes each execution's start and end to."""
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS orbit_test_spans")
        cursor.execute(
            "CREATE TABLE orbit_test_spans (run_id varchar(64), pipeline varchar(100), "
            "started double precision, ended double precision, pid integer)"
        )

    def read(pipeline: str) -> list[tuple[float, float]]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT started, ended FROM orbit_test_spans WHERE pipeline = %s", [pipeline]
            )
            return [(float(s), float(e)) for s, e in cursor.fetchall()]

    yield read
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS orbit_test_spans")


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one instant (an end before a start at the same instant)."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    open_now = most = 0
    for _, change in events:
        open_now += change
        most = max(most, open_now)
    return most


def most_in_window(moments: list[float], seconds: float) -> int:
    moments = sorted(moments)
    return max(sum(1 for m in moments if t <= m < t + seconds) for t in moments)


def succeeded(pipeline: str) -> int:
    return Run.objects.filter(pipeline__name=pipeline, status="succeeded").count()


@pytest.mark.postgres
def test_four_workers_run_at_most_three_of_a_limited_pipeline_while_others_drain(
    limited_pipelines, workers, spans
):
    enqueue_many("t-limited", [{"seconds": 0.3}] * 18)
    enqueue_many("t-free", [{"seconds": 0.05}] * 160)
    for _ in range(4):
        workers("--no-schedules", "--concurrency", "8", env=MODULES)
    wait_until(
        lambda: succeeded("t-limited") == 18 and succeeded("t-free") == 160,
        timeout=120,
        message="every run to succeed",
    )
    limited, free = spans("t-limited"), spans("t-free")
    assert most_at_once(limited) == 3  # never more, and the limit is used
    assert most_at_once(free) > 3  # the unlimited pipeline was not held to it
    assert min(s for s, _ in free) < max(e for _, e in limited)  # alongside, not after


@pytest.mark.postgres
def test_a_slot_held_by_a_killed_worker_comes_back_within_the_lease_and_two_seconds(
    limited_pipelines, workers
):
    env = {**MODULES, "ORBIT_LEASE_SECONDS": "2"}
    enqueue_many("t-limited", [{"seconds": 120}] * 3, priority=1)
    doomed = workers("--no-schedules", "--concurrency", "3", env=env)
    wait_until(
        lambda: Run.objects.filter(pipeline__name="t-limited", status="running").count() == 3,
        message="the doomed worker to hold all three slots",
    )
    doomed_row = Run.objects.filter(status="running").values_list("worker_id", flat=True)[0]
    enqueue_many("t-limited", [{"seconds": 0.1}])
    workers("--no-schedules", "--concurrency", "2", env=env)

    def rescued() -> bool:
        return (
            Run.objects.filter(pipeline__name="t-limited", status="running")
            .exclude(worker_id=doomed_row)
            .exists()
        )

    # While the doomed worker lives, its three slots are the limit: nothing else starts.
    stays_true(lambda: not rescued(), 1.5, "no fourth run while three hold the slots")
    doomed.send(signal.SIGKILL)
    killed = time.monotonic()
    wait_until(rescued, timeout=10, interval=0.02, message="a slot to come back")
    assert time.monotonic() - killed <= 2 + 2


def test_a_rate_limit_holds_across_workers(limited_pipelines, workers, spans):
    """5 starts per 2 s (tests/pipelines_limited.py): claims spaced 0.4 s apart, so 15
    runs take 14 gaps, 5.6 s."""
    workers_count = 3
    for _ in range(workers_count):
        workers("--no-schedules", "--concurrency", "4", env=MODULES)
    # Queued once every worker is up and each slot has its child process, so the steps
    # start as soon as they are claimed (a first child's fork would stretch the window).
    enqueue_many("t-free", [{"seconds": 0.5}] * (4 * workers_count))
    wait_until(lambda: succeeded("t-free") == 4 * workers_count, message="the warm-up")
    enqueue_many("t-rated", [{"seconds": 0}] * 15)
    wait_until(lambda: succeeded("t-rated") == 15, timeout=60, message="every rated run")
    claimed = [
        t.timestamp()
        for t in Run.objects.filter(pipeline__name="t-rated").values_list("started_at", flat=True)
    ]
    starts = [s for s, _ in spans("t-rated")]
    assert most_in_window(starts, 2.0) <= 5 + 1  # within one start, by the steps' clock
    assert most_in_window(claimed, 2.0) <= 5  # by the database clock: exact
    # Fourteen gaps of 0.4 s: each claim waits out its gap, woken when the window admits.
    # Each start is recorded a moment after its claim and the next gap counts from
    # there, and three workers wake for it at once, so a loaded machine stretches every
    # gap: 6.4-7.0 s in all on a quiet machine, up to 9.7 s (gaps up to 0.77 s) on a
    # two-core one running the SQLite suite beside this one (`make test`). The bound is
    # that the limit is used, not wasted: no gap as long again as the limit's own.
    ordered = sorted(starts)
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(ordered)]
    assert 5.5 <= ordered[-1] - ordered[0] <= 14 * 0.8, gaps
    assert statistics.median(gaps) < 0.8, gaps


def test_a_burst_worker_waits_for_the_runs_a_rate_limit_spaces(limited_pipelines, workers, spans):
    """5 per 2 s: the second run waits 0.4 s for its turn. A burst worker (drain and exit)
    must not take that wait for "nothing left" and leave it pending."""
    enqueue_many("t-rated", [{"seconds": 0}] * 3)
    burst = workers("--burst", "--no-schedules", env=MODULES)
    assert burst.wait(60) == 0, burst.log()
    assert succeeded("t-rated") == 3
