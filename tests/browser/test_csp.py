"""Under the strict Content-Security-Policy the browser reports no violation on any page,
and the interactive parts (htmx polling, forms and buttons) still work."""

from __future__ import annotations

import re

import pytest

from orbit.core.conf import DEFAULT_CONTENT_SECURITY_POLICY
from runs import enqueue
from runs.models import Run, RunStatus

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PAGES = [
    "/dashboard/",
    "/dashboard/runs/",
    "/dashboard/runs/{run}/",
    "/dashboard/workers/",
    "/dashboard/pipelines/",
    "/admin/",
    "/admin/runs/run/",
    "/admin/runs/run/{run}/change/",
    "/admin/runs/step/",
    "/admin/pipelines/pipeline/",
    "/admin/pipelines/pipeline/{pipeline}/change/",
    "/admin/orbit/apitoken/add/",
    "/admin/services/veryfidocument/",
    "/api/docs",
]

# Recorded by the page itself, from before any of its own scripts run.
LISTEN = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""


class Violations:
    """CSP violations a page reported, through its event and through the console."""

    def __init__(self, page) -> None:
        self.page = page
        self.console: list[str] = []
        page.add_init_script(LISTEN)
        page.on("console", self._console)

    def _console(self, message) -> None:
        if "Content Security Policy" in message.text:
            self.console.append(message.text)

    def all(self) -> list[str]:
        return self.page.evaluate("window.__csp || []") + self.console


@pytest.fixture
def watched(logged_in):
    return logged_in, Violations(logged_in)


def test_no_page_violates_the_policy(watched, live_server, test_pipelines):
    page, violations = watched
    run = enqueue("t-three")
    pipeline = run.pipeline_id
    for path in PAGES:
        response = page.goto(live_server.url + path.format(run=run.id, pipeline=pipeline))
        assert response.status == 200, path
        assert response.headers["content-security-policy"] == DEFAULT_CONTENT_SECURITY_POLICY
        page.wait_for_load_state("networkidle")
        assert violations.all() == [], path
    # The API docs really rendered (Swagger UI is script): the operations are listed.
    assert page.locator(".opblock").count() > 0


def test_a_violation_would_be_seen(watched, live_server):
    """The check above is not vacuous: inline script is refused and reported."""
    page, violations = watched
    page.goto(f"{live_server.url}/dashboard/")
    page.evaluate(
        """() => { const s = document.createElement("script");
        s.textContent = "window.__ran = true"; document.body.appendChild(s); }"""
    )
    page.wait_for_function("window.__csp.length > 0")
    assert page.evaluate("window.__ran") is None
    assert any(v.startswith("script-src") for v in violations.all())


def test_polling_and_buttons_work_under_the_policy(watched, live_server, test_pipelines):
    page, violations = watched
    page.goto(f"{live_server.url}/dashboard/runs/")
    page.evaluate("window.__notReloaded = true")
    run = enqueue("t-single")  # no worker: it stays pending until cancelled
    # htmx polls the table and swaps the new run in, without a reload
    page.locator(f"#run-{run.id}[data-status=pending]").wait_for(timeout=15_000)
    assert page.evaluate("window.__notReloaded") is True

    page.goto(f"{live_server.url}/dashboard/runs/{run.id}/")
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Cancel").click()  # asks first; dismissed: nothing happens
    assert asked == ["Cancel this run? A running step is stopped now."]
    assert Run.objects.get(id=run.id).status == RunStatus.PENDING
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel").click()
    page.get_by_text(f"Run {run.id} cancelled.").wait_for(timeout=30_000)
    page.locator("#run-live[data-status=cancelled]").wait_for()
    assert Run.objects.get(id=run.id).status == RunStatus.CANCELLED

    page.goto(f"{live_server.url}/dashboard/pipelines/")
    section = page.locator(
        "section.pipeline", has=page.get_by_role("heading", name=re.compile(r"^t-single\b"))
    )
    section.locator("textarea[name=metadata]").fill('{"from": "csp-test"}')
    section.get_by_role("button", name="Run now").click()
    page.wait_for_url(re.compile(r"/dashboard/runs/[0-9a-f-]{36}/$"))
    assert Run.objects.filter(metadata={"from": "csp-test"}).exists()
    assert violations.all() == []
