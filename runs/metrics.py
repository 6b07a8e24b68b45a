"""Figures about runs, steps and workers, computed from the database.

Every worker on every host writes to the same tables, so these figures count all of
them. Each query is bounded: live figures read only pending and running rows (partial
indexes), and history is read through a time window on `finished_at` (run_finished_idx,
attempt_finished_idx), so the cost does not grow with the size of the history.
docs/METRICS.md defines each figure.

The API, the dashboard and the Prometheus collector all call these functions.

Pruned runs (runs/retention.py) leave their figures in hourly rollups (`RunRollup`): the
charts and the counters and histograms over a span (`runs_per_day`, `finished_counts`,
`attempt_counts`, the duration histograms) add the rollup hours of that span to the rows
still kept, so they read the same after pruning as before. A rollup hour counts whole: a
span starting inside a pruned hour gets that hour's figures to the hour.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import (
    Aggregate,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    FloatField,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
)
from django.db.models.functions import TruncDay, TruncMinute

from orbit.core.clock import db_now
from orbit.core.conf import orbit_settings
from pipelines.models import Pipeline
from runs.models import (
    ACTIVE_STATUSES,
    DURATION_BUCKETS,
    FAILED_OUTCOMES,
    AttemptOutcome,
    Run,
    RunRollup,
    RunStatus,
    Step,
    StepAttempt,
    StepStatus,
    Worker,
    WorkerState,
)
from runs.pausing import Held, held
from runs.store import store
from runs.store.portable import QUARANTINED

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
#: Finished runs whose duration counts: a cancelled run's duration says nothing about the work.
TIMED_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED)
#: Attempt outcomes the step itself decided; interrupted and cancelled ones are not its doing.
DECIDED_OUTCOMES = (AttemptOutcome.SUCCEEDED, *FAILED_OUTCOMES)

#: A run's duration in every figure: its running time, the sum of its attempts (not the
#: time from creation or first claim to the finish, which counts the waits before retries).
RUN_DURATION = ExpressionWrapper(F("running_time"), output_field=FloatField())
#: The finished runs whose duration is measured.
TIMED = Q(status__in=TIMED_STATUSES, started_at__isnull=False)


# --- Results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowStats:
    """Runs that finished within one window ending now."""

    window: str
    seconds: float
    succeeded: int
    failed: int
    cancelled: int
    success_rate: float | None  # succeeded / (succeeded + failed); None when neither
    throughput_per_minute: float  # finished runs per minute
    duration_p50: float | None  # running time in seconds, succeeded and failed runs
    duration_p95: float | None

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.cancelled


@dataclass(frozen=True)
class LiveFigures:
    pending: int  # all pending runs, due or waiting for a retry delay
    running: int
    interrupted: int  # running, lease expired: waiting for recovery
    queue_depth: int  # pending, due now, of an enabled pipeline: what workers would claim
    delayed: int  # pending but not due yet (retry backoff)
    oldest_pending_age: float | None  # seconds the longest-waiting due run has waited


@dataclass(frozen=True)
class Stats:
    """The overview: what is queued and running now, and how the last hour and day went."""

    at: datetime
    pending: int  # all pending runs, due or waiting for a retry delay
    running: int
    interrupted: int  # running, lease expired: waiting for recovery
    queue_depth: int  # pending, due now, of an enabled pipeline: what workers would claim
    delayed: int  # pending but not due yet (retry backoff)
    oldest_pending_age: float | None  # seconds the longest-waiting due run has waited
    last_hour: WindowStats
    last_day: WindowStats


@dataclass(frozen=True)
class MinuteBucket:
    minute: datetime
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0


@dataclass(frozen=True)
class DayBucket:
    day: datetime  # midnight UTC
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0


@dataclass(frozen=True)
class HistogramBucket:
    le: float  # upper bound in seconds; math.inf for the last bucket
    count: int  # cumulative: observations <= le


@dataclass(frozen=True)
class Histogram:
    buckets: list[HistogramBucket]
    count: int
    sum: float


@dataclass(frozen=True)
class StepFailureRate:
    pipeline: str
    step: str
    attempts: int  # attempts the step decided (succeeded, failed, timed out, crashed)
    failures: int  # failed, timed out or crashed
    retries: int  # attempts after the step's first
    failure_rate: float | None  # failures / attempts


@dataclass(frozen=True)
class PipelineFigures:
    pipeline: str
    pending: int
    running: int
    succeeded: int  # in the window
    failed: int
    cancelled: int
    success_rate: float | None
    duration_p50: float | None
    duration_p95: float | None


@dataclass(frozen=True)
class WorkerInfo:
    id: int
    name: str
    hostname: str
    pid: int
    state: str
    alive: bool  # not stopped and heard from within a lease
    dead: bool  # not stopped, yet silent for longer than a lease
    concurrency: int
    queues: list[str]
    started_at: datetime
    last_heartbeat: datetime
    heartbeat_age: float  # seconds since its last heartbeat
    current_runs: int
    succeeded_count: int
    failed_count: int
    #: When it died (its last heartbeat, for a dead worker no sweep has marked yet).
    died_at: datetime | None = None
    #: The runs it held when it was found dead: {"run_id", "pipeline", "step"}.
    held_at_death: list[dict[str, str]] = field(default_factory=list)
    definitions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WaitingRuns:
    """Due runs no live worker can claim: none defines their pipeline, serves their queue,
    or knows every step they still have to run (a newer deploy created them)."""

    definition: str
    queue: str
    runs: int
    #: Their unfinished steps no live worker defines; empty when the pipeline is the gap.
    steps: tuple[str, ...] = ()
    #: Whether some live worker defines the pipeline (in another queue, or without a step).
    defined: bool = False

    @property
    def reason(self) -> str:
        what = (
            f"{self.runs} run{_s(self.runs)} waiting for a worker that defines {self.definition!r}"
        )
        if self.steps:
            names = ", ".join(repr(s) for s in self.steps)
            return f"{what} with the step{_s(len(self.steps))} {names}"
        if self.defined:
            return f"{what} and serves queue {self.queue!r}"
        return what if self.queue == "default" else f"{what} (queue {self.queue!r})"


@dataclass(frozen=True)
class WorkerHealth:
    status: str  # healthy, degraded or down
    reason: str
    alive: int
    dead: int  # workers that died within ORBIT_DEAD_WORKER_WINDOW
    interrupted_runs: int
    workers: list[WorkerInfo] = field(default_factory=list)
    waiting: list[WaitingRuns] = field(default_factory=list)
    #: Dead workers not forgotten, however long ago they died.
    dead_total: int = 0
    #: Paused queues and pipelines with the pending runs each holds: not a fault (an
    #: operator paused them), said so a stuck-looking queue is explained.
    paused: list[Held] = field(default_factory=list)


# --- Figures -------------------------------------------------------------------------------


def running_by_pipeline(pipeline_ids: list[int] | None = None) -> dict[int, int]:
    """How many runs of each pipeline are running now (pipelines with none are left out):
    what a concurrency limit counts, shown beside it."""
    running = Run.objects.filter(status=RunStatus.RUNNING)
    if pipeline_ids is not None:
        running = running.filter(pipeline_id__in=pipeline_ids)
    return dict(running.values_list("pipeline_id").annotate(n=Count("id")).order_by())


def live_figures(now: datetime | None = None) -> LiveFigures:
    """What is queued and running now: read through the pending and running rows only."""
    now = now or db_now()
    live = Run.objects.filter(status__in=ACTIVE_STATUSES).aggregate(
        pending=Count("id", filter=Q(status=RunStatus.PENDING)),
        running=Count("id", filter=Q(status=RunStatus.RUNNING)),
        interrupted=Count("id", filter=Q(status=RunStatus.RUNNING, lease_expires_at__lt=now)),
        delayed=Count("id", filter=Q(status=RunStatus.PENDING, available_at__gt=now)),
    )
    queue = (
        Run.objects.filter(status=RunStatus.PENDING, available_at__lte=now)
        .of_runnable_pipelines()
        .unpaused()
        .aggregate(depth=Count("id"), oldest=Min("available_at"))
    )
    return LiveFigures(
        pending=live["pending"],
        running=live["running"],
        interrupted=live["interrupted"],
        queue_depth=queue["depth"],
        delayed=live["delayed"],
        oldest_pending_age=(
            max((now - queue["oldest"]).total_seconds(), 0.0) if queue["oldest"] else None
        ),
    )


def stats(now: datetime | None = None) -> Stats:
    """Live queue figures and the last hour's and day's outcomes, throughput and durations."""
    now = now or db_now()
    live = live_figures(now)
    hour, day = window_stats([HOUR, DAY], now=now)
    return Stats(
        at=now,
        pending=live.pending,
        running=live.running,
        interrupted=live.interrupted,
        queue_depth=live.queue_depth,
        delayed=live.delayed,
        oldest_pending_age=live.oldest_pending_age,
        last_hour=hour,
        last_day=day,
    )


def worker_counts(now: datetime | None = None) -> dict[str, int]:
    """Workers `alive` (heard from within a lease) and `dead` (silent, yet never stopped,
    and not forgotten by an operator)."""
    now = now or db_now()
    cutoff = now - timedelta(seconds=orbit_settings.lease_seconds)
    return Worker.objects.active().aggregate(
        alive=Count("id", filter=Q(last_heartbeat__gte=cutoff)),
        dead=Count("id", filter=Q(last_heartbeat__lt=cutoff)),
    )


def window_stats(windows: list[timedelta], now: datetime | None = None) -> list[WindowStats]:
    """Outcomes, throughput and duration percentiles over each window ending at `now`.

    One query over the longest window; each window is a FILTER on it.
    """
    now = now or db_now()
    longest = max(windows)
    finished = Run.objects.filter(finished_at__gt=now - longest, finished_at__lte=now)
    figures: dict[str, Any] = {}
    for i, window in enumerate(windows):
        since = Q(finished_at__gt=now - window)
        for status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED):
            figures[f"{i}_{status}"] = Count("id", filter=since & Q(status=status))
    # Counts and percentiles in one query on PostgreSQL.
    quantiles, counts = percentiles(
        finished,
        RUN_DURATION,
        (0.5, 0.95),
        groups={str(i): Q(finished_at__gt=now - w) & TIMED for i, w in enumerate(windows)},
        also=figures,
    )
    results = []
    for i, window in enumerate(windows):
        succeeded, failed, cancelled = (
            counts[f"{i}_{s}"] for s in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)
        )
        p50, p95 = quantiles[str(i)]
        results.append(
            WindowStats(
                window=window_name(window),
                seconds=window.total_seconds(),
                succeeded=succeeded,
                failed=failed,
                cancelled=cancelled,
                success_rate=_ratio(succeeded, succeeded + failed),
                throughput_per_minute=(succeeded + failed + cancelled)
                / (window.total_seconds() / 60),
                duration_p50=p50,
                duration_p95=p95,
            )
        )
    return results


def runs_per_minute(window: timedelta = HOUR, now: datetime | None = None) -> list[MinuteBucket]:
    """Runs finished in each minute of the window, by outcome, oldest first, gaps as zeros."""
    now = now or db_now()
    first = _floor_minute(now - window) + timedelta(minutes=1)
    rows = (
        Run.objects.filter(finished_at__gte=first, finished_at__lte=now)
        .annotate(minute=TruncMinute("finished_at", tzinfo=UTC))
        .values("minute")
        .annotate(
            succeeded=Count("id", filter=Q(status=RunStatus.SUCCEEDED)),
            failed=Count("id", filter=Q(status=RunStatus.FAILED)),
            cancelled=Count("id", filter=Q(status=RunStatus.CANCELLED)),
        )
        .order_by("minute")
    )
    found = {row["minute"].astimezone(UTC): row for row in rows}
    buckets = []
    minute = first
    while minute <= now:
        row: Any = found.get(minute, {})
        buckets.append(
            MinuteBucket(
                minute=minute,
                succeeded=row.get("succeeded", 0),
                failed=row.get("failed", 0),
                cancelled=row.get("cancelled", 0),
            )
        )
        minute += timedelta(minutes=1)
    return buckets


def runs_per_day(days: int = 30, now: datetime | None = None) -> list[DayBucket]:
    """Runs finished on each UTC day of the last `days` (today included), by outcome,
    oldest first, gaps as zeros: the rows kept and the rollups of those pruned."""
    now = now or db_now()
    first = start_of_day(now) - timedelta(days=days - 1)
    counts: dict[datetime, dict[str, int]] = {}
    rows = (
        Run.objects.filter(finished_at__gte=first, finished_at__lte=now)
        .annotate(day=TruncDay("finished_at", tzinfo=UTC))
        .values("day")
        .annotate(**_OUTCOME_COUNTS)
        .order_by()
    )
    for row in rows:
        _add_outcomes(counts.setdefault(row["day"].astimezone(UTC), {}), row)
    for row in RunRollup.objects.filter(hour__gte=first, hour__lte=now).values(
        "hour", *_OUTCOME_NAMES
    ):
        _add_outcomes(counts.setdefault(start_of_day(row["hour"]), {}), row)
    return [
        DayBucket(day=day, **counts.get(day, {}))
        for day in (first + timedelta(days=i) for i in range(days))
    ]


def run_duration_histogram(
    since: datetime, now: datetime | None = None, buckets: tuple[float, ...] = DURATION_BUCKETS
) -> Histogram:
    """Running times of succeeded and failed runs that finished in (since, now], cumulative,
    with the rollups of those pruned."""
    now = now or db_now()
    timed = Run.objects.filter(
        finished_at__gt=since,
        finished_at__lte=now,
        status__in=TIMED_STATUSES,
        started_at__isnull=False,
    )
    kept = _histogram(timed, "running_time", list(buckets), buckets)
    if buckets != DURATION_BUCKETS:
        return kept
    return _with_rollups(kept, _rollups(since, now), "run_durations", "run_seconds")


def duration_histogram(window: timedelta = DAY, now: datetime | None = None) -> Histogram:
    """Running times of succeeded and failed runs that finished in the window, cumulative."""
    now = now or db_now()
    return run_duration_histogram(now - window, now)


def step_duration_histogram(
    since: datetime, now: datetime | None = None, buckets: tuple[float, ...] = DURATION_BUCKETS
) -> Histogram:
    """Durations of step attempts recorded in (since, now], all outcomes, cumulative,
    with the rollups of those pruned."""
    now = now or db_now()
    attempts = StepAttempt.objects.filter(
        finished_at__gt=since, finished_at__lte=now, duration__isnull=False
    )
    kept = _histogram(attempts, "duration", list(buckets), buckets)
    if buckets != DURATION_BUCKETS:
        return kept
    return _with_rollups(kept, _rollups(since, now), "attempt_durations", "attempt_seconds")


def attempt_counts(since: datetime, now: datetime | None = None) -> dict[str, int]:
    """Step attempts recorded in (since, now] by outcome, and `retries`: attempts after a first."""
    now = now or db_now()
    attempts = StepAttempt.objects.filter(finished_at__gt=since, finished_at__lte=now)
    figures: dict[str, Any] = {
        outcome: Count("id", filter=Q(outcome=outcome)) for outcome in AttemptOutcome.values
    }
    figures["retries"] = Count("id", filter=Q(number__gt=1))
    counts: dict[str, int] = attempts.aggregate(**figures)
    for row in _rollups(since, now).values("attempts", "retries"):
        for outcome, n in (row["attempts"] or {}).items():
            if outcome in counts:
                counts[outcome] += n
        counts["retries"] += row["retries"]
    return counts


def finished_counts(since: datetime, now: datetime | None = None) -> dict[str, int]:
    """Runs finished in (since, now] by outcome, with the rollups of those pruned."""
    now = now or db_now()
    finished = Run.objects.filter(finished_at__gt=since, finished_at__lte=now)
    counts: dict[str, int] = finished.aggregate(**_OUTCOME_COUNTS)
    for row in _rollups(since, now).values(*_OUTCOME_NAMES):
        _add_outcomes(counts, row)
    return counts


def finished_counts_by_pipeline(
    since: datetime, now: datetime | None = None
) -> dict[str, dict[str, int]]:
    """`finished_counts` per pipeline name (what a failure-rate alert per pipeline reads)."""
    now = now or db_now()
    counts: dict[str, dict[str, int]] = {}
    rows = (
        Run.objects.filter(finished_at__gt=since, finished_at__lte=now)
        .values(name=F("pipeline__name"))
        .annotate(**_OUTCOME_COUNTS)
        .order_by()
    )
    for row in rows:
        _add_outcomes(counts.setdefault(row["name"], {}), row)
    for row in _rollups(since, now).values("pipeline__name", *_OUTCOME_NAMES):
        _add_outcomes(counts.setdefault(row["pipeline__name"], {}), row)
    return counts


def quarantined_count(since: datetime, now: datetime | None = None) -> int:
    """Runs quarantined in (since, now]: failed because they interrupted their workers too
    often (runs/recovery.py). Counted from the kept rows: the rollups do not tell them
    from other failures, so a retention shorter than a day would undercount."""
    now = now or db_now()
    return Run.objects.filter(
        finished_at__gt=since,
        finished_at__lte=now,
        status=RunStatus.FAILED,
        error__startswith=QUARANTINED,
    ).count()


def step_failure_rates(
    window: timedelta = HOUR, now: datetime | None = None, limit: int = 50
) -> list[StepFailureRate]:
    """Per pipeline and step, how many decided attempts in the window failed; worst first."""
    now = now or db_now()
    rows = (
        StepAttempt.objects.filter(
            finished_at__gt=now - window, finished_at__lte=now, outcome__in=DECIDED_OUTCOMES
        )
        .values(pipeline=F("run__pipeline__name"), step_name=F("step__name"))
        .annotate(
            attempts=Count("id"),
            failures=Count("id", filter=Q(outcome__in=FAILED_OUTCOMES)),
            retries=Count("id", filter=Q(number__gt=1)),
        )
        .order_by("-failures", "-attempts", "pipeline", "step_name")[:limit]
    )
    return [
        StepFailureRate(
            pipeline=row["pipeline"],
            step=row["step_name"],
            attempts=row["attempts"],
            failures=row["failures"],
            retries=row["retries"],
            failure_rate=_ratio(row["failures"], row["attempts"]),
        )
        for row in rows
    ]


def most_failing_steps(
    window: timedelta = HOUR, now: datetime | None = None, limit: int = 10
) -> list[StepFailureRate]:
    """The steps with the most failed attempts in the window (none that did not fail).

    Attempts join their runs for the pipeline name, so the cost grows with the attempts
    in the window: about 0.4 s for a day of 50,000 attempts. Prefer an hour.
    """
    return [r for r in step_failure_rates(window, now, limit) if r.failures]


def pipeline_figures(window: timedelta = DAY, now: datetime | None = None) -> list[PipelineFigures]:
    """Per pipeline: runs queued and running now, and outcomes and durations in the window."""
    now = now or db_now()
    live: dict[str, Any] = {
        row["pipeline__name"]: row
        for row in Run.objects.filter(status__in=ACTIVE_STATUSES)
        .values("pipeline__name")
        .annotate(
            pending=Count("id", filter=Q(status=RunStatus.PENDING)),
            running=Count("id", filter=Q(status=RunStatus.RUNNING)),
        )
        .order_by()
    }
    finished = Run.objects.filter(finished_at__gt=now - window, finished_at__lte=now)
    outcomes: dict[str, Any] = {
        row["pipeline__name"]: row
        for row in finished.values("pipeline__name")
        .annotate(
            **{
                status: Count("id", filter=Q(status=status))
                for status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)
            }
        )
        .order_by()
    }
    names = sorted(set(live) | set(outcomes))
    quantiles, _ = percentiles(
        finished,
        RUN_DURATION,
        (0.5, 0.95),
        groups={name: Q(pipeline__name=name) & TIMED for name in names},
    )
    figures = []
    for name in names:
        done: dict[str, Any] = outcomes.get(name, {})
        succeeded, failed = done.get(RunStatus.SUCCEEDED, 0), done.get(RunStatus.FAILED, 0)
        p50, p95 = quantiles[name]
        figures.append(
            PipelineFigures(
                pipeline=name,
                pending=live.get(name, {}).get("pending", 0),
                running=live.get(name, {}).get("running", 0),
                succeeded=succeeded,
                failed=failed,
                cancelled=done.get(RunStatus.CANCELLED, 0),
                success_rate=_ratio(succeeded, succeeded + failed),
                duration_p50=p50,
                duration_p95=p95,
            )
        )
    return figures


def pipeline_success_rate(
    pipeline_id: int, window: timedelta = DAY, now: datetime | None = None
) -> float | None:
    """Succeeded / (succeeded + failed) among one pipeline's runs finished in the window."""
    now = now or db_now()
    counts = Run.objects.filter(
        pipeline_id=pipeline_id, finished_at__gt=now - window, finished_at__lte=now
    ).aggregate(
        succeeded=Count("id", filter=Q(status=RunStatus.SUCCEEDED)),
        failed=Count("id", filter=Q(status=RunStatus.FAILED)),
    )
    return _ratio(counts["succeeded"], counts["succeeded"] + counts["failed"])


def with_last_run(pipelines: QuerySet[Pipeline]) -> QuerySet[Pipeline]:
    """Annotate `last_run_status` and `last_run_at` (one subquery each, indexed)."""
    latest = Run.objects.filter(pipeline=OuterRef("pk")).order_by("-created_at", "-id")
    return pipelines.annotate(
        last_run_status=Subquery(latest.values("status")[:1]),
        last_run_at=Subquery(latest.values("created_at")[:1]),
    )


def worker_health(now: datetime | None = None, limit: int = 100) -> WorkerHealth:
    """Each worker not stopped (and those stopped in the last day), and an overall verdict.

    down: no worker is alive. degraded: some are alive, but a worker died within
    ORBIT_DEAD_WORKER_WINDOW, runs are interrupted, or due runs wait for a worker that can
    run them. healthy otherwise: an older death alone no longer degrades it.
    """
    now = now or db_now()
    cutoff = now - timedelta(seconds=orbit_settings.lease_seconds)
    recent = now - timedelta(seconds=orbit_settings.dead_worker_window)
    rows = list(
        Worker.objects.filter(forgotten_at__isnull=True)
        .filter(~Q(state=WorkerState.STOPPED) | Q(stopped_at__gt=now - DAY))
        .order_by("-started_at")[:limit]
    )
    current = dict(
        Run.objects.filter(status=RunStatus.RUNNING, worker__in=[w.id for w in rows])
        .values("worker")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("worker", "n")
    )
    workers = [_worker_info(w, now, cutoff, current.get(w.id, 0)) for w in rows]
    counts = worker_counts(now)
    alive_count = counts["alive"]
    died_recently = Worker.objects.active().filter(
        last_heartbeat__lt=cutoff, last_heartbeat__gte=recent
    )
    dead_names = list(died_recently.order_by("name").values_list("name", flat=True)[:6])
    recent_deaths = died_recently.count() if dead_names else 0
    interrupted = Run.objects.filter(status=RunStatus.RUNNING, lease_expires_at__lt=now).count()
    waiting = waiting_runs(now) if alive_count else []
    status, reason = _verdict(alive_count, recent_deaths, dead_names[:5], interrupted, waiting)
    paused = held()
    if any(h.pending for h in paused):
        reason += "; held by a pause: " + "; ".join(h.reason for h in paused if h.pending)
    return WorkerHealth(
        status=status,
        reason=reason,
        alive=alive_count,
        dead=recent_deaths,
        interrupted_runs=interrupted,
        workers=workers,
        waiting=waiting,
        paused=paused,
        dead_total=counts["dead"],
    )


def _worker_info(w: Worker, now: datetime, cutoff: datetime, current: int) -> WorkerInfo:
    active = w.state != WorkerState.STOPPED
    dead = active and w.last_heartbeat < cutoff
    return WorkerInfo(
        id=w.id,
        name=w.name,
        hostname=w.hostname,
        pid=w.pid,
        state=w.state,
        alive=active and not dead,
        dead=dead,
        concurrency=w.concurrency,
        queues=list(w.queues or []),
        started_at=w.started_at,
        last_heartbeat=w.last_heartbeat,
        heartbeat_age=max((now - w.last_heartbeat).total_seconds(), 0.0),
        current_runs=current,
        succeeded_count=w.succeeded_count,
        failed_count=w.failed_count,
        died_at=(w.died_at or w.last_heartbeat) if dead else None,
        held_at_death=list(w.held_at_death or []) if dead else [],
        definitions=sorted(w.definitions or {}),
    )


#: How many of a pipeline's oldest due runs are checked for steps no live worker knows:
#: enough to see a deploy's gap, bounded so a queue of millions costs no more.
WAITING_SAMPLE = 1000


def waiting_runs(now: datetime | None = None) -> list[WaitingRuns]:
    """Due runs of enabled pipelines that no live worker can claim, by definition and queue.

    Workers record the definitions (and their steps) they loaded when they start; a run
    waits when no claiming worker serves its queue and defines its pipeline and every step
    it has left. Read through the pending rows only, like `live_figures`.
    """
    now = now or db_now()
    claiming = (
        Worker.objects.active()
        .exclude(state=WorkerState.STOPPING)  # a stopping worker claims nothing new
        .filter(last_heartbeat__gte=now - timedelta(seconds=orbit_settings.lease_seconds))
    )
    serving = [
        (set(queues or []), {name: set(steps) for name, steps in (definitions or {}).items()})
        for queues, definitions in claiming.values_list("queues", "definitions")
    ]
    due = (
        Run.objects.filter(status=RunStatus.PENDING, available_at__lte=now)
        .of_runnable_pipelines()
        .unpaused()  # a paused run waits for its resume, not for a worker
    )
    groups = due.values_list("pipeline__definition", "queue").annotate(n=Count("id")).order_by()
    found = []
    for definition, queue, n in groups:
        defined = any(definition in defs for _, defs in serving)
        known = [
            defs[definition] for queues, defs in serving if queue in queues and definition in defs
        ]
        if not known:
            found.append(WaitingRuns(definition, queue, n, defined=defined))
            continue
        blocked, missing = _runs_with_unknown_steps(due, definition, queue, known)
        if blocked:
            found.append(WaitingRuns(definition, queue, blocked, steps=missing, defined=True))
    return sorted(found, key=lambda w: (-w.runs, w.definition, w.queue))


def _runs_with_unknown_steps(
    due: QuerySet[Run], definition: str, queue: str, known: list[set[str]]
) -> tuple[int, tuple[str, ...]]:
    """Of the oldest due runs of `definition` in `queue`, how many have an unfinished step
    that none of the step sets in `known` holds in full; and those steps' names."""
    sample = due.filter(pipeline__definition=definition, queue=queue).order_by("available_at")
    candidates = Run.objects.filter(
        id__in=list(sample.values_list("id", flat=True)[:WAITING_SAMPLE])
    )
    unfinished = Step.objects.filter(run_id=OuterRef("pk")).exclude(status=StepStatus.SUCCEEDED)
    for steps in {frozenset(s) for s in known}:
        candidates = candidates.filter(Exists(unfinished.exclude(name__in=list(steps))))
    blocked = candidates.count()
    if not blocked:
        return 0, ()
    everywhere = set().union(*known)
    names = (
        Step.objects.filter(run__in=candidates)
        .exclude(status=StepStatus.SUCCEEDED)
        .exclude(name__in=list(everywhere))
        .order_by()
        .values_list("name", flat=True)
        .distinct()
    )
    return blocked, tuple(sorted(names))


def _verdict(
    alive: int, dead: int, dead_names: list[str], interrupted: int, waiting: list[WaitingRuns]
) -> tuple[str, str]:
    lease = orbit_settings.lease_seconds
    if not alive:
        return "down", f"No worker has sent a heartbeat in the last {lease:g} s"
    problems = []
    if dead:
        names = ", ".join(dead_names) + (", ..." if dead > len(dead_names) else "")
        window = orbit_settings.dead_worker_window / 60
        problems.append(f"{dead} worker{_s(dead)} died in the last {window:g} min ({names})")
    if interrupted:
        problems.append(f"{interrupted} run{_s(interrupted)} interrupted, waiting for recovery")
    problems.extend(w.reason for w in waiting)
    if problems:
        return "degraded", "; ".join(problems)
    return "healthy", f"{alive} worker{_s(alive)} alive"


# --- Percentiles and histograms ---------------------------------------------------------------


class PercentileCont(Aggregate):
    """PostgreSQL's continuous percentile: linear interpolation between the nearest ranks."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError(f"A percentile fraction is between 0 and 1, not {fraction}")
        super().__init__(expression, fraction=repr(float(fraction)), **extra)


def percentiles(
    queryset: QuerySet[Any],
    expression: Any,
    fractions: tuple[float, ...],
    groups: dict[str, Q],
    also: dict[str, Any] | None = None,
) -> tuple[dict[str, tuple[float | None, ...]], dict[str, Any]]:
    """For each group (a filter on `queryset`), the `fractions` percentiles of `expression`
    in seconds (None where the group is empty); and the aggregates `also`, computed on
    `queryset` alongside.

    PostgreSQL computes everything in one query with percentile_cont. Elsewhere the same
    definition (linear interpolation between the two nearest ranks) is computed by
    counting, then reading the two neighbouring values in order: two small queries per
    percentile, never loading the whole window.
    """
    also = dict(also or {})
    if store().features.percentiles:
        aggregates = {
            f"{name}|{i}": PercentileCont(
                expression, fraction, filter=where, output_field=expression.output_field
            )
            for name, where in groups.items()
            for i, fraction in enumerate(fractions)
        }
        values = queryset.aggregate(**aggregates, **also) if aggregates or also else {}
        quantiles = {
            name: tuple(_seconds(values[f"{name}|{i}"]) for i in range(len(fractions)))
            for name in groups
        }
        return quantiles, {key: values[key] for key in also}
    quantiles = {
        name: _ranked_percentiles(queryset.filter(where), expression, fractions)
        for name, where in groups.items()
    }
    return quantiles, queryset.aggregate(**also) if also else {}


def _ranked_percentiles(
    queryset: QuerySet[Any], expression: Any, fractions: tuple[float, ...]
) -> tuple[float | None, ...]:
    ordered = queryset.annotate(_value=expression).exclude(_value__isnull=True).order_by("_value")
    n = ordered.count()
    if not n:
        return tuple(None for _ in fractions)
    results: list[float | None] = []
    for fraction in fractions:
        rank = fraction * (n - 1)
        low = math.floor(rank)
        values = [_seconds(v) for v in ordered.values_list("_value", flat=True)[low : low + 2]]
        lower = values[0] or 0.0
        upper = values[-1] if len(values) > 1 and values[-1] is not None else lower
        results.append(lower + (upper - lower) * (rank - low))
    return tuple(results)


def _histogram(
    queryset: QuerySet[Any], field_name: str, bounds: list[Any], buckets: tuple[float, ...]
) -> Histogram:
    figures: dict[str, Any] = {
        f"le{i}": Count("pk", filter=Q(**{f"{field_name}__lte": bound}))
        for i, bound in enumerate(bounds)
    }
    figures["count"] = Count("pk")
    figures["sum"] = Sum(field_name)
    values = queryset.aggregate(**figures)
    cumulative = [
        HistogramBucket(le=float(bound), count=values[f"le{i}"]) for i, bound in enumerate(buckets)
    ]
    cumulative.append(HistogramBucket(le=math.inf, count=values["count"]))
    return Histogram(buckets=cumulative, count=values["count"], sum=_seconds(values["sum"]) or 0.0)


# --- Rollups of pruned runs ------------------------------------------------------------------

_OUTCOME_NAMES = (RunStatus.SUCCEEDED.value, RunStatus.FAILED.value, RunStatus.CANCELLED.value)
_OUTCOME_COUNTS = {status: Count("id", filter=Q(status=status)) for status in _OUTCOME_NAMES}


def _rollups(since: datetime, until: datetime) -> QuerySet[RunRollup]:
    """The rollup hours overlapping (since, until] (rollup_hour_idx)."""
    return RunRollup.objects.filter(hour__gt=since - HOUR, hour__lte=until)


def _add_outcomes(into: dict[str, int], row: Mapping[str, Any]) -> None:
    for status in _OUTCOME_NAMES:
        into[status] = into.get(status, 0) + (row.get(status) or 0)


def _with_rollups(
    kept: Histogram, rollups: QuerySet[RunRollup], counts: str, seconds: str
) -> Histogram:
    """A cumulative histogram of kept rows plus the rollups' per-bucket counts."""
    added = [0] * len(kept.buckets)
    total = 0.0
    for row in rollups.values(counts, seconds):
        for i, n in enumerate(row[counts] or []):
            if i < len(added):
                added[i] += n
        total += row[seconds] or 0.0
    if not any(added) and not total:
        return kept
    running, buckets = 0, []
    for bucket, n in zip(kept.buckets, added, strict=True):
        running += n
        buckets.append(HistogramBucket(le=bucket.le, count=bucket.count + running))
    return Histogram(buckets=buckets, count=kept.count + running, sum=kept.sum + total)


# --- Helpers ---------------------------------------------------------------------------------


def window_name(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def start_of_day(now: datetime) -> datetime:
    """Midnight UTC of `now`'s day: where the Prometheus counters start counting."""
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _floor_minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _s(n: int) -> str:
    return "" if n == 1 else "s"


__all__ = [
    "DURATION_BUCKETS",
    "DayBucket",
    "Histogram",
    "LiveFigures",
    "MinuteBucket",
    "PipelineFigures",
    "Stats",
    "StepFailureRate",
    "WaitingRuns",
    "WindowStats",
    "WorkerHealth",
    "WorkerInfo",
    "attempt_counts",
    "duration_histogram",
    "finished_counts",
    "live_figures",
    "most_failing_steps",
    "percentiles",
    "pipeline_figures",
    "pipeline_success_rate",
    "run_duration_histogram",
    "runs_per_day",
    "runs_per_minute",
    "stats",
    "step_duration_histogram",
    "step_failure_rates",
    "waiting_runs",
    "window_stats",
    "with_last_run",
    "worker_counts",
    "worker_health",
]
