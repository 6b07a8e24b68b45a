"""/api/webhooks: admins create, read, change and delete endpoints, read deliveries and
send one again; bad input is a 422 naming the field, with nothing changed; anyone
else is refused, and a secret is shown once, when the endpoint is created."""

from __future__ import annotations

import pytest

from orbit.core.models import AuditEvent
from runs import enqueue
from runs.lifecycle import run_cancel
from runs.models import Webhook, WebhookDelivery

URL = "http://127.0.0.1:9/hook"
GOOD = {"name": "pager", "url": URL, "events": ["run_failed"], "secret": "x" * 20}


@pytest.fixture(autouse=True)
def _private_targets_allowed(settings):
    settings.ORBIT_WEBHOOK_ALLOW_PRIVATE = True  # the tests' target is 127.0.0.1


def test_an_admin_creates_reads_changes_and_deletes_an_endpoint(admin_api):
    created = admin_api.post("/api/webhooks", {**GOOD, "pipelines": ["t-single"]})
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["secret"] == "x" * 20  # shown once
    assert (body["events"], body["pipelines"], body["enabled"]) == (
        ["run_failed"],
        ["t-single"],
        True,
    )
    hook_id = body["id"]
    listed = admin_api.get("/api/webhooks").json()
    assert [h["id"] for h in listed] == [hook_id]
    assert all("secret" not in h for h in listed)  # never again
    assert "secret" not in admin_api.get(f"/api/webhooks/{hook_id}").json()
    changed = admin_api.patch(
        f"/api/webhooks/{hook_id}", {"events": ["run_failed", "run_cancelled"]}
    )
    assert changed.status_code == 200
    assert changed.json()["events"] == ["run_failed", "run_cancelled"]
    assert admin_api.delete(f"/api/webhooks/{hook_id}").status_code == 204
    assert not Webhook.objects.exists()
    actions = list(
        AuditEvent.objects.filter(action__startswith="webhook.")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["webhook.created", "webhook.changed", "webhook.deleted"]
    assert "x" * 20 not in str(list(AuditEvent.objects.values_list("changes", flat=True)))


@pytest.mark.parametrize("field", ["name", "secret"])
@pytest.mark.parametrize("bad", ["\x00", "\ud800"])
def test_a_name_or_secret_no_database_can_store_is_a_422(admin_api, field, bad):
    created = admin_api.post("/api/webhooks", {**GOOD, field: GOOD[field] + bad})
    assert created.status_code == 422, created.content
    assert created.json()["errors"][0]["field"] == field
    assert not Webhook.objects.exists()
    hook_id = admin_api.post("/api/webhooks", GOOD).json()["id"]
    changed = admin_api.patch(f"/api/webhooks/{hook_id}", {field: GOOD[field] + bad})
    assert changed.status_code == 422, changed.content
    assert Webhook.objects.get().name == "pager"


def test_without_a_secret_one_is_generated_and_returned_once(admin_api):
    body = admin_api.post("/api/webhooks", {k: v for k, v in GOOD.items() if k != "secret"})
    assert body.status_code == 201
    secret = body.json()["secret"]
    assert len(secret) >= 40 and Webhook.objects.get().secret == secret


@pytest.mark.parametrize(
    ("change", "field", "detail"),
    [
        # not http(s)
        (
            {"url": "ftp://example.com/"},
            "url",
            "url: Only http and https URLs are allowed, not 'ftp'",
        ),
        # an unknown event name
        (
            {"events": ["run_exploded"]},
            "events",
            "events: unknown event name(s) run_exploded; known: run_succeeded, run_failed, "
            "run_cancelled, run_quarantined, run_recovered, step_retried, step_timed_out",
        ),
        # an unknown pipeline
        (
            {"pipelines": ["no-such-pipeline"]},
            "pipelines",
            "pipelines: no pipeline named no-such-pipeline",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_nothing_changes(
    admin_api, change, field, detail
):
    answer = admin_api.post("/api/webhooks", {**GOOD, **change})
    assert answer.status_code == 422
    assert answer.json() == {"detail": detail, "errors": [{"field": field, "message": detail}]}
    assert not Webhook.objects.exists()
    hook = admin_api.post("/api/webhooks", GOOD).json()
    refused = admin_api.patch(f"/api/webhooks/{hook['id']}", change)
    assert refused.status_code == 422 and refused.json()["detail"] == detail
    assert Webhook.objects.get().url == URL and Webhook.objects.get().events == ["run_failed"]
    assert AuditEvent.objects.filter(action="webhook.changed").count() == 0


def test_a_private_address_is_refused_at_save_time_by_default(admin_api, settings):
    settings.ORBIT_WEBHOOK_ALLOW_PRIVATE = False
    answer = admin_api.post("/api/webhooks", {**GOOD, "url": "http://10.0.0.1/hook"})
    assert answer.status_code == 422
    assert answer.json()["detail"] == (
        "url: Refused: 10.0.0.1 is a private address; webhooks go only to public addresses "
        "unless ORBIT_WEBHOOK_ALLOW_PRIVATE is on (the SSRF guard)"
    )
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {**GOOD, "secret": "short"},  # too short a secret
        {**GOOD, "events": []},  # no event
        {**GOOD, "colour": "blue"},  # an unknown field
        {"url": URL, "events": ["run_failed"]},  # no name
    ],
)
def test_malformed_bodies_are_refused(admin_api, body):
    assert admin_api.post("/api/webhooks", body).status_code in (400, 422)
    assert not Webhook.objects.exists()


def test_null_is_refused_in_a_change(admin_api):
    hook = admin_api.post("/api/webhooks", GOOD).json()
    for field in ("enabled", "pipelines", "url"):
        assert admin_api.patch(f"/api/webhooks/{hook['id']}", {field: None}).status_code == 422
    assert Webhook.objects.get().enabled is True


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/api/webhooks", None),
        ("post", "/api/webhooks", GOOD),
        ("get", "/api/webhooks/1", None),
        ("patch", "/api/webhooks/1", {"enabled": False}),
        ("delete", "/api/webhooks/1", None),
        ("post", "/api/webhooks/1/enable", None),
        ("get", "/api/webhooks/1/deliveries", None),
        ("post", "/api/webhooks/deliveries/01890000-0000-7000-8000-000000000000/redeliver", None),
    ],
)
def test_viewers_and_operators_are_refused(viewer_api, operator_api, method, path, body):
    for api in (viewer_api, operator_api):
        call = getattr(api, method)
        answer = call(path, body) if body is not None else call(path)
        assert answer.status_code == 403, (path, answer.content)


def test_unknown_ids_are_404(admin_api):
    assert admin_api.get("/api/webhooks/999").status_code == 404
    missing = "01890000-0000-7000-8000-000000000000"
    answer = admin_api.post(f"/api/webhooks/deliveries/{missing}/redeliver")
    assert answer.status_code == 404
    assert answer.json() == {"detail": f"No webhook delivery has id {missing}"}


def test_deliveries_are_listed_and_one_is_sent_again_as_a_new_delivery(admin_api):
    hook = admin_api.post("/api/webhooks", {**GOOD, "events": ["run_cancelled"]}).json()
    run_cancel(enqueue("t-single").id)
    page = admin_api.get(f"/api/webhooks/{hook['id']}/deliveries").json()
    [delivery] = page["items"]
    assert (delivery["event"], delivery["status"], delivery["attempts"]) == (
        "run_cancelled",
        "pending",
        0,
    )
    again = admin_api.post(f"/api/webhooks/deliveries/{delivery['id']}/redeliver")
    assert again.status_code == 201
    copy = again.json()
    assert copy["id"] != delivery["id"] and copy["redelivery_of"] == delivery["id"]
    assert copy["payload"]["id"] == copy["id"]
    assert WebhookDelivery.objects.count() == 2
    event = AuditEvent.objects.get(action="webhook.redelivered")
    assert event.changes == {"delivery": delivery["id"], "new_delivery": copy["id"]}


def test_enabling_a_disabled_endpoint_clears_its_failures(admin_api):
    hook = admin_api.post("/api/webhooks", GOOD).json()
    Webhook.objects.filter(id=hook["id"]).update(
        enabled=False, consecutive_failures=10, disabled_reason="Disabled after 10 failed ..."
    )
    body = admin_api.post(f"/api/webhooks/{hook['id']}/enable").json()
    assert (body["enabled"], body["consecutive_failures"], body["disabled_reason"]) == (True, 0, "")
    assert AuditEvent.objects.filter(action="webhook.enabled").count() == 1
