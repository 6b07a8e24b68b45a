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
twentieth"). The samples are taken by `take`, the same as `bench_worker.py`'s pickup rows
(and so `make bench`'s), so the parts add up to the figure those print.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    """One run's pickup, as epoch seconds."""

    called: float  # just before the enqueue call (wall clock)
    created: float  # its run's INSERT (database clock)
    claimed: float  # its first step's start: the claim (database clock)
    stamped: float  # the step function's first line (wall clock, from the step's stamp)


def take(n: int, gap: float, stamps: Path) -> list[Sample]:
    """Enqueue n `bench-stamp` runs one at a time for the idle worker already started,
    each a random gap of up to `gap` seconds after the last one's stamp appeared.

    Waited for as the peers' benchmark waits for its jobs (`wait_lines` in
    ../shared/bench/peers/bench_systems.py): by reading the stamp file every 2 ms, with
    no query while the run is being picked up, and the gap runs from the stamp. The
    database's times are read inside the gap. Until 5 December this asked the database
    every 2 ms whether the run had succeeded, during the pickup too, and began the gap
    after; the figures did not move beyond noise when it changed (docs/PERFORMANCE.md,
    "Pickup sampled as the peers sample theirs"), but now nothing differs."""
    from runs import enqueue
    from runs.models import Run, Step

    samples = []
    for i in range(n):
        called = time.time()
        run = enqueue("bench-stamp", metadata={"i": i})
        stamped = _stamp(stamps, i)
        next_at = time.monotonic() + random.uniform(0, gap)
        _succeeded(run.id)
        samples.append(
            Sample(
                called=called,
                created=Run.objects.get(id=run.id).created_at.timestamp(),
                claimed=Step.objects.get(run=run).started_at.timestamp(),
                stamped=stamped,
            )
        )
        time.sleep(max(0.0, next_at - time.monotonic()))
    return samples


def warm_up(stamps: Path) -> None:
    """One run picked up before the samples, then half a second idle: as the peers'
    benchmark starts its own (its warm-up job)."""
    from runs import enqueue

    run = enqueue("bench-stamp", metadata={"i": -1})
    _stamp(stamps, -1, timeout=60)
    _succeeded(run.id)
    time.sleep(0.5)


def _stamp(stamps: Path, i: int, timeout: float = 30) -> float:
    """When run `i`'s step began, once its stamp is the file's last line, read every
    2 ms as the peers read theirs."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        lines = stamps.read_text().splitlines()
        if lines and lines[-1].split()[0] == str(i):
            return float(lines[-1].split()[1])
        time.sleep(0.002)
    raise RuntimeError(f"no stamp from pickup sample {i} within {timeout:g} s")


def _succeeded(run_id: object, timeout: float = 30) -> None:
    """Wait for the run's success, once its step has stamped (outside the sample)."""
    from runs.models import Run

    end = time.monotonic() + timeout
    while not Run.objects.filter(id=run_id, status="succeeded").exists():
        if time.monotonic() > end:
            raise RuntimeError(f"run {run_id} did not succeed within {timeout:g} s")
        time.sleep(0.002)


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
    parser.add_argument(
        "--gap",
        type=float,
        default=None,
        help="the longest random gap between runs, seconds (default: make bench's, "
        "bench_worker.PICKUP_GAP_POSTGRES)",
    )
    args = parser.parse_args()
    tree = args.tree.resolve()
    sys.path[:0] = [str(tree), str(tree / "bench")]
    os.chdir(tree)
    os.environ["BENCH_DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{args.database}"
    import bench_worker  # type: ignore[import-not-found]  # the tree's own

    bench_worker.setup("postgres")
    bench_worker.django_ready("postgres")
    stamps = Path(bench_worker.LAT_FILE)
    stamps.write_text("")
    workers = bench_worker.start_workers("postgres", 1, 1)
    warm_up(stamps)
    # a --tree from before 5 December has no such constant: its pickup rows used 0.1 s
    gap = args.gap if args.gap is not None else getattr(bench_worker, "PICKUP_GAP_POSTGRES", 0.1)
    samples = take(args.n, gap, stamps)
    bench_worker.stop(workers)
    to_insert = [(s.created - s.called) * 1000 for s in samples]
    to_claim = [(s.claimed - s.created) * 1000 for s in samples]
    to_step = [(s.stamped - s.claimed) * 1000 for s in samples]
    whole = [(s.stamped - s.called) * 1000 for s in samples]
    median = statistics.median
    print(
        f"{tree} ({args.n} runs), ms, median: enqueue call to INSERT {median(to_insert):.2f}, "
        f"INSERT to claim {median(to_claim):.2f}, claim to step {median(to_step):.2f}, "
        f"whole {median(whole):.2f}; p95: INSERT to claim {percentile(to_claim, 0.95):.2f}, "
        f"whole {percentile(whole, 0.95):.2f}"
    )


if __name__ == "__main__":
    main()
