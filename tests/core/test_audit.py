"""The audit trail: what each event says, where it comes from, what it never holds, and
where people read it (the admin, read only, and the run's dashboard page)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from orbit.core.audit import Actor, acting, diff, record
from orbit.core.exceptions import InvalidTransition
from orbit.core.models import AuditEvent, AuditSource
from orbit.core.roles import ROLES, assign_role
from pipelines.lifecycle import PipelineConflict, pipeline_delete, pipeline_update
from pipelines.models import Pipeline
from runs import enqueue, enqueue_many
from runs.lifecycle import run_cancel, run_retry
from runs.models import Run, RunStatus
from runs.recovery import record_recovered
from runs.scheduler import fire_slot
from tests.factories import RunFactory

pytestmark = pytest.mark.django_db


def events() -> list[tuple[str, str, str]]:
    return [(e.action, e.source, e.actor) for e in AuditEvent.objects.order_by("id")]


def test_code_that_names_no_actor_is_audited_as_code(test_pipelines):
    run = enqueue("t-single")
    assert events() == [("run.created", "code", "code")]
    event = AuditEvent.objects.get()
    assert (event.target_type, event.target_id) == ("runs.run", str(run.id))
    assert event.target_repr == f"t-single run {run.id}"
    assert event.changes == {"pipeline": "t-single", "priority": 0, "queue": "default"}


def test_acting_names_the_actor_of_calls_that_pass_none(test_pipelines):
    with acting(Actor.system(AuditSource.WORKER, "worker host:1")):
        enqueue("t-single")
    enqueue("t-single")
    assert events() == [
        ("run.created", "worker", "worker host:1"),
        ("run.created", "code", "code"),
    ]


@pytest.mark.parametrize("unique_keys", [[None, "u-1", None], ["u-1", None, None]])
def test_each_run_of_a_batch_has_its_own_event_naming_it(test_pipelines, unique_keys):
    # the events of a batch share their actor and changes (sent once), each names its run;
    # a run with a unique key has its key among its changes, whichever place it takes
    with acting(Actor.system(AuditSource.WORKER, "worker host:1")):
        runs = enqueue_many(
            "t-three", [{"n": 1}, {"n": 2}, {"n": 3}], priority=2, unique_keys=unique_keys
        )
    stored = {e.target_id: e for e in AuditEvent.objects.filter(action="run.created")}
    assert set(stored) == {str(run.id) for run in runs}
    for run, unique in zip(runs, unique_keys, strict=True):
        event = stored[str(run.id)]
        assert (event.target_type, event.target_repr) == ("runs.run", f"t-three run {run.id}")
        assert (event.source, event.actor) == ("worker", "worker host:1")
        wanted = {"pipeline": "t-three", "priority": 2, "queue": "default"}
        assert event.changes == (wanted if unique is None else {**wanted, "unique_key": unique})


def test_a_fired_schedule_slot_is_audited_as_the_schedule(test_pipelines):
    row = Pipeline.objects.get(name="t-single")
    slot = datetime(2026, 3, 1, 3, 0, tzinfo=timezone.get_current_timezone())
    fire_slot(row, slot)
    assert events() == [("run.created", "schedule", "schedule")]
    assert AuditEvent.objects.get().changes["scheduled_for"] == slot.isoformat()


def test_a_refused_action_records_nothing(test_pipelines):
    run = RunFactory(status=RunStatus.SUCCEEDED)
    with pytest.raises(InvalidTransition):
        run_retry(run.id)
    with pytest.raises(InvalidTransition):
        run_cancel(run.id)
    assert events() == []


def test_an_event_is_rolled_back_with_its_change(test_pipelines):
    row = Pipeline.objects.get(name="t-single")
    RunFactory(pipeline=row)
    with pytest.raises(PipelineConflict):
        pipeline_delete(row)
    assert events() == []


def test_retry_and_cancel_record_the_status_they_changed(test_pipelines):
    run = RunFactory(status=RunStatus.PENDING)
    run_cancel(run.id)
    run_retry(run.id)
    assert [e.changes for e in AuditEvent.objects.order_by("id")] == [
        {"status": ["pending", "cancelled"]},
        {"status": ["cancelled", "pending"]},
    ]


def test_metadata_changes_name_the_keys_never_the_values(test_pipelines):
    row = Pipeline.objects.get(name="t-single")
    pipeline_update(row, default_metadata={"api_key": "s3cret-value", "region": "eu"})
    pipeline_update(row, default_metadata={"api_key": "other-s3cret", "region": "eu"})
    changes = [e.changes for e in AuditEvent.objects.order_by("id")]
    assert changes == [
        {"default_metadata": {"changed_keys": ["api_key", "region"]}},
        {"default_metadata": {"changed_keys": ["api_key"]}},
    ]
    assert "s3cret" not in json.dumps(changes)


def test_a_change_of_enabled_alone_reads_as_enabled_or_disabled(test_pipelines):
    row = Pipeline.objects.get(name="t-single")
    pipeline_update(row, enabled=False)
    pipeline_update(row, enabled=True, description="back")
    assert [(e.action, e.changes) for e in AuditEvent.objects.order_by("id")] == [
        ("pipeline.disabled", {"enabled": [True, False]}),
        ("pipeline.changed", {"enabled": [False, True], "description": ["", "back"]}),
    ]


def test_an_unchanged_save_records_nothing(test_pipelines):
    row = Pipeline.objects.get(name="t-single")
    pipeline_update(row, description=row.description)
    assert events() == []


def test_diff_lists_only_what_changed():
    assert diff({"a": 1, "b": 2}, {"a": 1, "b": 3}) == {"b": [2, 3]}


def test_a_token_made_on_the_command_line_is_audited_without_its_key(db, monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "deployer")
    User.objects.create_user("ci")
    out = StringIO()
    call_command("createapitoken", "ci", "--name", "deploys", stdout=out, stderr=StringIO())
    key = out.getvalue().strip()
    event = AuditEvent.objects.get()
    assert (event.action, event.source, event.actor) == ("token.created", "cli", "deployer")
    prefix = key.split("_")[1]
    assert event.changes == {"name": "deploys", "prefix": prefix, "user": "ci"}
    stored = json.dumps([e.changes for e in AuditEvent.objects.all()])
    assert key.split("_", 2)[2] not in stored


def test_a_recovery_sweep_records_each_run_it_resumed(test_pipelines):
    run = RunFactory(status=RunStatus.PENDING)
    with acting(Actor.system(AuditSource.WORKER, "worker host:1")):
        record_recovered([run.id])
    event = AuditEvent.objects.get()
    assert (event.action, event.source, event.actor) == ("run.resumed", "worker", "worker host:1")
    assert event.changes == {"status": ["running", "pending"], "interrupted": True}


def test_a_user_deleted_later_is_still_named(test_pipelines):
    user = User.objects.create_user("leaver")
    record(
        "run.created",  # type: ignore[arg-type]
        RunFactory(),
        actor=Actor(source=AuditSource.API, name="leaver", user=user),
    )
    user.delete()
    event = AuditEvent.objects.get()
    assert (event.user, event.actor) == (None, "leaver")


@pytest.mark.postgres
def test_a_users_events_are_read_through_the_index_of_events_that_have_one(test_pipelines):
    """Events with no user (code, workers, the CLI: most of them) stay out of the user
    index; a lookup by user, as deleting one makes, still reads it."""
    user = User.objects.create_user("someone")
    enqueue("t-single")  # code: no user
    record(
        "run.created",  # type: ignore[arg-type]
        RunFactory(),
        actor=Actor(source=AuditSource.API, name="someone", user=user),
    )
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table would be scanned
        cursor.execute(
            "SELECT pg_get_indexdef('audit_user_idx'::regclass), "
            "to_regclass('orbit_auditevent_user_id_aa9dfa96')"
        )
        [(definition, whole)] = cursor.fetchall()
    assert "WHERE (user_id IS NOT NULL)" in definition and whole is None
    assert "audit_user_idx" in AuditEvent.objects.filter(user=user).explain()
    assert [e.actor for e in AuditEvent.objects.filter(user=user)] == ["someone"]


# --- Where people read it -----------------------------------------------------------------


@pytest.fixture
def viewer_client(client):
    user = User.objects.create_user("watcher", password="pw")
    assign_role(user, ROLES["viewer"])
    client.force_login(user)
    return client


def test_the_run_page_lists_its_events_escaped(viewer_client, test_pipelines):
    run = RunFactory(status=RunStatus.PENDING)
    hostile = Actor(source=AuditSource.API, name="<script>alert(1)</script>", ip_address="10.0.0.9")
    run_cancel(run.id, actor=hostile)
    RunFactory(status=RunStatus.PENDING)  # another run's events stay off this page
    html = viewer_client.get(f"/dashboard/runs/{run.id}/").content.decode()
    assert '<h2 id="audit">Audit</h2>' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html
    assert 'data-action="run.cancelled"' in html
    assert "10.0.0.9" in html
    assert html.count('data-action="') == 1


def test_the_run_page_says_when_nobody_acted(viewer_client, test_pipelines):
    run = RunFactory()
    html = viewer_client.get(f"/dashboard/runs/{run.id}/").content.decode()
    assert "Nobody has acted on this run." in html


def test_the_run_page_hides_the_audit_from_users_without_its_view_permission(
    client, test_pipelines
):
    from django.contrib.auth.models import Permission

    user = User.objects.create_user("runs-only", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_run"))
    client.force_login(user)
    run = RunFactory()
    html = client.get(f"/dashboard/runs/{run.id}/").content.decode()
    assert 'id="audit"' not in html


def test_the_admin_shows_events_but_nobody_adds_edits_or_deletes_them(
    client, django_user_model, test_pipelines
):
    client.force_login(django_user_model.objects.create_superuser("root", "r@x.org", "pw"))
    run = RunFactory(status=RunStatus.PENDING)
    run_cancel(run.id)
    event = AuditEvent.objects.get()
    listing = client.get("/admin/orbit/auditevent/").content.decode()
    assert "Run cancelled" in listing
    assert 'value="delete_selected"' not in listing
    assert client.get("/admin/orbit/auditevent/add/").status_code == 403
    assert client.post(f"/admin/orbit/auditevent/{event.id}/change/", {}).status_code == 403
    assert (
        client.post(f"/admin/orbit/auditevent/{event.id}/delete/", {"post": "yes"}).status_code
        == 403
    )
    page = client.get(f"/admin/orbit/auditevent/{event.id}/change/").content.decode()
    assert f"/admin/runs/run/{run.id}/change/" in page
    run_page = client.get(f"/admin/runs/run/{run.id}/change/").content.decode()
    assert "Who did what to this run" in run_page
    assert AuditEvent.objects.count() == 1


def test_only_a_superuser_may_make_a_token_for_someone_else(client, test_pipelines):
    admin = User.objects.create_user("pipeline-admin", password="pw")
    assign_role(admin, ROLES["admin"])
    other = User.objects.create_user("someone-else")
    client.force_login(admin)
    response = client.post("/admin/orbit/apitoken/add/", {"user": other.id, "name": "x"})
    assert response.status_code == 200  # the form refuses the choice
    assert "Select a valid choice" in response.content.decode()
    assert not other.api_tokens.exists()
    assert events() == []


def test_patching_enabled_through_the_api_needs_the_operate_permission(test_pipelines):
    from django.contrib.auth.models import Permission
    from django.test import Client

    from orbit.core.tokens import create_token

    editor = User.objects.create_user("editor")
    editor.user_permissions.add(Permission.objects.get(codename="change_pipeline"))
    _, key = create_token(editor, "t")
    row = Pipeline.objects.get(name="t-single")
    api = Client(headers={"Authorization": f"Bearer {key}"})
    response = api.patch(
        f"/api/pipelines/{row.id}", {"enabled": False}, content_type="application/json"
    )
    assert response.status_code == 403
    assert response.json() == {
        "detail": "You do not have permission to do this (needs pipelines.operate_pipeline)"
    }
    assert Pipeline.objects.get(id=row.id).enabled is True


def test_resuming_an_interrupted_run_records_the_status_change(test_pipelines):
    from runs.recovery import run_resume

    run = RunFactory(
        status=RunStatus.RUNNING, lease_expires_at=timezone.now() - timedelta(minutes=1)
    )
    run_resume(run.id, actor=Actor.cli())
    event = AuditEvent.objects.get()
    assert (event.action, event.source) == ("run.resumed", "cli")
    assert event.changes == {"status": ["running", "pending"]}
    assert Run.objects.get(id=run.id).status == RunStatus.PENDING


@pytest.mark.django_db(transaction=True)
def test_the_command_line_is_audited_as_its_operating_system_user(test_pipelines):
    """`orbit run` creates its run through the executor, which names no actor: the CLI's."""
    from tests.cli.test_cli import orbit
    from tests.runs.test_recovery import interrupt

    user = {"LOGNAME": "deployer", "USER": "deployer"}
    assert orbit("run", "t-single", env=user).returncode == 0
    stuck = interrupt(enqueue("t-three"))
    AuditEvent.objects.filter(source="code").delete()  # the enqueue above
    assert orbit("resume", str(stuck.id), env=user).returncode == 0
    assert events() == [("run.created", "cli", "deployer"), ("run.resumed", "cli", "deployer")]
