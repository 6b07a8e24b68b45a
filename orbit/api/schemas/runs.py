"""What the API reads and returns for runs, steps, workers and metrics."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.utils import timezone
from ninja import Field, Schema
from pydantic import ConfigDict

from orbit.api.idempotency import client_key
from orbit.core.redaction import redact, redact_logs
from runs.enqueueing import MAX_AHEAD, PRIORITY_RANGE
from runs.models import RunStatus, StepStatus

# --- Errors -----------------------------------------------------------------------------------


class ErrorOut(Schema):
    detail: str


class FieldErrorOut(Schema):
    field: str
    message: str


class ValidationErrorOut(Schema):
    detail: str
    errors: list[FieldErrorOut] = []


# --- Runs and steps ---------------------------------------------------------------------------

#: The longest delay_seconds, MAX_AHEAD in seconds: the schema states the bound `when` enforces.
LONGEST_DELAY = int(MAX_AHEAD.total_seconds())


class RunIn(Schema):
    model_config = ConfigDict(extra="forbid")

    metadata: dict[str, Any] | None = Field(
        None, description="The run's input, merged over the pipeline's default_metadata"
    )
    priority: int = Field(0, ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1], description="Higher first")
    queue: str | None = Field(
        None,
        description="The queue (null: the pipeline definition's, else 'default'); workers "
        "serve the queues given to `runworker --queue`",
    )
    run_after: datetime | None = Field(
        None,
        description="Not claimed before this moment (not in the past, at most "
        f"{MAX_AHEAD.days} days ahead; not with delay)",
    )
    delay_seconds: float | None = Field(
        None,
        ge=0,
        le=LONGEST_DELAY,
        description="Not claimed before this many seconds from now (at most "
        f"{MAX_AHEAD.days} days; not with run_after)",
    )
    unique_key: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="While a pending or running run of this pipeline holds this key, that "
        "run is returned (201) and no other is queued",
    )


#: The most runs one bulk request queues: a request body stays small (enqueue_many from
#: code takes runs.enqueueing.MAX_BATCH).
BULK_MAX = 1000


class RunBulkIn(Schema):
    model_config = ConfigDict(extra="forbid")

    runs: list[dict[str, Any] | None] = Field(
        min_length=1,
        max_length=BULK_MAX,
        description=f"One metadata object (or null) per run to queue, at most {BULK_MAX}",
    )
    priority: int = Field(0, ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1], description="Higher first")
    queue: str | None = Field(None, description="As for one run")
    run_after: datetime | None = Field(None, description="As for one run")
    delay_seconds: float | None = Field(None, ge=0, le=LONGEST_DELAY, description="As for one run")


class RerunIn(Schema):
    model_config = ConfigDict(extra="forbid")

    metadata: dict[str, Any] | None = Field(
        None,
        description="The new run's input (null: the original run's, as it was); merged over "
        "the pipeline's default_metadata",
    )


class AttemptOut(Schema):
    number: int
    outcome: str
    error: str
    error_type: str
    traceback: str
    started_at: datetime | None
    finished_at: datetime
    duration: float | None
    backoff_delay: float | None
    worker: str | None

    @staticmethod
    def resolve_worker(obj: Any) -> str | None:
        return obj.worker.name if obj.worker_id else None


class StepOut(Schema):
    id: int
    run_id: uuid.UUID
    name: str
    position: int
    status: StepStatus
    attempts: int
    failures: int
    result: Any = None
    error: str
    error_type: str
    started_at: datetime | None
    finished_at: datetime | None
    duration: float | None

    @staticmethod
    def resolve_result(obj: Any) -> Any:
        return redact(obj.result)


class StepWithAttemptsOut(StepOut):
    traceback: str
    attempt_records: list[AttemptOut]

    @staticmethod
    def resolve_attempt_records(obj: Any) -> list[Any]:
        return list(obj.attempt_records.all())


class StepDetailOut(StepWithAttemptsOut):
    pipeline: str

    @staticmethod
    def resolve_pipeline(obj: Any) -> str:
        return str(obj.run.pipeline.name)


class RunOut(Schema):
    id: uuid.UUID
    pipeline: str
    pipeline_id: int
    status: RunStatus
    metadata: dict[str, Any]
    priority: int
    queue: str
    fence: int = Field(description="Claims so far: the fence every write of the claimant holds to")
    attempt: int = Field(description="Deprecated: the same as `fence`, its former name")
    worker: str | None
    current_step: str
    interruptions: int
    error: str
    idempotency_key: str | None
    unique_key: str | None
    scheduled_for: datetime | None
    rerun_of: uuid.UUID | None = Field(description="The run this one runs again, if any")
    available_at: datetime
    delayed_until: datetime | None = Field(
        description="When a delayed pending run becomes claimable (shown as 'scheduled "
        "for'); null once that moment has passed, and for runs in any other state"
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    running_time: float = Field(
        description="Seconds spent running: the sum of the attempts' durations (so far)"
    )
    elapsed_time: float | None = Field(
        description="Seconds from creation to finish, waits included (null until it finishes)"
    )
    duration: float | None = Field(
        description="Deprecated: seconds from the first claim to the finish, idle time "
        "before retries included; use `running_time` or `elapsed_time`"
    )

    @staticmethod
    def resolve_pipeline(obj: Any) -> str:
        return str(obj.pipeline.name)

    @staticmethod
    def resolve_rerun_of(obj: Any) -> uuid.UUID | None:
        return obj.rerun_of_id  # type: ignore[no-any-return]

    @staticmethod
    def resolve_attempt(obj: Any) -> int:
        return int(obj.fence)

    @staticmethod
    def resolve_worker(obj: Any) -> str | None:
        return obj.worker.name if obj.worker_id else None

    @staticmethod
    def resolve_metadata(obj: Any) -> Any:
        return redact(obj.metadata)

    @staticmethod
    def resolve_idempotency_key(obj: Any) -> str | None:
        return client_key(obj.idempotency_key)

    @staticmethod
    def resolve_delayed_until(obj: Any) -> datetime | None:
        return obj.delayed_until(timezone.now())  # type: ignore[no-any-return]


class RunDetailOut(RunOut):
    steps: list[StepWithAttemptsOut]
    reruns: list[uuid.UUID] = Field(description="The runs that ran this one again, oldest first")

    @staticmethod
    def resolve_steps(obj: Any) -> list[Any]:
        return list(obj.steps.all())

    @staticmethod
    def resolve_reruns(obj: Any) -> list[uuid.UUID]:
        return [run.id for run in obj.reruns.all()]


class RunPageOut(Schema):
    items: list[RunOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last")


class StepPageOut(Schema):
    items: list[StepOut]
    next_cursor: str | None


class LogRecordOut(Schema):
    time: str
    level: str
    message: str
    fields: dict[str, Any] = {}
    attempt: int
    sequence: int = Field(description="Its place within the attempt, from 0")


class StepLogsOut(Schema):
    step_id: int
    step: str
    step_status: StepStatus = Field(description="While `running`, more records may come")
    records: list[LogRecordOut]
    next_cursor: str | None = Field(
        description="Pass as `after` to get only the records written since (null: none yet)"
    )
    more: bool = Field(description="More records are there already: ask again at once")

    @staticmethod
    def resolve_step_id(obj: Any) -> int:
        return int(obj.step.id)

    @staticmethod
    def resolve_step(obj: Any) -> str:
        return str(obj.step.name)

    @staticmethod
    def resolve_step_status(obj: Any) -> str:
        return str(obj.step.status)

    @staticmethod
    def resolve_records(obj: Any) -> list[Any]:
        return redact_logs(obj.records)


# --- Workers and metrics ----------------------------------------------------------------------


class WindowStatsOut(Schema):
    window: str
    seconds: float
    finished: int
    succeeded: int
    failed: int
    cancelled: int
    success_rate: float | None
    throughput_per_minute: float
    duration_p50: float | None
    duration_p95: float | None


class StatsOut(Schema):
    at: datetime
    pending: int
    running: int
    interrupted: int
    queue_depth: int
    delayed: int
    oldest_pending_age: float | None
    last_hour: WindowStatsOut
    last_day: WindowStatsOut


class HeldRunOut(Schema):
    run_id: str
    pipeline: str
    step: str


class WorkerOut(Schema):
    id: int
    name: str
    hostname: str
    pid: int
    state: str
    alive: bool
    dead: bool = Field(description="Not stopped, yet silent for longer than a lease")
    concurrency: int
    queues: list[str]
    started_at: datetime
    last_heartbeat: datetime
    heartbeat_age: float
    current_runs: int
    succeeded_count: int
    failed_count: int
    died_at: datetime | None = Field(
        description="A dead worker's time of death (at the latest its last heartbeat)"
    )
    held_at_death: list[HeldRunOut] = Field(
        description="The runs a dead worker held when it was found dead (recovered since)"
    )
    definitions: list[str] = Field(description="The pipeline definitions it can run")


class WorkerForgottenOut(Schema):
    id: int
    name: str
    forgotten_at: datetime


class WaitingRunsOut(Schema):
    definition: str
    queue: str
    runs: int = Field(description="Due runs no live worker can claim")
    steps: list[str] = Field(description="Their steps no live worker defines (empty: the pipeline)")
    reason: str


class PauseOut(Schema):
    paused_at: datetime
    paused_by: str = Field(description="Who paused it, as named then")
    reason: str


class HeldOut(Schema):
    kind: str = Field(description="queue or pipeline")
    name: str
    pause: PauseOut
    pending: int = Field(description="Its pending runs, which wait for its resume")
    reason: str


class WorkerHealthOut(Schema):
    status: str = Field(description="healthy, degraded or down")
    reason: str
    alive: int
    dead: int = Field(description="Workers that died within ORBIT_DEAD_WORKER_WINDOW")
    dead_total: int = Field(description="Dead workers not forgotten, however long ago")
    interrupted_runs: int
    waiting: list[WaitingRunsOut] = Field(
        description="Due runs waiting for a worker that defines their pipeline (and steps)"
    )
    paused: list[HeldOut] = Field(
        description="Paused queues and pipelines with the pending runs each holds (not a fault: "
        "the status stays healthy; the reason names those holding runs)"
    )
    workers: list[WorkerOut]


class MinuteOut(Schema):
    minute: datetime
    succeeded: int
    failed: int
    cancelled: int


class StepFailureRateOut(Schema):
    pipeline: str
    step: str
    attempts: int
    failures: int
    retries: int
    failure_rate: float | None


class PipelineFiguresOut(Schema):
    pipeline: str
    pending: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    success_rate: float | None
    duration_p50: float | None
    duration_p95: float | None


class MetricsOut(Schema):
    at: datetime
    runs_per_minute: list[MinuteOut] = Field(description="Last hour, by outcome")
    step_failure_rates: list[StepFailureRateOut] = Field(description="Last hour")
    most_failing_steps: list[StepFailureRateOut] = Field(description="Last hour")
    pipelines: list[PipelineFiguresOut] = Field(description="Last 24 hours")
