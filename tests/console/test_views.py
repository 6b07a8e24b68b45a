"""The dashboard pages: what an operator sees and what the buttons do."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import F
from django.test import Client
from django.utils import timezone

from pipelines.models import Pipeline
from runs.models import Run, RunStatus, StepLog, StepStatus
from tests.factories import (
    PipelineFactory,
    RunFactory,
    StepAttemptFactory,
    StepFactory,
    WorkerFactory,
)

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert('x')</script>"
IMG = '<img src=x onerror="alert(1)">'


def finished_run(status=RunStatus.FAILED, **kwargs):
    # A little in the past: on PostgreSQL the figures read the database clock, which in a
    # test transaction stands at the transaction's start.
    now = timezone.now() - timedelta(seconds=30)
    run = RunFactory(
        status=status, started_at=now - timedelta(seconds=10), finished_at=now, **kwargs
    )
    step = StepFactory(
        run=run,
        name="fetch",
        position=0,
        status=StepStatus.FAILED,
        attempts=2,
        started_at=now - timedelta(seconds=10),
        finished_at=now,
        duration=3.0,
        error="boom",
        error_type="builtins.ValueError",
        traceback="Traceback ...",
    )
    StepAttemptFactory(
        step=step,
        number=1,
        outcome="failed",
        error="boom",
        duration=2.0,
        backoff_delay=4.0,
        started_at=now - timedelta(seconds=10),
        finished_at=now - timedelta(seconds=8),
    )
    StepAttemptFactory(
        step=step,
        number=2,
        outcome="failed",
        error="boom",
        duration=3.0,
        started_at=now - timedelta(seconds=3),
        finished_at=now,
    )
    return run


def test_overview_shows_the_cards_and_the_charts(op_client, test_pipelines):
    finished_run(status=RunStatus.SUCCEEDED)
    page = op_client.get("/dashboard/").content.decode()
    for label in (
        "Throughput",
        "Success rate",
        "Running time p50",
        "Running time p95",
        "Queue depth",
        "Oldest pending",
        "Workers alive",
        "Most failing steps",
        "Recent runs",
    ):
        assert label in page
    assert page.count('class="chart-svg"') == 3
    assert 'class="bar-succeeded"' in page  # the finished run is drawn in the per-minute chart
    assert "Runs finished per day, last 30 days (UTC)" in page


def test_a_chart_bar_links_to_the_runs_it_counts(op_client, test_pipelines):
    import html
    import re

    counted = finished_run(status=RunStatus.FAILED)
    other = finished_run(status=RunStatus.SUCCEEDED)
    Run.objects.filter(id=other.id).update(finished_at=F("finished_at") - timedelta(minutes=5))
    page = op_client.get("/dashboard/").content.decode()
    chart = page.split('id="chart-per-minute"')[1].split("</figure>")[0]
    links = re.findall(r'<a href="([^"]+status=failed)" class="bar-link">', chart)
    assert len(links) == 1
    listed = op_client.get(html.unescape(links[0])).content.decode()
    assert f'id="run-{counted.id}"' in listed
    assert f'id="run-{other.id}"' not in listed


def test_the_30_day_chart_reads_pruned_days_from_the_rollups(op_client, test_pipelines):
    from runs.retention import Policy, prune

    old = finished_run(status=RunStatus.FAILED)
    Run.objects.filter(id=old.id).update(finished_at=F("finished_at") - timedelta(days=10))
    before = op_client.get("/dashboard/").content.decode()
    assert prune(Policy(failed=timedelta(days=7))).total_runs == 1
    after = op_client.get("/dashboard/").content.decode()
    chart = before.split('id="chart-per-day"')[1]
    assert ": 1 failed" in chart
    assert after.split('id="chart-per-day"')[1] == chart


def test_overview_polls_a_partial_without_the_page_around_it(op_client, test_pipelines):
    response = op_client.get("/dashboard/", HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="overview-live"')
    assert "<html" not in body
    assert "chart-per-day" not in body  # a month of runs is read once per page, not every 5 s
    assert response["Vary"].count("HX-Request") == 1


def test_runs_list_filters_by_status_and_pipeline(op_client, test_pipelines):
    failed = RunFactory(status=RunStatus.FAILED, pipeline=PipelineFactory(name="t-three"))
    ok = RunFactory(status=RunStatus.SUCCEEDED)
    page = op_client.get("/dashboard/runs/?status=failed").content.decode()
    assert f'id="run-{failed.id}"' in page
    assert f'id="run-{ok.id}"' not in page
    page = op_client.get("/dashboard/runs/?pipeline=t-single").content.decode()
    assert f'id="run-{ok.id}"' in page
    assert f'id="run-{failed.id}"' not in page


@pytest.mark.parametrize(
    "query",
    [
        "status=bogus",  # an unknown status is ignored
        "before=garbage",  # a malformed cursor starts from the newest
        "meta=a%3D1e999",  # a number no float holds is searched as text
    ],
)
def test_runs_list_shrugs_off_bad_query_strings(op_client, test_pipelines, query):
    RunFactory()  # SQLite reads a filter's values only against a row
    assert op_client.get(f"/dashboard/runs/?{query}").status_code == 200


def test_runs_list_shows_the_part_of_the_id_that_differs_and_finds_runs_by_it(
    op_client, test_pipelines
):
    runs = [RunFactory(metadata={"customer": f"c{i}"}) for i in range(3)]
    page = op_client.get("/dashboard/runs/").content.decode()
    for run in runs:
        tail = str(run.id)[-8:]
        assert f'title="{run.id}">{tail}</a>' in page
        found = op_client.get(f"/dashboard/runs/?q={tail}").content.decode()
        assert [r.id for r in runs if f'id="run-{r.id}"' in found] == [run.id]
    found = op_client.get("/dashboard/runs/?meta=customer%3Dc1").content.decode()
    assert [r.id for r in runs if f'id="run-{r.id}"' in found] == [runs[1].id]
    assert 'value="customer=c1"' in found  # the form shows what was searched
    assert (
        op_client.get("/dashboard/runs/?created_after=2999-01-01")
        .content.decode()
        .count('id="run-')
        == 0
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("q=not-a-uuid", "Not part of a run id"),
        ("meta=password%3Dhunter2", "Metadata key &#x27;password&#x27; is masked"),
        ("metadata.api_token=x", "Metadata key &#x27;api_token&#x27; is masked"),
        ("meta=customer", "A metadata filter reads key=value"),
        ("created_before=31/12/2026", "created_before is not a date"),
        ("q=ab%00cd", "q holds a control character"),
        ("created_after=9999-12-31T23:59:59-05:00", "created_after is out of range"),
    ],
)
def test_runs_list_refuses_a_search_it_cannot_answer_and_says_why(
    op_client, test_pipelines, query, message
):
    RunFactory(metadata={"password": "hunter2"})
    response = op_client.get(f"/dashboard/runs/?{query}")
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="filter-error"' in page and message in page
    assert 'id="run-' not in page


def test_an_operator_cancels_the_selected_runs_after_confirming(op_client, test_pipelines):
    from orbit.core.models import AuditEvent

    chosen = [RunFactory(status=RunStatus.PENDING) for _ in range(2)]
    left = RunFactory(status=RunStatus.PENDING)
    page = op_client.get("/dashboard/runs/").content.decode()
    assert 'data-confirm="Cancel the selected runs?' in page
    assert f'form="bulk" name="run" value="{chosen[0].id}"' in page
    response = op_client.post(
        "/dashboard/runs/bulk/", {"action": "cancel", "run": [str(r.id) for r in chosen]}
    )
    assert response.status_code == 302
    statuses = {r.id: r.status for r in Run.objects.all()}
    assert [statuses[r.id] for r in chosen] == [RunStatus.CANCELLED] * 2
    assert statuses[left.id] == RunStatus.PENDING
    assert AuditEvent.objects.filter(action="run.cancelled", source="dashboard").count() == 2
    page = op_client.get(response["Location"]).content.decode()
    assert "2 runs cancelled." in page


def test_retry_every_failed_run_of_the_filter_leaves_the_others(op_client, test_pipelines):
    three = Pipeline.objects.get(name="t-three")
    failed_here = [finished_run(pipeline=three) for _ in range(2)]
    failed_elsewhere = finished_run(pipeline=Pipeline.objects.get(name="t-single"))
    page = op_client.get("/dashboard/runs/?pipeline=t-three").content.decode()
    assert "Retry every failed run of this filter" in page
    response = op_client.post(
        "/dashboard/runs/bulk/", {"action": "retry-failed", "pipeline": "t-three"}
    )
    assert response["Location"] == "/dashboard/runs/?pipeline=t-three"
    assert [Run.objects.get(id=r.id).status for r in failed_here] == [RunStatus.PENDING] * 2
    assert Run.objects.get(id=failed_elsewhere.id).status == RunStatus.FAILED
    assert "2 runs queued for retry." in op_client.get(response["Location"]).content.decode()


def test_a_viewer_sees_no_bulk_actions_and_cannot_post_them(client, make_user, test_pipelines):
    client.force_login(make_user("runs.view_run", username="viewer"))
    run = RunFactory(status=RunStatus.PENDING)
    page = client.get("/dashboard/runs/").content.decode()
    assert 'id="bulk"' not in page and 'name="run"' not in page
    response = client.post("/dashboard/runs/bulk/", {"action": "cancel", "run": [str(run.id)]})
    assert response.status_code == 403
    assert Run.objects.get(id=run.id).status == RunStatus.PENDING


def test_bulk_actions_refuse_what_they_cannot_do(op_client, test_pipelines):
    response = op_client.post("/dashboard/runs/bulk/", {"action": "explode"})
    assert response.status_code == 400
    response = op_client.post("/dashboard/runs/bulk/", {"action": "cancel"}, follow=True)
    assert "No runs selected" in response.content.decode()


def test_runs_list_pages_by_keyset_without_gaps_or_repeats(op_client, test_pipelines):
    runs = [RunFactory() for _ in range(55)]
    first = op_client.get("/dashboard/runs/")
    seen = [r["run"].id for r in first.context["rows"]]
    second = op_client.get(first.context["next_url"])
    seen += [r["run"].id for r in second.context["rows"]]
    assert sorted(seen) == sorted(r.id for r in runs)
    assert second.context["next_url"] is None


def test_run_page_shows_the_timeline_attempts_backoff_and_traceback(op_client, test_pipelines):
    run = finished_run()
    page = op_client.get(f"/dashboard/runs/{run.id}/").content.decode()
    assert 'class="timeline-svg"' in page
    assert page.count('class="span outcome-failed"') == 2
    assert 'class="span backoff"' in page
    assert "waited 4.0 s before attempt 2" in page
    assert "Traceback ..." in page
    assert 'name="retry"' in page and 'name="cancel"' not in page


def test_a_finished_run_page_stops_polling_and_a_running_one_polls(op_client, test_pipelines):
    done = finished_run()
    running = RunFactory(status=RunStatus.RUNNING, started_at=timezone.now())
    assert "hx-trigger" not in op_client.get(f"/dashboard/runs/{done.id}/").content.decode()
    assert (
        'hx-trigger="every 2s"' in op_client.get(f"/dashboard/runs/{running.id}/").content.decode()
    )


def test_a_cancelled_run_page_polls_until_its_step_is_stopped(op_client, test_pipelines):
    run = RunFactory(
        status=RunStatus.CANCELLED, started_at=timezone.now(), finished_at=timezone.now()
    )
    step = StepFactory(run=run, name="sleeps", position=0, status="running")
    url = f"/dashboard/runs/{run.id}/"
    assert 'hx-trigger="every 2s"' in op_client.get(url).content.decode()
    step.status = "pending"  # the worker stopped it and recorded the cancelled attempt
    step.save()
    assert "hx-trigger" not in op_client.get(url).content.decode()


def test_a_run_runs_again_from_its_page_with_the_input_as_edited(op_client, test_pipelines):
    original = finished_run(metadata={"n": 1})
    page = op_client.get(f"/dashboard/runs/{original.id}/").content.decode()
    assert f'action="/dashboard/runs/{original.id}/rerun/"' in page
    assert "&quot;n&quot;: 1" in page  # the form is prefilled with its metadata
    bad = op_client.post(f"/dashboard/runs/{original.id}/rerun/", {"metadata": "{oops"})
    assert bad.status_code == 400
    assert "Metadata is not valid JSON" in bad.content.decode()
    assert "{oops" in bad.content.decode()  # what was typed is kept
    response = op_client.post(f"/dashboard/runs/{original.id}/rerun/", {"metadata": '{"n": 2}'})
    rerun = Run.objects.get(rerun_of=original)
    assert response["Location"] == f"/dashboard/runs/{rerun.id}/"
    assert rerun.metadata == {"n": 2}
    page = op_client.get(f"/dashboard/runs/{rerun.id}/").content.decode()
    assert f'href="/dashboard/runs/{original.id}/"' in page  # linked both ways
    assert (
        f'href="/dashboard/runs/{rerun.id}/"'
        in op_client.get(f"/dashboard/runs/{original.id}/").content.decode()
    )


def test_cancel_asks_for_confirmation(op_client, test_pipelines):
    running = RunFactory(status=RunStatus.RUNNING, started_at=timezone.now())
    page = op_client.get(f"/dashboard/runs/{running.id}/").content.decode()
    assert 'data-confirm="Cancel this run? A running step is stopped now."' in page
    assert "/static/orbit/confirm.js" in page


def test_everything_a_step_or_user_wrote_is_shown_as_text(op_client, test_pipelines):
    run = finished_run(metadata={"note": SCRIPT, IMG: IMG}, error=SCRIPT)
    step = run.steps.get()
    StepLog.objects.create(
        run=run,
        step=step,
        attempt=1,
        sequence=0,
        time=timezone.now(),
        level="INFO",
        message=SCRIPT,
        fields={"x": IMG},
    )
    step.result = {"html": IMG}
    step.error = IMG
    step.save()
    for url in (f"/dashboard/runs/{run.id}/", f"/admin/runs/run/{run.id}/change/", "/dashboard/"):
        page = op_client.get(url).content.decode()
        assert "<script>alert" not in page
        assert "<img src=x" not in page
    page = op_client.get(f"/dashboard/runs/{run.id}/").content.decode()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page


@pytest.mark.parametrize(
    ("status", "action", "message", "after"),
    [
        (
            RunStatus.FAILED,
            "retry",
            "queued for retry: it resumes at its first unfinished step.",
            RunStatus.PENDING,
        ),
        (RunStatus.PENDING, "cancel", "cancelled.", RunStatus.CANCELLED),
        (
            RunStatus.SUCCEEDED,
            "retry",
            "is succeeded; only failed or cancelled runs can be retried",
            RunStatus.SUCCEEDED,
        ),
        (
            RunStatus.SUCCEEDED,
            "cancel",
            "only pending or running runs can be cancelled",
            RunStatus.SUCCEEDED,
        ),
        (RunStatus.SUCCEEDED, "resume", "already finished: it succeeded", RunStatus.SUCCEEDED),
    ],
)
def test_run_buttons_say_what_they_did(op_client, test_pipelines, status, action, message, after):
    run = RunFactory(status=status)
    response = op_client.post(f"/dashboard/runs/{run.id}/{action}/", follow=True)
    assert response.redirect_chain[-1][0] == f"/dashboard/runs/{run.id}/"
    assert message in next(str(m) for m in response.context["messages"])
    run.refresh_from_db()
    assert run.status == after


def test_resume_puts_an_interrupted_run_back_in_the_queue(op_client, test_pipelines):
    worker = WorkerFactory(last_heartbeat=timezone.now() - timedelta(minutes=5), state="running")
    run = RunFactory(
        status=RunStatus.RUNNING,
        worker=worker,
        started_at=timezone.now(),
        lease_expires_at=timezone.now() - timedelta(seconds=5),
    )
    page = op_client.get(f"/dashboard/runs/{run.id}/").content.decode()
    assert 'name="resume"' in page and "interrupted" in page
    response = op_client.post(f"/dashboard/runs/{run.id}/resume/", follow=True)
    assert f"Run {run.id} queued to resume" in next(str(m) for m in response.context["messages"])
    run.refresh_from_db()
    assert run.status == RunStatus.PENDING


def test_unknown_run_action_and_run_are_404(op_client, test_pipelines):
    run = RunFactory()
    assert op_client.post(f"/dashboard/runs/{run.id}/explode/").status_code == 404
    assert op_client.get("/dashboard/runs/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_workers_page_flags_dead_workers_and_lists_current_runs(op_client, test_pipelines):
    alive = WorkerFactory(state="running", hostname="alpha", pid=11)
    dead = WorkerFactory(
        state="running",
        hostname="beta",
        pid=22,
        last_heartbeat=timezone.now() - timedelta(minutes=10),
    )
    run = RunFactory(
        status=RunStatus.RUNNING,
        worker=alive,
        lease_expires_at=timezone.now() + timedelta(seconds=30),
    )
    page = op_client.get("/dashboard/workers/").content.decode()
    assert f'id="worker-{dead.id}" class="dead" data-state="dead"' in page
    assert f'id="worker-{alive.id}" class="" data-state="running"' in page
    assert f"/dashboard/runs/{run.id}/" in page
    assert f"1 worker died in the last 15 min ({dead.name})" in page
    assert f'action="/dashboard/workers/{dead.id}/forget/"' in page
    assert f'action="/dashboard/workers/{alive.id}/forget/"' not in page


def test_workers_page_says_which_runs_wait_for_which_worker(op_client, test_pipelines):
    WorkerFactory(state="running", queues=["default"], definitions={"t-single": ["noop"]})
    RunFactory(pipeline=Pipeline.objects.get(name="t-three"))
    page = op_client.get("/dashboard/workers/").content.decode()
    assert "1 run waiting for a worker that defines &#x27;t-three&#x27;" in page


def test_a_dead_worker_is_forgotten_from_the_dashboard(op_client, test_pipelines):
    dead = WorkerFactory(state="running", last_heartbeat=timezone.now() - timedelta(minutes=10))
    response = op_client.post(f"/dashboard/workers/{dead.id}/forget/", follow=True)
    assert f"Worker {dead.name} forgotten." in response.content.decode()
    assert f'id="worker-{dead.id}"' not in response.content.decode()
    alive = WorkerFactory(state="running")
    refused = op_client.post(f"/dashboard/workers/{alive.id}/forget/", follow=True)
    assert f"Worker {alive.name} is alive" in refused.content.decode()


def test_the_run_now_form_says_what_metadata_the_steps_expect(op_client, test_pipelines):
    page = op_client.get("/dashboard/pipelines/").content.decode()
    expected = "{&quot;filePath&quot;: &quot;/path/to/receipt.pdf&quot;}"
    assert f"Its steps expect, for example: <code>{expected}</code>" in page
    assert f'placeholder="{expected}"' in page


def test_pipelines_page_shows_steps_schedule_and_next_fire(op_client, test_pipelines):
    row = Pipeline.objects.get(name="t-flaky")
    row.schedule = "0 3 * * *"
    row.save()
    page = op_client.get("/dashboard/pipelines/").content.decode()
    assert "At 03:00" in page
    assert "tests.steps.flaky" in page
    assert f'id="pipeline-{row.id}"' in page


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "{not json",
            "Metadata is not valid JSON: Expecting property name enclosed in double quotes (line 1, column 2)",
        ),
        ("[1, 2]", "Run metadata must be a JSON object, not list"),
        ('{"x": "' + "y" * 300_000 + '"}', "the limit is 262144 bytes (ORBIT_MAX_METADATA_BYTES)"),
        # deeper than the parser can recurse: a clear message, not a 500
        (
            '{"x": ' + "[" * 5000 + "]" * 5000 + "}",
            "Metadata is nested deeper than 32 levels (ORBIT_MAX_JSON_DEPTH)",
        ),
        # a NUL byte, which PostgreSQL cannot store
        (
            '{"x": "a\\u0000b"}',
            "Run metadata cannot hold a NUL character or an unpaired surrogate (at x)",
        ),
        # a lone surrogate, which UTF-8 cannot encode
        (
            '{"x\\ud800": 1}',
            "Run metadata cannot hold a NUL character or an unpaired surrogate (at x\\ud800)",
        ),
    ],
)
def test_run_now_refuses_bad_metadata_and_queues_nothing(op_client, test_pipelines, text, error):
    row = Pipeline.objects.get(name="t-single")
    response = op_client.post(f"/dashboard/pipelines/{row.id}/run/", {"metadata": text})
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not Run.objects.exists()


def test_run_now_queues_a_run_and_opens_it(op_client, test_pipelines):
    row = Pipeline.objects.get(name="t-single")
    response = op_client.post(
        f"/dashboard/pipelines/{row.id}/run/", {"metadata": '{"x": 1}'}, follow=True
    )
    run = Run.objects.get()
    assert run.metadata == {"x": 1}
    assert response.redirect_chain[-1][0] == f"/dashboard/runs/{run.id}/"
    assert f"Run {run.id} of t-single queued." in [str(m) for m in response.context["messages"]]


@pytest.mark.parametrize(
    "value",
    [
        "%00",  # a NUL byte: PostgreSQL refuses it in a query
        "t-single%0A",  # a newline: no pipeline is named so
        "%ED%A0%80x",  # a surrogate's bytes, which are not UTF-8
        "x" * 500,  # longer than any name
    ],
)
def test_a_pipeline_filter_no_pipeline_can_be_named_is_a_400(op_client, test_pipelines, value):
    response = op_client.get(f"/dashboard/runs/?pipeline={value}")
    assert response.status_code == 400
    page = response.content.decode()
    assert '<p class="errornote" id="filter-error">Not a pipeline name: ' in page


def test_run_now_offers_a_file_only_to_pipelines_that_take_one(op_client, test_pipelines):
    page = op_client.get("/dashboard/pipelines/").content.decode()
    document = Pipeline.objects.get(name="document-processing")
    single = Pipeline.objects.get(name="t-single")
    assert f'id="document-{document.id}"' in page
    assert f'id="document-{single.id}"' not in page
    assert 'enctype="multipart/form-data"' in page


def test_run_now_stores_an_uploaded_file_and_gives_the_run_its_path(
    op_client, test_pipelines, documents_root
):
    row = Pipeline.objects.get(name="document-processing")
    upload = SimpleUploadedFile("scan 1.pdf", b"%PDF-1.4 scan", "application/pdf")
    response = op_client.post(
        f"/dashboard/pipelines/{row.id}/run/", {"metadata": '{"userId": 7}', "document": upload}
    )
    run = Run.objects.get()
    assert response.status_code == 302
    assert run.metadata["userId"] == 7
    assert run.metadata["filePath"].startswith("uploads/")
    assert run.metadata["filePath"].endswith("/scan_1.pdf")
    assert (documents_root / run.metadata["filePath"]).read_bytes() == b"%PDF-1.4 scan"


def test_run_now_refuses_a_file_for_a_pipeline_that_takes_none(
    op_client, test_pipelines, documents_root
):
    row = Pipeline.objects.get(name="t-single")
    upload = SimpleUploadedFile("scan.pdf", b"%PDF", "application/pdf")
    response = op_client.post(f"/dashboard/pipelines/{row.id}/run/", {"document": upload})
    assert response.status_code == 400
    assert "Pipeline &#x27;t-single&#x27; takes no file upload" in response.content.decode()
    assert not Run.objects.exists()
    assert list(documents_root.rglob("*.pdf")) == []


def test_run_now_on_a_disabled_pipeline_says_so(op_client, test_pipelines):
    row = Pipeline.objects.get(name="t-single")
    row.set_enabled(False)
    response = op_client.post(f"/dashboard/pipelines/{row.id}/run/", {"metadata": ""})
    assert response.status_code == 400
    assert (
        "Not queued: 0 runs queued; 1 skipped because it is disabled." in response.content.decode()
    )


def test_enable_switch_flips_the_pipeline(op_client, test_pipelines):
    row = Pipeline.objects.get(name="t-single")
    response = op_client.post(
        f"/dashboard/pipelines/{row.id}/enabled/", {"enabled": "0"}, follow=True
    )
    row.refresh_from_db()
    assert not row.enabled
    assert "Pipeline t-single disabled." in [str(m) for m in response.context["messages"]]
    response = op_client.post(
        f"/dashboard/pipelines/{row.id}/enabled/", {"enabled": "0"}, follow=True
    )
    assert "Pipeline t-single was already disabled." in [
        str(m) for m in response.context["messages"]
    ]


def test_the_favicon_is_answered_without_a_logged_warning(client, caplog):
    with caplog.at_level("WARNING", logger="django.request"):
        response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("orbit/favicon.svg")
    assert caplog.records == []


def test_the_sites_root_leads_to_the_dashboard_and_through_the_login(op_client):
    anonymous = Client()
    response = anonymous.get("/")
    assert (response.status_code, response["Location"]) == (302, "/dashboard/")
    # not logged in: the dashboard sends the visitor on to the login page, showing nothing
    followed = anonymous.get("/", follow=True)
    assert followed.redirect_chain[-1][0] == "/admin/login/?next=/dashboard/"
    assert "Log in" in followed.content.decode()
    logged_in = op_client.get("/", follow=True)
    assert (logged_in.status_code, logged_in.redirect_chain) == (200, [("/dashboard/", 302)])
