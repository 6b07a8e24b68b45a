"""The admin for runs, steps, attempts and workers: search, inspect, act; never edit history.

Recorded runs, steps and attempts are read-only (no add, change or delete); runs change
only through the actions, which need runs.operate_run and call runs.lifecycle like every
other entry point. Lists never COUNT(*) a large table (orbit.console.dashboard.paging).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import (
    Count,
    DateTimeField,
    OuterRef,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from orbit.console.admin.base import OrbitModelAdmin, ReadOnlyAdmin
from orbit.console.dashboard.paging import EstimatedCountPaginator
from orbit.console.dashboard.present import (
    format_age,
    format_duration,
    pretty_json,
    short_id,
)
from orbit.core.audit import Actor
from orbit.core.clock import db_now
from orbit.core.conf import orbit_settings
from orbit.core.exceptions import InvalidRunQuery, OrbitError
from orbit.core.models import AuditEvent, AuditSource
from orbit.core.redaction import redact_logs
from runs.bulk import (
    MAX_RUNS_PER_ACTION,
    cancel_runs,
    forget_workers,
    resume_runs,
    retry_runs,
)
from runs.enqueueing import validate_queue
from runs.models import QueuePause, Run, Step, StepAttempt, Worker, WorkerState
from runs.pausing import queue_pause, queue_pause_reason, queue_resume, validate_reason
from runs.search import METADATA_PREFIX, parse_run_query, run_condition
from runs.steplogs import run_logs, step_logs

ORBIT_CSS = {"all": ["orbit/dashboard.css"]}
AUDIT_SHOWN = 100

admin.site.site_header = "Orbit"
admin.site.site_title = "Orbit"
admin.site.index_title = "Administration"


def badge(status: str, label: str | None = None) -> SafeString:
    return format_html('<span class="badge badge-{}">{}</span>', status, label or status)


class ReadOnlyHistory(ReadOnlyAdmin):
    """Recorded history, paged without a full count: read only (actions are gated by
    runs.operate_run, not by a change permission)."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False

    class Media:
        css = ORBIT_CSS


def _search_run_id(queryset: QuerySet[Any], term: str, field: str) -> QuerySet[Any] | None:
    """`term` as a whole run id, if it is one."""
    try:
        return queryset.filter(**{field: uuid.UUID(term.strip())})
    except ValueError:
        return None


@admin.register(Run)
class RunAdmin(ReadOnlyHistory):
    list_display = (
        "run_id",
        "pipeline",
        "status_badge",
        "created_at",
        "run_duration",
        "attempt_count",
        "worker",
    )
    list_display_links = ("run_id",)
    list_filter = ("status", "pipeline", "created_at")
    list_select_related = ("pipeline", "worker")
    date_hierarchy = "created_at"
    # A whole run id only (get_search_results): the metadata holds what redaction masks,
    # and searching its text was both an oracle for it and a full scan of the table.
    search_fields = ("id",)
    search_help_text = "Any part of a run id, or key=value of its metadata."
    ordering = ("-created_at", "-id")
    actions = ["retry_selected", "cancel_selected", "resume_selected"]
    fieldsets = (
        (None, {"fields": ("id", "pipeline_link", "status_badge", "dashboard_link", "error_text")}),
        (
            "Timing",
            {
                "fields": (
                    "created_at",
                    "started_at",
                    "finished_at",
                    "run_duration",
                    "elapsed",
                    "available_at",
                    "scheduled_for",
                )
            },
        ),
        (
            "Execution",
            {
                "fields": (
                    "worker_link",
                    "current_step",
                    "fence",
                    "interruptions",
                    "lease_expires_at",
                    "priority",
                    "queue",
                    "idempotency_key",
                )
            },
        ),
        ("Metadata", {"fields": ("metadata_json",)}),
        ("Steps", {"fields": ("steps_history",)}),
        ("Audit trail", {"fields": ("audit_trail",)}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Run]:
        attempts = (
            StepAttempt.objects.filter(run=OuterRef("pk"))
            .order_by()
            .values("run")
            .annotate(n=Count("id"))
            .values("n")
        )
        # A correlated subquery, evaluated only for the rows of the page shown.
        runs: QuerySet[Run] = super().get_queryset(request)
        return runs.annotate(attempt_total=Coalesce(Subquery(attempts), 0))

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Run], search_term: str
    ) -> tuple[QuerySet[Run], bool]:
        """Any part of a run id, or `key=value` in its metadata (runs/search.py: keys that
        redaction masks are refused, with the reason shown)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        key, equals, value = term.partition("=")
        params = {f"{METADATA_PREFIX}{key.strip()}": value.strip()} if equals else {"q": term}
        try:
            return queryset.filter(run_condition(parse_run_query(params))), False
        except InvalidRunQuery as exc:
            messages.error(request, str(exc))
            return queryset.none(), False

    @admin.display(description="Run", ordering="id")
    def run_id(self, run: Run) -> str:
        return short_id(run.id)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, run: Run) -> SafeString:
        return badge(run.status, run.get_status_display())

    @admin.display(description="Running time", ordering="running_time")
    def run_duration(self, run: Run) -> str:
        """The sum of its attempts; the elapsed time (waits included) is `elapsed`."""
        return format_duration(run.running_time) if run.started_at else "—"

    @admin.display(description="Elapsed (created to finished)")
    def elapsed(self, run: Run) -> str:
        return format_duration(run.elapsed_time) or "—"

    @admin.display(description="Attempts")
    def attempt_count(self, run: Run) -> int:
        return getattr(run, "attempt_total", 0)

    @admin.display(description="Pipeline")
    def pipeline_link(self, run: Run) -> SafeString:
        url = reverse("admin:pipelines_pipeline_change", args=[run.pipeline_id])
        return format_html('<a href="{}">{}</a>', url, run.pipeline.name)

    @admin.display(description="Worker")
    def worker_link(self, run: Run) -> SafeString | str:
        if run.worker is None:
            return "—"
        url = reverse("admin:runs_worker_change", args=[run.worker_id])
        return format_html('<a href="{}">{}</a>', url, run.worker.name)

    @admin.display(description="Dashboard")
    def dashboard_link(self, run: Run) -> SafeString:
        url = reverse("dashboard:run", args=[run.id])
        return format_html('<a href="{}">Timeline, logs and actions on the dashboard</a>', url)

    @admin.display(description="Error")
    def error_text(self, run: Run) -> SafeString | str:
        return format_html('<pre class="code error-text">{}</pre>', run.error) if run.error else "—"

    @admin.display(description="Metadata")
    def metadata_json(self, run: Run) -> SafeString:
        return format_html('<pre class="code">{}</pre>', pretty_json(run.metadata))

    @admin.display(description="Steps, attempts, logs and results")
    def steps_history(self, run: Run) -> SafeString:
        steps = list(run.steps.prefetch_related("attempt_records").order_by("position"))
        logs = run_logs(steps)
        items = [
            {
                "step": step,
                "duration": format_duration(step.duration),
                "attempts": [
                    {
                        "attempt": a,
                        "duration": format_duration(a.duration),
                        "backoff": format_duration(a.backoff_delay),
                    }
                    for a in step.attempt_records.all()
                ],
                "logs": redact_logs(logs.get(step.id, [])),
                "result": pretty_json(step.result),
            }
            for step in steps
        ]
        # A template with autoescaping: what steps wrote stays text.
        return render_to_string("admin/runs/run/steps_history.html", {"items": items})

    @admin.display(description="Who did what to this run")
    def audit_trail(self, run: Run) -> SafeString | str:
        events = AuditEvent.objects.for_target(run)[:AUDIT_SHOWN]
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    e.created_at.strftime("%Y-%m-%d %H:%M:%S %Z"),
                    e.get_action_display(),
                    e.actor,
                    e.get_source_display(),
                    e.ip_address or "—",
                )
                for e in events
            ),
        )
        if not rows:
            return "—"
        return format_html(
            '<table class="orbit-table"><thead><tr><th>When</th><th>Action</th><th>Who</th>'
            "<th>From</th><th>IP address</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("runs.operate_run"))

    def _act(self, request: HttpRequest, queryset: QuerySet[Run], act: Any) -> HttpResponse | None:
        """Carry out `act` and say what it did; None: back to the list."""
        runs = list(queryset.select_related("pipeline")[: MAX_RUNS_PER_ACTION + 1])
        if len(runs) > MAX_RUNS_PER_ACTION:
            self.message_user(
                request,
                f"Select at most {MAX_RUNS_PER_ACTION} runs at once; nothing was changed.",
                messages.ERROR,
            )
            return None
        report = act(runs, actor=Actor.from_request(request, AuditSource.ADMIN))
        self.message_user(
            request, report.message() + ".", messages.SUCCESS if report.done else messages.WARNING
        )
        return None

    @admin.action(description="Retry the selected runs", permissions=["operate"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[Run]) -> HttpResponse | None:
        question = "Retry these runs? Each failed or cancelled one is queued again."
        return self.ask_first(request, queryset, question) or self._act(
            request, queryset, retry_runs
        )

    @admin.action(description="Cancel the selected runs", permissions=["operate"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Run]) -> HttpResponse | None:
        question = "Cancel these runs? Their running steps are stopped now."
        return self.ask_first(request, queryset, question) or self._act(
            request, queryset, cancel_runs
        )

    @admin.action(description="Resume the selected interrupted runs", permissions=["operate"])
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        self._act(request, queryset, resume_runs)


@admin.register(Step)
class StepAdmin(ReadOnlyHistory):
    list_display = (
        "name",
        "run_link",
        "pipeline",
        "status_badge",
        "attempts",
        "failures",
        "step_duration",
        "started_at",
    )
    list_filter = ("status",)
    list_select_related = ("run__pipeline",)
    search_fields = ("run__id", "name")
    search_help_text = "A whole run id, or a step name."
    ordering = ("-id",)
    fields = (
        "run_link",
        "name",
        "position",
        "status_badge",
        "attempts",
        "failures",
        "started_at",
        "finished_at",
        "step_duration",
        "error",
        "error_type",
        "traceback_text",
        "result_json",
        "logs_json",
    )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Step], search_term: str
    ) -> tuple[QuerySet[Step], bool]:
        if not search_term.strip():
            return queryset, False
        by_run = _search_run_id(queryset, search_term, "run_id")
        if by_run is not None:
            return by_run, False
        return queryset.filter(name=search_term.strip()), False

    @admin.display(description="Run")
    def run_link(self, step: Step) -> SafeString:
        url = reverse("admin:runs_run_change", args=[step.run_id])
        return format_html('<a href="{}">{}</a>', url, short_id(step.run_id))

    @admin.display(description="Pipeline")
    def pipeline(self, step: Step) -> str:
        return step.run.pipeline.name

    @admin.display(description="Status", ordering="status")
    def status_badge(self, step: Step) -> SafeString:
        return badge(step.status, step.get_status_display())

    @admin.display(description="Duration")
    def step_duration(self, step: Step) -> str:
        return format_duration(step.duration) or "—"

    @admin.display(description="Traceback")
    def traceback_text(self, step: Step) -> SafeString | str:
        return format_html('<pre class="code">{}</pre>', step.traceback) if step.traceback else "—"

    @admin.display(description="Result")
    def result_json(self, step: Step) -> SafeString:
        return format_html('<pre class="code">{}</pre>', pretty_json(step.result))

    @admin.display(description="Logs")
    def logs_json(self, step: Step) -> SafeString:
        records = step_logs(step).records
        return format_html('<pre class="code">{}</pre>', pretty_json(redact_logs(records)))


@admin.register(StepAttempt)
class StepAttemptAdmin(ReadOnlyHistory):
    list_display = (
        "step_name",
        "run_link",
        "number",
        "outcome_badge",
        "attempt_duration",
        "backoff",
        "finished_at",
        "worker",
    )
    list_filter = ("outcome", "finished_at")
    list_select_related = ("step", "worker")
    search_fields = ("run__id",)
    search_help_text = "A whole run id."
    ordering = ("-finished_at", "-id")
    fields = (
        "run_link",
        "step_name",
        "number",
        "outcome_badge",
        "started_at",
        "finished_at",
        "attempt_duration",
        "backoff",
        "worker",
        "error",
        "error_type",
        "traceback_text",
    )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[StepAttempt], search_term: str
    ) -> tuple[QuerySet[StepAttempt], bool]:
        if not search_term.strip():
            return queryset, False
        by_run = _search_run_id(queryset, search_term, "run_id")
        return (by_run if by_run is not None else queryset.none()), False

    @admin.display(description="Step", ordering="step__name")
    def step_name(self, attempt: StepAttempt) -> str:
        return attempt.step.name

    @admin.display(description="Run")
    def run_link(self, attempt: StepAttempt) -> SafeString:
        url = reverse("admin:runs_run_change", args=[attempt.run_id])
        return format_html('<a href="{}">{}</a>', url, short_id(attempt.run_id))

    @admin.display(description="Outcome", ordering="outcome")
    def outcome_badge(self, attempt: StepAttempt) -> SafeString:
        return badge(attempt.outcome, attempt.get_outcome_display())

    @admin.display(description="Duration")
    def attempt_duration(self, attempt: StepAttempt) -> str:
        return format_duration(attempt.duration) or "—"

    @admin.display(description="Backoff after")
    def backoff(self, attempt: StepAttempt) -> str:
        return format_duration(attempt.backoff_delay) or "—"

    @admin.display(description="Traceback")
    def traceback_text(self, attempt: StepAttempt) -> SafeString | str:
        if not attempt.traceback:
            return "—"
        return format_html('<pre class="code">{}</pre>', attempt.traceback)


@admin.register(Worker)
class WorkerAdmin(ReadOnlyHistory):
    list_display = (
        "name",
        "hostname",
        "pid",
        "state_badge",
        "heartbeat",
        "concurrency",
        "succeeded_count",
        "failed_count",
        "started_at",
    )
    list_filter = ("state",)
    search_fields = ("name", "hostname")
    ordering = ("-started_at",)
    actions = ["forget_selected"]
    fields = (
        "name",
        "hostname",
        "pid",
        "state_badge",
        "concurrency",
        "queues",
        "definitions_list",
        "started_at",
        "last_heartbeat",
        "heartbeat",
        "stopped_at",
        "died_at",
        "held_at_death_list",
        "forgotten_at",
        "succeeded_count",
        "failed_count",
        "current_runs",
    )

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("runs.operate_run"))

    @admin.action(description="Forget the selected dead workers", permissions=["operate"])
    def forget_selected(
        self, request: HttpRequest, queryset: QuerySet[Worker]
    ) -> HttpResponse | None:
        question = "Forget these workers? They leave the lists and the health figures."
        if (page := self.ask_first(request, queryset, question)) is not None:
            return page
        report = forget_workers(
            queryset[:MAX_RUNS_PER_ACTION], actor=Actor.from_request(request, AuditSource.ADMIN)
        )
        self.message_user(
            request, report.message() + ".", messages.SUCCESS if report.done else messages.WARNING
        )
        return None

    @admin.display(description="Pipelines it runs")
    def definitions_list(self, worker: Worker) -> str:
        return ", ".join(sorted(worker.definitions or {})) or "—"

    @admin.display(description="Runs it held when it died")
    def held_at_death_list(self, worker: Worker) -> SafeString | str:
        held = worker.held_at_death or []
        if not held:
            return "—"
        return format_html_join(
            ", ",
            '<a href="{}">{}</a> ({}: {})',
            (
                (
                    reverse("admin:runs_run_change", args=[r["run_id"]]),
                    r["run_id"],
                    r["pipeline"],
                    r["step"] or "-",
                )
                for r in held
            ),
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Worker]:
        """Each row carries the database's time, read once per page: liveness is judged by
        the clock the workers' heartbeats are written with, not by this host's."""
        checked_at = Value(db_now(), output_field=DateTimeField())
        workers: QuerySet[Worker] = super().get_queryset(request)
        return workers.annotate(checked_at=checked_at)

    @admin.display(description="State", ordering="state")
    def state_badge(self, worker: Worker) -> SafeString:
        if worker.forgotten_at is not None:
            return badge("quiet", "forgotten")
        if _is_dead(worker):
            return badge("failed", "dead")
        return badge(worker.state, worker.get_state_display())

    @admin.display(description="Heartbeat", ordering="last_heartbeat")
    def heartbeat(self, worker: Worker) -> str:
        return format_age(worker.last_heartbeat, _checked_at(worker))

    @admin.display(description="Current runs")
    def current_runs(self, worker: Worker) -> SafeString | str:
        runs = list(Run.objects.running().filter(worker=worker).values_list("id", flat=True))
        if not runs:
            return "—"
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            ((reverse("admin:runs_run_change", args=[i]), i) for i in runs),
        )


def _checked_at(worker: Worker) -> datetime:
    """The database's time when the row was read (WorkerAdmin.get_queryset)."""
    checked_at = getattr(worker, "checked_at", None)
    return checked_at if isinstance(checked_at, datetime) else db_now()


def _is_dead(worker: Worker) -> bool:
    """Not stopped, and silent for longer than a lease (the same rule as Worker.objects.dead())."""
    cutoff = _checked_at(worker) - timedelta(seconds=orbit_settings.lease_seconds)
    return worker.state != WorkerState.STOPPED and worker.last_heartbeat < cutoff


class QueuePauseForm(forms.ModelForm):  # type: ignore[type-arg]
    """A queue's name follows the queue naming rule (runs.enqueueing.validate_queue)."""

    class Meta:
        model = QueuePause
        fields = ("queue", "reason")

    def clean_queue(self) -> str:
        try:
            return validate_queue(self.cleaned_data["queue"])
        except OrbitError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_reason(self) -> str:
        try:
            return validate_reason(self.cleaned_data["reason"])
        except OrbitError as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(QueuePause)
class QueuePauseAdmin(OrbitModelAdmin):
    """Paused queues: adding a row pauses a queue, deleting it resumes the queue, editing
    changes the reason; each through runs.pausing, so it is audited and a resume wakes the
    workers. Seen by whoever may view runs, changed by whoever may operate them."""

    form = QueuePauseForm
    list_display = ("queue", "paused_by", "paused_at", "reason")
    search_fields = ("queue",)

    class Media:
        css = ORBIT_CSS

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("paused_by", "paused_at") if obj is None else ("queue", "paused_by", "paused_at")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("queue", "reason") if obj is None else ("queue", "paused_by", "paused_at", "reason")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("runs.view_run"))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("runs.view_run"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("runs.operate_run"))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("runs.operate_run"))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("runs.operate_run"))

    def save_model(self, request: HttpRequest, obj: QueuePause, form: Any, change: bool) -> None:
        actor = _actor(request)
        if change:
            queue_pause_reason(obj.queue, obj.reason, actor=actor)
        else:
            queue_pause(obj.queue, reason=obj.reason, actor=actor)
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: QueuePause) -> None:
        queue_resume(obj.queue, actor=_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[QueuePause]) -> None:
        for row in list(queryset):
            queue_resume(row.queue, actor=_actor(request))


def _actor(request: HttpRequest) -> Actor:
    return Actor.from_request(request, AuditSource.ADMIN)
