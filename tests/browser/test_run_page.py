"""The run page and the phone layout in a real browser, with a real worker: logs while a
step runs, cancel, run again with edited input, what the user opened or closed kept, and
every dashboard page usable 390 px wide."""

from __future__ import annotations

import json
import re

import pytest

from runs import enqueue
from runs.models import Run, RunStatus, Step, StepAttempt
from tests.browser.test_dashboard import finished

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
# The innermost elements reaching past the right edge, to say what overflows.
WIDEST = """[...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > 391 && !e.closest('.table-scroll'))
  .filter(e => ![...e.children].some(c => c.getBoundingClientRect().right > 391))
  .slice(0, 8).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"""


def test_a_running_steps_logs_appear_on_the_page_before_it_ends(
    logged_in, live_server, worker, tmp_path
):
    release = tmp_path / "release"
    run = enqueue("t-live-logs", metadata={"release": str(release), "every": 0.2})
    page = logged_in
    page.goto(f"{live_server.url}/dashboard/runs/{run.id}/")
    page.locator("#logs-0 .log-message", has_text="tick 3").wait_for(timeout=30_000)
    # Shown while the step is still running: it ends only once released.
    assert Step.objects.get(run=run, position=0).status == "running"
    assert page.locator("#run-live").get_attribute("data-status") == "running"
    release.touch()
    page.locator("#run-live[data-status=succeeded]").wait_for(timeout=60_000)
    assert page.locator("#logs-0 .log-message", has_text="released").count() == 1


def test_cancel_from_the_page_asks_then_stops_the_step_and_the_page_follows(
    logged_in, live_server, worker
):
    run = enqueue("t-live-logs", metadata={"seconds": 60})
    page = logged_in
    page.goto(f"{live_server.url}/dashboard/runs/{run.id}/")
    page.locator("#logs-0 .log-message", has_text=re.compile(r"^\s*tick 1\s*$")).wait_for(
        timeout=30_000
    )
    questions: list[str] = []

    def answer(dialog):
        questions.append(dialog.message)
        if len(questions) == 1:
            dialog.dismiss()  # the first time, the user changes their mind
        else:
            dialog.accept()

    page.on("dialog", answer)
    page.get_by_role("button", name="Cancel").click()
    assert questions == ["Cancel this run? A running step is stopped now."]
    page.wait_for_timeout(300)
    assert Run.objects.get(id=run.id).status == RunStatus.RUNNING  # dismissed: nothing done
    page.get_by_role("button", name="Cancel").click()
    page.get_by_text(f"Run {run.id} cancelled.").wait_for(timeout=30_000)  # shown
    # The page keeps polling until the stopped attempt is recorded, then shows it.
    page.locator("#run-live[data-status=cancelled] table.attempts .badge-cancelled").wait_for(
        timeout=30_000
    )
    assert StepAttempt.objects.get(step__run=run, number=1).outcome == "cancelled"
    # Settled: the page stops polling (on its next refresh after the attempt is in).
    page.locator("#run-live:not([hx-trigger])").wait_for(timeout=30_000)


def test_run_again_form_is_prefilled_editable_and_links_the_runs(logged_in, live_server, worker):
    run = enqueue("t-single", metadata={"customer": "acme", "password": "s3cret"})
    finished(run.id)
    page = logged_in
    page.goto(f"{live_server.url}/dashboard/runs/{run.id}/")
    page.get_by_text("Run again, with this input or an edited one").click()
    box = page.locator("#rerun-metadata")
    assert json.loads(box.input_value()) == {"customer": "acme", "password": "[redacted]"}
    box.fill('{"customer": "globex", "password": "[redacted]"}')
    page.get_by_role("button", name="Run again").click()
    page.wait_for_url(re.compile(r"/dashboard/runs/[0-9a-f-]{36}/$"))
    new_id = page.url.rstrip("/").rsplit("/", 1)[1]
    assert new_id != str(run.id)
    again = Run.objects.get(id=new_id)
    assert again.rerun_of_id == run.id
    assert again.metadata == {"customer": "globex", "password": "s3cret"}  # mask kept the secret
    assert page.locator(f"a[href='/dashboard/runs/{run.id}/']").first.is_visible()


def test_details_the_user_closed_or_opened_stay_so_across_refreshes(
    logged_in, live_server, worker, tmp_path
):
    release = tmp_path / "release"
    run = enqueue("t-live-logs", metadata={"release": str(release), "every": 0.3})
    page = logged_in
    page.goto(f"{live_server.url}/dashboard/runs/{run.id}/")
    logs = page.locator("#logs-0")
    logs.locator(".log-message", has_text=re.compile(r"^\s*tick 1\s*$")).wait_for(timeout=30_000)

    def logged():
        return int(re.search(r"\((\d+)\)", logs.locator("summary").inner_text()).group(1))

    def refreshed_twice():
        # Each refresh adds the records written since: see the count grow twice.
        for _ in range(2):
            before = logged()
            page.wait_for_function(
                "n => Number(document.querySelector('#logs-0 summary').textContent"
                ".match(/\\((\\d+)\\)/)[1]) > n",
                arg=before,
                timeout=30_000,
            )

    logs.locator("summary").click()  # close it
    assert logs.get_attribute("open") is None
    refreshed_twice()
    assert page.locator("#logs-0").get_attribute("open") is None
    page.locator("#logs-0 summary").click()  # and open it again
    refreshed_twice()
    assert page.locator("#logs-0").get_attribute("open") == ""
    release.touch()
    finished(run.id)


def test_every_dashboard_page_fits_a_phone_and_keeps_its_buttons_on_screen(
    browser_context, live_server, superuser, worker
):
    from tests.browser.conftest import log_in

    run = enqueue("t-three", metadata={"customer": "a-customer-with-a-rather-long-name" * 3})
    finished(run.id)
    failed = enqueue("t-failing")
    finished(failed.id, RunStatus.FAILED)
    page = browser_context.new_page()
    page.set_viewport_size(PHONE)
    log_in(page, live_server, "root", "/dashboard/")
    for path in (
        "/dashboard/",
        "/dashboard/runs/",
        f"/dashboard/runs/{run.id}/",
        f"/dashboard/runs/{failed.id}/",
        "/dashboard/workers/",
        "/dashboard/pipelines/",
    ):
        page.goto(live_server.url + path)
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} is {width} px wide: {page.evaluate(WIDEST)}"
    disable = page.get_by_role("button", name="Disable").first
    box = disable.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]


CONTRAST = """el => {
  const rgb = c => c.match(/\\d+/g).slice(0, 3).map(Number);
  const lum = c => {
    const [r, g, b] = rgb(c).map(v => v / 255).map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const bar = getComputedStyle(el).fill;
  let node = el.closest('.card'), bg = 'rgba(0, 0, 0, 0)';
  while (node && (bg = getComputedStyle(node).backgroundColor) === 'rgba(0, 0, 0, 0)') node = node.parentElement;
  const [a, b] = [lum(bar), lum(bg)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_duration_bars_stand_out_in_both_themes(logged_in, live_server, worker, scheme):
    run = enqueue("t-single")
    finished(run.id)
    page = logged_in
    page.emulate_media(color_scheme=scheme)
    page.goto(f"{live_server.url}/dashboard/")
    bar = page.locator("#chart-durations rect.bar-duration").first
    bar.wait_for()
    assert bar.evaluate(CONTRAST) >= 3  # WCAG's minimum for graphics


def test_runs_ticked_on_the_live_list_stay_ticked_and_are_cancelled_after_confirming(
    logged_in, live_server, test_pipelines
):
    chosen, other = enqueue("t-single"), enqueue("t-single")  # no worker: they stay pending
    page = logged_in
    page.goto(f"{live_server.url}/dashboard/runs/")
    page.locator(f"#select-{chosen.id}").check()
    # Wait for a refresh: a run queued now appears only through one.
    late = enqueue("t-single")
    page.locator(f"#run-{late.id}").wait_for(timeout=15_000)
    assert page.locator(f"#select-{chosen.id}").is_checked()
    assert not page.locator(f"#select-{other.id}").is_checked()
    questions: list[str] = []
    page.on("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Cancel selected").click()
    page.get_by_text("1 run cancelled.").wait_for()
    assert questions == ["Cancel the selected runs? Their running steps are stopped now."]
    statuses = dict(Run.objects.values_list("id", "status"))
    assert statuses[chosen.id] == RunStatus.CANCELLED
    assert statuses[other.id] == statuses[late.id] == RunStatus.PENDING
