"""runs/webhooks/sending.py against a real local receiver: signed deliveries, retries
with backoff, the endpoint disabled after repeated failures, the SSRF guard at send time,
and a claim that expired writing nothing."""

from __future__ import annotations

from itertools import pairwise

import pytest

from orbit.core.models import AuditEvent
from runs import enqueue
from runs.models import DeliveryStatus, Webhook, WebhookDelivery
from runs.recovery import recover_interrupted
from runs.store import store
from runs.webhooks import endpoints, signing
from runs.webhooks.sending import Sent, _record, send_due
from tests.processes import wait_until
from tests.receiver import Receiver, serving
from tests.runs.test_recovery import interrupt
from tests.runs.webhooks.conftest import SECRET
from tests.runs.workers import burst

pytestmark = pytest.mark.django_db(transaction=True)


def quarantine(run_id: object, settings) -> None:
    """Interrupt the run twice with ORBIT_MAX_INTERRUPTIONS=1: the second sweep fails it."""
    from runs.models import Run

    settings.ORBIT_MAX_INTERRUPTIONS = 1
    run = Run.objects.get(id=run_id)
    interrupt(run)
    recover_interrupted(auto_resume=True)
    interrupt(run)
    recover_interrupted(auto_resume=True)


def test_a_failed_and_a_quarantined_run_reach_the_receiver_signed(endpoint, receiver, settings):
    endpoint(receiver.url)
    failed = enqueue("t-failing")
    burst()
    quarantined = enqueue("t-three")
    quarantine(quarantined.id, settings)
    send_due()
    got = {r.json["event"]: r for r in receiver.wait_for(2)}
    assert set(got) == {"run_failed", "run_quarantined"}
    for event, run in (("run_failed", failed), ("run_quarantined", quarantined)):
        request = got[event]
        assert signing.verify(SECRET, request.headers, request.body)  # what a receiver does
        assert not signing.verify("not-the-secret-at-all", request.headers, request.body)
        assert request.headers["Orbit-Webhook-Event"] == event
        assert request.headers["Orbit-Webhook-Id"] == request.json["id"]
        assert request.json["run"]["id"] == str(run.id)
        assert request.json["run"]["status"] == "failed"
        assert request.path == "/hooks/orbit"
    assert got["run_quarantined"].json["run"]["error"].startswith("Quarantined:")
    assert got["run_quarantined"].json["details"]["interruptions"] == 2
    rows = WebhookDelivery.objects.all()
    assert {(d.status, d.attempts, d.response_code) for d in rows} == {("succeeded", 1, 200)}
    assert len(receiver.received) == 2  # nothing sent twice
    assert send_due() == 0


def test_a_receiver_answering_500_is_retried_with_backoff_then_disabled(endpoint, settings):
    settings.ORBIT_WEBHOOK_DISABLE_AFTER = 4
    settings.ORBIT_WEBHOOK_MAX_ATTEMPTS = 10
    with serving(Receiver(status=500)) as failing:
        hook = endpoint(failing.url, events=["run_failed"])
        enqueue("t-failing")
        burst()
        wait_until(
            lambda: send_due() is not None and not Webhook.objects.get(id=hook.id).enabled,
            timeout=30,
            message="the endpoint to be disabled",
        )
    received = failing.received
    assert len(received) == 4 and len({r.delivery_id for r in received}) == 1
    gaps = [b.at - a.at for a, b in pairwise(received)]
    # Waits of 0.2, 0.4, 0.8 s (ORBIT_WEBHOOK_BACKOFF_BASE=0.2, doubling): each at least
    # its delay, and each longer than the one before.
    assert all(gap >= delay - 0.05 for gap, delay in zip(gaps, [0.2, 0.4, 0.8], strict=True))
    assert gaps == sorted(gaps)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_code) == (
        DeliveryStatus.ABANDONED,
        4,
        500,
    )
    assert delivery.last_error == "HTTP 500 Internal Server Error"
    hook.refresh_from_db()
    assert (hook.enabled, hook.consecutive_failures) == (False, 4)
    assert hook.disabled_at is not None
    assert hook.disabled_reason == (
        "Disabled after 4 failed deliveries in a row; the last: HTTP 500 Internal Server Error"
    )
    event = AuditEvent.objects.get(action="webhook.disabled")
    assert (event.source, event.target_id) == ("worker", str(hook.id))
    assert event.changes["enabled"] == [True, False]


def test_a_delivery_out_of_attempts_fails(endpoint, settings):
    settings.ORBIT_WEBHOOK_MAX_ATTEMPTS = 2
    with serving(Receiver(status=503)) as failing:
        endpoint(failing.url, events=["run_failed"])
        enqueue("t-failing")
        burst()
        wait_until(
            lambda: (
                send_due() is not None and WebhookDelivery.objects.filter(status="failed").exists()
            ),
            message="the delivery to fail",
        )
    delivery = WebhookDelivery.objects.get()
    assert (delivery.attempts, delivery.finished_at is not None) == (2, True)
    assert len(failing.received) == 2


def test_a_private_target_is_refused_at_send_time_and_nothing_is_sent(endpoint, receiver, settings):
    endpoint(receiver.url, events=["run_failed"])  # saved while private targets were allowed
    settings.ORBIT_WEBHOOK_ALLOW_PRIVATE = False  # the default
    enqueue("t-failing")
    burst()
    send_due()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 1, None)
    assert delivery.last_error == (
        "Refused: 127.0.0.1 is a loopback address; webhooks go only to public addresses "
        "unless ORBIT_WEBHOOK_ALLOW_PRIVATE is on (the SSRF guard)"
    )
    assert receiver.received == []


def test_a_redirect_is_not_followed(endpoint, settings):
    with serving(Receiver(status=307)) as redirecting:
        endpoint(redirecting.url, events=["run_failed"])
        enqueue("t-failing")
        burst()
        send_due()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.response_code) == ("pending", 307)
    assert len(redirecting.received) == 1


def test_a_worker_whose_claim_expired_writes_nothing(endpoint, receiver):
    endpoint(receiver.url, events=["run_failed"])
    enqueue("t-failing")
    burst()
    [stale] = store().claim_deliveries(limit=5, lease_seconds=0.0)  # expires at once
    wait_until(lambda: store().claim_deliveries(limit=5, lease_seconds=60), message="a takeover")
    hook = Webhook.objects.get()
    _record(stale, hook, Sent(ok=False, error="too late"), worker="stale")
    delivery = WebhookDelivery.objects.get()
    assert (delivery.attempts, delivery.last_error, delivery.status) == (0, "", "pending")
    assert Webhook.objects.get().consecutive_failures == 0


def test_a_deleted_endpoints_delivery_is_abandoned(endpoint, receiver):
    hook = endpoint(receiver.url, events=["run_failed"])
    enqueue("t-failing")
    burst()
    Webhook.objects.filter(id=hook.id).delete()
    endpoints.forget()
    assert WebhookDelivery.objects.count() == 0  # its log went with it
    assert send_due() == 0 and receiver.received == []


def test_the_workers_duty_sends_one_delivery_per_turn(endpoint, receiver):
    """One POST per turn of the loop: a hanging receiver holds it for one timeout only."""
    from runs.lifecycle import run_cancel
    from runs.worker import WorkerLoop

    endpoint(receiver.url, events=["run_cancelled"])
    for _ in range(3):
        run_cancel(enqueue("t-single").id)
    loop = WorkerLoop(listen=False, schedules=False)
    assert loop._send_webhooks() == 0.0  # one sent; more may be due: again next turn
    assert len(receiver.wait_for(1)) == 1
    assert WebhookDelivery.objects.filter(status="succeeded").count() == 1
    assert loop._send_webhooks() == 0.0 and loop._send_webhooks() == 0.0
    assert loop._send_webhooks() is None  # none left: back to the poll interval
    assert len(receiver.wait_for(3)) == 3


def test_the_audit_trail_says_why_an_endpoint_was_disabled_without_naming_its_host(
    endpoint, receiver, settings
):
    """Every role reads the audit trail; only admins the endpoint. The last error can name
    the endpoint's host (the SSRF guard's refusal, a name that does not resolve): it stays
    on the endpoint and its deliveries, and the events say only why."""
    from runs.webhook_lifecycle import webhook_enable

    url = receiver.url.replace("127.0.0.1", "localhost")
    hook = endpoint(url, events=["run_failed"])  # saved while private targets were allowed
    settings.ORBIT_WEBHOOK_ALLOW_PRIVATE = False
    settings.ORBIT_WEBHOOK_DISABLE_AFTER = 1
    enqueue("t-failing")
    burst()
    send_due()
    hook.refresh_from_db()
    assert not hook.enabled
    assert hook.disabled_reason.startswith(
        "Disabled after 1 failed deliveries in a row; the last: Refused: localhost (127.0.0.1)"
    )
    webhook_enable(hook.id)
    events = AuditEvent.objects.filter(action__in=["webhook.disabled", "webhook.enabled"])
    assert {e.action: e.changes for e in events} == {
        "webhook.disabled": {
            "enabled": [True, False],
            "reason": "Disabled after 1 failed deliveries in a row",
        },
        "webhook.enabled": {
            "enabled": [False, True],
            "was_disabled_because": "Disabled after 1 failed deliveries in a row",
        },
    }
