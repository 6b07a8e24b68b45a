"""runs.signals: each outcome heard once, after the commit that recorded it, in the
process that committed it; a rolled-back change is heard by nobody; a receiver that
raises stops nothing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import transaction
from django.test import Client

from orbit.core.exceptions import InvalidTransition
from runs import enqueue, signals
from runs.foreground import ForegroundRunner
from runs.lifecycle import run_cancel
from runs.models import Run, RunStatus
from runs.recovery import recover_interrupted
from tests.runs.test_recovery import interrupt
from tests.runs.workers import burst, statements_per_run

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Heard:
    """Every signal received: (signal name, run id, arguments besides the run)."""

    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    pids: set[int] = field(default_factory=set)

    def named(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        return [(run_id, kwargs) for n, run_id, kwargs in self.events if n == name]

    def names(self, run_id: object) -> list[str]:
        return [n for n, r, _ in self.events if r == str(run_id)]


@pytest.fixture
def heard() -> Iterator[Heard]:
    found = Heard()
    receivers = []
    for name, signal in signals.ALL.items():

        def receiver(sender, run, run_id, signal, name=name, **kwargs):
            assert sender is Run and isinstance(run, Run) and run.id == run_id
            # After the commit: the run as the receiver reads it is in its new state.
            found.events.append((name, str(run_id), {"status": run.status, **kwargs}))
            found.pids.add(os.getpid())

        signal.connect(receiver, sender=Run, weak=False)
        receivers.append((signal, receiver))
    yield found
    for signal, receiver in receivers:
        signal.disconnect(receiver, sender=Run)


def test_a_worker_run_that_succeeds_is_heard_once(test_pipelines, heard):
    run = enqueue("t-three")
    burst()
    assert heard.names(run.id) == ["run_succeeded"]
    assert heard.named("run_succeeded")[0][1]["status"] == RunStatus.SUCCEEDED
    assert heard.pids == {os.getpid()}  # the worker parent, never the step's child


def test_runs_committed_together_are_each_heard_once(test_pipelines, heard):
    """A worker with several slots commits their outcomes in one statement on
    PostgreSQL (record_many): every run of the batch still gets its own signal, once."""
    runs = [enqueue("t-single") for _ in range(8)]
    burst(concurrency=4)
    heard_ids = [run_id for run_id, _ in heard.named("run_succeeded")]
    assert sorted(heard_ids) == sorted(str(r.id) for r in runs)


def test_a_worker_run_that_fails_is_heard_with_its_retry_and_its_error(test_pipelines, heard):
    run = enqueue("t-failing")  # one retry, then failed
    burst()
    assert heard.names(run.id) == ["step_retried", "run_failed"]
    [(_, retried)] = heard.named("step_retried")
    assert (retried["step"], retried["attempt"], retried["outcome"]) == ("fails", 1, "failed")
    assert retried["delay"] > 0
    [(_, failed)] = heard.named("run_failed")
    assert failed["status"] == RunStatus.FAILED
    assert failed["step"] == "fails"
    assert failed["error"] == Run.objects.get(id=run.id).error
    assert failed["error_type"]


def test_a_timed_out_step_is_heard_then_its_retry(test_pipelines, heard):
    result = ForegroundRunner("t-slow-once").execute(metadata={"seconds": 30})
    assert result.success
    assert heard.names(result.run_id) == ["step_timed_out", "step_retried", "run_succeeded"]
    [(_, timed_out)] = heard.named("step_timed_out")
    assert timed_out == {
        "status": RunStatus.RUNNING,  # the foreground runner waits out the backoff itself
        "step": "sleeps-once",
        "attempt": 1,
        "retrying": True,
    }


def test_a_foreground_run_with_retries_is_heard_per_attempt(test_pipelines, heard):
    result = ForegroundRunner("t-flaky").execute(metadata={"fail_times": 2})
    assert result.success
    assert heard.names(result.run_id) == ["step_retried", "step_retried", "run_succeeded"]
    assert [kw["attempt"] for _, kw in heard.named("step_retried")] == [1, 2]


def test_a_cancel_is_heard_once_and_a_rolled_back_one_never(test_pipelines, heard):
    kept, undone = enqueue("t-single"), enqueue("t-single")
    with pytest.raises(RuntimeError), transaction.atomic():
        run_cancel(undone.id)
        assert heard.events == []  # not before the commit
        raise RuntimeError("roll it back")
    assert Run.objects.get(id=undone.id).status == RunStatus.PENDING
    with transaction.atomic():
        run_cancel(kept.id, reason="no longer wanted")
        assert heard.events == []
    assert heard.events == [
        (
            "run_cancelled",
            str(kept.id),
            {
                "status": RunStatus.CANCELLED,
                "reason": "no longer wanted",
                "previous_status": RunStatus.PENDING,
            },
        )
    ]
    with pytest.raises(InvalidTransition):  # refused: nothing changed, nothing heard
        run_cancel(kept.id)
    assert len(heard.events) == 1


def test_a_cancel_through_the_api_is_heard_once(test_pipelines, heard):
    from orbit.core.tokens import create_token
    from tests.api.conftest import make_user

    _, key = create_token(make_user("root", is_superuser=True, is_staff=True), "tests")
    run = enqueue("t-single")
    client = Client(headers={"Authorization": f"Bearer {key}"})
    response = client.post(f"/api/runs/{run.id}/cancel")
    assert response.status_code == 200, response.content
    assert heard.names(run.id) == ["run_cancelled"]


def test_recovery_is_heard_then_the_quarantine(test_pipelines, heard, settings):
    settings.ORBIT_MAX_INTERRUPTIONS = 1
    run = enqueue("t-three")
    interrupt(run)
    recover_interrupted(auto_resume=True)
    recover_interrupted(auto_resume=True)  # a second sweep finds nothing: hears nothing
    assert heard.named("run_recovered") == [
        (str(run.id), {"status": RunStatus.PENDING, "step": "two", "interruptions": 1})
    ]
    interrupt(run)
    recover_interrupted(auto_resume=True)
    [(run_id, quarantined)] = heard.named("run_quarantined")
    assert run_id == str(run.id)
    assert quarantined["status"] == RunStatus.FAILED
    assert (quarantined["step"], quarantined["interruptions"]) == ("two", 2)
    assert quarantined["error"].startswith("Quarantined: ")
    assert heard.names(run.id) == ["run_recovered", "run_quarantined"]


def test_a_receiver_that_raises_stops_neither_the_run_nor_the_others(test_pipelines, heard, caplog):
    def broken(sender, **kwargs):
        raise ValueError("receiver bug")

    signals.run_succeeded.connect(broken, sender=Run, weak=False)
    signals.run_cancelled.connect(broken, sender=Run, weak=False)
    try:
        runs = [enqueue("t-three") for _ in range(2)]
        burst()
        pending = enqueue("t-single")
        assert run_cancel(pending.id).status == RunStatus.CANCELLED  # the request succeeds
    finally:
        signals.run_succeeded.disconnect(broken, sender=Run)
        signals.run_cancelled.disconnect(broken, sender=Run)
    assert set(Run.objects.values_list("status", flat=True)) == {"succeeded", "cancelled"}
    assert sorted(r for r, _ in heard.named("run_succeeded")) == sorted(str(r.id) for r in runs)
    assert heard.names(pending.id) == ["run_cancelled"]
    assert "receiver bug" in caplog.text
    assert "Signal receiver" in caplog.text


def test_nothing_is_read_while_no_receiver_listens(test_pipelines):
    """The engine's statement counts stay pinned (test_worker, test_execution): with no
    receiver connected no event is even queued."""
    assert not any(s.has_listeners(Run) for s in signals.ALL.values())
    run = enqueue("t-single")
    with transaction.atomic():
        signals.send(signals.interrupted_events([]))
        signals.send([signals.cancelled_event(run.id, reason="", previous_status="pending")])
        assert transaction.get_connection().run_on_commit == []


def test_a_receiver_costs_one_read_per_commit(test_pipelines, heard):
    """With a receiver connected, a one-step run costs one statement more than the
    pinned count in test_worker.py (2 on PostgreSQL, 12 on SQLite): the run, read after
    the commit."""
    from django.db import connection

    per_run, _ = statements_per_run()
    assert per_run == (2 if connection.vendor == "postgresql" else 12) + 1
    assert len(heard.named("run_succeeded")) == 9
