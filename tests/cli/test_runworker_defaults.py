"""`runworker`'s default concurrency: sized for the host, ORBIT_WORKER_CONCURRENCY over it,
--concurrency over both (the Procfile passes none, so these are what a deploy gets)."""

from __future__ import annotations

import pytest

from orbit.core.conf import default_worker_concurrency
from runs.models import Worker
from tests.cli.test_cli import orbit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(("cpus", "slots"), [(1, 16), (2, 16), (4, 16), (5, 20), (8, 32), (96, 64)])
def test_default_concurrency_is_four_per_cpu_between_16_and_64(cpus, slots):
    assert default_worker_concurrency(cpus) == slots


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ((), {}, default_worker_concurrency()),
        ((), {"ORBIT_WORKER_CONCURRENCY": "3"}, 3),
        (("--concurrency", "5"), {"ORBIT_WORKER_CONCURRENCY": "3"}, 5),
    ],
)
def test_a_worker_runs_at_the_concurrency_it_was_given_or_the_default(
    test_pipelines, args, env, expected
):
    done = orbit("worker", "--burst", "--no-schedules", *args, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert Worker.objects.get().concurrency == expected


def test_a_bad_worker_concurrency_setting_stops_the_worker_with_a_clear_error(test_pipelines):
    done = orbit("worker", "--burst", env={"ORBIT_WORKER_CONCURRENCY": "many"})
    assert done.returncode == 1
    assert "ORBIT_WORKER_CONCURRENCY must be a whole number of 1 or more, not 'many'" in (
        done.stderr
    )
    assert not Worker.objects.exists()


def test_runworker_called_in_process_returns_to_its_caller(test_pipelines):
    """Only the real `runworker` process ends itself at once when its loop stops
    (runworker.exit_now); `call_command` returns, here with the run done."""
    from django.core.management import call_command

    from runs import enqueue
    from runs.models import Run

    run = enqueue("t-single")
    call_command("runworker", "--burst", "--no-schedules", "--no-listen", "--concurrency", "1")
    assert Run.objects.get(id=run.id).status == "succeeded"
    assert Worker.objects.get().state == "stopped"
