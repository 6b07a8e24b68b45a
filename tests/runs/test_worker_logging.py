"""What a worker logs at the default level (INFO): one line per successful run, its
outcome with its duration; failures and retries stay visible; DEBUG keeps no query log."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from django.db import connection

from runs import enqueue
from runs.models import Run, RunStatus
from tests.runs.workers import burst

pytestmark = pytest.mark.django_db(transaction=True)

#: The loggers settings.LOGGING gives a level (each does not propagate).
ORBIT_LOGGERS = ("orbit", "pipelines", "runs", "services")


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def events(self, level: int = logging.INFO) -> list[str]:
        return [getattr(r, "event", r.getMessage()) for r in self.records if r.levelno >= level]


@pytest.fixture
def logged() -> Iterator[Records]:
    """Every record Orbit's loggers pass at INFO, the level a deployment runs at."""
    handler = Records()
    loggers = [logging.getLogger(name) for name in ORBIT_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    yield handler
    for lg, level in zip(loggers, levels, strict=True):
        lg.removeHandler(handler)
        lg.setLevel(level)


def test_a_successful_run_writes_one_line_at_info(test_pipelines, logged):
    """The worker's own start and stop lines aside, each successful one-step run, from
    its enqueue to its end, adds exactly one record at INFO: its outcome, with its duration."""
    burst()  # warm up: registers the pipelines
    logged.records.clear()
    enqueue("t-single")
    burst()
    one = list(logged.records)
    logged.records.clear()
    runs = [enqueue("t-single") for _ in range(3)]
    burst()
    three = list(logged.records)

    assert len(three) - len(one) == 2  # one record per run, whatever the worker logs itself
    finished = [r for r in three if getattr(r, "event", "") == "run_finished"]
    assert len(finished) == 3
    assert all(r.levelno == logging.INFO for r in finished)
    assert all(r.status == "succeeded" and r.duration >= 0 for r in finished)  # type: ignore[attr-defined]
    assert " succeeded in " in finished[0].getMessage()
    assert {r.run_id for r in finished} == {str(run.id) for run in runs}  # type: ignore[attr-defined]
    # The rest are the worker's start and stop, the same however many runs it did.
    assert [e for e in logged.events() if e != "run_finished"] == [
        getattr(r, "event", "") for r in one if getattr(r, "event", "") != "run_finished"
    ]


def test_failed_attempts_and_retries_are_logged_at_info_or_above(test_pipelines, logged):
    run = enqueue("t-flaky", metadata={"fail_times": 1})
    failing = enqueue("t-failing")
    burst()
    assert Run.objects.get(id=run.id).status == RunStatus.SUCCEEDED
    assert Run.objects.get(id=failing.id).status == RunStatus.FAILED
    by_event = {}
    for r in logged.records:
        by_event.setdefault(getattr(r, "event", ""), []).append(r)
    assert {r.levelno for r in by_event["attempt_failed"]} == {logging.WARNING}
    assert len(by_event["attempt_failed"]) == 3  # the flaky step once, the failing one twice
    assert {r.levelno for r in by_event["retry_scheduled"]} == {logging.INFO}
    finished = {str(r.run_id): r for r in by_event["run_finished"]}  # type: ignore[attr-defined]
    assert finished[str(failing.id)].levelno == logging.ERROR
    assert finished[str(run.id)].levelno == logging.INFO


def test_a_worker_with_debug_on_warns_once_and_keeps_no_query_log(test_pipelines, logged, settings):
    settings.DEBUG = True
    for _ in range(30):
        enqueue("t-single")
    connection.queries_log.clear()
    burst()
    assert Run.objects.filter(status="succeeded").count() == 30
    # Five statements per run (150) would be kept without the worker forgetting them:
    # what is left is at most the last turn's and the stop's (11, or about 20 when the
    # last turn also made its claim under limits: the document pipeline has one).
    assert len(connection.queries_log) < 30
    assert logged.events(logging.WARNING).count("worker_debug") == 1
