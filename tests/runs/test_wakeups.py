"""SQLite pickup: a worker process hears of a new run by a datagram, not by its poll
(runs/store/datagrams.py); on PostgreSQL the same holds by NOTIFY."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import time

import pytest

from pipelines.models import Pipeline
from runs import enqueue
from runs.models import Run
from runs.models import Worker as WorkerRow
from runs.store import datagrams, store
from tests.processes import cpu_seconds, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

#: Far longer than any pickup below: a run picked up sooner was announced, not polled for.
POLL = "5"


def idle_worker(workers, *args: str):
    """A worker process listening for announcements and idle, with a poll far away."""
    worker = workers("--no-schedules", *args, env={"ORBIT_POLL_INTERVAL": POLL})
    wait_until(
        lambda: WorkerRow.objects.filter(state="running").exists(), message="the worker to start"
    )
    # Its first run proves it listens (its next poll is POLL * 10 s away once it does).
    warm_up = enqueue("t-single")
    wait_until(lambda: Run.objects.filter(id=warm_up.id, status="succeeded").exists())
    return worker


def picked_up(n: int = 5) -> list[float]:
    """Seconds from each enqueue (here, another process) to its claim by the worker."""
    latencies = []
    for _ in range(n):
        started = time.monotonic()
        run = enqueue("t-single")
        wait_until(
            lambda run=run: Run.objects.filter(id=run.id).exclude(status="pending").exists(),
            timeout=float(POLL) * 3,
            interval=0.005,
        )
        latencies.append(time.monotonic() - started)
        time.sleep(0.05)  # let it go idle again
    return latencies


def assert_woken(latencies: list[float]) -> None:
    """Well under the poll: the median within 0.3 s, the slowest within 1 s (a loaded
    machine), where polling would take up to 5 s."""
    assert statistics.median(latencies) < 0.3, latencies
    assert max(latencies) < 1.0, latencies


def test_an_idle_worker_picks_up_a_run_enqueued_elsewhere_at_once(test_pipelines, workers):
    worker = idle_worker(workers)
    assert_woken(picked_up())
    worker.send(signal.SIGTERM)
    assert worker.wait(10) == 0


def test_a_dead_workers_socket_does_not_stop_the_others_hearing(test_pipelines, workers, tmp_path):
    directory = datagrams.wake_directory()
    if directory is None:
        pytest.skip("PostgreSQL announces by NOTIFY: no sockets to go stale")
    # A worker that died without closing its socket: the file is there, nobody reads it.
    directory.mkdir(exist_ok=True)
    stale = directory / "999999-deadbeef.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(stale))
    dead.close()
    assert stale.exists()
    worker = idle_worker(workers)
    assert_woken(picked_up())
    assert not stale.exists()  # the first sender that found it stale removed it
    worker.send(signal.SIGTERM)
    assert worker.wait(10) == 0
    # The worker removed its own socket as it stopped.
    assert [p for p in os.listdir(directory) if p.startswith(f"{worker.pid}-")] == []


def test_announcing_outside_a_transaction_with_nobody_waiting_is_harmless(db):
    store().announce()  # no directory, or an empty one: nothing to send, nothing raised


def test_two_worker_processes_drain_without_lock_errors(test_pipelines, workers, effects):
    runs = [enqueue("t-recorded-three", metadata={"seconds": 0}) for _ in range(200)]
    procs = [workers("--concurrency", "4", "--burst", "--no-schedules") for _ in range(2)]
    for proc in procs:
        assert proc.wait(120) == 0, proc.log()
    for proc in procs:
        assert "database is locked" not in proc.log(), proc.log()
    assert Run.objects.filter(status="succeeded").count() == len(runs)
    counts = effects()
    assert len(counts) == len(runs) * 3
    assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v != 1}


def test_an_idle_worker_with_no_limit_anywhere_rests_after_an_announcement(test_pipelines, workers):
    # An announcement without "plain" (a retry's release, a recovery, a stopping worker)
    # owes a claim under limits. With no limit anywhere that claim was never made, so it
    # stayed owed and the worker claimed again on every turn of its loop: a busy core and
    # a claim statement after another, for ever.
    Pipeline.objects.limited().update(enabled=False)
    worker = idle_worker(workers)
    store().announce()
    # Heard by now: it came before this run's own announcement.
    run = enqueue("t-single")
    wait_until(lambda: Run.objects.filter(id=run.id, status="succeeded").exists())
    before = cpu_seconds(worker.pid)
    time.sleep(2.0)  # the window measured, not a wait for something to happen
    assert cpu_seconds(worker.pid) - before < 0.3
    worker.send(signal.SIGTERM)
    assert worker.wait(10) == 0
