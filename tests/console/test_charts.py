"""Chart and timeline geometry: drawn to scale, every label kept as data."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from orbit.console.dashboard.charts import (
    BOTTOM,
    HEIGHT,
    TOP,
    count_scale,
    histogram,
    stacked_bars,
)
from orbit.console.dashboard.timeline import build_timeline
from runs.models import Step
from tests.factories import RunFactory, StepAttemptFactory, StepFactory


@pytest.mark.parametrize(
    ("value", "scale"),
    [
        (0, (1, 1)),
        (1, (1, 1)),
        (3, (3, 1)),
        (7, (8, 2)),
        (11, (15, 5)),
        (25, (30, 10)),
        (240, (300, 100)),
        (1999, (2000, 500)),
    ],
)
def test_count_axes_have_whole_number_ticks(value, scale):
    assert count_scale(value) == scale
    top, step = scale
    assert top >= value and top // step <= 4


def test_a_chart_of_25_runs_is_ticked_in_whole_numbers():
    chart = stacked_bars("t", [("a", {"ok": 25})], [("ok", "Succeeded")])
    assert [t.label for t in chart.y_ticks] == ["0", "10", "20", "30"]


def test_stacked_bars_scale_to_the_tallest_column():
    chart = stacked_bars(
        "t",
        [("a", {"ok": 10}), ("b", {"ok": 5, "bad": 5}), ("c", {})],
        [("ok", "Succeeded"), ("bad", "Failed")],
    )
    plot = HEIGHT - BOTTOM - TOP
    assert [round(sum(s.height for s in bar.segments), 1) for bar in chart.bars] == [plot, plot, 0]
    assert [s.css for s in chart.bars[1].segments] == ["bar-ok", "bar-bad"]
    assert chart.bars[1].title == "b: 5 succeeded, 5 failed"
    assert chart.y_ticks[-1].label == "10"
    assert not chart.empty


def test_an_empty_chart_says_so():
    assert histogram("d", [("1s", 0), ("5s", 0)]).empty


@pytest.mark.django_db
def test_timeline_draws_attempts_and_backoff_to_scale(test_pipelines):
    start = timezone.now() - timedelta(seconds=100)
    run = RunFactory(
        status="succeeded", started_at=start, finished_at=start + timedelta(seconds=10)
    )
    step = StepFactory(run=run, name="flaky", position=0, status="succeeded")
    StepAttemptFactory(
        step=step,
        number=1,
        outcome="failed",
        started_at=start,
        finished_at=start + timedelta(seconds=2),
        duration=2.0,
        backoff_delay=3.0,
    )
    StepAttemptFactory(
        step=step,
        number=2,
        outcome="succeeded",
        started_at=start + timedelta(seconds=5),
        finished_at=start + timedelta(seconds=10),
        duration=5.0,
    )
    steps = list(Step.objects.filter(run=run).prefetch_related("attempt_records"))
    timeline = build_timeline(run, steps, timezone.now())
    failed, wait, ok = timeline.rows[0].spans
    assert (failed.css, wait.css, ok.css) == ("outcome-failed", "backoff", "outcome-succeeded")
    plot = timeline.plot_right - timeline.plot_left
    assert failed.x == timeline.plot_left
    assert failed.width == pytest.approx(plot * 0.2, abs=0.01)
    assert wait.x == pytest.approx(timeline.plot_left + plot * 0.2, abs=0.01)
    assert wait.width == pytest.approx(plot * 0.3, abs=0.01)
    assert ok.width == pytest.approx(plot * 0.5, abs=0.01)
    assert timeline.ticks[-1].label == "+10.0 s"
    assert wait.title == "flaky: waited 3.0 s before attempt 2"


@pytest.mark.django_db
def test_no_timeline_before_anything_started(test_pipelines):
    run = RunFactory()
    StepFactory(run=run, position=0)
    assert (
        build_timeline(run, list(run.steps.prefetch_related("attempt_records")), timezone.now())
        is None
    )
