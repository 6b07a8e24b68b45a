"""Every change of state a run or a step goes through, each defined once, as data.

A transition says which columns it sets and to what: a constant, the database clock, the
clock plus a delay, a value passed with it, an increment, or nothing (kept). Both stores
carry out exactly these: the portable store turns a transition into one ORM `update()`,
and the PostgreSQL store's statements (runs/store/sql/*.sql) write the same columns the
same way, which tests/runs/store/test_transitions.py holds them to, column by column.

The rules that follow from the table, and that used to differ between copies:
- a run that finishes (succeeded, failed, cancelled, quarantined) has no current step
  and no lease, and keeps the worker that last held it (who ran it, for the history);
- a run that goes back to the queue (released for a retry, handed back, recovered) keeps
  its current step, which is where it resumes, and has no worker and no lease;
- only a claim advances the fence, and only a recovery counts an interruption;
- every commit adds the duration of the attempt it records to the run's running time.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db.models import DateTimeField, ExpressionWrapper, F
from django.db.models.functions import Coalesce, Now

from runs.models import RunStatus, StepStatus


class Set(enum.Enum):
    """How a transition sets one column."""

    KEEP = "keep"  # left as it is
    CLEAR = "clear"  # NULL, or '' for text columns
    NOW = "now"  # the database clock
    NOW_IF_UNSET = "now_if_unset"  # the database clock, unless already set
    NOW_PLUS = "now_plus"  # the database clock plus the seconds passed with the change
    INCREMENT = "increment"  # one more
    ADD = "add"  # plus the amount passed with the change (none passed: plus nothing)
    RESET = "reset"  # back to zero
    VALUE = "value"  # the value passed with the change


_TEXT_COLUMNS = frozenset({"error", "current_step", "error_type", "traceback"})


@dataclass(frozen=True, eq=False)  # each one is itself: compared and hashed by identity
class Change:
    """What one transition of one model sets: column -> how."""

    name: str
    columns: Mapping[str, Set]

    def how(self, column: str) -> Set:
        return self.columns.get(column, Set.KEEP)

    def orm_updates(self, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The transition as keyword arguments for `QuerySet.update()`.

        `values` gives each VALUE column its value and each NOW_PLUS column its seconds.
        """
        values = values or {}
        updates: dict[str, Any] = {}
        for column, how in self.columns.items():
            if how is Set.KEEP:
                continue
            if how is Set.CLEAR:
                updates[column] = "" if column in _TEXT_COLUMNS else None
            elif how is Set.NOW:
                updates[column] = Now()
            elif how is Set.NOW_IF_UNSET:
                updates[column] = Coalesce(F(column), Now())
            elif how is Set.NOW_PLUS:
                updates[column] = now_plus(float(values[column]))
            elif how is Set.INCREMENT:
                updates[column] = F(column) + 1
            elif how is Set.ADD:
                if values.get(column):
                    updates[column] = F(column) + float(values[column])
            elif how is Set.RESET:
                updates[column] = 0
            elif how is Set.VALUE:
                updates[column] = values[column]
        return updates

    def needs(self) -> frozenset[str]:
        """The columns whose value (or seconds, or amount) is passed with the change."""
        return frozenset(
            column
            for column, how in self.columns.items()
            if how in (Set.VALUE, Set.NOW_PLUS, Set.ADD)
        )


def now_plus(seconds: float) -> Any:
    """The database clock plus `seconds`: workers on other hosts may have drifting clocks."""
    return ExpressionWrapper(Now() + timedelta(seconds=seconds), output_field=DateTimeField())


@dataclass(frozen=True, eq=False)  # each one is itself: compared and hashed by identity
class RunChange(Change):
    """A run transition: from which statuses, to which status, and what else it sets."""

    before: frozenset[str] = frozenset()
    status: str = ""
    #: Fenced: only while the run is `running` under the claimant's fence.
    fenced: bool = False
    columns: Mapping[str, Set] = field(default_factory=dict)

    def orm_updates(self, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {"status": self.status, **super().orm_updates(values)}


_RUNNING = frozenset({RunStatus.RUNNING.value})
#: A commit records an attempt: its duration is added to the run's running time.
_TIMED = {"running_time": Set.ADD}
_RELEASED = {"worker_id": Set.CLEAR, "lease_expires_at": Set.CLEAR}
_FINISHED = {"finished_at": Set.NOW, "lease_expires_at": Set.CLEAR, "current_step": Set.CLEAR}

#: A worker (or the foreground runner) takes a pending run: the fence advances.
CLAIM = RunChange(
    name="claim",
    before=frozenset({RunStatus.PENDING.value}),
    status=RunStatus.RUNNING,
    columns={
        "fence": Set.INCREMENT,
        "worker_id": Set.VALUE,
        "lease_expires_at": Set.NOW_PLUS,
        "started_at": Set.NOW_IF_UNSET,
    },
)
#: The run moves on to its next step (`current_step`), and the lease is renewed.
CONTINUE = RunChange(
    name="continue",
    before=_RUNNING,
    status=RunStatus.RUNNING,
    fenced=True,
    columns={"current_step": Set.VALUE, "lease_expires_at": Set.NOW_PLUS, **_TIMED},
)
#: A step failed with retries left: the run goes back to the queue until its backoff is over.
RELEASE = RunChange(
    name="release",
    before=_RUNNING,
    status=RunStatus.PENDING,
    fenced=True,
    columns={**_RELEASED, "available_at": Set.NOW_PLUS, "current_step": Set.VALUE, **_TIMED},
)
#: The foreground runner waits out a backoff itself: it keeps the run, lease and all.
HOLD = RunChange(
    name="hold",
    before=_RUNNING,
    status=RunStatus.RUNNING,
    fenced=True,
    columns={"lease_expires_at": Set.NOW_PLUS, **_TIMED},
)
#: Given back unfinished (shutdown, or a step stopped through no fault of its own). It keeps
#: its `available_at`, so it resumes ahead of the runs queued after it.
HAND_BACK = RunChange(
    name="hand_back",
    before=_RUNNING,
    status=RunStatus.PENDING,
    fenced=True,
    columns={**_RELEASED, "current_step": Set.VALUE, **_TIMED},
)
SUCCEED = RunChange(
    name="succeed",
    before=_RUNNING,
    status=RunStatus.SUCCEEDED,
    fenced=True,
    columns={**_FINISHED, **_TIMED},
)
FAIL = RunChange(
    name="fail",
    before=_RUNNING,
    status=RunStatus.FAILED,
    fenced=True,
    columns={**_FINISHED, "error": Set.VALUE, **_TIMED},
)
#: An operator stops a run; its worker hears of it and stops the step (runs/worker).
CANCEL = RunChange(
    name="cancel",
    before=frozenset({RunStatus.PENDING.value, RunStatus.RUNNING.value}),
    status=RunStatus.CANCELLED,
    columns={**_FINISHED, "error": Set.VALUE},
)
#: An operator queues a failed or cancelled run again, at the step `current_step`.
RETRY = RunChange(
    name="retry",
    before=frozenset({RunStatus.FAILED.value, RunStatus.CANCELLED.value}),
    status=RunStatus.PENDING,
    columns={
        **_RELEASED,
        "available_at": Set.NOW,
        "finished_at": Set.CLEAR,
        "error": Set.CLEAR,
        "current_step": Set.VALUE,
        "interruptions": Set.RESET,
    },
)
#: A running run whose lease expired (its worker died) goes back to the queue.
RECOVER = RunChange(
    name="recover",
    before=_RUNNING,
    status=RunStatus.PENDING,
    columns={**_RELEASED, "interruptions": Set.INCREMENT},
)
#: ...unless it has interrupted its workers too often: then it fails, with the reason.
QUARANTINE = RunChange(
    name="quarantine",
    before=_RUNNING,
    status=RunStatus.FAILED,
    columns={
        **_FINISHED,
        "worker_id": Set.CLEAR,
        "interruptions": Set.INCREMENT,
        "error": Set.VALUE,
    },
)

RUN_CHANGES: tuple[RunChange, ...] = (
    CLAIM,
    CONTINUE,
    RELEASE,
    HOLD,
    HAND_BACK,
    SUCCEED,
    FAIL,
    CANCEL,
    RETRY,
    RECOVER,
    QUARANTINE,
)
#: What one batch commit may do to a run (runs/store: `commit`).
COMMIT_CHANGES = frozenset({CONTINUE, RELEASE, HOLD, HAND_BACK, SUCCEED, FAIL})


@dataclass(frozen=True, eq=False)  # each one is itself: compared and hashed by identity
class StepChange(Change):
    """A step transition: the status it leaves the step in, and what else it sets."""

    status: str = ""
    columns: Mapping[str, Set] = field(default_factory=dict)

    def orm_updates(self, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        updates = {"status": self.status, **super().orm_updates(values)}
        return updates


_ENDED = {"attempts": Set.INCREMENT, "finished_at": Set.NOW, "duration": Set.VALUE}
_ERROR = {"error": Set.VALUE, "error_type": Set.VALUE, "traceback": Set.VALUE}

STEP_START = StepChange(name="start", status=StepStatus.RUNNING, columns={"started_at": Set.NOW})
STEP_SUCCEED = StepChange(
    name="succeed",
    status=StepStatus.SUCCEEDED,
    columns={
        **_ENDED,
        "result": Set.VALUE,
        "error": Set.CLEAR,
        "error_type": Set.CLEAR,
        "traceback": Set.CLEAR,
    },
)
#: A failed attempt with retries left: pending again, the spent budget in `failures`.
STEP_RETRY = StepChange(
    name="retry", status=StepStatus.PENDING, columns={**_ENDED, **_ERROR, "failures": Set.VALUE}
)
#: Out of retries (or not retryable): the step, and so the run, failed.
STEP_FAIL = StepChange(
    name="fail", status=StepStatus.FAILED, columns={**_ENDED, **_ERROR, "failures": Set.VALUE}
)
#: Stopped through no fault of its own (shutdown, a dead worker, a cancellation): the
#: attempt counts in the history, not against the retry budget.
STEP_INTERRUPT = StepChange(
    name="interrupt", status=StepStatus.PENDING, columns={"attempts": Set.INCREMENT}
)
#: A step a claim started that did not run after all (the claimant cannot run it).
STEP_UNSTART = StepChange(
    name="unstart", status=StepStatus.PENDING, columns={"started_at": Set.CLEAR}
)
#: The step that had the run quarantined carries the reason.
STEP_QUARANTINE = StepChange(
    name="quarantine", status=StepStatus.FAILED, columns={"error": Set.VALUE}
)
#: Back to pending with a fresh retry budget (an operator's retry of the run).
STEP_RESET = StepChange(
    name="reset",
    status=StepStatus.PENDING,
    columns={
        "failures": Set.RESET,
        "error": Set.CLEAR,
        "error_type": Set.CLEAR,
        "traceback": Set.CLEAR,
    },
)

STEP_CHANGES: tuple[StepChange, ...] = (
    STEP_START,
    STEP_SUCCEED,
    STEP_RETRY,
    STEP_FAIL,
    STEP_INTERRUPT,
    STEP_UNSTART,
    STEP_QUARANTINE,
    STEP_RESET,
)
