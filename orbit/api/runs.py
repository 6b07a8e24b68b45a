"""/api/runs, /api/steps and /api/worker: read runs and steps, act on runs, see workers."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import Prefetch
from django.http import Http404, HttpRequest
from ninja import Router, Status
from ninja.params import functions as params

from orbit.api.pagination import by_created, by_id
from orbit.api.schemas.runs import (
    ErrorOut,
    MetricsOut,
    RerunIn,
    RunDetailOut,
    RunOut,
    RunPageOut,
    StatsOut,
    StepDetailOut,
    StepLogsOut,
    StepPageOut,
    StepWithAttemptsOut,
    ValidationErrorOut,
    WorkerForgottenOut,
    WorkerHealthOut,
)
from orbit.core.audit import Actor
from orbit.core.clock import db_now
from orbit.core.models import AuditSource
from orbit.core.text import storable
from orbit.web.auth import allow
from pipelines.definition import NAME_PATTERN
from runs import metrics
from runs.lifecycle import get_run, run_cancel, run_rerun, run_retry
from runs.models import Run, RunStatus, Step, StepAttempt, StepStatus
from runs.recovery import run_resume, worker_forget
from runs.search import parse_run_query, run_condition
from runs.steplogs import PAGE, step_logs

runs_router = Router(tags=["runs"])
steps_router = Router(tags=["steps"])
worker_router = Router(tags=["worker"])

VIEW_RUNS = allow("runs.view_run")
ACT_ON_RUNS = allow("runs.operate_run")
ERRORS: dict[int, Any] = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ValidationErrorOut}
LIMIT: Any = params.Query(50, ge=1, le=200, description="Items per page, 1 to 200")
CURSOR: Any = params.Query(None, max_length=200, description="`next_cursor` of the previous page")
RECENT_LIMIT: Any = params.Query(20, ge=1, le=200, description="How many, 1 to 200")
PIPELINE_NAME: Any = params.Query(
    None, max_length=100, pattern=NAME_PATTERN.pattern, description="Pipeline name"
)
# Checked by runs.search (400 with the reason), not here (422).
ID_FRAGMENT: Any = params.Query(
    None, description="Any part of a run id (hex digits; hyphens ignored)"
)
MOMENT: Any = params.Query(None, description="ISO 8601 date or date-time; naive means TIME_ZONE")
LOGS_AFTER: Any = params.Query(
    None, max_length=40, description="`next_cursor` of the previous answer: only newer records"
)
LOGS_LIMIT: Any = params.Query(PAGE, ge=1, le=1000, description="Records per answer, 1 to 1000")


def api_actor(request: HttpRequest) -> Actor:
    """The token's or session's user, for the audit trail."""
    return Actor.from_request(request, AuditSource.API)


def run_with_steps(run_id: uuid.UUID | str) -> Run:
    """One run with its steps and each step's attempts, in three queries."""
    attempts = StepAttempt.objects.select_related("worker").order_by("number")
    steps = Step.objects.order_by("position").prefetch_related(
        Prefetch("attempt_records", queryset=attempts)
    )
    run = get_run(run_id)
    return (
        Run.objects.select_related("pipeline", "worker")
        .prefetch_related(
            Prefetch("steps", queryset=steps),
            Prefetch("reruns", queryset=Run.objects.only("id", "rerun_of_id").order_by("id")),
        )
        .get(id=run.id)
    )


# --- Runs -----------------------------------------------------------------------------------


@runs_router.get("", response={200: RunPageOut, 400: ErrorOut, **ERRORS}, auth=VIEW_RUNS)
def list_runs(
    request: HttpRequest,
    status: RunStatus | None = None,
    pipeline: str | None = PIPELINE_NAME,
    limit: int = LIMIT,
    cursor: str | None = CURSOR,
    q: str | None = ID_FRAGMENT,
    created_after: str | None = MOMENT,
    created_before: str | None = MOMENT,
) -> Any:
    """Runs, newest first, a page at a time; stable while new runs arrive.

    Search (runs/search.py): `q` (or `id`) finds runs by any fragment of the id: the whole
    history when the id begins with it, else the newest 100,000 runs. `metadata.KEY=VALUE`
    (repeatable, up to 5) keeps runs whose metadata has that value under that top-level key;
    keys redaction masks are refused (400). `created_after` / `created_before` take ISO 8601
    dates or date-times (inclusive)."""
    runs = Run.objects.select_related("pipeline", "worker").filter(
        run_condition(parse_run_query(request.GET))
    )
    if status:
        runs = runs.filter(status=status)
    if pipeline:
        runs = runs.filter(pipeline__name=pipeline)
    return by_created(runs, limit=limit, cursor=cursor)


@runs_router.get("/{run_id}", response={200: RunDetailOut, **ERRORS}, auth=VIEW_RUNS)
def get_run_detail(request: HttpRequest, run_id: uuid.UUID) -> Any:
    """One run with its steps and every attempt of each."""
    return run_with_steps(run_id)


@runs_router.get(
    "/{run_id}/steps", response={200: list[StepWithAttemptsOut], **ERRORS}, auth=VIEW_RUNS
)
def list_run_steps(request: HttpRequest, run_id: uuid.UUID) -> Any:
    """The run's steps in order, with their attempts."""
    return list(run_with_steps(run_id).steps.all())


@runs_router.get(
    "/{run_id}/steps/{step_name}/logs", response={200: StepLogsOut, **ERRORS}, auth=VIEW_RUNS
)
def get_run_step_logs(
    request: HttpRequest,
    run_id: uuid.UUID,
    step_name: str,
    after: str | None = LOGS_AFTER,
    limit: int = LOGS_LIMIT,
) -> Any:
    """One step's log records, as /api/steps/{step_id}/logs, found by the run and the
    step's name (one no database could store names no step: asking for it would be an error)."""
    try:
        if not storable(step_name):
            raise Step.DoesNotExist
        step = Step.objects.get(run_id=get_run(run_id).id, name=step_name)
    except Step.DoesNotExist:
        raise Http404(f"Run {run_id} has no step named {step_name!r}") from None
    return step_logs(step, after=after, limit=limit)


@runs_router.post(
    "/{run_id}/rerun",
    response={201: RunDetailOut, 409: ErrorOut, 400: ErrorOut, 413: ErrorOut, **ERRORS},
    auth=ACT_ON_RUNS,
)
def rerun_run(request: HttpRequest, run_id: uuid.UUID, payload: RerunIn | None = None) -> Any:
    """Run again: a new run of the same pipeline with the run's metadata, or with `metadata`
    (edited; masked secrets sent back keep the stored values). Every step runs; the new run
    names the original in `rerun_of`, and the original lists it in `reruns`."""
    metadata = payload.metadata if payload is not None else None
    return Status(
        201, run_with_steps(run_rerun(run_id, metadata=metadata, actor=api_actor(request)).id)
    )


@runs_router.post(
    "/{run_id}/retry", response={200: RunDetailOut, 409: ErrorOut, **ERRORS}, auth=ACT_ON_RUNS
)
def retry_run(request: HttpRequest, run_id: uuid.UUID) -> Any:
    """Queue a failed or cancelled run again from its first unfinished step."""
    return run_with_steps(run_retry(run_id, actor=api_actor(request)).id)


@runs_router.post(
    "/{run_id}/cancel", response={200: RunDetailOut, 409: ErrorOut, **ERRORS}, auth=ACT_ON_RUNS
)
def cancel_run(request: HttpRequest, run_id: uuid.UUID) -> Any:
    """Cancel a pending or running run."""
    return run_with_steps(run_cancel(run_id, actor=api_actor(request)).id)


@runs_router.post(
    "/{run_id}/resume", response={200: RunDetailOut, 409: ErrorOut, **ERRORS}, auth=ACT_ON_RUNS
)
def resume_run(request: HttpRequest, run_id: uuid.UUID) -> Any:
    """Put an interrupted run (its worker died) back in the queue now."""
    return run_with_steps(run_resume(run_id, actor=api_actor(request)).id)


# --- Steps ----------------------------------------------------------------------------------

#: The most steps one page of the step list by status reads (by primary key, newest
#: first), so what a request costs does not grow with the table.
STEP_STATUS_WINDOW = 50_000


@steps_router.get("", response={200: StepPageOut, **ERRORS}, auth=VIEW_RUNS)
def list_steps(
    request: HttpRequest,
    status: StepStatus | None = None,
    limit: int = LIMIT,
    cursor: str | None = CURSOR,
) -> Any:
    """Steps of all runs, newest first, a page at a time. With `status`, a page reads at
    most STEP_STATUS_WINDOW steps, so it may hold fewer than `limit` (even none) and still
    give a `next_cursor`: no index covers a step's status (runs/models.py, Step.Meta)."""
    steps = Step.objects.defer("traceback")
    if not status:
        return by_id(steps, limit=limit, cursor=cursor)
    return by_id(steps.filter(status=status), limit=limit, cursor=cursor, window=STEP_STATUS_WINDOW)


@steps_router.get("/{step_id}", response={200: StepDetailOut, **ERRORS}, auth=VIEW_RUNS)
def get_step(request: HttpRequest, step_id: int) -> Any:
    """One step with its attempts."""
    return _step(step_id, Step.objects.select_related("run__pipeline"))


@steps_router.get("/{step_id}/logs", response={200: StepLogsOut, **ERRORS}, auth=VIEW_RUNS)
def get_step_logs(
    request: HttpRequest,
    step_id: int,
    after: str | None = LOGS_AFTER,
    limit: int = LOGS_LIMIT,
) -> Any:
    """The step's log records, oldest first, written while it runs: poll with `next_cursor`
    as `after` for the records written since."""
    return step_logs(_step(step_id, Step.objects.all()), after=after, limit=limit)


def _step(step_id: int, steps: Any) -> Step:
    try:
        return steps.get(id=step_id)  # type: ignore[no-any-return]
    except Step.DoesNotExist:
        raise Http404(f"No step with id {step_id}") from None


# --- Workers and metrics --------------------------------------------------------------------


@worker_router.get("/stats", response={200: StatsOut, **ERRORS}, auth=VIEW_RUNS)
def worker_stats(request: HttpRequest) -> Any:
    """Queue and outcome figures: see docs/METRICS.md."""
    return metrics.stats()


@worker_router.get("/recent-runs", response={200: list[RunOut], **ERRORS}, auth=VIEW_RUNS)
def recent_runs(
    request: HttpRequest,
    status: RunStatus | None = None,
    limit: int = RECENT_LIMIT,
) -> Any:
    """The latest runs, newest first (for paging through all of them use /api/runs)."""
    runs = Run.objects.select_related("pipeline", "worker")
    if status:
        runs = runs.filter(status=status)
    return list(runs.order_by("-created_at", "-id")[:limit])


@worker_router.get(
    "/health", response={200: WorkerHealthOut, **ERRORS}, auth=allow("runs.view_worker")
)
def worker_health(request: HttpRequest) -> Any:
    """Each worker's state and heartbeat age, and healthy / degraded / down with the reason."""
    return metrics.worker_health()


@worker_router.post(
    "/workers/{worker_id}/forget",
    response={200: WorkerForgottenOut, 409: ErrorOut, **ERRORS},
    auth=ACT_ON_RUNS,
)
def forget_worker(request: HttpRequest, worker_id: int) -> Any:
    """Take a dead (or stopped) worker off the lists and out of the health figures;
    409 while it is alive. Its row stays: the attempts it ran still name it."""
    return worker_forget(worker_id, actor=api_actor(request))


@worker_router.get("/metrics", response={200: MetricsOut, **ERRORS}, auth=VIEW_RUNS)
def worker_metrics(request: HttpRequest) -> Any:
    """Runs finished per minute (last hour), step failure rates, per-pipeline figures."""
    now = db_now()
    return {
        "at": now,
        "runs_per_minute": metrics.runs_per_minute(metrics.HOUR, now),
        "step_failure_rates": metrics.step_failure_rates(metrics.HOUR, now),
        "most_failing_steps": metrics.most_failing_steps(metrics.HOUR, now),
        "pipelines": metrics.pipeline_figures(metrics.DAY, now),
    }
