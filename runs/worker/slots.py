"""A slot: one child process, reused from step to step, and the run it is working on."""

from __future__ import annotations

from dataclasses import dataclass

from runs import tracing
from runs.attempts import AttemptReport, StepTask, StopReason
from runs.child import StepProcess
from runs.execution import HeldRun
from runs.supervision import SupervisedAttempt


@dataclass
class Slot:
    index: int
    process: StepProcess | None = None
    held: HeldRun | None = None
    #: The attempt in progress (or ended and waiting to be committed).
    attempt: SupervisedAttempt | None = None
    #: Set when the run was found lost while its attempt was ending: settle it as lost.
    lost: bool = False

    @property
    def busy(self) -> bool:
        return self.held is not None

    @property
    def task(self) -> StepTask | None:
        return self.attempt.task if self.attempt is not None else None

    @property
    def report(self) -> AttemptReport | None:
        """How the attempt ended, until it is committed (kept through a database outage)."""
        return self.attempt.report if self.attempt is not None else None

    @property
    def stop_reason(self) -> StopReason | None:
        return (
            StopReason.LOST if self.lost else (self.attempt.stop_reason if self.attempt else None)
        )

    def take(self, held: HeldRun) -> None:
        self.held = held
        self.attempt = None
        self.lost = False

    def start(self, task: StepTask, *, max_tasks_per_child: int) -> None:
        if self.process is not None and (
            not self.process.is_alive() or self.process.tasks_run >= max_tasks_per_child
        ):
            self.process.stop()  # recycled: contains leaks in long-lived step code
            self.process = None
        self.ready()
        assert self.process is not None
        self.attempt = SupervisedAttempt(
            self.process, task, run_span=self.held.span if self.held else None
        )

    def ready(self) -> None:
        """Fork this slot's child now if it has none, so a step given to the slot starts
        at once instead of behind a fork."""
        if self.process is None:
            self.process = StepProcess()

    def ended(self) -> None:
        """The attempt is over: a process that died with it is not reused."""
        if self.attempt is not None and self.attempt.process_lost:
            self.discard_process()

    def free(self, outcome: str = "abandoned") -> None:
        """The run is let go, as `outcome` says (runs.execution.Next's values): its spans end."""
        self.ended()
        if self.attempt is not None:
            self.attempt.end_span(outcome="interrupted")
        if self.held is not None:
            tracing.end_run_span(self.held.span, outcome)
        self.held = None
        self.attempt = None
        self.lost = False

    def discard_process(self) -> None:
        if self.process is not None:
            self.process.process.join(5)
            self.process.close()
            self.process = None

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process = None
