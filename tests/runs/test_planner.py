"""The planner: which step a run runs next, from its definition and its step rows alone."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runs.planner import ADDED_STEP_POSITION, Finished, NextStep, Unrunnable, plan

STATUSES = ("pending", "running", "succeeded", "failed")


@pytest.mark.parametrize(
    ("definition", "statuses", "expected"),
    [
        # a new run starts at its first step
        (("a", "b"), {"a": "pending", "b": "pending"}, NextStep("a", 0, exists=True)),
        # resumes at the first step that has not succeeded, whatever comes after it
        (
            ("a", "b", "c"),
            {"a": "succeeded", "b": "failed", "c": "succeeded"},
            NextStep("b", 1, exists=True),
        ),
        # a running step (its worker died) runs again
        (("a", "b"), {"a": "succeeded", "b": "running"}, NextStep("b", 1, exists=True)),
        # a step the definition gained in the middle runs in its place, without a row yet
        (("a", "new", "b"), {"a": "succeeded", "b": "pending"}, NextStep("new", 1, exists=False)),
        # ...and at the end
        (("a", "b", "new"), {"a": "succeeded", "b": "succeeded"}, NextStep("new", 2, exists=False)),
        # steps reordered in code: the definition's order decides
        (("b", "a"), {"a": "pending", "b": "pending"}, NextStep("b", 0, exists=True)),
        # every step done
        (("a", "b"), {"a": "succeeded", "b": "succeeded"}, Finished()),
        # a step removed from code that already ran does not matter
        (("a",), {"a": "succeeded", "gone": "succeeded"}, Finished()),
        # one that has not run means a newer definition made this run: not here
        (("a",), {"a": "pending", "newer": "pending"}, Unrunnable(("newer",))),
    ],
)
def test_the_next_step(definition, statuses, expected):
    assert plan(definition, statuses) == expected


def test_an_unrunnable_plan_says_why():
    assert plan(("a",), {"x": "failed", "b": "pending"}).reason == (
        "its unfinished step(s) 'b', 'x' are not in this process's definition"
    )


def test_a_step_added_later_is_placed_after_every_original_step():
    assert NextStep("new", 3, exists=False).position == ADDED_STEP_POSITION + 3


names = st.text(alphabet="abcdefgh", min_size=1, max_size=3)


@given(
    definition=st.lists(names, min_size=1, max_size=6, unique=True),
    rows=st.dictionaries(names, st.sampled_from(STATUSES), max_size=8),
)
def test_the_plan_follows_the_rule_for_any_definition_and_rows(definition, rows):
    result = plan(definition, rows)
    unknown_unfinished = sorted(
        n for n, s in rows.items() if n not in definition and s != "succeeded"
    )
    if unknown_unfinished:
        assert result == Unrunnable(tuple(unknown_unfinished))
        return
    remaining = [n for n in definition if rows.get(n) != "succeeded"]
    if not remaining:
        assert result == Finished()
        return
    assert isinstance(result, NextStep)
    assert result.name == remaining[0]
    assert definition[result.index] == result.name
    assert result.exists == (result.name in rows)
    # everything before it in the definition has succeeded
    assert all(rows.get(n) == "succeeded" for n in definition[: result.index])
