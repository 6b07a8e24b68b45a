"""`orbit prune` / `manage.py prune_runs`: what an operator types and reads."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from orbit.core.clock import db_now
from runs.models import Run, RunRollup, StepAttempt
from tests.cli.test_cli import orbit
from tests.factories import PipelineFactory, RunFactory, StepAttemptFactory, StepFactory

pytestmark = pytest.mark.django_db(transaction=True)


def old_run(status: str, days: float) -> Run:
    end = db_now() - timedelta(days=days)
    run = RunFactory(
        pipeline=PipelineFactory(name="t-single"),
        status=status,
        started_at=end - timedelta(seconds=1),
        finished_at=end,
    )
    StepAttemptFactory(step=StepFactory(run=run, name="one", position=0))
    StepAttempt.objects.filter(run=run).update(finished_at=end)
    return run


def prune(*args: str) -> str:
    out = io.StringIO()
    call_command("prune_runs", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_a_dry_run_prints_what_would_go_and_deletes_nothing(test_pipelines):
    old_run("succeeded", 8)
    old_run("succeeded", 9)
    old_run("failed", 8)
    old_run("failed", 1)
    done = orbit("prune", "--older-than", "7d", "--dry-run")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Would prune 3 run(s), with their steps, attempts and logs:"
    assert lines[1].startswith("  succeeded           2  finished before ")
    assert lines[1].endswith(" UTC (7d)")
    assert lines[2].startswith("  failed              1  finished before ")
    assert lines[3].startswith("  cancelled           0  finished before ")
    assert lines[4:] == ["Audit events are kept.", "Nothing was deleted (--dry-run)."]
    assert Run.objects.count() == 4


def test_each_status_can_have_its_own_age():
    old_run("succeeded", 8)
    kept = old_run("failed", 8)
    output = prune("--succeeded", "7d", "--failed", "never")
    assert output == (
        "Pruned 1 run(s) (1 succeeded) with 1 attempt(s), and 0 audit event(s), in 1 "
        "batch(es). Their figures stay in the hourly rollups.\n"
    )
    assert list(Run.objects.values_list("id", flat=True)) == [kept.id]
    assert RunRollup.objects.get().succeeded == 1


def test_without_an_age_the_settings_apply():
    old_run("succeeded", 40)
    old_run("cancelled", 40)
    with override_settings(
        ORBIT_RETENTION_SUCCEEDED="30d",
        ORBIT_RETENTION_FAILED="90d",
        ORBIT_RETENTION_CANCELLED="never",
        ORBIT_RETENTION_AUDIT="never",
    ):
        output = prune("--batch", "1")
    assert output.startswith("Pruned 1 run(s) (1 succeeded) with 1 attempt(s)")
    assert list(Run.objects.values_list("status", flat=True)) == ["cancelled"]


def test_nothing_old_enough_says_so():
    old_run("succeeded", 1)
    assert prune("--older-than", "7d") == "Nothing to prune.\n"


def test_keeping_everything_says_so():
    assert prune("--succeeded", "never") == (
        "Nothing to prune: every kind of row is kept for ever.\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # under an hour: the last hour's charts read the rows themselves
        (
            ["--older-than", "30m"],
            "--older-than is 30m; keep at least 1h (the dashboard's last hour reads the runs "
            "themselves)",
        ),
        # --older-than prunes: "never" makes no sense there
        (["--older-than", "never"], "--older-than needs an age such as 7d or 12h, not 'never'"),
        # a typo
        (
            ["--audit", "1y"],
            "--audit is '1y'; write an age such as '7d', '12h', '2w' or '90m' (s, m, h, d, w), "
            "or 'never'",
        ),
        (["--older-than", "7d", "--batch", "0"], "--batch must be at least 1"),
        # past a century: beyond timedelta's range, or a cutoff before the year 1
        (
            ["--older-than", "99999999999d", "--dry-run"],
            "--older-than is '99999999999d'; the longest age is 36500d (100 years)",
        ),
        (["--audit", "5000000d"], "--audit is '5000000d'; the longest age is 36500d (100 years)"),
    ],
)
def test_bad_ages_are_refused_with_the_reason(args, message):
    old_run("succeeded", 8)
    with pytest.raises(CommandError) as caught:
        prune(*args)
    assert str(caught.value) == message
    assert Run.objects.count() == 1


def test_an_age_past_a_century_exits_2_with_the_reason(test_pipelines):
    old_run("succeeded", 8)
    done = orbit("prune", "--older-than", "99999999999d", "--dry-run")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "CommandError: --older-than is '99999999999d'; the longest age is 36500d (100 years)"
    )
    assert Run.objects.count() == 1


def test_an_age_of_a_century_is_taken(test_pipelines):
    assert prune("--older-than", "36500d", "--dry-run").startswith("Would prune 0 run(s)")
