"""Delayed runs' lateness (not a test): how long after its `available_at` a delayed run
is claimed, by the database clock (`started_at - available_at`).

    python bench/bench_delay.py [--n 200] [--spread 10] [--workers 1] [--concurrency 8]

Against a fresh PostgreSQL database (BENCH_DATABASE_URL) with real `runworker`
processes already idle: `n` runs of a no-op pipeline are queued with `enqueue_many`
batches whose delays are spread over `spread` seconds, then the bench waits for them
all to finish and prints p50/p95/max lateness in milliseconds (docs/FLOW-CONTROL.md).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orbit_bench_delay")

from bench.bench_worker import django_ready, setup, start_workers, stop  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--spread", type=float, default=10.0, help="seconds")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    setup("postgres")
    django_ready("postgres")
    from django.db.models import F

    from runs import enqueue
    from runs.models import Run, RunStatus

    workers = start_workers("postgres", args.workers, args.concurrency)
    try:
        enqueue("bench-noop")  # a warm-up run: the workers are up and idle once it is done
        deadline = time.monotonic() + 60
        while Run.objects.exclude(status=RunStatus.SUCCEEDED).exists():
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not start")
            time.sleep(0.1)
        Run.objects.all().delete()
        rng = random.Random(17)
        for _ in range(args.n):  # one at a time, as an application would queue them
            enqueue("bench-noop", delay=1.0 + rng.uniform(0, args.spread))
        deadline = time.monotonic() + args.spread + 60
        while Run.objects.exclude(status=RunStatus.SUCCEEDED).exists():
            if time.monotonic() > deadline:
                raise SystemExit("delayed runs did not all finish")
            time.sleep(0.2)
        late = sorted(
            (started - due).total_seconds() * 1000
            for started, due in Run.objects.annotate(due=F("available_at")).values_list(
                "started_at", "due"
            )
        )
    finally:
        stop(workers)
    p95 = late[max(0, round(0.95 * len(late)) - 1)]
    print(
        f"{len(late)} delayed runs over {args.spread:g} s, {args.workers} worker(s) x "
        f"{args.concurrency}: lateness p50 {statistics.median(late):.1f} ms, "
        f"p95 {p95:.1f} ms, max {late[-1]:.1f} ms, min {late[0]:.1f} ms"
    )


if __name__ == "__main__":
    main()
