"""The guards on every request and response: security headers, 413 for big bodies, 422 for
JSON nested too deeply."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from orbit.core.conf import DEFAULT_CONTENT_SECURITY_POLICY
from orbit.core.tokens import create_token
from runs.models import Run
from tests.api.conftest import OPERATOR, Api, make_user, pipeline_id

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_api(test_pipelines):
    _, key = create_token(make_user("operator", OPERATOR), "tests")
    return Api(key)


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "pw"))
    return client


# --- Headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/",  # a dashboard page
        "/dashboard/runs/",
        "/admin/",  # the admin
        "/admin/runs/run/",
        "/api/runs",  # the API (JSON)
        "/api/docs",  # the API's docs page
        "/healthz",
    ],
)
def test_every_response_carries_the_security_headers(staff_client, test_pipelines, path):
    response = staff_client.get(path)
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == DEFAULT_CONTENT_SECURITY_POLICY
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_the_policy_allows_nothing_inline_and_no_framing():
    directives = dict(d.strip().split(" ", 1) for d in DEFAULT_CONTENT_SECURITY_POLICY.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert "unsafe" not in DEFAULT_CONTENT_SECURITY_POLICY


def test_the_policy_can_be_replaced_by_a_setting(client, settings):
    settings.ORBIT_CONTENT_SECURITY_POLICY = "default-src 'self' https://cdn.example.com"
    response = client.get("/healthz")
    assert response["Content-Security-Policy"] == "default-src 'self' https://cdn.example.com"


@pytest.mark.parametrize(("debug", "has_policy"), [(False, True), (True, False)])
def test_django_debug_pages_are_left_without_a_policy(client, settings, debug, has_policy):
    """With DEBUG on, Django's 404 and 500 pages (inline style and script) stay usable."""
    settings.DEBUG = debug
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert ("Content-Security-Policy" in response) is has_policy


def test_the_api_docs_page_loads_its_script_from_this_site(staff_client):
    html = staff_client.get("/api/docs").content.decode()
    assert "cdn.jsdelivr.net" not in html
    assert "/static/ninja/swagger-ui-init.js" in html


# --- 413: bodies over the limit ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content_type", "expected"),
    [
        # the API answers in its JSON error shape
        ("/api/runs", "application/json", {"detail": "The request body is too large"}),
        # pages answer in text, before CSRF or the form parser read the body
        ("/admin/login/", "application/x-www-form-urlencoded", "The request body is too large"),
        (
            "/dashboard/pipelines/1/run",
            "multipart/form-data; boundary=x",
            "The request body is too large",
        ),
    ],
)
def test_a_body_over_the_limit_is_413(settings, path, content_type, expected):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = Client().post(path, "x" * 1001, content_type=content_type)
    assert response.status_code == 413
    if isinstance(expected, dict):
        assert response.json() == expected
    else:
        assert response.content.decode() == expected


def test_a_body_at_the_limit_goes_through(settings, operator_api):
    body = json.dumps({"metadata": {"pad": "x" * 900}})
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = len(body)
    response = operator_api.post(f"/api/pipelines/{pipeline_id('t-single')}/runs", raw=body)
    assert response.status_code == 201


# --- 422: JSON nested too deeply --------------------------------------------------------------


def nested(levels: int) -> str:
    """A run's body whose JSON has exactly `levels` levels of objects and arrays."""
    arrays = levels - 2  # the body and its metadata are the first two
    return '{"metadata": {"deep": ' + "[" * arrays + "1" + "]" * arrays + "}}"


def test_json_nested_32_levels_is_accepted(operator_api):
    response = operator_api.post(f"/api/pipelines/{pipeline_id('t-single')}/runs", raw=nested(32))
    assert response.status_code == 201
    assert Run.objects.count() == 1


@pytest.mark.parametrize("levels", [33, 5000])  # one too many; deeper than Python's recursion
def test_json_nested_deeper_than_32_levels_is_422(operator_api, levels):
    response = operator_api.post(
        f"/api/pipelines/{pipeline_id('t-single')}/runs", raw=nested(levels)
    )
    assert response.status_code == 422
    detail = "The JSON body is nested deeper than 32 levels"
    assert response.json() == {"detail": detail, "errors": [{"field": "body", "message": detail}]}
    assert not Run.objects.exists()


def test_the_depth_limit_is_a_setting(operator_api, settings):
    settings.ORBIT_MAX_JSON_DEPTH = 3
    response = operator_api.post(f"/api/pipelines/{pipeline_id('t-single')}/runs", raw=nested(4))
    assert response.json()["detail"] == "The JSON body is nested deeper than 3 levels"


def test_a_body_that_is_not_json_is_still_400(operator_api):
    response = operator_api.post(f"/api/pipelines/{pipeline_id('t-single')}/runs", raw="{nope")
    assert (response.status_code, response.json()) == (400, {"detail": "Cannot parse request body"})


@pytest.mark.parametrize(
    ("address", "status"),
    [
        ("127.0.0.1", 200),  # this host
        ("::1", 200),  # this host, IPv6
        ("203.0.113.5", 403),  # anyone else, whatever Host header they send
        ("10.0.0.7", 403),  # the local network too
    ],
)
def test_debug_answers_only_clients_on_this_host(settings, address, status):
    settings.DEBUG = True
    response = Client(REMOTE_ADDR=address).get("/healthz", headers={"Host": "localhost"})
    assert response.status_code == status
    if status == 403:
        assert b"DEBUG is on: this server answers only clients on its own host" in response.content


@pytest.mark.parametrize(
    ("path", "who"),
    [
        ("/api/runs", "viewer"),  # an API answer
        ("/api/runs", "anonymous"),  # an API refusal
        ("/api/openapi.json", "anonymous"),  # the API's description
        ("/dashboard/", "viewer"),  # a dashboard page
        ("/dashboard/runs/", "viewer"),
        ("/dashboard/runs/", "anonymous"),  # the redirect to the login page
    ],
)
def test_api_and_dashboard_responses_are_never_stored(path, who, django_user_model):
    """Run data, metadata and error texts must not stay in a browser's or a proxy's cache."""
    client = Client()
    if who == "viewer":
        user = django_user_model.objects.create_superuser("root", "r@example.com", "pw")
        client.force_login(user)
    response = client.get(path)
    assert "no-store" in response["Cache-Control"], (path, response.status_code)


def test_other_responses_keep_their_own_caching():
    response = Client().get("/healthz")
    assert "no-store" not in response.get("Cache-Control", "")


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",  # another site
        "//evil.example/",  # a scheme-relative one
        "/nowhere/../../",  # a path that leads nowhere useful: still ours, still allowed
    ],
)
def test_an_unsafe_next_after_login_falls_back_to_the_dashboard(target, django_user_model):
    django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client = Client()
    response = client.post(
        f"/admin/login/?next={target}", {"username": "staff", "password": "pw", "next": target}
    )
    assert response.status_code == 302
    if target.startswith("/") and not target.startswith("//"):
        assert response["Location"] == target
    else:
        assert response["Location"] == "/dashboard/"


def test_a_chunked_body_is_refused_whatever_length_it_claims(test_pipelines):
    """With Transfer-Encoding: chunked a Content-Length means nothing (HTTP/1.1 says to
    ignore it), so any chunked body is refused."""
    response = Client().generic(
        "POST",
        "/api/pipelines/1/runs",
        b"",
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
    )
    assert response.status_code == 411
    assert response.json()["detail"] == (
        "Chunked request bodies are not accepted: send the body with a Content-Length"
    )
