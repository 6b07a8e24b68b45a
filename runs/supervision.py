"""Watching one step attempt in its child process: its deadline, why it is being stopped,
its log records, and how it ended. The worker loop watches many at once, the foreground
runner one at a time; both through `SupervisedAttempt`, so a timeout, a crash or a stop
is seen and reported the same way wherever the step runs.

Log records arrive over the child's pipe as they are written and wait in the attempt's
`LogBuffer` until the supervisor writes them (about every LOG_WRITE_SECONDS, and before
the attempt's outcome is committed), so the run page shows a running step's logs within
about a second and a killed worker loses at most the last half second of them.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from multiprocessing.connection import wait
from typing import Any

from orbit.core import tracing
from orbit.core.conf import orbit_settings
from runs import attempts
from runs import tracing as run_tracing
from runs.attempts import AttemptReport, StepTask, StopReason
from runs.child import StepProcess
from runs.store.records import Fence, LogBatch, LogLine

logger = logging.getLogger(__name__)

# Step code gets this long after SIGTERM to clean up before SIGKILL.
KILL_AFTER_SECONDS = 1.0
#: How often a running step's new log records are written to the database.
LOG_WRITE_SECONDS = 0.5
#: The `fields` of the record that stands for those an attempt logged past the bound.
TRUNCATED_FIELDS = {"orbit": "truncated"}


class LogBuffer:
    """One attempt's log records on their way to the database, numbered in the order the
    step wrote them: the first `limit` are kept, then one record saying the rest were not."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.received = 0
        self._pending: list[LogLine] = []

    @property
    def pending(self) -> tuple[LogLine, ...]:
        """The records not written yet, oldest first."""
        return tuple(self._pending)

    def add(self, entry: dict[str, Any]) -> None:
        """A record from the child (runs/child.py `log_entry`)."""
        sequence = self.received
        self.received += 1
        if sequence < self.limit:
            self._pending.append(_line(sequence, entry))
        elif sequence == self.limit:
            self._pending.append(
                LogLine(
                    sequence=sequence,
                    time=datetime.now(UTC),
                    level="WARNING",
                    message=(
                        f"Log truncated: this attempt logged more than {self.limit} records; "
                        "the rest are not kept (ORBIT_MAX_LOG_RECORDS)"
                    ),
                    fields=TRUNCATED_FIELDS,
                )
            )

    def written(self, count: int) -> None:
        """The oldest `count` pending records reached the database (or never will)."""
        del self._pending[:count]


def _line(sequence: int, entry: dict[str, Any]) -> LogLine:
    try:
        moment = datetime.fromisoformat(str(entry.get("time")))
    except ValueError:
        moment = datetime.now(UTC)
    fields = entry.get("fields") or {}
    encoded = json.dumps(fields, default=repr)
    if "\\u0000" in encoded:  # PostgreSQL's jsonb refuses NUL characters
        fields = json.loads(encoded.replace("\\u0000", "\\\\u0000"))
    return LogLine(
        sequence=sequence,
        time=moment,
        level=str(entry.get("level", "")),
        message=str(entry.get("message", "")).replace("\x00", "\\x00"),
        fields=fields,
    )


class SupervisedAttempt:
    """One attempt submitted to `process`, watched until it has a `report`; traced as a
    child of `run_span` (the claimant's span of the run) when tracing is on."""

    def __init__(self, process: StepProcess, task: StepTask, run_span: Any = None) -> None:
        self.process = process
        #: The attempt's span (runs/tracing.py), ended with its report; None: not traced.
        self.span = run_tracing.attempt_span(task, run_span)
        if self.span is not None:
            task = replace(task, trace_context=tracing.carrier(self.span))
        self.task = task
        self.started = time.monotonic()
        self.deadline = self.started + task.timeout
        self.term_sent_at: float | None = None
        self.stop_reason: StopReason | None = None
        self.logs = LogBuffer(orbit_settings.max_log_records)
        self._report: AttemptReport | None = None
        #: The process died with the attempt: it cannot take another one.
        self.process_lost = False
        process.submit(task)

    @property
    def report(self) -> AttemptReport | None:
        """How the attempt ended; None while it runs."""
        return self._report

    @report.setter
    def report(self, report: AttemptReport) -> None:
        self._report = report
        self.end_span(report)

    def end_span(self, report: AttemptReport | None = None, outcome: str = "") -> None:
        """End the attempt's span once: with its report, or with `outcome` when it was
        abandoned without one (a worker stopping now)."""
        span, self.span = self.span, None
        run_tracing.end_attempt_span(span, report, outcome)

    @property
    def done(self) -> bool:
        return self._report is not None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def handles(self) -> list[Any]:
        """What to wait on while the attempt runs: its pipe and its process's exit."""
        return [] if self.done else [self.process.conn, self.process.sentinel]

    def wake_at(self) -> float:
        """When `enforce` must run next: the deadline, or the SIGKILL after a SIGTERM."""
        if self.term_sent_at is None:
            return self.deadline
        return self.term_sent_at + KILL_AFTER_SECONDS

    def on_ready(self, handle: Any) -> None:
        """`handle` (from `handles`) is ready: read the pipe, or notice the exit."""
        if self.done:
            return
        if handle is self.process.conn:
            self._read(ready=True)
        elif handle == self.process.sentinel:
            self._exited()

    def _read(self, *, ready: bool = False) -> None:
        """Take in what the child sent: each message the pipe holds, until its report.
        `ready`: the pipe was found readable already, so the first read needs no `poll`
        (each one builds a selector: a few microseconds per run in the worker's loop)."""
        conn = self.process.conn
        while not self.done and (ready or conn.poll()):
            ready = False
            try:
                kind, payload = conn.recv()
            except (EOFError, OSError):
                return
            if kind == "log":
                self.logs.add(payload)
            elif kind == "span":  # one the step's own code ended (runs/child.py)
                tracing.export_relayed(payload)
            elif kind == "done":
                self.report = payload

    def _exited(self) -> None:
        if self.process.conn.poll():
            self._read()  # pipes before sentinels: one that reported and then exited did finish
        if self.done or self.process.is_alive():
            return
        # Its pipes close a moment before the kernel can report its exit status: wait for it.
        self.process.process.join(KILL_AFTER_SECONDS)
        self.process_lost = True
        duration = self.elapsed()
        if self.stop_reason is StopReason.TIMEOUT:
            self.report = attempts.timed_out(self.task, duration)
        elif self.stop_reason is not None:
            self.report = attempts.stopped(self.stop_reason, duration)
        else:
            description = self.process.exit_description()
            self.report = attempts.crashed(self.task, duration, description)
            logger.error(
                "Step %s of run %s: its process %s",
                self.task.step,
                self.task.run_id,
                description,
                extra={"event": "step_crashed", "run_id": self.task.run_id, "step": self.task.step},
            )

    def log_batch(self, held: Fence) -> LogBatch | None:
        """The records not written yet, for `held`'s run; None when there are none.
        Call `logs.written(len(batch.lines))` once they are written."""
        lines = self.logs.pending
        if not lines:
            return None
        return LogBatch(
            held=held, step_id=self.task.step_id, attempt=self.task.try_number, lines=lines
        )

    def enforce(self, now: float | None = None) -> None:
        """Stop the attempt at its deadline (SIGTERM), kill it if SIGTERM was not enough."""
        if self.done:
            return
        now = time.monotonic() if now is None else now
        if self.term_sent_at is None and now >= self.deadline:
            logger.warning(
                "Step %s of run %s passed its %.0f s timeout; stopping it",
                self.task.step,
                self.task.run_id,
                self.task.timeout,
                extra={"event": "step_timeout", "run_id": self.task.run_id, "step": self.task.step},
            )
            self.stop(StopReason.TIMEOUT)
        elif self.term_sent_at is not None and now - self.term_sent_at > KILL_AFTER_SECONDS:
            self.kill()

    def stop(self, reason: StopReason) -> None:
        """SIGTERM now, once; `enforce` sends SIGKILL if it does not end in time."""
        if self.done or self.term_sent_at is not None:
            return
        self.stop_reason = reason
        self.term_sent_at = time.monotonic()
        self.process.signal(signal.SIGTERM)

    def kill(self) -> None:
        self.process.signal(signal.SIGKILL)

    def wait(
        self,
        *,
        tick: Callable[[], bool] | None = None,
        tick_every: float = 10.0,
        write_logs: Callable[[], None] | None = None,
    ) -> AttemptReport | None:
        """Run to the end in this process's own time (the foreground runner). `tick` runs
        every `tick_every` seconds (lease renewal); when it returns False the step is
        stopped and None returned: the caller no longer holds the run. `write_logs` runs
        about every LOG_WRITE_SECONDS while records are waiting."""
        next_tick = time.monotonic() + tick_every
        next_write = time.monotonic()
        while not self.done:
            wake = min(self.wake_at(), next_tick)
            if write_logs is not None and self.logs.pending:
                wake = min(wake, next_write)
            for handle in wait(self.handles(), max(0.0, wake - time.monotonic())):
                self.on_ready(handle)
            if self.done:
                break
            self.enforce()
            now = time.monotonic()
            if write_logs is not None and self.logs.pending and now >= next_write:
                write_logs()
                next_write = now + LOG_WRITE_SECONDS
            if tick is not None and now >= next_tick:
                next_tick = now + tick_every
                if not tick():
                    self.stop(StopReason.LOST)
                    while not self.done:
                        for handle in wait(self.handles(), KILL_AFTER_SECONDS):
                            self.on_ready(handle)
                        self.enforce()
                    return None
        return self.report
