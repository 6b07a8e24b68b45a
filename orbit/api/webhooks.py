"""/api/webhooks: webhook endpoints and their delivery log, for admins only (they hold
secrets and make the workers reach addresses: docs/WEBHOOKS.md). Validation and the
audit trail live in runs/webhook_lifecycle.py; a bad field is a 422 naming it."""

from __future__ import annotations

import uuid
from typing import Any

from django.http import HttpRequest
from ninja import Router, Status

from orbit.api.pagination import by_created
from orbit.api.runs import CURSOR, LIMIT, api_actor
from orbit.api.schemas.runs import ErrorOut, ValidationErrorOut
from orbit.api.schemas.webhooks import (
    DeliveryOut,
    DeliveryPageOut,
    WebhookCreatedOut,
    WebhookIn,
    WebhookOut,
    WebhookPatch,
)
from orbit.web.auth import allow
from runs.models import Webhook, WebhookDelivery
from runs.webhook_lifecycle import (
    delivery_redeliver,
    get_webhook,
    webhook_create,
    webhook_delete,
    webhook_enable,
    webhook_update,
)

router = Router(tags=["webhooks"])

ERRORS: dict[int, Any] = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ValidationErrorOut}
BODY_ERRORS: dict[int, Any] = {**ERRORS, 400: ErrorOut, 409: ErrorOut, 413: ErrorOut}
READ = allow("runs.view_webhook")
CHANGE = allow("runs.change_webhook")


@router.get("", response={200: list[WebhookOut], **ERRORS}, auth=READ)
def list_webhooks(request: HttpRequest) -> Any:
    """Every endpoint (secrets are never shown)."""
    return list(Webhook.objects.all())


@router.post("", response={201: WebhookCreatedOut, **BODY_ERRORS}, auth=allow("runs.add_webhook"))
def create_webhook(request: HttpRequest, payload: WebhookIn) -> Any:
    """A new endpoint; the answer holds its secret, once (generated when none is given)."""
    values = payload.model_dump(exclude_none=True)
    hook = webhook_create(values, actor=api_actor(request))
    return Status(201, hook)


@router.get("/{webhook_id}", response={200: WebhookOut, **ERRORS}, auth=READ)
def get_webhook_detail(request: HttpRequest, webhook_id: int) -> Any:
    return get_webhook(webhook_id)


@router.patch("/{webhook_id}", response={200: WebhookOut, **BODY_ERRORS}, auth=CHANGE)
def update_webhook(request: HttpRequest, webhook_id: int, payload: WebhookPatch) -> Any:
    """Change the given fields; nothing changes when one is refused."""
    return webhook_update(
        webhook_id, payload.model_dump(exclude_unset=True), actor=api_actor(request)
    )


@router.delete("/{webhook_id}", response={204: None, **ERRORS}, auth=allow("runs.delete_webhook"))
def delete_webhook(request: HttpRequest, webhook_id: int) -> Any:
    """Delete the endpoint and its delivery log."""
    webhook_delete(webhook_id, actor=api_actor(request))
    return Status(204, None)


@router.post("/{webhook_id}/enable", response={200: WebhookOut, **ERRORS}, auth=CHANGE)
def enable_webhook(request: HttpRequest, webhook_id: int) -> Any:
    """Enable an endpoint the workers disabled; its failure count starts again from 0."""
    return webhook_enable(webhook_id, actor=api_actor(request))


@router.get(
    "/{webhook_id}/deliveries",
    response={200: DeliveryPageOut, **ERRORS},
    auth=allow("runs.view_webhookdelivery"),
)
def list_deliveries(
    request: HttpRequest,
    webhook_id: int,
    status: str | None = None,
    limit: int = LIMIT,
    cursor: str | None = CURSOR,
) -> Any:
    """The endpoint's deliveries, newest first (status: pending, succeeded, failed, abandoned)."""
    hook = get_webhook(webhook_id)
    rows = WebhookDelivery.objects.filter(endpoint=hook)
    if status:
        rows = rows.filter(status=status)
    page = by_created(rows, limit=limit, cursor=cursor)
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.post(
    "/deliveries/{delivery_id}/redeliver", response={201: DeliveryOut, **BODY_ERRORS}, auth=CHANGE
)
def redeliver(request: HttpRequest, delivery_id: uuid.UUID) -> Any:
    """Send a delivery's payload again now, as a new delivery with its own id."""
    return Status(201, delivery_redeliver(delivery_id, actor=api_actor(request)))
