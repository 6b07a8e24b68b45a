"""Driving claimed runs: `begin`, `record_many` and what they leave in the database.

These drive the store's claim and runs/execution.py directly (no worker), on both
databases: fencing, one commit per attempt (and one statement per batch on PostgreSQL),
resuming at the first unfinished step with earlier results.
"""

from __future__ import annotations

import json

import pytest
from django.db import connection

from runs import enqueue
from runs.attempts import AttemptReport
from runs.execution import HeldRun, Next, begin, record_many
from runs.models import AttemptOutcome, Run, RunStatus, Step, StepAttempt, StepStatus
from runs.store import store
from runs.store.records import ClaimRequest

pytestmark = pytest.mark.django_db(transaction=True)

LEASE = 30.0


def claim(limit: int = 10) -> list[HeldRun]:
    request = ClaimRequest(worker_id=None, limit=limit, queues=("default",), lease_seconds=LEASE)
    return [HeldRun(c) for c in store().claim(request)]


def success(value: object = None) -> AttemptReport:
    return AttemptReport(
        outcome=AttemptOutcome.SUCCEEDED, duration=0.01, result_json=json.dumps(value)
    )


def test_the_claim_starts_the_first_step_and_returns_the_steps(test_pipelines):
    run = enqueue("t-three")
    (held,) = claim()
    assert [s.name for s in held.claim.steps] == ["one", "two", "three"]
    step = Step.objects.get(run=run, position=0)
    assert step.status == StepStatus.RUNNING and step.started_at is not None
    assert Run.objects.get(id=run.id).current_step == step.name
    decision = begin(held, lease_seconds=LEASE)
    assert decision.task is not None and decision.task.step == step.name


def test_a_resumed_run_starts_at_its_first_unfinished_step_with_earlier_results(
    test_pipelines,
):
    run = enqueue("t-dataflow", metadata={"x": 2, "y": 3})
    Step.objects.filter(run=run, name="add").update(
        status=StepStatus.SUCCEEDED, result={"value": 5}, attempts=1
    )
    (held,) = claim()
    decision = begin(held, lease_seconds=LEASE)
    assert decision.task is not None
    assert decision.task.step == "double"
    assert decision.task.prev_results == {"add": {"value": 5}}
    assert Step.objects.get(run=run, name="add").status == StepStatus.SUCCEEDED
    assert Step.objects.get(run=run, name="double").status == StepStatus.RUNNING


def test_a_batch_commits_each_success_and_moves_each_run_on(test_pipelines):
    single, three = enqueue("t-single"), enqueue("t-three")
    claims = {c.claim.run_id: c for c in claim()}
    tasks = {run_id: begin(c, lease_seconds=LEASE).task for run_id, c in claims.items()}
    with_queries = []
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        decisions = record_many(
            [(claims[r.id], tasks[r.id], success({"n": 1})) for r in (single, three)],
            lease_seconds=LEASE,
        )
        with_queries = list(queries.captured_queries)
    if connection.vendor == "postgresql":
        assert len(with_queries) == 1  # one statement for the whole batch
    assert decisions[0].next is Next.SUCCEEDED
    assert decisions[1].next is Next.STEP and decisions[1].task is not None
    assert decisions[1].task.step == "two"
    assert decisions[1].task.prev_results == {"one": {"n": 1}}
    assert Run.objects.get(id=single.id).status == RunStatus.SUCCEEDED
    running = Run.objects.get(id=three.id)
    assert (running.status, running.current_step) == (RunStatus.RUNNING, "two")
    steps = {s.name: s for s in Step.objects.filter(run=three)}
    assert (steps["one"].status, steps["one"].result, steps["one"].attempts) == (
        StepStatus.SUCCEEDED,
        {"n": 1},
        1,
    )
    assert steps["two"].status == StepStatus.RUNNING
    assert StepAttempt.objects.filter(outcome="succeeded").count() == 2


def test_a_run_that_lost_its_fence_gets_nothing_written(test_pipelines):
    kept, lost = enqueue("t-single"), enqueue("t-single")
    claims = {c.claim.run_id: c for c in claim()}
    tasks = {run_id: begin(c, lease_seconds=LEASE).task for run_id, c in claims.items()}
    # Another claimant took `lost` over meanwhile (its lease ran out): a new fence.
    Run.objects.filter(id=lost.id).update(fence=claims[lost.id].claim.fence + 1)
    decisions = record_many(
        [(claims[r.id], tasks[r.id], success()) for r in (kept, lost)], lease_seconds=LEASE
    )
    assert [d.next for d in decisions] == [Next.SUCCEEDED, Next.LOST]
    assert Run.objects.get(id=lost.id).status == RunStatus.RUNNING
    assert not StepAttempt.objects.filter(run_id=lost.id).exists()
    assert Step.objects.get(run=lost).status == StepStatus.RUNNING


def test_a_cancelled_run_records_its_attempt_as_cancelled(test_pipelines):
    run = enqueue("t-single")
    (held,) = claim()
    task = begin(held, lease_seconds=LEASE).task
    Run.objects.filter(id=run.id).update(status=RunStatus.CANCELLED)
    (decision,) = record_many([(held, task, success())], lease_seconds=LEASE)
    assert decision.next is Next.CANCELLED
    assert list(StepAttempt.objects.filter(run=run).values_list("outcome", flat=True)) == [
        "cancelled"
    ]


def test_committing_a_batch_twice_commits_each_attempt_once(test_pipelines):
    """A commit whose acknowledgement was lost is sent again: the repeat changes nothing."""
    run = enqueue("t-three")
    (held,) = claim()
    task = begin(held, lease_seconds=LEASE).task
    record_many([(held, task, success(1))], lease_seconds=LEASE)
    (again,) = record_many([(held, task, success(1))], lease_seconds=LEASE)
    assert again.next is Next.STEP and again.task is not None and again.task.step == "two"
    assert StepAttempt.objects.filter(run=run, outcome="succeeded").count() == 1
    assert Step.objects.get(run=run, name="one").attempts == 1
