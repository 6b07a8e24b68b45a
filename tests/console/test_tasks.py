"""A task function in the console: a pipeline like any other, named by its path."""

from __future__ import annotations

import pytest

from tests import tasks_for_tests as t

pytestmark = pytest.mark.django_db


def test_the_console_shows_a_task_pipeline_and_its_run(op_client, test_pipelines):
    result = t.add.enqueue(1, 2)
    assert "tests.tasks_for_tests.add" in op_client.get("/dashboard/pipelines/").content.decode()
    page = op_client.get(f"/dashboard/runs/{result.id}/").content.decode()
    assert "tests.tasks_for_tests.add" in page
