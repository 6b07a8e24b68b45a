"""The run store on PostgreSQL: the hot and contended operations as named statements.

Inserting runs, claiming, committing outcomes and taking interrupted runs back are one
statement each (runs/store/sql/runs.sql), so a one-step run costs the worker two round
trips: the claim, which starts its step, and the batch commit of its outcome. The rest is
the portable store's ORM, which serves PostgreSQL equally well.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import cache, cached_property
from operator import attrgetter
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections, models, transaction

from orbit.core.exceptions import StalePipeline
from orbit.core.models import AuditEvent
from pipelines.limits import LimitedPipeline
from runs.models import Run, RunRollup, Step, StepAttempt, StepLog
from runs.store import prepared, rows
from runs.store import transitions as t
from runs.store.listen import CHANNEL, PLAIN_CHANNEL, Listener
from runs.store.portable import (
    INTERRUPTED_ERROR,
    INTERRUPTED_ERROR_TYPE,
    QUARANTINE_ERROR,
    Due,
    DueBounds,
    PortableStore,
    _prunable_statuses,
    _queue_limits,
    json_value,
    limited_queues,
    outside_relations,
    release_outside,
    unheld,
)
from runs.store.protocol import Features, Wakeups
from runs.store.queries import sql
from runs.store.records import (
    Announcements,
    Claim,
    ClaimRequest,
    Claims,
    DeliveryClaim,
    InsertedRun,
    Interrupted,
    LimitsState,
    LogBatch,
    NewRun,
    Outcome,
    PipelineCheck,
    Pruned,
    RunEvent,
    StepRow,
    one_per_run,
)
from runs.store.rollups import GoneAttempt, GoneRun, HourFigures, summarise
from runs.store.transitions import Set

logger = logging.getLogger(__name__)

#: The advisory lock that serialises claimers of runs under flow limits (any number,
#: distinct from the keys of `exclusive` duties).
LIMITS_LOCK = 0x0F1C_0001

#: How long a new LISTEN connection waits for its own test announcement.
PROBE_SECONDS = 2.0


class PostgresStore(PortableStore):
    """`RunStore` on PostgreSQL."""

    name = "postgresql"
    features = Features(percentiles=True, text_timestamps=False, json_containment=True)

    @cached_property
    def _sequences(self) -> dict[str, str]:
        """The identity sequences numbering steps, attempts and audit events."""
        found = {}
        with connection.cursor() as cursor:
            for key, model in (
                ("step", Step),
                ("attempt", StepAttempt),
                ("steplog", StepLog),
                ("audit", AuditEvent),
                ("rollup", RunRollup),
            ):
                cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [model._meta.db_table])
                found[key] = str(cursor.fetchone()[0])
        return found

    # -- creating ---------------------------------------------------------------------
    def insert_runs(
        self, runs: Sequence[NewRun], *, pipeline: PipelineCheck | None = None
    ) -> list[InsertedRun]:
        if not runs:
            return []
        if len(runs) == 1:
            return [self._insert_run(runs[0], pipeline)]
        shared, own = _shared_and_own(runs)
        params = {
            "runs": _ENCODE(own),
            "shared": _ENCODE(shared),
            "pipeline": None if pipeline is None else _ENCODE(_check(pipeline)),
            "run_defaults": rows.defaults_json(Run),
            "step_defaults": rows.defaults_json(Step),
            "audit_defaults": rows.defaults_json(AuditEvent),
            "step_sequence": self._sequences["step"],
            "audit_sequence": self._sequences["audit"],
            "channel": PLAIN_CHANNEL if unheld(runs, pipeline) else CHANNEL,
        }
        found = self._insert("insert_runs", params, pipeline)
        moment = _moments()
        return [self._answer(row, new, moment) for row, new in zip(found, runs, strict=True)]

    def _insert_run(self, new: NewRun, pipeline: PipelineCheck | None) -> InsertedRun:
        """One run through `orbit_insert_run`: what `insert_runs` does for a batch of one,
        with each value sent typed (functions.sql `create_insert_run` says why)."""
        audit = new.audit
        params = {
            "id": new.id,
            "pipeline_id": new.pipeline_id,
            "steps": list(new.steps),
            "current_step": new.current_step,
            "metadata": _ENCODE(new.metadata),
            "priority": new.priority,
            "queue": new.queue,
            "run_after": new.run_after,
            "delay": new.delay,
            "idempotency_key": new.idempotency_key,
            "unique_key": new.unique_key,
            "scheduled_for": new.scheduled_for,
            "rerun_of": new.rerun_of,
            "trace_context": _ENCODE(new.trace_context),
            **(_NO_EVENT if audit is None else _event_columns(audit)),
            "pipeline": None if pipeline is None else _ENCODE(_check(pipeline)),
            "channel": PLAIN_CHANNEL if unheld((new,), pipeline) else CHANNEL,
        }
        [row] = self._insert("insert_run", params, pipeline)
        return self._answer(row, new, _moments())

    def _insert(
        self, name: str, params: dict[str, Any], pipeline: PipelineCheck | None
    ) -> list[tuple[Any, ...]]:
        """Run an insert statement, as a savepoint inside an open transaction (a failure
        undoes only these runs); StalePipeline when it wrote nothing because the pipeline
        row is not as the caller read it."""
        if connection.in_atomic_block:
            with transaction.atomic():
                found = self._execute(name, params)
        else:
            found = self._execute(name, params)
        if not found:
            raise StalePipeline(f"pipeline {pipeline!r} changed since it was read")
        return found

    def _answer(
        self, row: tuple[Any, ...], new: NewRun, moment: Callable[[int], datetime]
    ) -> InsertedRun:
        """A run's row as the insert functions answer it: (created, held_by, created_us,
        available_us)."""
        created, held, made, due = row
        if created:
            return InsertedRun(
                id=new.id, created=True, created_at=moment(made), available_at=moment(due)
            )
        return InsertedRun(id=held, created=False) if held is not None else self._find_holder(new)

    def _find_holder(self, new: NewRun) -> InsertedRun:
        """The conflicting run committed while the statement ran, so it could not see it."""
        holder = self._holder(new)
        if holder is None:
            raise RuntimeError(f"run {new.id} was neither inserted nor held by another run")
        return InsertedRun(id=holder, created=False)

    # -- claiming ---------------------------------------------------------------------
    def _claim_unlimited(self, request: ClaimRequest) -> Claims:
        if request.limit <= 0:
            return Claims()
        if request.older_than is not None:
            # The aging probe: a few times a minute per worker, never on the hot path, so
            # the portable claim (the reference the named statements are held to) serves.
            return super()._claim_unlimited(request)
        found = self._execute(
            "claim",
            {
                "queues": list(request.queues),
                "limit": request.limit,
                "worker": request.worker_id,
                "lease": request.lease_seconds,
                "definitions": _definitions(request),
                "limited_queues": limited_queues(),
            },
        )
        return Claims(
            Claim(
                run_id=run_id,
                fence=fence,
                worker_id=request.worker_id,
                pipeline=pipeline,
                definition=definition,
                metadata=json_value(metadata) or {},
                steps=tuple(StepRow(*step) for step in (json_value(steps) or [])),
                started=started,
                trace_context=json_value(trace_context) or {},
            )
            for run_id, fence, pipeline, definition, metadata, started, steps, trace_context in found
        )

    def _read_limits(self, request: ClaimRequest, *, lock: bool = True) -> LimitsState | None:
        """The limits' lock (with `lock`), then what the claim decides on in one
        statement (the portable store's four, and no row locks: the advisory lock
        serialises every limited claimer, queue limits included)."""
        if lock and not self._lock_limits(wait=request.wait_for_limits):
            return None
        ((now, pipelines, by_queue, windows),) = self._execute(
            "limits_state",
            {
                "definitions": None if request.definitions is None else list(request.definitions),
                "queues": list(_queue_limits(request)),
            },
        )
        return LimitsState(
            now=float(now),
            pipelines=tuple(LimitedPipeline(*row) for row in json_value(pipelines)),
            running_by_queue=json_value(by_queue),
            windows=json_value(windows),
        )

    def _due_under_limits(
        self, request: ClaimRequest, bounds: DueBounds, *, lock: bool = False
    ) -> list[Due]:
        """One statement for every limit, each read in claim order up to its bound (the
        portable store's queries anti-join the step-name test over a pipeline's every
        pending run, then sort). Never row-locked: see `due_under_limits` in runs.sql."""
        if not bounds:
            return []
        return self._execute(  # rows of (id, pipeline id, queue, priority, available_at)
            "due_under_limits",
            {
                "pipelines": list(bounds.pipelines),
                "pipeline_bounds": list(bounds.pipelines.values()),
                "limited_queues": list(bounds.queues),
                "queue_bounds": list(bounds.queues.values()),
                "queues": list(request.queues),
                "definitions": _definitions(request),
            },
        )

    def _lock_limits(self, *, wait: bool) -> bool:
        """Take the limits' lock, held until the transaction ends (or, not waiting, say
        that another claimer holds it). Its own statement: the statements after it read
        a snapshot taken once it is held, so they see every claim the previous holder
        committed (one statement taking the lock would count with the snapshot it
        started with)."""
        if wait:
            self._execute("lock_limits", {"key": LIMITS_LOCK})
            return True
        return bool(self._execute("try_exclusive", {"key": LIMITS_LOCK})[0][0])

    # -- committing -------------------------------------------------------------------
    def commit(self, outcomes: Sequence[Outcome]) -> set[uuid.UUID]:
        one_per_run(outcomes)
        if not outcomes:
            return set()
        # One JSON document, not an array per column: json.dumps is C, where psycopg
        # quotes each element of 31 arrays in Python on every batch (the worker's hot path).
        params = {
            "outcomes": json.dumps([_encode(outcome) for outcome in outcomes], default=str),
            "attempt_defaults": rows.defaults_json(StepAttempt),
            "attempt_sequence": self._sequences["attempt"],
        }
        return {row[0] for row in self._execute("commit", params)}

    def append_logs(self, batches: Sequence[LogBatch]) -> None:
        lines = [
            {
                "run_id": str(batch.held.run_id),
                "fence": batch.held.fence,
                "step_id": batch.step_id,
                "attempt": batch.attempt,
                "sequence": line.sequence,
                "time": line.time.isoformat(),
                "level": line.level,
                "message": line.message,
                "fields": dict(line.fields),
            }
            for batch in batches
            for line in batch.lines
        ]
        if not lines:
            return
        self._execute(
            "append_logs",
            {
                "lines": json.dumps(lines, default=str),
                "defaults": rows.defaults_json(StepLog),
                "sequence": self._sequences["steplog"],
            },
        )

    # -- recovery ---------------------------------------------------------------------
    def take_interrupted(
        self, *, max_interruptions: int, run_id: uuid.UUID | None = None
    ) -> list[Interrupted]:
        found = self._execute(
            "take_interrupted",
            {
                "max_interruptions": max_interruptions,
                "run_id": run_id,
                "quarantine_error": QUARANTINE_ERROR,
                "interrupted_error": INTERRUPTED_ERROR,
                "interrupted_error_type": INTERRUPTED_ERROR_TYPE,
                "attempt_defaults": rows.defaults_json(StepAttempt),
                "attempt_sequence": self._sequences["attempt"],
            },
        )
        return [
            Interrupted(
                run_id=rid,
                step=step,
                worker_id=worker_id,
                interruptions=interruptions,
                quarantined=quarantined,
                error=error,
            )
            for rid, step, worker_id, interruptions, quarantined, error in found
        ]

    # -- retention --------------------------------------------------------------------
    def prune_runs(self, before: Mapping[str, datetime], *, limit: int) -> Pruned:
        statuses = _prunable_statuses(before)
        if limit <= 0 or not statuses:
            return Pruned()
        with transaction.atomic():
            self._execute("lazy_commit", {})
            ids = [
                row[0]
                for row in self._execute(
                    "prunable_runs",
                    {
                        "latest": max(before[s] for s in statuses),
                        "succeeded": before.get("succeeded"),
                        "failed": before.get("failed"),
                        "cancelled": before.get("cancelled"),
                        "limit": limit,
                    },
                )
            ]
            if not ids:
                return Pruned()
            if outside_relations():
                release_outside(ids)
            gone = self._execute("prune_runs", {"ids": ids})
            runs = [GoneRun(p, s, st, fi) for kind, p, s, st, fi, _, _ in gone if kind == "run"]
            attempts = [
                GoneAttempt(p, outcome, number, duration, fi)
                for kind, p, outcome, _, fi, number, duration in gone
                if kind == "attempt"
            ]
            self._add_rollups(summarise(runs, attempts))
        return Pruned(runs=dict(Counter(run.status for run in runs)), attempts=len(attempts))

    def _add_rollups(self, figures: Sequence[HourFigures]) -> None:
        if figures:
            self._execute(
                "add_rollups",
                {
                    "rollups": json.dumps([hour.values() for hour in figures]),
                    "rollup_defaults": rows.defaults_json(RunRollup),
                    "rollup_sequence": self._sequences["rollup"],
                },
            )

    def prune_audit(self, before: datetime, *, limit: int) -> int:
        if limit <= 0:
            return 0
        return int(self._execute("prune_audit", {"before": before, "limit": limit})[0][0])

    # -- reading ----------------------------------------------------------------------
    def estimated_rows(self, model: type[models.Model]) -> int | None:
        found = self._execute("estimated_rows", {"table": model._meta.db_table})
        return int(found[0][0]) if found and found[0][0] is not None else None

    # -- announcing and coordinating --------------------------------------------------
    def announce(self, delay: float = 0.0, *, plain: bool = False) -> None:
        self._execute(
            "announce",
            {
                "channel": PLAIN_CHANNEL if plain else CHANNEL,
                "payload": Announcements.delay_payload(delay),
            },
        )

    def announce_cancel(self, run_id: uuid.UUID) -> None:
        self._execute(
            "announce", {"channel": CHANNEL, "payload": Announcements.cancel_payload(run_id)}
        )

    def wakeups(self) -> Wakeups | None:
        listener = Listener()
        listener.connect()
        # An announcement goes through Django's connection; it must reach the listener.
        if listener.probe(
            lambda channel: self._execute("announce", {"channel": channel, "payload": "probe"}),
            timeout=PROBE_SECONDS,
        ):
            return listener
        listener.close()
        logger.warning(
            "Announcements sent through the database connection do not reach the LISTEN "
            "connection (is DATABASE_URL a PgBouncer in transaction pooling? Set "
            "ORBIT_LISTEN_DATABASE_URL to PostgreSQL itself); polling instead "
            "(ORBIT_POLL_INTERVAL)",
            extra={"event": "listen_unavailable"},
        )
        return None

    def claim_deliveries(self, *, limit: int, lease_seconds: float) -> list[DeliveryClaim]:
        if limit <= 0:
            return []
        token = uuid.uuid4()
        found = self._execute(
            "claim_deliveries",
            {"limit": limit, "claim": token, "lease": lease_seconds},
            filename="webhooks.sql",
        )
        return [
            DeliveryClaim(
                id=id_,
                claim=token,
                endpoint_id=endpoint_id,
                event=event,
                run_id=run_id,
                payload=json_value(payload) or {},
                attempts=attempts,
            )
            for id_, endpoint_id, event, run_id, payload, attempts in found
        ]

    @contextmanager
    def exclusive(self, key: int) -> Iterator[bool]:
        with transaction.atomic():
            found = self._execute("try_exclusive", {"key": key})
            yield bool(found[0][0])

    # ---------------------------------------------------------------------------------
    def _execute(
        self, name: str, params: dict[str, Any], filename: str = "runs.sql"
    ) -> list[tuple[Any, ...]]:
        return prepared.execute(connections[DEFAULT_DB_ALIAS], sql(name, filename), params)


#: NewRun's fields that the runs of a batch usually share, as `insert_runs` sends them:
#: (attribute, key, JSON form). Keys starting with "_" are no column: the function reads
#: them (functions.sql `create_insert_runs`). The metadata and the keys, usually each
#: run's own, are compared one by one in `_shared_and_own`.
_SHARED_FIELDS: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (
    ("pipeline_id", "pipeline_id", lambda v: v),
    ("priority", "priority", lambda v: v),
    ("queue", "queue", lambda v: v),
    ("scheduled_for", "scheduled_for", lambda v: _iso(v)),
    ("current_step", "current_step", lambda v: v),
    ("rerun_of", "rerun_of_id", lambda v: None if v is None else str(v)),
    ("run_after", "_run_after", lambda v: _iso(v)),
    ("delay", "_delay", lambda v: v),
    ("steps", "_steps", list),
    ("trace_context", "trace_context", dict),
)
_shared_values = attrgetter(*(name for name, _, _ in _SHARED_FIELDS))
_own_values = attrgetter("id", "metadata", "idempotency_key", "unique_key", "audit")


def _shared_and_own(runs: Sequence[NewRun]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The first run's values, which the others share unless they say otherwise, and
    each run's id with what differs: a batch laid out by runs/enqueueing.py shares all
    but its ids, metadata and keys, so each run's part is a few dozen bytes, not a row.
    The audit event's target_id is the run's id, set by the function. This runs once
    per run queued: the comparisons are written out."""
    first = runs[0]
    _, metadata, key, unique, first_audit = _own_values(first)
    shared = {"metadata": metadata, "idempotency_key": key, "unique_key": unique}
    shared.update((k, encode(getattr(first, name))) for name, k, encode in _SHARED_FIELDS)
    event = None if first_audit is None else _event(first_audit)
    shared["_audit"] = event
    if isinstance(first_audit, RunEvent):  # its runs' names: the function adds each id
        shared["_label_prefix"] = first_audit.label_prefix
    common = _shared_values(first)
    own: list[dict[str, Any]] = []
    for new in runs:
        run_id, its_metadata, its_key, its_unique, audit = _own_values(new)
        mine: dict[str, Any] = {"id": str(run_id)}
        if its_metadata is not metadata and its_metadata != metadata:
            mine["metadata"] = its_metadata
        if its_key != key:
            mine["idempotency_key"] = its_key
        if its_unique != unique:
            mine["unique_key"] = its_unique
        values = _shared_values(new)
        if values != common:  # one comparison, item by item (identical objects at once)
            for (_, k, encode), value, first_value in zip(
                _SHARED_FIELDS, values, common, strict=True
            ):
                if value is not first_value and value != first_value:
                    mine[k] = encode(value)
        if audit is not first_audit:
            if (
                isinstance(audit, RunEvent)
                and isinstance(first_audit, RunEvent)
                and audit.shared is first_audit.shared
            ):  # a batch's usual case: only the target differs, and the function names it
                if audit.label_prefix != first_audit.label_prefix:
                    mine["_audit"] = {"target_repr": audit.target_repr}
            elif audit is None or event is None:
                mine["_audit"] = None if audit is None else _event(audit)
            else:
                differs = {
                    k: v
                    for k, v in audit.items()
                    if k != "target_id" and event.get(k, _ABSENT) != v
                }
                # a column the shared event sets and this one does not: its default
                differs.update((k, _audit_defaults()[k]) for k in event.keys() - audit.keys())
                if differs:
                    mine["_audit"] = differs
        own.append(mine)
    return shared, own


_ABSENT = object()

#: The audit columns `insert_run` takes, in the order of its parameters (target_id aside:
#: the function sets the run's).
_EVENT_COLUMNS = (
    "action",
    "source",
    "user_id",
    "actor",
    "ip_address",
    "target_type",
    "target_repr",
    "changes",
)
_NO_EVENT: dict[str, Any] = dict.fromkeys(_EVENT_COLUMNS)
#: json.dumps(value, default=str) for both insert statements' values, one encoder kept.
_ENCODE = json.JSONEncoder(default=str).encode


def _event_columns(audit: Mapping[str, Any]) -> dict[str, Any]:
    """An event's columns as `insert_run` takes them: a column the event lacks is its
    model's default, as the batch function's defaults give it."""
    values = {**_audit_defaults(), **audit}
    columns = {column: values[column] for column in _EVENT_COLUMNS}
    columns["changes"] = _ENCODE(columns["changes"])
    return columns


def _definitions(request: ClaimRequest) -> str | None:
    """The claimant's step names by definition, as the claim statements take them."""
    if request.definitions is None:
        return None
    return json.dumps({name: list(steps) for name, steps in request.definitions.items()})


@cache
def _audit_defaults() -> dict[str, Any]:
    """The event columns' defaults, for a key one event lacks and the shared one has."""
    return dict(json.loads(rows.defaults_json(AuditEvent)))


def _event(audit: Mapping[str, Any]) -> dict[str, Any]:
    """An event's columns as sent: its target_id is the run's, set by the function."""
    return {k: v for k, v in audit.items() if k != "target_id"}


def _moments() -> Callable[[int], datetime]:
    """Microseconds since the epoch, as `insert_runs` returns its stamps, as the aware
    datetimes Django reads: one object per distinct value (a batch shares its stamps)."""
    zone = connection.timezone
    seen: dict[int, datetime] = {}

    def moment(micros: int) -> datetime:
        found = seen.get(micros)
        if found is None:
            found = seen[micros] = (_EPOCH + timedelta(microseconds=micros)).astimezone(zone)
        return found

    return moment


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _check(pipeline: PipelineCheck) -> dict[str, Any]:
    return {
        "id": pipeline.id,
        "name": pipeline.name,
        "definition": pipeline.definition,
        "default_metadata": dict(pipeline.default_metadata),
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _encode(outcome: Outcome) -> dict[str, Any]:
    """One outcome as a row of the commit statement's input: a NULL keeps the column as it is.

    The encoding follows the transitions (runs/store/transitions.py) column by column;
    the statement decodes it back. tests/runs/store/test_transitions.py checks that every
    transition a commit may carry lands the same way in both stores.
    """
    fixed, read = _layout(outcome.run, outcome.step)
    attempt = outcome.attempt
    row = {
        **fixed,
        "run_id": str(outcome.held.run_id),
        "fence": outcome.held.fence,
        "step_id": outcome.step_id if outcome.step is not None else None,
        "number": attempt.number if attempt else None,
        "outcome": str(attempt.outcome) if attempt else None,
        "duration": attempt.duration if attempt else None,
        "attempt_error": attempt.error if attempt else None,
        "attempt_error_type": attempt.error_type if attempt else None,
        "attempt_traceback": attempt.traceback if attempt else None,
        "backoff": attempt.backoff_delay if attempt else None,
        "worker_id": attempt.worker_id if attempt else None,
        "start_step_id": outcome.start_step_id,
    }
    for key, (column, of_step, convert) in read.items():
        values = outcome.step_values if of_step else outcome.run_values
        row[key] = convert(values.get(column, _MISSING))
    return row


#: How a column passed with a change is read from the outcome's values: (the values'
#: key, whether from the step's values, the conversion).
_Read = tuple[str, bool, Any]
#: What a conversion gets for a value the outcome lacks: the ones a transition needs raise.
_MISSING: Any = object()


@cache
def _layout(run: t.RunChange, step: t.StepChange | None) -> tuple[dict[str, Any], dict[str, _Read]]:
    """What an outcome of these two transitions writes, decided once per pair (the worker
    commits thousands of outcomes a second, of a handful of pairs): the columns the
    transitions fix, and where to read the values of the others. Refuses a transition
    a commit cannot carry."""
    if run not in t.COMMIT_CHANGES:
        raise ValueError(f"{run.name} is not something a commit does")
    if step is not None and not set(step.columns) <= _STEP_COLUMNS:
        raise ValueError(f"a commit cannot carry the step transition {step.name}")
    fixed: dict[str, Any] = {
        "status": str(run.status),
        "keep_worker": _keep_or_clear(run, "worker_id"),
        "finish": _flag(run, "finished_at", Set.NOW),
        "step_status": str(step.status) if step is not None else None,
        "set_result": step is not None and step.how("result") is Set.VALUE,
        "step_counted": step is not None and _flag(step, "attempts", Set.INCREMENT),
        "step_finished": step is not None and _flag(step, "finished_at", Set.NOW),
        "step_clear_start": step is not None and not _keep_or_clear(step, "started_at"),
    }
    read: dict[str, _Read] = {}
    columns: list[tuple[str, Any]] = [
        ("lease", _seconds_or_clear(run, "lease_expires_at")),
        (
            "delay",
            ("available_at", False, float) if run.how("available_at") is Set.NOW_PLUS else None,
        ),
        ("error", _text(run, "error", of_step=False)),
        ("run_time", _amount(run, "running_time")),
        ("current_step", _text(run, "current_step", of_step=False)),
        ("result", _result(step)),
        ("step_duration", _step_value(step, "duration")),
        ("step_failures", _step_value(step, "failures")),
        ("step_error", _step_text(step, "error")),
        ("step_error_type", _step_text(step, "error_type")),
        ("step_traceback", _step_text(step, "traceback")),
    ]
    for key, how in columns:
        if isinstance(how, tuple):
            read[key] = how
        else:
            fixed[key] = how
    return fixed, read


#: The step columns a commit can set (and how: see `_encode`).
_STEP_COLUMNS = frozenset(
    {
        "result",
        "attempts",
        "finished_at",
        "duration",
        "failures",
        "error",
        "error_type",
        "traceback",
        "started_at",
    }
)


def _keep_or_clear(change: t.Change, column: str) -> bool:
    how = change.how(column)
    if how not in (Set.KEEP, Set.CLEAR):
        raise ValueError(f"a commit cannot set {column} {how.value}")
    return how is Set.KEEP


def _seconds_or_clear(change: t.Change, column: str) -> _Read | None:
    how = change.how(column)
    if how is Set.NOW_PLUS:
        return (column, False, _float)
    if how is Set.CLEAR:
        return None
    raise ValueError(f"a commit cannot set {column} {how.value}")


def _text(change: t.Change, column: str, *, of_step: bool) -> _Read | str | None:
    how = change.how(column)
    if how is Set.VALUE:
        return (column, of_step, _str)
    if how is Set.CLEAR:
        return ""
    if how is Set.KEEP:
        return None
    raise ValueError(f"a commit cannot set {column} {how.value}")


def _amount(change: t.Change, column: str) -> _Read | float:
    how = change.how(column)
    if how not in (Set.ADD, Set.KEEP):
        raise ValueError(f"a commit cannot set {column} {how.value}")
    return (column, False, _seconds) if how is Set.ADD else 0.0


def _seconds(value: Any) -> float:
    """An amount added: none passed adds nothing."""
    return 0.0 if value is _MISSING else float(value or 0.0)


def _required(value: Any) -> Any:
    if value is _MISSING:
        raise KeyError("a value the transition needs is missing")
    return value


def _float(value: Any) -> float:
    return float(_required(value))


def _str(value: Any) -> str:
    return str(_required(value))


def _flag(change: t.Change, column: str, how: Set) -> bool:
    """Whether `change` sets `column` the one way a commit can (else it keeps it)."""
    found = change.how(column)
    if found not in (how, Set.KEEP):
        raise ValueError(f"a commit cannot set {column} {found.value}")
    return found is how


def _step_text(step: t.StepChange | None, column: str) -> _Read | str | None:
    return None if step is None else _text(step, column, of_step=True)


def _step_value(step: t.StepChange | None, column: str) -> _Read | None:
    if step is None:
        return None
    how = step.how(column)
    if how is Set.VALUE:
        return (column, True, _required)
    if how is Set.KEEP:
        return None
    raise ValueError(f"a commit cannot set the step's {column} {how.value}")


def _result(step: t.StepChange | None) -> _Read | None:
    """The result as JSON text; JSON null is stored as SQL NULL, as the ORM does."""
    if step is None or step.how("result") is not Set.VALUE:
        return None
    return ("result_json", True, _json_text)


def _json_text(encoded: Any) -> str | None:
    return None if encoded is _MISSING or encoded in (None, "null") else str(encoded)
