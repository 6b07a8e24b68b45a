"""Queueing runs from code (runs.enqueueing): every option, and bad input changing nothing."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orbit.core.clock import db_now
from orbit.core.exceptions import IdempotencyConflict, OrbitError, UnknownPipeline
from pipelines.models import Pipeline
from runs import enqueue, enqueue_many
from runs.enqueueing import MAX_AHEAD, InvalidQueue, parse_delay, when
from runs.models import Run
from runs.store import store
from runs.store.records import ClaimRequest
from tests.threads import at_once

pytestmark = pytest.mark.django_db(transaction=True)
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_when_takes_one_of_delay_or_run_after_and_nothing_in_the_past():
    assert when(now=NOW).delay == 0.0
    assert when(delay=timedelta(seconds=30), now=NOW).delay == 30.0
    assert when(run_after=NOW + timedelta(hours=1), now=NOW).run_after == NOW + timedelta(hours=1)
    assert when(run_after=NOW - timedelta(seconds=2), now=NOW).run_after is not None  # tolerance
    for bad in (
        {"delay": -1},
        {"delay": float("nan")},
        {"run_after": NOW - timedelta(minutes=1)},
        {"run_after": NOW, "delay": 5},
    ):
        with pytest.raises(OrbitError):
            when(now=NOW, **bad)  # type: ignore[arg-type]


FURTHEST = "is too far ahead: a run starts at most 3650 days from now"


def test_a_start_up_to_ten_years_ahead_is_taken():
    assert when(delay=MAX_AHEAD, now=NOW).delay == MAX_AHEAD.total_seconds()
    assert when(run_after=NOW + MAX_AHEAD, now=NOW).run_after == NOW + MAX_AHEAD
    assert parse_delay("521w") == timedelta(weeks=521)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"delay": MAX_AHEAD.total_seconds() + 1}, f"delay {FURTHEST}"),  # just past the bound
        ({"delay": 1e13}, f"delay {FURTHEST}"),  # beyond SQLite's integer once in microseconds
        ({"delay": 1e308}, f"delay {FURTHEST}"),  # beyond a C int once in days
        ({"delay": 99999999999999999}, f"delay {FURTHEST}"),  # an int, as JSON gives it
        ({"delay": float("inf")}, f"delay {FURTHEST}"),
        ({"delay": timedelta.max}, f"delay {FURTHEST}"),
        (
            {"run_after": NOW + MAX_AHEAD + timedelta(seconds=1)},
            f"run_after 2035-12-30T12:00:01+00:00 {FURTHEST}",
        ),
        # in UTC, a moment past datetime's range
        (
            {"run_after": datetime.fromisoformat("9999-12-31T23:59:59-05:00")},
            f"run_after 9999-12-31T23:59:59-05:00 {FURTHEST}",
        ),
    ],
)
def test_a_start_further_than_ten_years_ahead_is_refused(options, message):
    with pytest.raises(OrbitError) as raised:
        when(now=NOW, **options)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    "text",
    [
        "99999999999w",  # beyond timedelta's range
        "4000000d",  # within timedelta's, beyond what a database stores
        "1000000000000",  # plain seconds
        "9" * 400,  # beyond a float: infinity
        "522w",  # just past the bound (521w is 3647 days)
    ],
)
def test_a_delay_further_than_ten_years_is_refused_as_it_is_read(text):
    with pytest.raises(OrbitError) as raised:
        parse_delay(text)
    assert str(raised.value) == f"delay {text!r} {FURTHEST}"


def test_a_run_goes_to_the_queue_asked_else_the_definitions_else_default(
    test_pipelines, monkeypatch
):
    assert enqueue("t-single").queue == "default"
    assert enqueue("t-single", queue="documents").queue == "documents"
    monkeypatch.setattr(Pipeline.objects.get(name="t-single").code, "queue", "reports")
    assert enqueue("t-single").queue == "reports"


@pytest.mark.parametrize(
    "options",
    [
        {"queue": "bad queue"},
        {"queue": ""},
        {"queue": "x" * 65},
        {"delay": -5},
        {"run_after": datetime(2020, 1, 1, tzinfo=UTC)},
        {"delay": 5, "run_after": datetime(2099, 1, 1, tzinfo=UTC)},
        {"priority": 10**9},
        {"delay": 1e13},  # too far ahead
        {"run_after": datetime.fromisoformat("9999-12-31T23:59:59-05:00")},  # too far ahead
    ],
)
def test_bad_options_are_refused_and_queue_nothing(test_pipelines, options):
    with pytest.raises(OrbitError) as raised:
        enqueue("t-single", **options)
    if "queue" in options:
        assert isinstance(raised.value, InvalidQueue)
    assert Run.objects.count() == 0


def test_an_unknown_pipeline_is_refused(test_pipelines):
    with pytest.raises(UnknownPipeline, match="Unknown pipeline 'nope'"):
        enqueue("nope")


def test_a_delayed_run_is_not_claimed_before_its_time_and_is_after(test_pipelines):
    run = enqueue("t-single", delay=0.5)
    assert run.delayed_until(db_now()) == run.available_at
    assert abs((run.available_at - run.created_at).total_seconds() - 0.5) < 0.05
    request = ClaimRequest(worker_id=None, limit=5, queues=("default",), lease_seconds=30.0)
    assert store().claim(request) == []
    assert 0 < store().seconds_until_due(["default"]) <= 0.5
    deadline = time.monotonic() + 10
    claimed = []
    while not claimed and time.monotonic() < deadline:
        claimed = store().claim(request)
    assert [c.run_id for c in claimed] == [run.id]
    assert claimed and db_now() >= run.available_at


def test_run_after_sets_when_the_run_becomes_due(test_pipelines):
    at = (db_now() + timedelta(hours=2)).replace(microsecond=0)
    run = enqueue("t-single", run_after=at)
    assert Run.objects.get(id=run.id).available_at == at


def test_an_idempotency_key_from_code_returns_the_first_run_or_refuses_another_input(
    test_pipelines,
):
    first = enqueue("t-single", {"a": 1}, idempotency_key="order-1")
    assert enqueue("t-single", {"a": 1}, idempotency_key="order-1").id == first.id
    with pytest.raises(IdempotencyConflict, match="order-1"):
        enqueue("t-single", {"a": 2}, idempotency_key="order-1")
    assert Run.objects.count() == 1


def test_enqueue_many_queues_every_run_with_the_same_options(test_pipelines):
    runs = enqueue_many("t-single", [{"n": i} for i in range(5)], queue="bulk", delay=60)
    assert [r.metadata["n"] for r in runs] == list(range(5))
    stored = Run.objects.filter(queue="bulk").order_by("metadata__n")
    assert stored.count() == 5
    assert all(r.delayed_until(db_now()) for r in stored)


def test_enqueue_many_with_one_bad_input_queues_none(test_pipelines):
    with pytest.raises(OrbitError):
        enqueue_many("t-single", [{"n": 1}, "not a dict"])  # type: ignore[list-item]
    assert Run.objects.count() == 0


@pytest.mark.postgres
def test_enqueue_many_inserts_all_in_one_statement(test_pipelines):
    Pipeline.objects.get(name="t-single")  # the row exists: no sync in the count
    with CaptureQueriesContext(connection) as queries:
        enqueue_many("t-single", [{"n": i} for i in range(50)])
    inserts = [q for q in queries.captured_queries if "INSERT" in q["sql"].upper()]
    assert len(inserts) == 1
    assert Run.objects.count() == 50


def test_a_unique_key_keeps_one_pending_or_running_run_per_pipeline(test_pipelines):
    first = enqueue("t-single", {"customer": 1}, unique_key="sync-1")
    again = enqueue("t-single", {"customer": 1, "other": True}, unique_key="sync-1")
    assert again.id == first.id and again.metadata == {"customer": 1}
    other = enqueue("t-single", unique_key="sync-2")
    assert other.id != first.id
    Run.objects.filter(id=first.id).update(status="running")
    assert enqueue("t-single", unique_key="sync-1").id == first.id
    Run.objects.filter(id=first.id).update(status="succeeded")
    later = enqueue("t-single", unique_key="sync-1")
    assert later.id != first.id
    assert Run.objects.filter(unique_key="sync-1").count() == 2


def test_a_retry_is_refused_while_another_run_holds_its_unique_key(test_pipelines):
    from orbit.core.exceptions import InvalidTransition
    from runs.lifecycle import run_retry

    failed = enqueue("t-single", unique_key="sync-1")
    Run.objects.filter(id=failed.id).update(status="failed")
    enqueue("t-single", unique_key="sync-1")
    with pytest.raises(InvalidTransition, match="holds its unique key 'sync-1'"):
        run_retry(failed.id)
    assert Run.objects.get(id=failed.id).status == "failed"


def test_concurrent_enqueues_with_one_unique_key_make_one_run(test_pipelines):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers: there is no race to lose")
    Pipeline.objects.get(name="t-single")
    ids: list[object] = []
    at_once(lambda: ids.append(enqueue("t-single", unique_key="race").id), 6)
    assert len(ids) == 6 and len(set(ids)) == 1
    assert Run.objects.filter(unique_key="race").count() == 1


def test_enqueue_many_names_the_bad_run_and_queues_none(test_pipelines):
    from orbit.core.exceptions import InvalidMetadata

    with pytest.raises(InvalidMetadata, match=r"^run 2: Run metadata must be a JSON object") as bad:
        enqueue_many("t-single", [{"n": 0}, {"n": 1}, ["not", "an", "object"]])  # type: ignore[list-item]
    assert bad.value.context["index"] == 2
    with pytest.raises(OrbitError, match=r"^run 1: idempotency keys are 1-255") as bad:
        enqueue_many("t-single", [{}, {}], idempotency_keys=["ok", ""])
    assert bad.value.context["index"] == 1
    assert Run.objects.count() == 0


@pytest.mark.parametrize("option", ["idempotency_keys", "unique_keys"])
@pytest.mark.parametrize("key", ["a\x00b", "\ud800"])
def test_a_key_no_database_can_store_is_refused_naming_its_run(test_pipelines, option, key):
    # on PostgreSQL a NUL in text is a DataError at insert time: refused before, clearly
    with pytest.raises(OrbitError, match=r"^run 1: .* keys cannot hold a NUL character") as bad:
        enqueue_many("t-single", [{}, {}], **{option: ["ok", key]})
    assert bad.value.context["index"] == 1
    assert Run.objects.count() == 0


def test_one_key_twice_in_a_batch_refuses_the_batch(test_pipelines):
    for option, what in (("idempotency_keys", "idempotency key"), ("unique_keys", "unique key")):
        with pytest.raises(OrbitError, match=rf"^run 2: {what} 'k' is also run 0's"):
            enqueue_many("t-single", [{}, {}, {}], **{option: ["k", "other", "k"]})
    assert Run.objects.count() == 0


def test_idempotency_keys_in_a_batch_return_the_runs_already_queued(test_pipelines):
    first = enqueue_many("t-single", [{"n": 1}, {"n": 2}], idempotency_keys=["a", "b"])
    again = enqueue_many("t-single", [{"n": 1}, {"n": 3}], idempotency_keys=["a", "c"])
    assert again[0].id == first[0].id and again[1].id not in {r.id for r in first}
    assert Run.objects.count() == 3
    with pytest.raises(IdempotencyConflict, match="'b'"):
        enqueue_many("t-single", [{"n": 9}], idempotency_keys=["b"])
    assert Run.objects.count() == 3


def test_enqueue_many_takes_ten_thousand_runs_and_refuses_more(test_pipelines):
    from runs.enqueueing import MAX_BATCH

    assert len(enqueue_many("t-single", [None] * MAX_BATCH)) == MAX_BATCH == 10_000
    with pytest.raises(OrbitError, match="at most 10000 runs at once"):
        enqueue_many("t-single", [None] * (MAX_BATCH + 1))
    assert Run.objects.count() == MAX_BATCH


def test_the_runs_returned_are_as_the_database_holds_them(test_pipelines):
    runs = enqueue_many("t-three", [{"n": 1}, None], priority=2, delay=60)
    for run in runs:
        stored = Run.objects.get(id=run.id)
        for field in Run._meta.concrete_fields:
            assert getattr(run, field.attname) == getattr(stored, field.attname), field.name
        assert run.pipeline.name == "t-three" and not run._state.adding
        assert run._state.db == stored._state.db
    assert runs[1].metadata == {} and runs[0].metadata is not runs[1].metadata


def test_a_receiver_of_runs_init_signals_still_hears_each_run(test_pipelines):
    from django.db.models.signals import post_init

    heard: list[object] = []

    def receiver(sender: type, instance: Run, **kwargs: object) -> None:
        heard.append(instance)

    post_init.connect(receiver, sender=Run)
    try:
        runs = enqueue_many("t-three", [{"n": 1}, {"n": 2}])
    finally:
        post_init.disconnect(receiver, sender=Run)
    # each run returned was built by the constructor (the portable store builds its own too)
    assert all(any(h is run for h in heard) for run in runs)
    assert [r.metadata for r in runs] == [{"n": 1}, {"n": 2}]
    assert runs[0].pipeline.name == "t-three"
