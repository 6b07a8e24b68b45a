"""The admin made for operators: read-only history, actions that say what they did, the
health line, search, and lists that never count a whole table."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from pipelines.models import Pipeline
from runs.models import Run, RunStatus, Worker
from tests.console.conftest import messages_of
from tests.factories import RunFactory, StepAttemptFactory, StepFactory, WorkerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "r@example.com", "pw")
    client.force_login(user)
    return client


def act(client, action, runs):
    return client.post(
        "/admin/runs/run/",
        {"action": action, "_selected_action": [str(r.id) for r in runs], "confirmed": "yes"},
        follow=True,
    )


@pytest.mark.parametrize(
    ("url", "action", "question"),
    [
        ("/admin/runs/run/", "cancel_selected", "Cancel these runs?"),
        ("/admin/runs/run/", "retry_selected", "Retry these runs?"),
        ("/admin/runs/worker/", "forget_selected", "Forget these workers?"),
    ],
)
def test_destructive_admin_actions_ask_first_and_change_nothing_until_confirmed(
    admin_client_, test_pipelines, url, action, question
):
    run = RunFactory(status=RunStatus.FAILED if action == "retry_selected" else RunStatus.PENDING)
    dead = WorkerFactory(state="running", last_heartbeat=timezone.now() - timedelta(minutes=10))
    target = dead if "worker" in url else run
    selection = {"action": action, "_selected_action": [str(target.pk)]}
    response = admin_client_.post(url, selection)
    assert response.status_code == 200
    page = response.content.decode()
    assert question in page
    assert '<input type="hidden" name="confirmed" value="yes">' in page
    assert Run.objects.get(id=run.id).status == run.status
    assert Worker.objects.get(id=dead.id).forgotten_at is None
    admin_client_.post(url, {**selection, "confirmed": "yes"})
    changed = (
        Worker.objects.get(id=dead.id).forgotten_at is not None
        if "worker" in url
        else Run.objects.get(id=run.id).status != run.status
    )
    assert changed


def test_retry_action_reports_what_it_did_and_skipped(admin_client_, test_pipelines):
    failed = [RunFactory(status=RunStatus.FAILED) for _ in range(3)]
    running = RunFactory(status=RunStatus.RUNNING)
    response = act(admin_client_, "retry_selected", [*failed, running])
    assert messages_of(response) == [
        "3 runs queued for retry; 1 skipped because it is still running."
    ]
    assert Run.objects.filter(status=RunStatus.PENDING).count() == 3


@pytest.mark.parametrize(
    ("statuses", "action", "message"),
    [
        (
            ["pending", "succeeded", "succeeded"],
            "cancel_selected",
            "1 run cancelled; 2 skipped because they have already succeeded.",
        ),
        (
            ["failed"],
            "resume_selected",
            "0 runs queued to resume; 1 skipped because it has already failed.",
        ),
        (
            ["succeeded", "pending"],
            "retry_selected",
            "0 runs queued for retry; 1 skipped because it has already succeeded; 1 skipped because it is still pending.",
        ),
    ],
)
def test_actions_explain_each_skip(admin_client_, test_pipelines, statuses, action, message):
    runs = [RunFactory(status=s) for s in statuses]
    assert messages_of(act(admin_client_, action, runs)) == [message]


def test_run_history_is_read_only(admin_client_, test_pipelines):
    run = RunFactory(status=RunStatus.FAILED)
    page = admin_client_.get(f"/admin/runs/run/{run.id}/change/").content.decode()
    assert 'name="_save"' not in page
    assert (
        admin_client_.post(f"/admin/runs/run/{run.id}/change/", {"status": "succeeded"}).status_code
        == 403
    )
    assert admin_client_.get("/admin/runs/run/add/").status_code == 403
    assert admin_client_.get(f"/admin/runs/run/{run.id}/delete/").status_code == 403
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED


def test_run_page_shows_steps_attempts_and_links(admin_client_, test_pipelines):
    worker = WorkerFactory()
    run = RunFactory(status=RunStatus.FAILED, worker=worker, metadata={"invoice": 42})
    step = StepFactory(run=run, name="fetch", position=0, result={"rows": 3})
    StepAttemptFactory(
        step=step, number=1, outcome="failed", error="boom", duration=1.5, backoff_delay=2.0
    )
    page = admin_client_.get(f"/admin/runs/run/{run.id}/change/").content.decode()
    assert "fetch" in page and "boom" in page and "2.0 s" in page
    assert "&quot;invoice&quot;: 42" in page
    assert f"/dashboard/runs/{run.id}/" in page
    assert f"/admin/runs/worker/{worker.id}/change/" in page
    assert f"/admin/pipelines/pipeline/{run.pipeline_id}/change/" in page
    assert f"<title>{run.id} | View run |" in page  # the run's id, not "<pipeline pk>:<id>"


@pytest.mark.parametrize(
    ("term", "found"),
    [
        ("{id}", True),  # a whole run id
        ("{tail}", True),  # the part of the id the lists show
        ("{middle}", True),  # any fragment of it
        ("ref=invoice-77", True),  # key=value in the metadata
        ("ref = invoice-77", True),
        ("invoice-77", False),  # free text: not searched (an oracle, a full scan)
        ("ref=invoice", False),  # whole values only
        ("nothing-like-it", False),
    ],
)
def test_search_by_any_part_of_the_id_or_a_metadata_value(
    admin_client_, test_pipelines, term, found
):
    run = RunFactory(metadata={"ref": "invoice-77"})
    RunFactory(metadata={"ref": "other"})
    text = str(run.id)
    term = term.format(id=text, tail=text[-8:], middle=text[15:27])
    response = admin_client_.get("/admin/runs/run/", {"q": term})
    ids = [r.id for r in response.context["cl"].result_list]
    assert ids == ([run.id] if found else [])


def test_search_refuses_a_key_redaction_masks_and_says_so(admin_client_, test_pipelines):
    RunFactory(metadata={"password": "hunter2"})
    response = admin_client_.get("/admin/runs/run/", {"q": "password=hunter2"})
    assert list(response.context["cl"].result_list) == []
    assert "Metadata key &#x27;password&#x27; is masked" in response.content.decode()


def test_list_pages_do_not_count_the_whole_table(admin_client_, test_pipelines):
    for _ in range(3):
        StepAttemptFactory()
    for url in ("/admin/runs/run/", "/admin/runs/step/", "/admin/runs/stepattempt/"):
        with CaptureQueriesContext(connection) as queries:
            assert admin_client_.get(url).status_code == 200
        counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
        for sql in counts:  # every count is capped by a LIMIT inside it
            if ' FROM "runs_' in sql and "GROUP BY" not in sql.upper():
                assert "LIMIT 10001" in sql, sql


def test_index_shows_the_health_line(admin_client_, test_pipelines):
    WorkerFactory(state="running")
    RunFactory(status=RunStatus.FAILED, finished_at=timezone.now() - timedelta(minutes=5))
    RunFactory(status=RunStatus.PENDING)
    page = admin_client_.get("/admin/").content.decode()
    assert 'id="orbit-health"' in page
    assert "1 worker alive" in page
    assert "1 queued" in page
    assert "0 interrupted" in page
    assert "1 failed in the last hour" in page


def test_pipeline_enable_and_disable_actions(admin_client_, test_pipelines):
    rows = list(Pipeline.objects.filter(name__in=["t-single", "t-three"]))
    rows[0].set_enabled(False)
    response = admin_client_.post(
        "/admin/pipelines/pipeline/",
        {"action": "disable_selected", "_selected_action": [r.id for r in rows]},
        follow=True,
    )
    assert messages_of(response) == [
        "1 pipeline disabled; 1 skipped because it was already disabled."
    ]
    response = admin_client_.post(
        "/admin/pipelines/pipeline/",
        {"action": "enable_selected", "_selected_action": [r.id for r in rows]},
        follow=True,
    )
    assert messages_of(response) == ["2 pipelines enabled."]


def test_run_now_action_asks_for_metadata_then_queues(admin_client_, test_pipelines):
    row = Pipeline.objects.get(name="t-single")
    form = admin_client_.post(
        "/admin/pipelines/pipeline/", {"action": "run_now_action", "_selected_action": [row.id]}
    )
    assert form.status_code == 200
    assert 'name="metadata"' in form.content.decode()
    assert not Run.objects.exists()
    bad = admin_client_.post(
        "/admin/pipelines/pipeline/",
        {
            "action": "run_now_action",
            "_selected_action": [row.id],
            "apply": "1",
            "metadata": "{oops",
        },
    )
    assert bad.status_code == 400
    assert "Metadata is not valid JSON" in bad.content.decode()
    assert not Run.objects.exists()
    done = admin_client_.post(
        "/admin/pipelines/pipeline/",
        {
            "action": "run_now_action",
            "_selected_action": [row.id],
            "apply": "1",
            "metadata": '{"a": 1}',
        },
        follow=True,
    )
    assert messages_of(done) == ["1 run queued."]
    assert Run.objects.get().metadata == {"a": 1}


def test_pipeline_definition_is_chosen_from_code(admin_client_, test_pipelines):
    page = admin_client_.get("/admin/pipelines/pipeline/add/").content.decode()
    assert '<option value="t-flaky">t-flaky</option>' in page
    response = admin_client_.post(
        "/admin/pipelines/pipeline/add/",
        {
            "name": "t-flaky-eu",
            "definition": "t-flaky",
            "description": "",
            "default_metadata": '{"region": "eu"}',
            "schedule": "not cron",
            "enabled": "on",
        },
    )
    assert response.status_code == 200  # the form comes back with the schedule error
    assert "has 2 fields" in response.content.decode()
    assert not Pipeline.objects.filter(name="t-flaky-eu").exists()


def test_a_schedule_edited_in_the_admin_is_the_operators_until_handed_back(
    admin_client_, test_pipelines
):
    row = Pipeline.objects.get(name="t-single")
    url = f"/admin/pipelines/pipeline/{row.pk}/change/"
    form = {"description": "", "default_metadata": "{}", "enabled": "on"}
    page = admin_client_.get(url).content.decode()
    assert "Code&#x27;s schedule" in page or "Code's schedule" in page
    admin_client_.post(url, {**form, "schedule": "0 3 * * *", "schedule_source": "code"})
    row.refresh_from_db()
    assert (row.schedule, row.schedule_source) == ("0 3 * * *", "operator")
    admin_client_.post(url, {**form, "schedule": "0 3 * * *", "schedule_source": "code"})
    row.refresh_from_db()
    assert (row.schedule, row.schedule_source) == ("", "code")  # the code's: none


@pytest.mark.parametrize(
    "url",
    [
        "/admin/runs/step/",
        "/admin/runs/stepattempt/",
        "/admin/runs/worker/",
        "/admin/pipelines/pipeline/",
    ],
)
def test_other_lists_render(admin_client_, test_pipelines, url):
    StepAttemptFactory()
    WorkerFactory(last_heartbeat=timezone.now() - timedelta(hours=1))
    assert admin_client_.get(url).status_code == 200


def test_a_capped_count_reads_more_than(admin_client_, test_pipelines, monkeypatch):
    monkeypatch.setattr("orbit.console.dashboard.paging.COUNT_LIMIT", 2)
    for _ in range(4):
        RunFactory()
    page = admin_client_.get("/admin/runs/run/").content.decode()
    assert "More than 2 runs" in page


def test_date_drill_down_spans_first_to_last_without_a_distinct_scan(admin_client_, test_pipelines):
    today = timezone.localtime().date()
    RunFactory()
    with CaptureQueriesContext(connection) as queries:
        page = admin_client_.get("/admin/runs/run/").content.decode()
    assert not [q for q in queries.captured_queries if "DISTINCT" in q["sql"].upper()]
    assert f"created_at__day={today.day}" in page
    drilled = admin_client_.get(
        "/admin/runs/run/",
        {
            "created_at__year": today.year,
            "created_at__month": today.month,
            "created_at__day": today.day,
        },
    )
    assert len(drilled.context["cl"].result_list) == 1


def test_worker_liveness_is_judged_by_the_database_clock(admin_client_, monkeypatch):
    """The heartbeat is the database's time, so this host's clock running an hour ahead
    must not make a live worker look dead (or its heartbeat an hour old)."""
    worker = WorkerFactory(state="running")  # heartbeat stamped by the database just now
    host_time = timezone.now() + timedelta(hours=1)
    monkeypatch.setattr("django.utils.timezone.now", lambda: host_time)
    pages = [
        admin_client_.get("/admin/runs/worker/").content.decode(),
        admin_client_.get(f"/admin/runs/worker/{worker.pk}/change/").content.decode(),
    ]
    for page in pages:
        assert '<span class="badge badge-running">Running</span>' in page
        assert "badge-failed" not in page


def test_dead_workers_are_forgotten_and_live_ones_skipped(admin_client_):
    dead = WorkerFactory(state="running", last_heartbeat=timezone.now() - timedelta(minutes=10))
    alive = WorkerFactory(state="running")
    response = admin_client_.post(
        "/admin/runs/worker/",
        {
            "action": "forget_selected",
            "_selected_action": [str(dead.pk), str(alive.pk)],
            "confirmed": "yes",
        },
        follow=True,
    )
    assert messages_of(response) == ["1 worker forgotten; 1 skipped because it is alive."]
    assert Worker.objects.get(pk=dead.pk).forgotten_at is not None
    assert Worker.objects.get(pk=alive.pk).forgotten_at is None
    page = admin_client_.get(f"/admin/runs/worker/{dead.pk}/change/").content.decode()
    assert "forgotten" in page
