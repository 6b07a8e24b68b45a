from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models

if TYPE_CHECKING:
    from pipelines.definition import Pipeline as Definition


class PipelineQuerySet(models.QuerySet["Pipeline"]):
    def enabled(self) -> PipelineQuerySet:
        return self.filter(enabled=True)

    def scheduled(self) -> PipelineQuerySet:
        return self.enabled().exclude(schedule="")


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
        max_length=100, blank=True, help_text="Cron expression (five fields or @hourly, @daily...)."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PipelineQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["definition"], name="pipeline_definition_idx")]

    def __str__(self) -> str:
        return self.name

    @property
    def code(self) -> Definition | None:
        """The definition in code, or None when it is gone (the row then cannot start runs)."""
        from pipelines.registry import registry

        return registry.find(self.definition)

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled
        self.save(update_fields=["enabled", "updated_at"])

    def merged_metadata(self, metadata: dict[str, Any] | None) -> dict[str, Any]:
        return {**(self.default_metadata or {}), **(metadata or {})}
