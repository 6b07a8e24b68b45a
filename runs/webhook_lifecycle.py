"""What admins do to webhooks: create, change, delete, enable again, send a delivery again.

Every change is validated first (a URL the SSRF guard accepts, known event names, known
pipelines) and refused whole with `InvalidWebhook` (the API answers 422, the admin shows
the message), and audited in its transaction. Secrets never enter the audit trail: a
changed secret is recorded as changed, not as its value.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction
from django.db.models.functions import Now

from orbit.core.audit import Actor, record
from orbit.core.exceptions import DeliveryNotFound, InvalidWebhook, TargetRefused, WebhookNotFound
from orbit.core.ids import uuid7
from orbit.core.models import AuditAction
from orbit.core.text import UNSTORABLE, storable
from pipelines.models import Pipeline
from runs.models import Webhook, WebhookDelivery
from runs.signals import ALL as EVENTS
from runs.webhooks import targets
from runs.webhooks.sending import audited_reason

#: The fields an admin sets; `secret` is write-only.
FIELDS = ("name", "url", "events", "pipelines", "secret", "enabled")
MIN_SECRET_CHARS = 16


def new_secret() -> str:
    """A secret for an endpoint created without one: 256 random bits."""
    return secrets.token_urlsafe(32)


def clean_events(events: Any) -> list[str]:
    if not isinstance(events, list | tuple) or not events:
        raise InvalidWebhook("events: give at least one event name: " + ", ".join(EVENTS))
    names = [str(e) for e in events]
    unknown = sorted(set(names) - set(EVENTS))
    if unknown:
        raise InvalidWebhook(
            f"events: unknown event name(s) {', '.join(unknown)}; known: " + ", ".join(EVENTS)
        )
    return list(dict.fromkeys(names))


def clean_pipelines(pipelines: Any) -> list[str]:
    if not isinstance(pipelines, list | tuple):
        raise InvalidWebhook("pipelines: give a list of pipeline names (empty: every pipeline)")
    names = list(dict.fromkeys(str(p) for p in pipelines))
    known = set(Pipeline.objects.filter(name__in=names).values_list("name", flat=True))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidWebhook(f"pipelines: no pipeline named {', '.join(unknown)}")
    return names


def clean_url(url: Any) -> str:
    text = str(url or "").strip()
    if len(text) > 2000:
        raise InvalidWebhook("url: at most 2000 characters")
    try:
        targets.check(text)
    except TargetRefused as exc:
        raise InvalidWebhook(f"url: {exc}") from None
    return text


def clean_secret(secret: Any) -> str:
    text = str(secret or "")
    if len(text) < MIN_SECRET_CHARS or len(text) > 200:
        raise InvalidWebhook(
            f"secret: between {MIN_SECRET_CHARS} and 200 characters (or leave it out for a "
            "generated one)"
        )
    return _stored("secret", text)


def clean_name(name: Any) -> str:
    text = str(name or "").strip()
    if not text or len(text) > 100:
        raise InvalidWebhook("name: between 1 and 100 characters")
    return _stored("name", text)


def _stored(field: str, text: str) -> str:
    """`text` if a database can store it (orbit.core.text); else the field's clear error."""
    if not storable(text):
        raise InvalidWebhook(f"{field}: {UNSTORABLE}")
    return text


def clean_enabled(enabled: Any) -> bool:
    if not isinstance(enabled, bool):
        raise InvalidWebhook("enabled: true or false")
    return enabled


def clean(values: Mapping[str, Any]) -> dict[str, Any]:
    """The given fields, validated; InvalidWebhook names the first bad one."""
    cleaners: dict[str, Any] = {
        "name": clean_name,
        "url": clean_url,
        "events": clean_events,
        "pipelines": clean_pipelines,
        "secret": clean_secret,
        "enabled": clean_enabled,
    }
    unknown = sorted(set(values) - set(cleaners))
    if unknown:
        raise InvalidWebhook(f"unknown field(s): {', '.join(unknown)}")
    cleaned = {}
    for field, value in values.items():
        try:
            cleaned[field] = cleaners[field](value)
        except InvalidWebhook as exc:
            raise InvalidWebhook(str(exc), field=field) from None
    return cleaned


#: Fields whose values the audit trail never holds, only that they changed: the secret,
#: and the URL, since many receivers (chat and automation services) carry their
#: credential in its path or query, and every role reads the audit trail while only
#: admins see endpoints.
UNRECORDED = frozenset({"secret", "url"})


def _changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for field, new in after.items():
        old = before.get(field)
        if old == new:
            continue
        changes[field] = "changed" if field in UNRECORDED else [old, new]
    return changes


def get_webhook(webhook_id: int | str) -> Webhook:
    try:
        return Webhook.objects.get(id=int(webhook_id))
    except (Webhook.DoesNotExist, ValueError, TypeError):
        raise WebhookNotFound(f"No webhook endpoint has id {webhook_id}") from None


def webhook_create(values: Mapping[str, Any], *, actor: Actor | None = None) -> Webhook:
    """A new endpoint; without a secret, one is generated (read it back once, from here)."""
    cleaned = clean({"secret": new_secret(), "pipelines": [], **values})
    for required in ("name", "url", "events"):
        if required not in cleaned:
            raise InvalidWebhook(f"{required}: required", field=required)
    with transaction.atomic():
        hook = Webhook.objects.create(**cleaned)
        record(
            AuditAction.WEBHOOK_CREATED,
            hook,
            actor=actor,
            changes=_changes({}, {k: v for k, v in cleaned.items() if k != "secret"}),
        )
    return hook


def webhook_update(
    webhook_id: int | str, values: Mapping[str, Any], *, actor: Actor | None = None
) -> Webhook:
    """Change the given fields; enabling one here also clears its failure count."""
    cleaned = clean(values)
    with transaction.atomic():
        hook = get_webhook(webhook_id)
        before = {field: getattr(hook, field) for field in cleaned}
        changes = _changes(before, cleaned)
        if not changes:
            return hook
        for field, value in cleaned.items():
            setattr(hook, field, value)
        fields = list(cleaned)
        if cleaned.get("enabled") and not before.get("enabled"):
            _clear_failures(hook)
            fields += ["consecutive_failures", "disabled_at", "disabled_reason"]
        hook.save(update_fields=[*fields, "updated_at"])
        record(AuditAction.WEBHOOK_CHANGED, hook, actor=actor, changes=changes)
    return hook


def _clear_failures(hook: Webhook) -> None:
    hook.consecutive_failures = 0
    hook.disabled_at = None
    hook.disabled_reason = ""


def webhook_enable(webhook_id: int | str, *, actor: Actor | None = None) -> Webhook:
    """Enable an endpoint again (after the workers disabled it): failures start from 0."""
    with transaction.atomic():
        hook = get_webhook(webhook_id)
        if hook.enabled:
            return hook
        reason = hook.disabled_reason
        hook.enabled = True
        _clear_failures(hook)
        hook.save(
            update_fields=[
                "enabled",
                "consecutive_failures",
                "disabled_at",
                "disabled_reason",
                "updated_at",
            ]
        )
        record(
            AuditAction.WEBHOOK_ENABLED,
            hook,
            actor=actor,
            changes={"enabled": [False, True], "was_disabled_because": audited_reason(reason)},
        )
    return hook


def webhook_delete(webhook_id: int | str, *, actor: Actor | None = None) -> None:
    """Delete an endpoint and its delivery log."""
    with transaction.atomic():
        hook = get_webhook(webhook_id)
        label, pk = str(hook), hook.pk
        record(AuditAction.WEBHOOK_DELETED, hook, actor=actor, label=label, target_id=pk)
        hook.delete()


def get_delivery(delivery_id: uuid.UUID | str) -> WebhookDelivery:
    try:
        return WebhookDelivery.objects.select_related("endpoint").get(
            id=uuid.UUID(str(delivery_id))
        )
    except (WebhookDelivery.DoesNotExist, ValueError):
        raise DeliveryNotFound(f"No webhook delivery has id {delivery_id}") from None


def delivery_redeliver(
    delivery_id: uuid.UUID | str, *, actor: Actor | None = None
) -> WebhookDelivery:
    """Send a delivery's payload again, as a new delivery (its own id), now."""
    with transaction.atomic():
        original = get_delivery(delivery_id)
        if not original.endpoint.enabled:
            raise InvalidWebhook(
                f"Webhook {original.endpoint} is disabled: enable it before sending again"
            )
        new_id = uuid7()
        copy = WebhookDelivery.objects.create(
            id=new_id,
            endpoint_id=original.endpoint_id,
            event=original.event,
            run_id=original.run_id,
            payload={**original.payload, "id": str(new_id)},
            redelivery_of=original.id,
            next_attempt_at=Now(),
        )
        record(
            AuditAction.WEBHOOK_REDELIVERED,
            original.endpoint,
            actor=actor,
            changes={"delivery": str(original.id), "new_delivery": str(new_id)},
        )
    return copy


def redeliver_many(ids: Iterable[uuid.UUID | str], *, actor: Actor | None = None) -> int:
    count = 0
    for delivery_id in ids:
        delivery_redeliver(delivery_id, actor=actor)
        count += 1
    return count
