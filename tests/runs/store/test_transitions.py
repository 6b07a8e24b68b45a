"""Every store carries out every transition exactly as runs/store/transitions.py defines
it: each column the transition names is set the way it says, and no other column moves.

The same check runs against the portable store's ORM updates and the PostgreSQL store's
named statements (the claim, the batch commit, the recovery sweep), so neither can
drift from the table, nor from the other.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from orbit.core.clock import db_now
from runs.models import Run, Step
from runs.store import transitions as t
from runs.store.records import AttemptRecord, Outcome
from runs.store.transitions import Set
from tests.factories import WorkerFactory
from tests.runs.store.conftest import LEASE, claim, insert

pytestmark = pytest.mark.django_db(transaction=True)

#: Slack for comparing database stamps taken a statement apart.
CLOCK_SLACK = timedelta(seconds=2)


def row(model: type, pk: Any) -> dict[str, Any]:
    instance = model.objects.get(pk=pk)
    return {
        field.attname: getattr(instance, field.attname) for field in model._meta.concrete_fields
    }


def held_to(
    change: t.Change, before: dict[str, Any], after: dict[str, Any], values: dict[str, Any]
) -> None:
    """`after` is `before` changed exactly as `change` says, nothing else."""
    now = db_now()
    status = getattr(change, "status", None)
    if status:
        assert after["status"] == status, change.name
    for column, got in after.items():
        if column in ("status", "id"):
            continue
        how, was, where = change.how(column), before[column], f"{change.name}: {column}"
        if how is Set.KEEP:
            assert got == was, where
        elif how is Set.CLEAR:
            assert got in (None, ""), where
        elif how is Set.NOW:
            assert isinstance(got, datetime) and abs(got - now) < CLOCK_SLACK, where
        elif how is Set.NOW_IF_UNSET:
            assert got == was if was is not None else abs(got - now) < CLOCK_SLACK, where
        elif how is Set.NOW_PLUS:
            expected = now + timedelta(seconds=float(values[column]))
            assert isinstance(got, datetime) and abs(got - expected) < CLOCK_SLACK, where
        elif how is Set.INCREMENT:
            assert got == was + 1, where
        elif how is Set.RESET:
            assert got == 0, where
        elif how is Set.ADD:
            assert got == pytest.approx(was + float(values[column])), where
        elif how is Set.VALUE:
            assert got == values[column], where


def running_run(store, pipeline) -> tuple[Any, Any]:
    worker = WorkerFactory()
    run_id = insert(store, pipeline)
    (claimed,) = claim(store, worker_id=worker.id)
    return run_id, claimed


STEP_FOR = {
    t.SUCCEED: t.STEP_SUCCEED,
    t.CONTINUE: t.STEP_SUCCEED,
    t.FAIL: t.STEP_FAIL,
    t.RELEASE: t.STEP_RETRY,
    t.HOLD: t.STEP_RETRY,
    t.HAND_BACK: t.STEP_INTERRUPT,
}
RUN_VALUES = {
    "current_step": "two",
    "lease_expires_at": 45.0,
    "available_at": 12.5,
    "error": "Step 'one' failed after 1 attempt: boom",
    "running_time": 0.25,
}
STEP_VALUES = {
    "result": {"n": 1},
    "result_json": '{"n": 1}',
    "duration": 0.25,
    "failures": 1,
    "error": "boom",
    "error_type": "builtins.RuntimeError",
    "traceback": "Traceback ...",
}


@pytest.mark.parametrize(
    "change", sorted(t.COMMIT_CHANGES, key=lambda c: c.name), ids=lambda c: c.name
)
def test_a_commit_carries_out_its_run_and_step_transitions(store, pipeline, change):
    run_id, claimed = running_run(store, pipeline)
    one = claimed.steps[0]
    step_change = STEP_FOR[change]
    before_run, before_step = row(Run, run_id), row(Step, one.id)
    run_values = {k: v for k, v in RUN_VALUES.items() if k in change.needs()}
    step_values = {k: v for k, v in STEP_VALUES.items() if k in step_change.needs()}
    if "result" in step_change.needs():
        step_values["result_json"] = STEP_VALUES["result_json"]
    outcome = Outcome(
        held=claimed.held,
        run=change,
        run_values=run_values,
        step_id=one.id,
        step=step_change,
        step_values=step_values,
        attempt=AttemptRecord(step_id=one.id, number=1, outcome="failed", duration=0.25),
    )
    assert store.commit([outcome]) == {run_id}
    held_to(change, before_run, row(Run, run_id), run_values)
    held_to(step_change, before_step, row(Step, one.id), step_values)


def test_the_claim_is_the_claim_transition(store, pipeline):
    worker = WorkerFactory()
    run_id = insert(store, pipeline)
    before_run = row(Run, run_id)
    first = Step.objects.get(run_id=run_id, name="one")
    before_step = row(Step, first.id)
    claim(store, worker_id=worker.id)
    held_to(
        t.CLAIM, before_run, row(Run, run_id), {"worker_id": worker.id, "lease_expires_at": LEASE}
    )
    held_to(t.STEP_START, before_step, row(Step, first.id), {})


@pytest.mark.parametrize("quarantined", [False, True], ids=["recover", "quarantine"])
def test_the_recovery_sweep_is_the_recover_or_quarantine_transition(store, pipeline, quarantined):
    run_id, claimed = running_run(store, pipeline)
    Run.objects.filter(id=run_id).update(
        lease_expires_at=db_now() - timedelta(seconds=5), interruptions=3 if quarantined else 0
    )
    before_run, before_step = row(Run, run_id), row(Step, claimed.steps[0].id)
    (taken,) = store.take_interrupted(max_interruptions=3)
    change = t.QUARANTINE if quarantined else t.RECOVER
    held_to(change, before_run, row(Run, run_id), {"error": taken.error})
    after_step = row(Step, claimed.steps[0].id)
    held_to(t.STEP_INTERRUPT, before_step, {**after_step, "status": "pending", "error": ""}, {})
    if quarantined:
        assert (after_step["status"], after_step["error"]) == ("failed", taken.error)


def test_cancel_and_retry_are_their_transitions(store, pipeline):
    run_id, _ = running_run(store, pipeline)
    before = row(Run, run_id)
    store.cancel(run_id, reason="by alice")
    held_to(t.CANCEL, before, row(Run, run_id), {"error": "by alice"})
    before = row(Run, run_id)
    store.retry(run_id, current_step="one")
    held_to(t.RETRY, before, row(Run, run_id), {"current_step": "one"})


def test_every_run_transition_is_tested_here():
    tested = set(t.COMMIT_CHANGES) | {t.CLAIM, t.RECOVER, t.QUARANTINE, t.CANCEL, t.RETRY}
    assert tested == set(t.RUN_CHANGES)
