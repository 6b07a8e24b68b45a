"""The run store's interface: every database operation the engine performs.

Two implementations: `PostgresStore` (runs/store/postgres.py), whose hot and atomic
operations are named SQL statements, one round trip each; and `PortableStore`
(runs/store/portable.py), on the ORM, for SQLite and any database Django supports.
tests/runs/store/ is one behaviour suite that runs unchanged against both.

Every write a claimant makes is fenced: it happens only while the run is `running` under
the claimant's fence (`Fence`), so a claimant that lost its lease writes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from django.db import models

from runs.store.records import (
    Announcements,
    AttemptRecord,
    Claim,
    ClaimRequest,
    Claims,
    DeadWorker,
    DeliveryClaim,
    Fence,
    InsertedRun,
    Interrupted,
    LogBatch,
    NewRun,
    Outcome,
    PipelineCheck,
    Pruned,
    StepRow,
    StepStart,
)


class Wakeups(Protocol):
    """Announcements from other processes that work became (or will become) claimable."""

    def fileno(self) -> int:
        """A descriptor that becomes readable when an announcement arrives."""
        ...

    def drain(self) -> Announcements:
        """What was announced since the last call; raises `ConnectionError` when the
        channel broke (the caller reconnects)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Features:
    """What the database can do that readers (metrics, paging) choose their queries by."""

    #: PERCENTILE_CONT(...) WITHIN GROUP (ORDER BY ...) computes percentiles in one query.
    percentiles: bool
    #: Timestamps are stored as text and compare as text (SQLite): a cursor keeps the text.
    text_timestamps: bool
    #: `metadata @> {...}` (jsonb containment, GIN-indexed) finds runs by metadata.
    json_containment: bool = False


class RunStore(Protocol):
    """The engine's database operations. Callers hold no SQL and check no vendor."""

    #: "postgresql" or "portable": for logs and the behaviour suite's ids only.
    name: str
    features: Features

    # -- creating ---------------------------------------------------------------------
    def insert_runs(
        self, runs: Sequence[NewRun], *, pipeline: PipelineCheck | None = None
    ) -> list[InsertedRun]:
        """Insert runs with their steps and audit events, and announce them; a run whose
        idempotency key, unique key or schedule slot is taken is not inserted (`created`
        False, with the id of the run that holds it). All or nothing otherwise. With a
        `pipeline`, nothing is written unless that row is enabled, not archived, and still has those
        values: StalePipeline (the caller's copy, perhaps cached, is out of date)."""
        ...

    # -- claiming and starting --------------------------------------------------------
    def claim(self, request: ClaimRequest) -> Claims:
        """Claim up to `request.limit` due runs of enabled, unarchived pipelines, neither paused nor
        on a paused queue, highest priority first, then the longest waiting (with
        `request.older_than`: only runs due for longer, the longest waiting first); each
        claim starts its run's current step. Runs under a flow limit (docs/FLOW-CONTROL.md)
        are claimed only with `request.limited`, first, within their limits, holding a
        lock that serialises every such claimer."""
        ...

    def has_limits(self) -> bool:
        """Whether an enabled pipeline has a concurrency or rate limit."""
        ...

    def claim_run(
        self, run_id: uuid.UUID, *, worker_id: int | None, lease_seconds: float
    ) -> Claim | None:
        """Claim one particular pending run now, whatever its queue, priority or due time."""
        ...

    def start_step(self, held: Fence, start: StepStart, *, lease_seconds: float) -> int | None:
        """Start a step other than the one the claim started (or one with no row yet);
        the step's id, or None when the fence no longer holds."""
        ...

    def read_steps(self, run_id: uuid.UUID) -> tuple[StepRow, ...]:
        """The run's steps as they are now, in position order."""
        ...

    # -- committing -------------------------------------------------------------------
    def commit(self, outcomes: Sequence[Outcome]) -> set[uuid.UUID]:
        """Commit outcomes, all or nothing; the ids of the runs whose fence held (the
        others wrote nothing). An outcome already committed (its attempt exists: the
        acknowledgement was lost) raises IntegrityError; a batch naming a run twice
        raises ValueError (records.one_per_run)."""
        ...

    def append_logs(self, batches: Sequence[LogBatch]) -> None:
        """Append attempts' log records (runs.StepLog), each batch only while its run is
        running or cancelled under its fence; a record already there (same attempt and
        sequence: a batch sent again) is skipped. One statement on PostgreSQL."""
        ...

    def status_under(self, held: Fence) -> str | None:
        """The run's status if `held.fence` is still its fence (None: claimed again since)."""
        ...

    def record_cancelled(self, held: Fence, attempt: AttemptRecord) -> bool:
        """Record the attempt an operator's cancellation stopped, once."""
        ...

    # -- holding ----------------------------------------------------------------------
    def renew(self, held: Sequence[Fence], *, lease_seconds: float) -> set[uuid.UUID]:
        """Extend the leases of the runs still held; the ids of those held."""
        ...

    def heartbeat(
        self,
        worker_id: int,
        *,
        state: str,
        held: Sequence[Fence],
        lease_seconds: float,
        succeeded: int = 0,
        failed: int = 0,
    ) -> set[uuid.UUID]:
        """Renew the leases and the worker's heartbeat, add its counts: one transaction."""
        ...

    # -- recovery ---------------------------------------------------------------------
    def take_interrupted(
        self, *, max_interruptions: int, run_id: uuid.UUID | None = None
    ) -> list[Interrupted]:
        """Take back running runs whose lease expired (only `run_id`, if given): each
        goes back to the queue with its running step's attempt recorded as interrupted,
        or is quarantined past `max_interruptions`. Each run is taken once, however many
        sweep at the same time."""
        ...

    def mark_dead_workers(self, *, silent_for: float) -> list[DeadWorker]:
        """Record on each worker silent for longer than `silent_for` seconds without having
        stopped (and not marked already) when it was found dead and the runs it held; each
        worker is marked once, however many sweep at the same time."""
        ...

    def seconds_until_lease_expiry(self) -> float | None:
        """Until the earliest running lease expires (None: nothing is running)."""
        ...

    def seconds_until_due(self, queues: Sequence[str]) -> float | None:
        """Until the earliest pending run of an enabled, unarchived, unpaused pipeline in `queues`
        (paused queues aside) is due (0 when one is due now; None when there is none).
        Due runs under a flow limit are left out: a freed slot or a rate window's end
        brings their claim, not this."""
        ...

    # -- operators --------------------------------------------------------------------
    def cancel(self, run_id: uuid.UUID, *, reason: str) -> str | None:
        """Cancel a pending or running run; the status it had, or None if it had none of those."""
        ...

    def retry(self, run_id: uuid.UUID, *, current_step: str) -> str | None:
        """Queue a failed or cancelled run again at `current_step`, its unfinished steps
        with a fresh retry budget; the status it had, or None if it was neither."""
        ...

    # -- retention --------------------------------------------------------------------
    def prune_runs(self, before: Mapping[str, datetime], *, limit: int) -> Pruned:
        """Delete up to `limit` finished runs, oldest first, each of a status in `before`
        that finished before that status's moment, with their steps, attempts and logs,
        after adding their figures to the hourly rollups (runs/store/rollups.py): one
        short transaction that skips rows another holds. Rows of other apps that point
        at them are treated as their foreign keys say (set to null, deleted)."""
        ...

    def count_prunable(self, before: Mapping[str, datetime]) -> dict[str, int]:
        """How many runs `prune_runs` would delete with the same `before`, by status."""
        ...

    def prune_audit(self, before: datetime, *, limit: int) -> int:
        """Delete up to `limit` audit events recorded before `before`, oldest first."""
        ...

    def count_audit(self, before: datetime) -> int:
        """How many audit events were recorded before `before`."""
        ...

    # -- reading ----------------------------------------------------------------------
    def estimated_rows(self, model: type[models.Model]) -> int | None:
        """The table's row count as the planner's statistics have it (None: unknown)."""
        ...

    # -- announcing and coordinating --------------------------------------------------
    def announce(self, delay: float = 0.0, *, plain: bool = False) -> None:
        """Tell waiting workers that a run is (or, after `delay` seconds, will be) due;
        inside a transaction, delivered at commit. `plain`: no flow limit holds it."""
        ...

    def announce_cancel(self, run_id: uuid.UUID) -> None:
        """Tell the worker holding `run_id` that it was cancelled (at commit)."""
        ...

    def wakeups(self) -> Wakeups | None:
        """A channel on which to hear `announce`, or None: poll."""
        ...

    def prune_deliveries(self, before: datetime, *, limit: int) -> int:
        """Delete up to `limit` finished webhook deliveries created before `before`
        (oldest first, one transaction); how many went. Pending ones are never pruned."""
        ...

    def claim_deliveries(self, *, limit: int, lease_seconds: float) -> list[DeliveryClaim]:
        """Take up to `limit` due webhook deliveries (pending, due, not under a live
        claim) under a new claim lasting `lease_seconds`; each is taken by one caller."""
        ...

    def exclusive(self, key: int) -> AbstractContextManager[bool]:
        """True inside while no other process holds `key` (a transaction holds it on
        PostgreSQL), False when another does: for duties one worker at a time should
        do, never for correctness."""
        ...
