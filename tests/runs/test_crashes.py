"""The crash suite: real worker processes killed with real signals, on a real database.

Each test is bounded by timeouts (wait_until), never by sleeps hoping for luck. Leases are
short (ORBIT_LEASE_SECONDS=1.5) so recovery happens within seconds.
"""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from django.db import connection, connections

from runs import enqueue
from runs.models import AttemptOutcome, Run, RunStatus, StepAttempt, Worker
from runs.recovery import recover_interrupted
from tests.processes import wait_until
from tests.threads import at_once

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

LEASE = {"ORBIT_LEASE_SECONDS": "1.5", "ORBIT_POLL_INTERVAL": "0.1"}


def status_of(run: Run) -> str:
    return Run.objects.values_list("status", flat=True).get(id=run.id)


def test_sigkill_mid_step_two_resumes_at_step_two(test_pipelines, workers, effects):
    run = enqueue("t-recorded-three", metadata={"seconds": 2})
    doomed = workers("--no-schedules", env=LEASE)
    wait_until(lambda: effects(run.id).get((str(run.id), "two")), message="step two to start")
    doomed.send(signal.SIGKILL)
    doomed.wait(10)
    rescuer = workers("--no-schedules", env=LEASE)
    wait_until(
        lambda: status_of(run) == RunStatus.SUCCEEDED, timeout=30, message="the run to finish"
    )
    counts = effects(run.id)
    assert counts[(str(run.id), "one")] == 1
    assert counts[(str(run.id), "two")] <= 2
    assert counts[(str(run.id), "three")] == 1
    two = StepAttempt.objects.filter(run=run, step__name="two").order_by("number")
    assert [a.outcome for a in two] == [AttemptOutcome.INTERRUPTED, AttemptOutcome.SUCCEEDED]
    assert Run.objects.get(id=run.id).interruptions == 1
    dead = Worker.objects.get(pid=doomed.pid)  # its row says when it died and what it held
    assert dead.died_at is not None and dead.died_at >= dead.last_heartbeat
    assert dead.held_at_death == [
        {"run_id": str(run.id), "pipeline": "t-recorded-three", "step": "two"}
    ]
    rescuer.send(signal.SIGTERM)
    assert rescuer.wait(10) == 0


def test_sigkill_during_backoff_keeps_the_retry_time(test_pipelines, workers, effects):
    run = enqueue("t-recorded-backoff", metadata={"fail_times": 1})
    first = workers("--no-schedules", env=LEASE)
    wait_until(lambda: StepAttempt.objects.filter(run=run).exists(), message="the first attempt")
    failed_at = time.monotonic()
    retry_at = Run.objects.get(id=run.id).available_at
    first.send(signal.SIGKILL)
    first.wait(10)
    workers("--no-schedules", env=LEASE)
    wait_until(lambda: status_of(run) == RunStatus.SUCCEEDED, timeout=30, message="the retry")
    waited = time.monotonic() - failed_at
    attempts = list(StepAttempt.objects.filter(run=run).order_by("number"))
    assert [a.outcome for a in attempts] == [AttemptOutcome.FAILED, AttemptOutcome.SUCCEEDED]
    assert attempts[0].backoff_delay == 4.0
    assert attempts[1].started_at >= retry_at  # not before its time...
    assert waited < 4.0 + 5.0  # ...and not long after it
    assert effects(run.id)[(str(run.id), "flaky")] == 2


def test_sigkill_every_worker_then_new_ones_finish_everything(test_pipelines, workers, effects):
    runs = [enqueue("t-recorded-three", metadata={"seconds": 0.3}) for _ in range(20)]
    first = [workers("--no-schedules", "--concurrency", "2", env=LEASE) for _ in range(2)]
    wait_until(lambda: Run.objects.filter(status="succeeded").count() >= 3, message="some progress")
    for proc in first:
        proc.send(signal.SIGKILL)
    for proc in first:
        proc.wait(10)
    wait_until(
        lambda: Run.objects.interrupted().exists() or not Run.objects.running().exists(), timeout=10
    )
    for _ in range(2):
        workers("--no-schedules", "--concurrency", "2", env=LEASE)
    wait_until(
        lambda: Run.objects.filter(status="succeeded").count() == 20,
        timeout=60,
        message="all runs to finish",
    )
    counts = effects()
    for run in runs:
        assert (
            counts[(str(run.id), "one")] == 1
            or StepAttempt.objects.filter(run=run, step__name="one", outcome="interrupted").exists()
        )
        assert counts[(str(run.id), "three")] <= 2
    # a step whose result was committed has exactly one succeeded attempt
    from django.db.models import Count

    doubles = (
        StepAttempt.objects.filter(outcome="succeeded")
        .values("step")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    assert not doubles.exists()


def test_frozen_worker_past_its_lease_commits_nothing(test_pipelines, workers, effects):
    run = enqueue("t-recorded-three", metadata={"seconds": 2})
    frozen = workers("--no-schedules", env=LEASE)
    wait_until(lambda: effects(run.id).get((str(run.id), "two")), message="step two to start")
    frozen.send(signal.SIGSTOP)
    rescuer = workers("--no-schedules", env=LEASE)
    wait_until(lambda: status_of(run) == RunStatus.SUCCEEDED, timeout=30, message="the takeover")
    frozen.send(signal.SIGCONT)
    # The old worker wakes up, finds its fence gone, and writes nothing for the run.
    wait_until(
        lambda: "Lost run" in frozen.log() or "no longer ours" in frozen.log(),
        timeout=15,
        message="the old worker to notice",
    )
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    frozen_row = frozen_worker_id(frozen.pid)
    two = StepAttempt.objects.filter(run=run, step__name="two")
    assert [a.outcome for a in two.order_by("number")] == [
        AttemptOutcome.INTERRUPTED,
        AttemptOutcome.SUCCEEDED,
    ]
    assert not two.filter(worker_id=frozen_row, outcome="succeeded").exists()
    assert effects(run.id)[(str(run.id), "three")] == 1
    rescuer.send(signal.SIGTERM)
    frozen.send(signal.SIGTERM)
    assert rescuer.wait(10) == 0
    assert frozen.wait(10) == 0


def frozen_worker_id(pid: int) -> int:
    from runs.models import Worker

    return Worker.objects.get(pid=pid).id


@pytest.mark.postgres
def test_racing_sweeps_recover_each_run_exactly_once(test_pipelines):
    from django.db.models import Count

    runs = [enqueue("t-three") for _ in range(30)]
    Run.objects.filter(id__in=[r.id for r in runs]).update(
        status="running", current_step="one", fence=1, lease_expires_at="2000-01-01T00:00:00Z"
    )
    from runs.models import Step

    Step.objects.filter(run__in=runs, name="one").update(status="running")
    recovered: list[list] = []
    at_once(lambda: recovered.append(recover_interrupted(auto_resume=True).recovered), 4)
    everything = [run_id for batch in recovered for run_id in batch]
    assert sorted(map(str, everything)) == sorted(str(r.id) for r in runs)
    assert set(Run.objects.values_list("interruptions", flat=True)) == {1}
    per_run = (
        StepAttempt.objects.filter(outcome="interrupted").values("run").annotate(n=Count("id"))
    )
    assert {row["n"] for row in per_run} == {1} and len(per_run) == 30


def test_poison_run_is_quarantined_and_workers_carry_on(test_pipelines, workers):
    poison = enqueue("t-poison")
    env = {**LEASE, "ORBIT_MAX_INTERRUPTIONS": "2"}
    procs = [workers("--no-schedules", env=env)]

    def restart_dead() -> bool:
        for proc in list(procs):
            if proc.process.poll() is not None:
                procs.remove(proc)
                procs.append(workers("--no-schedules", env=env))
        return status_of(poison) == RunStatus.FAILED

    wait_until(restart_dead, timeout=60, interval=0.2, message="the poison run to be quarantined")
    run = Run.objects.get(id=poison.id)
    assert run.error == (
        "Quarantined: the run interrupted its worker 3 times, last in step 'kills-worker' "
        "(ORBIT_MAX_INTERRUPTIONS=2)"
    )
    healthy = enqueue("t-single")
    wait_until(restart_dead, timeout=1)
    wait_until(
        lambda: status_of(healthy) == RunStatus.SUCCEEDED, timeout=30, message="a healthy run"
    )


@pytest.mark.postgres
def test_killed_database_connections_are_reopened(test_pipelines, workers, effects):
    run = enqueue("t-recorded-three", metadata={"seconds": 1.5})
    worker = workers("--no-schedules", env=LEASE)
    wait_until(lambda: effects(run.id).get((str(run.id), "two")), message="step two to start")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND application_name NOT LIKE 'pytest%%'"
        )
    wait_until(
        lambda: status_of(run) == RunStatus.SUCCEEDED, timeout=30, message="the run to finish"
    )
    assert "Database unavailable" in worker.log() or "LISTEN connection lost" in worker.log()
    assert effects(run.id)[(str(run.id), "three")] == 1
    later = enqueue("t-single")
    wait_until(
        lambda: status_of(later) == RunStatus.SUCCEEDED,
        timeout=15,
        message="a run after the reconnect",
    )


@pytest.mark.postgres
def test_a_step_process_notices_its_killed_connection_before_the_next_step(
    test_pipelines, workers, effects
):
    """A step process keeps the connection its step code opened from one task to the
    next. One killed in between is found by the health check before the next step uses
    it, so that step succeeds at its first attempt instead of failing on a dead socket."""
    workers("--no-schedules", "--concurrency", "1", env=LEASE)  # one step process
    first = enqueue("t-recorded")
    wait_until(lambda: status_of(first) == RunStatus.SUCCEEDED, message="the first run")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND query LIKE 'INSERT INTO orbit_test_effects%%' AND query LIKE %s",
            [f"%{first.id}%"],  # its step's own INSERT, the last statement it sent
        )
        assert cursor.fetchone() == (1,)  # the step process's, idle since its step
    second = enqueue("t-recorded")
    wait_until(lambda: status_of(second) == RunStatus.SUCCEEDED, message="the second run")
    assert effects(second.id) == {(str(second.id), "only"): 1}
    assert list(StepAttempt.objects.filter(run=second).values_list("outcome", flat=True)) == [
        AttemptOutcome.SUCCEEDED
    ]


@pytest.mark.postgres
@pytest.mark.skipif(
    not __import__("os").environ.get("ORBIT_TEST_RESTART_POSTGRES"),
    reason="restarts the machine's PostgreSQL: set ORBIT_TEST_RESTART_POSTGRES=1 (CI does)",
)
def test_postgres_restart_under_load(test_pipelines, workers, effects):
    runs = [enqueue("t-recorded-three-retrying", metadata={"seconds": 0.2}) for _ in range(30)]
    started = [workers("--no-schedules", "--concurrency", "2", env=LEASE) for _ in range(2)]
    wait_until(lambda: Run.objects.filter(status="succeeded").count() >= 2, message="some progress")
    connections.close_all()
    cluster = subprocess.run(
        ["bash", "-c", "ls /etc/postgresql"], capture_output=True, text=True
    ).stdout.strip()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "restart", "-m", "fast"],
        check=True,
        timeout=60,
    )
    try:
        wait_until(
            lambda: _count_succeeded() == 30,
            timeout=90,
            interval=0.5,
            message="every run to finish after the restart",
        )
    except AssertionError:
        states = list(Run.objects.exclude(status="succeeded").values_list("status", "error"))
        attempts = list(
            StepAttempt.objects.exclude(outcome="succeeded").values_list("outcome", "error")
        )
        tails = "\n".join(w.log()[-3000:] for w in started)
        states += attempts
        raise AssertionError(f"runs: {states}\nworker logs:\n{tails}") from None
    from django.db.models import Count

    doubles = (
        StepAttempt.objects.filter(outcome="succeeded")
        .values("step")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    assert not doubles.exists()
    assert len(runs) == 30


def _count_succeeded() -> int:
    try:
        return Run.objects.filter(status="succeeded").count()
    except Exception:
        connections.close_all()
        return 0
