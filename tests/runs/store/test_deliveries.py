"""The run store's webhook operation, `claim_deliveries`, against each store: due rows
only, each taken by one claimant even with many connections at once, and a claim that
expired taken over (runs/webhooks/sending.py relies on all three)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from runs.models import Webhook, WebhookDelivery
from runs.store.protocol import RunStore
from tests.threads import at_once

pytestmark = pytest.mark.django_db(transaction=True)


def deliveries(count: int, **fields: object) -> set[uuid.UUID]:
    hook = Webhook.objects.create(
        name="h", url="http://127.0.0.1:9/", events=["run_failed"], secret="s" * 20
    )
    rows = [
        WebhookDelivery(
            endpoint=hook, event="run_failed", run_id=uuid.uuid4(), payload={}, **fields
        )
        for _ in range(count)
    ]
    WebhookDelivery.objects.bulk_create(rows)
    return {row.id for row in rows}


def test_only_due_pending_unclaimed_deliveries_are_taken(store: RunStore):
    due = deliveries(2)
    deliveries(1, next_attempt_at=timezone.now() + timedelta(hours=1))  # not due yet
    deliveries(1, status="succeeded")
    deliveries(1, claimed_until=timezone.now() + timedelta(hours=1))  # claimed elsewhere
    taken = store.claim_deliveries(limit=10, lease_seconds=30)
    assert {c.id for c in taken} == due
    assert len({c.claim for c in taken}) == 1
    assert store.claim_deliveries(limit=10, lease_seconds=30) == []  # held now


def test_an_expired_claim_is_taken_over_under_a_new_claim(store: RunStore):
    deliveries(1)
    # a lease that ran out a second ago: with a lease of 0, a second claim within the
    # same tick of SQLite's millisecond clock would still find it held
    [first] = store.claim_deliveries(limit=1, lease_seconds=-1)
    [second] = store.claim_deliveries(limit=1, lease_seconds=30)
    assert second.id == first.id and second.claim != first.claim
    assert WebhookDelivery.objects.get().claim == second.claim


@pytest.mark.postgres
def test_claims_from_many_connections_at_once_take_each_delivery_once(store: RunStore):
    ids = deliveries(60)
    taken: list[list[uuid.UUID]] = []

    def claimant() -> None:
        mine: list[uuid.UUID] = []
        while batch := store.claim_deliveries(limit=3, lease_seconds=30):
            mine += [c.id for c in batch]
        taken.append(mine)

    at_once(claimant, 6)
    every = [delivery for mine in taken for delivery in mine]
    assert len(taken) == 6
    assert sorted(every) == sorted(ids)  # each delivery claimed, none twice


def test_finished_deliveries_older_than_the_cutoff_are_pruned_pending_ones_kept(store: RunStore):
    from runs.models import WebhookDelivery as D

    old = timezone.now() - timedelta(days=400)
    finished = deliveries(3, status="succeeded")
    pending = deliveries(1)
    young = deliveries(1, status="failed")
    D.objects.filter(id__in=finished | pending).update(created_at=old)
    cutoff = timezone.now() - timedelta(days=365)
    assert store.prune_deliveries(cutoff, limit=2) == 2  # a batch at a time
    assert store.prune_deliveries(cutoff, limit=2) == 1
    assert store.prune_deliveries(cutoff, limit=2) == 0
    assert set(D.objects.values_list("id", flat=True)) == pending | young


def test_retention_prunes_deliveries_with_the_audit_trails_age(settings):
    from runs.models import WebhookDelivery as D
    from runs.retention import Policy, prune

    gone = deliveries(2, status="succeeded")
    D.objects.filter(id__in=gone).update(created_at=timezone.now() - timedelta(days=400))
    kept = deliveries(1, status="succeeded")
    report = prune(Policy(audit=timedelta(days=365)))
    assert report.deliveries == 2
    assert set(D.objects.values_list("id", flat=True)) == kept
