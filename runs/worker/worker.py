"""The worker: claims runs, supervises their steps in child processes, keeps its leases.

One thread, one event loop: it waits on the children's pipes and exit sentinels, the
LISTEN connection and a signal wake-up pipe, with a timeout set by the next timer (lease
renewal, recovery sweep, schedules, poll, step deadlines). Being single-threaded is what
makes forking children safe, and it means every database write happens in one place.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import replace
from multiprocessing.connection import wait
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.db.models import F, Min
from django.db.models.functions import Now

from orbit.core.conf import orbit_settings
from runs import leases
from runs.child import crash_report, timeout_report
from runs.claiming import claim_runs
from runs.execution import AttemptReport, Next, begin, hand_back, record_many, settle_lost
from runs.models import AttemptOutcome, Run, WorkerState
from runs.models import Worker as WorkerRow
from runs.notify import Listener, is_postgres
from runs.recovery import db_now, next_lease_expiry_in, recover_interrupted
from runs.worker.slots import Slot

logger = logging.getLogger(__name__)

DB_ERRORS = (OperationalError, InterfaceError)
BURST_HORIZON_SECONDS = 60.0


class Worker:
    """`Worker(concurrency=4).run()` until SIGTERM/SIGINT (graceful), or a second one (now)."""

    def __init__(
        self,
        *,
        concurrency: int = 1,
        queues: Sequence[str] = ("default",),
        grace: float = 30.0,
        burst: bool = False,
        max_runs: int | None = None,
        max_runs_per_child: int = 1000,
        lease_seconds: float | None = None,
        poll_interval: float | None = None,
        listen: bool = True,
        schedules: bool = True,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.queues = list(queues)
        self.grace = grace
        self.burst = burst
        self.max_runs = max_runs
        self.max_runs_per_child = max_runs_per_child
        self.lease_seconds = lease_seconds or orbit_settings.lease_seconds
        self.poll_interval = poll_interval or orbit_settings.poll_interval
        self.listen = listen
        self.schedules = schedules
        self.slots = [Slot(index=i) for i in range(concurrency)]
        self.row: WorkerRow | None = None
        self.runs_done = 0
        self.stopping = False
        self.stop_deadline = 0.0
        self.hard_stop = False
        self._signals_seen = 0
        self._signal_pipe: tuple[int, int] | None = None
        self._listener: Listener | None = None
        self._listener_retry_at = 0.0
        self._wake = True
        self._wake_at: float | None = None
        self._next_poll = 0.0
        self._next_heartbeat = 0.0
        self._next_sweep = 0.0
        self._next_schedule = 0.0
        self._counts = {"succeeded": 0, "failed": 0}
        self._db_failures = 0

    # ------------------------------------------------------------------ control

    def install_signal_handlers(self) -> None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        self._signal_pipe = (read_fd, write_fd)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signals_seen += 1

    def shutdown(self, *, now: bool = False) -> None:
        """Stop claiming; let running steps finish within the grace period (or stop now)."""
        if not self.stopping:
            self.stopping = True
            self.stop_deadline = time.monotonic() + self.grace
            logger.info(
                "Worker stopping: %d step(s) running, %.0f s grace",
                sum(s.busy for s in self.slots),
                self.grace,
                extra={"event": "worker_stopping"},
            )
            self._next_heartbeat = 0.0  # tell the database now
        if now:
            self.hard_stop = True

    # ------------------------------------------------------------------ main loop

    def run(self) -> int:
        self._register()
        # A small random delay so workers started together do not poll in step.
        self._next_poll = time.monotonic() + random.uniform(0, min(self.poll_interval, 0.1))
        try:
            while True:
                self._handle_signals()
                if self.hard_stop:
                    self._stop_now()
                    break
                try:
                    if self._pass():
                        break
                    self._db_failures = 0
                except DB_ERRORS as exc:
                    self._database_trouble(exc)
        finally:
            self._cleanup()
        return 0

    def _pass(self) -> bool:
        """One turn of the loop; True when the worker should exit."""
        now = time.monotonic()
        self._commit_reports()
        for slot in self.slots:
            if slot.busy and slot.task is None:
                self._begin(slot)
        if now >= self._next_heartbeat:
            self._heartbeat()
        if now >= self._next_sweep:
            self._sweep()
        if self.schedules and not self.stopping and now >= self._next_schedule:
            self._fire_schedules()
        self._ensure_listener()
        free = [s for s in self.slots if not s.busy]
        claimed = 0
        if free and not self.stopping and (self._wake or now >= self._next_poll or self._due(now)):
            claimed = self._claim(free)
        busy = any(s.busy for s in self.slots)
        if self.stopping and not busy:
            return True
        if self.burst and not busy and not claimed and not self.stopping and self._burst_done():
            logger.info(
                "Nothing left to run; burst worker exits", extra={"event": "worker_burst_done"}
            )
            return True
        if self.stopping and time.monotonic() >= self.stop_deadline:
            for slot in self.slots:
                if slot.busy and slot.task is not None and slot.report is None:
                    slot.stop_child("shutdown")
        if not busy and not claimed:
            connection.close_if_unusable_or_obsolete()
        self._wait()
        self._enforce_deadlines()
        return False

    def _due(self, now: float) -> bool:
        if self._wake_at is not None and now >= self._wake_at:
            self._wake_at = None
            return True
        return False

    # ------------------------------------------------------------------ claiming and steps

    def _claim(self, free: list[Slot]) -> int:
        claims = claim_runs(
            worker_id=self.row_id,
            limit=len(free),
            queues=self.queues,
            lease_seconds=self.lease_seconds,
        )
        listening = self._listener is not None and self._listener.connected
        # With LISTEN, polling is only a safety net; without it, it is how work is found.
        self._next_poll = time.monotonic() + (
            self.poll_interval * 10 if listening else self.poll_interval
        )
        # A full batch means more may be waiting: claim again on the next turn.
        self._wake = len(claims) == len(free)
        for slot, claim in zip(free, claims, strict=False):
            logger.info(
                "Claimed run %s of %s (attempt %s)",
                claim.run_id,
                claim.pipeline,
                claim.attempt,
                extra={
                    "event": "run_claimed",
                    "run_id": str(claim.run_id),
                    "attempt": claim.attempt,
                },
            )
            slot.claim = claim
            slot.task = None
            self._begin(slot)
        return len(claims)

    def _begin(self, slot: Slot) -> None:
        assert slot.claim is not None
        decision = begin(slot.claim, lease_seconds=self.lease_seconds)
        if decision.next is Next.STEP and decision.task is not None:
            slot.start(slot.claim, decision.task, max_tasks_per_child=self.max_runs_per_child)
        else:
            self._run_done(slot, decision.next)

    def _commit_reports(self) -> None:
        """Record what the slots' attempts reported, together (each report stays on its
        slot until it is written, so a database outage delays the write, never loses it)."""
        batch: list[Slot] = []
        for slot in self.slots:
            if not slot.busy or slot.task is None or slot.report is None:
                continue
            claim, task, report = slot.claim, slot.task, slot.report
            assert claim is not None
            if slot.stopping_for == "lost":
                settle_lost(claim, task, report)
                self._run_done(slot, Next.LOST)
            elif slot.stopping_for == "shutdown" and report.outcome != AttemptOutcome.SUCCEEDED:
                hand_back(claim, task, report)
                self._run_done(slot, Next.RETRY)
            else:
                batch.append(slot)
        if not batch:
            return
        decisions = record_many(
            [(s.claim, s.task, s.report) for s in batch],  # type: ignore[misc]
            lease_seconds=self.lease_seconds,
            continue_run=not self.stopping,
        )
        for slot, decision in zip(batch, decisions, strict=True):
            if decision.next is Next.STEP and decision.task is not None:
                assert slot.claim is not None
                slot.start(slot.claim, decision.task, max_tasks_per_child=self.max_runs_per_child)
            else:
                self._run_done(slot, decision.next)

    def _run_done(self, slot: Slot, outcome: Next) -> None:
        if outcome is Next.SUCCEEDED:
            self._counts["succeeded"] += 1
        elif outcome is Next.FAILED:
            self._counts["failed"] += 1
        slot.free()
        self.runs_done += 1
        self._wake = True
        if self.max_runs is not None and self.runs_done >= self.max_runs and not self.stopping:
            logger.info(
                "Processed %d runs (--max-runs); stopping",
                self.runs_done,
                extra={"event": "worker_max_runs"},
            )
            self.shutdown()

    # ------------------------------------------------------------------ waiting

    def _wait(self) -> None:
        now = time.monotonic()
        timers = [self._next_heartbeat, self._next_sweep]
        if self.schedules and not self.stopping:
            timers.append(self._next_schedule)
        if any(not s.busy for s in self.slots) and not self.stopping:
            timers.append(self._next_poll)
            if self._wake:
                timers.append(now)
            if self._wake_at is not None:
                timers.append(self._wake_at)
        for slot in self.slots:
            if slot.busy and slot.task is not None:
                timers.append(
                    slot.deadline if slot.term_sent_at is None else slot.term_sent_at + 1.0
                )
            if slot.busy and (slot.task is None or slot.report is not None):
                timers.append(now)  # work to finish on the next turn
        if self.stopping:
            timers.append(self.stop_deadline)
        if self._listener is None and is_postgres() and self.listen:
            timers.append(self._listener_retry_at)
        timeout = max(0.0, min(timers) - now)
        waitables: list[Any] = []
        by_handle: dict[Any, Slot] = {}
        for slot in self.slots:
            if slot.process is not None:
                by_handle[slot.process.conn] = slot
                by_handle[slot.process.sentinel] = slot
                waitables += [slot.process.conn, slot.process.sentinel]
        if self._listener is not None and self._listener.connected:
            waitables.append(self._listener.fileno())
        if self._signal_pipe is not None:
            waitables.append(self._signal_pipe[0])
        ready = wait(waitables, timeout) if timeout > 0 else wait(waitables, 0)
        # Pipes before sentinels: a child that reported and then exited did finish.
        for handle in ready:
            reader = by_handle.get(handle)
            if reader is not None and reader.process is not None and handle is reader.process.conn:
                self._read_child(reader)
        for handle in ready:
            exited = by_handle.get(handle)
            if (
                exited is not None
                and exited.process is not None
                and handle == exited.process.sentinel
            ):
                self._child_exited(exited)
        if self._listener is not None and self._listener.connected and self._listener_fd_in(ready):
            self._read_notifications()
        if self._signal_pipe is not None and self._signal_pipe[0] in ready:
            try:
                os.read(self._signal_pipe[0], 512)
            except BlockingIOError:
                pass

    def _listener_fd_in(self, ready: list[Any]) -> bool:
        try:
            return self._listener is not None and self._listener.fileno() in ready
        except Exception:
            return True  # a broken connection: let _read_notifications notice

    def _read_child(self, slot: Slot) -> None:
        assert slot.process is not None
        while slot.process is not None and slot.process.conn.poll():
            try:
                kind, payload = slot.process.conn.recv()
            except (EOFError, OSError):
                return
            if kind == "log":
                slot.logs.append(payload)
            elif kind == "done" and slot.busy and slot.task is not None:
                report: AttemptReport = payload
                slot.report = replace(report, logs=slot.logs)  # committed on the next turn

    def _child_exited(self, slot: Slot) -> None:
        process = slot.process
        assert process is not None
        if process.conn.poll():
            self._read_child(slot)
        if slot.process is not process or process.is_alive():
            return
        if slot.busy and slot.task is not None and slot.report is None:
            task, duration, logs = slot.task, slot.elapsed(), slot.logs
            if slot.stopping_for == "timeout":
                report = timeout_report(task, duration, logs)
            elif slot.stopping_for in ("shutdown", "lost"):
                outcome = (
                    AttemptOutcome.INTERRUPTED
                    if slot.stopping_for == "shutdown"
                    else AttemptOutcome.CANCELLED
                )
                report = AttemptReport(
                    outcome=outcome,
                    duration=duration,
                    error="Stopped: the worker shut down before the step finished"
                    if slot.stopping_for == "shutdown"
                    else "Stopped: the run was cancelled or taken over",
                    logs=logs,
                )
            else:
                report = crash_report(process, task, duration, logs)
                logger.error(
                    "Step %s of run %s: its process %s",
                    task.step,
                    task.run_id,
                    process.exit_description(),
                    extra={"event": "step_crashed", "run_id": task.run_id, "step": task.step},
                )
            slot.discard_process()
            slot.report = report  # committed on the next turn
        else:
            slot.discard_process()

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if not slot.busy or slot.task is None or slot.process is None or slot.report:
                continue  # idle, or finished and waiting to be committed
            if slot.term_sent_at is None and now >= slot.deadline:
                logger.warning(
                    "Step %s of run %s passed its %.0f s timeout; stopping it",
                    slot.task.step,
                    slot.task.run_id,
                    slot.task.timeout,
                    extra={
                        "event": "step_timeout",
                        "run_id": slot.task.run_id,
                        "step": slot.task.step,
                    },
                )
                slot.stop_child("timeout")
            elif slot.overdue():
                slot.kill_child()

    # ------------------------------------------------------------------ timers

    def _heartbeat(self) -> None:
        held_claims = [s.claim for s in self.slots if s.claim is not None]
        state = WorkerState.STOPPING if self.stopping else WorkerState.RUNNING
        held = leases.heartbeat(
            self.row_id,
            state=state,
            claims=held_claims,
            lease_seconds=self.lease_seconds,
            succeeded=self._counts["succeeded"],
            failed=self._counts["failed"],
        )
        self._counts = {"succeeded": 0, "failed": 0}
        self._next_heartbeat = time.monotonic() + self.lease_seconds / 3
        for slot in self.slots:
            if slot.claim is not None and slot.claim.run_id not in held:
                logger.warning(
                    "Run %s is no longer ours (cancelled or taken over); stopping its step",
                    slot.claim.run_id,
                    extra={"event": "lease_lost", "run_id": str(slot.claim.run_id)},
                )
                if slot.task is None:
                    slot.free()
                elif slot.report is None:
                    slot.stop_child("lost")
                else:
                    slot.stopping_for = "lost"

    def _sweep(self) -> None:
        report = recover_interrupted(auto_resume=True)
        if report.recovered:
            self._wake = True
        expiry = next_lease_expiry_in()
        interval = orbit_settings.sweep_interval
        soon = interval if expiry is None else min(interval, max(expiry, 0.0) + 0.05)
        self._next_sweep = time.monotonic() + soon

    def _fire_schedules(self) -> None:
        self._next_schedule = time.monotonic() + orbit_settings.schedule_interval
        try:
            from runs.scheduler import fire_due_schedules
        except ImportError:
            self.schedules = False
            return
        try:
            if fire_due_schedules():
                self._wake = True
        except DB_ERRORS:
            raise
        except Exception:
            logger.exception(
                "Firing schedules failed; will try again", extra={"event": "schedule_error"}
            )

    def _burst_done(self) -> bool:
        """Nothing claimable now, and nothing due soon (a retry waiting for its backoff)."""
        due = (
            Run.objects.pending()
            .filter(queue__in=self.queues, pipeline__enabled=True)
            .aggregate(at=Min("available_at"))["at"]
        )
        if due is None:
            return True
        wait_for = (due - db_now()).total_seconds()
        if wait_for > BURST_HORIZON_SECONDS:
            return True
        self._wake_at = time.monotonic() + max(wait_for, 0.0)
        return False

    # ------------------------------------------------------------------ LISTEN

    def _ensure_listener(self) -> None:
        if not self.listen or not is_postgres() or self._listener is not None:
            return
        if time.monotonic() < self._listener_retry_at:
            return
        listener = Listener()
        try:
            listener.connect()
        except Exception as exc:
            logger.warning(
                "LISTEN connection failed (%s); polling meanwhile",
                exc,
                extra={"event": "listen_failed"},
            )
            self._listener_retry_at = time.monotonic() + 5.0
            return
        self._listener = listener
        self._wake = True  # catch up with anything announced while we were not listening

    def _read_notifications(self) -> None:
        assert self._listener is not None
        try:
            delays = self._listener.drain()
        except Exception as exc:
            logger.warning(
                "LISTEN connection lost (%s); polling until it is back",
                exc,
                extra={"event": "listen_lost"},
            )
            self._listener.close()
            self._listener = None
            self._listener_retry_at = time.monotonic() + 1.0
            self._next_poll = time.monotonic()
            return
        now = time.monotonic()
        for delay in delays:
            if delay <= 0:
                self._wake = True
            else:
                at = now + delay
                self._wake_at = at if self._wake_at is None else min(self._wake_at, at)

    # ------------------------------------------------------------------ lifecycle

    @property
    def row_id(self) -> int:
        assert self.row is not None
        return self.row.id

    def _register(self) -> None:
        from pipelines.sync import sync_pipelines

        sync_pipelines()
        hostname = socket.gethostname()
        self.row = WorkerRow.objects.create(
            name=f"{hostname}:{os.getpid()}:{secrets.token_hex(2)}",
            hostname=hostname,
            pid=os.getpid(),
            concurrency=self.concurrency,
            queues=self.queues,
            state=WorkerState.RUNNING,
        )
        logger.info(
            "Worker %s started: concurrency %d, queues %s, %s",
            self.row.name,
            self.concurrency,
            ",".join(self.queues),
            "LISTEN/NOTIFY"
            if is_postgres() and self.listen
            else f"polling every {self.poll_interval:g} s",
            extra={"event": "worker_started", "worker": self.row.name},
        )

    def _handle_signals(self) -> None:
        if self._signals_seen >= 2:
            self.shutdown(now=True)
        elif self._signals_seen == 1 and not self.stopping:
            self.shutdown()

    def _stop_now(self) -> None:
        """Second signal: stop the steps, hand their runs back, exit."""
        for slot in self.slots:
            if slot.process is not None:
                slot.kill_child()
        for slot in self.slots:
            if slot.claim is not None:
                try:
                    hand_back(slot.claim, slot.task, None)
                except DatabaseError:
                    logger.warning("Could not hand back run %s; recovery will", slot.claim.run_id)
                slot.free()

    def _cleanup(self) -> None:
        for slot in self.slots:
            if slot.process is not None:
                if slot.busy:
                    slot.kill_child()
                    slot.discard_process()
                else:
                    slot.process.stop()
                    slot.process = None
        if self._listener is not None:
            self._listener.close()
        if self.row is not None:
            try:
                self._final_heartbeat()
            except DatabaseError:
                logger.warning("Could not mark the worker stopped", exc_info=True)
        logger.info(
            "Worker stopped after %d run(s)", self.runs_done, extra={"event": "worker_stopped"}
        )
        if self._signal_pipe is not None:
            signal.set_wakeup_fd(-1)
            for fd in self._signal_pipe:
                os.close(fd)
            self._signal_pipe = None

    def _final_heartbeat(self) -> None:
        WorkerRow.objects.filter(id=self.row_id).update(
            state=WorkerState.STOPPED,
            stopped_at=Now(),
            last_heartbeat=Now(),
            succeeded_count=F("succeeded_count") + self._counts["succeeded"],
            failed_count=F("failed_count") + self._counts["failed"],
        )

    def _database_trouble(self, exc: Exception) -> None:
        """Log, drop the broken connection, back off, and carry on: nothing held is lost
        (reports wait on their slots), and leases that ran out meanwhile are fenced."""
        self._db_failures += 1
        delay = min(5.0, 0.25 * 2 ** min(self._db_failures - 1, 5))
        logger.error(
            "Database unavailable (%s: %s); retrying in %.2f s",
            type(exc).__name__,
            str(exc).strip().splitlines()[0] if str(exc).strip() else "",
            delay,
            extra={"event": "database_error"},
        )
        try:
            connection.close()
        except DatabaseError:
            pass
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._signal_pipe is not None:
            wait([self._signal_pipe[0]], delay)
        else:
            time.sleep(delay)
        self._wake = True
