"""`make bench`'s PostgreSQL drains, checkout against checkout (issue 14's "before and after").

    python bench/bench_trees.py --tree /tmp/before --tree .             # 3 rounds each way round
    python bench/bench_trees.py --tree /tmp/before --tree . --rounds 1  # a quick look

Each drain runs a tree's own `bench_worker.drain` (its code, migrations and engine, with
this venv) in a process of its own, on a fresh database: 2,000 runs of the one-step and
the three-step pipeline, one and two `runworker --concurrency 32` processes, workers at
WARNING unless BENCH_ORBIT_LOG_LEVEL says otherwise. A round drains every tree once;
half the rounds take the trees in the order given and half in the reverse order, so
neither tree always runs on a machine the other has just warmed. Prints each drain, then
medians: runs/s by the peers' formula (`make bench`'s figure: from the first poll that
sees a run finished) and over the whole drain by the database clock (first step started
to last step finished), which a tree from before `whole_drain_rate` is read for here too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

#: (pipeline, worker processes, steps a run): the rows of `make bench`'s PostgreSQL drains.
DRAINS = (("bench-noop", 1, 1), ("bench-noop", 2, 1), ("bench-three", 1, 3), ("bench-three", 2, 3))
RUNS = 2000


def one_drain(tree: Path, pipeline: str, workers: int, steps: int) -> dict[str, float]:
    """One drain with `tree`'s code, in this process."""
    sys.path[:0] = [str(tree), str(tree / "bench")]
    os.chdir(tree)
    import bench_worker  # type: ignore[import-not-found]  # the tree's own

    bench_worker.ROOT = tree
    bench_worker.setup("postgres")
    bench_worker.django_ready("postgres")
    figures = bench_worker.drain("postgres", pipeline, RUNS, workers, steps)
    from django.db import connection

    with connection.cursor() as cursor:  # the same for every tree: the tables never changed
        cursor.execute(
            "SELECT count(DISTINCT r.id), "
            "EXTRACT(EPOCH FROM max(s.finished_at) - min(s.started_at)) "
            "FROM runs_run r JOIN runs_step s ON s.run_id = r.id WHERE r.status = 'succeeded'"
        )
        finished, span = cursor.fetchone()
    return {"runs_per_s": figures["runs_per_s"], "whole": float(finished) / float(span)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, action="append", help="a checkout (repeatable)")
    parser.add_argument("--rounds", type=int, default=6, help="half in each order")
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    trees = [t.resolve() for t in args.tree or [Path(__file__).resolve().parent.parent]]
    if args.one:
        pipeline, workers, steps = args.one
        print(json.dumps(one_drain(trees[0], pipeline, int(workers), int(steps))))
        return
    results: dict[tuple[Path, str, int], list[dict[str, Any]]] = {}
    for i in range(args.rounds):
        order = trees if i % 2 == 0 else trees[::-1]
        for tree in order:
            for pipeline, workers, steps in DRAINS:
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--tree",
                        str(tree),
                        "--one",
                        pipeline,
                        str(workers),
                        str(steps),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                figures = json.loads(out.strip().splitlines()[-1])
                results.setdefault((tree, pipeline, workers), []).append(figures)
                print(
                    f"round {i + 1} {tree} {pipeline} {workers}p: {figures['runs_per_s']:.0f} "
                    f"runs/s, whole drain {figures['whole']:.0f}",
                    flush=True,
                )
    print(f"\nmedians of {args.rounds} rounds, runs/s (peers' formula / whole drain)")
    for (tree, pipeline, workers), rounds in results.items():
        formula = statistics.median(r["runs_per_s"] for r in rounds)
        whole = statistics.median(r["whole"] for r in rounds)
        print(f"{tree!s:<32} {pipeline:<12} {workers}p {formula:>7.0f} {whole:>7.0f}")


if __name__ == "__main__":
    main()
