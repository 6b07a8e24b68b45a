"""The document pipeline through real `manage.py runworker` processes, against moto and
the Veryfi stand-in (both in this test process) over real HTTP."""

from __future__ import annotations

import os
import signal

import pytest

from runs.enqueueing import run_create
from runs.models import Run, RunStatus, StepAttempt
from services.models import VeryfiDocument
from tests.processes import stat_fields, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

LEASE = {"ORBIT_LEASE_SECONDS": "1.5", "ORBIT_POLL_INTERVAL": "0.1"}


def status_of(run: Run) -> str:
    return Run.objects.values_list("status", flat=True).get(id=run.id)


def test_the_happy_path_through_a_real_worker(documents_env, receipt, veryfi_standin, workers):
    run = run_create("document-processing", metadata={"filePath": str(receipt)})
    worker = workers("--burst", "--no-schedules", env={**documents_env, **LEASE})
    assert worker.wait(60) == 0, worker.log()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    document = VeryfiDocument.objects.get()
    assert (document.run_id, document.vendor_name) == (run.id, "Orbit Coffee Roasters")
    summary = run.steps.get(name="summary").result
    assert (summary["file"], summary["total"], summary["documentId"]) == (
        "receipt.pdf",
        12.5,
        document.pk,
    )
    assert veryfi_standin.requests[0].json["external_id"] == f"{run.id}:veryfi-process"


def test_a_worker_killed_after_veryfi_answered_resumes_and_stores_one_document(
    documents_env, receipt, veryfi_standin, workers
):
    run = run_create("document-processing", metadata={"filePath": str(receipt)})
    env = {**documents_env, **LEASE}
    doomed = workers("--no-schedules", env=env)

    def freeze_worker(document: dict) -> None:
        # Veryfi has processed the document; stop the worker before its answer lands,
        # so nothing after this point can be recorded.
        os.kill(doomed.pid, signal.SIGSTOP)
        wait_until(lambda: _state(doomed.pid) == "T", timeout=10, message="the worker to stop")

    veryfi_standin.on_document = freeze_worker
    wait_until(
        lambda: (
            veryfi_standin.process_requests()
            and veryfi_standin.process_requests()[0].answered.is_set()
        ),
        timeout=60,
        message="Veryfi to answer the worker",
    )
    doomed.send(signal.SIGKILL)
    doomed.wait(10)
    veryfi_standin.on_document = None
    assert status_of(run) == RunStatus.RUNNING
    assert not VeryfiDocument.objects.exists()

    wait_until(
        lambda: Run.objects.interrupted().filter(id=run.id).exists(),
        timeout=10,
        message="the lease to expire",
    )
    rescuer = workers("--burst", "--no-schedules", env=env)
    assert rescuer.wait(60) == 0, rescuer.log()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert VeryfiDocument.objects.for_run(run.id).count() == 1
    assert VeryfiDocument.objects.count() == 1
    outcomes = list(
        StepAttempt.objects.filter(run=run, step__name="veryfi-process")
        .order_by("number")
        .values_list("outcome", flat=True)
    )
    assert outcomes == ["interrupted", "succeeded"]
    # Veryfi saw the same external id twice; Orbit stored the answer it recorded.
    assert [r.json["external_id"] for r in veryfi_standin.process_requests()] == [
        f"{run.id}:veryfi-process"
    ] * 2
    stored = VeryfiDocument.objects.get()
    assert stored.veryfi_id == run.steps.get(name="veryfi-process").result["veryfiId"]


def _state(pid: int) -> str:
    """The process state letter from /proc (T: stopped)."""
    return stat_fields(pid)[0]
