"""One enqueue's statement sent three ways, alternating (not a test):

    python bench/bench_statement_modes.py [--rounds 12] [--calls 300]

`orbit_insert_run` with one run's values, as `enqueue()` sends it, over psycopg: bound on
the client (Django's default cursor: PostgreSQL parses the text every time), bound on the
server but not prepared, and prepared once (runs/store/prepared.py). Each round times
--calls calls of each way, in turn, taking the ways in reverse order every other round,
on the bench database (recreated and migrated first). Prints each way's median and
fastest microseconds per call. docs/PERFORMANCE.md, "Prepared once per connection".
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()

    bench_worker.setup("postgres")
    bench_worker.django_ready("postgres")
    import django

    django.setup()
    import psycopg

    from runs import enqueue
    from runs.store.listen import CHANNEL
    from runs.store.queries import sql

    statement = sql("insert_run")  # the store's own text (runs/store/sql/runs.sql)
    pipeline_id = enqueue("bench-noop").pipeline_id  # the pipeline row, as enqueue made it

    def values() -> dict[str, Any]:
        """One run's values, as `PostgresStore._insert_run` sends a no-op's."""
        return {
            "id": uuid.uuid4(), "pipeline_id": pipeline_id, "steps": ["noop"],
            "current_step": "noop", "metadata": "{}", "priority": 0, "queue": "default",
            "run_after": None, "delay": 0.0, "idempotency_key": None, "unique_key": None,
            "scheduled_for": None, "rerun_of": None, "trace_context": "{}",
            "action": "run.created", "source": "code", "user_id": None, "actor": "code",
            "ip_address": None, "target_type": "runs.run", "target_repr": "bench-noop run",
            "changes": '{"queue": "default", "pipeline": "bench-noop", "priority": 0}',
            "pipeline": None, "channel": CHANNEL,
        }  # fmt: skip

    url = bench_worker.PG_URL
    client = psycopg.connect(url, autocommit=True, cursor_factory=psycopg.ClientCursor)
    server = psycopg.connect(url, autocommit=True)
    kept = psycopg.connect(url, autocommit=True)
    ways: dict[str, Callable[[], object]] = {
        "bound on the client (Django's default)": lambda: client.execute(
            statement, values()
        ).fetchall(),
        "bound on the server, not prepared": lambda: server.execute(
            statement, values(), prepare=False
        ).fetchall(),
        "prepared once (Orbit's store)": lambda: kept.execute(
            statement, values(), prepare=True
        ).fetchall(),
    }
    timings: dict[str, list[float]] = {name: [] for name in ways}
    for round_ in range(args.rounds):
        order = list(ways) if round_ % 2 == 0 else list(reversed(ways))
        for name in order:
            call = ways[name]
            started = time.perf_counter()
            for _ in range(args.calls):
                call()
            timings[name].append((time.perf_counter() - started) / args.calls * 1e6)
    for name, found in timings.items():
        print(
            f"{name:40} median {statistics.median(found):5.0f} us"
            f"  fastest round {min(found):5.0f} us"
        )


if __name__ == "__main__":
    main()
