"""`orbit pause`, `orbit resume --queue|--pipeline` and `orbit queues`, run as a user runs
them: a real process, exit codes, output, audit events."""

from __future__ import annotations

import pytest

from orbit.core.models import AuditEvent
from pipelines.models import Pipeline
from runs import enqueue
from runs.models import QueuePause
from tests.cli.test_cli import orbit

pytestmark = pytest.mark.django_db(transaction=True)


def test_pause_list_and_resume_a_queue(test_pipelines):
    enqueue("t-single", queue="mail")
    done = orbit("pause", "--queue", "mail", "--reason", "SMTP down")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Queue 'mail' paused by " in done.stdout and "(SMTP down)" in done.stdout
    again = orbit("pause", "--queue", "mail", "--reason", "other")
    assert again.returncode == 0 and "was already paused by " in again.stdout
    assert QueuePause.objects.get().reason == "SMTP down"
    listed = orbit("queues")
    assert listed.returncode == 0
    line = next(row for row in listed.stdout.splitlines() if " mail " in row)
    assert "paused by" in line and "SMTP down" in line
    resumed = orbit("resume", "--queue", "mail")
    assert resumed.returncode == 0 and "Queue 'mail' resumed" in resumed.stdout
    assert not QueuePause.objects.exists()
    assert list(
        AuditEvent.objects.filter(action__startswith="queue.")
        .order_by("id")
        .values_list("action", "source", "target_id")
    ) == [("queue.paused", "cli", "mail"), ("queue.resumed", "cli", "mail")]


def test_pause_and_resume_a_pipeline(test_pipelines):
    done = orbit("pause", "--pipeline", "t-single", "--reason", "vendor outage")
    assert done.returncode == 0, done.stdout + done.stderr
    row = Pipeline.objects.get(name="t-single")
    assert row.is_paused and row.pause_reason == "vendor outage"
    resumed = orbit("resume", "--pipeline", "t-single")
    assert resumed.returncode == 0 and "Pipeline 't-single' resumed" in resumed.stdout
    assert not Pipeline.objects.get(name="t-single").is_paused
    assert list(
        AuditEvent.objects.filter(action__startswith="pipeline.p").values_list("action", "source")
    ) == [("pipeline.paused", "cli")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # a queue name the naming rule refuses
        (("pause", "--queue", "no spaces"), "Queue name 'no spaces' is invalid"),
        (("resume", "--queue", "a/b"), "Queue name 'a/b' is invalid"),
        # an unknown pipeline
        (("pause", "--pipeline", "nope"), "Unknown pipeline 'nope'"),
        (("resume", "--pipeline", "nope"), "Unknown pipeline 'nope'"),
        # a reason too long to keep
        (("pause", "--queue", "q", "--reason", "x" * 501), "reason is longer than 500"),
        # neither target
        (("pause",), "one of the arguments --queue --pipeline is required"),
    ],
)
def test_bad_input_exits_two_and_changes_nothing(test_pipelines, args, message):
    done = orbit(*args)
    assert done.returncode == 2
    assert message in " ".join((done.stdout + done.stderr).split())
    assert not QueuePause.objects.exists()
    assert not Pipeline.objects.filter(paused_at__isnull=False).exists()
    assert not AuditEvent.objects.filter(action__contains="pause").exists()
