"""The worker loop: claims runs, supervises their steps in child processes, keeps its leases.

One thread, one loop: it waits on the children's pipes and exit sentinels, the wake-up
channel (LISTEN) and a signal wake-up pipe, for no longer than the next duty in its timer
table (runs/worker/timers.py) or the next step deadline. Being single-threaded is what
makes forking children safe, and it means every database write happens in one place.
"""

from __future__ import annotations

import enum
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

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, reset_queries
from django.db.models import F
from django.db.models.functions import Now

from orbit.core import tracing
from orbit.core.conf import orbit_settings
from pipelines.definition import registry
from pipelines.tasks import discover
from runs.attempts import StopReason
from runs.execution import Decision, HeldRun, Next, begin, hand_back, record_many, settle_lost
from runs.models import Worker, WorkerState
from runs.recovery import recover_interrupted
from runs.retention import Policy, prune_turn
from runs.store import Wakeups, store
from runs.store.records import Claim, ClaimRequest
from runs.supervision import LOG_WRITE_SECONDS
from runs.tracing import run_span
from runs.webhooks import endpoints as webhook_endpoints
from runs.webhooks.sending import send_due as send_webhooks
from runs.worker.aging import probe_due
from runs.worker.pacing import LimitedPacing
from runs.worker.slots import Slot
from runs.worker.timers import Duty, Timers

logger = logging.getLogger(__name__)

DB_ERRORS = (OperationalError, InterfaceError)
#: A burst worker waits for runs due within this long, and exits if none are.
BURST_HORIZON_SECONDS = 60.0
#: How soon to claim again when runs were due yet the claim found none: once, since a
#: delayed run may have come due between the claim and the question (docs/FLOW-CONTROL.md).
DUE_RECHECK_SECONDS = 0.005
#: The least time between checks of an idle worker's database connection.
CONNECTION_CHECK_SECONDS = 1.0
#: Between attempts to open the wake-up channel after it failed.
LISTEN_RETRY_SECONDS = 5.0
#: Between looks for task pipelines this worker has not loaded yet (a claim that comes
#: back empty while runs are due looks at once).
DISCOVER_INTERVAL_SECONDS = 30.0


class Stop(enum.Enum):
    """Why the loop ends."""

    SIGNALLED = "signalled"  # SIGTERM/SIGINT: finish running steps within the grace period
    MAX_RUNS = "max_runs"  # --max-runs reached: the same, gracefully
    DRAINED = "drained"  # --burst and nothing left to run
    NOW = "now"  # a second signal: stop the steps, hand their runs back, exit


class WorkerLoop:
    """`WorkerLoop(concurrency=4).run()` until SIGTERM/SIGINT (graceful), or a second one (now)."""

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
        prune: bool = True,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.queues = tuple(queues)
        self.grace = grace
        self.burst = burst
        self.max_runs = max_runs
        self.max_runs_per_child = max_runs_per_child
        self.lease_seconds = lease_seconds or orbit_settings.lease_seconds
        self.poll_interval = poll_interval or orbit_settings.poll_interval
        #: Whether the last claim came back empty while runs were due (see `_claim`).
        self._due_unclaimed = False
        # The first aging probe comes one probe interval after start, not at once.
        self._last_aging_probe = time.monotonic()
        #: When the claim also takes runs under flow limits (runs/worker/pacing.py).
        self.pacing = LimitedPacing(
            poll_interval=self.poll_interval,
            queue_limited=bool(set(self.queues) & set(orbit_settings.queue_limits)),
            has_limits=lambda: store().has_limits(),
        )
        self.listen = listen
        self.schedules = schedules
        # A retention setting Orbit cannot read stops the worker here, not later.
        self.prune = (
            prune and Policy.from_settings().prunes_anything and orbit_settings.retention_share > 0
        )
        self.slots = [Slot(index=i) for i in range(concurrency)]
        self.row: Worker | None = None
        self.runs_done = 0
        self.stop: Stop | None = None
        self.stop_deadline = 0.0
        self._signals_seen = 0
        self._signal_pipe: tuple[int, int] | None = None
        self._wakeups: Wakeups | None = None
        self._counts = {"succeeded": 0, "failed": 0}
        self._db_failures = 0
        self._forget_queries = False
        self._webhooks_wanted = False
        self.timers = Timers()
        for duty in self._duties():
            self.timers.add(duty)

    def _duties(self) -> list[Duty]:
        """The worker's periodic duties, in the order they run when due together."""
        return [
            Duty("heartbeat", lambda: self.lease_seconds / 3, self._heartbeat),
            # Running steps' new log records, every slot's in one statement; only while
            # some are waiting, so a run that logs nothing costs nothing here.
            Duty("logs", lambda: LOG_WRITE_SECONDS, self._write_logs, active=self._logs_waiting),
            Duty("sweep", lambda: orbit_settings.sweep_interval, self._sweep),
            Duty(
                "schedules",
                lambda: orbit_settings.schedule_interval,
                self._fire_schedules,
                active=lambda: self.schedules and self.stop is None,
            ),
            # Retention: one batch at a time, one worker at a time, paced (runs/retention.py).
            Duty(
                "prune",
                lambda: orbit_settings.retention_interval,
                self._prune,
                active=lambda: self.prune and self.stop is None,
            ),
            Duty(
                "listen",
                lambda: LISTEN_RETRY_SECONDS,
                self._connect_wakeups,
                active=lambda: self.listen and self._wakeups is None,
            ),
            Duty(
                "discover",
                lambda: DISCOVER_INTERVAL_SECONDS,
                self._discover,
                active=lambda: self.stop is None,
            ),
            # Webhook deliveries (runs/webhooks/sending.py): the list of enabled endpoints
            # is loaded at start and kept fresh here, so commits never ask for it; due
            # deliveries are sent only while some endpoint is enabled.
            Duty(
                "webhook_endpoints",
                lambda: orbit_settings.webhook_refresh / 2,
                self._refresh_webhooks,
            ),
            Duty(
                "webhooks",
                lambda: orbit_settings.webhook_poll_interval,
                self._send_webhooks,
                active=lambda: self._webhooks_wanted and self.stop is None,
            ),
            # Django's own check of an idle worker's connection (CONN_MAX_AGE, and the
            # health check before the next query): at most once a second, not on every
            # idle turn, or each announced run would pay a round trip before its claim.
            Duty(
                "connection",
                lambda: CONNECTION_CHECK_SECONDS,
                lambda: connection.close_if_unusable_or_obsolete(),
                active=lambda: not any(s.busy for s in self.slots),
                wakes=False,
            ),
            # With a wake-up channel, polling is only a safety net; without, it is how
            # work is found. Freed slots and announcements bring it forward.
            Duty(
                "claim",
                lambda: self.poll_interval * (10 if self._wakeups is not None else 1),
                self._claim,
                active=lambda: self.stop is None and any(not s.busy for s in self.slots),
            ),
        ]

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

    def shutdown(self, reason: Stop = Stop.SIGNALLED) -> None:
        """Stop claiming; let running steps finish within the grace period (or stop now)."""
        if reason is Stop.NOW:
            self.stop = Stop.NOW
            return
        if self.stop is not None:
            return
        self.stop = reason
        self.stop_deadline = time.monotonic() + self.grace
        logger.info(
            "Worker stopping: %d step(s) running, %.0f s grace",
            sum(s.busy for s in self.slots),
            self.grace,
            extra={"event": "worker_stopping", "reason": reason.value},
        )
        self.timers.bring_forward("heartbeat")  # tell the database now

    # ------------------------------------------------------------------ main loop

    def run(self) -> int:
        self._register()
        self._forget_queries = self._warn_if_debug()
        # A small random delay so workers started together do not poll in step.
        self.timers.postpone("claim", random.uniform(0, min(self.poll_interval, 0.1)))
        # Not at start, and not in step with the other workers.
        self.timers.postpone("prune", random.uniform(0.5, 1.0) * orbit_settings.retention_interval)
        try:
            self._start_children()  # inside: a fork that fails still stops the worker cleanly
            while True:
                self._handle_signals()
                if self.stop is Stop.NOW:
                    self._stop_now()
                    break
                try:
                    if self._turn():
                        break
                    self._db_failures = 0
                except DB_ERRORS as exc:
                    self._database_trouble(exc)
        finally:
            self._cleanup()
        return 0

    def _start_children(self) -> None:
        """Fork every slot's child before the first claim, as a prefork pool does. Forked
        on demand, a batch's children came one at a time in the loop after the claim
        (each fork copies the worker's page tables: 1 to 5 ms for a worker of some 90 MB),
        so the last run of a worker's first batch of 32 started up to 32 forks after its
        claim, with its lease running. A worker idle at start holds its children from
        the start instead of from its first busy moment; they share the worker's memory
        until they write to it."""
        for slot in self.slots:
            slot.ready()

    def _turn(self) -> bool:
        """One turn of the loop; True when the worker should exit."""
        if self._forget_queries:
            reset_queries()  # as Django does at each request: a loop is not one request
        self._commit_reports()
        for slot in self.slots:
            if slot.busy and slot.attempt is None:
                self._begin(slot)
        self.timers.run_due()
        busy = any(s.busy for s in self.slots)
        if self.stop is not None and not busy:
            return True
        if self.stop is not None and time.monotonic() >= self.stop_deadline:
            for slot in self.slots:
                if slot.attempt is not None:
                    slot.attempt.stop(StopReason.SHUTDOWN)
        self._wait()
        for slot in self.slots:
            if slot.attempt is not None:
                slot.attempt.enforce()
        return False

    # ------------------------------------------------------------------ claiming and steps

    def _claim(self) -> float | None:
        wait = self._claim_free()
        # Claim again when a full rate window admits, and when an announcement asked for
        # a claim under limits this one could not make yet.
        sooner = self.pacing.claim_in(time.monotonic())
        if sooner is not None:
            wait = sooner if wait is None else min(wait, sooner)
        return wait

    def _claim_free(self) -> float | None:
        free = [s for s in self.slots if not s.busy]
        request = ClaimRequest(
            worker_id=self.row_id,
            limit=len(free),
            queues=self.queues,
            lease_seconds=self.lease_seconds,
            definitions=registry.step_names(),
            wait_for_limits=False,
        )
        now = time.monotonic()
        aging = orbit_settings.priority_aging_seconds
        if probe_due(self._last_aging_probe, now, aging):
            # Runs that waited past the aging threshold first, whatever their priority
            # (runs/worker/aging.py); the usual claim fills the slots left. Runs under a
            # flow limit are not aged: they are offered free slots first already.
            self._last_aging_probe = now
            aged = store().claim(replace(request, older_than=aging, limited=False))
            self._take(free, aged)
            free = free[len(aged) :]
            if not free:
                return 0.0
            request = replace(request, limit=len(free))
        limited = self.pacing.wanted(now)
        claims = store().claim(replace(request, limited=limited))
        self.pacing.claimed(
            now,
            limited=limited,
            filled=len(claims) == len(free) and any(c.limited for c in claims),
            retry_after=claims.retry_after,
            busy=claims.limits_busy,
        )
        self._take(free, claims)
        if len(claims) == len(free):
            self._due_unclaimed = False
            return 0.0  # a full batch: more may be waiting, claim again on the next turn
        if claims:
            self._due_unclaimed = False
            return None
        return self._idle_wait()

    def _take(self, free: list[Slot], claims: Sequence[Claim]) -> None:
        """Start each claimed run in a free slot."""
        for slot, claim in zip(free, claims, strict=False):
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "Claimed run %s of %s (fence %s)",
                    claim.run_id,
                    claim.pipeline,
                    claim.fence,
                    extra={
                        "event": "run_claimed",
                        "run_id": str(claim.run_id),
                        "fence": claim.fence,
                    },
                )
            slot.take(HeldRun(claim, span=run_span(claim)))
            self._begin(slot)

    def _idle_wait(self) -> float | None:
        """After a claim that found nothing: how long until the next one."""
        # Nothing claimable now: sleep until the earliest run is due (woken earlier by an
        # announcement), or until the poll that is the safety net.
        due = store().seconds_until_due(self.queues)
        idle = not any(s.busy for s in self.slots) and self.stop is None
        # Runs held by a rate limit are not "due" (their claim comes when the window
        # admits, `pacing.rate_wait`), yet a burst worker must wait for them as for a
        # delayed run.
        rate_wait = self.pacing.rate_wait
        if rate_wait is not None and (due is None or rate_wait < due):
            due = rate_wait
        if self.burst and idle and (due is None or due > BURST_HORIZON_SECONDS):
            logger.info(
                "Nothing left to run; burst worker exits", extra={"event": "worker_burst_done"}
            )
            self.shutdown(Stop.DRAINED)
            return None
        if due == 0:
            # Due now, yet not claimed. Most often a delayed run came due between the
            # claim and this question: claim again almost at once, one time. Otherwise: a
            # task this worker has not loaded yet (look now), a pipeline or step it does
            # not define (left for a worker that does), or runs another worker is claiming
            # this instant. Look again after a poll interval, not at once: claiming again
            # at once would spin for as long as they wait.
            if not self._due_unclaimed:
                self._due_unclaimed = True
                return DUE_RECHECK_SECONDS
            self.timers.bring_forward("discover")
            return self.poll_interval
        self._due_unclaimed = False
        poll = self.timers.duties["claim"].interval()
        return poll if due is None else min(poll, due)

    def _begin(self, slot: Slot) -> None:
        assert slot.held is not None
        self._carry_out(slot, begin(slot.held, lease_seconds=self.lease_seconds))

    def _carry_out(self, slot: Slot, decision: Decision) -> None:
        slot.ended()
        if decision.next is Next.STEP and decision.task is not None:
            slot.start(decision.task, max_tasks_per_child=self.max_runs_per_child)
        else:
            self._run_done(slot, decision.next)

    def _commit_reports(self) -> None:
        """Record what the slots' attempts reported, together (each report stays on its
        slot until it is written, so a database outage delays the write, never loses it).
        Their last log records are written first, so they are in before the outcome."""
        if any(s.report is not None and s.attempt.logs.pending for s in self.slots if s.attempt):
            self._write_logs()
        batch: list[Slot] = []
        for slot in self.slots:
            report, held, attempt = slot.report, slot.held, slot.attempt
            if report is None or held is None or attempt is None:
                continue
            if slot.stop_reason is StopReason.LOST:
                self._run_done(slot, settle_lost(held, attempt.task, report).next)
            elif slot.stop_reason is StopReason.SHUTDOWN and not report.succeeded:
                self._run_done(slot, hand_back(held, attempt.task, report).next)
            else:
                batch.append(slot)
        if not batch:
            return
        decisions = record_many(
            [(s.held, s.attempt.task, s.report) for s in batch],  # type: ignore[misc,union-attr]
            lease_seconds=self.lease_seconds,
            continue_run=self.stop is None,
        )
        for slot, decision in zip(batch, decisions, strict=True):
            self._carry_out(slot, decision)

    def _run_done(self, slot: Slot, outcome: Next) -> None:
        if slot.held is not None and slot.held.claim.limited:
            self.pacing.freed()  # a slot of its limit is free: claim it at once
            if self.stop is not None:
                store().announce()  # not this worker, which is stopping: another one
        if outcome is Next.SUCCEEDED:
            self._counts["succeeded"] += 1
        elif outcome is Next.FAILED:
            self._counts["failed"] += 1
        slot.free(outcome.value)
        self.runs_done += 1
        self.timers.bring_forward("claim")
        if self.max_runs is not None and self.runs_done >= self.max_runs and self.stop is None:
            logger.info(
                "Processed %d runs (--max-runs); stopping",
                self.runs_done,
                extra={"event": "worker_max_runs"},
            )
            self.shutdown(Stop.MAX_RUNS)

    # ------------------------------------------------------------------ waiting

    def _wait(self) -> None:
        now = time.monotonic()
        wake = [self.timers.next_due() or now + self.poll_interval]
        for slot in self.slots:
            if slot.attempt is not None and not slot.attempt.done:
                wake.append(slot.attempt.wake_at())
            elif slot.busy:
                wake.append(now)  # a report to commit, or a step to begin: next turn
        if self.stop is not None:
            wake.append(self.stop_deadline)
        timeout = max(0.0, min(wake) - now)
        owners: dict[Any, Slot] = {}
        for slot in self.slots:
            if slot.attempt is not None:
                for handle in slot.attempt.handles():
                    owners[handle] = slot
        waitables: list[Any] = list(owners)
        if self._wakeups is not None:
            waitables.append(self._wakeups.fileno())
        if self._signal_pipe is not None:
            waitables.append(self._signal_pipe[0])
        ready = wait(waitables, timeout)
        # Pipes before sentinels: a child that reported and then exited did finish.
        ordered = sorted(ready, key=lambda h: 0 if not isinstance(h, int) else 1)
        for handle in ordered:
            owner = owners.get(handle)
            if owner is not None and owner.attempt is not None:
                owner.attempt.on_ready(handle)
        if self._wakeups is not None and self._wakeups.fileno() in ready:
            self._read_wakeups()
        if self._signal_pipe is not None and self._signal_pipe[0] in ready:
            try:
                os.read(self._signal_pipe[0], 512)
            except BlockingIOError:
                pass

    # ------------------------------------------------------------------ duties

    def _logs_waiting(self) -> bool:
        return any(s.attempt is not None and s.attempt.logs.pending for s in self.slots)

    def _write_logs(self) -> None:
        """Write the slots' new log records in one statement (fenced: a run this worker
        lost takes none); on a database error they stay, to be written on the next try."""
        written = [
            (slot.attempt, batch)
            for slot in self.slots
            if slot.attempt is not None
            and slot.held is not None
            and (batch := slot.attempt.log_batch(slot.held.claim.held)) is not None
        ]
        if not written:
            return
        store().append_logs([batch for _, batch in written])
        for attempt, batch in written:
            attempt.logs.written(len(batch.lines))

    def _heartbeat(self) -> None:
        held_runs = [s.held for s in self.slots if s.held is not None]
        state = WorkerState.STOPPING if self.stop is not None else WorkerState.RUNNING
        still = store().heartbeat(
            self.row_id,
            state=state,
            held=[h.claim.held for h in held_runs],
            lease_seconds=self.lease_seconds,
            succeeded=self._counts["succeeded"],
            failed=self._counts["failed"],
        )
        self._counts = {"succeeded": 0, "failed": 0}
        for slot in self.slots:
            if slot.held is None or slot.held.claim.run_id in still:
                continue
            logger.warning(
                "Run %s is no longer ours (cancelled or taken over); stopping its step",
                slot.held.claim.run_id,
                extra={"event": "lease_lost", "run_id": str(slot.held.claim.run_id)},
            )
            if slot.attempt is None:
                slot.free(Next.LOST.value)
            elif not slot.attempt.done:
                slot.attempt.stop(StopReason.LOST)
            else:
                slot.lost = True

    def _sweep(self) -> float:
        report = recover_interrupted(auto_resume=True)
        if report.recovered:
            self.pacing.freed()  # the slots their runs held under limits are free
            self.timers.bring_forward("claim")
        expiry = store().seconds_until_lease_expiry()
        interval = orbit_settings.sweep_interval
        return interval if expiry is None else min(interval, max(expiry, 0.0) + 0.05)

    def _fire_schedules(self) -> None:
        from runs.scheduler import fire_due_schedules

        try:
            if fire_due_schedules():
                self.timers.bring_forward("claim")
        except DB_ERRORS:
            raise
        except Exception:
            logger.exception(
                "Firing schedules failed; will try again", extra={"event": "schedule_error"}
            )

    def _prune(self) -> float | None:
        try:
            return prune_turn(Policy.from_settings(), limit=orbit_settings.retention_batch)
        except DB_ERRORS:
            raise
        except Exception:
            logger.exception("Pruning failed; will try again", extra={"event": "prune_error"})
            return None

    def _refresh_webhooks(self) -> None:
        self._webhooks_wanted = bool(webhook_endpoints.refresh())

    def _send_webhooks(self) -> float | None:
        """Send one due delivery, if any.

        The POST happens in the loop, so one at a time: a receiver that hangs holds the
        loop for ORBIT_WEBHOOK_TIMEOUT at most before the next turn commits reports,
        renews leases and enforces deadlines; a batch could hold it for many timeouts,
        long enough for the worker's own leases to run out. With more due, the duty
        runs again on the next turn."""
        try:
            claimed = send_webhooks(worker=self.row.name if self.row else "worker", limit=1)
        except DB_ERRORS:
            raise
        except Exception:
            logger.exception(
                "Sending webhooks failed; will try again", extra={"event": "webhook_error"}
            )
            return None
        return 0.0 if claimed else None  # one sent: more may be due, next turn

    def _discover(self) -> None:
        """Load the tasks that pipeline rows name and this worker does not know yet, so
        its claims take their runs (pipelines/tasks.py: a task is imported by its path)."""
        loaded = discover(registry.step_names())
        if loaded:
            logger.info(
                "Tasks loaded: %s",
                ", ".join(loaded),
                extra={"event": "tasks_loaded", "pipelines": loaded},
            )
            self.timers.bring_forward("claim")

    def _connect_wakeups(self) -> None:
        try:
            self._wakeups = store().wakeups()
        except Exception as exc:
            logger.warning(
                "Wake-up channel failed (%s); polling meanwhile",
                exc,
                extra={"event": "listen_failed"},
            )
            return
        if self._wakeups is None:
            self.listen = False  # this database has none: poll
            return
        self.timers.bring_forward("claim")  # catch up with anything announced meanwhile

    def _read_wakeups(self) -> None:
        assert self._wakeups is not None
        try:
            announced = self._wakeups.drain()
        except Exception as exc:
            logger.warning(
                "Wake-up channel lost (%s); polling until it is back",
                exc,
                extra={"event": "listen_lost"},
            )
            self._close_wakeups()
            self.timers.postpone("listen", 1.0)
            self.timers.bring_forward("claim")
            return
        now = time.monotonic()
        for delay in announced.delays:
            self.timers.bring_forward("claim", now + max(delay, 0.0))
            self.pacing.heard(now, delay)
        for delay in announced.plain:  # the plain claim serves these: no claim under limits
            self.timers.bring_forward("claim", now + max(delay, 0.0))
            self.pacing.heard_plain(delay)
        held = {s.held.claim.run_id for s in self.slots if s.held is not None}
        if held & set(announced.cancelled):
            self.timers.bring_forward("heartbeat")  # it finds the run gone and stops its step

    def _close_wakeups(self) -> None:
        if self._wakeups is not None:
            self._wakeups.close()
            self._wakeups = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def row_id(self) -> int:
        assert self.row is not None
        return self.row.id

    def _register(self) -> None:
        from pipelines.sync import sync_pipelines

        sync_pipelines()
        hostname = socket.gethostname()
        self.row = Worker.objects.create(
            name=f"{hostname}:{os.getpid()}:{secrets.token_hex(2)}",
            hostname=hostname,
            pid=os.getpid(),
            concurrency=self.concurrency,
            queues=list(self.queues),
            state=WorkerState.RUNNING,
            # What it can claim, for "runs waiting for a worker that defines X" (runs/metrics.py).
            definitions={name: list(steps) for name, steps in registry.step_names().items()},
        )
        logger.info(
            "Worker %s started: concurrency %d, queues %s, %s",
            self.row.name,
            self.concurrency,
            ",".join(self.queues),
            "woken by announcements" if self.listen else f"polling every {self.poll_interval:g} s",
            extra={"event": "worker_started", "worker": self.row.name},
        )

    def _warn_if_debug(self) -> bool:
        """With DEBUG on, Django times every query and keeps it in `connection.queries`
        until the request ends; a worker's loop never ends, so it would keep them all
        (up to 9,000 per connection) for as long as it runs. Say so once, and forget the
        queries each turn. True when DEBUG is on."""
        if not settings.DEBUG:
            return False
        logger.warning(
            "DEBUG is on: every query is timed and formatted for Django's query log (the "
            "worker forgets them each turn); turn DEBUG off for production",
            extra={"event": "worker_debug"},
        )
        return True

    def _handle_signals(self) -> None:
        if self._signals_seen >= 2:
            self.shutdown(Stop.NOW)
        elif self._signals_seen == 1 and self.stop is None:
            self.shutdown(Stop.SIGNALLED)

    def _stop_now(self) -> None:
        """Second signal: stop the steps, hand their runs back, exit."""
        for slot in self.slots:
            if slot.attempt is not None and not slot.attempt.done:
                slot.attempt.kill()
        try:
            self._write_logs()
        except DatabaseError:
            logger.warning("Could not write the stopped steps' last log records")
        for slot in self.slots:
            if slot.held is not None:
                try:
                    hand_back(slot.held, slot.task, slot.report)
                except DatabaseError:
                    logger.warning(
                        "Could not hand back run %s; recovery will", slot.held.claim.run_id
                    )
                slot.free(Next.HANDED_BACK.value)

    def _cleanup(self) -> None:
        for slot in self.slots:
            if slot.process is not None:
                if slot.busy:
                    slot.kill()
                else:
                    slot.process.stop()
                    slot.process = None
        self._close_wakeups()
        if self.row is not None:
            try:
                self._final_heartbeat()
            except DatabaseError:
                logger.warning("Could not mark the worker stopped", exc_info=True)
        logger.info(
            "Worker stopped after %d run(s)", self.runs_done, extra={"event": "worker_stopped"}
        )
        tracing.flush()  # runworker leaves by os._exit: no atexit hook would export them
        if self._signal_pipe is not None:
            signal.set_wakeup_fd(-1)
            for fd in self._signal_pipe:
                os.close(fd)
            self._signal_pipe = None

    def _final_heartbeat(self) -> None:
        Worker.objects.filter(id=self.row_id).update(
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
        self._close_wakeups()
        if self._signal_pipe is not None:
            wait([self._signal_pipe[0]], delay)
        else:
            time.sleep(delay)
        self.timers.bring_forward("claim")
