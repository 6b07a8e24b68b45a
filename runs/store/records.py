"""What crosses the store's seam: plain frozen values, the same from either store."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipelines.limits import LimitedPipeline
from runs.store.transitions import RunChange, StepChange


class RunEvent(Mapping[str, Any]):
    """One run's audit event, in a batch whose events differ only in their target: the
    columns the events share, one mapping for the whole batch, with this run's id. Its
    target_id is the id as text, and its target_repr the batch's `label_prefix` and the
    id (runs/enqueueing.py `run_label`), each made only when read: the PostgreSQL store
    sends neither for such a run (the function writes both from the run's id), and made
    for every run of a large batch they were a tenth of its Python time. Made as a dict
    per run and compared with the first run's column by column, the events were a tenth
    of a large `enqueue_many`'s time before that."""

    __slots__ = ("label_prefix", "run_id", "shared")

    def __init__(self, shared: Mapping[str, Any], run_id: uuid.UUID, label_prefix: str) -> None:
        self.shared = shared
        self.run_id = run_id
        self.label_prefix = label_prefix

    @property
    def target_repr(self) -> str:
        # at most 141 characters (a pipeline's name is at most 100): within the column's
        # 200, which orbit.core.audit.event_values cuts other names to
        return self.label_prefix + str(self.run_id)

    def __getitem__(self, key: str) -> Any:
        if key == "target_id":
            return str(self.run_id)
        if key == "target_repr":
            return self.target_repr
        return self.shared[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.shared)

    def __len__(self) -> int:
        return len(self.shared)

    def __repr__(self) -> str:
        return f"RunEvent({dict(self)!r})"


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run to insert, laid out by the caller (runs/enqueueing.py): its steps in the
    definition's order, and the planner's first step as its current step."""

    id: uuid.UUID
    pipeline_id: int
    steps: tuple[str, ...]
    current_step: str
    metadata: Mapping[str, Any]
    priority: int = 0
    queue: str = "default"
    #: Not claimed before this moment; None: now, by the database clock, plus `delay`.
    run_after: datetime | None = None
    delay: float = 0.0
    idempotency_key: str | None = None
    #: Held by at most one pending or running run of the pipeline (Run.unique_key).
    unique_key: str | None = None
    scheduled_for: datetime | None = None
    #: The run this one runs again (runs.lifecycle.run_rerun).
    rerun_of: uuid.UUID | None = None
    #: The audit event's columns (orbit.core.audit.event_values, or a `RunEvent` over a
    #: batch's shared ones), written with the run; its target_id is always the run's.
    audit: Mapping[str, Any] | None = None
    #: The enqueuing code's trace context (Run.trace_context); empty while tracing is off.
    trace_context: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PipelineCheck:
    """The pipeline row as the caller laid its runs out for it (perhaps from a cached copy,
    pipelines/lookup.py): `insert_runs` writes them only while the stored row is enabled,
    not archived, and still has these values, and otherwise writes nothing and raises StalePipeline."""

    id: int
    name: str
    definition: str
    default_metadata: Mapping[str, Any]
    #: Whether the row (as read) has a concurrency or rate limit. False lets the runs be
    #: announced as plain (`Announcements.plain`) unless their queue has a limit; a limit
    #: set since the copy was read is met by the workers' next claim under limits.
    limited: bool = True


@dataclass(frozen=True, slots=True)
class InsertedRun:
    """One `NewRun`'s fate: inserted, or the run already holding its idempotency key or
    schedule slot (`created` False)."""

    id: uuid.UUID
    created: bool
    created_at: datetime | None = None
    available_at: datetime | None = None


@dataclass(frozen=True)
class StepRow:
    """A step as the claim found it. Valid for as long as the claim holds: only the
    claimant writes a running run's steps (anyone else is refused by the fence first)."""

    id: int
    name: str
    status: str
    result: Any
    attempts: int
    failures: int


@dataclass(frozen=True)
class Fence:
    """A run as one claimant holds it: every write it makes is conditional on both."""

    run_id: uuid.UUID
    fence: int


@dataclass(frozen=True)
class Claim:
    """A run held by one claimant under one fence, with its steps as they were when it
    was claimed, and the step the claim started (the run's current step, when it had one
    left to run; '' otherwise)."""

    run_id: uuid.UUID
    fence: int
    worker_id: int | None
    pipeline: str
    definition: str
    metadata: dict[str, Any]
    steps: tuple[StepRow, ...]
    started: str = ""
    #: The run's trace context (Run.trace_context): the parent of its run span.
    trace_context: Mapping[str, str] = field(default_factory=dict)
    #: Claimed under a flow limit (pipelines/limits.py): its end may free a slot.
    limited: bool = False

    @property
    def held(self) -> Fence:
        return Fence(self.run_id, self.fence)


class Claims(list[Claim]):
    """A claim's runs, and what limited claiming learnt: `retry_after` seconds until a
    rate limit that is full admits another claim (None: none is full)."""

    retry_after: float | None = None
    #: The claim under limits was not made: another claimer held the limits' lock and
    #: the request said not to wait for it (`ClaimRequest.wait_for_limits`).
    limits_busy: bool = False


@dataclass(frozen=True)
class ClaimRequest:
    """What a claimant may take: how many, from which queues, under which lease, and
    only runs whose every unfinished step it defines (`definitions`: definition name ->
    its step names); None takes any run."""

    worker_id: int | None
    limit: int
    queues: tuple[str, ...]
    lease_seconds: float
    definitions: Mapping[str, tuple[str, ...]] | None = None
    #: The aging probe (runs/worker/aging.py): only runs due for longer than this many
    #: seconds, the longest waiting first, whatever their priority.
    older_than: float | None = None
    #: Also claim runs under flow limits (serialised by the limits' lock, a few statements
    #: more). False when the caller knows no limit applies: runs of limited pipelines and
    #: queues are then left alone, never claimed past their limit.
    limited: bool = True
    #: Wait for the limits' lock while another claimer holds it. A worker does not: its
    #: loop would stall, and with it every slot's next report and claim; it skips the
    #: claim under limits (the holder is claiming what is claimable) and tries again soon.
    wait_for_limits: bool = True


@dataclass(frozen=True)
class LimitsState:
    """What a claim under flow limits decides on, read under the limits' lock: so every
    count includes every claim committed before (runs/store/portable.py `_claim_limited`)."""

    #: The database clock, seconds since the epoch: rate windows are kept by it.
    now: float
    #: In name order.
    pipelines: tuple[LimitedPipeline, ...]
    #: Runs running per queue, for the limited queues the claimant serves.
    running_by_queue: Mapping[str, int]
    #: Every rate window's admitted starts, by window name.
    windows: Mapping[str, Sequence[float]]


@dataclass(frozen=True)
class AttemptRecord:
    """One try at a step, as it goes into the history."""

    step_id: int
    number: int
    outcome: str
    duration: float | None
    error: str = ""
    error_type: str = ""
    traceback: str = ""
    backoff_delay: float | None = None
    worker_id: int | None = None


@dataclass(frozen=True)
class Outcome:
    """One fenced commit: the run's transition, the step's, the attempt that led to them,
    and the step to start next. Nothing is written unless the fence holds."""

    held: Fence
    run: RunChange
    run_values: Mapping[str, Any] = field(default_factory=dict)
    step_id: int | None = None
    step: StepChange | None = None
    step_values: Mapping[str, Any] = field(default_factory=dict)
    attempt: AttemptRecord | None = None
    #: The next step's row, marked running in the same commit (the run `continue`s).
    start_step_id: int | None = None


def one_per_run(outcomes: Sequence[Outcome]) -> None:
    """A batch commits at most one outcome per run (a worker holds each run in one slot):
    refused whole otherwise, since the two would race for one row in one statement."""
    if len({outcome.held.run_id for outcome in outcomes}) < len(outcomes):
        raise ValueError("a commit carries at most one outcome per run")


@dataclass(frozen=True)
class StepStart:
    """Start `name` for a held run: the step the claim started was not the planner's
    choice (the definition changed since the run was laid out), or had no row yet."""

    name: str
    step_id: int | None  # None: create the row at `position`
    position: int
    #: The row the claim marked running, put back as it was.
    undo_step_id: int | None = None
    undo_status: str = ""


@dataclass(frozen=True)
class LogLine:
    """One log record of a step attempt, numbered within the attempt."""

    sequence: int
    time: datetime
    level: str
    message: str
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LogBatch:
    """An attempt's log records to append; written only while `held` still holds the run
    (or holds it cancelled: what a cancelled step logged on its way out is kept)."""

    held: Fence
    step_id: int
    attempt: int
    lines: tuple[LogLine, ...]


@dataclass(frozen=True)
class Interrupted:
    """A run taken back from a dead claimant by a recovery sweep."""

    run_id: uuid.UUID
    step: str
    worker_id: int | None
    interruptions: int
    quarantined: bool
    error: str = ""


@dataclass(frozen=True)
class DeadWorker:
    """A worker a recovery sweep found silent past its lease, and the runs it held then."""

    worker_id: int
    name: str
    last_heartbeat: datetime
    #: {"run_id", "pipeline", "step"} of each run it held.
    held: tuple[Mapping[str, str], ...] = ()


#: A payload that starts with this names a cancelled run rather than a delay.
CANCEL_PREFIX = "cancel:"
#: A delay payload that starts with this announces runs no flow limit holds, as the
#: announcer saw them (an enqueue of an unlimited pipeline on an unlimited queue).
PLAIN_PREFIX = "plain:"


@dataclass(frozen=True)
class Announcements:
    """What other processes announced since a listener last looked."""

    #: Runs became claimable, or will after these many seconds.
    delays: tuple[float, ...] = ()
    #: Running runs an operator cancelled: whoever holds one stops its step now.
    cancelled: tuple[uuid.UUID, ...] = ()
    #: As `delays`, for runs no flow limit holds: the plain claim alone serves them, so
    #: a worker need not also claim under the limits' lock for them.
    plain: tuple[float, ...] = ()

    @staticmethod
    def delay_payload(delay: float, *, plain: bool = False) -> str:
        """An announcement's text for a run due in `delay` seconds: whole milliseconds."""
        return f"{PLAIN_PREFIX if plain else ''}{int(max(delay, 0.0) * 1000)}"

    @staticmethod
    def cancel_payload(run_id: uuid.UUID) -> str:
        return f"{CANCEL_PREFIX}{run_id}"

    @classmethod
    def parse(cls, payloads: Iterable[str]) -> Announcements:
        """Read announcements as `delay_payload` and `cancel_payload` wrote them, whichever
        channel carried them (NOTIFY on PostgreSQL, a datagram on SQLite)."""
        delays: list[float] = []
        cancelled: list[uuid.UUID] = []
        plain: list[float] = []
        for payload in payloads:
            try:
                if payload.startswith(CANCEL_PREFIX):
                    cancelled.append(uuid.UUID(payload.removeprefix(CANCEL_PREFIX)))
                elif payload.startswith(PLAIN_PREFIX):
                    plain.append(int(payload.removeprefix(PLAIN_PREFIX) or 0) / 1000)
                else:
                    delays.append(int(payload or 0) / 1000)
            except ValueError:
                delays.append(0.0)  # unreadable: look for work now, nothing is lost by it
        return cls(tuple(delays), tuple(cancelled), tuple(plain))


@dataclass(frozen=True)
class Pruned:
    """What one pruning batch deleted (its figures went to the hourly rollups first)."""

    #: Runs deleted, by status.
    runs: Mapping[str, int] = field(default_factory=dict)
    attempts: int = 0

    @property
    def total(self) -> int:
        return sum(self.runs.values())


@dataclass(frozen=True)
class DeliveryClaim:
    """A webhook delivery a worker claimed to send: its result is written only while
    `claim` still holds (another worker takes it over once `claimed_until` passes)."""

    id: uuid.UUID
    claim: uuid.UUID
    endpoint_id: int
    event: str
    run_id: uuid.UUID
    payload: Mapping[str, Any]
    attempts: int
