"""Real worker processes sending webhooks: one delivery per event with two workers, and
a worker killed mid-delivery whose delivery the other worker sends (at least once: the
receiver sees the id again and dedupes it; one delivery row succeeds)."""

from __future__ import annotations

import signal
import threading
from collections import Counter

import pytest

from runs import enqueue
from runs.models import WebhookDelivery
from runs.webhooks import signing
from tests.processes import wait_until
from tests.receiver import Received, Receiver, serving
from tests.runs.webhooks.conftest import SECRET, WORKER_ENV

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def succeeded() -> int:
    return WebhookDelivery.objects.filter(status="succeeded").count()


def test_two_workers_send_each_event_once(endpoint, receiver, workers):
    endpoint(receiver.url, events=["run_failed", "step_retried"])
    runs = [enqueue("t-failing") for _ in range(6)]
    for _ in range(2):
        workers("--no-schedules", "--concurrency", "2", env=WORKER_ENV)
    # Each run: one retried attempt, then it fails: two events, two deliveries.
    wait_until(lambda: succeeded() == 12, timeout=60, message="12 deliveries")
    received = receiver.wait_for(12)
    assert len(received) == 12  # none sent twice
    assert len({r.delivery_id for r in received}) == 12
    pairs = Counter((r.json["event"], r.json["run"]["id"]) for r in received)
    assert pairs == Counter(
        {(event, str(run.id)): 1 for run in runs for event in ("run_failed", "step_retried")}
    )
    assert all(signing.verify(SECRET, r.headers, r.body) for r in received)
    assert WebhookDelivery.objects.count() == 12


def test_a_worker_killed_mid_delivery_leaves_it_to_another(endpoint, workers):
    released = threading.Event()

    def hold_the_first(got: Received) -> int:
        if len(receiver.received) == 1:
            released.wait(60)  # the sender is killed meanwhile
        return 200

    env = {**WORKER_ENV, "ORBIT_WEBHOOK_LEASE": "2", "ORBIT_WEBHOOK_TIMEOUT": "60"}
    with serving(Receiver(answer=hold_the_first)) as receiver:
        endpoint(receiver.url, events=["run_failed"])
        run = enqueue("t-failing")
        doomed = workers("--no-schedules", env=env)
        [first] = receiver.wait_for(1, timeout=60)  # the doomed worker is mid-delivery
        doomed.send(signal.SIGKILL)
        doomed.wait(10)
        released.set()
        workers("--no-schedules", env=env)
        wait_until(lambda: succeeded() == 1, timeout=60, message="the delivery to succeed")
        received = receiver.received
    delivery = WebhookDelivery.objects.get()
    assert (delivery.run_id, delivery.status, delivery.attempts) == (run.id, "succeeded", 1)
    # At least once: the receiver saw the delivery twice, under one id, and keeps one.
    assert [r.delivery_id for r in received] == [str(delivery.id)] * 2
    assert first.body == received[1].body
    assert all(signing.verify(SECRET, r.headers, r.body) for r in received)
