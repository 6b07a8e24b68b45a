"""The deliveries an event owes, written in the transaction that records the event.

`runs.signals.send` is the one place the engine's recorded outcomes become events, and
every caller hands it the events in the transaction of the write that recorded them
(runs/execution.py opens one with `transaction_for_events` around its store commit when
some endpoint is enabled). So a delivery exists exactly when its event was committed: a
rolled-back change leaves none, and a worker that dies after the commit leaves a row
that another worker sends.

With no enabled endpoint (the cached list, runs/webhooks/endpoints.py) nothing here
reads or writes: the engine's statement counts are unchanged. With some, an event one
of them wants costs two statements in its transaction: the runs, read in one SELECT, and
the deliveries, inserted in one.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from django.db import transaction

from orbit.core.ids import uuid7
from runs.models import Run, WebhookDelivery
from runs.webhooks import endpoints
from runs.webhooks.payloads import payload

#: (event name, run id, the event's details)
EventRecord = tuple[str, uuid.UUID, Mapping[str, Any]]


def transaction_for_events() -> AbstractContextManager[Any]:
    """A transaction around a store write whose events may owe deliveries, or nothing.

    The PostgreSQL store commits an outcome in one statement, in its own transaction;
    for deliveries to be written with it, the two need one transaction. While no
    endpoint is enabled none is opened: the statement is as it was.
    """
    return transaction.atomic() if endpoints.enabled() else nullcontext()


def write(events: Sequence[EventRecord]) -> list[WebhookDelivery]:
    """Insert the deliveries `events` owe, in the caller's transaction."""
    enabled = endpoints.enabled()
    if not enabled:
        return []
    wanted = {name for endpoint in enabled for name in endpoint.events}
    events = [event for event in events if event[0] in wanted]
    if not events:
        return []
    runs = Run.objects.select_related("pipeline").in_bulk({run_id for _, run_id, _ in events})
    rows = []
    for name, run_id, details in events:
        run = runs.get(run_id)
        if run is None:
            continue
        for endpoint in enabled:
            if not endpoint.wants(name, run.pipeline.name):
                continue
            delivery_id = uuid7()
            rows.append(
                WebhookDelivery(
                    id=delivery_id,
                    endpoint_id=endpoint.id,
                    event=name,
                    run_id=run_id,
                    payload=payload(delivery_id=delivery_id, event=name, run=run, details=details),
                )
            )
    if rows:
        WebhookDelivery.objects.bulk_create(rows)
    return rows
