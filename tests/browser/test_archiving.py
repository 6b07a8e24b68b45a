"""Archiving a 'definition missing' card in a real browser: the confirmation, the card
gone, "Show archived (1)" listing it, its run still on the runs page, and back again."""

from __future__ import annotations

import pytest

from orbit.core.models import AuditEvent
from pipelines.models import Pipeline
from runs.models import Run

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_an_operator_archives_a_missing_definition_card(as_operator, live_server, test_pipelines):
    gone = Pipeline.objects.create(name="scratch", definition="scratch-gone")
    run = Run.objects.create(pipeline=gone, status="succeeded")
    page = as_operator("/dashboard/pipelines/")
    card = page.locator(f"#pipeline-{gone.id}")
    assert "definition missing" in card.inner_text()
    in_code = Pipeline.objects.get(name="t-single")
    assert page.locator(f"#pipeline-{in_code.id} button[name=archive]").count() == 0
    dialogs: list[str] = []

    def answer(dialog) -> None:
        dialogs.append(dialog.message)
        # The first time the operator changes their mind; the second time they agree.
        dialog.accept() if len(dialogs) > 1 else dialog.dismiss()

    page.on("dialog", answer)
    card.locator("button[name=archive]").click()
    assert page.locator(f"#pipeline-{gone.id}").count() == 1  # dismissed: nothing happened
    assert not Pipeline.objects.get(id=gone.id).is_archived
    card.locator("button[name=archive]").click()
    page.wait_for_url(f"{live_server.url}/dashboard/pipelines/")
    page.locator("text=Pipeline scratch archived.").wait_for()
    assert page.locator(f"#pipeline-{gone.id}").count() == 0
    assert page.locator(f"#pipeline-{in_code.id}").count() == 1
    assert dialogs[0].startswith("Archive scratch? Its card leaves this page")
    assert len(dialogs) == 2
    page.click("text=Show archived (1)")
    page.wait_for_url(f"{live_server.url}/dashboard/pipelines/?archived=1")
    listed = page.locator(f"#pipeline-{gone.id}")
    assert "archived by alice" in listed.inner_text()
    assert page.locator(f"#pipeline-{in_code.id}").count() == 0
    # Its run is still listed, and its page still opens.
    page.goto(f"{live_server.url}/dashboard/runs/?pipeline=scratch")
    page.locator(f"a[href='/dashboard/runs/{run.id}/']").first.click()
    page.wait_for_url(f"{live_server.url}/dashboard/runs/{run.id}/")
    assert "scratch" in page.locator("main, #content").first.inner_text()
    assert list(
        AuditEvent.objects.filter(action__startswith="pipeline.a")
        .order_by("id")
        .values_list("action", "actor", "source")
    ) == [("pipeline.archived", "alice", "dashboard")]
