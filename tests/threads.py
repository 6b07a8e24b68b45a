"""Work done by several threads at once, each on database connections of its own: how the
concurrency tests race claims, sweeps and enqueues against each other."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connections


def at_once(work: Callable[[], object], count: int, *, timeout: float = 30) -> None:
    """Run `work` in `count` threads released together (a barrier), each closing its
    connections when done, and wait for them all. Fails when a thread is still running
    after `timeout` seconds, and raises the first error a thread met, so a race lost by
    an exception is reported as that exception."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=timeout)
            work()
        except BaseException as error:  # raised below, in the test's own thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    running = sum(thread.is_alive() for thread in threads)
    assert not running, f"{running} of {count} threads still running after {timeout} s"
    if errors:
        raise errors[0]
