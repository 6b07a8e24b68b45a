"""The run store on Django's ORM: SQLite, and any database Django supports.

Each operation is one transaction (IMMEDIATE on SQLite, so the write lock is taken at
BEGIN and claims never deadlock); on PostgreSQL it also serves as the reference the named
statements of runs/store/postgres.py are tested against. The PostgreSQL store inherits
the operations that are neither hot nor contended from here.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache, reduce
from operator import or_
from typing import Any

from django.db import IntegrityError, OperationalError, connection, models, transaction
from django.db.models import Count, Exists, F, Min, OuterRef, Q, QuerySet
from django.db.models.functions import Now

from orbit.core.clock import db_now
from orbit.core.conf import orbit_settings
from orbit.core.exceptions import LeaseLost, StalePipeline, type_path
from orbit.core.models import AuditEvent
from pipelines.limits import (
    Candidate,
    LimitedPipeline,
    RateRule,
    Rooms,
    choose,
    rooms,
    windows_after,
)
from pipelines.models import Pipeline
from runs.models import (
    ACTIVE_STATUSES,
    DeliveryStatus,
    RateWindow,
    Run,
    RunRollup,
    RunStatus,
    Step,
    StepAttempt,
    StepLog,
    StepStatus,
    WebhookDelivery,
    Worker,
)
from runs.store import built, datagrams
from runs.store import transitions as t
from runs.store.protocol import Features, Wakeups
from runs.store.records import (
    Announcements,
    AttemptRecord,
    Claim,
    ClaimRequest,
    Claims,
    DeadWorker,
    DeliveryClaim,
    Fence,
    InsertedRun,
    Interrupted,
    LimitsState,
    LogBatch,
    NewRun,
    Outcome,
    PipelineCheck,
    Pruned,
    StepRow,
    StepStart,
    one_per_run,
)
from runs.store.rollups import (
    OUTCOMES,
    GoneAttempt,
    GoneRun,
    HourFigures,
    add_counts,
    add_outcomes,
    summarise,
)

logger = logging.getLogger(__name__)

#: Why a recovered step's attempt ended, and the error type it is recorded with.
INTERRUPTED_ERROR = (
    "The worker running this step stopped renewing its lease (it died, froze or lost the database)"
)
INTERRUPTED_ERROR_TYPE = type_path(LeaseLost)
#: Why a run was quarantined: count, where ("in step 'x'" / "before its first step"), limit.
#: The same %s template serves Python's % and PostgreSQL's format().
#: A quarantined run's error starts with it (how /metrics counts quarantines).
QUARANTINED = "Quarantined:"
QUARANTINE_ERROR = (
    QUARANTINED + " the run interrupted its worker %s times, last %s (ORBIT_MAX_INTERRUPTIONS=%s)"
)
_STEP_FIELDS = ("id", "name", "status", "result", "attempts", "failures")
#: A claimant's log records are kept while it runs the run, and after an operator cancelled
#: it (what the step logged while being stopped), never once the run moved on.
LOGGING_STATUSES = (RunStatus.RUNNING.value, RunStatus.CANCELLED.value)


def _refuse_missing_pipelines(runs: Sequence[NewRun], checked: PipelineCheck | None) -> None:
    """IntegrityError when a run's pipeline does not exist: what the foreign key from a
    run to its pipeline checked for each run before migration 0026, asked once for the
    pipelines the caller's check did not cover (none, for any batch runs/enqueueing.py
    makes), each row held until the transaction ends as `_as_checked` holds the caller's:
    the PostgreSQL store's functions do the same (`orbit_pipelines_held`)."""
    wanted = {new.pipeline_id for new in runs} - ({checked.id} if checked is not None else set())
    if not wanted:
        return
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {quote(_column('id'))} FROM {quote(Pipeline._meta.db_table)} "
            f"WHERE {quote(_column('id'))} IN ({', '.join(['%s'] * len(wanted))}){_held()}",
            sorted(wanted),
        )
        missing = wanted - {found for (found,) in cursor.fetchall()}
    if missing:
        raise IntegrityError(f"pipeline {min(missing)} does not exist")


def _held() -> str:
    """The clause that holds the pipeline rows read until the transaction ends, as the
    PostgreSQL store's functions hold them, where the database has one: SQLite's
    IMMEDIATE transaction holds the whole file already."""
    return " FOR SHARE" if connection.features.has_select_for_update else ""


def _as_checked(pipeline: PipelineCheck) -> bool:
    """Whether the stored pipeline row is enabled, not archived, and has the values the
    caller read.

    Every enqueue asks, so it is one plain SELECT by primary key through the ORM's own
    connection, not a queryset: building and compiling the queryset took some 190 us of
    an SQLite enqueue's 1.2 ms, reading the row 20 us (docs/PERFORMANCE.md, "SQLite's
    single enqueue"). The statement names only the model's own columns, quoted by the
    connection, so it is the same on every database Django supports."""
    with connection.cursor() as cursor:
        cursor.execute(_check_sql(connection.vendor), [pipeline.id])
        stored = cursor.fetchone()
    if stored is None:
        return False
    enabled, archived_at, name, definition, metadata = stored
    return (
        bool(enabled)
        and archived_at is None
        and (name, definition, json_value(metadata))
        == (pipeline.name, pipeline.definition, dict(pipeline.default_metadata))
    )


def json_value(value: Any) -> Any:
    """A JSON column's value read by a plain cursor: its text on most databases (psycopg's
    loaders as Django sets them up, SQLite), decoded; anything else as it came."""
    return json.loads(value) if isinstance(value, str) else value


#: The columns `_as_checked` reads, in the order it unpacks them.
_CHECKED = ("enabled", "archived_at", "name", "definition", "default_metadata")


@cache
def _check_sql(vendor: str) -> str:
    """`_as_checked`'s statement for the connection's database (`vendor` keys the cache)."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(_column(name)) for name in _CHECKED)
    return (
        f"SELECT {columns} FROM {quote(Pipeline._meta.db_table)} "
        f"WHERE {quote(_column('id'))} = %s{_held()}"
    )


def _column(name: str) -> str:
    """The pipeline table's column for the model field `name`."""
    field = Pipeline._meta.get_field(name)
    assert isinstance(field, models.Field) and field.column is not None
    return field.column


def _cannot_conflict(new: NewRun) -> bool:
    """Whether `new` holds nothing another run may hold: no key, no schedule slot."""
    return new.idempotency_key is None and new.unique_key is None and new.scheduled_for is None


def _run_row(new: NewRun) -> Run:
    """The Run to insert for `new`, due at its `run_after`, or its delay from the
    database's clock, or (by the column's default) now."""
    run = Run(
        id=new.id,
        pipeline_id=new.pipeline_id,
        metadata=dict(new.metadata),
        priority=new.priority,
        queue=new.queue,
        idempotency_key=new.idempotency_key,
        unique_key=new.unique_key,
        scheduled_for=new.scheduled_for,
        current_step=new.current_step,
        rerun_of_id=new.rerun_of,
        trace_context=dict(new.trace_context),
    )
    if new.run_after is not None:
        run.available_at = new.run_after
    elif new.delay:
        run.available_at = t.now_plus(new.delay)
    return run


def quarantine_error(interruptions: int, step: str, limit: int) -> str:
    where = f"in step '{step}'" if step else "before its first step"
    return QUARANTINE_ERROR % (interruptions, where, limit)


def under(fences: Iterable[Fence]) -> Q:
    """Each run under its fence (still claimed by the one it was claimed by)."""
    return reduce(or_, (Q(id=fence.run_id, fence=fence.fence) for fence in fences))


def held_by(*fences: Fence) -> QuerySet[Run]:
    """The runs, each only while its fence still holds it: the condition of every fenced
    write."""
    return Run.objects.filter(under(fences), status=RunStatus.RUNNING)


@dataclass
class _CommitStatements:
    """A commit's statements, built before its transaction (runs/store/built.py): the
    fence read (batches of two or more), the runs' UPDATE (fenced, for a batch of one),
    then the steps' UPDATE and the attempts' INSERTs."""

    fences: QuerySet[Run, tuple[uuid.UUID]] | None
    fence_read: built.Statement | None
    runs: built.Statement | None  # None: no outcome
    rest: list[built.Statement]
    ended: datetime | None

    @classmethod
    def build(cls, held: Sequence[Outcome], ended: datetime | None) -> _CommitStatements:
        fences = None
        if len(held) == 1:
            rows = held_by(held[0].held)
        else:
            rows = Run.objects.all()
            fences = held_by(*(o.held for o in held)).select_for_update().values_list("id")
        runs = built.update_each(
            rows, [(o.held.run_id, o.run.orm_updates(o.run_values)) for o in held]
        )
        steps = built.update_each(
            Step.objects.all(),
            [
                (o.step_id, o.step.orm_updates(o.step_values))
                for o in held
                if o.step is not None and o.step_id is not None
            ]
            + [
                (o.start_step_id, t.STEP_START.orm_updates())
                for o in held
                if o.start_step_id is not None
            ],
        )
        attempts = built.insert(
            StepAttempt,
            [
                _attempt_row(o.held.run_id, o.attempt, ended=ended)
                for o in held
                if o.attempt is not None
            ],
        )
        return cls(
            fences=fences,
            fence_read=None if fences is None else built.select(fences),
            runs=runs,
            rest=([steps] if steps is not None else []) + attempts,
            ended=ended,
        )

    def holding(self) -> list[uuid.UUID]:
        """The runs whose fences hold (inside the transaction: locked where the database
        has row locks, which the ORM builds only there)."""
        assert self.fences is not None
        if self.fence_read is None:
            return [row[0] for row in self.fences]
        return built.pk_values(Run, built.fetch(self.fence_read))


class PortableStore:
    """`RunStore` on the ORM."""

    name = "portable"
    features = Features(percentiles=False, text_timestamps=True)

    # -- creating ---------------------------------------------------------------------
    def insert_runs(
        self, runs: Sequence[NewRun], *, pipeline: PipelineCheck | None = None
    ) -> list[InsertedRun]:
        results: list[InsertedRun] = []
        with transaction.atomic():  # IMMEDIATE on SQLite: no one changes the row meanwhile
            if pipeline is not None and not _as_checked(pipeline):
                raise StalePipeline(f"pipeline {pipeline!r} changed since it was read")
            _refuse_missing_pipelines(runs, pipeline)
            # A run holding no key and no schedule slot cannot conflict: those go in one
            # INSERT per table (SQLite splits a very large batch), with no savepoint. The
            # others go one by one, each in a savepoint, so a conflict undoes it alone.
            free = [new for new in runs if _cannot_conflict(new)]
            inserted = self._insert_free(free) if free else {}
            results = [inserted.get(new.id) or self._insert_one(new) for new in runs]
            if any(r.created for r in results):
                self.announce(
                    min(
                        (n.delay for n, r in zip(runs, results, strict=True) if r.created),
                        default=0.0,
                    ),
                    plain=unheld(runs, pipeline),
                )
        return results

    def _insert_free(self, news: Sequence[NewRun]) -> dict[uuid.UUID, InsertedRun]:
        """Insert runs that cannot conflict, each table in one statement; their stamps
        come back with the INSERT (RETURNING)."""
        made = Run.objects.bulk_create([_run_row(new) for new in news])
        Step.objects.bulk_create(
            Step(run_id=new.id, name=name, position=i)
            for new in news
            for i, name in enumerate(new.steps)
        )
        AuditEvent.objects.bulk_create(
            AuditEvent(**{**new.audit, "target_id": str(new.id)})
            for new in news
            if new.audit is not None
        )
        return {
            run.id: InsertedRun(
                id=run.id, created=True, created_at=run.created_at, available_at=run.available_at
            )
            for run in made
        }

    def _insert_one(self, new: NewRun) -> InsertedRun:
        run = _run_row(new)
        try:
            with transaction.atomic():  # a savepoint: a conflict undoes this run only
                run.save(force_insert=True)
                Step.objects.bulk_create(
                    Step(run_id=new.id, name=name, position=i) for i, name in enumerate(new.steps)
                )
                if new.audit is not None:
                    AuditEvent.objects.create(**{**new.audit, "target_id": str(new.id)})
        except IntegrityError:
            holder = self._holder(new)
            if holder is None:
                raise
            return InsertedRun(id=holder, created=False)
        stamped = Run.objects.filter(id=new.id).values_list("created_at", "available_at").get()
        return InsertedRun(id=new.id, created=True, created_at=stamped[0], available_at=stamped[1])

    def _holder(self, new: NewRun) -> uuid.UUID | None:
        """The run holding `new`'s idempotency key, unique key or schedule slot, if it can
        be seen."""
        taken = Q()
        if new.idempotency_key is not None:
            taken |= Q(idempotency_key=new.idempotency_key)
        if new.unique_key is not None:
            taken |= Q(unique_key=new.unique_key, status__in=ACTIVE_STATUSES)
        if new.scheduled_for is not None:
            taken |= Q(scheduled_for=new.scheduled_for)
        if not taken:
            return None
        return (
            Run.objects.filter(taken, pipeline_id=new.pipeline_id)
            .values_list("id", flat=True)
            .first()
        )

    # -- claiming and starting --------------------------------------------------------
    def claim(self, request: ClaimRequest) -> Claims:
        if request.limit <= 0:
            return Claims()
        if not request.limited:
            return self._claim_unlimited(request)
        # A glance first, without the lock: when no limit with room holds a due run (a
        # backlog held at its limit, a rate window not yet admitting, an idle limited
        # pipeline), the claim under limits would take nothing, so the plain claim goes
        # alone, and no claimer waits for another's lock. Only a glance: the claim below
        # reads everything again under the lock.
        glance = self._read_limits(request, lock=False)
        assert glance is not None
        seen = self._rooms(glance, request)
        if not self._due_under_limits(request, self._bounds(request, glance, seen).glance()):
            claims = self._claim_unlimited(request)
            claims.retry_after = seen.retry_after
            return claims
        # One transaction: the limits' lock is held until the claims are committed, so
        # the next limited claimer counts them.
        with transaction.atomic():
            limited = self._claim_limited(request)
            rest = replace(request, limit=request.limit - len(limited))
            claims = Claims([*limited, *self._claim_unlimited(rest)])
        claims.retry_after = limited.retry_after
        claims.limits_busy = limited.limits_busy
        return claims

    def _claim_unlimited(self, request: ClaimRequest) -> Claims:
        """Claim due runs that no flow limit holds."""
        if request.limit <= 0:
            return Claims()
        candidates: QuerySet[Run] = (
            unlimited(Run.objects.claimable())
            .filter(queue__in=request.queues)
            .order_by("-priority", "available_at")
        )
        if request.older_than is not None:
            candidates = candidates.filter(
                available_at__lte=t.now_plus(-request.older_than)
            ).order_by("available_at")
        if request.definitions is not None:
            candidates = _runnable_by(candidates, request.definitions)
        ids_of = candidates.select_for_update(skip_locked=True, of=("self",)).values_list("id")[
            : request.limit
        ]
        # Built before BEGIN (runs/store/built.py): on SQLite the write lock is taken at
        # BEGIN IMMEDIATE, and building this read was most of its time.
        read = built.select(ids_of)
        with transaction.atomic():
            if read is None:  # a database with row locks builds a locking read only here
                ids = [row[0] for row in ids_of]
            else:
                ids = built.pk_values(Run, built.fetch(read))
            return Claims(self._claim_ids(ids, request.worker_id, request.lease_seconds))

    def _read_limits(self, request: ClaimRequest, *, lock: bool = True) -> LimitsState | None:
        """Take the limits' lock (with `lock`) and read what a claim under limits decides
        on (None: another claimer holds the lock and the request said not to wait).
        SQLite's write lock, taken at BEGIN IMMEDIATE, serialises limited claimers, queue
        limits included; on other databases the limited pipelines' rows are the lock
        (below), so queue limits are exact on SQLite and with the PostgreSQL store (its
        own lock, postgres.py)."""
        queue_limits = _queue_limits(request)
        rows = Pipeline.objects.enabled().limited().order_by("name")
        if request.definitions is not None:
            rows = rows.filter(definition__in=list(request.definitions))
        # Locked in name order, so claimers never deadlock: on a database server each
        # claimer of a limited pipeline waits for the one before, and the statements after
        # this one see its claims.
        columns = ("id", "name", "max_concurrency", "rate_limit")
        if not lock:
            pipelines = list(rows.values_list(*columns))
        elif request.wait_for_limits or not connection.features.has_select_for_update_nowait:
            # SQLite: no row locks, and its write lock, taken at BEGIN, already serialises
            pipelines = list(rows.select_for_update().values_list(*columns))
        else:
            try:
                with transaction.atomic():  # a savepoint: a refused lock leaves the claim usable
                    pipelines = list(rows.select_for_update(nowait=True).values_list(*columns))
            except OperationalError as exc:
                if not _lock_refused(exc):
                    raise
                return None
        if not pipelines and not queue_limits:
            return LimitsState(now=0.0, pipelines=(), running_by_queue={}, windows={})
        running = Run.objects.running()
        by_pipeline = dict(
            running.filter(pipeline_id__in=[p[0] for p in pipelines])
            .values_list("pipeline_id")
            .annotate(n=Count("id"))
            .order_by()
        )
        by_queue = dict(
            running.filter(queue__in=list(queue_limits))
            .values_list("queue")
            .annotate(n=Count("id"))
            .order_by()
        )
        return LimitsState(
            now=db_now().timestamp(),
            pipelines=tuple(
                LimitedPipeline(pid, name, most, spec, by_pipeline.get(pid, 0))
                for pid, name, most, spec in pipelines
            ),
            running_by_queue=by_queue,
            windows=dict(RateWindow.objects.values_list("name", "starts")),
        )

    def _rooms(self, state: LimitsState, request: ClaimRequest) -> Rooms:
        """What the limits leave, as `state` has them (pipelines/limits.py `rooms`)."""
        queues = {
            queue: (most, state.running_by_queue.get(queue, 0))
            for queue, most in _queue_limits(request).items()
        }
        found = rooms(
            state.pipelines,
            queues,
            state.windows,
            state.now,
            orbit_settings.rate_limits,
            request.limit,
        )
        for key, pipeline in found.unconfigured:
            _warn_unconfigured(key, pipeline)
        return found

    def _bounds(self, request: ClaimRequest, state: LimitsState, left: Rooms) -> DueBounds:
        """How many due runs each limit with room is worth reading: per limited pipeline
        and per limited queue, at most what its room allows, so a backlog held by one
        limit is never read in full, and a full limit is not read at all."""
        return DueBounds(
            pipelines={
                p.id: bound
                for p in state.pipelines
                if (bound := left.bound(left.buckets(p.id, ""), request.limit)) > 0
            },
            queues={
                queue: bound
                for queue in _queue_limits(request)
                if (bound := left.bound([("queue", queue)], request.limit)) > 0
            },
        )

    def _due_under_limits(
        self, request: ClaimRequest, bounds: DueBounds, *, lock: bool = False
    ) -> list[Due]:
        """The due runs the limits hold, up to each one's bound, in claim order within
        each (with `lock`, locked until the transaction ends, skipping those another
        claimer holds). A query per limit: on a worker whose limits are all full, none."""
        if not bounds:
            return []
        due: QuerySet[Run] = Run.objects.claimable().filter(queue__in=request.queues)
        if request.definitions is not None:
            due = _runnable_by(due, request.definitions)
        queries = [(due.filter(pipeline_id=pid), n) for pid, n in bounds.pipelines.items()] + [
            (due.filter(UNLIMITED, queue=queue), n) for queue, n in bounds.queues.items()
        ]
        found: list[Due] = []
        for query, bound in queries:
            ordered = query.order_by("-priority", "available_at")
            if lock:
                ordered = ordered.select_for_update(skip_locked=True, of=("self",))
            found.extend(
                ordered.values_list("id", "pipeline_id", "queue", "priority", "available_at")[
                    :bound
                ]
            )
        return found

    def _claim_limited(self, request: ClaimRequest) -> Claims:
        """Claim due runs of limited pipelines and queues, within their limits: count
        what runs and what the rate windows admitted, choose (pipelines/limits.py), claim,
        record the admitted starts. Inside the caller's transaction, under the lock, so
        every count includes every claim committed before."""
        state = self._read_limits(request)
        if state is None:
            busy = Claims()
            busy.limits_busy = True
            return busy
        left = self._rooms(state, request)
        found = self._due_under_limits(request, self._bounds(request, state, left), lock=True)
        found.sort(key=lambda row: (-row[3], row[4]))  # the claim's order, over every limit
        chosen = choose(
            [Candidate(rid, left.buckets(pid, queue)) for rid, pid, queue, _, _ in found],
            limit=request.limit,
            rooms=left.rooms,
        )
        claims = Claims(
            replace(claim, limited=True)
            for claim in self._claim_ids(chosen, request.worker_id, request.lease_seconds)
        )
        claims.retry_after = self._record_starts(
            claims, found, left.rules, state.windows, state.now
        )
        return claims

    def _record_starts(
        self,
        claims: Sequence[Claim],
        found: Sequence[Due],
        rules: Mapping[int, RateRule | None],
        windows: Mapping[str, Any],
        now: float,
    ) -> float | None:
        """Add the claims to their rate windows; the seconds until a full one admits again."""
        pipeline_of = {row[0]: row[1] for row in found}
        started = Counter(
            rule.key
            for claim in claims
            if (rule := rules.get(pipeline_of[claim.run_id])) is not None
        )
        if started:
            # Recorded at a moment after the claims (the decision was taken before them):
            # each run's claim time lies between, so every window the windows admit by is
            # at least as full as the real one, whatever the statements' own timestamps.
            now = db_now().timestamp()
        after = windows_after(rules.values(), windows, now, started)
        if after.windows:  # one statement, under the limits' lock: no other claimer writes them
            RateWindow.objects.bulk_create(
                [
                    RateWindow(name=key, starts=list(starts))
                    for key, starts in after.windows.items()
                ],
                update_conflicts=True,
                unique_fields=["name"],
                update_fields=["starts", "updated_at"],
            )
        return after.retry_after

    def has_limits(self) -> bool:
        return Pipeline.objects.enabled().limited().exists()

    def claim_run(
        self, run_id: uuid.UUID, *, worker_id: int | None, lease_seconds: float
    ) -> Claim | None:
        with transaction.atomic():
            ids = list(
                Run.objects.select_for_update()
                .filter(id=run_id, status=RunStatus.PENDING)
                .values_list("id", flat=True)
            )
            claims = self._claim_ids(ids, worker_id, lease_seconds)
        return claims[0] if claims else None

    def _claim_ids(
        self, ids: list[uuid.UUID], worker_id: int | None, lease_seconds: float
    ) -> list[Claim]:
        if not ids:
            return []
        Run.objects.filter(id__in=ids, status__in=t.CLAIM.before).update(
            **t.CLAIM.orm_updates({"worker_id": worker_id, "lease_expires_at": lease_seconds})
        )
        rows = list(
            Run.objects.filter(
                id__in=ids,
                status=RunStatus.RUNNING,
                worker_id=worker_id,  # type: ignore[misc]  # None: IS NULL
            ).values_list(
                "id",
                "fence",
                "pipeline__name",
                "pipeline__definition",
                "metadata",
                "current_step",
                "trace_context",
            )
        )
        steps: dict[uuid.UUID, list[StepRow]] = {row[0]: [] for row in rows}
        for step in (
            Step.objects.filter(run_id__in=steps)
            .order_by("run_id", "position")
            .values("run_id", *_STEP_FIELDS)
        ):
            steps[step.pop("run_id")].append(StepRow(**step))
        claims, starting = [], []
        for run_id, fence, pipeline, definition, metadata, current, trace_context in rows:
            startable = next(
                (
                    s
                    for s in steps[run_id]
                    if s.name == current and s.status != StepStatus.SUCCEEDED
                ),
                None,
            )
            if startable is not None:
                starting.append(startable.id)
            claims.append(
                Claim(
                    run_id=run_id,
                    fence=fence,
                    worker_id=worker_id,
                    pipeline=pipeline,
                    definition=definition,
                    metadata=metadata,
                    steps=tuple(steps[run_id]),
                    started=startable.name if startable else "",
                    trace_context=trace_context,
                )
            )
        if starting:  # one statement for the batch: the same change for every step
            Step.objects.filter(id__in=starting).update(**t.STEP_START.orm_updates())
        return claims

    def start_step(self, held: Fence, start: StepStart, *, lease_seconds: float) -> int | None:
        with transaction.atomic():
            if not held_by(held).update(
                **t.CONTINUE.orm_updates(
                    {"current_step": start.name, "lease_expires_at": lease_seconds}
                )
            ):
                return None
            if start.undo_step_id is not None:
                Step.objects.filter(id=start.undo_step_id).update(
                    status=start.undo_status, started_at=None
                )
            if start.step_id is None:
                created = Step.objects.create(
                    run_id=held.run_id,
                    name=start.name,
                    position=start.position,
                    status=StepStatus.RUNNING,
                    started_at=Now(),
                )
                return int(created.id)
            Step.objects.filter(id=start.step_id).update(**t.STEP_START.orm_updates())
            return start.step_id

    def read_steps(self, run_id: uuid.UUID) -> tuple[StepRow, ...]:
        return tuple(
            StepRow(**row)
            for row in Step.objects.filter(run_id=run_id).order_by("position").values(*_STEP_FIELDS)
        )

    # -- committing -------------------------------------------------------------------
    def commit(self, outcomes: Sequence[Outcome]) -> set[uuid.UUID]:
        for outcome in outcomes:
            if outcome.run not in t.COMMIT_CHANGES:
                raise ValueError(f"{outcome.run.name} is not something a commit does")
        one_per_run(outcomes)
        if not outcomes:
            return set()
        # Every statement is built before the transaction and only sent inside it: on
        # SQLite the write lock is held from BEGIN to COMMIT, every worker's commits and
        # claims take it, and building was most of a commit's time (runs/store/built.py).
        # Built as if every fence holds (the rule); a batch in which one does not is
        # built again, inside, for those that hold. One statement per table for the
        # whole batch, each row's own values picked by a CASE.
        statements = _CommitStatements.build(outcomes, self._attempts_ended(outcomes))
        with transaction.atomic():
            if len(outcomes) == 1:  # the fenced UPDATE itself says whether the fence holds
                assert statements.runs is not None
                if built.send(statements.runs) < 1:
                    return set()
                held = list(outcomes)
            else:  # which fences hold, read once (and locked, where the database can)
                holding = set(statements.holding())
                held = [o for o in outcomes if o.held.run_id in holding]
                if not held:  # every run was taken over meanwhile: nothing to write
                    return set()
                if len(held) < len(outcomes):
                    statements = _CommitStatements.build(held, statements.ended)
                # Read under the lock: nothing took a run since.
                assert statements.runs is not None
                if built.send(statements.runs) < len(held):
                    raise RuntimeError("a run changed between reading its fence and writing")
            for statement in statements.rest:
                built.send(statement)
        return {o.held.run_id for o in held}

    @staticmethod
    def _attempts_ended(outcomes: Sequence[Outcome]) -> datetime | None:
        """When several attempts end: one read of the database clock, before the lock
        (the ORM would otherwise compile the clock into every row of the INSERT). A lone
        attempt takes the clock in its INSERT, with no extra SELECT."""
        return db_now() if sum(o.attempt is not None for o in outcomes) > 1 else None

    def append_logs(self, batches: Sequence[LogBatch]) -> None:
        if not batches:
            return
        with transaction.atomic():
            # Locked, so a claim cannot take a run over between this check and the insert.
            holding = set(
                Run.objects.select_for_update()
                .filter(under(b.held for b in batches), status__in=LOGGING_STATUSES)
                .values_list("id", "fence")
            )
            StepLog.objects.bulk_create(
                (
                    StepLog(
                        run_id=batch.held.run_id,
                        step_id=batch.step_id,
                        attempt=batch.attempt,
                        sequence=line.sequence,
                        time=line.time,
                        level=line.level,
                        message=line.message,
                        fields=dict(line.fields),
                    )
                    for batch in batches
                    if (batch.held.run_id, batch.held.fence) in holding
                    for line in batch.lines
                ),
                ignore_conflicts=True,
            )

    def status_under(self, held: Fence) -> str | None:
        return (
            Run.objects.filter(id=held.run_id, fence=held.fence)
            .values_list("status", flat=True)
            .first()
        )

    def record_cancelled(self, held: Fence, attempt: AttemptRecord) -> bool:
        with transaction.atomic():
            if not Run.objects.filter(
                id=held.run_id, fence=held.fence, status=RunStatus.CANCELLED
            ).exists():
                return False
            if StepAttempt.objects.filter(step_id=attempt.step_id, number=attempt.number).exists():
                return False
            _write_attempt(held.run_id, attempt)
            Step.objects.filter(id=attempt.step_id, status=StepStatus.RUNNING).update(
                **t.STEP_INTERRUPT.orm_updates()
            )
            if attempt.duration:
                Run.objects.filter(id=held.run_id).update(
                    running_time=F("running_time") + attempt.duration
                )
        return True

    # -- holding ----------------------------------------------------------------------
    def renew(self, held: Sequence[Fence], *, lease_seconds: float) -> set[uuid.UUID]:
        if not held:
            return set()
        runs = held_by(*held)
        renewed = runs.update(lease_expires_at=t.now_plus(lease_seconds))
        if renewed == len(held):
            return {h.run_id for h in held}
        return set(runs.values_list("id", flat=True))

    def heartbeat(
        self,
        worker_id: int,
        *,
        state: str,
        held: Sequence[Fence],
        lease_seconds: float,
        succeeded: int = 0,
        failed: int = 0,
    ) -> set[uuid.UUID]:
        with transaction.atomic():
            still = self.renew(held, lease_seconds=lease_seconds)
            Worker.objects.filter(id=worker_id).update(
                last_heartbeat=Now(),
                state=state,
                # Found dead while it was frozen or cut off, it is back: alive again.
                died_at=None,
                held_at_death=[],
                forgotten_at=None,
                succeeded_count=F("succeeded_count") + succeeded,
                failed_count=F("failed_count") + failed,
            )
        return still

    # -- recovery ---------------------------------------------------------------------
    def take_interrupted(
        self, *, max_interruptions: int, run_id: uuid.UUID | None = None
    ) -> list[Interrupted]:
        taken: list[Interrupted] = []
        with transaction.atomic():
            candidates = Run.objects.interrupted().select_for_update(skip_locked=True)
            if run_id is not None:
                candidates = candidates.filter(id=run_id)
            rows = list(candidates.values_list("id", "current_step", "worker_id", "interruptions"))
            for rid, step_name, worker_id, before in rows:
                interruptions = before + 1
                quarantined = interruptions > max_interruptions
                error = (
                    quarantine_error(interruptions, step_name, max_interruptions)
                    if quarantined
                    else ""
                )
                change = t.QUARANTINE if quarantined else t.RECOVER
                Run.objects.filter(id=rid).update(
                    **change.orm_updates({"error": error} if quarantined else {})
                )
                step = (
                    Step.objects.filter(run_id=rid, name=step_name).first() if step_name else None
                )
                if step is not None and step.status == StepStatus.RUNNING:
                    StepAttempt.objects.create(
                        step=step,
                        run_id=rid,
                        number=step.attempts + 1,
                        outcome="interrupted",
                        error=INTERRUPTED_ERROR,
                        error_type=INTERRUPTED_ERROR_TYPE,
                        started_at=step.started_at,
                        worker_id=worker_id,
                    )
                    Step.objects.filter(id=step.id).update(**t.STEP_INTERRUPT.orm_updates())
                if step is not None and quarantined:
                    Step.objects.filter(id=step.id).update(
                        **t.STEP_QUARANTINE.orm_updates({"error": error})
                    )
                taken.append(
                    Interrupted(
                        run_id=rid,
                        step=step_name,
                        worker_id=worker_id,
                        interruptions=interruptions,
                        quarantined=quarantined,
                        error=error,
                    )
                )
        return taken

    def mark_dead_workers(self, *, silent_for: float) -> list[DeadWorker]:
        with transaction.atomic():
            silent = list(
                Worker.objects.active()
                .filter(died_at__isnull=True, last_heartbeat__lt=t.now_plus(-silent_for))
                .select_for_update(skip_locked=True)
                .values_list("id", "name", "last_heartbeat")
            )
            if not silent:
                return []
            held: dict[int, list[dict[str, str]]] = {}
            for run_id, worker_id, pipeline, step in (
                Run.objects.running()
                .filter(worker_id__in=[w[0] for w in silent])
                .order_by("started_at")
                .values_list("id", "worker_id", "pipeline__name", "current_step")
            ):
                held.setdefault(worker_id, []).append(
                    {"run_id": str(run_id), "pipeline": pipeline, "step": step}
                )
            dead = []
            for worker_id, name, last_heartbeat in silent:
                runs = held.get(worker_id, [])
                Worker.objects.filter(id=worker_id).update(died_at=Now(), held_at_death=runs)
                dead.append(DeadWorker(worker_id, name, last_heartbeat, tuple(runs)))
            return dead

    def seconds_until_lease_expiry(self) -> float | None:
        earliest = Run.objects.running().aggregate(at=Min("lease_expires_at"))["at"]
        if earliest is None:
            return None
        return float((earliest - db_now()).total_seconds())

    def seconds_until_due(self, queues: Sequence[str]) -> float | None:
        pending = Run.objects.pending().filter(queue__in=queues).of_runnable_pipelines().unpaused()
        # Due runs under a limit wait for a slot or a rate window, which bring their
        # claim; counting them here would have an idle worker claim in vain every poll.
        due = pending.filter(
            Q(available_at__gt=Now()) | Q(id__in=unlimited(pending).values("id"))
        ).aggregate(at=Min("available_at"))["at"]
        if due is None:
            return None
        return max(0.0, float((due - db_now()).total_seconds()))

    # -- operators --------------------------------------------------------------------
    def cancel(self, run_id: uuid.UUID, *, reason: str) -> str | None:
        with transaction.atomic():
            before = _locked_status(run_id, t.CANCEL)
            if before is None:
                return None
            Run.objects.filter(id=run_id).update(**t.CANCEL.orm_updates({"error": reason}))
        return str(before)

    def retry(self, run_id: uuid.UUID, *, current_step: str) -> str | None:
        with transaction.atomic():
            before = _locked_status(run_id, t.RETRY)
            if before is None:
                return None
            Run.objects.filter(id=run_id).update(
                **t.RETRY.orm_updates({"current_step": current_step})
            )
            Step.objects.filter(run_id=run_id).exclude(status=StepStatus.SUCCEEDED).update(
                **t.STEP_RESET.orm_updates()
            )
            self.announce()
        return str(before)

    # -- retention --------------------------------------------------------------------
    def prune_runs(self, before: Mapping[str, datetime], *, limit: int) -> Pruned:
        if limit <= 0 or not _prunable_statuses(before):
            return Pruned()
        with transaction.atomic():
            rows = list(
                prunable(before)
                .select_for_update(skip_locked=True)
                .order_by("finished_at")
                .values_list("id", "pipeline_id", "status", "running_time", "finished_at")[:limit]
            )
            if not rows:
                return Pruned()
            pipelines = {row[0]: row[1] for row in rows}
            attempts = [
                GoneAttempt(pipelines[run_id], outcome, number, duration, finished_at)
                for run_id, outcome, number, duration, finished_at in StepAttempt.objects.filter(
                    run_id__in=pipelines
                ).values_list("run_id", "outcome", "number", "duration", "finished_at")
            ]
            gone = [
                GoneRun(pipeline, status, running, finished)
                for _, pipeline, status, running, finished in rows
                if finished is not None
            ]
            self._add_rollups(summarise(gone, attempts))
            # Django's own delete: the steps, attempts and logs cascade, and rows of
            # other apps pointing at the runs are treated as their foreign keys say.
            Run.objects.filter(id__in=list(pipelines)).delete()
        return Pruned(runs=dict(Counter(row[2] for row in rows)), attempts=len(attempts))

    def _add_rollups(self, figures: Sequence[HourFigures]) -> None:
        for hour in figures:
            row, _ = RunRollup.objects.select_for_update().get_or_create(
                pipeline_id=hour.pipeline_id, hour=hour.hour
            )
            row.succeeded += hour.succeeded
            row.failed += hour.failed
            row.cancelled += hour.cancelled
            row.run_durations = add_counts(list(row.run_durations or []), hour.run_durations)
            row.run_seconds += hour.run_seconds
            row.attempts = add_outcomes(dict(row.attempts or {}), hour.attempts)
            row.retries += hour.retries
            row.attempt_durations = add_counts(
                list(row.attempt_durations or []), hour.attempt_durations
            )
            row.attempt_seconds += hour.attempt_seconds
            row.save()

    def count_prunable(self, before: Mapping[str, datetime]) -> dict[str, int]:
        if not _prunable_statuses(before):
            return {}
        return dict(prunable(before).values_list("status").annotate(n=Count("id")).order_by())

    def prune_audit(self, before: datetime, *, limit: int) -> int:
        if limit <= 0:
            return 0
        with transaction.atomic():
            ids = list(
                AuditEvent.objects.filter(created_at__lt=before)
                .order_by("created_at", "id")
                .values_list("id", flat=True)[:limit]
            )
            deleted, _ = AuditEvent.objects.filter(id__in=ids).delete()
        return deleted

    def count_audit(self, before: datetime) -> int:
        return AuditEvent.objects.filter(created_at__lt=before).count()

    # -- reading ----------------------------------------------------------------------
    def estimated_rows(self, model: type[models.Model]) -> int | None:
        return None

    # -- announcing and coordinating --------------------------------------------------
    def announce(self, delay: float = 0.0, *, plain: bool = False) -> None:
        """A datagram to each worker waiting on this database file, at commit
        (runs/store/datagrams.py); on a database that is no file here, workers poll."""
        datagrams.announce(Announcements.delay_payload(delay, plain=plain))

    def announce_cancel(self, run_id: uuid.UUID) -> None:
        """As `announce`; without the datagram, the holder hears of it at its next renewal."""
        datagrams.announce(Announcements.cancel_payload(run_id))

    def wakeups(self) -> Wakeups | None:
        directory = datagrams.wake_directory()
        return None if directory is None else datagrams.DatagramWakeups(directory)

    def prune_deliveries(self, before: datetime, *, limit: int) -> int:
        if limit <= 0:
            return 0
        with transaction.atomic():
            ids = list(
                WebhookDelivery.objects.filter(created_at__lt=before)
                .exclude(status=DeliveryStatus.PENDING)
                .order_by("created_at", "id")
                .values_list("id", flat=True)[:limit]
            )
            deleted, _ = WebhookDelivery.objects.filter(id__in=ids).delete()
        return deleted

    def claim_deliveries(self, *, limit: int, lease_seconds: float) -> list[DeliveryClaim]:
        if limit <= 0:
            return []
        token = uuid.uuid4()
        # IMMEDIATE on SQLite: one claimant at a time. The UPDATE asks again whether each
        # row is due and unclaimed, so on other databases a row another transaction
        # claimed meanwhile is not taken twice (a conditional UPDATE, not a lock).
        with transaction.atomic():
            ids = list(
                WebhookDelivery.objects.due()
                .order_by("next_attempt_at")
                .values_list("id", flat=True)[:limit]
            )
            if not ids:
                return []
            WebhookDelivery.objects.filter(id__in=ids).due().update(
                claim=token, claimed_until=t.now_plus(lease_seconds)
            )
            rows = WebhookDelivery.objects.filter(claim=token).values_list(
                "id", "endpoint_id", "event", "run_id", "payload", "attempts"
            )
            return [
                DeliveryClaim(
                    id=id_,
                    claim=token,
                    endpoint_id=endpoint_id,
                    event=event,
                    run_id=run_id,
                    payload=payload,
                    attempts=attempts,
                )
                for id_, endpoint_id, event, run_id, payload, attempts in rows
            ]

    @contextmanager
    def exclusive(self, key: int) -> Iterator[bool]:
        """No lock to take: correctness never rests on this (see its callers), and
        SQLite serialises writers anyway, so everyone may go ahead."""
        yield True


#: Runs of a pipeline with neither a concurrency nor a rate limit.
UNLIMITED = Q(pipeline__max_concurrency__isnull=True, pipeline__rate_limit="")

#: A due run under a flow limit: its id, pipeline id, queue, priority and available_at.
Due = tuple[uuid.UUID, int, str, int, datetime]


@dataclass(frozen=True)
class DueBounds:
    """How many due runs to read per limited pipeline (by id) and per limited queue."""

    pipelines: dict[int, int]
    queues: dict[str, int]

    def __bool__(self) -> bool:
        return bool(self.pipelines or self.queues)

    def glance(self) -> DueBounds:
        """One of each: enough to tell whether any limit with room holds a due run."""
        return DueBounds(dict.fromkeys(self.pipelines, 1), dict.fromkeys(self.queues, 1))


def _lock_refused(exc: OperationalError) -> bool:
    """The error a row lock asked for without waiting raises when another holds it
    (SQLSTATE 55P03, lock_not_available)."""
    return getattr(exc.__cause__, "sqlstate", None) == "55P03"


def limited_queues() -> list[str]:
    return list(orbit_settings.queue_limits)


def _queue_limits(request: ClaimRequest) -> dict[str, int]:
    """The limits of the queues the claimant serves."""
    return {q: n for q, n in orbit_settings.queue_limits.items() if q in request.queues}


def unheld(runs: Sequence[NewRun], pipeline: PipelineCheck | None) -> bool:
    """Whether no flow limit holds these new runs, as their pipeline row was read: they
    are announced as plain, and a worker answers with its one-statement claim alone."""
    if pipeline is None or pipeline.limited:
        return False
    limited = orbit_settings.queue_limits
    return not any(new.queue in limited for new in runs)


def unlimited(runs: QuerySet[Run]) -> QuerySet[Run]:
    """The runs no flow limit holds: of a pipeline with neither limit, on a queue with none."""
    return runs.filter(UNLIMITED).exclude(queue__in=limited_queues())


_warned: set[str] = set()


def _warn_unconfigured(key: str, pipeline: str) -> None:
    """A named rate limit nobody configured holds its runs: say so once per process."""
    if key not in _warned:
        _warned.add(key)
        logger.error(
            "Pipeline %s names the rate limit %r, which ORBIT_RATE_LIMITS does not define: "
            "its runs wait until it does",
            pipeline,
            key,
            extra={"event": "rate_limit_unconfigured", "pipeline": pipeline, "limit": key},
        )


def _runnable_by(
    candidates: QuerySet[Run], definitions: Mapping[str, Sequence[str]]
) -> QuerySet[Run]:
    """Runs of the pipelines defined here whose every unfinished step is known here."""
    if not definitions:
        return candidates.none()
    unknown = reduce(
        or_,
        (
            Q(run__pipeline__definition=name) & ~Q(name__in=list(steps))
            for name, steps in definitions.items()
        ),
    )
    blocked = (
        Step.objects.filter(run_id=OuterRef("pk"))
        .exclude(status=StepStatus.SUCCEEDED)
        .filter(unknown)
    )
    return candidates.filter(pipeline__definition__in=list(definitions)).exclude(Exists(blocked))


def _locked_status(run_id: uuid.UUID, change: t.RunChange) -> str | None:
    """The run's status, locked until the transaction ends, if `change` may start from it."""
    return (
        Run.objects.select_for_update()
        .filter(id=run_id, status__in=change.before)
        .values_list("status", flat=True)
        .first()
    )


def _prunable_statuses(before: Mapping[str, datetime]) -> list[str]:
    unknown = set(before) - set(OUTCOMES)
    if unknown:
        raise ValueError(f"only finished runs are pruned, not {', '.join(sorted(unknown))} ones")
    return [status for status in OUTCOMES if before.get(status) is not None]


def prunable(before: Mapping[str, datetime]) -> QuerySet[Run]:
    """Finished runs of a status in `before` that finished before its moment."""
    return Run.objects.filter(
        reduce(
            or_,
            (
                Q(status=status, finished_at__lt=before[status])
                for status in _prunable_statuses(before)
            ),
        )
    )


#: The engine's own tables, which the PostgreSQL store's pruning statement deletes.
ENGINE_MODELS: tuple[type[models.Model], ...] = (Run, Step, StepAttempt)


@cache
def outside_relations() -> tuple[tuple[type[models.Model], Any], ...]:
    """Foreign keys of other apps' models to runs, steps or attempts (parent, relation)."""
    return tuple(
        (parent, relation)
        for parent in ENGINE_MODELS
        for relation in parent._meta.related_objects
        if relation.related_model not in ENGINE_MODELS
    )


def release_outside(run_ids: Sequence[uuid.UUID]) -> None:
    """Before the runs' rows go without Django's delete, do to other apps' rows pointing
    at them (or at their steps and attempts) what those foreign keys' on_delete says."""
    for parent, relation in outside_relations():
        lookup = {"pk__in": run_ids} if parent is Run else {"run_id__in": run_ids}
        related = relation.related_model._base_manager.filter(
            **{f"{relation.field.name}__in": parent._base_manager.filter(**lookup).values("pk")}
        )
        on_delete = relation.on_delete
        if on_delete is models.DO_NOTHING:
            continue
        if on_delete is models.SET_NULL:
            related.update(**{relation.field.name: None})
        elif on_delete is models.SET_DEFAULT:
            related.update(**{relation.field.name: relation.field.get_default()})
        elif on_delete is models.CASCADE:
            related.delete()
        elif related.exists():
            raise models.ProtectedError(
                f"{relation.related_model._meta.label} rows protect runs being pruned",
                set(related),
            )


def _write_attempt(run_id: uuid.UUID, attempt: AttemptRecord) -> None:
    _attempt_row(run_id, attempt).save(force_insert=True)


def _attempt_row(
    run_id: uuid.UUID, attempt: AttemptRecord, *, ended: datetime | None = None
) -> StepAttempt:
    """The attempt's row, not yet written. It ends `ended` (read from the database's
    clock), or, without it, when the row is inserted (the clock in the INSERT)."""
    row = StepAttempt(
        step_id=attempt.step_id,
        run_id=run_id,
        number=attempt.number,
        outcome=attempt.outcome,
        error=attempt.error,
        error_type=attempt.error_type,
        traceback=attempt.traceback,
        duration=attempt.duration,
        backoff_delay=attempt.backoff_delay,
        worker_id=attempt.worker_id,
    )
    if ended is not None:
        row.finished_at = ended
    if attempt.duration is not None:
        row.started_at = (
            t.now_plus(-attempt.duration)
            if ended is None
            else ended - timedelta(seconds=attempt.duration)
        )
    return row
