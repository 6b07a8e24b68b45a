"""A slot: one supervised child process and the run attempt it is executing."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import Any

from runs.child import KILL_AFTER_SECONDS, StepProcess
from runs.claiming import Claim
from runs.execution import AttemptReport, StepTask


@dataclass
class Slot:
    index: int
    process: StepProcess | None = None
    claim: Claim | None = None
    task: StepTask | None = None
    started: float = 0.0
    deadline: float = 0.0
    term_sent_at: float | None = None
    # Why the supervisor is stopping the child: "timeout", "lost", "shutdown".
    stopping_for: str | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    # How the attempt ended, until it is committed (kept through a database outage).
    report: AttemptReport | None = None

    @property
    def busy(self) -> bool:
        return self.claim is not None

    def start(self, claim: Claim, task: StepTask, *, max_tasks_per_child: int) -> None:
        if self.process is not None and (
            not self.process.is_alive() or self.process.tasks_run >= max_tasks_per_child
        ):
            self.process.stop()  # recycled: contains leaks in long-lived step code
            self.process = None
        if self.process is None:
            self.process = StepProcess()
        self.claim = claim
        self.task = task
        self.started = time.monotonic()
        self.deadline = self.started + task.timeout
        self.term_sent_at = None
        self.stopping_for = None
        self.logs = []
        self.report = None
        self.process.submit(task)

    def free(self) -> None:
        self.report = None
        self.claim = None
        self.task = None
        self.term_sent_at = None
        self.stopping_for = None
        self.logs = []

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def stop_child(self, reason: str) -> None:
        """SIGTERM now; `overdue()` tells when SIGKILL is due."""
        if self.process is None or self.term_sent_at is not None:
            return
        self.stopping_for = reason
        self.term_sent_at = time.monotonic()
        self.process.signal(signal.SIGTERM)

    def overdue(self) -> bool:
        return (
            self.term_sent_at is not None
            and time.monotonic() - self.term_sent_at > KILL_AFTER_SECONDS
        )

    def kill_child(self) -> None:
        if self.process is not None:
            self.process.signal(signal.SIGKILL)

    def discard_process(self) -> None:
        if self.process is not None:
            self.process.process.join(5)
            self.process.close()
            self.process = None
