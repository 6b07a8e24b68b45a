"""The figures of pruned runs, summed per pipeline and hour before their rows go.

A pure function over what a pruning batch deleted: both stores delete, call `summarise`,
and add its result to the `RunRollup` rows, so the arithmetic is defined once. It counts
exactly what runs/metrics.py counts over the rows themselves: runs by outcome in the hour
they finished; the durations of succeeded and failed runs that started; attempts by
outcome, retries (attempts after a step's first) and the durations of those that have one,
in the hour each attempt finished.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from runs.models import DURATION_BUCKETS, RunStatus

#: Run statuses counted by the rollups: the finished ones, the only ones pruned.
OUTCOMES = (RunStatus.SUCCEEDED.value, RunStatus.FAILED.value, RunStatus.CANCELLED.value)
_TIMED = (RunStatus.SUCCEEDED.value, RunStatus.FAILED.value)


@dataclass(frozen=True)
class GoneRun:
    """A pruned run, as its figures need it."""

    pipeline_id: int
    status: str
    running_time: float | None  # the sum of its attempts (Run.running_time)
    finished_at: datetime


@dataclass(frozen=True)
class GoneAttempt:
    """A pruned run's attempt, as its figures need it."""

    pipeline_id: int
    outcome: str
    number: int
    duration: float | None
    finished_at: datetime


@dataclass
class HourFigures:
    """What one pipeline's pruned rows add to one hour's rollup."""

    pipeline_id: int
    hour: datetime
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    run_durations: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    run_seconds: float = 0.0
    attempts: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    attempt_durations: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    attempt_seconds: float = 0.0

    def values(self) -> dict[str, object]:
        """The rollup row's columns (`hour` as ISO text), for an INSERT or an update."""
        return {
            "pipeline_id": self.pipeline_id,
            "hour": self.hour.isoformat(),
            "succeeded": self.succeeded,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "run_durations": self.run_durations,
            "run_seconds": self.run_seconds,
            "attempts": self.attempts,
            "retries": self.retries,
            "attempt_durations": self.attempt_durations,
            "attempt_seconds": self.attempt_seconds,
        }


def bucket(seconds: float) -> int:
    """The histogram bucket of a duration: the first bound it does not exceed."""
    return bisect.bisect_left(DURATION_BUCKETS, seconds)


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def summarise(runs: Iterable[GoneRun], attempts: Iterable[GoneAttempt]) -> list[HourFigures]:
    """Per pipeline and hour, the figures of the pruned runs and attempts; hour order."""
    found: dict[tuple[int, datetime], HourFigures] = {}

    def figures(pipeline_id: int, moment: datetime) -> HourFigures:
        key = (pipeline_id, hour_of(moment))
        if key not in found:
            found[key] = HourFigures(pipeline_id=pipeline_id, hour=key[1])
        return found[key]

    for run in runs:
        hour = figures(run.pipeline_id, run.finished_at)
        if run.status not in OUTCOMES:
            raise ValueError(f"a {run.status} run is never pruned")
        setattr(hour, run.status, getattr(hour, run.status) + 1)
        if run.status in _TIMED and run.running_time is not None:
            seconds = run.running_time
            hour.run_durations[bucket(seconds)] += 1
            hour.run_seconds += seconds
    for attempt in attempts:
        hour = figures(attempt.pipeline_id, attempt.finished_at)
        hour.attempts[attempt.outcome] = hour.attempts.get(attempt.outcome, 0) + 1
        if attempt.number > 1:
            hour.retries += 1
        if attempt.duration is not None:
            hour.attempt_durations[bucket(attempt.duration)] += 1
            hour.attempt_seconds += attempt.duration
    return [found[key] for key in sorted(found, key=lambda k: (k[1], k[0]))]


def add_counts(left: list[int], right: list[int]) -> list[int]:
    """Two bucket lists added bucket by bucket (a shorter one counts as zeros)."""
    size = max(len(left), len(right))
    return [
        (left[i] if i < len(left) else 0) + (right[i] if i < len(right) else 0) for i in range(size)
    ]


def add_outcomes(left: dict[str, int], right: dict[str, int]) -> dict[str, int]:
    return {key: left.get(key, 0) + right.get(key, 0) for key in sorted({*left, *right})}
