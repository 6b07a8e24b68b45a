"""What the API reads and returns for webhook endpoints and their deliveries.

A secret is write-only: it is returned once, in the answer to the request that created
the endpoint (generated when none was given), and never again.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from ninja import Field, Schema
from pydantic import ConfigDict

EVENTS_HELP = (
    "Event names (docs/SIGNALS.md): run_succeeded, run_failed, run_cancelled, "
    "run_quarantined, run_recovered, step_retried, step_timed_out"
)


class WebhookOut(Schema):
    id: int
    name: str
    url: str
    events: list[str]
    pipelines: list[str] = Field(description="Pipelines it covers; empty: every pipeline")
    enabled: bool
    consecutive_failures: int
    disabled_at: datetime | None
    disabled_reason: str
    created_at: datetime
    updated_at: datetime


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(description="Shown once: keep it to verify signatures")


class WebhookIn(Schema):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=100)
    url: str = Field(..., min_length=1, max_length=2000, description="http(s); public addresses")
    events: list[str] = Field(..., min_length=1, max_length=20, description=EVENTS_HELP)
    pipelines: list[str] = Field(default_factory=list, max_length=200)
    secret: str | None = Field(
        None, min_length=16, max_length=200, description="Omit it for a generated one"
    )
    enabled: bool = True


class WebhookPatch(Schema):
    """Only the fields given change; null is refused like any other bad value."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=100)
    url: str | None = Field(None, min_length=1, max_length=2000)
    events: list[str] | None = Field(None, min_length=1, max_length=20, description=EVENTS_HELP)
    pipelines: list[str] | None = Field(None, max_length=200)
    secret: str | None = Field(None, min_length=16, max_length=200)
    enabled: bool | None = None


class DeliveryOut(Schema):
    id: uuid.UUID
    endpoint_id: int
    event: str
    run_id: uuid.UUID
    status: str
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_error: str
    response_code: int | None
    redelivery_of: uuid.UUID | None
    created_at: datetime
    finished_at: datetime | None
    payload: dict[str, Any] = Field(description="The body sent (no run metadata)")


class DeliveryPageOut(Schema):
    items: list[DeliveryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last")
