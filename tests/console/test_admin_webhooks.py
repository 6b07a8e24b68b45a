"""The admin of webhooks: admins add and edit endpoints (the secret write-only), read the
delivery log, send a delivery again and enable an endpoint again, all audited; a viewer
or an operator sees none of it."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, User

from orbit.core.models import AuditEvent
from orbit.core.roles import ADMIN, OPERATOR, VIEWER, assign_role
from runs import enqueue
from runs.lifecycle import run_cancel
from runs.models import Webhook, WebhookDelivery
from runs.webhook_lifecycle import webhook_create, webhook_update

pytestmark = pytest.mark.django_db

SECRET = "admin-secret-0123456789"
URL = "http://127.0.0.1:9/hook"


@pytest.fixture(autouse=True)
def _private_targets_allowed(settings):
    settings.ORBIT_WEBHOOK_ALLOW_PRIVATE = True


def logged_in(client, role) -> object:
    user = User.objects.create_user(role.name, password="pw")
    assign_role(user, role)
    client.force_login(user)
    return client


@pytest.fixture
def hook(test_pipelines) -> Webhook:
    return webhook_create(
        {"name": "pager", "url": URL, "events": ["run_cancelled"], "secret": SECRET}
    )


def test_an_admin_adds_an_endpoint_and_the_secret_is_never_shown(client, test_pipelines):
    logged_in(client, ADMIN)
    response = client.post(
        "/admin/runs/webhook/add/",
        {
            "name": "ops",
            "url": URL,
            "events": ["run_failed", "run_quarantined"],
            "pipelines": ["t-single"],
            "secret": SECRET,
            "enabled": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    hook = Webhook.objects.get()
    assert (hook.events, hook.pipelines, hook.secret) == (
        ["run_failed", "run_quarantined"],
        ["t-single"],
        SECRET,
    )
    page = client.get(f"/admin/runs/webhook/{hook.pk}/change/").content.decode()
    assert SECRET not in page
    assert AuditEvent.objects.filter(action="webhook.created", source="admin").count() == 1


def test_an_empty_secret_on_a_change_keeps_the_secret(client, hook):
    logged_in(client, ADMIN)
    response = client.post(
        f"/admin/runs/webhook/{hook.pk}/change/",
        {"name": "pager 2", "url": URL, "events": ["run_cancelled"], "secret": "", "enabled": "on"},
    )
    assert response.status_code == 302
    hook.refresh_from_db()
    assert (hook.name, hook.secret) == ("pager 2", SECRET)
    event = AuditEvent.objects.get(action="webhook.changed")
    assert event.changes == {"name": ["pager", "pager 2"]}


def test_the_admin_form_refuses_a_private_target_by_default(client, test_pipelines, settings):
    settings.ORBIT_WEBHOOK_ALLOW_PRIVATE = False
    logged_in(client, ADMIN)
    response = client.post(
        "/admin/runs/webhook/add/",
        {"name": "x", "url": "http://10.0.0.1/", "events": ["run_failed"], "secret": SECRET},
    )
    assert response.status_code == 200
    assert "10.0.0.1 is a private address" in response.content.decode()
    assert not Webhook.objects.exists()


def test_the_delivery_log_shows_status_attempts_and_a_run_link(client, hook):
    run = enqueue("t-single")
    run_cancel(run.id)
    WebhookDelivery.objects.update(attempts=2, response_code=500, last_error="HTTP 500 Boom")
    logged_in(client, ADMIN)
    page = client.get("/admin/runs/webhookdelivery/").content.decode()
    assert "run_cancelled" in page and "HTTP 500 Boom" in page
    assert f"/dashboard/runs/{run.id}/" in page


def test_redeliver_and_enable_are_audited(client, hook):
    run_cancel(enqueue("t-single").id)
    delivery = WebhookDelivery.objects.get()
    logged_in(client, ADMIN)
    client.post(
        "/admin/runs/webhookdelivery/",
        {"action": "redeliver", "_selected_action": [str(delivery.id)]},
    )
    assert WebhookDelivery.objects.filter(redelivery_of=delivery.id).count() == 1
    assert AuditEvent.objects.filter(action="webhook.redelivered", source="admin").count() == 1
    Webhook.objects.filter(id=hook.id).update(enabled=False, consecutive_failures=10)
    client.post(
        "/admin/runs/webhook/", {"action": "enable_selected", "_selected_action": [hook.pk]}
    )
    hook.refresh_from_db()
    assert (hook.enabled, hook.consecutive_failures) == (True, 0)
    assert AuditEvent.objects.filter(action="webhook.enabled", source="admin").count() == 1


@pytest.mark.parametrize("role", [VIEWER, OPERATOR], ids=["viewer", "operator"])
def test_viewers_and_operators_see_no_webhooks(client, hook, role):
    logged_in(client, role)
    for path in (
        "/admin/runs/webhook/",
        f"/admin/runs/webhook/{hook.pk}/change/",
        "/admin/runs/webhookdelivery/",
    ):
        assert client.get(path).status_code == 403, path
    assert "webhook" not in client.get("/admin/").content.decode().lower()
    assert (
        Group.objects.get(name=role.group).permissions.filter(codename__contains="webhook").count()
        == 0
    )


@pytest.mark.parametrize("role", [VIEWER, OPERATOR], ids=["viewer", "operator"])
def test_the_audit_trail_never_shows_an_endpoint_url(client, hook, role):
    """Receivers often carry their credential in the URL; every role reads the audit trail."""
    webhook_update(hook.pk, {"url": "http://127.0.0.1:9/hook?token=URL-TOKEN-1"})
    webhook_update(hook.pk, {"url": "http://127.0.0.1:9/T0/B0/URL-TOKEN-2", "name": "pager-2"})
    logged_in(client, role)
    events = AuditEvent.objects.filter(action__startswith="webhook.").order_by("id")
    assert [e.changes.get("url") for e in events] == ["changed"] * 3  # created, changed twice
    assert events.last().changes["name"] == ["pager", "pager-2"]  # the rest as before
    pages = [client.get("/admin/orbit/auditevent/")] + [
        client.get(f"/admin/orbit/auditevent/{e.pk}/change/") for e in events
    ]
    assert all(page.status_code == 200 for page in pages)
    shown = "".join(page.content.decode() for page in pages)
    assert "pager-2" in shown  # the events are there
    for part in ("URL-TOKEN-1", "URL-TOKEN-2", "127.0.0.1:9"):
        assert part not in shown


def test_webhook_events_recorded_with_their_urls_are_rewritten(hook):
    """Migration orbit/0009: events from before the rule lose their URLs, nothing else."""
    migration = importlib.import_module("orbit.core.migrations.0009_webhook_audit_without_urls")
    old = AuditEvent.objects.filter(action="webhook.created").get()
    AuditEvent.objects.filter(id=old.id).update(
        changes={"url": [None, "http://127.0.0.1:9/hook?token=OLD"], "name": [None, "pager"]}
    )
    migration.forget_urls(apps, None)
    assert AuditEvent.objects.get(id=old.id).changes == {
        "url": "changed",
        "name": [None, "pager"],
    }


def test_webhook_events_recorded_with_an_endpoints_last_error_are_rewritten(hook):
    """Migration orbit/0010: a disable's reason and an enable's loses the last error (it
    can name the endpoint's host), and keeps the rest."""
    migration = importlib.import_module("orbit.core.migrations.0010_webhook_audit_without_errors")
    reason = (
        "Disabled after 3 failed deliveries in a row; the last: Cannot resolve 'hooks.internal'"
    )
    disabled = AuditEvent.objects.create(
        action="webhook.disabled",
        source="worker",
        target_type="runs.webhook",
        target_id=str(hook.id),
        target_repr="pager",
        changes={"enabled": [True, False], "reason": reason},
    )
    enabled = AuditEvent.objects.create(
        action="webhook.enabled",
        source="admin",
        target_type="runs.webhook",
        target_id=str(hook.id),
        target_repr="pager",
        changes={"enabled": [False, True], "was_disabled_because": reason},
    )
    untouched = AuditEvent.objects.filter(action="webhook.created").get().changes
    migration.forget_errors(apps, None)
    assert AuditEvent.objects.get(id=disabled.id).changes == {
        "enabled": [True, False],
        "reason": "Disabled after 3 failed deliveries in a row",
    }
    assert AuditEvent.objects.get(id=enabled.id).changes == {
        "enabled": [False, True],
        "was_disabled_because": "Disabled after 3 failed deliveries in a row",
    }
    assert AuditEvent.objects.filter(action="webhook.created").get().changes == untouched


def test_a_new_endpoint_needs_a_secret_in_the_admin(client, test_pipelines):
    """Not generated and shown in a message: messages travel in a signed, unencrypted cookie."""
    logged_in(client, ADMIN)
    response = client.post(
        "/admin/runs/webhook/add/",
        {"name": "x", "url": URL, "events": ["run_failed"], "secret": "", "enabled": "on"},
    )
    assert response.status_code == 200
    assert "Give the new endpoint a secret of 16 to 200 characters" in response.content.decode()
    assert not Webhook.objects.exists()
