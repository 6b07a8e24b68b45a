"""Drive an in-process worker the way the engine tests do, and count what a run costs."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from pipelines.models import Pipeline
from runs import enqueue
from runs.models import Worker
from runs.worker import WorkerLoop


def burst(**options: Any) -> WorkerLoop:
    """A worker that drains what is due, then stops: no LISTEN, no schedules, a short poll."""
    worker = WorkerLoop(burst=True, listen=False, schedules=False, poll_interval=0.05, **options)
    worker.run()
    return worker


def statements_per_run(pipeline: str = "t-single") -> tuple[float, CaptureQueriesContext]:
    """The statements one more run of `pipeline` costs a worker: a burst over six runs
    against a burst over three, so the per-burst start and stop cancel out. Returns the
    figure and the six-run capture (to show in an assertion message). No enabled pipeline
    has a flow limit meanwhile (the document pipeline, limited by default, is disabled):
    with one, a worker also claims under limits, at most once a poll interval besides the
    moments a slot frees (docs/FLOW-CONTROL.md)."""
    Pipeline.objects.limited().update(enabled=False)
    burst()  # warm up: registers pipelines, opens the connection
    Worker.objects.all().delete()
    for _ in range(3):
        enqueue(pipeline)
    with CaptureQueriesContext(connection) as three:
        burst()
    for _ in range(6):
        enqueue(pipeline)
    with CaptureQueriesContext(connection) as six:
        burst()
    return (len(six) - len(three)) / 3, six
