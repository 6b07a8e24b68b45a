"""Queueing runs: the one path every entry point takes (code, the API, the CLI, the
dashboard, schedules, reruns, Django tasks).

`enqueue` and `enqueue_many` validate every option before anything is written, lay each
run out (its steps, the planner's first step, its audit event) and insert them all with
one `store().insert_runs` call: one statement on PostgreSQL, whatever their number.
Options, and what a worker does with them, are in docs/FLOW-CONTROL.md.
"""

from __future__ import annotations

import gc
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from django.db import IntegrityError, connection
from django.db.models import Field, signals
from django.db.models.base import ModelState
from django.utils import timezone

from orbit.core import tracing
from orbit.core.audit import Actor, changed_keys, event_values
from orbit.core.conf import AGE_UNITS
from orbit.core.exceptions import (
    IdempotencyConflict,
    OrbitError,
    PipelineArchived,
    PipelineDisabled,
    StalePipeline,
    UnknownPipeline,
)
from orbit.core.ids import uuid7s
from orbit.core.limits import metadata_limits, validate_metadata
from orbit.core.models import AuditAction
from orbit.core.redaction import redact
from orbit.core.text import UNSTORABLE, storable
from pipelines import lookup
from pipelines.definition import DEFAULT_QUEUE, QUEUE_RULE, is_valid_queue
from pipelines.models import Pipeline
from runs import planner
from runs.models import Run
from runs.store import store
from runs.store.records import InsertedRun, NewRun, PipelineCheck, RunEvent

logger = logging.getLogger(__name__)

PRIORITY_RANGE = (-1_000_000, 1_000_000)
#: How far in the past `run_after` may be and still mean "now": clocks of the caller and
#: the database differ a little, and a request takes a moment to arrive.
PAST_TOLERANCE = timedelta(seconds=5)
#: How far ahead a run may be set to start (`delay` or `run_after`): ten years outlasts any
#: real plan, so a start further out is a slip (a unit, a digit), and every start within it
#: is a moment Python, SQLite and PostgreSQL all hold (a delay of 1e13 s or a run_after of
#: 9999-12-31T23:59:59-05:00 was not; they ended in an overflow, a 500 or a traceback).
MAX_AHEAD = timedelta(days=3650)
#: The longest idempotency or unique key (the columns' length).
KEY_MAX_LENGTH = 255
#: The most runs one `enqueue_many` call takes (one statement on PostgreSQL; the API's bulk
#: form takes fewer, orbit.api.schemas.runs.BULK_MAX).
MAX_BATCH = 10_000


class InvalidQueue(OrbitError):
    """The queue name breaks the naming rule."""


@dataclass(frozen=True)
class When:
    """When a run becomes claimable: at `run_after`, or `delay` seconds after the
    database's clock at insert time (so the caller's clock does not matter)."""

    run_after: datetime | None = None
    delay: float = 0.0


def when(
    run_after: datetime | None = None,
    delay: timedelta | float | None = None,
    *,
    now: datetime,
) -> When:
    """The start time asked for, checked: one of the two, no negative delay, no moment
    already past (beyond PAST_TOLERANCE), none further ahead than MAX_AHEAD. Pure: `now`
    is the caller's clock."""
    if run_after is not None and delay is not None:
        raise OrbitError("give run_after or delay, not both")
    if delay is not None:
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise OrbitError(f"delay must be a number of seconds or a timedelta, not {delay!r}")
        if not seconds >= 0:  # also refuses NaN
            raise OrbitError(f"delay must not be negative, not {seconds:g} s")
        _refuse_beyond_reach(seconds, "delay")
        return When(delay=float(seconds))
    if run_after is None:
        return When()
    if not isinstance(run_after, datetime):
        raise OrbitError(f"run_after must be a datetime, not {run_after!r}")
    if timezone.is_naive(run_after):
        run_after = timezone.make_aware(run_after)
    # A difference, not a conversion: 9999-12-31T23:59:59-05:00 has no UTC datetime, yet
    # subtracting it from now is a plain timedelta (converting it overflowed downstream).
    ahead = run_after - now
    if ahead < -PAST_TOLERANCE:
        raise OrbitError(f"run_after {run_after.isoformat()} is in the past; omit it to run now")
    _refuse_beyond_reach(ahead.total_seconds(), f"run_after {run_after.isoformat()}")
    return When(run_after=run_after)


def _refuse_beyond_reach(seconds: float, what: str) -> None:
    """OrbitError when a start `seconds` from now is further ahead than MAX_AHEAD: the one
    check behind `when` and `parse_delay`, so the API, the CLI and the dashboard agree."""
    if seconds > MAX_AHEAD.total_seconds():  # also refuses infinity
        raise OrbitError(
            f"{what} is too far ahead: a run starts at most {MAX_AHEAD.days} days from now"
        )


_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.I)


def parse_delay(text: str) -> timedelta:
    """`30`, `30s`, `5m`, `2h`, `1d` as a timedelta: how the CLI and the dashboard read
    a delay. One past MAX_AHEAD is refused before it becomes a timedelta, which it may
    not fit."""
    match = _DELAY.match(text)
    if not match:
        raise OrbitError(f"delay {text!r}: write seconds or a duration such as 30s, 5m, 2h, 1d")
    seconds = float(match[1]) * AGE_UNITS[(match[2] or "s").lower()]
    _refuse_beyond_reach(seconds, f"delay {text!r}")
    return timedelta(seconds=seconds)


def validate_queue(queue: object) -> str:
    """`queue`, when it follows the naming rule (the pipelines' own, at most 64 long)."""
    if not is_valid_queue(queue):
        raise InvalidQueue(QUEUE_RULE.format(queue=queue))
    assert isinstance(queue, str)
    return queue


def validate_priority(priority: object) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise OrbitError(f"priority must be an integer, not {priority!r}")
    if not PRIORITY_RANGE[0] <= priority <= PRIORITY_RANGE[1]:
        raise OrbitError(f"priority must be between {PRIORITY_RANGE[0]} and {PRIORITY_RANGE[1]}")
    return priority


def get_pipeline(name: str) -> Pipeline:
    """The pipeline row called `name`, as last read by this process (pipelines/lookup.py:
    the insert checks the copy is current); rows missing for code definitions are created
    first."""
    row = lookup.cached(name)
    if row is not None:
        return row
    try:
        return lookup.keep(Pipeline.objects.get(name=name))
    except Pipeline.DoesNotExist:
        from pipelines.sync import sync_pipelines

        sync_pipelines()
    try:
        return lookup.keep(Pipeline.objects.get(name=name))
    except Pipeline.DoesNotExist:
        known = ", ".join(Pipeline.objects.values_list("name", flat=True)) or "none"
        raise UnknownPipeline(f"Unknown pipeline {name!r}. Known pipelines: {known}") from None


def run_label(run: Run) -> str:
    """How the audit trail names a run: its pipeline and its id."""
    return _label_prefix(run.pipeline.name) + str(run.id)


def _label_prefix(pipeline: str) -> str:
    """What every run's name begins with, the run's id following it: a batch's events
    name their runs from it (`RunEvent`), and the PostgreSQL store's function writes it
    with each id."""
    return f"{pipeline} run "


def same_request(
    run: Run,
    pipeline: Pipeline,
    metadata: dict[str, Any] | None,
    priority: int,
    *,
    masked: bool = False,
) -> bool:
    """Whether `run` is what a request with this input would have created: the rule for
    a repeated idempotency key, from every entry point (the API shows its scoped key).
    `masked`: secret values (orbit.core.redaction) are compared as masked, so a caller
    who reads a pipeline's secret defaults masked cannot test guesses of them by
    repeating a key with a guessed value and seeing whether it is refused."""
    wanted = pipeline.merged_metadata(validate_metadata(metadata))
    if masked:
        return bool(redact(run.metadata) == redact(wanted) and run.priority == priority)
    return bool(run.metadata == wanted and run.priority == priority)


def enqueue(
    name: str | Pipeline,
    metadata: dict[str, Any] | None = None,
    *,
    queue: str | None = None,
    priority: int = 0,
    run_after: datetime | None = None,
    delay: timedelta | float | None = None,
    idempotency_key: str | None = None,
    unique_key: str | None = None,
    actor: Actor | None = None,
) -> Run:
    """Queue a run of the pipeline `name` on `queue` (default: the definition's queue,
    else "default"); no worker claims it before `run_after`, or `delay` from now.

    With an `idempotency_key`, a repeated call returns the run the first one created, and
    a repeat with other metadata or priority raises IdempotencyConflict. With a
    `unique_key`, while a pending or running run of this pipeline holds that key, the call
    returns that run instead of queueing another (whatever its input).
    """
    [run] = enqueue_many(
        name,
        [metadata],
        queue=queue,
        priority=priority,
        run_after=run_after,
        delay=delay,
        idempotency_keys=[idempotency_key],
        unique_keys=[unique_key],
        actor=actor,
    )
    return run


def enqueue_many(
    name: str | Pipeline,
    metadatas: Sequence[dict[str, Any] | None],
    *,
    queue: str | None = None,
    priority: int = 0,
    run_after: datetime | None = None,
    delay: timedelta | float | None = None,
    idempotency_keys: Sequence[str | None] | None = None,
    unique_keys: Sequence[str | None] | None = None,
    actor: Actor | None = None,
) -> list[Run]:
    """Queue one run per metadata, with the same options, in one insert; all or none are
    validated before anything is written. Returns the runs in the order given."""
    if len(metadatas) > MAX_BATCH:
        raise OrbitError(f"at most {MAX_BATCH} runs at once, not {len(metadatas)}")
    keys = _per_run(idempotency_keys, len(metadatas), "idempotency key")
    uniques = _per_run(unique_keys, len(metadatas), "unique key")
    return run_create_many(
        name,
        metadatas,
        priority=priority,
        queue=queue,
        idempotency_keys=keys,
        unique_keys=uniques,
        start=when(run_after, delay, now=datetime.now(UTC)),
        actor=actor,
    )


def _per_run(keys: Sequence[str | None] | None, count: int, what: str) -> list[str | None]:
    """One key (or None) per run, each a non-empty string of at most 255 characters and
    no two alike: a batch that names one key twice would queue one run and answer the
    other with it, so it is refused whole, naming both places."""
    given: list[str | None] = list(keys) if keys is not None else [None] * count
    if len(given) != count:
        raise OrbitError(f"give one {what} per run, or none")
    seen: dict[str, int] = {}
    for index, key in enumerate(given):
        if key is None:
            continue
        if not isinstance(key, str) or not 0 < len(key) <= KEY_MAX_LENGTH:
            raise OrbitError(
                _at(index, count, f"{what}s are 1-{KEY_MAX_LENGTH} characters, not {key!r}"),
                index=index,
            )
        if not storable(key):
            raise OrbitError(
                _at(index, count, f"{what}s {UNSTORABLE}"),
                index=index,
            )
        if key in seen:
            raise OrbitError(
                f"run {index}: {what} {key!r} is also run {seen[key]}'s; one batch takes "
                "each key once",
                index=index,
            )
        seen[key] = index
    return given


def _at(index: int, count: int, message: str) -> str:
    """`message` about the run at `index`, named when there are several."""
    return message if count == 1 else f"run {index}: {message}"


def run_create(
    pipeline: str | Pipeline,
    *,
    metadata: dict[str, Any] | None = None,
    priority: int = 0,
    queue: str | None = None,
    idempotency_key: str | None = None,
    unique_key: str | None = None,
    scheduled_for: datetime | None = None,
    rerun_of: Run | None = None,
    run_after: datetime | None = None,
    delay: timedelta | float | None = None,
    actor: Actor | None = None,
) -> Run:
    """One run, with the options schedules and reruns add (its slot, its original)."""
    [run] = run_create_many(
        pipeline,
        [metadata],
        priority=priority,
        queue=queue,
        idempotency_keys=_per_run([idempotency_key], 1, "idempotency key"),
        unique_keys=_per_run([unique_key], 1, "unique key"),
        scheduled_for=scheduled_for,
        rerun_of=rerun_of,
        start=when(run_after, delay, now=datetime.now(UTC)),
        actor=actor,
    )
    return run


def run_create_many(
    pipeline: str | Pipeline,
    metadatas: Sequence[dict[str, Any] | None],
    *,
    priority: int,
    queue: str | None,
    idempotency_keys: Sequence[str | None],
    start: When,
    unique_keys: Sequence[str | None] | None = None,
    scheduled_for: datetime | None = None,
    rerun_of: Run | None = None,
    actor: Actor | None = None,
) -> list[Run]:
    """Validate, lay out, insert in one call, and return the runs (or, for a key or a
    schedule slot already taken, the run holding it).

    A pipeline named is read from this process's cache (pipelines/lookup.py): the insert
    writes nothing unless the stored row is enabled, not archived, and still says what the
    copy says.
    When it does not, the pipeline is read again (by name when named, by id when given
    as a row) and the runs are validated and laid out anew from it, or refused."""
    row = pipeline if isinstance(pipeline, Pipeline) else get_pipeline(pipeline)
    for _ in range(STALE_RETRIES):
        try:
            with _collection_paused(len(metadatas)):
                return _create_many(
                    row,
                    metadatas,
                    priority=priority,
                    queue=queue,
                    idempotency_keys=idempotency_keys,
                    unique_keys=unique_keys,
                    start=start,
                    scheduled_for=scheduled_for,
                    rerun_of=rerun_of,
                    actor=actor,
                )
        except StalePipeline:
            lookup.forget(row.name)
            if isinstance(pipeline, str):  # the name may now be another row's, or none's
                row = get_pipeline(pipeline)
                continue
            fresh = Pipeline.objects.filter(pk=row.pk).first()
            if fresh is None:
                raise UnknownPipeline(f"Pipeline {row.name!r} was deleted") from None
            row = fresh
    raise StalePipeline(f"Pipeline {row.name!r} kept changing while runs were queued; try again")


#: How many times a batch is laid out again for a pipeline row that changed meanwhile.
STALE_RETRIES = 3
#: From how many runs a batch is laid out with the cyclic garbage collector paused.
GC_PAUSE_FROM = 1_000


@contextmanager
def _collection_paused(count: int) -> Iterator[None]:
    """Pause the cyclic collector while a large batch is laid out and inserted. Every
    object made then (ten or so a run: the Run, its state, its audit event, the store's
    records) stays alive until the call returns, so a collection frees none of them, but
    their number sets off full collections that walk every object of the process: a
    third of the Python time of a 10,000-run batch. Nothing is left uncollected: the
    collector runs again, as scheduled, afterwards. Left alone when already paused."""
    if count < GC_PAUSE_FROM or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _create_many(
    row: Pipeline,
    metadatas: Sequence[dict[str, Any] | None],
    *,
    priority: int,
    queue: str | None,
    idempotency_keys: Sequence[str | None],
    unique_keys: Sequence[str | None] | None,
    start: When,
    scheduled_for: datetime | None,
    rerun_of: Run | None,
    actor: Actor | None,
) -> list[Run]:
    if row.archived_at is not None:  # every entry point, as for a disabled one
        raise PipelineArchived(f"Pipeline {row.name!r} is archived; unarchive it to run it")
    if not row.enabled:  # every entry point: the API, the CLI, the dashboard, code
        raise PipelineDisabled(f"Pipeline {row.name!r} is disabled; enable it to run it")
    definition = row.code
    if definition is None:
        raise UnknownPipeline(
            f"Pipeline {row.name!r} runs definition {row.definition!r}, which no longer "
            "exists in code; it cannot start runs"
        )
    priority = validate_priority(priority)
    queue = validate_queue(queue if queue is not None else definition.queue)
    count = len(metadatas)
    given: list[dict[str, Any]] = []
    merged: list[dict[str, Any]] = []
    limits = metadata_limits()
    for index, metadata in enumerate(metadatas):
        try:
            given.append(validate_metadata(metadata, **limits))
            # with no default metadata, the merged input is the given one, checked already
            merged.append(
                validate_metadata(row.merged_metadata(given[-1]), **limits)
                if row.default_metadata
                else dict(given[-1])
            )
        except OrbitError as exc:  # the same error, saying which run it is about
            raise type(exc)(_at(index, count, str(exc)), index=index) from None
    steps = definition.step_names
    first = planner.plan(steps, {})
    current_step = first.name if isinstance(first, planner.NextStep) else ""
    changes: dict[str, Any] = {"pipeline": row.name, "priority": priority, "queue": queue}
    if scheduled_for is not None:
        changes["scheduled_for"] = scheduled_for.isoformat()
    action = AuditAction.RUN_RERUN if rerun_of is not None else AuditAction.RUN_CREATED
    if rerun_of is not None:  # its creation is the rerun's event: which run, what changed
        changes["rerun_of"] = str(rerun_of.id)
    if start.run_after is not None:
        changes["run_after"] = start.run_after.isoformat()
    if start.delay:
        changes["delay"] = start.delay
    # The caller's trace (a request's span, say): the parent of the runs' spans. Empty,
    # and never read, while tracing is off.
    trace_context = tracing.carrier()
    make = _run_maker(
        {
            "trace_context": trace_context,
            "pipeline_id": row.pk,
            "priority": priority,
            "queue": queue,
            "scheduled_for": scheduled_for,
            "rerun_of_id": rerun_of.id if rerun_of is not None else None,
            "current_step": current_step,
        },
        {"pipeline": row} if rerun_of is None else {"pipeline": row, "rerun_of": rerun_of},
    )
    runs: list[Run] = []
    news: list[NewRun] = []
    uniques = list(unique_keys) if unique_keys is not None else [None] * count
    # The runs' events differ only in their target, unless a run's changes are its own:
    # the columns they share are made once (from the first run), each run adds its name.
    shared_event: dict[str, Any] | None = None
    label_prefix = _label_prefix(row.name)
    for run_id, metadata, key, unique in zip(
        uuid7s(count), merged, idempotency_keys, uniques, strict=True
    ):
        run = make(
            {"id": run_id, "metadata": metadata, "idempotency_key": key, "unique_key": unique}
        )
        audit: Mapping[str, Any]
        if rerun_of is None and unique is None:
            if shared_event is None:
                shared_event = event_values(
                    action, run, actor=actor, changes=changes, label=label_prefix + str(run_id)
                )
            audit = RunEvent(shared_event, run_id, label_prefix)
        else:
            own = dict(changes)
            if rerun_of is not None:
                own["metadata"] = {"changed_keys": changed_keys(rerun_of.metadata, metadata)}
            if unique is not None:
                own["unique_key"] = unique
            audit = event_values(
                action, run, actor=actor, changes=own, label=label_prefix + str(run_id)
            )
        runs.append(run)
        news.append(
            NewRun(
                id=run_id,
                pipeline_id=row.pk,
                steps=steps,
                current_step=current_step,
                metadata=metadata,
                priority=priority,
                queue=queue,
                idempotency_key=key,
                unique_key=unique,
                scheduled_for=scheduled_for,
                rerun_of=rerun_of.id if rerun_of is not None else None,
                audit=audit,
                run_after=start.run_after,
                delay=start.delay,
                trace_context=trace_context,
            )
        )
    check = PipelineCheck(
        id=row.pk,
        name=row.name,
        definition=row.definition,
        default_metadata=row.default_metadata or {},
        limited=row.is_limited,
    )
    inserted = store().insert_runs(news, pipeline=check)
    return _answer(row, runs, news, given, inserted, priority, scheduled_for)


def _run_maker(shared: dict[str, Any], related: dict[str, Any]) -> Callable[[dict[str, Any]], Run]:
    """Make the Run instances of one batch from the columns the batch shares (`shared`)
    and the related objects they all point to (`related`, by field name), as a fresh
    `Run(...)` would be. The constructor sets each column through its descriptor, one
    by one, and a related object through its descriptor's checks: most of a large
    batch's Python time. Run's descriptors store plain values (no field converts on
    assignment), so each run's `__dict__` is filled at once, from a copy of the shared
    columns; a field whose default is callable (a fresh dict, an id) gets its own value
    per run. With a receiver of Run's pre_init or post_init signals, which the shortcut
    would not send, the constructor is used."""
    layout = _run_layout()
    base = {**layout.defaults, **shared}
    fresh = [(name, field) for name, field in layout.fresh if name not in shared]
    # a forward relation's object is cached under its field's name (RelatedField.cache_name)
    cached = dict(related)
    if signals.pre_init.has_listeners(Run) or signals.post_init.has_listeners(Run):

        def constructed(own: dict[str, Any]) -> Run:
            run = Run(**{**base, **own})
            for name, value in related.items():
                setattr(run, name, value)
            return run

        return constructed

    new = Run.__new__

    def make(own: dict[str, Any]) -> Run:
        values = base.copy()
        for name, field in fresh:
            if name not in own:
                values[name] = field.get_default()
        values.update(own)
        run = new(Run)
        run.__dict__ = values
        state = values["_state"] = ModelState()
        state.fields_cache = cached.copy()
        return run

    return make


@dataclass(frozen=True)
class _Layout:
    """Run's columns by attribute name at their constant defaults (the fields whose
    default is made per run left out), and those fields."""

    defaults: dict[str, Any]
    fresh: list[tuple[str, Field[Any, Any]]]


@cache
def _run_layout() -> _Layout:
    """Worked out once per process: the models do not change while it runs."""
    fields = Run._meta.concrete_fields
    fresh = [
        (field.attname, field)
        for field in fields
        if field.has_default() and callable(field.default)
    ]
    made = {name for name, _ in fresh}
    return _Layout(
        defaults={f.attname: f.get_default() for f in fields if f.attname not in made},
        fresh=fresh,
    )


def _answer(
    row: Pipeline,
    runs: list[Run],
    news: list[NewRun],
    given: list[dict[str, Any]],
    inserted: list[InsertedRun],
    priority: int,
    scheduled_for: datetime | None,
) -> list[Run]:
    """Each run as inserted, or the run already holding its key or schedule slot."""
    results: list[Run] = []
    alias = connection.alias
    debug = logger.isEnabledFor(logging.DEBUG)
    for run, new, given_metadata, done in zip(runs, news, given, inserted, strict=True):
        if not done.created:
            if new.idempotency_key is None and new.unique_key is None:
                # a schedule slot another process fired first
                raise IntegrityError(f"Pipeline {row.name!r} already has a run for {scheduled_for}")
            held = Run.objects.select_related("pipeline").get(id=done.id)
            if held.unique_key is not None and held.unique_key == new.unique_key:
                results.append(held)  # the active run holding the key, whatever its input
                continue
            assert new.idempotency_key is not None
            if not new.idempotency_key.startswith("api:") and not same_request(
                held, row, given_metadata, priority
            ):  # the API checks its own keys, and names them as its caller sent them
                raise IdempotencyConflict(
                    f"Idempotency key {new.idempotency_key!r} was already used for a "
                    f"different request (run {held.id}): repeat it with the same metadata "
                    "and priority, or use a new key"
                )
            results.append(held)
            continue
        assert done.created_at is not None and done.available_at is not None
        run.created_at, run.available_at = done.created_at, done.available_at
        run._state.adding = False
        run._state.db = alias
        if debug:  # the enqueue hot path: one line per run is the outcome's, at INFO
            logger.debug(  # (runs/execution.py)
                "Run %s of %s created",
                run.id,
                row.name,
                extra={"event": "run_created", "run_id": str(run.id), "pipeline": row.name},
            )
        results.append(run)
    return results


__all__ = [
    "DEFAULT_QUEUE",
    "MAX_BATCH",
    "PRIORITY_RANGE",
    "InvalidQueue",
    "When",
    "enqueue",
    "enqueue_many",
    "get_pipeline",
    "parse_delay",
    "run_create",
    "run_label",
    "same_request",
    "validate_queue",
    "when",
]
