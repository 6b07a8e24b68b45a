"""The run store's contract, one behaviour at a time, against every store (conftest.py)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, connections
from django.utils import timezone

from orbit.core.clock import db_now
from orbit.core.models import AuditEvent
from runs.models import Run, RunStatus, Step, StepAttempt, StepLog, StepStatus, Worker
from runs.store import transitions as t
from runs.store.records import AttemptRecord, LogBatch, LogLine, StepStart
from tests.factories import WorkerFactory
from tests.runs.store.conftest import (
    LEASE,
    check_of,
    claim,
    expire,
    insert,
    new_run,
    succeeded,
)
from tests.threads import at_once

pytestmark = pytest.mark.django_db(transaction=True)


def statuses(run_id: object) -> dict[str, str]:
    return dict(Step.objects.filter(run_id=run_id).values_list("name", "status"))


# -- creating ---------------------------------------------------------------------------


def test_inserted_runs_are_pending_with_their_steps_laid_out_in_order(store, pipeline):
    first, second = store.insert_runs([new_run(pipeline), new_run(pipeline, metadata={"a": 1})])
    assert first.created and second.created and first.created_at is not None
    run = Run.objects.get(id=second.id)
    assert (run.status, run.fence, run.current_step, run.metadata) == (
        "pending",
        0,
        "one",
        {"a": 1},
    )
    assert run.available_at == run.created_at
    steps = list(
        Step.objects.filter(run=run).order_by("position").values_list("name", "position", "status")
    )
    assert steps == [("one", 0, "pending"), ("two", 1, "pending"), ("three", 2, "pending")]


def test_an_inserted_run_carries_its_audit_event(store, pipeline):
    audit = {
        "action": "run_created",
        "source": "cli",
        "user_id": None,
        "actor": "alice",
        "ip_address": "127.0.0.1",
        "target_type": "runs.run",
        "target_id": "",
        "target_repr": "t-three run",
        "changes": {"queue": "default"},
    }
    run_id = insert(store, pipeline, audit=audit)
    event = AuditEvent.objects.get(target_id=str(run_id))
    assert (event.actor, event.source, event.ip_address, event.changes) == (
        "alice",
        "cli",
        "127.0.0.1",
        {"queue": "default"},
    )


@pytest.mark.parametrize("queues", [("default",), ("default", "other")])  # both claim statements
def test_a_runs_trace_context_is_stored_and_comes_back_with_its_claim(store, pipeline, queues):
    context = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    traced = insert(store, pipeline, trace_context=context)
    untraced = insert(store, pipeline)  # tracing off: nothing given, nothing stored
    assert Run.objects.get(id=traced).trace_context == context
    assert Run.objects.get(id=untraced).trace_context == {}
    claims = claim(store, worker_id=WorkerFactory().id, queues=queues)
    claimed = {c.run_id: c.trace_context for c in claims}
    assert claimed == {traced: context, untraced: {}}


def test_a_taken_idempotency_key_answers_with_the_run_holding_it(store, pipeline):
    first = insert(store, pipeline, idempotency_key="k-1")
    (again,) = store.insert_runs([new_run(pipeline, idempotency_key="k-1")])
    assert (again.created, again.id) == (False, first)
    assert Run.objects.count() == 1 and Step.objects.count() == 3


def test_a_key_repeated_within_one_batch_inserts_one_run(store, pipeline):
    one, two = store.insert_runs(
        [new_run(pipeline, idempotency_key="k"), new_run(pipeline, idempotency_key="k")]
    )
    assert one.created and not two.created and two.id == one.id
    assert Run.objects.count() == 1


def test_a_taken_schedule_slot_is_not_inserted_again(store, pipeline):
    slot = timezone.now().replace(microsecond=0)
    first = insert(store, pipeline, scheduled_for=slot)
    (again,) = store.insert_runs([new_run(pipeline, scheduled_for=slot)])
    assert (again.created, again.id) == (False, first)


def test_a_unique_key_held_by_an_active_run_answers_with_that_run(store, pipeline):
    first = insert(store, pipeline, unique_key="k")
    (again,) = store.insert_runs([new_run(pipeline, unique_key="k")])
    assert (again.created, again.id) == (False, first)
    Run.objects.filter(id=first).update(status=RunStatus.SUCCEEDED)
    (later,) = store.insert_runs([new_run(pipeline, unique_key="k")])
    assert later.created and later.id != first


def test_a_delayed_run_is_claimable_once_its_time_has_come(store, pipeline):
    run_id = insert(store, pipeline, delay=0.3)
    assert claim(store) == []
    assert 0 < store.seconds_until_due(["default"]) <= 0.3
    deadline = time.monotonic() + 10
    claimed: list = []
    while not claimed and time.monotonic() < deadline:
        claimed = claim(store)
    assert [c.run_id for c in claimed] == [run_id]


def test_many_runs_are_inserted_in_one_statement(store, pipeline):
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        inserted = store.insert_runs([new_run(pipeline, metadata={"n": i}) for i in range(20)])
    assert all(r.created for r in inserted) and Run.objects.count() == 20
    if store.name != "portable":  # the portable store inserts row by row, in one transaction
        assert sum("INSERT" in q["sql"].upper() for q in queries.captured_queries) == 1


@pytest.mark.parametrize(
    "change",
    [
        None,
        {"enabled": False},
        {"definition": "t-single"},
        {"default_metadata": {"region": "us"}},
        {"name": "renamed"},
    ],
    ids=["unchanged", "disabled", "definition", "default-metadata", "renamed"],
)
def test_a_checked_insert_goes_in_only_while_the_row_is_as_the_caller_read_it(
    store, pipeline, change
):
    """The caller's copy of the pipeline row (pipelines/lookup.py caches it per process)
    is checked in the insert's transaction: enabled, not archived, every value it read."""
    from orbit.core.exceptions import StalePipeline
    from pipelines.models import Pipeline

    Pipeline.objects.filter(id=pipeline.id).update(default_metadata={"region": "eu"})
    check = check_of(pipeline, default_metadata={"region": "eu"})
    if change is None:
        assert store.insert_runs([new_run(pipeline)], pipeline=check)[0].created
        assert Run.objects.count() == 1
        return
    Pipeline.objects.filter(id=pipeline.id).update(**change)
    with pytest.raises(StalePipeline):
        store.insert_runs([new_run(pipeline)], pipeline=check)
    assert not Run.objects.exists() and not AuditEvent.objects.exists()


def test_each_run_of_a_batch_keeps_what_is_its_own(store, pipeline):
    # the PostgreSQL store sends what a batch shares once (the first run's values) and
    # from each run only what differs: every difference from the first must still land
    at = (db_now() + timedelta(hours=1)).replace(microsecond=0)
    slot = timezone.now().replace(microsecond=0)
    bob = get_user_model().objects.create_user("bob")
    audit = {
        "action": "run.created",
        "source": "cli",
        "user_id": None,
        "actor": "alice",
        "ip_address": None,
        "target_type": "runs.run",
        "target_id": "",
        "target_repr": "first",
        "changes": {"queue": "default"},
    }
    runs = [
        new_run(pipeline, audit=audit),
        new_run(
            pipeline,
            ("a", "b"),
            metadata={"n": 2},
            priority=5,
            queue="other",
            idempotency_key="k-2",
            unique_key="u-2",
            delay=90.0,
            trace_context={"traceparent": "x"},
            audit={
                **audit,
                "source": "api",
                "user_id": bob.pk,
                "actor": "bob",
                "ip_address": "10.0.0.9",
                "target_repr": "second",
                "changes": {"queue": "other"},
            },
        ),
        new_run(pipeline, scheduled_for=slot, run_after=at, audit=None),
        new_run(pipeline, audit={"action": "run.rerun", "target_repr": "fourth"}),
    ]
    inserted = store.insert_runs(runs)
    assert all(r.created for r in inserted)
    assert [r.id for r in inserted] == [r.id for r in runs]
    first, second, third, fourth = (Run.objects.get(id=r.id) for r in runs)
    assert (first.priority, first.queue, first.metadata, first.current_step) == (
        0,
        "default",
        {},
        "one",
    )
    assert (second.priority, second.queue, second.metadata, second.trace_context) == (
        5,
        "other",
        {"n": 2},
        {"traceparent": "x"},
    )
    assert (second.idempotency_key, second.unique_key, first.idempotency_key) == (
        "k-2",
        "u-2",
        None,
    )
    assert abs((second.available_at - second.created_at).total_seconds() - 90.0) < 0.01
    assert (third.available_at, third.scheduled_for) == (at, slot)
    assert first.available_at == first.created_at == inserted[0].created_at
    assert (second.available_at, third.available_at) == (
        inserted[1].available_at,
        inserted[2].available_at,
    )
    assert list(
        Step.objects.filter(run=second)
        .order_by("position")
        .values_list("name", "position", "status", "attempts", "failures", "error", "result")
    ) == [("a", 0, "pending", 0, 0, "", None), ("b", 1, "pending", 0, 0, "", None)]
    assert Step.objects.filter(run=third).count() == 3
    events = {e.target_id: e for e in AuditEvent.objects.all()}
    assert set(events) == {str(first.id), str(second.id), str(fourth.id)}  # the third had none
    own = ("source", "user_id", "actor", "ip_address", "target_type", "target_repr", "changes")
    assert [getattr(events[str(first.id)], column) for column in own] == [
        "cli",
        None,
        "alice",
        None,
        "runs.run",
        "first",
        {"queue": "default"},
    ]
    assert [getattr(events[str(second.id)], column) for column in own] == [
        "api",
        bob.pk,
        "bob",
        "10.0.0.9",
        "runs.run",
        "second",
        {"queue": "other"},
    ]
    # an event lacking columns the first one has: those take their defaults
    lacking = events[str(fourth.id)]
    assert (lacking.action, lacking.actor, lacking.source, lacking.changes) == (
        "run.rerun",
        "",
        "",
        {},
    )


def test_a_run_inserted_alone_keeps_every_value_it_was_given(store, pipeline):
    # the PostgreSQL store writes a run alone through a function of its own, with each
    # value typed (functions.sql create_insert_run): every value must land as a batch's
    at = (db_now() + timedelta(hours=1)).replace(microsecond=0)
    slot = timezone.now().replace(microsecond=0)
    (given,) = store.insert_runs(
        [
            new_run(
                pipeline,
                ("a", "b"),
                metadata={"n": 2, "nested": {"x": [1, "two"]}},
                priority=5,
                queue="other",
                idempotency_key="k-2",
                unique_key="u-2",
                delay=90.0,
                trace_context={"traceparent": "x"},
                audit={
                    "action": "run.created",
                    "source": "api",
                    "user_id": None,
                    "actor": "bob",
                    "ip_address": "10.0.0.7",
                    "target_type": "runs.run",
                    "target_id": "",
                    "target_repr": "second",
                    "changes": {"queue": "other"},
                },
            )
        ]
    )
    (timed,) = store.insert_runs([new_run(pipeline, scheduled_for=slot, run_after=at)])
    (lacking,) = store.insert_runs(
        [new_run(pipeline, audit={"action": "run.rerun", "target_repr": "fourth"})]
    )
    run = Run.objects.get(id=given.id)
    assert (run.status, run.priority, run.queue, run.current_step, run.fence) == (
        "pending",
        5,
        "other",
        "a",
        0,
    )
    assert (run.metadata, run.trace_context) == (
        {"n": 2, "nested": {"x": [1, "two"]}},
        {"traceparent": "x"},
    )
    assert (run.idempotency_key, run.unique_key, run.scheduled_for, run.rerun_of_id) == (
        "k-2",
        "u-2",
        None,
        None,
    )
    assert (run.error, run.interruptions, run.running_time, run.worker_id) == ("", 0, 0.0, None)
    assert (given.created_at, given.available_at) == (run.created_at, run.available_at)
    assert abs((run.available_at - run.created_at).total_seconds() - 90.0) < 0.01
    steps = Step.objects.filter(run=run).order_by("position")
    assert [(s.name, s.position, s.status, s.attempts, s.result) for s in steps] == [
        ("a", 0, "pending", 0, None),
        ("b", 1, "pending", 0, None),
    ]
    other = Run.objects.get(id=timed.id)
    assert (other.available_at, other.scheduled_for, other.metadata) == (at, slot, {})
    assert timed.available_at == at
    events = {e.target_id: e for e in AuditEvent.objects.all()}
    assert set(events) == {str(given.id), str(lacking.id)}  # the second had none
    event = events[str(given.id)]
    assert (event.action, event.source, event.actor, event.ip_address) == (
        "run.created",
        "api",
        "bob",
        "10.0.0.7",
    )
    assert (event.target_type, event.target_repr, event.changes) == (
        "runs.run",
        "second",
        {"queue": "other"},
    )
    # an event lacking columns: those take their defaults
    short = events[str(lacking.id)]
    assert (short.action, short.actor, short.source, short.changes) == ("run.rerun", "", "", {})


def test_a_batchs_runs_whose_keys_are_taken_answer_with_the_runs_holding_them(store, pipeline):
    slot = timezone.now().replace(microsecond=0)
    keyed = insert(store, pipeline, idempotency_key="k-1")
    scheduled = insert(store, pipeline, scheduled_for=slot)
    unique = insert(store, pipeline, unique_key="u-1")
    answers = store.insert_runs(
        [
            new_run(pipeline, idempotency_key="k-1"),
            new_run(pipeline),
            new_run(pipeline, scheduled_for=slot),
            new_run(pipeline, unique_key="u-1"),
        ]
    )
    assert [(a.created, a.id) for a in answers[:1] + answers[2:]] == [
        (False, keyed),
        (False, scheduled),
        (False, unique),
    ]
    assert answers[1].created
    assert Run.objects.count() == 4 and Step.objects.count() == 12


def test_a_delayed_run_is_due_that_long_after_its_creation(store, pipeline):
    run_id = insert(store, pipeline, delay=90.0)
    run = Run.objects.get(id=run_id)
    assert abs((run.available_at - run.created_at).total_seconds() - 90.0) < 0.01
    assert claim(store) == []


def test_a_run_after_a_moment_is_due_at_that_moment(store, pipeline):
    at = (db_now() + timedelta(hours=1)).replace(microsecond=0)
    run_id = insert(store, pipeline, run_after=at)
    assert Run.objects.get(id=run_id).available_at == at


# -- claiming ---------------------------------------------------------------------------


def test_a_claim_takes_the_highest_priority_first_then_the_longest_waiting(store, pipeline):
    old = insert(store, pipeline)
    new = insert(store, pipeline)
    urgent = insert(store, pipeline, priority=5)
    assert [c.run_id for c in claim(store, limit=1)] == [urgent]
    assert [c.run_id for c in claim(store, limit=1)] == [old]
    assert [c.run_id for c in claim(store, limit=5)] == [new]


def test_a_claim_leaves_what_is_not_due_disabled_or_in_another_queue(store, pipeline):
    from pipelines.models import Pipeline

    insert(store, pipeline, delay=60.0)
    insert(store, pipeline, queue="other")
    off = Pipeline.objects.create(name="off", definition="t-three", enabled=False)
    insert(store, off)
    assert claim(store) == []
    assert len(claim(store, queues=("other", "default"))) == 1


def test_a_claim_advances_the_fence_and_starts_the_current_step(store, pipeline):
    worker = WorkerFactory()
    run_id = insert(store, pipeline)
    (claimed,) = claim(store, worker_id=worker.id)
    run = Run.objects.get(id=run_id)
    assert (claimed.fence, run.fence, run.status, run.worker_id) == (1, 1, "running", worker.id)
    lease = (run.lease_expires_at - db_now()).total_seconds()
    assert LEASE - 5 < lease <= LEASE
    assert run.started_at is not None
    assert claimed.started == "one"
    assert statuses(run_id) == {"one": "running", "two": "pending", "three": "pending"}
    # The steps as they were before the claim started one:
    assert [(s.name, s.status) for s in claimed.steps] == [
        ("one", "pending"),
        ("two", "pending"),
        ("three", "pending"),
    ]
    assert (claimed.pipeline, claimed.definition) == ("t-three", "t-three")


def test_a_claim_starts_no_step_when_the_current_one_already_succeeded(store, pipeline):
    run_id = insert(store, pipeline)
    Step.objects.filter(run_id=run_id, name="one").update(status=StepStatus.SUCCEEDED)
    (claimed,) = claim(store)
    assert claimed.started == ""
    assert statuses(run_id)["two"] == "pending"


def test_a_claim_by_definitions_leaves_pipelines_this_claimant_lacks(store, pipeline):
    insert(store, pipeline)
    assert claim(store, definitions={"t-single": ("noop",)}) == []
    assert len(claim(store, definitions={"t-three": ("one", "two", "three")})) == 1


def test_a_claim_by_definitions_leaves_runs_with_unfinished_steps_it_does_not_know(store, pipeline):
    newer = insert(store, pipeline, steps=("one", "two", "three", "four"))
    older = insert(store, pipeline, steps=("one", "gone"))
    Step.objects.filter(run_id=older, name="gone").update(status=StepStatus.SUCCEEDED)
    known = {"t-three": ("one", "two", "three")}
    assert [c.run_id for c in claim(store, definitions=known)] == [older]
    assert Run.objects.get(id=newer).status == RunStatus.PENDING
    assert len(claim(store, definitions={"t-three": ("one", "two", "three", "four")})) == 1


def test_claim_run_takes_one_particular_run_whatever_its_due_time(store, pipeline):
    later = insert(store, pipeline, delay=3600.0, queue="elsewhere")
    claimed = store.claim_run(later, worker_id=None, lease_seconds=LEASE)
    assert claimed is not None and claimed.run_id == later and claimed.started == "one"
    assert store.claim_run(later, worker_id=None, lease_seconds=LEASE) is None


@pytest.mark.postgres
def test_claims_from_many_connections_at_once_take_each_run_once(store, pipeline):
    ids = {insert(store, pipeline) for _ in range(60)}
    taken: list[list[object]] = []

    def claimant() -> None:
        mine = []
        while batch := claim(store, limit=3):
            mine += [c.run_id for c in batch]
        taken.append(mine)

    at_once(claimant, 6)
    every = [run_id for mine in taken for run_id in mine]
    assert len(taken) == 6
    assert sorted(every) == sorted(ids)  # each run claimed, none twice
    assert Run.objects.filter(fence=1, status="running").count() == 60


# -- starting a step the claim did not --------------------------------------------------


def test_start_step_starts_the_planned_step_and_puts_the_claimed_one_back(store, pipeline):
    run_id = insert(store, pipeline)
    (claimed,) = claim(store)
    rows = {s.name: s for s in claimed.steps}
    start = StepStart(
        name="two",
        step_id=rows["two"].id,
        position=1,
        undo_step_id=rows["one"].id,
        undo_status="pending",
    )
    assert store.start_step(claimed.held, start, lease_seconds=LEASE) == rows["two"].id
    assert statuses(run_id) == {"one": "pending", "two": "running", "three": "pending"}
    assert Run.objects.get(id=run_id).current_step == "two"


def test_start_step_creates_a_step_the_definition_gained(store, pipeline):
    run_id = insert(store, pipeline, steps=("one",))
    Step.objects.filter(run_id=run_id).update(status=StepStatus.SUCCEEDED)
    (claimed,) = claim(store)
    step_id = store.start_step(
        claimed.held, StepStart(name="two", step_id=None, position=1001), lease_seconds=LEASE
    )
    step = Step.objects.get(id=step_id)
    assert (step.run_id, step.name, step.position, step.status) == (run_id, "two", 1001, "running")


def test_start_step_under_a_stale_fence_writes_nothing(store, pipeline):
    run_id = insert(store, pipeline)
    (claimed,) = claim(store)
    Run.objects.filter(id=run_id).update(fence=7)
    two = next(s for s in claimed.steps if s.name == "two")
    start = StepStart(name="two", step_id=two.id, position=1)
    assert store.start_step(claimed.held, start, lease_seconds=LEASE) is None
    assert statuses(run_id)["two"] == "pending"


# -- committing -------------------------------------------------------------------------


def test_a_commit_records_the_attempt_and_starts_the_next_step(store, pipeline):
    run_id = insert(store, pipeline)
    (claimed,) = claim(store)
    rows = {s.name: s for s in claimed.steps}
    outcome = succeeded(
        claimed.held,
        rows["one"].id,
        run=t.CONTINUE,
        run_values={"current_step": "two", "lease_expires_at": LEASE},
        start_step_id=rows["two"].id,
    )
    assert store.commit([outcome]) == {run_id}
    assert statuses(run_id) == {"one": "succeeded", "two": "running", "three": "pending"}
    one = Step.objects.get(id=rows["one"].id)
    assert (one.result, one.attempts, one.duration) == ({"n": 1}, 1, 0.5)
    attempt = StepAttempt.objects.get(step_id=rows["one"].id)
    assert (attempt.number, attempt.outcome, attempt.duration) == (1, "succeeded", 0.5)
    assert abs((attempt.finished_at - attempt.started_at).total_seconds() - 0.5) < 0.01
    assert Run.objects.get(id=run_id).current_step == "two"


def test_a_stale_fence_in_a_batch_writes_nothing_for_its_run(store, pipeline):
    kept = insert(store, pipeline, steps=("one",))
    lost = insert(store, pipeline, steps=("one",))
    claims = {c.run_id: c for c in claim(store)}
    Run.objects.filter(id=lost).update(fence=claims[lost].fence + 1)  # taken over meanwhile
    outcomes = [succeeded(claims[r].held, claims[r].steps[0].id) for r in (kept, lost)]
    assert store.commit(outcomes) == {kept}
    assert Run.objects.get(id=kept).status == RunStatus.SUCCEEDED
    assert Run.objects.get(id=lost).status == RunStatus.RUNNING
    assert not StepAttempt.objects.filter(run_id=lost).exists()
    assert statuses(lost) == {"one": "running"}


def test_a_batch_whose_every_fence_is_stale_writes_nothing(store, pipeline):
    """A worker frozen past its leases: every run of its batch was taken over meanwhile."""
    first, second = insert(store, pipeline, steps=("one",)), insert(store, pipeline, steps=("one",))
    claims = {c.run_id: c for c in claim(store)}
    for run_id in (first, second):
        Run.objects.filter(id=run_id).update(fence=claims[run_id].fence + 1)
    outcomes = [succeeded(claims[r].held, claims[r].steps[0].id) for r in (first, second)]
    assert store.commit(outcomes) == set()
    assert set(Run.objects.values_list("status", flat=True)) == {RunStatus.RUNNING}
    assert not StepAttempt.objects.exists()
    assert statuses(first) == statuses(second) == {"one": "running"}


def test_a_batch_larger_than_one_insert_commits_every_run_and_attempt(store, pipeline):
    """120 outcomes: their attempts need more bound parameters than SQLite takes in one
    statement (999), so the portable store's INSERT, built before its transaction
    (runs/store/built.py), is split as bulk_create splits it; a stale fence among them
    is still left out, alone."""
    ids = [r.id for r in store.insert_runs([new_run(pipeline, steps=("one",)) for _ in range(120)])]
    claims = {c.run_id: c for c in claim(store, limit=120)}
    assert len(claims) == 120
    lost = ids[57]
    Run.objects.filter(id=lost).update(fence=claims[lost].fence + 1)  # taken over meanwhile
    committed = store.commit([succeeded(c.held, c.steps[0].id) for c in claims.values()])
    assert committed == set(ids) - {lost}
    assert Run.objects.filter(status=RunStatus.SUCCEEDED).count() == 119
    assert StepAttempt.objects.filter(run_id__in=ids).count() == 119
    assert not StepAttempt.objects.filter(run_id=lost).exists()
    assert statuses(lost) == {"one": "running"}


def test_each_outcome_of_a_batch_writes_its_own_transition_and_values(store, pipeline):
    """One batch: a run moves on, one succeeds, one fails, one goes back for a retry."""
    moving, done, failing, retrying = (insert(store, pipeline) for _ in range(4))
    claims = {c.run_id: c for c in claim(store)}
    first = {r: claims[r].steps[0].id for r in claims}

    def failed(run: str, step: object, number: int) -> dict[str, object]:
        error = {"error": f"boom {number}", "error_type": "x.Boom", "traceback": f"tb {number}"}
        return {
            "step": step,
            "step_values": {**error, "duration": number / 10, "failures": number},
            "attempt": AttemptRecord(
                step_id=first[run], number=1, outcome="failed", duration=number / 10, **error
            ),
        }

    outcomes = [
        succeeded(
            claims[moving].held,
            first[moving],
            run=t.CONTINUE,
            run_values={"current_step": "two", "lease_expires_at": LEASE, "running_time": 0.5},
            start_step_id=next(s.id for s in claims[moving].steps if s.name == "two"),
        ),
        succeeded(
            claims[done].held,
            first[done],
            run_values={"running_time": 2.0},
            step_values={"result": {"n": 2}, "result_json": '{"n": 2}', "duration": 2.0},
        ),
        succeeded(
            claims[failing].held,
            first[failing],
            run=t.FAIL,
            run_values={"error": "step one failed", "running_time": 0.3},
            **failed(failing, t.STEP_FAIL, 3),
        ),
        succeeded(
            claims[retrying].held,
            first[retrying],
            run=t.RELEASE,
            run_values={"current_step": "one", "available_at": 60, "running_time": 0.4},
            **failed(retrying, t.STEP_RETRY, 4),
        ),
    ]
    assert store.commit(outcomes) == {moving, done, failing, retrying}
    runs = {
        r.id: r
        for r in Run.objects.filter(id__in=claims).only(
            "status", "current_step", "error", "running_time", "available_at", "worker"
        )
    }
    order = (moving, done, failing, retrying)
    assert [(runs[r].status, runs[r].current_step, runs[r].error) for r in order] == [
        ("running", "two", ""),
        ("succeeded", "", ""),
        ("failed", "", "step one failed"),
        ("pending", "one", ""),
    ]
    assert [runs[r].running_time for r in order] == [0.5, 2.0, 0.3, 0.4]
    assert runs[retrying].worker_id is None and runs[retrying].available_at > db_now() + timedelta(
        seconds=50
    )
    steps = {
        s.id: s
        for s in Step.objects.filter(id__in=first.values()).only(
            "status", "result", "duration", "error", "failures", "traceback"
        )
    }
    assert [
        (s.status, s.result, s.duration, s.error, s.failures, s.traceback)
        for s in (steps[first[r]] for r in order)
    ] == [
        ("succeeded", {"n": 1}, 0.5, "", 0, ""),
        ("succeeded", {"n": 2}, 2.0, "", 0, ""),
        ("failed", None, 0.3, "boom 3", 3, "tb 3"),
        ("pending", None, 0.4, "boom 4", 4, "tb 4"),
    ]
    assert statuses(moving) == {"one": "succeeded", "two": "running", "three": "pending"}
    assert sorted(StepAttempt.objects.values_list("outcome", "duration")) == [
        ("failed", 0.3),
        ("failed", 0.4),
        ("succeeded", 0.5),
        ("succeeded", 0.5),
    ]


def test_a_batch_naming_one_run_twice_is_refused_whole(store, pipeline):
    other = insert(store, pipeline)
    run_id = insert(store, pipeline)
    claims = {c.run_id: c for c in claim(store)}
    rows = {s.name: s.id for s in claims[run_id].steps}
    hold = {"run": t.HOLD, "run_values": {"lease_expires_at": LEASE, "running_time": 1.0}}
    with pytest.raises(ValueError, match="at most one outcome per run"):
        store.commit(
            [
                succeeded(claims[other].held, claims[other].steps[0].id),
                succeeded(claims[run_id].held, rows["one"], **hold),
                succeeded(claims[run_id].held, rows["two"], **hold),
            ]
        )
    assert not StepAttempt.objects.exists()
    assert set(Run.objects.values_list("status", "running_time")) == {("running", 0.0)}


def test_an_attempt_committed_twice_raises_and_writes_nothing_of_its_batch(store, pipeline):
    """A commit whose acknowledgement was lost and is sent again."""
    first = insert(store, pipeline, steps=("one", "two"))
    other = insert(store, pipeline, steps=("one",))
    claims = {c.run_id: c for c in claim(store)}
    one = claims[first].steps[0].id
    hold = {"run": t.CONTINUE, "run_values": {"current_step": "two", "lease_expires_at": LEASE}}
    store.commit([succeeded(claims[first].held, one, **hold)])
    with pytest.raises(IntegrityError):
        store.commit(
            [
                succeeded(claims[other].held, claims[other].steps[0].id),
                succeeded(claims[first].held, one, **hold),
            ]
        )
    assert Run.objects.get(id=other).status == RunStatus.RUNNING  # rolled back with the batch
    assert StepAttempt.objects.filter(step_id=one).count() == 1


def lines(*messages: str, start: int = 0) -> tuple[LogLine, ...]:
    return tuple(
        LogLine(sequence=start + i, time=timezone.now(), level="INFO", message=m, fields={"i": i})
        for i, m in enumerate(messages)
    )


def logged(run_id: object) -> list[tuple[str, int, int, str]]:
    return list(
        StepLog.objects.filter(run_id=run_id)
        .order_by("step__position", "attempt", "sequence")
        .values_list("step__name", "attempt", "sequence", "message")
    )


def test_log_records_are_appended_for_every_batch_in_one_call(store, pipeline):
    first, second = insert(store, pipeline), insert(store, pipeline)
    claims = {c.run_id: c for c in claim(store)}
    a, b = claims[first], claims[second]
    store.append_logs(
        [
            LogBatch(a.held, a.steps[0].id, 1, lines("a0", "a1")),
            LogBatch(b.held, b.steps[0].id, 1, lines("b0")),
        ]
    )
    store.append_logs([LogBatch(a.held, a.steps[0].id, 1, lines("a2", start=2))])
    assert logged(first) == [("one", 1, 0, "a0"), ("one", 1, 1, "a1"), ("one", 1, 2, "a2")]
    assert logged(second) == [("one", 1, 0, "b0")]
    line = StepLog.objects.get(run_id=first, sequence=1)
    assert (line.level, line.fields) == ("INFO", {"i": 1})


def test_a_batch_sent_again_adds_nothing(store, pipeline):
    run_id = insert(store, pipeline)
    (claimed,) = claim(store)
    batch = LogBatch(claimed.held, claimed.steps[0].id, 1, lines("a", "b"))
    store.append_logs([batch])
    store.append_logs([batch])  # its acknowledgement was lost
    assert [m for *_, m in logged(run_id)] == ["a", "b"]


def test_log_records_of_a_lost_run_are_not_written(store, pipeline):
    kept, lost = insert(store, pipeline), insert(store, pipeline)
    claims = {c.run_id: c for c in claim(store)}
    Run.objects.filter(id=lost).update(fence=claims[lost].fence + 1)  # taken over meanwhile
    store.append_logs(
        [LogBatch(claims[r].held, claims[r].steps[0].id, 1, lines(str(r))) for r in (kept, lost)]
    )
    assert [m for *_, m in logged(kept)] == [str(kept)]
    assert logged(lost) == []


def test_log_records_of_a_cancelled_run_are_kept_until_it_is_queued_again(store, pipeline):
    run_id = insert(store, pipeline)
    (claimed,) = claim(store)
    step_id = claimed.steps[0].id
    store.cancel(run_id, reason="stop")
    store.append_logs([LogBatch(claimed.held, step_id, 1, lines("on its way out"))])
    store.retry(run_id, current_step="one")
    store.append_logs([LogBatch(claimed.held, step_id, 1, lines("too late", start=1))])
    assert [m for *_, m in logged(run_id)] == ["on its way out"]


def test_a_cancelled_attempt_is_recorded_once(store, pipeline):
    run_id = insert(store, pipeline)
    (claimed,) = claim(store)
    step_id = claimed.steps[0].id
    assert store.status_under(claimed.held) == "running"
    store.cancel(run_id, reason="stop")
    assert store.status_under(claimed.held) == "cancelled"
    attempt = AttemptRecord(step_id=step_id, number=1, outcome="cancelled", duration=0.1)
    assert store.record_cancelled(claimed.held, attempt)
    assert not store.record_cancelled(claimed.held, attempt)
    assert list(StepAttempt.objects.filter(run_id=run_id).values_list("outcome", flat=True)) == [
        "cancelled"
    ]
    assert Step.objects.get(id=step_id).status == StepStatus.PENDING


# -- holding ----------------------------------------------------------------------------


def test_renewing_answers_the_runs_still_held(store, pipeline):
    kept, cancelled = insert(store, pipeline), insert(store, pipeline)
    claims = claim(store)
    Run.objects.filter(id=kept).update(lease_expires_at=timezone.now())
    store.cancel(cancelled, reason="stop")
    assert store.renew([c.held for c in claims], lease_seconds=LEASE) == {kept}
    lease = (Run.objects.get(id=kept).lease_expires_at - db_now()).total_seconds()
    assert lease > LEASE - 5


def test_a_heartbeat_renews_and_counts(store, pipeline):
    worker = WorkerFactory(succeeded_count=1)
    insert(store, pipeline)
    claims = claim(store, worker_id=worker.id)
    held = store.heartbeat(
        worker.id, state="stopping", held=[c.held for c in claims], lease_seconds=LEASE, succeeded=2
    )
    assert held == {claims[0].run_id}
    worker = Worker.objects.get(id=worker.id)
    assert (worker.state, worker.succeeded_count) == ("stopping", 3)


# -- recovery ---------------------------------------------------------------------------


def test_an_expired_run_goes_back_to_the_queue_with_its_attempt_recorded(store, pipeline):
    worker = WorkerFactory()
    run_id = insert(store, pipeline)
    claim(store, worker_id=worker.id)
    expire(run_id)
    (taken,) = store.take_interrupted(max_interruptions=3)
    assert (taken.run_id, taken.step, taken.worker_id, taken.interruptions, taken.quarantined) == (
        run_id,
        "one",
        worker.id,
        1,
        False,
    )
    run = Run.objects.get(id=run_id)
    assert (run.status, run.worker_id, run.lease_expires_at, run.current_step) == (
        "pending",
        None,
        None,
        "one",
    )
    step = Step.objects.get(run_id=run_id, name="one")
    assert (step.status, step.attempts) == ("pending", 1)
    attempt = StepAttempt.objects.get(step=step)
    assert (attempt.outcome, attempt.worker_id, attempt.number) == ("interrupted", worker.id, 1)
    assert store.take_interrupted(max_interruptions=3) == []


def test_a_run_interrupted_too_often_is_quarantined(store, pipeline):
    run_id = insert(store, pipeline)
    claim(store)
    Run.objects.filter(id=run_id).update(interruptions=3)
    expire(run_id)
    (taken,) = store.take_interrupted(max_interruptions=3)
    assert taken.quarantined
    assert taken.error == (
        "Quarantined: the run interrupted its worker 4 times, last in step 'one' "
        "(ORBIT_MAX_INTERRUPTIONS=3)"
    )
    run = Run.objects.get(id=run_id)
    assert (run.status, run.error, run.current_step, run.interruptions) == (
        "failed",
        taken.error,
        "",
        4,
    )
    assert run.finished_at is not None
    step = Step.objects.get(run_id=run_id, name="one")
    assert (step.status, step.error) == ("failed", taken.error)


def test_live_leases_and_other_runs_are_left_alone(store, pipeline):
    live, expired = insert(store, pipeline), insert(store, pipeline)
    claim(store)
    expire(expired)
    assert store.take_interrupted(max_interruptions=3, run_id=live) == []
    assert [r.run_id for r in store.take_interrupted(max_interruptions=3)] == [expired]
    assert Run.objects.get(id=live).status == RunStatus.RUNNING


@pytest.mark.postgres
def test_sweeps_at_the_same_time_take_each_run_once(store, pipeline):
    ids = {insert(store, pipeline) for _ in range(30)}
    claim(store, limit=30)
    Run.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=5))
    taken: list[object] = []
    at_once(lambda: taken.extend(r.run_id for r in store.take_interrupted(max_interruptions=3)), 4)
    assert sorted(taken) == sorted(ids)
    assert StepAttempt.objects.filter(outcome="interrupted").count() == 30


def test_it_knows_how_long_until_a_lease_expires_and_a_run_is_due(store, pipeline):
    assert store.seconds_until_lease_expiry() is None
    assert store.seconds_until_due(["default"]) is None
    insert(store, pipeline, delay=120.0)
    assert 110 < store.seconds_until_due(["default"]) <= 120
    assert store.seconds_until_due(["other"]) is None
    insert(store, pipeline)
    assert store.seconds_until_due(["default"]) == 0.0
    claim(store, limit=1)
    assert LEASE - 5 < store.seconds_until_lease_expiry() <= LEASE


# -- operators --------------------------------------------------------------------------


def test_cancel_stops_a_pending_or_running_run_once(store, pipeline):
    pending, running = insert(store, pipeline), insert(store, pipeline, priority=1)
    claim(store, limit=1)
    assert store.cancel(running, reason="by alice") == "running"
    assert store.cancel(pending, reason="by bob") == "pending"
    assert store.cancel(pending, reason="again") is None
    run = Run.objects.get(id=running)
    assert (run.status, run.error, run.lease_expires_at, run.current_step) == (
        "cancelled",
        "by alice",
        None,
        "",
    )
    assert run.finished_at is not None


def test_retry_queues_a_failed_run_at_its_step_with_a_fresh_budget(store, pipeline):
    run_id = insert(store, pipeline)
    Step.objects.filter(run_id=run_id, name="one").update(status="succeeded")
    Step.objects.filter(run_id=run_id, name="two").update(status="failed", failures=3, error="x")
    Run.objects.filter(id=run_id).update(status="failed", error="boom", interruptions=2)
    assert store.retry(run_id, current_step="two") == "failed"
    assert store.retry(run_id, current_step="two") is None
    run = Run.objects.get(id=run_id)
    assert (run.status, run.error, run.current_step, run.interruptions) == ("pending", "", "two", 0)
    two = Step.objects.get(run_id=run_id, name="two")
    assert (two.status, two.failures, two.error) == ("pending", 0, "")
    assert statuses(run_id)["one"] == "succeeded"


# -- announcing and coordinating --------------------------------------------------------


def test_announcements_reach_a_listener_at_commit(store, pipeline):
    """NOTIFY on PostgreSQL, a datagram beside the file on SQLite: the same contract."""
    from django.db import transaction

    wakeups = store.wakeups()
    if wakeups is None:
        assert connection.vendor == "postgresql" and store.name == "portable"
        pytest.skip("the portable store on a database server has no announcements: workers poll")
    try:
        run_id = insert(store, pipeline, delay=2.5)
        with transaction.atomic():
            store.announce_cancel(run_id)
            assert _drain(wakeups, timeout=0.2).cancelled == ()  # not before commit
        heard = _drain(wakeups, timeout=2.0)
        assert heard.cancelled == (run_id,)
        store.announce(0.0)
        assert _drain(wakeups, timeout=2.0).delays == (0.0,)
    finally:
        wakeups.close()


def test_announcing_the_delay_of_an_inserted_run(store, pipeline):
    wakeups = store.wakeups()
    if wakeups is None:
        assert connection.vendor == "postgresql" and store.name == "portable"  # polls instead
        return
    try:
        insert(store, pipeline, delay=2.5)
        delays = _drain(wakeups, timeout=2.0).delays
        assert len(delays) == 1 and 2.3 < delays[0] <= 2.5
    finally:
        wakeups.close()


@pytest.mark.parametrize(
    "limited, queue, plain",
    [(False, "default", True), (True, "default", False), (False, "limited-q", False)],
    ids=["unlimited", "limited-pipeline", "limited-queue"],
)
def test_runs_no_limit_holds_are_announced_as_plain(
    store, pipeline, settings, limited, queue, plain
):
    """A worker answers a plain announcement with its one-statement claim alone; runs a
    pipeline's or a queue's limit may hold are announced as before (claim under limits)."""
    settings.ORBIT_QUEUE_LIMITS = "limited-q=2"
    wakeups = store.wakeups()
    if wakeups is None:
        assert connection.vendor == "postgresql" and store.name == "portable"  # polls instead
        return
    check = check_of(pipeline, limited=limited)
    try:
        store.insert_runs([new_run(pipeline, queue=queue)], pipeline=check)
        heard = _drain(wakeups, timeout=2.0)
        assert (heard.plain, heard.delays) == (((0.0,), ()) if plain else ((), (0.0,)))
    finally:
        wakeups.close()


def _drain(wakeups, timeout: float):
    import select

    from runs.store.records import Announcements

    delays: list[float] = []
    cancelled: list[object] = []
    plain: list[float] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select(
            [wakeups.fileno()], [], [], max(0.0, deadline - time.monotonic())
        )
        if ready:
            heard = wakeups.drain()
            delays += heard.delays
            cancelled += heard.cancelled
            plain += heard.plain
            if delays or cancelled or plain:
                break
    return Announcements(tuple(delays), tuple(cancelled), tuple(plain))


@pytest.mark.postgres
def test_one_process_at_a_time_holds_an_exclusive_key(store):
    if store.name == "portable":
        pytest.skip("the portable store takes no lock (documented)")
    answers: list[bool] = []
    entered, release = threading.Event(), threading.Event()

    def other() -> None:
        try:
            entered.wait(5)
            with store.exclusive(42) as acquired:
                answers.append(acquired)
        finally:
            release.set()
            connections.close_all()

    thread = threading.Thread(target=other)
    thread.start()
    with store.exclusive(42) as acquired:
        assert acquired
        entered.set()
        release.wait(5)
    thread.join(5)
    assert answers == [False]
    with store.exclusive(42) as again:
        assert again


def test_every_database_stamp_comes_from_one_clock(store, pipeline):
    before = db_now()
    run_id = insert(store, pipeline)
    after = db_now()
    created = Run.objects.get(id=run_id).created_at
    assert before <= created <= after
    assert connection.vendor in ("postgresql", "sqlite")


def test_a_rerun_is_inserted_naming_its_original(store, pipeline):
    original = insert(store, pipeline)
    rerun = insert(store, pipeline, rerun_of=original)
    assert Run.objects.get(id=rerun).rerun_of_id == original
    assert Run.objects.get(id=original).rerun_of_id is None


def test_a_worker_silent_past_its_lease_is_marked_dead_once_with_what_it_held(store, pipeline):
    worker, alive, stopped = (WorkerFactory(state=s) for s in ("running", "running", "stopped"))
    run_id = insert(store, pipeline)
    claim(store, worker_id=worker.id)
    silent = db_now() - timedelta(seconds=60)
    Worker.objects.filter(id__in=[worker.id, stopped.id]).update(last_heartbeat=silent)
    (dead,) = store.mark_dead_workers(silent_for=LEASE)
    held = {"run_id": str(run_id), "pipeline": "t-three", "step": "one"}
    assert (dead.worker_id, dead.held) == (worker.id, (held,))
    row = Worker.objects.get(id=worker.id)
    assert row.died_at is not None and row.held_at_death == [held]
    assert store.mark_dead_workers(silent_for=LEASE) == []  # once
    assert Worker.objects.get(id=alive.id).died_at is None
    assert Worker.objects.get(id=stopped.id).died_at is None


def test_a_worker_found_dead_that_sends_a_heartbeat_is_alive_again(store, pipeline):
    worker = WorkerFactory(state="running")
    Worker.objects.filter(id=worker.id).update(last_heartbeat=db_now() - timedelta(seconds=60))
    store.mark_dead_workers(silent_for=LEASE)
    store.heartbeat(worker.id, state="running", held=[], lease_seconds=LEASE)
    row = Worker.objects.get(id=worker.id)
    assert (row.died_at, row.held_at_death) == (None, [])
