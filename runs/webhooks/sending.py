"""The workers' webhook duty: claim due deliveries, send each, record what happened.

Claiming is one short statement (runs/store: `claim_deliveries`, FOR UPDATE SKIP LOCKED
on PostgreSQL, a conditional UPDATE elsewhere) that gives the claimed rows a fresh claim
token and a lease (ORBIT_WEBHOOK_LEASE); the POST happens outside any transaction; the
result is written only where the row still carries that token. So two workers never send
one delivery at once, and a worker that dies mid-send leaves a claim that expires, after
which another worker sends the delivery again: at least once, never lost. Receivers
dedupe by the Orbit-Webhook-Id header (docs/WEBHOOKS.md).

A 2xx answer succeeds the delivery and resets its endpoint's failure count. Anything else
(another status, a timeout, a refused connection) is a failed attempt: tried again after
the backoff (runs/webhooks/backoff.py), failed for good after ORBIT_WEBHOOK_MAX_ATTEMPTS.
A target the SSRF guard refuses fails at once, unsent. Each failed attempt counts
against the endpoint; after ORBIT_WEBHOOK_DISABLE_AFTER in a row it is disabled
(audited, shown in the admin), and its pending deliveries are abandoned.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Now

from orbit.core.audit import Actor, record
from orbit.core.conf import orbit_settings
from orbit.core.exceptions import TargetRefused
from orbit.core.models import AuditAction, AuditSource
from runs.models import DeliveryStatus, Webhook, WebhookDelivery
from runs.store import store
from runs.store import transitions as t
from runs.store.records import DeliveryClaim
from runs.webhooks import signing, targets, transport
from runs.webhooks.backoff import RetrySchedule

logger = logging.getLogger(__name__)

#: Deliveries one call claims (and sends, one after another). The worker's duty asks for
#: one at a time (runs/worker/loop.py says why).
BATCH = 10
#: Of an error, what is kept in `last_error`.
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class Sent:
    """What one attempt came to."""

    ok: bool
    error: str = ""
    response_code: int | None = None
    final: bool = False  # no point trying again (the SSRF guard refused the target)


def body_of(claim: DeliveryClaim) -> bytes:
    """The exact bytes sent and signed."""
    return json.dumps(claim.payload, separators=(",", ":"), sort_keys=True).encode()


def send_due(*, worker: str = "worker", limit: int = BATCH) -> int:
    """Claim up to `limit` due deliveries and send them; how many were claimed."""
    claims = store().claim_deliveries(limit=limit, lease_seconds=orbit_settings.webhook_lease)
    if not claims:
        return 0
    hooks = Webhook.objects.in_bulk({c.endpoint_id for c in claims})
    for claim in claims:
        hook = hooks.get(claim.endpoint_id)
        if hook is None or not hook.enabled:
            _abandon(
                claim, "Its endpoint was deleted" if hook is None else "Its endpoint is disabled"
            )
            continue
        sent = attempt(claim, hook)
        _record(claim, hook, sent, worker=worker)
    return len(claims)


def attempt(claim: DeliveryClaim, hook: Webhook) -> Sent:
    """POST one delivery to its endpoint (checked by the SSRF guard first)."""
    try:
        target = targets.check(hook.url)
    except TargetRefused as exc:
        return Sent(ok=False, error=str(exc), final=True)
    body = body_of(claim)
    headers = signing.headers(
        delivery_id=str(claim.id), event=claim.event, secret=hook.secret, body=body
    )
    try:
        answer = transport.post(target, body, headers, timeout=orbit_settings.webhook_timeout)
    except Exception as exc:  # the network's errors are many; each is a failed attempt
        return Sent(ok=False, error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS])
    if 200 <= answer.status < 300:
        return Sent(ok=True, response_code=answer.status)
    return Sent(
        ok=False, error=f"HTTP {answer.status} {answer.reason}".strip(), response_code=answer.status
    )


def _record(claim: DeliveryClaim, hook: Webhook, sent: Sent, *, worker: str) -> None:
    attempts = claim.attempts + 1
    common = {
        "attempts": attempts,
        "last_attempt_at": Now(),
        "response_code": sent.response_code,
        "claim": None,
        "claimed_until": None,
    }
    if sent.ok:
        with transaction.atomic():
            if WebhookDelivery.objects.filter(id=claim.id, claim=claim.claim).update(
                status=DeliveryStatus.SUCCEEDED, last_error="", finished_at=Now(), **common
            ):
                Webhook.objects.filter(id=hook.id).update(consecutive_failures=0)
        logger.info(
            "Webhook %s delivered to %s",
            claim.id,
            hook.name,
            extra={"event": "webhook_delivered", "delivery_id": str(claim.id)},
        )
        return
    delay = None if sent.final else RetrySchedule.from_settings().next_delay(attempts)
    with transaction.atomic():
        if delay is None:
            changed = WebhookDelivery.objects.filter(id=claim.id, claim=claim.claim).update(
                status=DeliveryStatus.FAILED, last_error=sent.error, finished_at=Now(), **common
            )
        else:
            changed = WebhookDelivery.objects.filter(id=claim.id, claim=claim.claim).update(
                last_error=sent.error, next_attempt_at=t.now_plus(delay), **common
            )
        if changed:
            _count_failure(hook, sent.error, worker=worker)
    logger.warning(
        "Webhook %s to %s failed (attempt %d): %s%s",
        claim.id,
        hook.name,
        attempts,
        sent.error,
        "" if delay is None else f"; next in {delay:g} s",
        extra={"event": "webhook_failed", "delivery_id": str(claim.id)},
    )


#: Where an endpoint's disabled_reason goes on to its last error.
LAST_ERROR = "; the last: "


def disabled_after(limit: int) -> str:
    return f"Disabled after {limit} failed deliveries in a row"


def audited_reason(reason: str) -> str:
    """Why an endpoint was disabled, as the audit trail says it: without the last error,
    which may name the endpoint's host or address. Every role reads the audit trail; only
    admins the endpoint, its deliveries and its disabled_reason, where the error is kept."""
    return reason.split(LAST_ERROR, 1)[0]


def _count_failure(hook: Webhook, error: str, *, worker: str) -> None:
    """One more failed attempt in a row for `hook`; disable it at the limit."""
    Webhook.objects.filter(id=hook.id).update(consecutive_failures=F("consecutive_failures") + 1)
    limit = orbit_settings.webhook_disable_after
    if not limit:
        return
    reason = f"{disabled_after(limit)}{LAST_ERROR}{error}"[:1000]
    if not Webhook.objects.filter(id=hook.id, enabled=True, consecutive_failures__gte=limit).update(
        enabled=False, disabled_at=Now(), disabled_reason=reason
    ):
        return
    WebhookDelivery.objects.filter(endpoint_id=hook.id, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.ABANDONED, finished_at=Now(), claim=None, claimed_until=None
    )
    record(
        AuditAction.WEBHOOK_DISABLED,
        hook,
        actor=Actor.system(AuditSource.WORKER, worker),
        changes={"enabled": [True, False], "reason": audited_reason(reason)},
    )
    logger.error(
        "Webhook %s disabled: %s",
        hook.name,
        reason,
        extra={"event": "webhook_disabled", "webhook": hook.id},
    )


def _abandon(claim: DeliveryClaim, why: str) -> None:
    WebhookDelivery.objects.filter(id=claim.id, claim=claim.claim).update(
        status=DeliveryStatus.ABANDONED,
        last_error=why,
        finished_at=Now(),
        claim=None,
        claimed_until=None,
    )
