"""Code or operator (pipelines/sources.py): one rule for a row's schedule and its
max_concurrency, through pipeline_update and the sync, as operators and deploys meet it."""

from __future__ import annotations

import pytest

from orbit.core.exceptions import DefinitionError, OrbitError
from pipelines.definition import Pipeline as Definition
from pipelines.definition import registry, step
from pipelines.lifecycle import pipeline_update
from pipelines.models import Pipeline
from pipelines.sync import sync_pipelines
from tests import steps

pytestmark = pytest.mark.django_db

SETTINGS = [
    # field, the code's first value, the next deploy's value, an operator's value
    pytest.param("schedule", "@hourly", "@daily", "0 6 * * *", id="schedule"),
    pytest.param("max_concurrency", 2, 5, 3, id="max_concurrency"),
]


@pytest.fixture
def define():
    """Define `t-src` in code with one setting (again, to change it), unregistered at the end."""

    def define_with(**setting: object) -> Definition:
        registry.unregister("t-src")
        return Definition("t-src", steps=[step("noop", steps.noop)], **setting)  # type: ignore[arg-type]

    yield define_with
    registry.unregister("t-src")


def values(field: str) -> tuple[object, str]:
    row = Pipeline.objects.get(name="t-src")
    return getattr(row, field), getattr(row, f"{field}_source")


@pytest.mark.parametrize(("field", "first", "deployed", "operators"), SETTINGS)
def test_a_setting_follows_its_code_until_an_operator_changes_it(
    define, field, first, deployed, operators
):
    define(**{field: first})
    sync_pipelines()
    assert values(field) == (first, "code")
    define(**{field: deployed})
    sync_pipelines()
    assert values(field) == (deployed, "code")  # a deploy's value is in force
    pipeline_update(Pipeline.objects.get(name="t-src"), **{field: operators})
    define(**{field: first})
    sync_pipelines()
    assert values(field) == (operators, "operator")  # the operator's value outlives a deploy
    pipeline_update(Pipeline.objects.get(name="t-src"), **{f"{field}_source": "code"})
    assert values(field) == (first, "code")  # handed back: the code's value at once


@pytest.mark.parametrize(("field", "first", "deployed", "operators"), SETTINGS)
def test_an_unknown_source_is_refused_with_the_choices(define, field, first, deployed, operators):
    define(**{field: first})
    sync_pipelines()
    with pytest.raises(OrbitError) as refused:
        pipeline_update(Pipeline.objects.get(name="t-src"), **{f"{field}_source": "ops"})
    assert str(refused.value) == f"{field}_source must be one of: code, operator"
    assert refused.value.context["field"] == f"{field}_source"
    assert values(field) == (first, "code")


@pytest.mark.parametrize(("field", "first", "deployed", "operators"), SETTINGS)
def test_a_setting_of_a_definition_gone_from_code_cannot_follow_it(
    define, field, first, deployed, operators
):
    row = Pipeline.objects.create(
        name="scratch",
        definition="scratch-gone",
        **{field: operators, f"{field}_source": "operator"},
    )
    with pytest.raises(DefinitionError) as refused:
        pipeline_update(row, **{f"{field}_source": "code"})
    assert str(refused.value) == (
        "Pipeline 'scratch' runs definition 'scratch-gone', which is not in code: "
        f"its {field} cannot follow the code"
    )
    assert refused.value.context["field"] == f"{field}_source"


@pytest.mark.parametrize(("field", "first", "deployed", "operators"), SETTINGS)
def test_the_codes_own_value_given_by_an_operator_stays_the_codes(
    define, field, first, deployed, operators
):
    define(**{field: first})
    sync_pipelines()
    pipeline_update(Pipeline.objects.get(name="t-src"), **{field: first})
    assert values(field) == (first, "code")
