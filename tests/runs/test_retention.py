"""Retention (runs/retention.py): the policy, a pruning pass, the workers' duty, and the
figures that must read the same after pruning as before (runs/metrics.py + rollups)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from orbit.core.clock import db_now
from orbit.core.conf import parse_age
from orbit.core.models import AuditEvent
from runs import metrics, retention
from runs.models import Run, RunRollup, StepAttempt
from runs.retention import Policy
from tests.factories import PipelineFactory, RunFactory, StepAttemptFactory, StepFactory

DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("text", "age"),
    [
        ("7d", timedelta(days=7)),
        ("12h", timedelta(hours=12)),
        ("2w", timedelta(weeks=2)),
        ("90m", timedelta(minutes=90)),
        (" 36H ", timedelta(hours=36)),  # spaces and case do not matter
        ("", None),  # keep for ever
        ("never", None),
        ("off", None),
    ],
)
def test_ages_are_read_from_short_text(text, age):
    assert parse_age("ORBIT_RETENTION_SUCCEEDED", text) == age


def test_an_unreadable_age_names_the_setting_and_the_forms():
    with pytest.raises(ImproperlyConfigured) as caught:
        parse_age("ORBIT_RETENTION_FAILED", "7 days")
    assert str(caught.value) == (
        "ORBIT_RETENTION_FAILED is '7 days'; write an age such as '7d', '12h', '2w' or "
        "'90m' (s, m, h, d, w), or 'never'"
    )


def test_less_than_an_hour_is_refused():
    with pytest.raises(ImproperlyConfigured) as caught:
        parse_age("--older-than", "30m")
    assert str(caught.value) == (
        "--older-than is 30m; keep at least 1h (the dashboard's last hour reads the runs themselves)"
    )


def test_the_policy_comes_from_the_settings():
    with override_settings(
        ORBIT_RETENTION_SUCCEEDED="7d",
        ORBIT_RETENTION_FAILED="30d",
        ORBIT_RETENTION_CANCELLED="never",
        ORBIT_RETENTION_AUDIT="",
    ):
        policy = Policy.from_settings()
    assert policy == Policy(succeeded=timedelta(days=7), failed=timedelta(days=30))
    now = datetime(2030, 1, 31, tzinfo=UTC)
    assert policy.run_cutoffs(now) == {
        "succeeded": datetime(2030, 1, 24, tzinfo=UTC),
        "failed": datetime(2030, 1, 1, tzinfo=UTC),
    }
    assert policy.audit_cutoff(now) is None


def test_a_worker_prunes_at_most_a_twentieth_of_its_time_by_default():
    assert retention.pause_after(0.05) == pytest.approx(0.95)
    with override_settings(ORBIT_RETENTION_SHARE=0.2):
        assert retention.pause_after(0.05) == pytest.approx(0.2)


# -- pruning passes -----------------------------------------------------------------------


def old_run(status: str, age: timedelta, pipeline: str = "t-single") -> Run:
    end = db_now() - age
    run = RunFactory(
        pipeline=PipelineFactory(name=pipeline),
        status=status,
        started_at=end - timedelta(seconds=3),
        running_time=3.0,
        finished_at=end,
    )
    step = StepFactory(run=run, name="one", position=0, status="succeeded")
    StepAttemptFactory(step=step, outcome="succeeded" if status == "succeeded" else "failed")
    StepAttempt.objects.filter(run=run).update(finished_at=end, duration=3.0)
    return run


@pytest.mark.django_db(transaction=True)
def test_a_pass_prunes_batch_after_batch_and_keeps_what_is_young_or_unfinished():
    for _ in range(5):
        old_run("succeeded", 8 * DAY)
    young = old_run("succeeded", 6 * DAY)
    failed = old_run("failed", 8 * DAY)
    pending = RunFactory(pipeline=PipelineFactory(name="t-single"), status="pending")
    policy = Policy(succeeded=7 * DAY, failed=30 * DAY)
    seen: list[int] = []
    report = retention.prune(policy, limit=2, on_batch=lambda r: seen.append(r.total_runs))
    assert (dict(report.runs), report.attempts, report.batches) == ({"succeeded": 5}, 5, 3)
    assert seen == [2, 4, 5]
    assert set(Run.objects.values_list("id", flat=True)) == {young.id, failed.id, pending.id}


@pytest.mark.django_db(transaction=True)
def test_a_pass_prunes_audit_events_on_their_own_clock():
    old_run("succeeded", 2 * DAY)
    event = AuditEvent.objects.create(
        action="run.created", source="cli", actor="a", target_type="runs.run", target_id="x"
    )
    AuditEvent.objects.filter(id=event.id).update(created_at=db_now() - 400 * DAY)
    report = retention.prune(Policy(audit=timedelta(days=365)))
    assert (report.total_runs, report.audit) == (0, 1)
    assert Run.objects.count() == 1 and not AuditEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_dry_run_counts_and_deletes_nothing():
    old_run("succeeded", 8 * DAY)
    old_run("failed", 8 * DAY)
    found = retention.preview(Policy(succeeded=7 * DAY, failed=30 * DAY, audit=365 * DAY))
    assert (found.runs, found.audit, found.total_runs) == ({"succeeded": 1, "failed": 0}, 0, 1)
    assert Run.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_workers_duty_prunes_one_batch_and_comes_back_soon_while_a_backlog_lasts():
    for _ in range(3):
        old_run("succeeded", 8 * DAY)
    policy = Policy(succeeded=7 * DAY)
    again = retention.prune_turn(policy, limit=2)
    assert again is not None and again < 5  # a full batch: the next one after a pause
    assert Run.objects.count() == 1
    assert retention.prune_turn(policy, limit=2) is None  # the rest: back to the interval
    assert not Run.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_worker_loop_prunes_as_its_settings_say(test_pipelines):
    from runs.worker import WorkerLoop

    old_run("succeeded", 40 * DAY)
    kept = old_run("failed", 40 * DAY)
    with override_settings(ORBIT_RETENTION_SUCCEEDED="30d", ORBIT_RETENTION_FAILED="never"):
        worker = WorkerLoop(listen=False, schedules=False)
        assert "prune" in worker.timers.duties
        worker._prune()
    assert list(Run.objects.values_list("id", flat=True)) == [kept.id]


@pytest.mark.django_db
def test_a_worker_with_nothing_to_prune_has_no_pruning_duty_active():
    from runs.worker import WorkerLoop

    with override_settings(
        ORBIT_RETENTION_SUCCEEDED="never",
        ORBIT_RETENTION_FAILED="never",
        ORBIT_RETENTION_CANCELLED="never",
        ORBIT_RETENTION_AUDIT="never",
    ):
        assert WorkerLoop(listen=False).prune is False
    assert WorkerLoop(listen=False, prune=False).prune is False


@pytest.mark.django_db
def test_a_worker_with_an_unreadable_retention_does_not_start():
    from runs.worker import WorkerLoop

    with (
        override_settings(ORBIT_RETENTION_FAILED="a month"),
        pytest.raises(ImproperlyConfigured, match="ORBIT_RETENTION_FAILED is 'a month'"),
    ):
        WorkerLoop(listen=False)


# -- figures survive pruning --------------------------------------------------------------


def history(now: datetime) -> None:
    """Runs over the past 20 days in two pipelines: every outcome, several durations,
    retried attempts, some finishing in the current hour."""
    for i in range(60):
        end = now - timedelta(hours=i * 8, minutes=i)
        status = ("succeeded", "failed", "cancelled")[i % 3]
        run = RunFactory(
            pipeline=PipelineFactory(name=("t-single", "t-three")[i % 2]),
            status=status,
            started_at=end - timedelta(seconds=(0.05, 0.7, 4, 45, 700)[i % 5]),
            running_time=(0.05, 0.7, 4, 45, 700)[i % 5],
            finished_at=end,
        )
        step = StepFactory(run=run, name="one", position=0)
        for number in range(1, 2 + i % 2):
            StepAttemptFactory(
                step=step,
                number=number,
                outcome=("succeeded", "crashed", "interrupted")[(i + number) % 3],
                duration=None if (i + number) % 3 == 2 else 0.3 * number,
            )
        StepAttempt.objects.filter(run=run).update(finished_at=end - timedelta(seconds=1))


def figures(now: datetime) -> dict[str, object]:
    midnight = metrics.start_of_day(now)
    return {
        "per_day": metrics.runs_per_day(30, now),
        "finished": metrics.finished_counts(midnight - 9 * DAY, now),
        "attempts": metrics.attempt_counts(midnight - 9 * DAY, now),
        "run_durations": metrics.run_duration_histogram(midnight - 12 * DAY, now),
        "step_durations": metrics.step_duration_histogram(midnight - 12 * DAY, now),
        "today": metrics.finished_counts(midnight, now),
    }


@pytest.mark.django_db(transaction=True)
def test_charts_and_metrics_read_the_same_after_pruning():
    now = db_now()
    history(now)
    before = figures(now)
    assert sum(b.succeeded + b.failed + b.cancelled for b in before["per_day"]) == 60  # type: ignore[attr-defined]
    report = retention.prune(
        Policy(succeeded=2 * DAY, failed=3 * DAY, cancelled=timedelta(hours=5)), limit=7
    )
    assert report.total_runs > 40 and RunRollup.objects.exists()
    assert figures(now) == before
