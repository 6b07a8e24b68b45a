"""runs/child.py's `log_entry`: a step's log record as the worker stores it, whatever the
step attached to it."""

from __future__ import annotations

import logging

from orbit.core.redaction import TOO_DEEP
from runs.child import log_entry


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
