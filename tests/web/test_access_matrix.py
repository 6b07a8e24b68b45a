"""Every state-changing action in the admin, the dashboard and the API, tried by an
anonymous caller, a viewer, an operator and an admin (orbit/core/roles.py).

An allowed action changes what it should and leaves exactly one audit event naming the
caller and the place it came from; a refused one changes nothing and leaves no event.
Users get their role from the groups the migration created, as in production.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from orbit.core.models import ApiToken, AuditEvent
from orbit.core.roles import ROLES, assign_role
from orbit.core.tokens import create_token
from pipelines.models import Pipeline
from runs.models import Run, RunStatus
from tests.factories import PipelineFactory, RunFactory

pytestmark = pytest.mark.django_db

CALLERS = ["anonymous", "viewer", "operator", "admin"]
RANK = {name: rank for rank, name in enumerate(CALLERS)}


@dataclass
class World:
    """The rows the actions act on, each in the state its action needs."""

    failed: Run  # retry
    pending: Run  # cancel
    interrupted: Run  # resume: running, lease expired
    pipeline: Pipeline  # run now, disable, edit
    disabled: Pipeline  # enable
    spare: Pipeline  # delete: no runs
    token: ApiToken  # revoke


@pytest.fixture
def world(test_pipelines) -> World:
    pipeline = Pipeline.objects.get(name="t-single")
    bot = User.objects.create_user("bot")
    world = World(
        failed=RunFactory(pipeline=pipeline, status=RunStatus.FAILED),
        pending=RunFactory(pipeline=pipeline, status=RunStatus.PENDING),
        interrupted=RunFactory(
            pipeline=pipeline,
            status=RunStatus.RUNNING,
            lease_expires_at=timezone.now() - timedelta(minutes=5),
        ),
        pipeline=pipeline,
        disabled=PipelineFactory(name="t-single-off", definition="t-single", enabled=False),
        spare=PipelineFactory(name="t-single-spare", definition="t-single"),
        token=create_token(bot, "bot-token")[0],
    )
    AuditEvent.objects.all().delete()  # setting the scene is not under test
    return world


@dataclass
class Caller:
    name: str
    client: Client
    user: User | None


@pytest.fixture
def caller(db) -> Callable[[str, str], Caller]:
    """A client for one role: logged in for the admin and dashboard, a token for the API."""

    def make(role: str, channel: str) -> Caller:
        if role == "anonymous":
            return Caller(role, Client(), None)
        user = User.objects.create_user(f"{role}-user", password="pw")
        assign_role(user, ROLES[role])
        if channel == "api":
            _, key = create_token(user, "tests")
            AuditEvent.objects.all().delete()  # the token's own creation is not under test
            return Caller(role, Client(headers={"Authorization": f"Bearer {key}"}), user)
        client = Client()
        client.force_login(user)
        return Caller(role, client, user)

    return make


@dataclass(frozen=True)
class Action:
    """One action: who may do it, how to do it, what it changes, what it records."""

    id: str
    channel: str  # admin, dashboard, api
    least: str  # the least role allowed
    perform: Callable[[Caller, World], Any]
    effect: Callable[[World], Any]  # differs before and after exactly when the action ran
    audited: str
    ok: int  # the status of an allowed request
    refused: int = 403  # the status for a logged-in caller without the permission


def _admin_action(url: str, name: str, target: Callable[[World], Any], **extra: str) -> Any:
    return lambda c, w: c.client.post(
        url, {"action": name, "_selected_action": [str(target(w).pk)], **extra}
    )


def _status(run: Callable[[World], Run]) -> Callable[[World], Any]:
    return lambda w: Run.objects.get(id=run(w).id).status


def _runs_of(pipeline: Callable[[World], Pipeline]) -> Callable[[World], Any]:
    return lambda w: Run.objects.filter(pipeline=pipeline(w)).count()


def _enabled(pipeline: Callable[[World], Pipeline]) -> Callable[[World], Any]:
    return lambda w: Pipeline.objects.get(id=pipeline(w).id).enabled


def _description(w: World) -> Any:
    return Pipeline.objects.get(id=w.pipeline.id).description


def _spare_exists(w: World) -> Any:
    return Pipeline.objects.filter(id=w.spare.id).exists()


def _pipeline_names(w: World) -> Any:
    return sorted(Pipeline.objects.values_list("name", flat=True))


def _tokens(w: World) -> Any:
    return ApiToken.objects.filter(name="made-here").count()


def _token_revoked(w: World) -> Any:
    return ApiToken.objects.get(id=w.token.id).revoked_at is not None


ADMIN_RUNS = "/admin/runs/run/"
ADMIN_PIPELINES = "/admin/pipelines/pipeline/"
# Admin actions a role lacks are not offered; posting one re-renders the list (200).
ACTIONS = [
    # --- admin ------------------------------------------------------------------------
    Action(
        "admin-retry",
        "admin",
        "operator",
        _admin_action(ADMIN_RUNS, "retry_selected", lambda w: w.failed),
        _status(lambda w: w.failed),
        "run.retried",
        ok=302,
        refused=200,
    ),
    Action(
        "admin-cancel",
        "admin",
        "operator",
        _admin_action(ADMIN_RUNS, "cancel_selected", lambda w: w.pending),
        _status(lambda w: w.pending),
        "run.cancelled",
        ok=302,
        refused=200,
    ),
    Action(
        "admin-resume",
        "admin",
        "operator",
        _admin_action(ADMIN_RUNS, "resume_selected", lambda w: w.interrupted),
        _status(lambda w: w.interrupted),
        "run.resumed",
        ok=302,
        refused=200,
    ),
    Action(
        "admin-run-now",
        "admin",
        "operator",
        _admin_action(
            ADMIN_PIPELINES, "run_now_action", lambda w: w.pipeline, apply="1", metadata=""
        ),
        _runs_of(lambda w: w.pipeline),
        "run.created",
        ok=302,
        refused=200,
    ),
    Action(
        "admin-disable",
        "admin",
        "operator",
        _admin_action(ADMIN_PIPELINES, "disable_selected", lambda w: w.pipeline),
        _enabled(lambda w: w.pipeline),
        "pipeline.disabled",
        ok=302,
        refused=200,
    ),
    Action(
        "admin-enable",
        "admin",
        "operator",
        _admin_action(ADMIN_PIPELINES, "enable_selected", lambda w: w.disabled),
        _enabled(lambda w: w.disabled),
        "pipeline.enabled",
        ok=302,
        refused=200,
    ),
    Action(
        "admin-add-pipeline",
        "admin",
        "admin",
        lambda c, w: c.client.post(
            f"{ADMIN_PIPELINES}add/",
            {
                "name": "made-here",
                "definition": "t-single",
                "description": "",
                "schedule": "",
                "default_metadata": "{}",
                "enabled": "on",
            },
        ),
        _pipeline_names,
        "pipeline.created",
        ok=302,
    ),
    Action(
        "admin-edit-pipeline",
        "admin",
        "admin",
        lambda c, w: c.client.post(
            f"{ADMIN_PIPELINES}{w.pipeline.id}/change/",
            {
                "description": "edited",
                "schedule": "",
                "default_metadata": "{}",
                "enabled": "on",
            },
        ),
        _description,
        "pipeline.changed",
        ok=302,
    ),
    Action(
        "admin-delete-pipeline",
        "admin",
        "admin",
        lambda c, w: c.client.post(f"{ADMIN_PIPELINES}{w.spare.id}/delete/", {"post": "yes"}),
        _spare_exists,
        "pipeline.deleted",
        ok=302,
    ),
    Action(
        "admin-add-token",
        "admin",
        "admin",
        lambda c, w: c.client.post(
            "/admin/orbit/apitoken/add/",
            {"user": str(c.user.pk if c.user else w.token.user_id), "name": "made-here"},
        ),
        _tokens,
        "token.created",
        ok=302,
    ),
    Action(
        "admin-revoke-token",
        "admin",
        "admin",
        _admin_action("/admin/orbit/apitoken/", "revoke", lambda w: w.token),
        _token_revoked,
        "token.revoked",
        ok=302,
        refused=200,
    ),
    # --- dashboard --------------------------------------------------------------------
    Action(
        "dashboard-retry",
        "dashboard",
        "operator",
        lambda c, w: c.client.post(f"/dashboard/runs/{w.failed.id}/retry/"),
        _status(lambda w: w.failed),
        "run.retried",
        ok=302,
    ),
    Action(
        "dashboard-cancel",
        "dashboard",
        "operator",
        lambda c, w: c.client.post(f"/dashboard/runs/{w.pending.id}/cancel/"),
        _status(lambda w: w.pending),
        "run.cancelled",
        ok=302,
    ),
    Action(
        "dashboard-resume",
        "dashboard",
        "operator",
        lambda c, w: c.client.post(f"/dashboard/runs/{w.interrupted.id}/resume/"),
        _status(lambda w: w.interrupted),
        "run.resumed",
        ok=302,
    ),
    Action(
        "dashboard-run-now",
        "dashboard",
        "operator",
        lambda c, w: c.client.post(
            f"/dashboard/pipelines/{w.pipeline.id}/run/", {"metadata": '{"a": 1}'}
        ),
        _runs_of(lambda w: w.pipeline),
        "run.created",
        ok=302,
    ),
    Action(
        "dashboard-disable",
        "dashboard",
        "operator",
        lambda c, w: c.client.post(
            f"/dashboard/pipelines/{w.pipeline.id}/enabled/", {"enabled": "0"}
        ),
        _enabled(lambda w: w.pipeline),
        "pipeline.disabled",
        ok=302,
    ),
    Action(
        "dashboard-enable",
        "dashboard",
        "operator",
        lambda c, w: c.client.post(
            f"/dashboard/pipelines/{w.disabled.id}/enabled/", {"enabled": "1"}
        ),
        _enabled(lambda w: w.disabled),
        "pipeline.enabled",
        ok=302,
    ),
    # --- API --------------------------------------------------------------------------
    Action(
        "api-retry",
        "api",
        "operator",
        lambda c, w: c.client.post(f"/api/runs/{w.failed.id}/retry"),
        _status(lambda w: w.failed),
        "run.retried",
        ok=200,
    ),
    Action(
        "api-cancel",
        "api",
        "operator",
        lambda c, w: c.client.post(f"/api/runs/{w.pending.id}/cancel"),
        _status(lambda w: w.pending),
        "run.cancelled",
        ok=200,
    ),
    Action(
        "api-resume",
        "api",
        "operator",
        lambda c, w: c.client.post(f"/api/runs/{w.interrupted.id}/resume"),
        _status(lambda w: w.interrupted),
        "run.resumed",
        ok=200,
    ),
    Action(
        "api-run",
        "api",
        "operator",
        lambda c, w: c.client.post(
            f"/api/pipelines/{w.pipeline.id}/runs", {}, content_type="application/json"
        ),
        _runs_of(lambda w: w.pipeline),
        "run.created",
        ok=201,
    ),
    Action(
        "api-disable",
        "api",
        "operator",
        lambda c, w: c.client.post(f"/api/pipelines/{w.pipeline.id}/disable"),
        _enabled(lambda w: w.pipeline),
        "pipeline.disabled",
        ok=200,
    ),
    Action(
        "api-enable",
        "api",
        "operator",
        lambda c, w: c.client.post(f"/api/pipelines/{w.disabled.id}/enable"),
        _enabled(lambda w: w.disabled),
        "pipeline.enabled",
        ok=200,
    ),
    Action(
        "api-create-pipeline",
        "api",
        "admin",
        lambda c, w: c.client.post(
            "/api/pipelines",
            {"name": "made-here", "definition": "t-single"},
            content_type="application/json",
        ),
        _pipeline_names,
        "pipeline.created",
        ok=201,
    ),
    Action(
        "api-edit-pipeline",
        "api",
        "admin",
        lambda c, w: c.client.patch(
            f"/api/pipelines/{w.pipeline.id}",
            {"description": "edited"},
            content_type="application/json",
        ),
        _description,
        "pipeline.changed",
        ok=200,
    ),
    Action(
        "api-delete-pipeline",
        "api",
        "admin",
        lambda c, w: c.client.delete(f"/api/pipelines/{w.spare.id}"),
        _spare_exists,
        "pipeline.deleted",
        ok=204,
    ),
]
SOURCES = {"admin": "admin", "dashboard": "dashboard", "api": "api"}


def _anonymous_status(action: Action) -> int:
    """The admin and dashboard send anonymous visitors to the login page; the API says 401."""
    return 401 if action.channel == "api" else 302


@pytest.mark.parametrize("role", CALLERS)
@pytest.mark.parametrize("action", ACTIONS, ids=[a.id for a in ACTIONS])
def test_each_role_may_do_exactly_its_actions_and_each_is_audited(
    action: Action, role: str, world: World, caller: Callable[[str, str], Caller]
) -> None:
    who = caller(role, action.channel)
    before = action.effect(world)

    response = action.perform(who, world)

    events = list(AuditEvent.objects.all())
    if RANK[role] >= RANK[action.least]:
        assert response.status_code == action.ok, response.content[:500]
        assert action.effect(world) != before
        assert [(e.action, e.source, e.actor, e.user) for e in events] == [
            (action.audited, SOURCES[action.channel], who.name + "-user", who.user)
        ]
        assert events[0].ip_address == "127.0.0.1"
    else:
        expected = _anonymous_status(action) if role == "anonymous" else action.refused
        assert response.status_code == expected
        assert action.effect(world) == before
        assert events == []


@pytest.mark.parametrize("role", ["viewer", "operator"])
@pytest.mark.parametrize(
    ("page", "action"),
    [
        (ADMIN_RUNS, "retry_selected"),  # operator
        (ADMIN_PIPELINES, "disable_selected"),  # operator
        ("/admin/orbit/apitoken/", "revoke"),  # admin
    ],
)
def test_the_admin_offers_only_the_actions_a_role_may_take(
    role: str, page: str, action: str, world: World, caller: Callable[[str, str], Caller]
) -> None:
    least = "admin" if action == "revoke" else "operator"
    html = caller(role, "admin").client.get(page).content.decode()
    assert (f'value="{action}"' in html) is (RANK[role] >= RANK[least])


READ_PAGES = [
    "/dashboard/",
    "/dashboard/runs/",
    "/dashboard/runs/{run}/",
    "/dashboard/workers/",
    "/dashboard/pipelines/",
    "/admin/runs/run/",
    "/admin/runs/run/{run}/change/",
    "/admin/runs/step/",
    "/admin/runs/stepattempt/",
    "/admin/runs/worker/",
    "/admin/pipelines/pipeline/",
    "/admin/pipelines/pipeline/{pipeline}/change/",
    "/admin/orbit/apitoken/",
    "/admin/orbit/auditevent/",
    "/admin/services/veryfidocument/",
]
READ_API = [
    "/api/runs",
    "/api/runs/{run}",
    "/api/steps",
    "/api/pipelines",
    "/api/pipelines/{pipeline}",
    "/api/pipelines/{pipeline}/runs",
    "/api/worker/stats",
    "/api/worker/health",
    "/api/worker/metrics",
    "/api/worker/recent-runs",
]


@pytest.mark.parametrize("role", CALLERS)
@pytest.mark.parametrize("page", READ_PAGES + READ_API)
def test_every_role_sees_everything_and_anonymous_callers_nothing(
    role: str, page: str, world: World, caller: Callable[[str, str], Caller]
) -> None:
    channel = "api" if page.startswith("/api/") else "admin"
    url = page.format(run=world.failed.id, pipeline=world.pipeline.id)
    response = caller(role, channel).client.get(url)
    if role == "anonymous":
        assert response.status_code == (401 if channel == "api" else 302)
    else:
        assert response.status_code == 200
