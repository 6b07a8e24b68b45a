"""What a worker's commit costs per run, with and without an attempt's foreign keys.

A drain's rate moves by more on a 2-core VM than one statement's share of it, so this
times the statement alone: each round enqueues `--n` one-step no-op runs, claims them 32
at a time and commits each batch as a worker does (`store().commit`: the run, its step
and an attempt per run, one statement, one transaction), timing only the commits. Two
databases, alternating round by round: one migrated to the end, one migrated back to
`--before` (default 0027, where an attempt still had its foreign keys to its run and
step, each checked by a query per attempt at COMMIT). The same code writes to both.

    python bench/bench_commit.py                      # 5 rounds of 6,400 runs
    python bench/bench_commit.py --rounds 9 --n 3200

Prints each round's median commit time per run (us, the client's clock: Python's
encoding and the round trip are in both) and the medians over the rounds. PostgreSQL only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import bench_worker  # type: ignore[import-not-found]  # bench/, beside this file

ROOT: Path = bench_worker.ROOT
#: BENCH_DATABASE_URL, as the other benchmarks read it: two databases named after it.
BASE_URL: str = bench_worker.PG_URL
BATCH = 32


def _env(url: str) -> dict[str, str]:
    """The benchmark workers' environment (bench_worker.py), on the database at `url`."""
    return {**bench_worker.env_for("postgres"), "DATABASE_URL": url}


def _fresh(url: str, before: str | None) -> None:
    """A new database at `url`, migrated to the end, then back to `before` if given."""
    import psycopg

    admin, name = url.rsplit("/", 1)
    with psycopg.connect(admin + "/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    manage = [sys.executable, "manage.py", "migrate", "-v0"]
    subprocess.run(manage, cwd=ROOT, env=_env(url), check=True)
    if before is not None:
        subprocess.run([*manage, "runs", before], cwd=ROOT, env=_env(url), check=True)


def one_round(n: int) -> float:
    """In this process (DATABASE_URL set): the median commit time per run, in us."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "orbit.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from runs import enqueue_many
    from runs.store import store
    from runs.store import transitions as t
    from runs.store.records import AttemptRecord, ClaimRequest, Outcome

    for start in range(0, n, 1000):
        enqueue_many("bench-noop", [{}] * min(1000, n - start))
    request = ClaimRequest(
        worker_id=None, limit=BATCH, queues=("default",), lease_seconds=60.0, definitions=None
    )
    per_run: list[float] = []
    while claims := store().claim(request):
        outcomes = [
            Outcome(
                held=c.held,
                run=t.SUCCEED,
                run_values={"running_time": 0.001},
                step_id=c.steps[0].id,
                step=t.STEP_SUCCEED,
                step_values={"result": None, "result_json": "null", "duration": 0.001},
                attempt=AttemptRecord(
                    step_id=c.steps[0].id, number=1, outcome="succeeded", duration=0.001
                ),
            )
            for c in claims
        ]
        started = time.perf_counter()
        committed = store().commit(outcomes)
        per_run.append((time.perf_counter() - started) / len(outcomes))
        assert len(committed) == len(outcomes), "a commit lost runs"
    return statistics.median(per_run) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=6400, help="runs per round")
    parser.add_argument("--before", default="0027", help="the runs migration to compare with")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(f"{one_round(args.n):.1f}")
        return
    trees = {"now": BASE_URL + "_commit_now", f"at {args.before}": BASE_URL + "_commit_before"}
    _fresh(trees["now"], None)
    _fresh(trees[f"at {args.before}"], args.before)
    results: dict[str, list[float]] = {name: [] for name in trees}
    for i in range(args.rounds):
        for name, url in trees.items():
            out = subprocess.run(
                [sys.executable, __file__, "--one", "--n", str(args.n)],
                cwd=ROOT,
                env=_env(url),
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            results[name].append(float(out.strip().splitlines()[-1]))
            print(f"round {i + 1} {name:>8}: {results[name][-1]:.1f} us a run", flush=True)
    print(f"\ncommit time per run, medians of {args.rounds} rounds of {args.n} runs:")
    for name, values in results.items():
        print(f"  {name:>8}: {statistics.median(values):.1f} us")


if __name__ == "__main__":
    main()
