"""A run's steps on one time axis, to scale: every attempt, and the backoff wait after each
failed one, so an operator sees where the time went and how often a step was retried."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from orbit.console.dashboard.present import format_duration
from runs.models import Run, Step, StepAttempt, StepStatus

WIDTH = 1000
LABEL_WIDTH = 170  # step names, left of the plot
RIGHT = 12
ROW_HEIGHT = 26
BAR_HEIGHT = 14
AXIS_HEIGHT = 24
MIN_BAR = 2.0  # an attempt of a few milliseconds stays visible


@dataclass(frozen=True)
class Span:
    x: float
    width: float
    css: str  # outcome-succeeded, outcome-failed, ..., backoff, running
    title: str


@dataclass
class Row:
    name: str
    label: str  # the name, shortened to fit
    y: float
    bar_y: float
    text_y: float
    spans: list[Span] = field(default_factory=list)


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass
class Timeline:
    rows: list[Row]
    ticks: list[Tick]
    width: int
    height: int
    plot_left: int
    plot_right: int
    axis_y: float
    total: float  # seconds shown

    @property
    def view_box(self) -> str:
        return f"0 0 {self.width} {self.height}"


def _start_of(attempt: StepAttempt) -> datetime | None:
    if attempt.started_at is not None:
        return attempt.started_at
    if attempt.finished_at is not None and attempt.duration is not None:
        return attempt.finished_at - timedelta(seconds=attempt.duration)
    return None


def build_timeline(run: Run, steps: Sequence[Step], now: datetime) -> Timeline | None:
    """The drawing for `run`, or None before anything has started.

    `steps` must come with `attempt_records` prefetched, in position order.
    """
    starts: list[datetime] = [run.started_at] if run.started_at else []
    ends: list[datetime] = []
    for step in steps:
        for attempt in step.attempt_records.all():
            begun = _start_of(attempt)
            if begun is not None:
                starts.append(begun)
            if attempt.finished_at is not None:
                ends.append(attempt.finished_at + timedelta(seconds=attempt.backoff_delay or 0))
        if step.status == StepStatus.RUNNING and step.started_at is not None:
            starts.append(step.started_at)
            ends.append(now)
    if not starts:
        return None
    origin = min(starts)
    end = run.finished_at if run.finished_at is not None else now
    end = max([end, *ends])
    total = max((end - origin).total_seconds(), 0.001)
    plot_left, plot_right = LABEL_WIDTH, WIDTH - RIGHT
    scale = (plot_right - plot_left) / total

    def x_of(when: datetime) -> float:
        return plot_left + max((when - origin).total_seconds(), 0.0) * scale

    def span(begin: datetime, seconds: float, css: str, title: str) -> Span:
        x = x_of(begin)
        width = max(seconds * scale, MIN_BAR)
        return Span(
            x=round(min(x, plot_right - MIN_BAR), 2),
            width=round(min(width, plot_right - x), 2) or MIN_BAR,
            css=css,
            title=title,
        )

    rows = []
    for index, step in enumerate(steps):
        y = index * ROW_HEIGHT
        row = Row(
            name=step.name,
            label=_shorten(step.name),
            y=y,
            bar_y=y + (ROW_HEIGHT - BAR_HEIGHT) / 2,
            text_y=y + ROW_HEIGHT / 2 + 4,
        )
        for attempt in step.attempt_records.all():
            begun = _start_of(attempt)
            if begun is None:
                continue
            seconds = (
                attempt.duration
                if attempt.duration is not None
                else ((attempt.finished_at - begun).total_seconds() if attempt.finished_at else 0.0)
            )
            what = f"{step.name}, attempt {attempt.number}: {attempt.get_outcome_display().lower()}"
            what += f" after {format_duration(seconds)}"
            if attempt.error:
                what += f": {attempt.error[:200]}"
            row.spans.append(span(begun, seconds, f"outcome-{attempt.outcome}", what))
            if attempt.backoff_delay and attempt.finished_at is not None:
                row.spans.append(
                    span(
                        attempt.finished_at,
                        attempt.backoff_delay,
                        "backoff",
                        f"{step.name}: waited {format_duration(attempt.backoff_delay)} "
                        f"before attempt {attempt.number + 1}",
                    )
                )
        if step.status == StepStatus.RUNNING and step.started_at is not None:
            seconds = (now - step.started_at).total_seconds()
            row.spans.append(
                span(
                    step.started_at,
                    seconds,
                    "running",
                    f"{step.name}: running for {format_duration(seconds)}",
                )
            )
        rows.append(row)
    axis_y = len(rows) * ROW_HEIGHT + 4
    ticks = [
        Tick(
            x=round(plot_left + (plot_right - plot_left) * i / 4, 2),
            label=f"+{format_duration(total * i / 4)}" if i else "0",
        )
        for i in range(5)
    ]
    return Timeline(
        rows=rows,
        ticks=ticks,
        width=WIDTH,
        height=int(axis_y + AXIS_HEIGHT),
        plot_left=plot_left,
        plot_right=plot_right,
        axis_y=axis_y,
        total=total,
    )


def _shorten(name: str, limit: int = 22) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"
