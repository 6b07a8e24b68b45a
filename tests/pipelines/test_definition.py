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
