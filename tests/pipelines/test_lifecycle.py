from __future__ import annotations

import pytest

from orbit.core.exceptions import DefinitionError, InvalidSchedule, OrbitError
from pipelines.lifecycle import PipelineConflict, pipeline_create, pipeline_delete, pipeline_update
from pipelines.models import Pipeline
from runs import enqueue

pytestmark = pytest.mark.django_db


def test_create_takes_the_definitions_description_by_default(test_pipelines):
    row = pipeline_create(name="copy", definition="t-three")
    assert (row.definition, row.description, row.enabled) == ("t-three", "", True)


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"name": "x", "definition": "nope"}, DefinitionError, "definition"),  # not in code
        ({"name": "-x", "definition": "t-single"}, DefinitionError, "name"),  # bad name
        ({"name": "x", "definition": "t-single", "schedule": "* *"}, InvalidSchedule, "schedule"),
        (
            {"name": "x", "definition": "t-single", "default_metadata": [1]},
            OrbitError,
            "default_metadata",
        ),
    ],
)
def test_create_refuses_naming_the_field(test_pipelines, kwargs, error, field):
    with pytest.raises(error) as caught:
        pipeline_create(**kwargs)
    assert caught.value.context["field"] == field
    assert not Pipeline.objects.filter(name="x").exists()


def test_update_refuses_fields_it_may_not_change(test_pipelines):
    row = Pipeline.objects.get(name="t-single")
    with pytest.raises(OrbitError, match="definition cannot be changed; changeable: name, "):
        pipeline_update(row, definition="t-three")


def test_update_with_nothing_changes_nothing(test_pipelines):
    row = Pipeline.objects.get(name="t-single")
    before = row.updated_at
    assert pipeline_update(row).updated_at == before


def test_delete_refuses_while_runs_exist(test_pipelines):
    enqueue("t-single")
    row = Pipeline.objects.get(name="t-single")
    with pytest.raises(PipelineConflict, match="has 1 run; disable it instead"):
        pipeline_delete(row)
    assert Pipeline.objects.filter(id=row.id).exists()
