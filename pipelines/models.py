from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import models
from django.db.models import Case, F, Q, When
from django.db.models.functions import Now

from pipelines.definition import Pipeline as Definition
from pipelines.definition import registry
from pipelines.schedules import schedule_validator, validate_schedule


class ScheduleSource(models.TextChoices):
    """Where the schedule in force came from (docs/SCHEDULES.md, "Code or operator")."""

    CODE = "code", "Code"  # the definition's `schedule=`: follows it on every sync
    OPERATOR = "operator", "Operator"  # changed in the database: code changes leave it be


#: Where a row's max_concurrency came from: the same rule as its schedule's source.
LimitSource = ScheduleSource


class PipelineQuerySet(models.QuerySet["Pipeline"]):
    def enabled(self) -> PipelineQuerySet:
        return self.filter(enabled=True)

    def limited(self) -> PipelineQuerySet:
        """Rows with a concurrency or rate limit (`Pipeline.is_limited`, as a query)."""
        return self.filter(Q(max_concurrency__isnull=False) | ~Q(rate_limit=""))

    def scheduled(self) -> PipelineQuerySet:
        return self.enabled().unarchived().exclude(schedule="")

    def unarchived(self) -> PipelineQuerySet:
        """The rows operators work with: archived ones are set aside (pipelines/archiving.py)."""
        return self.filter(archived_at__isnull=True)

    def archived(self) -> PipelineQuerySet:
        return self.filter(archived_at__isnull=False)

    def set_enabled(self, enabled: bool) -> int:
        """Enable or disable many rows; enabling resumes each schedule from its next slot."""
        if not enabled:
            return self.update(enabled=False, updated_at=Now())
        return self.update(enabled=True, updated_at=Now(), schedule_anchor=_anchor_on_enable())


class Pipeline(models.Model):
    """An operator's handle on a code definition: what it runs, when, and whether it may.

    Several rows may share one definition with different default metadata and schedules
    (`nightly-report-eu`, `nightly-report-us`).
    """

    name = models.CharField(max_length=100, unique=True)
    definition = models.CharField(
        max_length=100, help_text="Name of the pipeline definition in code that this runs."
    )
    description = models.TextField(blank=True)
    default_metadata = models.JSONField(default=dict, blank=True)
    schedule = models.CharField(
        max_length=100,
        blank=True,
        validators=[schedule_validator],
        help_text="Cron expression (five fields or @hourly, @daily...), in ORBIT_SCHEDULE_TIMEZONE.",
    )
    schedule_source = models.CharField(
        max_length=16,
        choices=ScheduleSource.choices,
        default=ScheduleSource.CODE,
        help_text="Code: the schedule follows the definition's in code. Operator: it was "
        "changed here, and changes in code leave it as it is.",
    )
    enabled = models.BooleanField(default=True)
    max_concurrency = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="The most runs of this pipeline running at once, over every worker "
        "(empty: no limit). docs/FLOW-CONTROL.md",
    )
    max_concurrency_source = models.CharField(
        max_length=16,
        choices=LimitSource.choices,
        default=LimitSource.CODE,
        help_text="Code: max_concurrency follows the definition's in code. Operator: it was "
        "changed here, and changes in code leave it as it is.",
    )
    rate_limit = models.CharField(
        max_length=100,
        blank=True,
        editable=False,
        help_text="The definition's rate limit: a name in ORBIT_RATE_LIMITS or a rate such "
        "as 20/minute (empty: none). Follows the code.",
    )
    schedule_anchor = models.DateTimeField(
        db_default=Now(),
        editable=False,
        help_text="Schedule slots at or before this time never fire: set when the row is "
        "created, enabled, or given a new schedule, so no past slot is caught up.",
    )
    paused_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="Set while paused: its queued runs wait, new ones are accepted and wait "
        "too, running ones finish (runs/pausing.py).",
    )
    paused_by = models.CharField(
        max_length=150, blank=True, editable=False, help_text="Who paused it, as named then."
    )
    pause_reason = models.CharField(max_length=500, blank=True, editable=False)
    archived_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="Set while archived: hidden from the pipelines page, it cannot start runs "
        "and its queued runs are not claimed; its runs stay visible. Only a row whose "
        "definition is gone from code is archived; a sync un-archives it when the "
        "definition comes back (pipelines/archiving.py).",
    )
    archived_by = models.CharField(
        max_length=150, blank=True, editable=False, help_text="Who archived it, as named then."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PipelineQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        # Enabling is an operator's switch; editing (change_pipeline) is an admin's: orbit/core/roles.py.
        permissions = [("operate_pipeline", "Can enable or disable pipelines")]
        indexes = [models.Index(fields=["definition"], name="pipeline_definition_idx")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Refuse an invalid schedule (InvalidSchedule), and re-anchor the schedule on change."""
        if self.schedule:
            validate_schedule(self.schedule)
        update_fields = kwargs.get("update_fields")
        anchored = not self._state.adding and (
            update_fields is None or {"enabled", "schedule"} & set(update_fields)
        )
        if anchored:
            self.schedule_anchor = _anchor_on_save(self.schedule)
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "schedule_anchor"}
        super().save(*args, **kwargs)
        if anchored or not isinstance(self.schedule_anchor, datetime):
            self.refresh_from_db(fields=["schedule_anchor"])

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None

    @property
    def is_limited(self) -> bool:
        """A concurrency or rate limit holds its runs (the rule `PipelineQuerySet.limited`
        writes as a query): they are claimed under the limits' lock, and their
        announcements are not plain ones."""
        return self.max_concurrency is not None or bool(self.rate_limit)

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    @property
    def code(self) -> Definition | None:
        """The definition in code, or None when it is gone (the row then cannot start runs)."""
        return registry.find(self.definition)

    @property
    def code_max_concurrency(self) -> int | None:
        """The definition's max_concurrency (None: none, or the definition is gone)."""
        code = self.code
        return None if code is None else code.max_concurrency

    @property
    def code_schedule(self) -> str | None:
        """The schedule the definition in code gives (None: the definition is gone)."""
        code = self.code
        return None if code is None else code.schedule

    def set_enabled(self, enabled: bool) -> None:
        """Enabling resumes the schedule from its next slot; disabled periods are not caught up."""
        self.enabled = enabled
        self.save(update_fields=["enabled", "updated_at"])

    def merged_metadata(self, metadata: dict[str, Any] | None) -> dict[str, Any]:
        return {**(self.default_metadata or {}), **(metadata or {})}


# Both anchors are evaluated by the database against the row as it is stored, so a stale
# instance or two operators saving at once cannot skip or repeat a slot.
def _anchor_on_enable() -> Case:
    return Case(When(enabled=False, then=Now()), default=F("schedule_anchor"))


def _anchor_on_save(schedule: str) -> Case:
    return Case(
        When(Q(enabled=False) | ~Q(schedule=schedule), then=Now()),
        default=F("schedule_anchor"),
    )
