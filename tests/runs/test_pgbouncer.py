"""Many worker processes, one database, through a real PgBouncer in transaction pooling.

PgBouncer hands a client a server connection for one transaction at a time, so nothing
that lives in a session survives between two statements: prepared statements, server-side
cursors, LISTEN. Orbit's connections bind parameters on the client (Django's default
cursor: nothing is prepared), server-side cursors are turned off in the URL, and the
workers LISTEN on ORBIT_LISTEN_DATABASE_URL, straight to PostgreSQL; without it they
notice that announcements do not come back and poll. docs/WORKER-DEPLOYMENT.md.
"""

from __future__ import annotations

import pytest
from django.db import connection

from orbit.core.clock import db_now
from runs import enqueue
from runs.models import Run, RunStatus
from tests.pgbouncer import PgBouncer, installed
from tests.processes import database_env, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

POOL_SIZE = 6
WORKERS = 4
CONCURRENCY = 4
RUNS = 120


@pytest.fixture(scope="module")
def bouncer():
    if installed() is None:
        pytest.skip("pgbouncer is not installed and cannot be (apt-get install pgbouncer)")
    with PgBouncer(pool_size=POOL_SIZE) as running:
        yield running


def through(bouncer: PgBouncer, *, listen_direct: bool, app: str) -> dict[str, str]:
    """A worker's environment: the database through PgBouncer, LISTEN straight to it."""
    name = str(connection.settings_dict["NAME"])
    env = {
        "DATABASE_URL": bouncer.url(name, disable_server_side_cursors="true"),
        "PGAPPNAME": app,  # libpq names every connection of the worker and its children
        "ORBIT_POLL_INTERVAL": "0.5",
    }
    if listen_direct:
        env["ORBIT_LISTEN_DATABASE_URL"] = database_env()["DATABASE_URL"]
    return env


def test_workers_drain_through_pgbouncer_each_run_once(bouncer, workers, effects, test_pipelines):
    runs = [enqueue("t-recorded") for _ in range(RUNS)]
    started = [
        workers(
            "--concurrency",
            str(CONCURRENCY),
            env=through(bouncer, listen_direct=True, app=f"orbit-test-worker-{i}"),
        )
        for i in range(WORKERS)
    ]
    wait_until(
        lambda: Run.objects.filter(status=RunStatus.SUCCEEDED).count() == RUNS,
        timeout=120,
        message=f"{RUNS} runs drained through PgBouncer",
    )
    # Every run ran its step once, whichever worker claimed it.
    assert effects() == {(str(run.id), "only"): 1 for run in runs}
    # Each worker LISTENs on one direct connection of its own (a worker that started
    # last, on a loaded machine, may not have connected yet when the others have drained
    # every run: wait for it rather than read once)...
    expected = {f"orbit-test-worker-{i}": 1 for i in range(WORKERS)}

    def listening() -> dict[str, int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT application_name, count(*) FROM pg_stat_activity "
                "WHERE application_name LIKE 'orbit-test-worker-%%' AND query LIKE '%%LISTEN %%' "
                "GROUP BY 1"
            )
            return dict(cursor.fetchall())

    wait_until(lambda: listening() == expected, timeout=60, message="each worker listening once")
    assert listening() == expected
    # ...and everything else shares PgBouncer's pool: never more server connections than it.
    servers = [
        s for s in bouncer.show("SERVERS") if s["database"] == connection.settings_dict["NAME"]
    ]
    assert 1 <= len(servers) <= POOL_SIZE
    clients = {c["application_name"] for c in bouncer.show("CLIENTS")}
    assert {f"orbit-test-worker-{i}" for i in range(WORKERS)} <= clients
    # A run enqueued now is picked up by announcement, not by the 5 s safety-net poll.
    late = enqueue("t-recorded")
    wait_until(
        lambda: Run.objects.filter(id=late.id, status=RunStatus.SUCCEEDED).exists(),
        timeout=4,
        message="a run announced through PgBouncer, heard on the direct LISTEN connection",
    )
    for worker in started:
        log = worker.log()
        assert "prepared statement" not in log, log
        assert "Database unavailable" not in log, log
        assert "do not reach the LISTEN connection" not in log, log
    assert "prepared statement" not in bouncer.log()


def test_without_a_direct_listen_url_a_worker_warns_and_polls(bouncer, workers, test_pipelines):
    worker = workers(env=through(bouncer, listen_direct=False, app="orbit-test-polling"))
    wait_until(
        lambda: "do not reach the LISTEN connection" in worker.log(),
        timeout=30,
        message="the warning that announcements do not come back through PgBouncer",
    )
    assert (
        "Announcements sent through the database connection do not reach the LISTEN "
        "connection (is DATABASE_URL a PgBouncer in transaction pooling? Set "
        "ORBIT_LISTEN_DATABASE_URL to PostgreSQL itself); polling instead" in worker.log()
    )
    run = enqueue("t-single")
    wait_until(
        lambda: Run.objects.filter(id=run.id, status=RunStatus.SUCCEEDED).exists(),
        timeout=30,
        message="a run found by polling",
    )
    assert Run.objects.get(id=run.id).finished_at <= db_now()
