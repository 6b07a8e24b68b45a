"""Watching one step attempt in its child process: its deadline, why it is being stopped,
its log records, and how it ended. The worker loop watches many at once, the foreground
runner one at a time; both through `SupervisedAttempt`, so a timeout, a crash or a stop
is seen and reported the same way wherever the step runs.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import wait
from typing import Any

from runs import attempts
from runs.attempts import AttemptReport, StepTask, StopReason
from runs.child import StepProcess

logger = logging.getLogger(__name__)

# Step code gets this long after SIGTERM to clean up before SIGKILL.
KILL_AFTER_SECONDS = 1.0


class SupervisedAttempt:
    """One attempt submitted to `process`, watched until it has a `report`."""

    def __init__(self, process: StepProcess, task: StepTask) -> None:
        self.process = process
        self.task = task
        self.started = time.monotonic()
        self.deadline = self.started + task.timeout
        self.term_sent_at: float | None = None
        self.stop_reason: StopReason | None = None
        self.logs: list[dict[str, Any]] = []
        self.report: AttemptReport | None = None
        #: The process died with the attempt: it cannot take another one.
        self.process_lost = False
        process.submit(task)

    @property
    def done(self) -> bool:
        return self.report is not None

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
            self._read()
        elif handle == self.process.sentinel:
            self._exited()

    def _read(self) -> None:
        conn = self.process.conn
        while not self.done and conn.poll():
            try:
                kind, payload = conn.recv()
            except (EOFError, OSError):
                return
            if kind == "log":
                self.logs.append(payload)
            elif kind == "done":
                report: AttemptReport = payload
                self.report = replace(report, logs=self.logs)

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
            self.report = attempts.timed_out(self.task, duration, self.logs)
        elif self.stop_reason is not None:
            self.report = attempts.stopped(self.stop_reason, duration, self.logs)
        else:
            description = self.process.exit_description()
            self.report = attempts.crashed(self.task, duration, self.logs, description)
            logger.error(
                "Step %s of run %s: its process %s",
                self.task.step,
                self.task.run_id,
                description,
                extra={"event": "step_crashed", "run_id": self.task.run_id, "step": self.task.step},
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
        self, *, tick: Callable[[], bool] | None = None, tick_every: float = 10.0
    ) -> AttemptReport | None:
        """Run to the end in this process's own time (the foreground runner). `tick` runs
        every `tick_every` seconds (lease renewal); when it returns False the step is
        stopped and None returned: the caller no longer holds the run."""
        next_tick = time.monotonic() + tick_every
        while not self.done:
            timeout = max(0.0, min(self.wake_at(), next_tick) - time.monotonic())
            for handle in wait(self.handles(), timeout):
                self.on_ready(handle)
            if self.done:
                break
            self.enforce()
            if tick is not None and time.monotonic() >= next_tick:
                next_tick = time.monotonic() + tick_every
                if not tick():
                    self.stop(StopReason.LOST)
                    while not self.done:
                        for handle in wait(self.handles(), KILL_AFTER_SECONDS):
                            self.on_ready(handle)
                        self.enforce()
                    return None
        return self.report
