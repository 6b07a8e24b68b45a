"""The dashboard in a real browser with a real worker: log in, watch, act, stay safe."""

from __future__ import annotations

import re

import pytest

from runs import enqueue
from runs.models import Run, RunStatus
from tests.processes import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PAGES = [
    "/dashboard/",
    "/dashboard/runs/",
    "/dashboard/runs/{run}/",
    "/dashboard/workers/",
    "/dashboard/pipelines/",
    "/admin/",
    "/admin/runs/run/",
    "/admin/pipelines/pipeline/",
]


def finished(run_id, status=RunStatus.SUCCEEDED, timeout=60):
    return wait_until(
        lambda: Run.objects.filter(id=run_id, status=status).exists(),
        timeout,
        message=f"run {run_id} to be {status}",
    )


def test_anonymous_visitors_are_sent_to_login_from_every_page(
    browser_context, live_server, test_pipelines
):
    run = enqueue("t-single")
    page = browser_context.new_page()
    for path in PAGES:
        page.goto(live_server.url + path.format(run=run.id))
        assert re.search(r"/admin/login/\?next=", page.url), path
        assert page.locator("#id_username").is_visible()


def test_overview_renders_its_charts(logged_in, live_server, worker):
    run = enqueue("t-three")
    finished(run.id)
    page = logged_in
    page.goto(f"{live_server.url}/dashboard/")
    assert page.locator("svg.chart-svg").count() == 3
    page.locator("#chart-per-minute rect.bar-succeeded").first.wait_for()
    assert page.locator("#chart-durations rect.bar-duration").count() >= 1
    assert page.locator("#chart-per-day rect.bar-succeeded").count() == 1  # today's bar
    assert page.get_by_text("Workers alive").is_visible()
    # Ready for a strict Content-Security-Policy: no inline script anywhere on the page.
    assert page.eval_on_selector_all("script", "els => els.filter(e => !e.src).length") == 0


def test_run_now_appears_and_completes_on_the_runs_page_without_a_reload(
    logged_in, live_server, worker
):
    runs_page = logged_in
    runs_page.goto(f"{live_server.url}/dashboard/runs/")
    runs_page.evaluate("window.__notReloaded = true")

    other = runs_page.context.new_page()
    other.goto(f"{live_server.url}/dashboard/pipelines/")
    section = other.locator(
        "section.pipeline", has=other.get_by_role("heading", name=re.compile(r"^t-three\b"))
    )
    section.locator("textarea[name=metadata]").fill('{"ticket": "OPS-1"}')
    section.get_by_role("button", name="Run now").click()
    other.wait_for_url(re.compile(r"/dashboard/runs/[0-9a-f-]{36}/$"))
    run_id = other.url.rstrip("/").rsplit("/", 1)[1]
    assert other.get_by_text(f"Run {run_id} of t-three queued.").is_visible()

    runs_page.locator(f"#run-{run_id}[data-status=succeeded]").wait_for(timeout=60_000)
    assert runs_page.evaluate("window.__notReloaded") is True
    assert Run.objects.get(id=run_id).metadata == {"ticket": "OPS-1"}


def test_retry_button_brings_a_failed_run_to_success(logged_in, live_server, worker, tmp_path):
    flag = tmp_path / "fixed"
    run = enqueue("t-fails-until-fixed", metadata={"fixed_flag": str(flag)})
    finished(run.id, RunStatus.FAILED)
    page = logged_in
    page.goto(f"{live_server.url}/dashboard/runs/{run.id}/")
    assert page.get_by_text("the upstream service is down").first.is_visible()
    flag.touch()  # the operator fixed the upstream problem
    page.get_by_role("button", name="Retry").click()
    page.get_by_text(f"Run {run.id} queued for retry").wait_for(timeout=30_000)
    page.locator("#run-live[data-status=succeeded]").wait_for(timeout=60_000)
    # The timeline shows the failed first attempt and the successful retry, to scale.
    timeline = page.locator("svg.timeline-svg")
    assert timeline.locator("rect.outcome-failed").count() == 1
    assert timeline.locator("rect.outcome-succeeded").count() == 2
    assert page.get_by_role("button", name="Retry").count() == 0


def test_run_detail_shows_the_timeline_while_it_runs(logged_in, live_server, worker):
    run = enqueue("t-long", metadata={"seconds": 3})
    page = logged_in
    page.goto(f"{live_server.url}/dashboard/runs/{run.id}/")
    page.locator("svg.timeline-svg rect.running").wait_for(timeout=30_000)
    page.locator("#run-live[data-status=succeeded]").wait_for(timeout=60_000)
    rows = page.locator("svg.timeline-svg g.timeline-row")
    assert rows.count() == 3
    assert page.locator("svg.timeline-svg rect.running").count() == 0


SCRIPT = "<script>window.__xss = 'script'; alert('script')</script>"
IMG = "<img src=x onerror=\"window.__xss = 'img'; alert('img')\">"


def test_payloads_in_metadata_and_logs_show_as_text_and_run_nothing(logged_in, live_server, worker):
    run = enqueue("t-echo", metadata={"script": SCRIPT, "img": IMG})
    finished(run.id)
    page = logged_in
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    for path in (
        f"/dashboard/runs/{run.id}/",
        f"/admin/runs/run/{run.id}/change/",
        "/dashboard/runs/",
    ):
        page.goto(live_server.url + path)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("window.__xss") is None, path
        assert page.locator("img[src=x]").count() == 0, path
    page.goto(f"{live_server.url}/dashboard/runs/{run.id}/")
    assert page.locator(".log-message", has_text=SCRIPT).count() == 1
    assert page.locator(".log-message", has_text=IMG).count() == 1
    metadata = page.locator("pre.metadata").inner_text()  # JSON: quotes come back escaped
    assert SCRIPT in metadata
    assert IMG.replace('"', '\\"') in metadata
    page.wait_for_timeout(2500)  # one more poll would have swapped in anything live
    assert dialogs == []
    assert page.evaluate("window.__xss") is None
