"""Pausing and resuming queues and pipelines (runs/pausing.py): from code, and with a real
worker process claiming around the pause."""

from __future__ import annotations

import time

import pytest

from orbit.core.audit import Actor
from orbit.core.models import AuditEvent, AuditSource
from pipelines.models import Pipeline
from runs import enqueue
from runs.enqueueing import InvalidQueue
from runs.models import QueuePause, Run
from runs.models import Worker as WorkerRow
from runs.pausing import (
    InvalidReason,
    held,
    pipeline_pause,
    pipeline_resume,
    queue_pause,
    queue_resume,
    queue_states,
)
from tests.processes import stays_true, wait_until

ALICE = Actor(source=AuditSource.CLI, name="alice")
BOB = Actor(source=AuditSource.CLI, name="bob")


def events(action: str) -> list[tuple[str, str, dict]]:
    return list(
        AuditEvent.objects.filter(action=action)
        .order_by("id")
        .values_list("actor", "target_id", "changes")
    )


# -- from code ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_pausing_a_queue_is_audited_and_a_second_pause_keeps_the_first(test_pipelines):
    assert queue_pause("mail", reason="SMTP down", actor=ALICE) is True
    assert queue_pause("mail", reason="other", actor=BOB) is False  # idempotent: alice's stands
    row = QueuePause.objects.get()
    assert (row.queue, row.paused_by, row.reason) == ("mail", "alice", "SMTP down")
    assert events("queue.paused") == [
        ("alice", "mail", {"paused": [False, True], "reason": "SMTP down"})
    ]
    assert queue_resume("mail", actor=BOB) is True
    assert queue_resume("mail", actor=BOB) is False
    assert not QueuePause.objects.exists()
    assert events("queue.resumed") == [
        ("bob", "mail", {"paused": [True, False], "paused_by": "alice", "reason": "SMTP down"})
    ]


# A pipeline's pause is set once, cleared once and audited: tests/pipelines/test_flags.py.


@pytest.mark.django_db
def test_a_paused_pipeline_still_accepts_runs_a_disabled_one_refuses(test_pipelines):
    row = Pipeline.objects.get(name="t-single")
    pipeline_pause(row, actor=ALICE)
    run = enqueue("t-single")
    assert run.status == "pending"
    assert [(h.kind, h.name, h.pending) for h in held()] == [("pipeline", "t-single", 1)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("queue", "reason", "error", "message"),
    [
        # a name the queue rule refuses
        ("bad queue", "", InvalidQueue, "Queue name 'bad queue' is invalid"),
        # a NUL byte in the name
        ("q\x00", "", InvalidQueue, "Queue name 'q\\x00' is invalid"),
        # a NUL byte in the reason
        ("ok", "a\x00b", InvalidReason, "reason cannot hold a NUL character"),
        # a reason too long to keep
        ("ok", "x" * 501, InvalidReason, "reason is longer than 500 characters"),
        # a reason that is not text
        ("ok", 5, InvalidReason, "reason must be text, not int"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(queue, reason, error, message):
    with pytest.raises(error, match=message.replace("\\", "\\\\").replace("(", "\\(")):
        queue_pause(queue, reason=reason, actor=ALICE)
    assert not QueuePause.objects.exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_queue_states_list_active_and_paused_queues_with_their_counts(test_pipelines):
    enqueue("t-single", queue="mail")
    enqueue("t-single", queue="mail", delay=60)
    enqueue("t-single")
    queue_pause("idle", actor=ALICE)
    states = {s.queue: s for s in queue_states()}
    assert sorted(states) == ["default", "idle", "mail"]
    assert (states["mail"].pending, states["mail"].due, states["mail"].running) == (2, 1, 0)
    assert states["idle"].pause is not None and states["idle"].pause.paused_by == "alice"
    assert states["default"].pause is None


# -- with a real worker ---------------------------------------------------------------------

#: Far longer than any wait below: a run picked up sooner after a resume was announced.
POLL = "5"


def serving(workers, *queues: str):
    """A worker process on `queues`, started and idle."""
    args = [a for q in queues for a in ("--queue", q)]
    worker = workers("--no-schedules", *args, env={"ORBIT_POLL_INTERVAL": POLL})
    wait_until(lambda: WorkerRow.objects.filter(state="running").exists(), message="the worker")
    return worker


def status(run: Run) -> str:
    return Run.objects.values_list("status", flat=True).get(id=run.id)


def succeeded(*runs: Run) -> bool:
    return all(status(run) == "succeeded" for run in runs)


@pytest.mark.django_db(transaction=True)
def test_a_paused_queue_holds_its_runs_while_the_worker_works_others(test_pipelines, workers):
    queue_pause("held", reason="maintenance", actor=ALICE)
    serving(workers, "held", "default")
    waiting = [enqueue("t-single", queue="held") for _ in range(3)]
    # The worker is alive and claiming: the other queue's runs go through...
    others = [enqueue("t-single") for _ in range(3)]
    wait_until(lambda: succeeded(*others), timeout=30, message="the other queue's runs")
    # ...and one more after the held ones were queued, while they stay pending, untouched.
    later = enqueue("t-single")
    wait_until(lambda: succeeded(later), timeout=30, message="a later run")
    assert [status(run) for run in waiting] == ["pending"] * 3
    assert Run.objects.filter(id__in=[r.id for r in waiting], fence=0).count() == 3
    resumed_at = time.monotonic()
    queue_resume("held", actor=BOB)
    wait_until(lambda: succeeded(*waiting), timeout=float(POLL) * 3, message="the resumed runs")
    assert time.monotonic() - resumed_at < float(POLL)  # announced, not polled for


@pytest.mark.django_db(transaction=True)
def test_a_paused_pipeline_holds_its_runs_while_the_worker_works_others(test_pipelines, workers):
    pipeline_pause(Pipeline.objects.get(name="t-single"), actor=ALICE)
    serving(workers, "default")
    waiting = [enqueue("t-single") for _ in range(3)]
    others = [enqueue("t-three") for _ in range(3)]
    wait_until(lambda: succeeded(*others), timeout=30, message="the other pipeline's runs")
    later = enqueue("t-three")
    wait_until(lambda: succeeded(later), timeout=30, message="a later run")
    assert [status(run) for run in waiting] == ["pending"] * 3
    resumed_at = time.monotonic()
    pipeline_resume(Pipeline.objects.get(name="t-single"), actor=BOB)
    wait_until(lambda: succeeded(*waiting), timeout=float(POLL) * 3, message="the resumed runs")
    assert time.monotonic() - resumed_at < float(POLL)


@pytest.mark.django_db(transaction=True)
def test_a_running_run_finishes_while_its_queue_and_pipeline_are_paused(test_pipelines, workers):
    serving(workers, "default")
    run = enqueue("t-long", {"seconds": 1.5})
    wait_until(lambda: status(run) == "running", timeout=30, message="the run to start")
    pipeline_pause(Pipeline.objects.get(name="t-long"), actor=ALICE)
    queue_pause("default", actor=ALICE)
    wait_until(lambda: succeeded(run), timeout=30, message="the running run to finish")
    # Its next run waits.
    after = enqueue("t-long", {"seconds": 0})
    stays_true(lambda: status(after) == "pending", 1.0, "a run queued while paused")
