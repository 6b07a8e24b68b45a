from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import models
from django.db.models import Exists, F, OuterRef, Q
from django.db.models.functions import Now
from django.utils import timezone

from orbit.core.conf import orbit_settings
from orbit.core.ids import uuid7


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # waiting for a worker, or for its retry time (available_at)
    RUNNING = "running", "Running"  # held by a worker under a lease
    SUCCEEDED = "succeeded", "Succeeded"  # every step succeeded
    FAILED = "failed", "Failed"  # a step ran out of retries, or the run was quarantined
    CANCELLED = "cancelled", "Cancelled"  # stopped by an operator


#: A run not finished yet: queued or held by a worker (what a unique key is held by).
ACTIVE_STATUSES = (RunStatus.PENDING, RunStatus.RUNNING)


class StepStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # not started, or waiting for its next attempt
    RUNNING = "running", "Running"  # an attempt is in progress
    SUCCEEDED = "succeeded", "Succeeded"  # its result is committed
    FAILED = "failed", "Failed"  # out of retries


class AttemptOutcome(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"  # the result was committed
    FAILED = "failed", "Failed"  # the step raised or returned a failed result
    TIMED_OUT = "timed_out", "Timed out"  # killed at its deadline
    CRASHED = "crashed", "Crashed"  # the process running it died
    INTERRUPTED = "interrupted", "Interrupted"  # its worker died or shut down; not the step's fault
    CANCELLED = "cancelled", "Cancelled"  # an operator cancelled the run


#: Upper bounds (seconds) of the duration histogram buckets; the last bucket is +Inf.
#: The metrics and the rollups of pruned runs (RunRollup) count in the same buckets.
DURATION_BUCKETS: tuple[float, ...] = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

#: Outcomes that spend the step's retry budget; the others are not the step's fault.
FAILED_OUTCOMES = (AttemptOutcome.FAILED, AttemptOutcome.TIMED_OUT, AttemptOutcome.CRASHED)


class WorkerState(models.TextChoices):
    STARTING = "starting", "Starting"
    RUNNING = "running", "Running"
    STOPPING = "stopping", "Stopping"  # draining after SIGTERM: claims nothing new
    STOPPED = "stopped", "Stopped"


class RunQuerySet(models.QuerySet["Run"]):
    def pending(self) -> RunQuerySet:
        return self.filter(status=RunStatus.PENDING)

    def running(self) -> RunQuerySet:
        return self.filter(status=RunStatus.RUNNING)

    def finished(self) -> RunQuerySet:
        return self.filter(status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED])

    def claimable(self) -> RunQuerySet:
        """Pending, due, of an enabled, unarchived pipeline, and held by no pause: what a
        worker may claim now (the claim statements of runs/store/ say the same in SQL)."""
        return (
            self.filter(status=RunStatus.PENDING, available_at__lte=Now())
            .of_runnable_pipelines()
            .unpaused()
        )

    def of_runnable_pipelines(self) -> RunQuerySet:
        """Runs of pipelines that may run them: enabled and not archived (a disabled or
        archived pipeline's queued runs are held, pipelines/archiving.py)."""
        return self.filter(pipeline__enabled=True, pipeline__archived_at__isnull=True)

    def unpaused(self) -> RunQuerySet:
        """Runs of no paused pipeline, on no paused queue (docs/FLOW-CONTROL.md)."""
        return self.filter(pipeline__paused_at__isnull=True).exclude(
            Exists(QueuePause.objects.filter(queue=OuterRef("queue")))
        )

    def paused(self) -> RunQuerySet:
        """Runs of a paused pipeline or on a paused queue: pending ones wait for a resume."""
        return self.filter(
            Q(pipeline__paused_at__isnull=False)
            | Exists(QueuePause.objects.filter(queue=OuterRef("queue")))
        )

    def interrupted(self) -> RunQuerySet:
        """Running, but the lease ran out by the database clock: the worker is gone."""
        return self.filter(status=RunStatus.RUNNING, lease_expires_at__lt=Now())


class Run(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    # No index of its own: run_pipeline_idx (and run_pipeline_claimable_idx) lead with
    # the pipeline, so one more would cost every insert and serve no query.
    # No foreign-key constraint either: its check ran once per run inserted (with a step's
    # run's, a fifth of a batch's enqueue), against a row the insert already checks and
    # locks once (orbit_pipelines_held).
    # A pipeline with runs is still never deleted: Django refuses (PROTECT), and on
    # PostgreSQL so does the database, whoever deletes it (runs/store/sql/functions.sql
    # `create_refuse_orphans`; docs/ARCHITECTURE.md, "A run's tree").
    pipeline = models.ForeignKey(
        "pipelines.Pipeline",
        on_delete=models.PROTECT,
        related_name="runs",
        db_index=False,
        db_constraint=False,
    )
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    metadata = models.JSONField(default=dict, blank=True)
    priority = models.IntegerField(default=0, help_text="Higher runs first.")
    queue = models.CharField(max_length=64, default="default")
    available_at = models.DateTimeField(
        db_default=Now(), help_text="Not claimed before this time (retry backoff)."
    )
    fence = models.PositiveIntegerField(
        default=0,
        help_text="Incremented by every claim; every write the claimant makes is conditional "
        "on it, so one that lost the run writes nothing.",
    )
    # Indexed only where set (run_worker_idx): a pending or finished run has no worker,
    # and an index entry for each of them would cost every insert and serve no query.
    worker = models.ForeignKey(
        "runs.Worker",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
        db_index=False,
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    current_step = models.CharField(
        max_length=100,
        blank=True,
        help_text="The step running, or to run next when the run is pending (runs/planner.py).",
    )
    interruptions = models.PositiveIntegerField(default=0)
    running_time = models.FloatField(
        default=0.0,
        help_text="Seconds spent running: the sum of the durations its attempts recorded "
        "(what charts and percentiles use; idle time before retries is not in it).",
    )
    rerun_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reruns",
        db_index=False,  # run_rerun_of_idx: only the few runs that are reruns
        help_text="The run this one runs again (with the same or edited metadata).",
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    unique_key = models.CharField(
        max_length=255,
        null=True,
        blank=True,
        help_text="At most one pending or running run of its pipeline holds a key; "
        "enqueueing another returns that run (docs/FLOW-CONTROL.md).",
    )
    scheduled_for = models.DateTimeField(
        null=True, blank=True, help_text="The cron slot this run was created for."
    )
    trace_context = models.JSONField(
        default=dict,
        blank=True,
        help_text="The enqueuing code's trace context (W3C traceparent, tracestate), the "
        "parent of the run's spans; empty while tracing is off (docs/TRACING.md).",
    )
    created_at = models.DateTimeField(db_default=Now())

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        # Operating runs is not editing them (runs are never edited): see orbit/core/roles.py.
        permissions = [("operate_run", "Can run, retry, cancel and resume runs")]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=RunStatus.values), name="run_status_valid"
            ),
            models.UniqueConstraint(
                fields=["pipeline", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="run_unique_idempotency_key",
            ),
            models.UniqueConstraint(
                fields=["pipeline", "unique_key"],
                condition=Q(unique_key__isnull=False, status__in=list(ACTIVE_STATUSES)),
                name="run_unique_key_active",
            ),
            models.UniqueConstraint(
                fields=["pipeline", "scheduled_for"],
                condition=Q(scheduled_for__isnull=False),
                name="run_unique_schedule_slot",
            ),
        ]
        indexes = [
            # Exactly the claimable rows: claiming costs the same with ten or ten
            # million finished runs in the table.
            models.Index(
                F("queue"),
                F("priority").desc(),
                F("available_at"),
                condition=Q(status="pending"),
                name="run_claimable_idx",
            ),
            # Each pipeline's claimable rows in claim order: PostgreSQL's claim reads
            # every pipeline it may take through it, so runs it may not take (a backlog
            # a flow limit holds, a paused pipeline's) are never read; and a claim under
            # a limit reads the few runs its room admits, not every run the pipeline ever
            # had (runs/store/sql/functions.sql `create_claim`, `create_due_under_limits`).
            models.Index(
                F("pipeline"),
                F("priority").desc(),
                F("available_at"),
                condition=Q(status="pending"),
                name="run_pipeline_claimable_idx",
            ),
            models.Index(
                fields=["worker"], condition=Q(worker__isnull=False), name="run_worker_idx"
            ),
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(status="running"),
                name="run_running_lease_idx",
            ),
            models.Index(F("created_at").desc(), F("id").desc(), name="run_created_idx"),
            models.Index(
                F("status"), F("created_at").desc(), F("id").desc(), name="run_status_created_idx"
            ),
            models.Index(
                F("pipeline"), F("created_at").desc(), F("id").desc(), name="run_pipeline_idx"
            ),
            models.Index(
                fields=["finished_at"],
                condition=Q(finished_at__isnull=False),
                name="run_finished_idx",
            ),
            models.Index(
                fields=["rerun_of"],
                condition=Q(rerun_of__isnull=False),
                name="run_rerun_of_idx",
            ),
        ]

    def __str__(self) -> str:
        return str(self.id)

    @property
    def due_later(self) -> datetime | None:
        """`delayed_until` by this process's clock: what the dashboard shows as
        "scheduled for"."""
        return self.delayed_until(timezone.now())

    def delayed_until(self, now: datetime) -> datetime | None:
        """When this pending run becomes claimable, if that is still to come: a delayed
        run (runs.enqueueing) or a retry's backoff; None otherwise."""
        if self.status == RunStatus.PENDING and self.available_at and self.available_at > now:
            return self.available_at
        return None

    @property
    def is_finished(self) -> bool:
        return self.status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)

    @property
    def duration(self) -> float | None:
        """Deprecated (the API's `duration`): seconds from the first claim to the finish,
        idle time before retries included. Prefer `running_time` or `elapsed_time`."""
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    @property
    def elapsed_time(self) -> float | None:
        """Seconds from creation to finish, waits and backoffs included; None until it finishes."""
        if self.finished_at is None or self.created_at is None:
            return None
        return max((self.finished_at - self.created_at).total_seconds(), 0.0)


class Step(models.Model):
    # No index of its own: both unique constraints below start with the run. No foreign-key
    # constraint: a step is only ever inserted by the statement that inserts its run, and
    # its check ran once per step; a run is deleted with its steps (Django's cascade, the
    # pruner), and on PostgreSQL the database refuses to delete one that still has steps
    # (functions.sql `create_refuse_orphans`).
    run = models.ForeignKey(
        Run, on_delete=models.CASCADE, related_name="steps", db_index=False, db_constraint=False
    )
    name = models.CharField(max_length=100)
    position = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=StepStatus.choices, default=StepStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="Attempts recorded, all outcomes.")
    failures = models.PositiveIntegerField(
        default=0, help_text="Failed attempts since the last retry: the spent retry budget."
    )
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    error_type = models.CharField(max_length=255, blank=True)
    traceback = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True, help_text="Seconds, last attempt.")

    class Meta:
        ordering = ["run", "position"]
        # No index on a column the claim or the commit changes (status, the times, the
        # result, the counts): each of a run's steps is updated twice as it runs, and
        # with no index to change, on a page with room (the table's fill factor is 50 on
        # PostgreSQL, migration 0027), PostgreSQL rewrites the row in place (a HOT update)
        # instead of adding an entry to every index for each version. So the step list by
        # status reads steps newest first (orbit/api/runs.py `list_steps`).
        constraints = [
            models.UniqueConstraint(fields=["run", "position"], name="step_unique_position"),
            models.UniqueConstraint(fields=["run", "name"], name="step_unique_name"),
            models.CheckConstraint(
                condition=Q(status__in=StepStatus.values), name="step_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class StepAttempt(models.Model):
    """One try at a step, kept forever: the retry history operators read."""

    # No index of its own: attempt_unique_number starts with the step.
    # No foreign-key constraints to the step and the run (migration 0028): their checks ran
    # once per attempt inserted, a tenth of a worker's commit (`make bench-commit`), for
    # rows the commit writes under the run's fence. An attempt is deleted with its run
    # (Django's cascade, the pruner), and on PostgreSQL the database refuses to delete a
    # run or a step that still has attempts (functions.sql `create_attempts_kept`;
    # docs/ARCHITECTURE.md, "A run's tree").
    step = models.ForeignKey(
        Step,
        on_delete=models.CASCADE,
        related_name="attempt_records",
        db_index=False,
        db_constraint=False,
    )
    run = models.ForeignKey(
        Run, on_delete=models.CASCADE, related_name="attempts", db_constraint=False
    )
    number = models.PositiveIntegerField()
    outcome = models.CharField(max_length=16, choices=AttemptOutcome.choices)
    error = models.TextField(blank=True)
    error_type = models.CharField(max_length=255, blank=True)
    traceback = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(db_default=Now())
    duration = models.FloatField(null=True, blank=True)
    backoff_delay = models.FloatField(
        null=True, blank=True, help_text="Seconds waited before the next attempt, if any."
    )
    worker = models.ForeignKey(
        "runs.Worker", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["step", "number"]
        constraints = [
            models.UniqueConstraint(fields=["step", "number"], name="attempt_unique_number"),
            models.CheckConstraint(
                condition=Q(outcome__in=AttemptOutcome.values), name="attempt_outcome_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["finished_at"], name="attempt_finished_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.step_id} #{self.number} {self.outcome}"


class StepLog(models.Model):
    """One log record a step's code wrote, streamed to the database while the step runs.

    Append-only: the worker writes an attempt's new records in batches about every half
    second (runs/worker/loop.py), fenced like every write of the run's claimant, so what
    reached the database survives a cancel, a timeout or a killed worker. An attempt keeps
    its first ORBIT_MAX_LOG_RECORDS records and then one record saying the rest were not
    kept (runs/supervision.py `LogBuffer`). Read in (attempt, sequence) order.
    """

    # No indexes of their own: steplog_unique_sequence starts with the run and the step.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+", db_index=False)
    step = models.ForeignKey(
        Step, on_delete=models.CASCADE, related_name="log_records", db_index=False
    )
    attempt = models.PositiveIntegerField(help_text="The attempt that wrote it (1-based).")
    sequence = models.PositiveIntegerField(help_text="Its place within the attempt (0-based).")
    time = models.DateTimeField(help_text="When the step logged it (the step's clock).")
    level = models.CharField(max_length=16)
    message = models.TextField()
    fields = models.JSONField(default=dict, blank=True, help_text="The record's `extra` fields.")

    class Meta:
        ordering = ["step", "attempt", "sequence"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "step", "attempt", "sequence"], name="steplog_unique_sequence"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.step_id} #{self.attempt}.{self.sequence} {self.level}"

    def as_record(self) -> dict[str, Any]:
        """The record as the API and the pages show it (before redaction)."""
        return {
            "time": self.time.isoformat(),
            "level": self.level,
            "message": self.message,
            "fields": self.fields or {},
            "attempt": self.attempt,
            "sequence": self.sequence,
        }


class WorkerQuerySet(models.QuerySet["Worker"]):
    def active(self) -> WorkerQuerySet:
        """Not stopped, and not forgotten by an operator."""
        return self.exclude(state=WorkerState.STOPPED).filter(forgotten_at__isnull=True)

    def alive(self) -> WorkerQuerySet:
        return self.active().filter(last_heartbeat__gte=_heartbeat_cutoff())

    def dead(self) -> WorkerQuerySet:
        """Not stopped, yet silent for longer than a lease: killed, frozen or cut off."""
        return self.active().filter(last_heartbeat__lt=_heartbeat_cutoff())


def _heartbeat_cutoff() -> Any:
    return models.ExpressionWrapper(
        Now() - timedelta(seconds=orbit_settings.lease_seconds),
        output_field=models.DateTimeField(),
    )


class Worker(models.Model):
    name = models.CharField(max_length=200, unique=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    concurrency = models.PositiveIntegerField(default=1)
    queues = models.JSONField(default=list, blank=True)
    state = models.CharField(
        max_length=16, choices=WorkerState.choices, default=WorkerState.STARTING
    )
    started_at = models.DateTimeField(db_default=Now())
    last_heartbeat = models.DateTimeField(db_default=Now())
    stopped_at = models.DateTimeField(null=True, blank=True)
    succeeded_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    definitions = models.JSONField(
        default=dict,
        blank=True,
        help_text="The pipeline definitions it loaded, each with its step names: the runs "
        "it can claim (runs of other pipelines wait for a worker that defines them).",
    )
    died_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When a recovery sweep found it silent for longer than a lease without "
        "having stopped; it died soon after its last heartbeat.",
    )
    held_at_death = models.JSONField(
        default=list,
        blank=True,
        help_text="The runs it held when it was found dead (run, pipeline, step); "
        "recovery put them back in the queue.",
    )
    forgotten_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When an operator removed this dead worker from the lists; its attempts "
        "still name it.",
    )

    objects = WorkerQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["state", "last_heartbeat"], name="worker_state_idx")]

    def __str__(self) -> str:
        return self.name


class RunRollup(models.Model):
    """The figures of pruned runs, per pipeline and hour, so charts outlive the rows.

    Retention (runs/retention.py) adds a batch's figures here in the transaction that
    deletes its rows, so every run counts once: in the runs table while it is kept, here
    once it is pruned. Readers (runs/metrics.py) add both. Runs count in the hour they
    finished, attempts in the hour they finished; histograms hold per-bucket counts (not
    cumulative) over DURATION_BUCKETS, the last bucket being +Inf.
    """

    pipeline = models.ForeignKey(
        "pipelines.Pipeline", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    hour = models.DateTimeField(help_text="The hour's start, UTC.")
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    run_durations = models.JSONField(
        default=list, blank=True, help_text="Succeeded and failed runs per duration bucket."
    )
    run_seconds = models.FloatField(default=0.0, help_text="Their durations, summed.")
    attempts = models.JSONField(default=dict, blank=True, help_text="Attempts by outcome.")
    retries = models.PositiveIntegerField(default=0, help_text="Attempts after a step's first.")
    attempt_durations = models.JSONField(
        default=list, blank=True, help_text="Attempts with a duration, per duration bucket."
    )
    attempt_seconds = models.FloatField(default=0.0)

    class Meta:
        ordering = ["hour", "pipeline"]
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "hour"], name="rollup_unique_hour"),
        ]
        indexes = [models.Index(fields=["hour"], name="rollup_hour_idx")]

    def __str__(self) -> str:
        return f"{self.pipeline_id} {self.hour:%Y-%m-%d %H:00}"


class QueuePause(models.Model):
    """A paused queue: while its row exists, no claim takes a run on it (runs/pausing.py).

    A table of its own rather than a column on runs: a queue has no row anywhere else (it
    exists as soon as a run names it), and the claim statements test "no row here for this
    queue" by primary key, one probe per claim. Pausing writes a row, resuming deletes it.
    """

    queue = models.CharField(max_length=64, primary_key=True)
    paused_at = models.DateTimeField(db_default=Now(), editable=False)
    paused_by = models.CharField(
        max_length=150, editable=False, help_text="Who paused it, as named then."
    )
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["queue"]
        verbose_name = "queue pause"

    def __str__(self) -> str:
        return f"queue {self.queue}"


class RateWindow(models.Model):
    """The recent claims one rate limit has admitted (pipelines/limits.py `admit`): a named
    limit's, shared by the pipelines naming it, or one pipeline's own (`pipeline:<name>`).
    Read and written only under the limits' lock (runs/store/), so one row is never
    updated by two claimers at once."""

    name = models.CharField(max_length=200, primary_key=True)
    #: The admitted claims still inside the window, as seconds since the epoch by the
    #: database clock, oldest first; at most the limit's count.
    starts = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # to be sent at next_attempt_at (a first try or a retry)
    SUCCEEDED = "succeeded", "Succeeded"  # the receiver answered 2xx
    FAILED = "failed", "Failed"  # out of attempts, or its target was refused (SSRF guard)
    ABANDONED = "abandoned", "Abandoned"  # its endpoint was disabled or deleted first


class WebhookQuerySet(models.QuerySet["Webhook"]):
    def enabled(self) -> WebhookQuerySet:
        return self.filter(enabled=True)


class Webhook(models.Model):
    """An endpoint that receives signed POSTs for the run events it wants (docs/WEBHOOKS.md).

    Deliveries are written in the transaction that records the event and sent by the
    workers; after ORBIT_WEBHOOK_DISABLE_AFTER failed attempts in a row the endpoint is
    disabled (and audited) until an admin enables it again.
    """

    name = models.CharField(max_length=100, help_text="What it is for, e.g. 'ops pager'.")
    url = models.URLField(
        max_length=2000, help_text="http(s) only; private addresses are refused by default."
    )
    events = models.JSONField(
        default=list, help_text="The event names it wants (runs/signals.py): run_failed, ..."
    )
    pipelines = models.JSONField(
        default=list, blank=True, help_text="Pipeline names it covers; empty: every pipeline."
    )
    secret = models.CharField(
        max_length=200, help_text="Signs each body (HMAC-SHA256); never shown after saving."
    )
    enabled = models.BooleanField(default=True)
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    updated_at = models.DateTimeField(auto_now=True, editable=False)

    objects = WebhookQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    def wants(self, event: str, pipeline: str) -> bool:
        return event in self.events and (not self.pipelines or pipeline in self.pipelines)


class WebhookDeliveryQuerySet(models.QuerySet["WebhookDelivery"]):
    def due(self) -> WebhookDeliveryQuerySet:
        """Pending, due, and not held by a live claim (an expired claim is taken over)."""
        return self.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=Now()).filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=Now())
        )


class WebhookDelivery(models.Model):
    """One event for one endpoint: written with the event, sent (and retried) by workers.

    A worker claims a delivery by setting `claimed_until` and a fresh `claim`; it writes
    the result only while its claim still holds, so two workers never both record one
    delivery, and a worker that died mid-send leaves a claim that expires and another
    worker sends it again (at least once: receivers dedupe by the Orbit-Webhook-Id header).
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    # No database constraint: a worker whose endpoint cache still lists an endpoint
    # deleted a moment ago must not fail a run's commit; the sender abandons such rows.
    endpoint = models.ForeignKey(
        Webhook, on_delete=models.CASCADE, related_name="deliveries", db_constraint=False
    )
    event = models.CharField(max_length=32)
    # The run's id, not a foreign key: the log outlives pruned runs (runs/retention.py).
    run_id = models.UUIDField(db_index=True)
    payload = models.JSONField()
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_default=Now())
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    claim = models.UUIDField(null=True, blank=True, editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    redelivery_of = models.UUIDField(
        null=True, blank=True, help_text="The delivery an admin sent again."
    )
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = WebhookDeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_due_idx",
                condition=Q(status="pending"),
            ),
            models.Index(fields=["endpoint", "-created_at"], name="delivery_endpoint_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.run_id} -> {self.endpoint_id}"
