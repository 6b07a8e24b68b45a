from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Now


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """A key a program sends as `Authorization: Bearer <key>`; it acts as its user.

    Only a hash of the key is stored: the key is shown once, when it is created.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'ci-deploys'.")
    prefix = models.CharField(
        max_length=16, unique=True, editable=False, help_text="Public part of the key, for lookup."
    )
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="The key is refused from this time on; empty: never."
    )

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def revoke(self) -> None:
        """Refuse the key from now on; the row stays, so who used what remains visible."""
        if self.revoked_at is None:
            self.revoked_at = Now()
            self.save(update_fields=["revoked_at"])
            self.refresh_from_db(fields=["revoked_at"])


class AuditSource(models.TextChoices):
    """Where an action came from."""

    ADMIN = "admin", "Admin"  # the Django admin at /admin/
    DASHBOARD = "dashboard", "Dashboard"  # the dashboard at /dashboard/
    API = "api", "API"  # the REST API at /api/, by token or staff session
    CLI = "cli", "CLI"  # `orbit ...` or `python manage.py ...`
    SCHEDULE = "schedule", "Schedule"  # a cron slot fired by a worker or `orbit fire-schedules`
    WORKER = "worker", "Worker"  # a worker acting on its own, e.g. resuming interrupted runs
    CODE = "code", "Code"  # Python code calling Orbit directly, e.g. `runs.enqueue()`


class AuditAction(models.TextChoices):
    """What was done."""

    RUN_CREATED = "run.created", "Run created"
    RUN_RETRIED = "run.retried", "Run retried"
    RUN_CANCELLED = "run.cancelled", "Run cancelled"
    RUN_RESUMED = "run.resumed", "Run resumed"
    RUN_RERUN = "run.rerun", "Rerun created"
    PIPELINE_CREATED = "pipeline.created", "Pipeline created"
    PIPELINE_CHANGED = "pipeline.changed", "Pipeline changed"
    PIPELINE_ENABLED = "pipeline.enabled", "Pipeline enabled"
    PIPELINE_DISABLED = "pipeline.disabled", "Pipeline disabled"
    PIPELINE_DELETED = "pipeline.deleted", "Pipeline deleted"
    PIPELINE_PAUSED = "pipeline.paused", "Pipeline paused"
    PIPELINE_RESUMED = "pipeline.resumed", "Pipeline resumed"
    PIPELINE_ARCHIVED = "pipeline.archived", "Pipeline archived"
    PIPELINE_UNARCHIVED = "pipeline.unarchived", "Pipeline unarchived"
    QUEUE_PAUSED = "queue.paused", "Queue paused"
    QUEUE_RESUMED = "queue.resumed", "Queue resumed"
    QUEUE_PAUSE_CHANGED = "queue.pause_changed", "Queue pause's reason changed"
    TOKEN_CREATED = "token.created", "API token created"
    TOKEN_REVOKED = "token.revoked", "API token revoked"
    WORKER_FORGOTTEN = "worker.forgotten", "Dead worker forgotten"
    WEBHOOK_CREATED = "webhook.created", "Webhook created"
    WEBHOOK_CHANGED = "webhook.changed", "Webhook changed"
    WEBHOOK_DELETED = "webhook.deleted", "Webhook deleted"
    WEBHOOK_DISABLED = "webhook.disabled", "Webhook disabled"
    WEBHOOK_ENABLED = "webhook.enabled", "Webhook enabled"
    WEBHOOK_REDELIVERED = "webhook.redelivered", "Webhook delivery sent again"


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def for_target(self, target: models.Model) -> AuditEventQuerySet:
        """The events about one row, newest first."""
        return self.filter(target_type=target._meta.label_lower, target_id=str(target.pk))


class AuditEvent(models.Model):
    """One state-changing action: who did what to which row, from where, and what changed.

    Rows are only ever added (orbit.core.audit.record), in the transaction of the change they
    describe, so a change that rolled back leaves no event. They never hold secrets.
    """

    created_at = models.DateTimeField(db_default=Now(), editable=False)
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    source = models.CharField(max_length=16, choices=AuditSource.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        # Indexed only where set (audit_user_idx): most events are a worker's, the CLI's or
        # code's, with no user, and an index entry for each of those cost every enqueue
        # and served no query (a lookup by user, as deleting one makes, implies NOT NULL).
        db_index=False,
        help_text="The user who acted; empty for the CLI, schedules, workers and code.",
    )
    actor = models.CharField(
        max_length=150,
        help_text="Who acted, as named then: a username, an OS user on the CLI, a worker.",
    )
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    target_type = models.CharField(max_length=100, help_text="e.g. runs.run, pipelines.pipeline")
    target_id = models.CharField(max_length=64)
    target_repr = models.CharField(max_length=200)
    changes = models.JSONField(default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "audit event"
        indexes = [
            models.Index(fields=["target_type", "target_id"], name="audit_target_idx"),
            models.Index(F("created_at").desc(), F("id").desc(), name="audit_created_idx"),
            models.Index(fields=["user"], name="audit_user_idx", condition=Q(user__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.actor} ({self.get_source_display()})"
