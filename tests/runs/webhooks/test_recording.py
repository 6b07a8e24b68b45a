"""runs/webhooks/recording.py: deliveries are written in the transaction of their event,
only for the endpoints that want it, and cost nothing while no endpoint is enabled."""

from __future__ import annotations

import json
import uuid

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from runs import enqueue
from runs.lifecycle import run_cancel
from runs.models import Webhook, WebhookDelivery
from runs.webhooks import endpoints, recording
from tests.runs.workers import burst

pytestmark = pytest.mark.django_db(transaction=True)

URL = "http://127.0.0.1:9/hook"


def test_with_no_endpoint_nothing_is_read_or_opened(test_pipelines):
    """The hot path's pinned statement counts (tests/runs/test_worker.py) hold because
    of this: no endpoint, no query, no transaction."""
    endpoints.refresh()
    with CaptureQueriesContext(connection) as queries:
        assert recording.write([("run_failed", uuid.uuid4(), {})]) == []
        with recording.transaction_for_events():
            assert not connection.in_atomic_block
    assert len(queries) == 0


def test_a_rolled_back_cancel_leaves_no_delivery(endpoint):
    endpoint(URL, events=["run_cancelled"])
    run = enqueue("t-single")
    with pytest.raises(RuntimeError), transaction.atomic():
        run_cancel(run.id, reason="changed my mind")
        assert WebhookDelivery.objects.count() == 1  # written with the cancel...
        raise RuntimeError("the caller's transaction fails")
    assert WebhookDelivery.objects.count() == 0  # ...and gone with it
    run_cancel(run.id, reason="for real")
    delivery = WebhookDelivery.objects.get()
    assert (delivery.event, delivery.run_id, delivery.status) == (
        "run_cancelled",
        run.id,
        "pending",
    )
    assert delivery.payload["details"] == {"reason": "for real", "previous_status": "pending"}


def test_each_endpoint_gets_only_the_events_and_pipelines_it_wants(endpoint):
    failures = endpoint(URL, events=["run_failed"])
    successes_of_single = endpoint(URL, events=["run_succeeded"], pipelines=["t-single"])
    single, three, failing = enqueue("t-single"), enqueue("t-three"), enqueue("t-failing")
    burst()
    got = sorted(WebhookDelivery.objects.values_list("endpoint_id", "event", "run_id"))
    assert got == sorted(
        [
            (failures.id, "run_failed", failing.id),
            (successes_of_single.id, "run_succeeded", single.id),
        ]
    )
    assert three.id not in {row[2] for row in got}


def test_a_disabled_endpoint_gets_nothing(endpoint):
    hook = endpoint(URL, events=["run_succeeded"])
    Webhook.objects.filter(id=hook.id).update(enabled=False)
    endpoints.forget()
    enqueue("t-single")
    burst()
    assert WebhookDelivery.objects.count() == 0


def test_the_payload_carries_ids_status_timings_and_a_link_but_no_metadata(endpoint, settings):
    settings.ORBIT_BASE_URL = "https://orbit.example.com/"
    endpoint(URL, events=["run_failed"])
    run = enqueue(
        "t-failing", metadata={"api_token": "tok-hunter2-do-not-leak", "note": "plain-value"}
    )
    burst()
    delivery = WebhookDelivery.objects.get()
    body = json.dumps(delivery.payload)
    assert "hunter2" not in body and "plain-value" not in body and "metadata" not in body
    payload = delivery.payload
    assert payload["id"] == str(delivery.id) and payload["event"] == "run_failed"
    described = payload["run"]
    assert described["id"] == str(run.id)
    assert (described["pipeline"], described["status"]) == ("t-failing", "failed")
    assert described["url"] == f"https://orbit.example.com/dashboard/runs/{run.id}/"
    assert described["created_at"] and described["started_at"] and described["finished_at"]
    assert described["running_time"] > 0
    assert described["error"].startswith("Step 'fails' failed after 2 attempts")
    assert payload["details"]["step"] == "fails"
    assert payload["details"]["error_type"] == "builtins.ValueError"


def test_enabled_endpoints_are_loaded_once_per_refresh_window(endpoint, settings):
    settings.ORBIT_WEBHOOK_REFRESH = 3600
    endpoint(URL, events=["run_failed"])  # saving forgets the list in this process
    with CaptureQueriesContext(connection) as queries:
        assert len(endpoints.enabled()) == 1
        assert len(endpoints.enabled()) == 1
    assert len(queries) == 1


def test_an_endpoint_that_wants_the_event_adds_one_read_and_one_insert(endpoint):
    """What a configured endpoint costs a commit: the runs, read once, and the
    deliveries, inserted once, in the commit's transaction (on PostgreSQL the commit is
    then inside BEGIN ... COMMIT instead of being its own transaction)."""
    from runs.execution import begin, record_many
    from tests.runs.test_execution import LEASE, claim, success

    def commit_statements() -> list[str]:
        enqueue("t-single")
        [held] = claim()
        task = begin(held, lease_seconds=LEASE).task
        with CaptureQueriesContext(connection) as queries:
            record_many([(held, task, success())], lease_seconds=LEASE)
        control = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE SAVEPOINT")
        return [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(control)]

    without = commit_statements()
    endpoint(URL, events=["run_succeeded"])
    endpoints.refresh()
    with_endpoint = commit_statements()
    assert len(with_endpoint) == len(without) + 2, with_endpoint
    assert WebhookDelivery.objects.count() == 1
