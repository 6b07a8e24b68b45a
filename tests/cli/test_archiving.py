"""`orbit archive NAME` and `orbit unarchive NAME`, run as a user runs them: a real
process, exit codes, output, audit events; `orbit list` and `orbit run` after it."""

from __future__ import annotations

import pytest

from orbit.core.models import AuditEvent
from pipelines.models import Pipeline
from runs.models import Run
from tests.cli.test_cli import orbit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def gone(test_pipelines) -> Pipeline:
    """A throwaway pipeline's row: its definition is not in code, and it has a run."""
    row = Pipeline.objects.create(name="scratch", definition="scratch-gone")
    Run.objects.create(pipeline=row, status="succeeded")
    return row


def test_archive_hides_it_from_the_list_and_unarchive_brings_it_back(gone):
    done = orbit("archive", "scratch")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Pipeline 'scratch' archived" in done.stdout
    row = Pipeline.objects.get(id=gone.id)
    assert row.is_archived and row.archived_by  # the OS user
    again = orbit("archive", "scratch")
    assert again.returncode == 0 and "was already archived by" in again.stdout
    listed = orbit("list")
    assert " scratch " not in listed.stdout
    assert "1 archived pipeline not shown: orbit list --archived" in listed.stdout
    archived = orbit("list", "--archived")
    assert " scratch " in archived.stdout and " t-single " not in archived.stdout
    back = orbit("unarchive", "scratch")
    assert back.returncode == 0 and "Pipeline 'scratch' unarchived." in back.stdout
    assert not Pipeline.objects.get(id=gone.id).is_archived
    assert list(
        AuditEvent.objects.filter(action__in=["pipeline.archived", "pipeline.unarchived"])
        .order_by("id")
        .values_list("action", "source")
    ) == [("pipeline.archived", "cli"), ("pipeline.unarchived", "cli")]


def test_an_archived_pipeline_cannot_be_run_or_enqueued(gone):
    orbit("archive", "scratch")
    for args in (("run", "scratch"), ("enqueue", "scratch"), ("run", "scratch", "--enqueue")):
        done = orbit(*args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "Pipeline 'scratch' is archived; unarchive it to run it" in (
            done.stdout + done.stderr
        )
    assert Run.objects.filter(pipeline=gone).count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # a name no pipeline has
        (("archive", "nope"), "Unknown pipeline 'nope'"),
        (("unarchive", "nope"), "Unknown pipeline 'nope'"),
        # a pipeline still defined in code: refused, with the reason
        (("archive", "t-single"), "which is still in code"),
    ],
)
def test_bad_names_exit_2_and_change_nothing(test_pipelines, args, message):
    done = orbit(*args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stdout
    assert not Pipeline.objects.filter(archived_at__isnull=False).exists()
    assert (
        not AuditEvent.objects.filter(action__startswith="pipeline.")
        .exclude(action="pipeline.created")
        .exists()
    )
