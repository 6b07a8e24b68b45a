"""Leases: a claimant renews its runs' leases every third of the lease, and a worker its
own heartbeat. A run whose lease runs out is interrupted (runs/recovery.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from functools import reduce
from operator import or_

from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Now

from runs.claiming import Claim
from runs.models import Run, RunStatus, Worker, db_now_plus


def renew(claims: Iterable[Claim], *, lease_seconds: float) -> set[uuid.UUID]:
    """Extend the leases of the runs still held; returns the ids of those held.

    A run missing from the answer was cancelled or taken over by another worker after
    this one's lease ran out: its step must be stopped and nothing more written for it.
    """
    claims = list(claims)
    if not claims:
        return set()
    fence = reduce(or_, (Q(id=c.run_id, attempt=c.attempt) for c in claims))
    held = Run.objects.filter(fence, status=RunStatus.RUNNING)
    renewed = held.update(lease_expires_at=db_now_plus(lease_seconds))
    if renewed == len(claims):
        return {c.run_id for c in claims}
    return set(held.values_list("id", flat=True))


def heartbeat(
    worker_id: int,
    *,
    state: str,
    claims: Iterable[Claim] = (),
    lease_seconds: float,
    succeeded: int = 0,
    failed: int = 0,
) -> set[uuid.UUID]:
    """One transaction: renew the worker's leases and its heartbeat, add its counts."""
    with transaction.atomic():
        held = renew(claims, lease_seconds=lease_seconds)
        Worker.objects.filter(id=worker_id).update(
            last_heartbeat=Now(),
            state=state,
            succeeded_count=F("succeeded_count") + succeeded,
            failed_count=F("failed_count") + failed,
        )
    return held
