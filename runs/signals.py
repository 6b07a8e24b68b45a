"""Django signals for run and step outcomes, sent once per event after the commit that
recorded it (docs/SIGNALS.md).

Every signal is sent with `sender=Run` and the run, loaded after the commit, as `run`,
plus its `run_id`; each adds what its event is about:

- `run_succeeded`: nothing more.
- `run_failed`: `step`, `error` (the run's error), `error_type` (the last attempt's).
- `run_cancelled`: `reason`, `previous_status` (pending or running).
- `run_quarantined`: `step`, `error`, `interruptions` (it failed: its workers died too often).
- `run_recovered`: `step`, `interruptions` (its worker died; it is back in the queue).
- `step_retried`: `step`, `attempt` (the number of the attempt that failed), `outcome`
  (failed, timed_out, crashed), `delay` (the backoff before the next attempt).
- `step_timed_out`: `step`, `attempt`, `retrying` (whether a retry follows).

One module turns what the engine recorded into events (`outcome_events`,
`interrupted_events`, `cancelled_event`) and one function sends them (`send`): the
callers that commit (runs/execution.py, runs/lifecycle.py, runs/recovery.py) hand their
events to `send` right after the store's write, and `send` defers them to
`transaction.on_commit`. So a change rolled back sends nothing, a change committed in an
outer transaction sends when that commits, and the sender is always the process that
committed: the worker parent (never a step's child process, which writes nothing), or
the web or CLI process for an operator's action.

`send` also writes the webhook deliveries the events owe, in the caller's transaction
(runs/webhooks/recording.py, docs/WEBHOOKS.md).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.dispatch import Signal

from runs.models import AttemptOutcome, Run
from runs.store import transitions as t
from runs.store.records import Interrupted, Outcome
from runs.webhooks import recording

logger = logging.getLogger(__name__)

run_succeeded = Signal()
run_failed = Signal()
run_cancelled = Signal()
run_quarantined = Signal()
run_recovered = Signal()
step_retried = Signal()
step_timed_out = Signal()

ALL: Mapping[str, Signal] = {
    "run_succeeded": run_succeeded,
    "run_failed": run_failed,
    "run_cancelled": run_cancelled,
    "run_quarantined": run_quarantined,
    "run_recovered": run_recovered,
    "step_retried": step_retried,
    "step_timed_out": step_timed_out,
}
#: Each signal's name: the event names webhooks subscribe to.
NAMES: Mapping[Signal, str] = {signal: name for name, signal in ALL.items()}


@dataclass(frozen=True)
class Event:
    """One signal to send about one run, with its arguments besides `run`."""

    signal: Signal
    run_id: uuid.UUID
    kwargs: Mapping[str, Any] = field(default_factory=dict)


def outcome_events(outcome: Outcome, step: str = "") -> list[Event]:
    """What one committed attempt outcome is worth telling: its step's events first
    (timed out, retried), then its run's (succeeded, failed)."""
    run_id = outcome.held.run_id
    attempt = outcome.attempt
    events = []
    if attempt is not None and attempt.outcome == AttemptOutcome.TIMED_OUT:
        retrying = outcome.step is t.STEP_RETRY
        events.append(
            Event(
                step_timed_out,
                run_id,
                {"step": step, "attempt": attempt.number, "retrying": retrying},
            )
        )
    if outcome.step is t.STEP_RETRY and attempt is not None:
        events.append(
            Event(
                step_retried,
                run_id,
                {
                    "step": step,
                    "attempt": attempt.number,
                    "outcome": str(attempt.outcome),
                    "delay": attempt.backoff_delay,
                },
            )
        )
    if outcome.run is t.SUCCEED:
        events.append(Event(run_succeeded, run_id))
    elif outcome.run is t.FAIL:
        events.append(
            Event(
                run_failed,
                run_id,
                {
                    "step": step,
                    "error": outcome.run_values.get("error", ""),
                    "error_type": attempt.error_type if attempt is not None else "",
                },
            )
        )
    return events


def interrupted_events(taken: Iterable[Interrupted]) -> list[Event]:
    """A recovery sweep's runs: each recovered or quarantined."""
    return [
        Event(
            run_quarantined,
            run.run_id,
            {"step": run.step, "error": run.error, "interruptions": run.interruptions},
        )
        if run.quarantined
        else Event(
            run_recovered, run.run_id, {"step": run.step, "interruptions": run.interruptions}
        )
        for run in taken
    ]


def cancelled_event(run_id: uuid.UUID, *, reason: str, previous_status: str) -> Event:
    return Event(run_cancelled, run_id, {"reason": reason, "previous_status": previous_status})


def send(events: Sequence[Event]) -> None:
    """Send `events` once the current transaction commits (now, outside one).

    Call it right after the write that recorded them, in the same transaction (or, for a
    store write that committed on its own, right after it returned). Nothing is read or
    sent while no receiver is connected: the engine's statement counts stay as they are.

    Here too, in the same transaction, the webhook deliveries the events owe are written
    (runs/webhooks/recording.py; nothing while no endpoint is enabled).
    """
    recording.write([(NAMES[event.signal], event.run_id, event.kwargs) for event in events])
    wanted = [event for event in events if event.signal.has_listeners(Run)]
    if wanted:
        transaction.on_commit(lambda: _deliver(wanted), robust=True)


def _deliver(events: Sequence[Event]) -> None:
    """Load the runs (one query) and send each event with `send_robust`.

    Robust because receivers are other people's code running in the worker's (or the
    web process's) loop: one that raises must not stop a worker between commits, keep
    the other receivers from hearing, or fail an operator's request whose change has
    already committed. Its exception is logged, with its traceback, and the rest go on.
    """
    runs = Run.objects.select_related("pipeline").in_bulk({event.run_id for event in events})
    for event in events:
        run = runs.get(event.run_id)
        if run is None:  # deleted since (retention): nothing left to describe
            continue
        responses = event.signal.send_robust(
            sender=Run, run=run, run_id=run.id, **dict(event.kwargs)
        )
        for receiver, response in responses:
            if isinstance(response, Exception):
                logger.error(
                    "Signal receiver %r raised for run %s",
                    receiver,
                    run.id,
                    exc_info=response,
                    extra={"event": "signal_receiver_failed", "run_id": str(run.id)},
                )
