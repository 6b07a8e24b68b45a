"""runs/child.py: `log_entry`, a step's log record as the worker stores it, whatever the
step attached to it; and a step's logger, kept by the child from one task to the next."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from multiprocessing import Pipe
from typing import Any

import pytest

from orbit.core.redaction import TOO_DEEP
from pipelines.definition import Pipeline, registry, step
from runs.attempts import StepTask
from runs.child import _PipeHandler, log_entry, run_task


class Unshowable:
    def __repr__(self) -> str:
        raise RuntimeError("no")


def record(**extra: object) -> logging.LogRecord:
    made = logging.LogRecord("orbit.step.p.s", logging.INFO, __file__, 1, "hello %s", ("x",), None)
    made.__dict__.update(extra)
    return made


def test_fields_json_can_hold_are_kept_as_they_are_and_others_by_their_repr() -> None:
    entry = log_entry(record(items=3, nested={"a": [1, "b"]}, when={1, 2}.__class__))
    assert entry["message"] == "hello x"
    assert entry["fields"] == {"items": 3, "nested": {"a": [1, "b"]}, "when": "<class 'set'>"}


def test_a_field_too_deep_to_encode_or_show_says_so_and_the_record_is_kept() -> None:
    deep: object = "leaf"
    for _ in range(5_000):
        deep = {"next": deep}
    entry = log_entry(record(deep=deep, odd=Unshowable(), items=3))
    assert entry["fields"] == {
        "deep": TOO_DEEP,
        "odd": "<Unshowable whose repr failed>",
        "items": 3,
    }
    assert entry["message"] == "hello x"


class Collecting(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


extra_handler = Collecting()


def meddling(ctx: Any) -> str:
    """Logs a line, after adding a handler of its own to its logger on the first task."""
    if ctx.attempt == 1:
        ctx.log.addHandler(extra_handler)
    ctx.log.info("attempt %s", ctx.attempt)
    return "ok"


@pytest.fixture
def meddling_pipeline() -> Iterator[Pipeline]:
    extra_handler.messages.clear()
    made = Pipeline("t-meddling", steps=[step("s", meddling)], register=False)
    registry.register(made)
    yield made
    registry.unregister("t-meddling")


def task(attempt: int) -> StepTask:
    return StepTask(
        run_id="r",
        pipeline="t-meddling",
        definition="t-meddling",
        step="s",
        step_id=1,
        index=0,
        metadata={},
        prev_results={},
        try_number=attempt,
        failures=0,
        timeout=10,
    )


def test_a_step_logger_kept_between_tasks_has_only_the_childs_handler_at_each(
    meddling_pipeline: Pipeline,
) -> None:
    """The child finds a step's logger once and keeps it; a handler the step's code added
    in one task is gone by the next, so each record reaches the worker once, by the pipe."""
    worker_end, child_end = Pipe(duplex=True)
    handler = _PipeHandler(child_end)
    first = run_task(task(1), child_end, handler)
    second = run_task(task(2), child_end, handler)
    assert (first.outcome, second.outcome) == ("succeeded", "succeeded")
    sent = []
    while worker_end.poll():
        sent.append(worker_end.recv())
    assert [(kind, entry["message"]) for kind, entry in sent] == [
        ("log", "attempt 1"),
        ("log", "attempt 2"),
    ]
    assert extra_handler.messages == ["attempt 1"]
    assert logging.getLogger("orbit.step.t-meddling.s").handlers == [handler]
