"""Flow limits in the claim (docs/FLOW-CONTROL.md, "Limits"), for every store: a pipeline's
max_concurrency, a queue's limit, a rate limit (inline or named and shared), and many
claimers at once never taking more than a limit allows."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import pytest
from django.db import connections
from django.db.models.functions import Now

from pipelines.models import Pipeline
from runs.models import QueuePause, RateWindow, Run
from tests.runs.store.conftest import claim, held_elsewhere, insert, new_run
from tests.threads import at_once

pytestmark = pytest.mark.django_db(transaction=True)


def row(name: str, **limits: object) -> Pipeline:
    return Pipeline.objects.create(name=name, definition="t-three", **limits)


#: The steps of t-three, the pipeline every row here is defined by.
THREE = ("one", "two", "three")


def table_reads() -> dict[str, int]:
    """Rows read from each table in this transaction so far, by sequential and index
    scans (PostgreSQL's own per-transaction table statistics). Indexes are used as on a
    table of production size: on a few hundred rows a sequential scan is cheaper, and
    reads every row whatever the statement asks."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            "SELECT relname, seq_tup_read + COALESCE(idx_tup_fetch, 0) "
            "FROM pg_stat_xact_user_tables WHERE relname IN ('runs_run', 'runs_step')"
        )
        return dict(cursor.fetchall())


def reads(before: Mapping[str, int], after: Mapping[str, int], table: str) -> int:
    return after.get(table, 0) - before.get(table, 0)


def running(pipeline: Pipeline) -> int:
    return Run.objects.filter(pipeline=pipeline, status="running").count()


def test_a_pipeline_limit_caps_its_running_runs_until_one_ends(store):
    limited = row("t-lim", max_concurrency=2)
    ids = [insert(store, limited) for _ in range(5)]
    first = claim(store)
    assert len(first) == 2 and all(c.limited for c in first)
    assert claim(store) == []  # full: the other three stay pending
    store.cancel(first[0].run_id, reason="done with it")
    (again,) = claim(store)
    assert again.run_id == ids[2]  # the next in claim order, the moment a slot freed
    assert running(limited) == 2


def test_an_unlimited_pipeline_is_claimed_beside_a_full_limited_one(store, pipeline):
    limited = row("t-lim", max_concurrency=1)
    for _ in range(3):
        insert(store, limited)
    free = {insert(store, pipeline) for _ in range(3)}
    claims = claim(store, limit=10)
    assert len(claims) == 4
    assert {c.run_id for c in claims if not c.limited} == free


def test_a_claim_told_no_limit_applies_leaves_limited_runs_alone(store, pipeline):
    limited = row("t-lim", max_concurrency=5)
    insert(store, limited)
    free = insert(store, pipeline)
    assert [c.run_id for c in claim(store, limited=False)] == [free]
    assert running(limited) == 0


def test_within_a_limit_the_highest_priority_is_claimed_first(store):
    limited = row("t-lim", max_concurrency=1)
    insert(store, limited, priority=0)
    urgent = insert(store, limited, priority=5)
    assert [c.run_id for c in claim(store)] == [urgent]


def test_a_queue_limit_caps_the_queue_over_every_pipeline(store, pipeline, settings):
    settings.ORBIT_QUEUE_LIMITS = "slow=2"
    other = row("t-other")
    for owner in (pipeline, other, pipeline):
        insert(store, owner, queue="slow")
    assert len(claim(store, queues=("slow", "default"))) == 2
    assert claim(store, queues=("slow",)) == []
    assert store.seconds_until_due(("slow",)) is None  # held by its limit, not "due now"


#: What keeps a due run from any claim, limited or not, and how it is let go:
#: (hold, release), each given the run's pipeline and queue.
HOLDS: dict[str, tuple[Callable[[Pipeline, str], None], Callable[[Pipeline, str], None]]] = {
    "its pipeline paused": (
        lambda p, q: Pipeline.objects.filter(pk=p.pk).update(paused_at=Now()),
        lambda p, q: Pipeline.objects.filter(pk=p.pk).update(paused_at=None),
    ),
    "its queue paused": (
        lambda p, q: QueuePause.objects.create(queue=q, paused_by="alice"),
        lambda p, q: QueuePause.objects.filter(queue=q).delete(),
    ),
    "its pipeline archived": (
        lambda p, q: Pipeline.objects.filter(pk=p.pk).update(archived_at=Now()),
        lambda p, q: Pipeline.objects.filter(pk=p.pk).update(archived_at=None),
    ),
    "not yet due": (
        lambda p, q: Run.objects.filter(pipeline=p).update(available_at=Now() + timedelta(hours=1)),
        lambda p, q: Run.objects.filter(pipeline=p).update(available_at=Now()),
    ),
}


def under_a_limit(under: str, settings: Any) -> tuple[Pipeline, str]:
    """A pipeline and a queue whose runs `under` ("a pipeline limit", "a queue limit")
    holds, with room for five."""
    if under == "a pipeline limit":
        return row("t-lim", max_concurrency=5), "default"
    settings.ORBIT_QUEUE_LIMITS = "slow=5"
    return row("t-free"), "slow"


@pytest.mark.parametrize("under", ["a pipeline limit", "a queue limit"])
@pytest.mark.parametrize("hold", list(HOLDS))
def test_a_run_under_a_limit_with_room_is_held_as_any_run_is(store, settings, under, hold):
    owner, queue = under_a_limit(under, settings)
    held = insert(store, owner, queue=queue)
    take, release = HOLDS[hold]
    take(owner, queue)
    assert claim(store, queues=(queue,)) == []
    release(owner, queue)
    (claimed,) = claim(store, queues=(queue,))
    assert claimed.run_id == held and claimed.limited


@pytest.mark.parametrize("under", ["a pipeline limit", "a queue limit"])
def test_a_run_under_a_limit_waits_for_a_claimant_that_knows_its_steps(store, settings, under):
    owner, queue = under_a_limit(under, settings)
    held = insert(store, owner, queue=queue)
    assert claim(store, queues=(queue,), definitions={"t-three": ("one", "two")}) == []
    assert claim(store, queues=(queue,), definitions={"t-other": ("one", "two", "three")}) == []
    (claimed,) = claim(store, queues=(queue,), definitions={"t-three": ("one", "two", "three")})
    assert claimed.run_id == held


def test_a_limit_with_room_is_read_past_a_long_backlog_of_its_own(store):
    """The claim reads a limited pipeline in claim order up to its room: an urgent run
    queued last, behind many, is the one taken."""
    limited = row("t-lim", max_concurrency=1)
    store.insert_runs([new_run(limited) for _ in range(300)])
    urgent = insert(store, limited, priority=9)
    assert [c.run_id for c in claim(store)] == [urgent]


def test_a_rate_limit_admits_its_count_per_window_and_says_when_the_next_is_due(store):
    rated = row("t-rated", rate_limit="3/60s")
    for _ in range(5):
        insert(store, rated)
    claims = claim(store, limit=10)
    assert len(claims) == 1  # spaced: one claim, the next a third of the period on
    assert claims.retry_after is not None and 19 < claims.retry_after <= 20
    for c in claims:
        store.cancel(c.run_id, reason="finished")
    assert claim(store, limit=10) == []  # nothing runs, yet the gap has not passed
    assert len(RateWindow.objects.get(name="pipeline:t-rated").starts) == 1
    assert store.seconds_until_due(("default",)) is None


def test_a_named_rate_limit_is_shared_by_the_pipelines_naming_it(store, settings):
    settings.ORBIT_RATE_LIMITS = "t-shared=3/minute"
    a, b = row("t-a", rate_limit="t-shared"), row("t-b", rate_limit="t-shared")
    for owner in (a, b, a, b, a, b):
        insert(store, owner)
    assert len(claim(store, limit=10)) == 1
    assert claim(store, limit=10) == []  # b's runs wait out the gap a's claim began


def test_a_named_rate_limit_nobody_configured_holds_its_runs(store, settings):
    settings.ORBIT_RATE_LIMITS = ""
    held = row("t-held", rate_limit="nowhere")
    insert(store, held)
    assert claim(store) == []
    assert Run.objects.get(pipeline=held).status == "pending"


def test_both_limits_apply_together(store):
    both = row("t-both", max_concurrency=1, rate_limit="5/60s")
    for _ in range(3):
        insert(store, both)
    assert len(claim(store, limit=10)) == 1


def test_the_claim_tells_a_limited_pipeline_as_the_pipeline_query_does(store):
    """The claim statements spell "limited" again in SQL (the plain claim's negation of
    it, the limits' state): they must agree with `PipelineQuerySet.limited()`, or a run
    would be claimed by both claims or by neither."""
    rows = [
        row("t-plain"),
        row("t-capped", max_concurrency=3),
        row("t-capped-zero", max_concurrency=0),
        row("t-rated", rate_limit="5/60s"),
        row("t-both", max_concurrency=1, rate_limit="5/60s"),
    ]
    ids = {insert(store, owner): owner.name for owner in rows}
    ours = Pipeline.objects.filter(pk__in=[r.pk for r in rows])
    limited = set(ours.limited().values_list("name", flat=True))
    plain = claim(store, limited=False)
    assert {ids[c.run_id] for c in plain} == {r.name for r in rows} - limited == {"t-plain"}
    under_limits = claim(store)
    assert {ids[c.run_id] for c in under_limits} == limited - {"t-capped-zero"}
    assert all(c.limited for c in under_limits)


def test_has_limits_sees_enabled_limited_pipelines_only(store, pipeline):
    Pipeline.objects.limited().update(enabled=False)  # the document pipeline's, say
    assert store.has_limits() is False
    limited = row("t-lim", max_concurrency=1, enabled=False)
    assert store.has_limits() is False
    Pipeline.objects.filter(id=limited.id).update(enabled=True)
    assert store.has_limits() is True


@pytest.mark.postgres
def test_claimers_on_many_connections_never_exceed_the_limit(store):
    """Four claimers at once, each ending what it claimed and claiming again: at no
    committed moment do more than three runs of the pipeline run."""
    limited = row("t-lim", max_concurrency=3)
    ids = {insert(store, limited) for _ in range(40)}
    taken: list[object] = []
    seen: list[int] = []

    def claimant() -> None:
        idle = 0
        while idle < 50:
            batch = claim(store, limit=2)
            seen.append(running(limited))
            if not batch:
                idle += 1
                continue
            idle = 0
            for c in batch:
                taken.append(c.run_id)
                store.cancel(c.run_id, reason="done")

    at_once(claimant, 4, timeout=60)
    assert sorted(taken) == sorted(ids)  # each run once
    assert max(seen) <= 3


@pytest.mark.postgres
def test_a_claimer_told_not_to_wait_skips_the_limits_while_another_holds_them(store, pipeline):
    """A worker never stalls on another's claim under limits: it claims the runs no
    limit holds, learns the lock was busy, and takes the limited ones once it is free."""
    from runs.store.postgres import LIMITS_LOCK

    limited = row("t-lim", max_concurrency=2)
    held_back = {insert(store, limited) for _ in range(2)}
    free = insert(store, pipeline)
    # What a claimer under limits holds in either store: the limits' lock (PostgreSQL's),
    # the limited pipelines' rows (the portable one's).
    with held_elsewhere(
        ("SELECT pg_advisory_xact_lock(%s)", [LIMITS_LOCK]),
        ("SELECT id FROM pipelines_pipeline WHERE id = %s FOR UPDATE", [limited.id]),
    ):
        claims = claim(store, wait_for_limits=False)
        assert [c.run_id for c in claims] == [free] and claims.limits_busy
        assert running(limited) == 0
    again = claim(store, wait_for_limits=False)
    assert {c.run_id for c in again} == held_back and not again.limits_busy


@pytest.mark.postgres
def test_a_claim_whose_limits_are_all_full_does_not_wait_for_the_limits_lock(store, pipeline):
    """The steady state of a backlog held at its limit: the claim under limits would take
    nothing, so it goes without the lock (a glance at the limits first), however long
    another claimer holds it, even for a caller that would wait."""
    import time

    from runs.store.postgres import LIMITS_LOCK

    limited = row("t-lim", max_concurrency=1)
    (first, _) = (insert(store, limited), insert(store, limited))
    assert [c.run_id for c in claim(store)] == [first]
    free = insert(store, pipeline)
    with held_elsewhere(
        ("SELECT pg_advisory_xact_lock(%s)", [LIMITS_LOCK]),
        ("SELECT id FROM pipelines_pipeline WHERE id = %s FOR UPDATE", [limited.id]),
    ):
        began = time.monotonic()
        claims = claim(store, wait_for_limits=True)
        # The other session holds its locks for 30 s: a claim that waited returns after.
        assert time.monotonic() - began < 10
        assert [c.run_id for c in claims] == [free] and not claims.limits_busy
    assert running(limited) == 1


@pytest.mark.postgres
def test_a_limit_is_read_up_to_its_room_not_through_its_backlog_or_the_step_table(store):
    """The due runs of a limited pipeline are read by its claim-order index and stop at
    the bound (runs/store/sql/functions.sql `create_due_under_limits`): neither the held
    backlog nor the steps of every run is read, whatever the planner makes of the tests
    of paused queues and step names. Counted by PostgreSQL's own per-transaction table
    statistics, with the tables analysed as in production."""
    from django.db import connection, transaction

    from runs.store.portable import DueBounds
    from runs.store.records import ClaimRequest

    if store.name == "portable":
        pytest.skip("the portable store's ORM queries test the step names as an anti-join")
    limited = row("t-lim", max_concurrency=2)
    store.insert_runs([new_run(limited) for _ in range(300)])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE runs_run")
        cursor.execute("ANALYZE runs_step")

    request = ClaimRequest(
        worker_id=None,
        limit=2,
        queues=("default",),
        lease_seconds=30,
        definitions={"t-three": THREE},
    )
    with transaction.atomic():
        before = table_reads()
        due = store._due_under_limits(request, DueBounds({limited.id: 2}, {}))
        after = table_reads()
    assert len(due) == 2
    assert reads(before, after, "runs_run") <= 4  # the two taken, not the 300 held
    assert reads(before, after, "runs_step") <= 8  # a probe per run read, not the table


@pytest.mark.postgres
def test_the_plain_claim_reads_no_run_it_may_not_take(store):
    """A backlog a flow limit holds, queued ahead of the runs a claim may take, costs the
    claim nothing (runs/store/sql/functions.sql `create_claim`): it reads each pipeline it
    may take in claim order, never the held runs. Before, it read the queue in claim order
    and skipped each held run, so a backlog of 100,000 cost every claim 100,000 rows."""
    from django.db import connection, transaction

    if store.name == "portable":
        pytest.skip("the portable store's claim reads the queue in claim order (an ORM query)")
    limited = row("t-lim", max_concurrency=1)
    free = row("t-free")
    store.insert_runs([new_run(limited) for _ in range(300)])
    taken = [insert(store, free) for _ in range(3)]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE runs_run")
        cursor.execute("ANALYZE runs_step")
    with transaction.atomic():
        before = table_reads()
        claims = claim(store, limit=5, limited=False, definitions={"t-three": THREE})
        after = table_reads()
    assert sorted(c.run_id for c in claims) == sorted(taken)
    assert reads(before, after, "runs_run") <= 10  # the three taken, not the 300 held
    assert reads(before, after, "runs_step") <= 40  # theirs, not the 900 of the held runs
