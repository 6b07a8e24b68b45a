"""Who gets in: staff login everywhere, view permissions for pages, change permissions for
actions. Refused actions change nothing."""

from __future__ import annotations

import pytest

from runs.models import Run, RunStatus
from tests.factories import PipelineFactory, RunFactory

pytestmark = pytest.mark.django_db

PAGES = [
    "/dashboard/",
    "/dashboard/runs/",
    "/dashboard/runs/{run}/",
    "/dashboard/workers/",
    "/dashboard/pipelines/",
    "/admin/",
    "/admin/runs/run/",
    "/admin/runs/run/{run}/change/",
    "/admin/runs/step/",
    "/admin/runs/stepattempt/",
    "/admin/runs/worker/",
    "/admin/pipelines/pipeline/",
]


@pytest.mark.parametrize("page", PAGES)
def test_anonymous_visitors_are_sent_to_the_login_page(client, test_pipelines, page):
    url = page.format(run=RunFactory().id)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")


@pytest.mark.parametrize("page", [p for p in PAGES if p.startswith("/dashboard/")])
def test_a_logged_in_user_who_is_not_staff_is_sent_to_the_login_page(
    client, make_user, test_pipelines, page
):
    client.force_login(make_user("runs.view_run", staff=False))
    response = client.get(page.format(run=RunFactory().id))
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize(
    ("page", "perm"),
    [
        ("/dashboard/", "runs.view_run"),
        ("/dashboard/runs/", "runs.view_run"),
        ("/dashboard/runs/{run}/", "runs.view_run"),
        ("/dashboard/workers/", "runs.view_worker"),
        ("/dashboard/pipelines/", "pipelines.view_pipeline"),
    ],
)
def test_each_page_needs_its_view_permission(client, make_user, test_pipelines, page, perm):
    run = RunFactory()
    client.force_login(make_user())  # staff, no permissions
    assert client.get(page.format(run=run.id)).status_code == 403
    client.force_login(make_user(perm, username="viewer"))
    assert client.get(page.format(run=run.id)).status_code == 200


@pytest.mark.parametrize("action", ["retry", "cancel", "resume"])
def test_a_viewer_cannot_act_on_runs_and_nothing_changes(client, make_user, test_pipelines, action):
    run = RunFactory(status=RunStatus.FAILED)
    client.force_login(make_user("runs.view_run"))
    response = client.post(f"/dashboard/runs/{run.id}/{action}/")
    assert response.status_code == 403
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED


def test_a_viewer_sees_no_action_buttons(client, make_user, test_pipelines):
    run = RunFactory(status=RunStatus.FAILED)
    client.force_login(make_user("runs.view_run", "pipelines.view_pipeline"))
    assert b'name="retry"' not in client.get(f"/dashboard/runs/{run.id}/").content
    page = client.get("/dashboard/pipelines/").content
    assert b"Run now" not in page
    assert b"Disable" not in page


def test_a_viewer_cannot_run_or_switch_pipelines(client, make_user, test_pipelines):
    row = PipelineFactory(name="t-single")
    client.force_login(make_user("pipelines.view_pipeline", "runs.view_run"))
    assert client.post(f"/dashboard/pipelines/{row.id}/run/", {"metadata": "{}"}).status_code == 403
    assert (
        client.post(f"/dashboard/pipelines/{row.id}/enabled/", {"enabled": "0"}).status_code == 403
    )
    row.refresh_from_db()
    assert row.enabled
    assert not Run.objects.exists()


def test_actions_refuse_get(op_client, test_pipelines):
    run = RunFactory(status=RunStatus.FAILED)
    assert op_client.get(f"/dashboard/runs/{run.id}/retry/").status_code == 405


def test_actions_need_the_csrf_token(client, operator, test_pipelines):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(operator)
    run = RunFactory(status=RunStatus.FAILED)
    assert strict.post(f"/dashboard/runs/{run.id}/retry/").status_code == 403
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED


def test_admin_actions_need_the_change_permission(client, make_user, test_pipelines):
    run = RunFactory(status=RunStatus.FAILED)
    client.force_login(make_user("runs.view_run"))
    response = client.get("/admin/runs/run/")
    assert response.status_code == 200
    assert b"retry_selected" not in response.content
    response = client.post(
        "/admin/runs/run/", {"action": "retry_selected", "_selected_action": [str(run.id)]}
    )
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
