"""Pausing a pipeline from its dashboard card in a real browser, with a real worker: the
confirmation, "paused by <user>", the run held while paused and run once resumed."""

from __future__ import annotations

import pytest

from orbit.core.models import AuditEvent
from pipelines.models import Pipeline
from runs import enqueue
from runs.models import Run
from tests.processes import stays_true, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_an_operator_pauses_and_resumes_a_pipeline_from_its_card(as_operator, live_server, worker):
    page = as_operator("/dashboard/pipelines/")
    row = Pipeline.objects.get(name="t-single")
    card = page.locator(f"#pipeline-{row.id}")
    dialogs: list[str] = []

    def accept(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    card.locator("input[name=reason]").fill("vendor outage")
    card.locator("button[name=pause]").click()
    page.wait_for_url(f"{live_server.url}/dashboard/pipelines/#pipeline-{row.id}")
    card = page.locator(f"#pipeline-{row.id}")
    assert card.locator(".pause-state").inner_text().startswith("paused by alice")
    assert "Paused: vendor outage" in card.inner_text()
    assert dialogs == [
        "Pause t-single? Its queued runs wait until it is resumed; running ones finish."
    ]
    # Held while the worker is alive and working: another pipeline's run goes through.
    held = enqueue("t-single")
    other = enqueue("t-three")
    wait_until(lambda: Run.objects.filter(id=other.id, status="succeeded").exists(), 60)
    stays_true(lambda: Run.objects.get(id=held.id).status == "pending", 1.0, "the held run")
    card.locator("button[name=resume]").click()
    page.wait_for_url(f"{live_server.url}/dashboard/pipelines/#pipeline-{row.id}")
    wait_until(lambda: Run.objects.filter(id=held.id, status="succeeded").exists(), 30)
    assert page.locator(f"#pipeline-{row.id} .pause-state").count() == 0
    assert list(
        AuditEvent.objects.filter(action__startswith="pipeline.")
        .order_by("id")
        .values_list("action", "actor", "source")
    ) == [("pipeline.paused", "alice", "dashboard"), ("pipeline.resumed", "alice", "dashboard")]
