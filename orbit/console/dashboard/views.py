"""Dashboard pages. Each view reads, calls one function, and renders; the rules live in
runs.lifecycle, runs.recovery, runs.metrics and runs.bulk."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from orbit.console.dashboard import access, overview
from orbit.console.dashboard.access import OPERATE_PIPELINES, OPERATE_RUNS, requires
from orbit.console.dashboard.paging import Cursor, keyset_page
from orbit.console.dashboard.present import format_duration, pretty_json, span_seconds
from orbit.console.dashboard.timeline import build_timeline
from orbit.core.audit import Actor
from orbit.core.clock import db_now
from orbit.core.conf import orbit_settings
from orbit.core.exceptions import InvalidRunQuery, OrbitError, WorkerNotFound
from orbit.core.models import AuditEvent, AuditSource
from orbit.core.redaction import redact_text
from orbit.core.text import printable
from pipelines.definition import is_valid_name
from pipelines.models import Pipeline
from pipelines.schedules import describe_schedule
from runs.bulk import (
    MAX_RUNS_PER_ACTION,
    archive_pipelines,
    as_run_ids,
    cancel_runs,
    parse_metadata,
    retry_runs,
    run_now,
    run_now_with_upload,
    set_pipelines_enabled,
    unarchive_pipelines,
)
from runs.enqueueing import parse_delay, validate_queue
from runs.lifecycle import run_cancel, run_rerun, run_retry
from runs.metrics import worker_health
from runs.models import ACTIVE_STATUSES, Run, RunStatus, Step, StepStatus
from runs.pausing import (
    pipeline_pause,
    pipeline_pause_of,
    pipeline_resume,
    queue_pause,
    queue_resume,
    queue_states,
)
from runs.recovery import run_resume, worker_forget
from runs.scheduler import last_scheduled_run, next_fire_time
from runs.search import METADATA_PREFIX, parse_run_query, run_condition
from runs.steplogs import run_logs

RUNS_PER_PAGE = 50
WORKERS_SHOWN = 200
AUDIT_SHOWN = 100


def _page(request: HttpRequest, title: str, section: str, **context: Any) -> dict[str, Any]:
    return {
        **admin.site.each_context(request),
        "is_nav_sidebar_enabled": False,
        "title": title,
        "section": section,
        "can_operate_runs": access.can(request, OPERATE_RUNS),
        "can_operate_pipelines": access.can(request, OPERATE_PIPELINES),
        **context,
    }


def _actor(request: HttpRequest) -> Actor:
    return Actor.from_request(request, AuditSource.DASHBOARD)


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


# --- Overview ------------------------------------------------------------------------------


@requires(access.VIEW_RUNS)
@vary_on_headers("HX-Request")
def overview_page(request: HttpRequest) -> HttpResponse:
    live = _is_htmx(request)  # the 5-second refresh: the 30-day chart stays as drawn
    context = _page(
        request, "Overview", "overview", figures=overview.figures(db_now(), history=not live)
    )
    template = "dashboard/_overview_live.html" if live else "dashboard/overview.html"
    return render(request, template, context)


# --- Runs -----------------------------------------------------------------------------------


#: The search fields of the runs page, as runs.search reads them (with `metadata.KEY`).
SEARCH_PARAMS = ("q", "created_after", "created_before", "finished_after", "finished_before")


class BadFilter(ValueError):
    """A filter value no row can match, which the page answers with 400."""


def _run_filters(given: QueryDict) -> tuple[dict[str, str], Q]:
    """The filters in the query string, and the condition they make; unknown statuses are
    ignored, and a pipeline name no pipeline could have, or a search runs.search refuses,
    is a BadFilter."""
    chosen: dict[str, str] = {}
    condition = Q()
    status = given.get("status", "")
    if status in RunStatus.values:
        chosen["status"] = status
        condition &= Q(status=status)
    pipeline = given.get("pipeline", "")
    if pipeline:
        if not is_valid_name(pipeline):
            raise BadFilter(f"Not a pipeline name: {printable(pipeline)[:200]}")
        chosen["pipeline"] = pipeline
        condition &= Q(pipeline__name=pipeline)
    params: dict[str, str] = {
        k: str(given.get(k, ""))
        for k in given
        if k in SEARCH_PARAMS or k.startswith(METADATA_PREFIX)
    }
    # The form's one "key=value" box is a metadata.KEY filter, as the API spells it.
    typed = given.get("meta", "").strip()
    if typed:
        key, equals, value = typed.partition("=")
        if not equals:
            raise BadFilter(f"A metadata filter reads key=value: {printable(typed)[:100]}")
        params[f"{METADATA_PREFIX}{key.strip()}"] = value.strip()
    try:
        query = parse_run_query(params)
    except InvalidRunQuery as exc:
        raise BadFilter(str(exc)) from None
    chosen.update(
        {k: v for k, v in params.items() if v and not (typed and k.startswith("metadata."))}
    )
    if typed:
        chosen["meta"] = typed
    return chosen, condition & run_condition(query)


@requires(access.VIEW_RUNS)
@vary_on_headers("HX-Request")
def runs_page(request: HttpRequest) -> HttpResponse:
    try:
        chosen, condition = _run_filters(request.GET)
    except BadFilter as exc:
        if _is_htmx(request):
            return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
        context = _runs_form_context(request, chosen={}, filter_error=str(exc))
        return render(request, "dashboard/runs.html", {**context, "rows": []}, status=400)
    cursor = Cursor.decode(request.GET.get("before", ""))
    page = keyset_page(
        Run.objects.filter(condition).select_related("pipeline", "worker"), cursor, RUNS_PER_PAGE
    )
    now = db_now()
    rows = _run_rows(page.rows, now)
    next_url = (
        f"{reverse('dashboard:runs')}?{urlencode({**chosen, 'before': page.next_cursor})}"
        if page.next_cursor
        else None
    )
    context = _runs_form_context(
        request,
        chosen=chosen,
        rows=rows,
        next_url=next_url,
        first_url=f"{reverse('dashboard:runs')}?{urlencode(chosen)}",
        paged=cursor is not None,
        poll_url=request.get_full_path(),
        searched=bool(set(chosen) - {"status", "pipeline"}),
        max_per_action=MAX_RUNS_PER_ACTION,
    )
    template = "dashboard/_runs_table.html" if _is_htmx(request) else "dashboard/runs.html"
    return render(request, template, context)


BULK_ACTIONS = {"cancel": cancel_runs, "retry": retry_runs}


@require_POST
@requires(OPERATE_RUNS)
def runs_bulk_action(request: HttpRequest) -> HttpResponse:
    """Cancel or retry the selected runs (`run`, repeated), or retry every failed run the
    filters in the form find (`action=retry-failed`), at most MAX_RUNS_PER_ACTION of them.
    Each run is acted on, and audited, by runs.bulk as in the admin."""
    action = request.POST.get("action", "")
    try:
        chosen, condition = _run_filters(request.POST)
    except BadFilter as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    back = f"{reverse('dashboard:runs')}?{urlencode(chosen)}"
    if action == "retry-failed":
        runs = Run.objects.filter(condition, status=RunStatus.FAILED)
        act = retry_runs
    elif action in BULK_ACTIONS:
        ids = as_run_ids(request.POST.getlist("run"))[:MAX_RUNS_PER_ACTION]
        if not ids:
            messages.error(request, "No runs selected: tick the runs to act on first.")
            return HttpResponseRedirect(back)
        runs = Run.objects.filter(id__in=ids)
        act = BULK_ACTIONS[action]
    else:
        return HttpResponse("No such action", status=400, content_type="text/plain; charset=utf-8")
    report = act(
        list(runs.order_by("-created_at", "-id")[:MAX_RUNS_PER_ACTION]), actor=_actor(request)
    )
    (messages.success if report.ok else messages.warning)(request, report.message() + ".")
    return HttpResponseRedirect(back)


def _runs_form_context(request: HttpRequest, **context: Any) -> dict[str, Any]:
    return _page(
        request,
        "Runs",
        "runs",
        statuses=RunStatus.choices,
        pipelines=list(Pipeline.objects.values_list("name", flat=True)),
        **context,
    )


def _run_rows(runs: list[Run], now: datetime) -> list[dict[str, Any]]:
    """The list's rows, with step progress for the page's runs from one grouped query."""
    progress = {
        row["run_id"]: row
        for row in Step.objects.filter(run_id__in=[r.id for r in runs])
        .values("run_id")
        .annotate(total=Count("id"), done=Count("id", filter=Q(status=StepStatus.SUCCEEDED)))
        .order_by()
    }
    rows = []
    for run in runs:
        counts = progress.get(run.id, {"total": 0, "done": 0})
        # A finished run shows its running time; a running one how long since it started.
        running = span_seconds(run.started_at, now) if run.status == RunStatus.RUNNING else None
        rows.append(
            {
                "run": run,
                "duration": format_duration(running if running is not None else _running_time(run)),
                "steps_done": counts["done"],
                "steps_total": counts["total"],
            }
        )
    return rows


def _running_time(run: Run) -> float | None:
    """The sum of its attempts, once one was recorded."""
    return run.running_time if run.started_at is not None else None


def _run_context(request: HttpRequest, run: Run) -> dict[str, Any]:
    now = db_now()
    steps = list(run.steps.prefetch_related("attempt_records").order_by("position"))
    logs = run_logs(steps)
    definition = run.pipeline.code
    step_rows = []
    for step in steps:
        try:
            spec = definition.step_named(step.name) if definition else None
        except KeyError:
            spec = None
        step_rows.append(
            {
                "step": step,
                "spec": spec,
                "attempts": [
                    {
                        "attempt": a,
                        "duration": format_duration(a.duration),
                        "backoff": format_duration(a.backoff_delay),
                    }
                    for a in step.attempt_records.all()
                ],
                "result": pretty_json(step.result),
                "logs": [_log_line(entry) for entry in logs.get(step.id, [])],
                "duration": format_duration(step.duration),
            }
        )
    interrupted = (
        run.status == RunStatus.RUNNING and Run.objects.interrupted().filter(id=run.id).exists()
    )
    return {
        "run": run,
        "steps": step_rows,
        "timeline": build_timeline(run, steps, now),
        "metadata": pretty_json(run.metadata),
        "running_time": format_duration(_running_time(run)),
        "elapsed": format_duration(
            span_seconds(run.created_at, run.finished_at or (None if run.is_finished else now))
        ),
        "interrupted": interrupted,
        # A cancelled run is finished at once, but its step stops a moment later: the page
        # keeps updating until the stopped attempt is recorded (or a lease has passed).
        "live": not run.is_finished or _settling(run, steps, now),
        "can_retry": run.status in (RunStatus.FAILED, RunStatus.CANCELLED),
        "can_cancel": run.status in ACTIVE_STATUSES,
        "can_resume": interrupted,
        "reruns": list(run.reruns.order_by("id").values_list("id", flat=True)),
        "audit": list(AuditEvent.objects.for_target(run)[:AUDIT_SHOWN])
        if access.can(request, access.VIEW_AUDIT)
        else None,
        "now": now,
    }


def _settling(run: Run, steps: list[Step], now: datetime) -> bool:
    """Finished, with a step still marked running that its worker has yet to stop."""
    if run.finished_at is None or not any(s.status == StepStatus.RUNNING for s in steps):
        return False
    return (now - run.finished_at).total_seconds() < orbit_settings.lease_seconds


def _log_line(entry: dict[str, Any]) -> dict[str, Any]:
    fields = entry.get("fields")
    return {
        "time": str(entry.get("time", "")),
        "level": str(entry.get("level", "")),
        "attempt": entry.get("attempt", ""),
        "message": redact_text(str(entry.get("message", ""))),
        "fields": pretty_json(fields) if fields else "",
    }


def _get_run(run_id: uuid.UUID) -> Run:
    return get_object_or_404(Run.objects.select_related("pipeline", "worker"), id=run_id)


@requires(access.VIEW_RUNS)
@vary_on_headers("HX-Request")
def run_page(request: HttpRequest, run_id: uuid.UUID, **extra: Any) -> HttpResponse:
    run = _get_run(run_id)
    context = _page(request, f"Run {run.id}", "runs", **_run_context(request, run), **extra)
    template = "dashboard/_run_live.html" if _is_htmx(request) else "dashboard/run.html"
    return render(request, template, context, status=400 if extra.get("rerun_error") else 200)


@require_POST
@requires(OPERATE_RUNS)
def run_rerun_action(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """Run again with the metadata as edited in the form (prefilled with the run's)."""
    run = _get_run(run_id)
    text = request.POST.get("metadata", "")
    try:
        new = run_rerun(run.id, metadata=parse_metadata(text), actor=_actor(request))
    except OrbitError as exc:
        return run_page(request, run.id, rerun_error=str(exc), rerun_typed=text)
    messages.success(
        request, f"Run {new.id} queued: {run.pipeline.name} again, a rerun of {run.id}."
    )
    return HttpResponseRedirect(reverse("dashboard:run", args=[new.id]))


RUN_ACTIONS = {
    "retry": (run_retry, "Run {id} queued for retry: it resumes at its first unfinished step."),
    "cancel": (run_cancel, "Run {id} cancelled."),
    "resume": (run_resume, "Run {id} queued to resume at its first unfinished step."),
}


@require_POST
@requires(OPERATE_RUNS)
def run_action(request: HttpRequest, run_id: uuid.UUID, action: str) -> HttpResponse:
    if action not in RUN_ACTIONS:
        raise Http404("No such action")
    run = _get_run(run_id)
    act, done = RUN_ACTIONS[action]
    try:
        act(run.id, actor=_actor(request))
    except OrbitError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, done.format(id=run.id))
    return HttpResponseRedirect(reverse("dashboard:run", args=[run.id]))


# --- Workers ----------------------------------------------------------------------------------


@requires(access.VIEW_WORKERS)
@vary_on_headers("HX-Request")
def workers_page(request: HttpRequest) -> HttpResponse:
    health = worker_health(db_now(), limit=WORKERS_SHOWN)
    current: dict[int, list[Run]] = {}
    for run in (
        Run.objects.running()
        .filter(worker_id__in=[w.id for w in health.workers])
        .select_related("pipeline")
        .order_by("started_at")
    ):
        current.setdefault(run.worker_id or 0, []).append(run)
    rows = [
        {
            "worker": w,
            "dead": w.dead,
            "heartbeat_age": format_duration(w.heartbeat_age),
            "current": current.get(w.id, []),
        }
        for w in health.workers
    ]
    stopped = sum(1 for w in health.workers if w.state == "stopped")
    context = _page(request, "Workers", "workers", rows=rows, health=health, stopped=stopped)
    template = "dashboard/_workers_table.html" if _is_htmx(request) else "dashboard/workers.html"
    return render(request, template, context)


@require_POST
@requires(OPERATE_RUNS)
def worker_forget_action(request: HttpRequest, worker_id: int) -> HttpResponse:
    try:
        worker = worker_forget(worker_id, actor=_actor(request))
    except WorkerNotFound as exc:
        raise Http404(str(exc)) from None
    except OrbitError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Worker {worker.name} forgotten.")
    return HttpResponseRedirect(reverse("dashboard:workers"))


# --- Pipelines --------------------------------------------------------------------------------


def _pipelines_context(
    request: HttpRequest, errors: dict[int, str] | None = None, typed: dict[int, str] | None = None
) -> dict[str, Any]:
    # Archived rows are set aside (pipelines/archiving.py): listed only when asked for.
    archived = request.GET.get("archived") == "1"
    every = Pipeline.objects.all()
    shown = every.archived() if archived else every.unarchived()
    # A card an action was refused on is shown with its reason, archived or not.
    rows = list(shown | every.filter(id__in=list(errors or {})))
    rates = overview.success_rates()
    now = db_now()
    items = []
    for row in rows:
        definition = row.code
        pause = pipeline_pause_of(row)
        items.append(
            {
                "pipeline": row,
                "definition": definition,
                "schedule_text": describe_schedule(row.schedule),
                "next_fire": next_fire_time(row),
                "last_scheduled": last_scheduled_run(row) if row.schedule else None,
                "rate": rates.get(row.name),
                "default_metadata": pretty_json(row.default_metadata)
                if row.default_metadata
                else "",
                "metadata_example": json.dumps(definition.metadata_example)
                if definition is not None and definition.metadata_example
                else "",
                "error": (errors or {}).get(row.id, ""),
                "typed": (typed or {}).get(row.id, ""),
                "pause": pause,
                "pause_text": pause.describe(now) if pause else "",
            }
        )
    title = "Archived pipelines" if archived else "Pipelines"
    return _page(
        request,
        title,
        "pipelines",
        items=items,
        showing_archived=archived,
        archived_count=every.archived().count(),
    )


@requires(access.VIEW_PIPELINES)
def pipelines_page(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/pipelines.html", _pipelines_context(request))


@require_POST
@requires(OPERATE_RUNS)
def pipeline_run_now(request: HttpRequest, pipeline_id: int) -> HttpResponse:
    row = get_object_or_404(Pipeline, id=pipeline_id)
    text = request.POST.get("metadata", "")
    document = request.FILES.get("document")
    try:
        metadata = parse_metadata(text)
        # Checked before anything is stored: a bad queue or delay queues nothing.
        queue = validate_queue(q) if (q := request.POST.get("queue", "").strip()) else None
        delay = parse_delay(d) if (d := request.POST.get("delay", "").strip()) else None
        options: dict[str, Any] = {"queue": queue, "delay": delay, "actor": _actor(request)}
        if document is not None:
            report = run_now_with_upload(row, document, metadata, **options)
        else:
            report = run_now([row], metadata, **options)
    except OrbitError as exc:
        context = _pipelines_context(request, errors={row.id: str(exc)}, typed={row.id: text})
        return render(request, "dashboard/pipelines.html", context, status=400)
    if not report.created:
        context = _pipelines_context(
            request, errors={row.id: f"Not queued: {report.message()}."}, typed={row.id: text}
        )
        return render(request, "dashboard/pipelines.html", context, status=400)
    run = report.created[0]
    messages.success(request, f"Run {run.id} of {row.name} queued.")
    return HttpResponseRedirect(reverse("dashboard:run", args=[run.id]))


@require_POST
@requires(OPERATE_PIPELINES)
def pipeline_enabled(request: HttpRequest, pipeline_id: int) -> HttpResponse:
    row = get_object_or_404(Pipeline, id=pipeline_id)
    enabled = request.POST.get("enabled") == "1"
    report = set_pipelines_enabled([row], enabled, actor=_actor(request))
    state = "enabled" if enabled else "disabled"
    if report.done:
        messages.success(request, f"Pipeline {row.name} {state}.")
    else:
        messages.info(request, f"Pipeline {row.name} was already {state}.")
    return HttpResponseRedirect(reverse("dashboard:pipelines") + f"#pipeline-{row.id}")


@require_POST
@requires(OPERATE_PIPELINES)
def pipeline_paused(request: HttpRequest, pipeline_id: int) -> HttpResponse:
    """Pause (`paused=1`, with a `reason`) or resume (`paused=0`) one pipeline."""
    row = get_object_or_404(Pipeline, id=pipeline_id)
    back = HttpResponseRedirect(reverse("dashboard:pipelines") + f"#pipeline-{row.id}")
    try:
        if request.POST.get("paused") == "1":
            done = pipeline_pause(row, reason=request.POST.get("reason", ""), actor=_actor(request))
            state = "paused"
        else:
            done = pipeline_resume(row, actor=_actor(request))
            state = "resumed"
    except OrbitError as exc:
        context = _pipelines_context(request, errors={row.id: str(exc)})
        return render(request, "dashboard/pipelines.html", context, status=400)
    if done:
        messages.success(request, f"Pipeline {row.name} {state}.")
    elif state == "paused":
        pause = pipeline_pause_of(row)
        told = pause.describe(db_now()) if pause else "paused"
        messages.info(request, f"Pipeline {row.name} was already {told}; left as it was.")
    else:
        messages.info(request, f"Pipeline {row.name} was not paused.")
    return back


@require_POST
@requires(OPERATE_PIPELINES)
def pipeline_archived(request: HttpRequest, pipeline_id: int) -> HttpResponse:
    """Archive (`archived=1`) a pipeline whose definition is gone, or unarchive it (`0`)."""
    row = get_object_or_404(Pipeline, id=pipeline_id)
    if request.POST.get("archived") == "1":
        report = archive_pipelines([row], actor=_actor(request))
        if not report.done and not row.is_archived:  # refused: its definition is in code
            context = _pipelines_context(
                request, errors={row.id: f"Not archived: {report.message()}."}
            )
            return render(request, "dashboard/pipelines.html", context, status=400)
        back = reverse("dashboard:pipelines")
    else:
        report = unarchive_pipelines([row], actor=_actor(request))
        back = reverse("dashboard:pipelines") + f"#pipeline-{row.id}"
    state = "archived" if request.POST.get("archived") == "1" else "unarchived"
    if report.done:
        messages.success(request, f"Pipeline {row.name} {state}.")
    else:
        messages.info(request, f"Pipeline {row.name}: {report.message()}.")
    return HttpResponseRedirect(back)


# --- Queues ---------------------------------------------------------------------------------


def _queues_context(request: HttpRequest, error: str = "", typed: str = "") -> dict[str, Any]:
    now = db_now()
    rows = [
        {"state": state, "pause_text": state.pause.describe(now) if state.pause else ""}
        for state in queue_states()
    ]
    return _page(request, "Queues", "queues", rows=rows, error=error, typed=typed)


@requires(access.VIEW_RUNS)
def queues_page(request: HttpRequest) -> HttpResponse:
    """Every queue with pending or running runs, and every paused queue."""
    return render(request, "dashboard/queues.html", _queues_context(request))


@require_POST
@requires(OPERATE_RUNS)
def queue_paused(request: HttpRequest) -> HttpResponse:
    """Pause (`paused=1`, with a `reason`) or resume (`paused=0`) the queue `queue`; any
    valid name may be paused, so a queue can be held before its first run."""
    name = request.POST.get("queue", "").strip()
    try:
        if request.POST.get("paused") == "1":
            done = queue_pause(name, reason=request.POST.get("reason", ""), actor=_actor(request))
            state = "paused"
        else:
            done = queue_resume(name, actor=_actor(request))
            state = "resumed"
    except OrbitError as exc:
        context = _queues_context(request, error=str(exc), typed=printable(name)[:64])
        return render(request, "dashboard/queues.html", context, status=400)
    if done:
        messages.success(request, f"Queue {name} {state}.")
    else:
        messages.info(
            request, f"Queue {name} was {'already paused' if state == 'paused' else 'not paused'}."
        )
    return HttpResponseRedirect(reverse("dashboard:queues"))
