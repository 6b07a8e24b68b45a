"""The overview's figures, cards and charts, from runs.metrics (the same numbers the API and
Prometheus report), shaped for the page."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from orbit.console.dashboard.charts import BarChart, histogram, stacked_bars
from orbit.console.dashboard.present import format_duration, format_percent
from orbit.core.clock import db_now
from runs import metrics
from runs.models import Run

RECENT_RUNS = 10
#: The history chart's span: longer than the usual retention, so it reads the rollups of
#: pruned runs for its older days (runs.metrics.runs_per_day).
HISTORY_DAYS = 30
OUTCOMES = (("succeeded", "Succeeded"), ("failed", "Failed"), ("cancelled", "Cancelled"))


@dataclass(frozen=True)
class Card:
    label: str
    value: str
    detail: str = ""
    tone: str = ""  # "", "good", "warn" or "bad": colours the value


@dataclass(frozen=True)
class Health:
    """The admin index's one line: is anything working, and is anything stuck or failing."""

    workers_alive: int
    queue_depth: int
    interrupted: int
    failed_last_hour: int
    status: str  # healthy, degraded or down (runs.metrics.worker_health)
    reason: str


def figures(now: datetime, *, history: bool = False) -> dict[str, Any]:
    """The overview's figures; with `history`, the 30-day chart too (it reads a month of
    runs, so the page draws it once and the 5-second refresh leaves it out)."""
    stats = metrics.stats(now)
    workers = metrics.worker_health(now)
    hour = stats.last_hour
    return {
        "stats": stats,
        "cards": _cards(stats, workers),
        "per_minute": per_minute_chart(metrics.runs_per_minute(metrics.HOUR, now)),
        "durations": duration_chart(metrics.duration_histogram(metrics.DAY, now)),
        "failing_steps": metrics.most_failing_steps(metrics.DAY, now, limit=8),
        "recent": list(
            Run.objects.select_related("pipeline").order_by("-created_at", "-id")[:RECENT_RUNS]
        ),
        "worker_health": workers,
        # Paused queues and pipelines, so a queue that is not draining is explained.
        "paused": [{"held": h, "text": h.pause.describe(now)} for h in workers.paused],
        "hour": hour,
        "per_day": per_day_chart(metrics.runs_per_day(HISTORY_DAYS, now)) if history else None,
    }


def _cards(stats: metrics.Stats, workers: metrics.WorkerHealth) -> list[Card]:
    hour = stats.last_hour
    rate = hour.success_rate
    return [
        Card(
            "Throughput",
            f"{hour.throughput_per_minute:.1f}/min",
            f"{hour.finished} finished in the last hour",
        ),
        Card(
            "Success rate",
            format_percent(rate),
            f"{hour.succeeded} ok, {hour.failed} failed (1 h)",
            tone=""
            if rate is None
            else "good"
            if rate >= 0.95
            else "warn"
            if rate >= 0.8
            else "bad",
        ),
        Card("Running time p50", format_duration(hour.duration_p50) or "—", "last hour"),
        Card("Running time p95", format_duration(hour.duration_p95) or "—", "last hour"),
        Card(
            "Queue depth",
            str(stats.queue_depth),
            f"{stats.running} running, {stats.delayed} waiting to retry",
        ),
        Card(
            "Oldest pending",
            format_duration(stats.oldest_pending_age) or "—",
            "waiting for a worker",
            tone="warn" if (stats.oldest_pending_age or 0) > 60 else "",
        ),
        Card(
            "Workers alive",
            str(workers.alive),
            f"{workers.dead} dead, {stats.interrupted} interrupted runs"
            if workers.dead or stats.interrupted
            else workers.reason,
            tone={"healthy": "good", "degraded": "warn", "down": "bad"}.get(workers.status, ""),
        ),
    ]


def per_minute_chart(buckets: list[metrics.MinuteBucket]) -> BarChart:
    columns = [
        (
            b.minute.strftime("%H:%M"),
            {"succeeded": b.succeeded, "failed": b.failed, "cancelled": b.cancelled},
        )
        for b in buckets
    ]
    links = [finished_between(b.minute, b.minute + timedelta(minutes=1)) for b in buckets]
    return stacked_bars(
        "Runs finished per minute, last hour", columns, OUTCOMES, label_every=10, links=links
    )


def per_day_chart(buckets: list[metrics.DayBucket]) -> BarChart:
    columns = [
        (
            f"{b.day:%b} {b.day.day}",
            {"succeeded": b.succeeded, "failed": b.failed, "cancelled": b.cancelled},
        )
        for b in buckets
    ]
    links = [finished_between(b.day, b.day + timedelta(days=1)) for b in buckets]
    return stacked_bars(
        f"Runs finished per day, last {len(buckets)} days (UTC)",
        columns,
        OUTCOMES,
        label_every=5,
        links=links,
    )


def finished_between(start: datetime, end: datetime) -> str:
    """The runs page listing the runs finished in [start, end): what a bar counts."""
    last = end - timedelta(microseconds=1)
    query = urlencode({"finished_after": start.isoformat(), "finished_before": last.isoformat()})
    return f"{reverse('dashboard:runs')}?{query}"


def duration_chart(hist: metrics.Histogram) -> BarChart:
    """The cumulative histogram turned into counts per bucket, labelled by range."""
    counts, previous, lower = [], 0, 0.0
    for bucket in hist.buckets:
        label = f">{_short(lower)}" if math.isinf(bucket.le) else _short(bucket.le)
        counts.append((label, bucket.count - previous))
        previous, lower = bucket.count, bucket.le
    return histogram("Run running times, last 24 hours (upper bound of each bar)", counts)


def _short(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:g}s"
    if seconds < 3600:
        return f"{seconds / 60:g}m"
    return f"{seconds / 3600:g}h"


def health(now: datetime | None = None) -> Health:
    now = now or db_now()
    stats = metrics.stats(now)
    workers = metrics.worker_health(now)
    return Health(
        workers_alive=workers.alive,
        queue_depth=stats.queue_depth,
        interrupted=stats.interrupted,
        failed_last_hour=stats.last_hour.failed,
        status=workers.status,
        reason=workers.reason,
    )


@dataclass(frozen=True)
class Rate:
    finished: int
    percent: str


def success_rates(window: timedelta = metrics.DAY) -> dict[str, Rate]:
    """Per pipeline name: the share of runs finished in the window that succeeded."""
    return {
        f.pipeline: Rate(
            finished=f.succeeded + f.failed + f.cancelled, percent=format_percent(f.success_rate)
        )
        for f in metrics.pipeline_figures(window)
        if f.succeeded + f.failed + f.cancelled
    }
