"""Pipeline definitions (pipelines/definition.py): what a definition may declare."""

from __future__ import annotations

import pytest

from orbit.core.exceptions import DefinitionError
from pipelines import Pipeline, step
from tests import steps


def test_a_definition_declares_the_metadata_its_steps_expect():
    example = {"filePath": "/path/to/receipt.pdf"}
    definition = Pipeline(
        "t-example", steps=[step("noop", steps.noop)], metadata_example=example, register=False
    )
    assert definition.metadata_example == example


@pytest.mark.parametrize(
    ("example", "why"),
    [
        (["filePath"], "a dict, not list"),  # not an object
        ({"when": object()}, "Object of type object is not JSON serializable"),  # not JSON
    ],
)
def test_a_metadata_example_must_be_a_json_object(example, why):
    with pytest.raises(DefinitionError) as error:
        Pipeline(
            "t-bad", steps=[step("noop", steps.noop)], metadata_example=example, register=False
        )
    assert str(error.value) == f"Pipeline 't-bad': metadata_example must be a JSON object ({why})"


def test_a_definition_names_its_default_queue():
    definition = Pipeline(
        "t-queued", steps=[step("noop", steps.noop)], queue="documents", register=False
    )
    assert definition.queue == "documents"


@pytest.mark.parametrize("queue", ["", "no spaces", "-leading", "x" * 65, "tab\there"])
def test_a_queue_that_breaks_the_names_rule_is_refused_with_the_rule(queue):
    with pytest.raises(DefinitionError) as error:
        Pipeline("t-bad", steps=[step("noop", steps.noop)], queue=queue, register=False)
    assert str(error.value).startswith(f"Pipeline 't-bad': Queue name {queue!r} is invalid: ")
