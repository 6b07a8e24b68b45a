"""Pickup on PostgreSQL, broken into its parts (not a test).

    python bench/bench_pickup.py --n 100
    python bench/bench_pickup.py --tree /path/to/another/checkout   # that tree's code, same venv

One idle worker (concurrency 1); runs of `bench-stamp` are enqueued one at a time, with
random gaps as `bench_worker.py`'s pickup takes them, and each is split into where its
time went: the enqueue call to its run's INSERT (the statement's start, by the database
clock), the INSERT to the claim (its step's `started_at`), and the claim to the step
function's first line (the stamp the step writes). The database and the wall clock are
the same host's clock. Prints medians, and the 95th percentile of the INSERT to the
claim and of the whole, so a change to the worker's wake-up, claim or hand-over to its
step process shows in the part it moved (docs/PERFORMANCE.md, "Pickup's slowest
twentieth").
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(int(len(ordered) * fraction) - 1, 0)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100, help="runs picked up")
    parser.add_argument(
        "--tree", type=Path, default=Path(__file__).resolve().parent.parent, help="the checkout"
    )
    parser.add_argument(
        "--database",
        default="orbit_bench_pickup",
        help="the PostgreSQL database to create (dropped first) on 127.0.0.1",
    )
    args = parser.parse_args()
    tree = args.tree.resolve()
    sys.path[:0] = [str(tree), str(tree / "bench")]
    os.chdir(tree)
    os.environ["BENCH_DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{args.database}"
    import bench_worker  # type: ignore[import-not-found]  # the tree's own

    bench_worker.setup("postgres")
    bench_worker.django_ready("postgres")
    from runs import enqueue
    from runs.models import Run, Step

    stamps = Path(bench_worker.LAT_FILE)
    stamps.write_text("")
    workers = bench_worker.start_workers("postgres", 1, 1)
    time.sleep(3)  # started and listening
    to_insert: list[float] = []
    to_claim: list[float] = []
    to_step: list[float] = []
    for i in range(args.n):
        called = time.time()
        run = enqueue("bench-stamp", metadata={"i": i})
        while not Run.objects.filter(id=run.id, status="succeeded").exists():
            time.sleep(0.002)
        created = Run.objects.get(id=run.id).created_at.timestamp()
        claimed = Step.objects.get(run=run).started_at.timestamp()
        index, stamped = stamps.read_text().splitlines()[-1].split()
        assert int(index) == i, f"sample {i} read the stamp of run {index}"
        to_insert.append((created - called) * 1000)
        to_claim.append((claimed - created) * 1000)
        to_step.append((float(stamped) - claimed) * 1000)
        time.sleep(random.uniform(0, 0.1))
    bench_worker.stop(workers)
    whole = [a + b + c for a, b, c in zip(to_insert, to_claim, to_step, strict=True)]
    median = statistics.median
    print(
        f"{tree} ({args.n} runs), ms, median: enqueue call to INSERT {median(to_insert):.2f}, "
        f"INSERT to claim {median(to_claim):.2f}, claim to step {median(to_step):.2f}, "
        f"whole {median(whole):.2f}; p95: INSERT to claim {percentile(to_claim, 0.95):.2f}, "
        f"whole {percentile(whole, 0.95):.2f}"
    )


if __name__ == "__main__":
    main()
