"""A request and the run it queued are one trace: the run span's parent is the request's
span, each step attempt's span is a child of its run span, and spans a step adds itself
(in its child process) nest under the step's span (runs/tracing.py, docs/TRACING.md)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from orbit.core import tracing
from orbit.core.tokens import create_token
from runs.models import Run, StepLog
from runs.store.records import Claim
from runs.tracing import run_span
from tests.api.conftest import OPERATOR, Api, make_user, pipeline_id
from tests.processes import wait_until
from tests.runs.workers import burst, statements_per_run

pytestmark = pytest.mark.django_db(transaction=True)

#: The caller's trace, as a W3C header: the request continues it.
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"


@pytest.fixture
def operator_api(test_pipelines) -> Api:
    """An operator's API token (tests/api/conftest.py): may queue runs."""
    _, key = create_token(make_user("operator", OPERATOR), "tests")
    return Api(key)


def hexid(number: int, width: int = 16) -> str:
    return f"{number:0{width}x}"


def by_name(finished: Any) -> dict[str, list[Any]]:
    named: dict[str, list[Any]] = {}
    for span in finished:
        named.setdefault(span.name, []).append(span)
    return named


def enqueue_through_the_api(api: Any, pipeline: str, **body: Any) -> Run:
    response = api.post(
        f"/api/pipelines/{pipeline_id(pipeline)}/runs",
        {"metadata": {}, **body},
        headers={"traceparent": TRACEPARENT},
    )
    assert response.status_code in (200, 201), response.content
    return Run.objects.get(id=response.json()["id"])


def test_the_request_the_run_and_its_steps_are_one_trace(spans, operator_api):
    run = enqueue_through_the_api(operator_api, "t-traced")
    [request] = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    assert request.name == "POST /api/pipelines/<pipeline_id>/runs"
    assert request.attributes["http.response.status_code"] in (200, 201)
    assert hexid(request.parent.span_id) == CALLER_SPAN  # the caller's trace, continued
    assert run.trace_context["traceparent"] == (
        f"00-{TRACE_ID}-{hexid(request.context.span_id)}-01"
    )

    burst()

    named = by_name(spans.get_finished_spans())
    [run_span_] = named["orbit.run t-traced"]
    [fetch_step] = named["orbit.step fetch"]
    [after_step] = named["orbit.step after"]
    [own] = named["fetch"]  # ended in the step's child process, relayed to this one
    [helper] = named["store"]
    assert {hexid(s.context.trace_id, 32) for s in (run_span_, fetch_step, own, helper)} == {
        TRACE_ID
    }
    assert run_span_.parent.span_id == request.context.span_id
    assert fetch_step.parent.span_id == run_span_.context.span_id
    assert after_step.parent.span_id == run_span_.context.span_id
    assert own.parent.span_id == fetch_step.context.span_id
    assert helper.parent.span_id == fetch_step.context.span_id
    assert dict(run_span_.attributes) == {
        "orbit.pipeline": "t-traced",
        "orbit.run_id": str(run.id),
        "orbit.attempt": 1,
        "orbit.outcome": "succeeded",
    }
    assert {k: v for k, v in fetch_step.attributes.items() if k != "orbit.duration"} == {
        "orbit.pipeline": "t-traced",
        "orbit.run_id": str(run.id),
        "orbit.step": "fetch",
        "orbit.step_attempt": 1,
        "orbit.outcome": "succeeded",
    }
    assert own.attributes["fetched"] == 3
    assert dict(helper.attributes) == {"rows": 3}
    assert own.resource.attributes["service.name"] == run_span_.resource.attributes["service.name"]


def test_every_run_of_a_bulk_request_carries_its_trace(spans, operator_api):
    response = operator_api.post(
        f"/api/pipelines/{pipeline_id('t-single')}/runs/bulk",
        {"runs": [{}, {}]},
        headers={"traceparent": TRACEPARENT},
    )
    assert response.status_code in (200, 201), response.content
    [request] = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    stored = {r.trace_context["traceparent"] for r in Run.objects.all()}
    assert stored == {f"00-{TRACE_ID}-{hexid(request.context.span_id)}-01"}
    assert Run.objects.count() == 2


def test_only_a_bounded_trace_context_is_stored_whatever_the_caller_sends(spans, operator_api):
    vendors = ",".join(f"v{i}=" + "x" * 200 for i in range(30))  # a valid, 6 kB tracestate
    response = operator_api.post(
        f"/api/pipelines/{pipeline_id('t-single')}/runs",
        {"metadata": {}},
        headers={"traceparent": TRACEPARENT, "tracestate": vendors, "baggage": "user=alice"},
    )
    assert response.status_code in (200, 201), response.content
    run = Run.objects.get(id=response.json()["id"])
    assert list(run.trace_context) == ["traceparent"]  # no baggage, no oversized tracestate

    response = operator_api.post(
        f"/api/pipelines/{pipeline_id('t-single')}/runs",
        {"metadata": {}},
        headers={"traceparent": TRACEPARENT, "tracestate": "vendor=abc"},
    )
    run = Run.objects.get(id=response.json()["id"])
    assert run.trace_context["tracestate"] == "vendor=abc"  # a usual one is carried on


def test_a_failed_attempt_records_its_error_masked_and_the_retry_is_a_new_run_span(
    spans, operator_api
):
    run = enqueue_through_the_api(
        operator_api, "t-leaky-error", metadata={"password": "hunter2-very-secret"}
    )
    burst()
    named = by_name(spans.get_finished_spans())
    [run_span_] = named["orbit.run t-leaky-error"]
    [step] = named["orbit.step leaks"]
    assert run_span_.attributes["orbit.outcome"] == "failed"
    assert run_span_.status.status_code.name == "ERROR"
    assert step.attributes["orbit.outcome"] == "failed"
    assert step.status.status_code.name == "ERROR"
    [event] = step.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "builtins.ValueError"
    exported = json.dumps([dict(e.attributes) for e in step.events]) + str(step.status)
    assert "hunter2-very-secret" not in exported  # spans leave Orbit: masked like the history
    assert "abc.def" not in exported
    assert "login refused" in event.attributes["exception.message"]
    assert Run.objects.get(id=run.id).status == "failed"


def test_each_claim_of_a_retried_run_is_a_run_span_of_its_own(spans, test_pipelines):
    from runs import enqueue

    caller = tracing.start_span("caller")  # code that queues a run within a span of its own
    with tracing.using(caller):
        run = enqueue("t-failing")
    tracing.end_span(caller)
    burst()
    named = by_name(spans.get_finished_spans())
    runs = sorted(named["orbit.run t-failing"], key=lambda s: s.attributes["orbit.attempt"])
    assert [(s.attributes["orbit.attempt"], s.attributes["orbit.outcome"]) for s in runs] == [
        (1, "retry"),
        (2, "failed"),
    ]
    assert {s.parent.span_id for s in runs} == {caller.context.span_id}
    steps = sorted(named["orbit.step fails"], key=lambda s: s.attributes["orbit.step_attempt"])
    assert [s.parent.span_id for s in steps] == [s.context.span_id for s in runs]
    assert Run.objects.get(id=run.id).status == "failed"


def test_a_steps_log_records_carry_the_ids_of_the_span_they_were_written_in(spans, operator_api):
    run = enqueue_through_the_api(operator_api, "t-traced")
    burst()
    [own] = by_name(spans.get_finished_spans())["fetch"]
    [line] = StepLog.objects.filter(step__run_id=run.id, message="fetched")
    assert line.fields["trace_id"] == TRACE_ID
    assert line.fields["span_id"] == hexid(own.context.span_id)


def test_a_step_stopped_at_its_timeout_ends_its_span_timed_out(spans, test_pipelines):
    """The supervisor, not the step's process, ends the step span: a killed step's too."""
    from runs import enqueue

    run = enqueue("t-slow-once")
    burst()
    steps = sorted(
        by_name(spans.get_finished_spans())["orbit.step sleeps-once"],
        key=lambda s: s.attributes["orbit.step_attempt"],
    )
    assert [(s.attributes["orbit.step_attempt"], s.attributes["orbit.outcome"]) for s in steps] == [
        (1, "timed_out"),
        (2, "succeeded"),
    ]
    assert steps[0].status.status_code.name == "ERROR"
    assert Run.objects.get(id=run.id).status == "succeeded"


def test_the_foreground_runner_traces_as_the_worker_does(spans, test_pipelines):
    from runs.foreground import ForegroundRunner

    result = ForegroundRunner("t-traced").execute()
    assert result.success
    named = by_name(spans.get_finished_spans())
    [run_span_] = named["orbit.run t-traced"]
    assert run_span_.parent is None  # no caller's trace: the run starts one
    assert run_span_.attributes["orbit.outcome"] == "succeeded"
    [step] = named["orbit.step fetch"]
    [own] = named["fetch"]
    assert step.parent.span_id == run_span_.context.span_id
    assert own.parent.span_id == step.context.span_id


def test_tracing_off_stores_no_context_and_builds_no_span(operator_api):
    assert not tracing.enabled()
    run = enqueue_through_the_api(operator_api, "t-traced")
    assert run.trace_context == {}
    claim = Claim(run.id, 1, None, "t-traced", "t-traced", {}, (), trace_context={})
    assert run_span(claim) is None
    burst()
    assert Run.objects.get(id=run.id).status == "succeeded"  # the step's own spans: no-ops


def test_tracing_costs_a_run_no_statement(spans, test_pipelines):
    """The statements a run costs are pinned with tracing off (tests/runs/test_worker.py);
    tracing on adds none: the context rides in the insert and the claim."""
    traced, capture = statements_per_run()
    tracing.stop()
    untraced, _ = statements_per_run()
    assert traced == untraced, capture.captured_queries


@pytest.mark.slow
def test_a_worker_process_exports_the_run_its_steps_and_their_spans(spans, operator_api, workers):
    """A real worker, exporting with the SDK's standard console exporter (configured by
    OTEL_TRACES_EXPORTER alone): its spans reach the exporter before it exits by os._exit."""
    run = enqueue_through_the_api(operator_api, "t-traced")
    [request] = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    worker = workers(
        "--burst",
        env={
            "OTEL_TRACES_EXPORTER": "console",
            "OTEL_SERVICE_NAME": "orbit-worker-test",
            "ORBIT_LOG_LEVEL": "WARNING",
        },
    )
    assert worker.wait(60) == 0, worker.log()
    assert Run.objects.get(id=run.id).status == "succeeded"
    exported = wait_until(lambda: exported_spans(worker.log()), message="exported spans")
    named = by_name_json(exported)
    [run_span_] = named["orbit.run t-traced"]
    [step] = named["orbit.step fetch"]
    [own] = named["fetch"]
    assert run_span_["parent_id"] == f"0x{hexid(request.context.span_id)}"
    assert run_span_["context"]["trace_id"] == f"0x{TRACE_ID}"
    assert step["parent_id"] == run_span_["context"]["span_id"]
    assert own["parent_id"] == step["context"]["span_id"]
    assert own["resource"]["attributes"]["service.name"] == "orbit-worker-test"
    assert run_span_["attributes"]["orbit.outcome"] == "succeeded"


def exported_spans(output: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed (pretty JSON objects, one after another)."""
    decoder = json.JSONDecoder()
    found = []
    for start in (m.start() for m in re.finditer(r'^\{\s*\n\s*"name"', output, re.M)):
        span, _ = decoder.raw_decode(output, start)
        found.append(span)
    return found


def by_name_json(exported: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    named: dict[str, list[dict[str, Any]]] = {}
    for span in exported:
        named.setdefault(span["name"], []).append(span)
    return named
