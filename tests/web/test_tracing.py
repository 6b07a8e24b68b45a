"""A server span per request while tracing is on, continuing the caller's W3C trace
(orbit/web/tracing.py); nothing while it is off."""

from __future__ import annotations

import pytest
from django.test import Client

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"

pytestmark = pytest.mark.django_db


def test_a_request_continues_the_callers_trace(spans):
    response = Client().get("/healthz", headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"})
    assert response.status_code == 200
    [span] = spans.get_finished_spans()
    assert span.name == "GET /healthz"
    assert span.kind.name == "SERVER"
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert f"{span.parent.span_id:016x}" == CALLER_SPAN
    assert span.parent.is_remote
    assert dict(span.attributes) == {
        "http.request.method": "GET",
        "url.path": "/healthz",
        "url.scheme": "http",
        "http.response.status_code": 200,
        "http.route": "healthz",
    }


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no caller's trace
        {"traceparent": "00-not-a-trace-01"},  # a malformed header is ignored, not an error
        {"traceparent": f"00-{'0' * 32}-{CALLER_SPAN}-01"},  # an all-zero trace id is invalid
    ],
)
def test_a_request_without_a_valid_traceparent_starts_a_trace(spans, headers):
    assert Client().get("/healthz", headers=headers).status_code == 200
    [span] = spans.get_finished_spans()
    assert span.parent is None
    assert span.context.trace_id != 0


def test_an_unknown_path_is_named_by_its_method_and_is_no_error(spans):
    assert Client().get("/no-such-page").status_code == 404
    [span] = spans.get_finished_spans()
    assert span.name == "GET"
    assert span.attributes["http.response.status_code"] == 404
    assert span.status.status_code.name == "UNSET"


def test_tracing_off_builds_no_span():
    from orbit.core import tracing

    assert not tracing.enabled()
    assert Client().get("/healthz").status_code == 200
