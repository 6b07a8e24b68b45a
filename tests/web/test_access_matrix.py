"""Every state-changing action in the admin, the dashboard and the API, tried by an
anonymous caller, a viewer, an operator and an admin (orbit/core/roles.py).

An allowed action changes what it should and leaves exactly one audit event naming the
caller and the place it came from; a refused one changes nothing and leaves no event.
Users get their role from the groups the migration created, as in production.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import JSONField, Model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from orbit.core.models import ApiToken, AuditEvent
from orbit.core.roles import ROLES, assign_role
from orbit.core.tokens import create_token
from orbit.web.ratelimit import limiter
from pipelines.models import Pipeline
from runs.models import Run, RunStatus, StepLog, Webhook, WebhookDelivery, Worker
from services.models import VeryfiDocument
from tests.factories import PipelineFactory, RunFactory, StepFactory, WorkerFactory

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
    documents: Pipeline  # run now with a file
    dead: Worker  # forget
    gone: Pipeline  # archive: its definition is not in code
    archived: Pipeline  # unarchive


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
        documents=Pipeline.objects.get(name="document-processing"),
        dead=WorkerFactory(state="running", last_heartbeat=timezone.now() - timedelta(hours=1)),
        gone=PipelineFactory(name="scratch", definition="scratch-gone"),
        archived=PipelineFactory(
            name="scratch-old",
            definition="scratch-gone",
            archived_at=timezone.now(),
            archived_by="someone",
        ),
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


def _upload() -> SimpleUploadedFile:
    return SimpleUploadedFile("scan.pdf", b"%PDF-1.4 scan", "application/pdf")


def _admin_action(url: str, name: str, target: Callable[[World], Any], **extra: str) -> Any:
    return lambda c, w: c.client.post(
        url, {"action": name, "_selected_action": [str(target(w).pk)], "confirmed": "yes", **extra}
    )


def _status(run: Callable[[World], Run]) -> Callable[[World], Any]:
    return lambda w: Run.objects.get(id=run(w).id).status


def _runs_of(pipeline: Callable[[World], Pipeline]) -> Callable[[World], Any]:
    return lambda w: Run.objects.filter(pipeline=pipeline(w)).count()


def _enabled(pipeline: Callable[[World], Pipeline]) -> Callable[[World], Any]:
    return lambda w: Pipeline.objects.get(id=pipeline(w).id).enabled


def _archived(pipeline: Callable[[World], Pipeline]) -> Callable[[World], Any]:
    return lambda w: Pipeline.objects.get(id=pipeline(w).id).archived_at is not None


def _reruns_of(run: Callable[[World], Run]) -> Callable[[World], Any]:
    return lambda w: Run.objects.filter(rerun_of=run(w)).count()


def _forgotten(w: World) -> Any:
    return Worker.objects.get(id=w.dead.id).forgotten_at is not None


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
        "admin-forget-worker",
        "admin",
        "operator",
        _admin_action("/admin/runs/worker/", "forget_selected", lambda w: w.dead),
        _forgotten,
        "worker.forgotten",
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
        "admin-archive",
        "admin",
        "operator",
        _admin_action(ADMIN_PIPELINES, "archive_selected", lambda w: w.gone),
        _archived(lambda w: w.gone),
        "pipeline.archived",
        ok=302,
        refused=200,
    ),
    Action(
        "admin-unarchive",
        "admin",
        "operator",
        _admin_action(ADMIN_PIPELINES, "unarchive_selected", lambda w: w.archived),
        _archived(lambda w: w.archived),
        "pipeline.unarchived",
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
        ok=200,  # the page that shows the key, once
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
        "dashboard-rerun",
        "dashboard",
        "operator",
        lambda c, w: c.client.post(
            f"/dashboard/runs/{w.failed.id}/rerun/", {"metadata": '{"a": 2}'}
        ),
        _reruns_of(lambda w: w.failed),
        "run.rerun",
        ok=302,
    ),
    Action(
        "dashboard-bulk-cancel",
        "dashboard",
        "operator",
        lambda c, w: c.client.post(
            "/dashboard/runs/bulk/", {"action": "cancel", "run": [str(w.pending.id)]}
        ),
        _status(lambda w: w.pending),
        "run.cancelled",
        ok=302,
    ),
    Action(
        "dashboard-bulk-retry-failed",
        "dashboard",
        "operator",
        lambda c, w: c.client.post("/dashboard/runs/bulk/", {"action": "retry-failed"}),
        _status(lambda w: w.failed),
        "run.retried",
        ok=302,
    ),
    Action(
        "dashboard-forget-worker",
        "dashboard",
        "operator",
        lambda c, w: c.client.post(f"/dashboard/workers/{w.dead.id}/forget/"),
        _forgotten,
        "worker.forgotten",
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
        "dashboard-run-now-with-a-file",
        "dashboard",
        "operator",
        lambda c, w: c.client.post(
            f"/dashboard/pipelines/{w.documents.id}/run/",
            {"metadata": "", "document": _upload()},
        ),
        _runs_of(lambda w: w.documents),
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
    Action(
        "dashboard-archive",
        "dashboard",
        "operator",
        lambda c, w: c.client.post(
            f"/dashboard/pipelines/{w.gone.id}/archived/", {"archived": "1"}
        ),
        _archived(lambda w: w.gone),
        "pipeline.archived",
        ok=302,
    ),
    Action(
        "dashboard-unarchive",
        "dashboard",
        "operator",
        lambda c, w: c.client.post(
            f"/dashboard/pipelines/{w.archived.id}/archived/", {"archived": "0"}
        ),
        _archived(lambda w: w.archived),
        "pipeline.unarchived",
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
        "api-run-upload",
        "api",
        "operator",
        lambda c, w: c.client.post(
            f"/api/pipelines/{w.documents.id}/runs/upload", {"file": _upload()}
        ),
        _runs_of(lambda w: w.documents),
        "run.created",
        ok=201,
    ),
    Action(
        "api-rerun",
        "api",
        "operator",
        lambda c, w: c.client.post(
            f"/api/runs/{w.failed.id}/rerun",
            {"metadata": {"a": 2}},
            content_type="application/json",
        ),
        _reruns_of(lambda w: w.failed),
        "run.rerun",
        ok=201,
    ),
    Action(
        "api-forget-worker",
        "api",
        "operator",
        lambda c, w: c.client.post(f"/api/worker/workers/{w.dead.id}/forget"),
        _forgotten,
        "worker.forgotten",
        ok=200,
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
        "api-archive",
        "api",
        "operator",
        lambda c, w: c.client.post(f"/api/pipelines/{w.gone.id}/archive"),
        _archived(lambda w: w.gone),
        "pipeline.archived",
        ok=200,
    ),
    Action(
        "api-unarchive",
        "api",
        "operator",
        lambda c, w: c.client.post(f"/api/pipelines/{w.archived.id}/unarchive"),
        _archived(lambda w: w.archived),
        "pipeline.unarchived",
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
        (ADMIN_PIPELINES, "archive_selected"),  # operator
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


# --- Admin lookups: each admin filters only by what it lists ---------------------------------

#: Every admin page there is, Orbit's and Django's own (users, groups), by model.
ADMINS = sorted(admin.site._registry, key=lambda model: model._meta.label_lower)
ADMIN_FIELDS = [
    (model, field.name)
    for model in ADMINS
    for field in model._meta.concrete_fields
    if not field.primary_key
]


def _changelist(model: type[Model]) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


@pytest.fixture
def superuser_client(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw"))
    return client


@pytest.fixture
def secrets_stored(world: World) -> dict[str, Any]:
    """A secret in every kind of stored value that redaction masks."""
    run = world.failed
    run.metadata = {"api_key": "sk-live-4242", "note": "hello"}
    run.save(update_fields=["metadata"])
    step = StepFactory(run=run, name="fetch", result={"token": "sk-live-4242"})
    StepLog.objects.create(
        run=run,
        step=step,
        attempt=1,
        sequence=0,
        time=timezone.now(),
        level="INFO",
        message="password=sk-live-4242",
        fields={"secret": "sk-live-4242"},
    )
    world.pipeline.default_metadata = {"password": "sk-live-4242"}
    world.pipeline.save(update_fields=["default_metadata"])
    VeryfiDocument.objects.create(
        veryfi_id=7, run=run, response={"api_key": "sk-live-4242"}, vendor_name="Cafe"
    )
    hook = Webhook.objects.create(
        name="pager", url="https://hooks.example.com/", events=["run_failed"], secret="sk-live-4242"
    )
    WebhookDelivery.objects.create(endpoint=hook, event="run_failed", run_id=run.id, payload={})
    return {"secret": "sk-live-4242", "token_hash": world.token.key_hash}


@pytest.mark.parametrize(
    ("model", "field"), ADMIN_FIELDS, ids=[f"{m._meta.label_lower}.{f}" for m, f in ADMIN_FIELDS]
)
def test_no_admin_filters_by_a_field_it_does_not_list(
    model: type[Model], field: str, superuser_client: Client
) -> None:
    """`?field__startswith=x` on any field, JSON key paths included: 400, never a 500."""
    url = _changelist(model)
    for lookup in (f"{field}__startswith", f"{field}__key__startswith", f"{field}__gt"):
        response = superuser_client.get(url, {lookup: "a"})
        assert response.status_code == 400, (lookup, response.status_code)


#: Each admin's way to read a stored secret one character at a time, if lookups were open.
ORACLES = [
    ("runs.run", "metadata__api_key__startswith", "sk-l"),
    ("runs.step", "result__token__startswith", "sk-l"),
    ("runs.step", "logs__0__fields__secret__startswith", "sk-l"),
    ("runs.stepattempt", "step__result__token__startswith", "sk-l"),
    ("runs.worker", "runs__metadata__api_key__startswith", "sk-l"),
    ("pipelines.pipeline", "default_metadata__password__startswith", "sk-l"),
    ("services.veryfidocument", "response__api_key__startswith", "sk-l"),
    ("services.veryfidocument", "run__metadata__api_key__startswith", "sk-l"),
    ("orbit.apitoken", "key_hash__startswith", "{token_hash}"),
    ("orbit.auditevent", "user__password__startswith", "md5"),
    ("auth.user", "password__startswith", "md5"),
    ("auth.user", "api_tokens__key_hash__startswith", "{token_hash}"),
    ("auth.group", "user__password__startswith", "md5"),
    ("runs.webhook", "secret__startswith", "sk-l"),
    ("runs.webhookdelivery", "endpoint__secret__startswith", "sk-l"),
]
#: Admins only: a viewer gets 403 there (tests/console/test_admin_webhooks.py).
ADMINS_ONLY = ("auth.", "runs.webhook")


#: Superusers see every admin; viewers every one but users and groups (not an Orbit role's).
ORACLE_CASES = [
    (role, *oracle)
    for role in ("viewer", "superuser")
    for oracle in ORACLES
    if role == "superuser" or not oracle[0].startswith(ADMINS_ONLY)
]


@pytest.mark.parametrize(("role", "label", "lookup", "prefix"), ORACLE_CASES)
def test_the_one_character_oracle_is_gone_on_every_admin(
    role: str,
    label: str,
    lookup: str,
    prefix: str,
    secrets_stored: dict[str, Any],
    superuser_client: Client,
    caller: Callable[[str, str], Caller],
) -> None:
    """The right prefix and a wrong one get the same answer: a 400 that tells nothing."""
    model = apps.get_model(label)
    client = superuser_client if role == "superuser" else caller("viewer", "admin").client
    right = prefix.format(token_hash=secrets_stored["token_hash"][:4])
    answers = [client.get(_changelist(model), {lookup: p}) for p in (right, "zzzz")]
    assert [a.status_code for a in answers] == [400, 400]
    assert answers[0].content == answers[1].content


#: Admins of models that hold nothing secret and relate to nothing that does.
NOTHING_SECRET = {"runs.queuepause"}  # a queue's name, who paused it, when and why


def test_every_admin_covers_the_models_with_secrets() -> None:
    covered = {label for label, _, _ in ORACLES} | NOTHING_SECRET
    assert covered == {m._meta.label_lower for m in ADMINS}


#: A date hierarchy's drill-down lookup in a changelist query (`?created_at__month=12`).
DATE_LOOKUP = re.compile(r"__(year|month|day)=")


@pytest.mark.parametrize("model", ADMINS, ids=[m._meta.label_lower for m in ADMINS])
def test_every_filter_an_admin_lists_still_works(
    model: type[Model], secrets_stored: dict[str, Any], superuser_client: Client
) -> None:
    """Each link in the filter sidebar and the date drill-down answers 200: every link
    on the list, and on each page a date link leads to, its date links one level down.
    (Following every link of every filtered page asked for each pair of filters, tens of
    thousands of pages in all for the run admin, and said no more about the drill-down.)"""
    url = _changelist(model)
    page = superuser_client.get(url)
    assert page.status_code == 200
    links = {html.unescape(link) for link in re.findall(r'href="(\?[^"]*)"', page.content.decode())}
    seen = set(links)
    for query in sorted(links):
        response = superuser_client.get(url + query)
        assert response.status_code == 200, (query, response.status_code)
        if not DATE_LOOKUP.search(query):
            continue
        # one level down the date hierarchy
        for deeper in re.findall(r'href="(\?[^"]*)"', response.content.decode()):
            deeper_query = html.unescape(deeper)
            if deeper_query in seen or not DATE_LOOKUP.search(deeper_query):
                continue
            seen.add(deeper_query)
            assert superuser_client.get(url + deeper_query).status_code == 200, deeper_query


@pytest.mark.parametrize("model", ADMINS, ids=[m._meta.label_lower for m in ADMINS])
def test_no_admin_searches_a_value_redaction_masks(model: type[Model]) -> None:
    """Search fields are plain columns, never JSON (metadata, results, logs, answers) or
    hashes; the run search, written by hand, takes only a whole run id (below)."""
    model_admin = admin.site._registry[model]
    for name in model_admin.search_fields:
        field = get_fields_from_path(model, name.lstrip("=^@"))[-1]
        assert not isinstance(field, JSONField), name
        assert field.name not in ("key_hash", "password"), name


@pytest.mark.parametrize(
    ("url", "term"),
    [
        (ADMIN_RUNS, "sk-live"),  # the secret in the metadata
        (ADMIN_RUNS, "hello"),  # the metadata is not searched at all (a full scan)
        ("/admin/runs/step/", "sk-live"),
        (ADMIN_PIPELINES, "sk-live"),
        ("/admin/services/veryfidocument/", "sk-live"),
    ],
)
def test_searching_for_a_secret_finds_nothing(
    url: str, term: str, secrets_stored: dict[str, Any], superuser_client: Client
) -> None:
    response = superuser_client.get(url, {"q": term})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 0


def test_the_run_search_finds_a_whole_run_id(world: World, superuser_client: Client) -> None:
    response = superuser_client.get(ADMIN_RUNS, {"q": str(world.failed.id)})
    assert [r.id for r in response.context["cl"].result_list] == [world.failed.id]


@pytest.mark.parametrize("model", ADMINS, ids=[m._meta.label_lower for m in ADMINS])
def test_a_nul_byte_in_a_search_or_filter_is_a_400(
    model: type[Model], superuser_client: Client
) -> None:
    url = _changelist(model)
    assert superuser_client.get(url, {"q": "a\x00b"}).status_code == 400
    model_admin = admin.site._registry[model]
    for item in model_admin.list_filter:
        if isinstance(item, str):
            response = superuser_client.get(url, {f"{item}__exact": "\x00"})
            assert response.status_code in (200, 400), (item, response.status_code)


def test_admin_searches_are_rate_limited_per_user_and_address(
    settings, world: World, caller: Callable[[str, str], Caller], monkeypatch
) -> None:
    monkeypatch.setattr(limiter, "clock", lambda: 1_800_000_020.0)
    settings.ORBIT_ADMIN_SEARCH_RATE_LIMIT = "3/minute"
    client = caller("viewer", "admin").client
    assert [client.get(ADMIN_RUNS, {"q": f"x{i}"}).status_code for i in range(3)] == [200] * 3
    response = client.get(ADMIN_RUNS, {"q": "x3"})
    assert response.status_code == 429
    assert response["Retry-After"] == "40"
    assert response.content.decode() == (
        "Too many admin searches; try again in 40 seconds (ORBIT_ADMIN_SEARCH_RATE_LIMIT)."
    )
    # other admins share the allowance: the limit is on searching, not on one page
    assert client.get(ADMIN_PIPELINES, {"q": "t-"}).status_code == 429
    # browsing without a search is not counted
    assert client.get(ADMIN_RUNS).status_code == 200
