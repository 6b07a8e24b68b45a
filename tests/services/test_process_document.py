"""`orbit process-document PATH [--user-id ID] [--enqueue]`."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from orbit.cli import main
from runs.models import Run, RunStatus
from services.models import VeryfiDocument
from tests.services.conftest import RECEIPT
from tests.veryfi_standin import Fail

pytestmark = pytest.mark.django_db(transaction=True)


def test_runs_the_pipeline_and_prints_the_summary(documents_env, receipt, capsys):
    call_command("process_document", str(receipt))
    out = capsys.readouterr().out
    run = Run.objects.get()
    document = VeryfiDocument.objects.get()
    assert run.status == RunStatus.SUCCEEDED
    assert f"Run {run.id} succeeded" in out
    for shown in (
        "receipt.pdf",
        "1161 bytes",
        "Orbit Coffee Roasters",
        "12.5 USD",
        "2025-11-27",
        f"/admin/services/veryfidocument/{document.pk}/change/",
        "s3-upload",
        "veryfi-process",
    ):
        assert shown in out


def test_enqueue_copies_the_host_file_into_the_documents_folder_and_queues_a_run(
    documents_env, documents_root, capsys, django_user_model, monkeypatch, tmp_path
):
    host = tmp_path / "scans" / "receipt.pdf"
    host.parent.mkdir()
    host.write_bytes(RECEIPT.read_bytes())
    user = django_user_model.objects.create(username="ada")
    monkeypatch.chdir(host.parent)
    assert main(["process-document", "receipt.pdf", "--user-id", str(user.pk), "--enqueue"]) == 0
    run = Run.objects.get()
    assert run.status == RunStatus.PENDING
    assert run.metadata == {"filePath": run.metadata["filePath"], "userId": user.pk}
    assert run.metadata["filePath"].startswith("uploads/")
    assert (documents_root / run.metadata["filePath"]).read_bytes() == RECEIPT.read_bytes()
    out = capsys.readouterr().out
    assert f"Queued run {run.id} for {run.metadata['filePath']}" in out
    assert "(copied from receipt.pdf into ORBIT_DOCUMENTS_ROOT)" in " ".join(out.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent/receipt.pdf"], "File not found: /nonexistent/receipt.pdf"),
        (["{receipt}", "--user-id", "999"], "No user with id 999"),
    ],
)
def test_bad_input_is_refused_before_any_run(documents_env, receipt, capsys, args, message):
    args = [a.format(receipt=receipt) for a in args]
    with pytest.raises(SystemExit) as exit_:
        call_command("process_document", *args)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().out
    assert not Run.objects.exists()


def test_a_failed_run_exits_1_with_the_reason(documents_env, receipt, veryfi_standin, capsys):
    veryfi_standin.script(Fail(401, "Not Authorized"))
    with pytest.raises(SystemExit) as exit_:
        call_command("process_document", str(receipt))
    assert exit_.value.code == 1
    out = " ".join(capsys.readouterr().out.split())
    assert (
        "failed: Step 'veryfi-process' failed and cannot be retried: Veryfi refused the request "
        "(HTTP 401): Not Authorized"
    ) in out
