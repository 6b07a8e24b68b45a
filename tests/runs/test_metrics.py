from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runs import metrics
from runs.models import RunStatus
from tests.factories import (
    PipelineFactory,
    RunFactory,
    StepAttemptFactory,
    StepFactory,
    WorkerFactory,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2030, 6, 1, 12, 30, 30, tzinfo=UTC)


def finished(status="succeeded", ago=60.0, took=1.0, pipeline="t-single"):
    end = NOW - timedelta(seconds=ago)
    return RunFactory(
        pipeline=PipelineFactory(name=pipeline),
        status=status,
        started_at=end - timedelta(seconds=took),
        finished_at=end,
        created_at=end - timedelta(seconds=took + 1),
        running_time=took,
    )


def test_stats_of_an_empty_database():
    stats = metrics.stats(NOW)
    assert (stats.pending, stats.running, stats.queue_depth, stats.oldest_pending_age) == (
        0,
        0,
        0,
        None,
    )
    assert stats.last_hour.success_rate is None
    assert stats.last_hour.duration_p50 is None
    assert stats.last_day.throughput_per_minute == 0


def test_percentiles_interpolate_like_percentile_cont():
    for seconds in range(1, 11):  # durations 1 s .. 10 s
        finished(took=seconds)
    hour = metrics.stats(NOW).last_hour
    assert hour.duration_p50 == pytest.approx(5.5)
    assert hour.duration_p95 == pytest.approx(9.55)


def test_durations_are_running_times_not_the_wait_before_a_retry():
    """A 2.6 s run retried a minute later took 2.6 s of work, not 62.6 s."""
    retried = finished(took=62.6)
    retried.running_time = 2.6
    retried.save()
    hour = metrics.stats(NOW).last_hour
    assert hour.duration_p95 == pytest.approx(2.6)
    assert metrics.run_duration_histogram(NOW - timedelta(hours=1), NOW).sum == pytest.approx(2.6)
    (figures,) = metrics.pipeline_figures(now=NOW)
    assert figures.duration_p50 == pytest.approx(2.6)


def test_windows_count_by_outcome_rate_and_throughput():
    finished("succeeded", ago=60)
    finished("succeeded", ago=120)
    finished("failed", ago=180)
    finished("cancelled", ago=240, took=500)  # counted, but neither in the rate nor in durations
    finished("succeeded", ago=7200)  # earlier today: only the day window
    finished("failed", ago=2 * 86400)  # outside both windows
    stats = metrics.stats(NOW)
    hour, day = stats.last_hour, stats.last_day
    assert (hour.succeeded, hour.failed, hour.cancelled, hour.finished) == (2, 1, 1, 4)
    assert hour.success_rate == pytest.approx(2 / 3)
    assert hour.throughput_per_minute == pytest.approx(4 / 60)
    assert hour.duration_p95 == pytest.approx(1.0)
    assert (day.succeeded, day.failed) == (3, 1)
    assert day.success_rate == pytest.approx(0.75)


def test_live_figures_queue_depth_and_oldest_pending_age():
    due = RunFactory(status=RunStatus.PENDING, available_at=NOW - timedelta(seconds=90))
    RunFactory(status=RunStatus.PENDING, available_at=NOW - timedelta(seconds=10))
    RunFactory(status=RunStatus.PENDING, available_at=NOW + timedelta(seconds=60))  # backoff
    RunFactory(  # pending, but its pipeline is disabled: no worker would claim it
        pipeline=PipelineFactory(name="t-off", definition="t-three", enabled=False),
        status=RunStatus.PENDING,
        available_at=NOW - timedelta(hours=5),
    )
    RunFactory(status=RunStatus.RUNNING, lease_expires_at=NOW + timedelta(seconds=20))
    RunFactory(status=RunStatus.RUNNING, lease_expires_at=NOW - timedelta(seconds=20))
    stats = metrics.stats(NOW)
    assert (stats.pending, stats.running, stats.interrupted) == (4, 2, 1)
    assert (stats.queue_depth, stats.delayed) == (2, 1)
    assert stats.oldest_pending_age == pytest.approx(90)
    assert due.status == RunStatus.PENDING


def test_runs_per_minute_fills_every_minute_of_the_hour():
    finished("succeeded", ago=5)  # 12:30:25, the current minute
    finished("failed", ago=20)  # 12:30:10
    finished("succeeded", ago=65)  # 12:29:25
    finished("succeeded", ago=3700)  # more than an hour ago: not shown
    buckets = metrics.runs_per_minute(timedelta(hours=1), NOW)
    assert len(buckets) == 60
    assert buckets[0].minute == datetime(2030, 6, 1, 11, 31, tzinfo=UTC)
    assert buckets[-1].minute == datetime(2030, 6, 1, 12, 30, tzinfo=UTC)
    assert (buckets[-1].succeeded, buckets[-1].failed) == (1, 1)
    assert (buckets[-2].succeeded, buckets[-2].failed) == (1, 0)
    assert sum(b.succeeded + b.failed + b.cancelled for b in buckets) == 3


def attempt(step, number, outcome, ago=60.0, duration=1.0):
    return StepAttemptFactory(
        step=step,
        number=number,
        outcome=outcome,
        finished_at=NOW - timedelta(seconds=ago),
        duration=duration,
    )


def test_step_failure_rates_ignore_attempts_that_were_not_the_steps_doing():
    run = finished("failed")
    flaky = StepFactory(run=run, name="fetch", position=0)
    attempt(flaky, 1, "failed")
    attempt(flaky, 2, "timed_out")
    attempt(flaky, 3, "interrupted")  # its worker died: not counted
    attempt(flaky, 4, "succeeded")
    steady = StepFactory(run=run, name="store", position=1)
    attempt(steady, 1, "succeeded")
    attempt(steady, 2, "failed", ago=7200)  # outside the hour
    rates = metrics.step_failure_rates(timedelta(hours=1), NOW)
    assert [(r.step, r.attempts, r.failures, r.retries) for r in rates] == [
        ("fetch", 3, 2, 2),
        ("store", 1, 0, 0),
    ]
    assert rates[0].failure_rate == pytest.approx(2 / 3)
    # store failed only two hours ago: not among the hour's failing steps
    assert [r.step for r in metrics.most_failing_steps(timedelta(hours=1), NOW)] == ["fetch"]


def test_pipeline_figures():
    finished("succeeded", took=2, pipeline="t-three")
    finished("failed", took=4, pipeline="t-three")
    finished("succeeded", pipeline="t-single")
    RunFactory(pipeline=PipelineFactory(name="t-single"), status=RunStatus.PENDING)
    figures = {f.pipeline: f for f in metrics.pipeline_figures(timedelta(days=1), NOW)}
    three = figures["t-three"]
    assert (three.succeeded, three.failed, three.pending, three.success_rate) == (1, 1, 0, 0.5)
    assert three.duration_p50 == pytest.approx(3.0)
    assert (figures["t-single"].succeeded, figures["t-single"].pending) == (1, 1)


def test_duration_histograms_are_cumulative():
    for took in (0.05, 0.7, 3, 45, 4000):
        finished(took=took, ago=30)
    histogram = metrics.run_duration_histogram(NOW - timedelta(hours=1), NOW)
    counts = {b.le: b.count for b in histogram.buckets}
    assert (counts[0.1], counts[1], counts[5], counts[60], counts[3600]) == (1, 2, 3, 4, 4)
    assert histogram.buckets[-1].count == histogram.count == 5
    assert histogram.sum == pytest.approx(0.05 + 0.7 + 3 + 45 + 4000)


def test_worker_health_down_without_live_workers():
    WorkerFactory(state="running", last_heartbeat=NOW - timedelta(minutes=10))
    health = metrics.worker_health(NOW)
    assert (health.status, health.reason) == (
        "down",
        "No worker has sent a heartbeat in the last 30 s",
    )


def test_worker_health_degraded_names_the_silent_workers():
    live = WorkerFactory(name="a:1", state="running", last_heartbeat=NOW - timedelta(seconds=2))
    WorkerFactory(name="b:2", state="running", last_heartbeat=NOW - timedelta(minutes=5))
    RunFactory(status=RunStatus.RUNNING, worker=live, lease_expires_at=NOW + timedelta(seconds=20))
    health = metrics.worker_health(NOW)
    assert health.status == "degraded"
    assert health.reason == "1 worker died in the last 15 min (b:2)"
    info = {w.name: w for w in health.workers}
    assert (info["a:1"].alive, info["a:1"].current_runs, info["a:1"].heartbeat_age) == (
        True,
        1,
        2.0,
    )
    assert (info["b:2"].alive, info["b:2"].dead, info["b:2"].died_at) == (
        False,
        True,
        NOW - timedelta(minutes=5),  # no sweep marked it yet: its last heartbeat
    )


def test_worker_health_healthy():
    WorkerFactory(state="running", last_heartbeat=NOW - timedelta(seconds=1))
    WorkerFactory(
        state="stopped",
        last_heartbeat=NOW - timedelta(hours=2),
        stopped_at=NOW - timedelta(hours=2),
    )
    health = metrics.worker_health(NOW)
    assert (health.status, health.reason, health.alive, health.dead) == (
        "healthy",
        "1 worker alive",
        1,
        0,
    )
    assert len(health.workers) == 2  # the one stopped today is listed too
