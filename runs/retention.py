"""Retention: finished runs and audit events go once they are older than the policy says.

Finished webhook deliveries (docs/WEBHOOKS.md) are a log like the audit trail and are
kept as long (ORBIT_RETENTION_AUDIT); pending ones are never pruned.

A policy keeps each finished status (succeeded, failed, cancelled) and the audit events
for its own age; pending and running runs are never pruned. Pruning goes in batches, each
one short transaction through the store, which adds the batch's figures to the hourly
rollups before its rows go (runs/store/rollups.py), so the dashboard's charts and
/metrics read the same totals after pruning as before (runs/metrics.py adds both).

`orbit prune` (orbit/cli/management/commands/prune_runs.py) applies a policy now. The
workers apply ORBIT_RETENTION_* themselves (`prune_turn`, a duty of runs/worker/loop.py):
one worker at a time (`store().exclusive`), one batch per turn, and paced so that pruning
a large backlog takes at most ORBIT_RETENTION_SHARE (5%) of that worker's time and about as
much of the database's.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from orbit.core.clock import db_now
from orbit.core.conf import orbit_settings
from runs.store import store
from runs.store.records import Pruned
from runs.store.rollups import OUTCOMES

logger = logging.getLogger(__name__)

#: pg_try_advisory_xact_lock key held by the one worker pruning a batch ("orbitprn").
PRUNE_LOCK = 0x6F7262697470726E


@dataclass(frozen=True)
class Policy:
    """How long each kind of row is kept; None keeps it for ever."""

    succeeded: timedelta | None = None
    failed: timedelta | None = None
    cancelled: timedelta | None = None
    audit: timedelta | None = None

    @classmethod
    def from_settings(cls) -> Policy:
        """ORBIT_RETENTION_SUCCEEDED, _FAILED, _CANCELLED and _AUDIT."""
        return cls(**{kind: orbit_settings.retention(kind) for kind in (*OUTCOMES, "audit")})

    def older_than(self, age: timedelta) -> Policy:
        """The same age for every finished status (the audit events keep theirs)."""
        return replace(self, **dict.fromkeys(OUTCOMES, age))

    @property
    def prunes_anything(self) -> bool:
        return any(getattr(self, kind) is not None for kind in (*OUTCOMES, "audit"))

    def run_cutoffs(self, now: datetime) -> dict[str, datetime]:
        """Per status, the moment before which its runs go."""
        return {
            status: now - age for status in OUTCOMES if (age := getattr(self, status)) is not None
        }

    def audit_cutoff(self, now: datetime) -> datetime | None:
        return None if self.audit is None else now - self.audit


@dataclass(frozen=True)
class Preview:
    """What a policy would prune now (a dry run)."""

    runs: dict[str, int]
    run_cutoffs: dict[str, datetime]
    audit: int
    audit_cutoff: datetime | None

    @property
    def total_runs(self) -> int:
        return sum(self.runs.values())


@dataclass
class Report:
    """What a pruning pass deleted."""

    runs: Counter[str] = field(default_factory=Counter)
    attempts: int = 0
    audit: int = 0
    deliveries: int = 0
    batches: int = 0

    @property
    def total_runs(self) -> int:
        return sum(self.runs.values())


def preview(policy: Policy, now: datetime | None = None) -> Preview:
    """Count what `policy` would prune now, by status, and the audit events; change nothing."""
    now = now or db_now()
    cutoffs = policy.run_cutoffs(now)
    audit_cutoff = policy.audit_cutoff(now)
    counts = store().count_prunable(cutoffs) if cutoffs else {}
    return Preview(
        runs={status: counts.get(status, 0) for status in cutoffs},
        run_cutoffs=cutoffs,
        audit=store().count_audit(audit_cutoff) if audit_cutoff is not None else 0,
        audit_cutoff=audit_cutoff,
    )


def prune(
    policy: Policy,
    *,
    limit: int | None = None,
    now: datetime | None = None,
    on_batch: Callable[[Report], None] | None = None,
) -> Report:
    """Prune everything `policy` says is old enough now, batch after batch (each its own
    short transaction), then the audit events; `on_batch` hears the running totals."""
    limit = limit or orbit_settings.retention_batch
    now = now or db_now()
    cutoffs, audit_cutoff = policy.run_cutoffs(now), policy.audit_cutoff(now)
    report = Report()
    while cutoffs:
        batch = store().prune_runs(cutoffs, limit=limit)
        if not batch.total:
            break
        _count(report, batch)
        if on_batch is not None:
            on_batch(report)
    while audit_cutoff is not None:
        gone = store().prune_audit(audit_cutoff, limit=limit)
        if not gone:
            break
        report.audit += gone
        report.batches += 1
        if on_batch is not None:
            on_batch(report)
    while audit_cutoff is not None:
        gone = store().prune_deliveries(audit_cutoff, limit=limit)
        if not gone:
            break
        report.deliveries += gone
        report.batches += 1
        if on_batch is not None:
            on_batch(report)
    return report


def prune_batch(policy: Policy, *, limit: int, now: datetime | None = None) -> Report:
    """One batch: runs while any are old enough, else audit events, else deliveries."""
    now = now or db_now()
    report = Report()
    cutoffs = policy.run_cutoffs(now)
    if cutoffs:
        batch = store().prune_runs(cutoffs, limit=limit)
        if batch.total:
            _count(report, batch)
            return report
    audit_cutoff = policy.audit_cutoff(now)
    if audit_cutoff is not None:
        report.audit = store().prune_audit(audit_cutoff, limit=limit)
        if not report.audit:
            report.deliveries = store().prune_deliveries(audit_cutoff, limit=limit)
        report.batches = 1 if report.audit or report.deliveries else 0
    return report


def prune_turn(policy: Policy, *, limit: int) -> float | None:
    """A worker's pruning duty: one batch, if no other worker is pruning one. Returns how
    long to wait before the next batch while a backlog lasts (None: the usual interval)."""
    if not policy.prunes_anything:
        return None
    started = time.monotonic()
    with store().exclusive(PRUNE_LOCK) as ours:
        if not ours:
            return None
        report = prune_batch(policy, limit=limit)
    elapsed = time.monotonic() - started
    if report.batches:
        logger.info(
            "Pruned %d run(s), %d audit event(s) and %d webhook delivery(ies) in %.0f ms",
            report.total_runs,
            report.audit,
            report.deliveries,
            elapsed * 1000,
            extra={
                "event": "runs_pruned",
                "runs": dict(report.runs),
                "audit_events": report.audit,
                "webhook_deliveries": report.deliveries,
                "duration": elapsed,
            },
        )
    if max(report.total_runs, report.audit, report.deliveries) >= limit:
        return pause_after(elapsed)
    return None


def pause_after(elapsed: float, share: float | None = None) -> float:
    """How long to wait after a batch that took `elapsed` seconds, so that pruning takes
    `share` (ORBIT_RETENTION_SHARE) of the time: t * (1 / share - 1)."""
    share = share or orbit_settings.retention_share
    return elapsed * (1 / share - 1)


def _count(report: Report, batch: Pruned) -> None:
    report.runs.update(batch.runs)
    report.attempts += batch.attempts
    report.batches += 1


def describe_cutoffs(cutoffs: Mapping[str, datetime]) -> str:
    return ", ".join(f"{status} before {at:%Y-%m-%d %H:%M:%S %Z}" for status, at in cutoffs.items())
