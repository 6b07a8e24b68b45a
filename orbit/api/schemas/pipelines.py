"""What the API reads and returns for pipelines."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Field, Schema
from pydantic import ConfigDict

from orbit.core.conf import orbit_settings
from orbit.core.redaction import redact
from pipelines.definition import NAME_PATTERN
from pipelines.limits import MAX_CONCURRENCY, rate_rule
from pipelines.models import LimitSource, Pipeline, ScheduleSource
from pipelines.schedules import describe_schedule


class StepDefinitionOut(Schema):
    name: str
    max_retries: int
    timeout: float = Field(description="Seconds per attempt (ORBIT_DEFAULT_STEP_TIMEOUT if unset)")


class PipelineOut(Schema):
    id: int
    name: str
    definition: str
    description: str
    schedule: str = Field(description="The schedule in force (empty: none)")
    schedule_source: ScheduleSource = Field(
        description="code: it follows the definition's schedule in code; operator: it was "
        "changed here and code changes leave it be (docs/SCHEDULES.md)"
    )
    code_schedule: str | None = Field(
        description="The schedule the definition in code gives (null: not in code)"
    )
    schedule_description: str
    enabled: bool
    paused: bool = Field(
        description="Paused: its queued runs wait (new ones are accepted and wait too) until "
        "it is resumed; running runs finish"
    )
    paused_at: datetime | None
    paused_by: str = Field(description="Who paused it, as named then (empty: not paused)")
    pause_reason: str
    max_concurrency: int | None = Field(
        description="The most runs of it running at once over every worker (null: no limit)"
    )
    max_concurrency_source: LimitSource = Field(
        description="code: it follows the definition's max_concurrency; operator: it was "
        "changed here and code changes leave it be (docs/FLOW-CONTROL.md)"
    )
    code_max_concurrency: int | None = Field(
        description="The max_concurrency the definition in code gives (null: none)"
    )
    running: int = Field(description="Its runs running now, what max_concurrency counts")
    rate_limit: str = Field(
        description="Claims per period, from the code: a named limit (ORBIT_RATE_LIMITS) or "
        "a rate such as 20/minute; empty: none"
    )
    rate: str | None = Field(
        description="The rate in force as count/seconds (null: no rate limit, or a named one "
        "nobody configured, which holds the runs)"
    )
    archived: bool = Field(
        description="Archived: set aside because its definition is gone from code; it cannot "
        "start runs and its queued runs are held. A sync un-archives it when the "
        "definition comes back (docs/OPERATIONS.md)"
    )
    archived_at: datetime | None
    archived_by: str = Field(description="Who archived it, as named then (empty: not archived)")
    default_metadata: dict[str, Any]
    in_code: bool = Field(description="False when the code definition is gone: no runs start")
    upload_field: str | None = Field(
        description="The metadata key that receives a file sent to /runs/upload; null: none"
    )
    metadata_example: dict[str, Any] | None = Field(
        description="The metadata its steps expect, as the definition gives an example of it"
    )
    steps: list[StepDefinitionOut]
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_paused(obj: Pipeline) -> bool:
        return obj.is_paused

    @staticmethod
    def resolve_archived(obj: Pipeline) -> bool:
        return obj.is_archived

    @staticmethod
    def resolve_default_metadata(obj: Pipeline) -> Any:
        return redact(obj.default_metadata)

    @staticmethod
    def resolve_code_max_concurrency(obj: Pipeline) -> int | None:
        return obj.code_max_concurrency

    @staticmethod
    def resolve_running(obj: Pipeline) -> int:
        return int(getattr(obj, "running", 0))

    @staticmethod
    def resolve_rate(obj: Pipeline) -> str | None:
        rule = rate_rule(obj.name, obj.rate_limit, orbit_settings.rate_limits)
        return None if rule is None or rule.rate is None else str(rule.rate)

    @staticmethod
    def resolve_code_schedule(obj: Pipeline) -> str | None:
        return obj.code_schedule

    @staticmethod
    def resolve_schedule_description(obj: Pipeline) -> str:
        return describe_schedule(obj.schedule)

    @staticmethod
    def resolve_metadata_example(obj: Pipeline) -> dict[str, Any] | None:
        code = obj.code
        return None if code is None else code.metadata_example

    @staticmethod
    def resolve_in_code(obj: Pipeline) -> bool:
        return obj.code is not None

    @staticmethod
    def resolve_upload_field(obj: Pipeline) -> str | None:
        code = obj.code
        return code.upload_field or None if code is not None else None

    @staticmethod
    def resolve_steps(obj: Pipeline) -> list[dict[str, Any]]:
        code = obj.code
        if code is None:
            return []
        default = orbit_settings.default_step_timeout
        return [
            {"name": s.name, "max_retries": s.max_retries, "timeout": s.timeout or default}
            for s in code.steps
        ]


class PipelineDetailOut(PipelineOut):
    next_fire_time: datetime | None = Field(
        description="When the schedule next fires (None: no schedule, or disabled)"
    )
    success_rate: float | None = Field(
        description="Succeeded / (succeeded + failed) among runs finished in the last 24 hours"
    )


class PipelineIn(Schema):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=100, pattern=NAME_PATTERN.pattern, examples=["nightly-report"]
    )
    definition: str = Field(
        min_length=1, max_length=100, description="Name of a pipeline definition in code"
    )
    description: str | None = Field(None, max_length=10_000)
    schedule: str = Field("", max_length=100, description="Cron expression; empty: none")
    default_metadata: dict[str, Any] | None = None
    enabled: bool = True


class PipelinePatch(Schema):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(None, min_length=1, max_length=100, pattern=NAME_PATTERN.pattern)  # type: ignore[assignment]
    description: str = Field(None, max_length=10_000)  # type: ignore[assignment]
    schedule: str = Field(None, max_length=100, description="Cron expression; empty: none")  # type: ignore[assignment]
    schedule_source: ScheduleSource = Field(  # type: ignore[assignment]
        None,
        description="`code` makes the schedule follow the code again (taking its value now); "
        "changing `schedule` makes it the operator's",
    )
    default_metadata: dict[str, Any] = None  # type: ignore[assignment]
    enabled: bool = None  # type: ignore[assignment]
    max_concurrency: int | None = Field(
        None,
        ge=1,
        le=MAX_CONCURRENCY,
        description="null: no limit; setting it makes it the operator's",
    )
    max_concurrency_source: LimitSource = Field(  # type: ignore[assignment]
        None,
        description="`code` makes max_concurrency follow the code again (taking its value now)",
    )


class LimitsIn(Schema):
    """An operator's change to a pipeline's concurrency limit (PUT .../limits)."""

    model_config = ConfigDict(extra="forbid")

    max_concurrency: int | None = Field(
        None, ge=1, le=MAX_CONCURRENCY, description="The most runs running at once; null: no limit"
    )
    follow_code: bool = Field(
        False, description="True: take the definition's max_concurrency and follow it from now on"
    )


class PauseIn(Schema):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        "", max_length=500, description="Why, for the operators who will see it paused"
    )
