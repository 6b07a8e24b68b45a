"""What the API returns for queues."""

from __future__ import annotations

from datetime import datetime

from ninja import Field, Schema


class QueueOut(Schema):
    queue: str
    pending: int = Field(description="Pending runs, due or delayed")
    due: int = Field(description="Pending runs due now (held, if the queue is paused)")
    running: int
    paused: bool = Field(description="Paused: no worker claims its runs until it is resumed")
    paused_at: datetime | None
    paused_by: str = Field(description="Who paused it, as named then (empty: not paused)")
    pause_reason: str
