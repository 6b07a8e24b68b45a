"""Who may call the API: every endpoint refuses anonymous callers; actions need permissions."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from orbit.api.site import api
from orbit.core.models import ApiToken
from orbit.core.tokens import create_token, revoke_token
from runs import enqueue
from runs.models import Run, RunStatus
from tests.api.conftest import OPERATOR, Api, make_user, pipeline_id

pytestmark = pytest.mark.django_db


def every_operation():
    """(method, path) of every operation in the OpenAPI schema, ids filled with 1."""
    schema = api.get_openapi_schema()
    for path, operations in schema["paths"].items():
        for method in operations:
            yield (
                method,
                re.sub(
                    r"\{run_id\}",
                    "00000000-0000-0000-0000-000000000001",
                    re.sub(r"\{\w+_id\}", "1", path),
                ),
            )


@pytest.mark.parametrize(("method", "path"), list(every_operation()))
def test_every_endpoint_refuses_anonymous_callers(anonymous_api, method, path):
    response = getattr(anonymous_api.client, method)(path, content_type="application/json")
    assert response.status_code == 401
    assert response.json() == {
        "detail": "Authentication required: send 'Authorization: Bearer <token>' or log in as a staff user"
    }


@pytest.mark.parametrize(
    ("key", "detail"),
    [
        ("orbit_deadbeef_not-the-secret", "Invalid API token"),  # unknown prefix
        ("something-else", "Invalid API token"),  # not an Orbit key at all
    ],
)
def test_invalid_tokens_are_401(db, test_pipelines, key, detail):
    response = Api(key).get("/api/runs")
    assert response.status_code == 401
    assert response.json() == {"detail": detail}


def test_a_right_prefix_with_a_wrong_secret_is_401(db):
    _, key = create_token(make_user("u", OPERATOR), "t")
    response = Api(key[:-4] + "AAAA").get("/api/runs")
    assert (response.status_code, response.json()) == (401, {"detail": "Invalid API token"})


def test_revoked_token_is_401(db):
    token, key = create_token(make_user("u", OPERATOR), "t")
    assert Api(key).get("/api/runs").status_code == 200
    revoke_token(token)
    response = Api(key).get("/api/runs")
    assert (response.status_code, response.json()) == (
        401,
        {"detail": "This API token was revoked"},
    )


def test_token_of_an_inactive_user_is_401(db):
    user = make_user("u", OPERATOR)
    _, key = create_token(user, "t")
    user.is_active = False
    user.save()
    response = Api(key).get("/api/runs")
    assert (response.status_code, response.json()) == (
        401,
        {"detail": "The user of this API token is inactive"},
    )


def test_token_use_is_recorded(db):
    token, key = create_token(make_user("u", OPERATOR), "t")
    assert token.last_used_at is None
    Api(key).get("/api/runs")
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_the_key_is_stored_only_as_a_hash(db):
    token, key = create_token(make_user("u"), "ci")
    assert key.startswith(f"orbit_{token.prefix}_")
    assert key not in str(ApiToken.objects.filter(id=token.id).values().get())


def test_a_token_without_permissions_is_403_on_reads(db, test_pipelines):
    _, key = create_token(make_user("nobody"), "t")
    response = Api(key).get("/api/runs")
    assert response.status_code == 403
    assert response.json() == {
        "detail": "You do not have permission to do this (needs runs.view_run)"
    }


# --- Sessions ---------------------------------------------------------------------------------


def logged_in(user, *, csrf: bool) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def test_staff_session_reads(db, test_pipelines):
    staff = make_user("staff", OPERATOR, is_staff=True)
    response = logged_in(staff, csrf=True).get("/api/runs")
    assert response.status_code == 200


def test_staff_session_write_without_csrf_token_is_403(db, test_pipelines):
    staff = make_user("staff", OPERATOR, is_staff=True)
    client = logged_in(staff, csrf=True)
    response = client.post(
        f"/api/pipelines/{pipeline_id('t-single')}/runs", "{}", content_type="application/json"
    )
    assert response.status_code == 403
    assert response.json() == {
        "detail": "CSRF check failed: send the X-CSRFToken header with the csrftoken cookie"
    }
    assert not Run.objects.exists()


def test_staff_session_write_with_csrf_token(db, test_pipelines):
    staff = make_user("staff", OPERATOR, is_staff=True)
    client = logged_in(staff, csrf=True)
    secret = "s3cr3t" * 5 + "ab"  # what a browser got in its csrftoken cookie (32 characters)
    client.cookies["csrftoken"] = secret
    response = client.post(
        f"/api/pipelines/{pipeline_id('t-single')}/runs",
        "{}",
        content_type="application/json",
        headers={"X-CSRFToken": secret},
    )
    assert response.status_code == 201


def test_non_staff_session_is_403(db, test_pipelines):
    user = make_user("plain", OPERATOR)
    response = logged_in(user, csrf=False).get("/api/runs")
    assert response.status_code == 403
    assert response.json() == {
        "detail": "API access with a session needs a staff account; use an API token"
    }


def test_staff_session_without_the_permission_is_403(db, test_pipelines):
    staff = make_user("staff", ("runs.view_run",), is_staff=True)
    run = enqueue("t-single")
    Run.objects.filter(id=run.id).update(status=RunStatus.FAILED)
    response = logged_in(staff, csrf=False).post(f"/api/runs/{run.id}/retry")
    assert response.status_code == 403
    assert Run.objects.get(id=run.id).status == RunStatus.FAILED


def test_superuser_may_do_anything(admin_api):
    run = enqueue("t-single")
    assert admin_api.post(f"/api/runs/{run.id}/cancel").status_code == 200
