"""The admin for pipelines: edit what admins own (description, schedule, default
metadata, enabled), and act: run now (with metadata), enable, disable, pause, resume,
archive (a pipeline whose definition is gone, after a confirmation), unarchive. Every save,
deletion and action is recorded in the audit trail (pipelines.lifecycle)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from orbit.console.admin.base import OrbitModelAdmin
from orbit.console.dashboard.present import pretty_json
from orbit.core.audit import Actor
from orbit.core.clock import db_now
from orbit.core.conf import orbit_settings
from orbit.core.exceptions import OrbitError
from orbit.core.limits import validate_metadata
from orbit.core.models import AuditSource
from pipelines.definition import NAME_RULE, is_valid_name, registry
from pipelines.lifecycle import limit_rule, record_deleted, record_saved, schedule_rule, snapshot
from pipelines.limits import rate_rule
from pipelines.models import Pipeline, ScheduleSource
from pipelines.schedules import describe_schedule
from pipelines.sources import MAX_CONCURRENCY, SCHEDULE, Followed
from runs.bulk import (
    archive_pipelines,
    parse_metadata,
    pause_pipelines,
    resume_pipelines,
    run_now,
    set_pipelines_enabled,
    unarchive_pipelines,
)
from runs.metrics import running_by_pipeline
from runs.pausing import pipeline_pause_of
from runs.scheduler import next_fire_time

#: The settings that follow their code until an operator changes them: each with the rule
#: that checks an edit, and the form field that shows its error.
FOLLOWED: tuple[tuple[Followed, Callable[[Pipeline, dict[str, Any]], dict[str, Any]], str], ...] = (
    (SCHEDULE, schedule_rule, "schedule_source"),
    (MAX_CONCURRENCY, limit_rule, "max_concurrency"),
)


class PipelineForm(forms.ModelForm):  # type: ignore[type-arg]
    """The definition is picked from the code definitions; the rest is the operator's."""

    class Meta:
        model = Pipeline
        fields = (
            "name",
            "definition",
            "description",
            "default_metadata",
            "schedule",
            "schedule_source",
            "enabled",
            "max_concurrency",
            "max_concurrency_source",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for optional in ("schedule_source", "max_concurrency_source"):
            if optional in self.fields:
                self.fields[optional].required = False
        if "definition" in self.fields:
            names = [d.name for d in registry.all()]
            self.fields["definition"] = forms.ChoiceField(
                choices=[(n, n) for n in names],
                help_text="The pipeline definition in code this row runs.",
            )

    def clean_name(self) -> Any:
        """The API's name rule (pipelines.definition): no spaces, newlines or escape codes."""
        name = self.cleaned_data.get("name")
        if not is_valid_name(name):
            raise forms.ValidationError(NAME_RULE.format(name=name))
        return name

    def clean(self) -> dict[str, Any]:
        """The code-or-operator rule (pipelines/sources.py) for each setting it governs: an
        edited value becomes the operator's; choosing "Code" takes the code's value now."""
        cleaned: dict[str, Any] = super().clean() or {}
        if self.instance.pk is None:
            return cleaned
        for setting, rule, shown_on in FOLLOWED:
            if not cleaned.get(setting.source):  # not sent: as it is
                cleaned[setting.source] = getattr(self.instance, setting.source)
            edited: dict[str, Any] = {
                field: cleaned.get(field)
                for field in (setting.field, setting.source)
                if field in self.changed_data
                and cleaned.get(field) != getattr(self.instance, field)
            }
            try:
                cleaned.update(rule(self.instance, edited))
            except OrbitError as exc:
                raise forms.ValidationError({shown_on: str(exc)}) from None
        return cleaned

    def clean_default_metadata(self) -> Any:
        value = self.cleaned_data.get("default_metadata")
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError("Default metadata must be a JSON object.")
        try:
            return validate_metadata(value)  # the same limits as the API's and every run's
        except OrbitError as exc:
            raise forms.ValidationError(str(exc)) from None


class RunNowForm(forms.Form):
    metadata = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 60, "spellcheck": "false"}),
        help_text="A JSON object, merged over each pipeline's default metadata. Empty means {}.",
    )


class ArchivedFilter(admin.SimpleListFilter):
    """Archived pipelines (pipelines/archiving.py) apart from the rest."""

    title = "archived"
    parameter_name = "archived"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "No"), ("yes", "Yes")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Pipeline]) -> QuerySet[Pipeline]:
        if self.value() == "yes":
            return queryset.filter(archived_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(archived_at__isnull=True)
        return queryset


@admin.register(Pipeline)
class PipelineAdmin(OrbitModelAdmin):
    form = PipelineForm
    list_display = (
        "name",
        "definition",
        "enabled",
        "paused",
        "archived",
        "schedule",
        "limits",
        "next_fire",
        "in_code",
    )
    list_filter = ("enabled", ArchivedFilter)
    search_fields = ("name", "definition", "description")
    actions = [
        "run_now_action",
        "enable_selected",
        "disable_selected",
        "pause_selected",
        "resume_selected",
        "archive_selected",
        "unarchive_selected",
    ]
    readonly_fields = (
        "paused",
        "archived",
        "steps_table",
        "schedule_explained",
        "code_schedule_shown",
        "next_fire",
        "default_metadata_masked",
        "code_max_concurrency_shown",
        "running_now",
        "rate_shown",
        "created_at",
        "updated_at",
    )

    class Media:
        css = {"all": ["orbit/dashboard.css"]}

    def get_fieldsets(self, request: HttpRequest, obj: Pipeline | None = None) -> Any:
        main = ("name", "definition", "description", "enabled", "paused", "archived")
        schedule = (
            "schedule",
            "schedule_source",
            "code_schedule_shown",
            "schedule_explained",
            "next_fire",
        )
        limits = (
            "max_concurrency",
            "max_concurrency_source",
            "code_max_concurrency_shown",
            "running_now",
            "rate_shown",
        )
        if obj is None:
            return (
                (None, {"fields": main[:-2]}),  # a new row is not paused or archived
                ("Schedule", {"fields": ("schedule",)}),
                ("Runs", {"fields": ("default_metadata",)}),
            )
        # Only an editor gets the field itself (its form must hold the real values); a
        # viewer sees it read-only with secrets masked.
        editable = self.has_change_permission(request, obj)
        metadata = "default_metadata" if editable else "default_metadata_masked"
        return (
            (None, {"fields": main}),
            ("Schedule", {"fields": schedule}),
            ("Limits", {"fields": limits}),
            ("Runs", {"fields": (metadata,)}),
            ("Steps (from code)", {"fields": ("steps_table",)}),
            ("History", {"fields": ("created_at", "updated_at")}),
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Pipeline | None = None) -> Any:
        if obj is None:
            return ()
        return ("name", "definition", *self.readonly_fields)

    @admin.display(description="Default metadata")
    def default_metadata_masked(self, pipeline: Pipeline) -> SafeString:
        return format_html('<pre class="code">{}</pre>', pretty_json(pipeline.default_metadata))

    def has_run_permission(self, request: HttpRequest) -> bool:
        """Starting runs is operating runs: the same permission as retry and cancel."""
        return bool(request.user.has_perm("runs.operate_run"))

    def has_operate_permission(self, request: HttpRequest) -> bool:
        """Enabling and disabling is an operator's; editing needs change_pipeline."""
        return bool(request.user.has_perm("pipelines.operate_pipeline"))

    # The admin runs these in its own transaction, so each event commits with its change.
    def save_model(
        self, request: HttpRequest, obj: Pipeline, form: ModelForm[Pipeline], change: bool
    ) -> None:
        before = snapshot(Pipeline.objects.get(pk=obj.pk)) if change else None
        if not change:
            obj.schedule_source = ScheduleSource.OPERATOR  # an operator's own row
        super().save_model(request, obj, form, change)
        record_saved(obj, before, actor=_actor(request))

    def delete_model(self, request: HttpRequest, obj: Pipeline) -> None:
        record_deleted(obj, actor=_actor(request))
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Pipeline]) -> None:
        actor = _actor(request)
        for row in queryset:
            record_deleted(row, actor=actor)
        super().delete_queryset(request, queryset)

    @admin.display(description="Limits")
    def limits(self, row: Pipeline) -> str:
        """The concurrency limit with what runs now, and the rate: "3 (1 running), veryfi"."""
        parts = []
        if row.max_concurrency is not None:
            running = running_by_pipeline([row.id]).get(row.id, 0)
            parts.append(f"{row.max_concurrency} at once ({running} running)")
        if row.rate_limit:
            parts.append(f"rate {row.rate_limit}")
        return ", ".join(parts) or "—"

    @admin.display(description="Code's max concurrency")
    def code_max_concurrency_shown(self, row: Pipeline) -> str:
        if row.code is None:
            return "— (not in code)"
        value = row.code_max_concurrency
        return "no limit" if value is None else str(value)

    @admin.display(description="Running now")
    def running_now(self, row: Pipeline) -> int:
        return running_by_pipeline([row.id]).get(row.id, 0)

    @admin.display(description="Rate limit (from code)")
    def rate_shown(self, row: Pipeline) -> str:
        rule = rate_rule(row.name, row.rate_limit, orbit_settings.rate_limits)
        if rule is None:
            return f"{row.rate_limit}: configured off" if row.rate_limit else "none"
        if rule.rate is None:
            return f"{row.rate_limit}: not configured in ORBIT_RATE_LIMITS, so its runs wait"
        shared = "" if "/" in row.rate_limit else f"{row.rate_limit}, shared by name: "
        return f"{shared}{rule.rate.limit} claims per {rule.rate.seconds} s"

    @admin.display(description="Next fire")
    def next_fire(self, row: Pipeline) -> str:
        when = next_fire_time(row)
        return when.strftime("%Y-%m-%d %H:%M %Z") if when else "—"

    @admin.display(description="In code", boolean=True)
    def in_code(self, row: Pipeline) -> bool:
        return row.code is not None

    @admin.display(description="Code's schedule")
    def code_schedule_shown(self, row: Pipeline) -> str:
        code = row.code_schedule
        if code is None:
            return "— (the definition is not in code)"
        return code or "none"

    @admin.display(description="Schedule reads")
    def schedule_explained(self, row: Pipeline) -> str:
        return describe_schedule(row.schedule) or "—"

    @admin.display(description="Steps")
    def steps_table(self, row: Pipeline) -> SafeString | str:
        definition = row.code
        if definition is None:
            return f"The definition {row.definition!r} is no longer in code: this pipeline cannot start runs."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (i + 1, s.name, s.max_retries, f"{s.timeout:g} s" if s.timeout else "default")
                for i, s in enumerate(definition.steps)
            ),
        )
        return format_html(
            '<table class="orbit-table"><thead><tr><th>#</th><th>Step</th><th>Retries</th>'
            "<th>Timeout</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.action(description="Run the selected pipelines now", permissions=["run"])
    def run_now_action(
        self, request: HttpRequest, queryset: QuerySet[Pipeline]
    ) -> HttpResponse | None:
        form = RunNowForm(request.POST if "apply" in request.POST else None)
        error = ""
        if form.is_valid():
            try:
                metadata = parse_metadata(form.cleaned_data["metadata"])
            except OrbitError as exc:
                error = str(exc)
            else:
                report = run_now(list(queryset), metadata, actor=_actor(request))
                self.message_user(
                    request,
                    report.message() + ".",
                    messages.SUCCESS if report.done else messages.WARNING,
                )
                return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Run pipelines now",
            "opts": self.model._meta,
            "pipelines": list(queryset),
            "form": form,
            "error": error,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "defaults": [
                (p.name, pretty_json(p.default_metadata)) for p in queryset if p.default_metadata
            ],
        }
        return TemplateResponse(
            request, "admin/pipelines/pipeline/run_now.html", context, status=400 if error else 200
        )

    @admin.action(description="Enable the selected pipelines", permissions=["operate"])
    def enable_selected(self, request: HttpRequest, queryset: QuerySet[Pipeline]) -> None:
        report = set_pipelines_enabled(list(queryset), True, actor=_actor(request))
        self.message_user(request, report.message() + ".", messages.SUCCESS)

    @admin.action(description="Disable the selected pipelines", permissions=["operate"])
    def disable_selected(self, request: HttpRequest, queryset: QuerySet[Pipeline]) -> None:
        report = set_pipelines_enabled(list(queryset), False, actor=_actor(request))
        self.message_user(request, report.message() + ".", messages.SUCCESS)

    @admin.action(description="Pause the selected pipelines", permissions=["operate"])
    def pause_selected(self, request: HttpRequest, queryset: QuerySet[Pipeline]) -> None:
        report = pause_pipelines(list(queryset), actor=_actor(request))
        self.message_user(request, report.message() + ".", messages.SUCCESS)

    @admin.action(description="Resume the selected paused pipelines", permissions=["operate"])
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[Pipeline]) -> None:
        report = resume_pipelines(list(queryset), actor=_actor(request))
        self.message_user(request, report.message() + ".", messages.SUCCESS)

    @admin.action(
        description="Archive the selected pipelines whose definition is gone",
        permissions=["operate"],
    )
    def archive_selected(
        self, request: HttpRequest, queryset: QuerySet[Pipeline]
    ) -> HttpResponse | None:
        page = self.ask_first(
            request,
            queryset,
            "Archive these pipelines? Their rows leave the dashboard's pipelines page and "
            "cannot start runs; their runs stay. Only pipelines whose definition is gone "
            "from code are archived.",
        )
        if page is not None:
            return page
        report = archive_pipelines(list(queryset), actor=_actor(request))
        self.message_user(
            request, report.message() + ".", messages.SUCCESS if report.done else messages.WARNING
        )
        return None

    @admin.action(description="Unarchive the selected pipelines", permissions=["operate"])
    def unarchive_selected(self, request: HttpRequest, queryset: QuerySet[Pipeline]) -> None:
        report = unarchive_pipelines(list(queryset), actor=_actor(request))
        self.message_user(request, report.message() + ".", messages.SUCCESS)

    @admin.display(description="Archived")
    def archived(self, obj: Pipeline) -> str:
        """`by alice, 2026-12-03 08:40`, or `no`."""
        if obj.archived_at is None:
            return "no"
        return f"by {obj.archived_by}, {obj.archived_at:%Y-%m-%d %H:%M}"

    @admin.display(description="Paused")
    def paused(self, obj: Pipeline) -> str:
        """`paused by alice 3 min ago (reason)`, or `no`."""
        pause = pipeline_pause_of(obj)
        if pause is None:
            return "no"
        why = f" ({pause.reason})" if pause.reason else ""
        return pause.describe(db_now()) + why


def _actor(request: HttpRequest) -> Actor:
    return Actor.from_request(request, AuditSource.ADMIN)
