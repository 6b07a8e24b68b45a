"""The dashboard's Run now form: a queue and a delay; a delayed run reads "scheduled for"."""

from __future__ import annotations

from html import escape

import pytest

from pipelines.models import Pipeline
from runs.models import Run

pytestmark = pytest.mark.django_db


def test_run_now_with_a_queue_and_a_delay_shows_scheduled_for(op_client, test_pipelines):
    row = Pipeline.objects.get(name="t-single")
    page = op_client.get("/dashboard/pipelines/").content.decode()
    assert f'name="queue" id="queue-{row.id}"' in page and 'name="delay"' in page
    response = op_client.post(
        f"/dashboard/pipelines/{row.id}/run/",
        {"metadata": "", "queue": "documents", "delay": "5m"},
        follow=True,
    )
    run = Run.objects.get()
    assert run.queue == "documents"
    assert 290 < (run.available_at - run.created_at).total_seconds() < 310
    assert "scheduled for" in response.content.decode()
    assert "scheduled for" in op_client.get("/dashboard/runs/").content.decode()


def test_a_run_due_now_is_not_shown_as_scheduled(op_client, test_pipelines):
    row = Pipeline.objects.get(name="t-single")
    op_client.post(f"/dashboard/pipelines/{row.id}/run/", {"metadata": ""})
    assert "scheduled for" not in op_client.get("/dashboard/runs/").content.decode()


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"queue": "no spaces"}, "Queue name 'no spaces' is invalid"),
        ({"delay": "soon"}, "delay 'soon'"),
        ({"delay": "-5"}, "delay '-5'"),
        # more than ten years ahead: beyond timedelta, beyond a database, plain seconds
        ({"delay": "999999999w"}, "delay '999999999w' is too far ahead"),
        ({"delay": "4000000d"}, "delay '4000000d' is too far ahead"),
        ({"delay": "1000000000000"}, "delay '1000000000000' is too far ahead"),
    ],
)
def test_run_now_refuses_a_bad_queue_or_delay_and_queues_nothing(
    op_client, test_pipelines, fields, error
):
    row = Pipeline.objects.get(name="t-single")
    response = op_client.post(f"/dashboard/pipelines/{row.id}/run/", {"metadata": "", **fields})
    assert response.status_code == 400
    assert escape(error) in response.content.decode()
    assert not Run.objects.exists()
