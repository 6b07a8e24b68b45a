"""CPU per run, by whose CPU it is: the workers, their step processes, PostgreSQL.

A drain's rate on this 2-core machine moves by 10-20% from one run to the next; the CPU
each run costs moves far less, and it says where a difference comes from. Each round
queues `--n` one-step no-op runs, starts `--workers` runworker processes (concurrency
32) and, between the 1,500th finished run and the 1,500th before the end, reads the CPU
time (user + system, /proc/<pid>/stat) of the workers, of their children and of every
PostgreSQL backend, divided by the runs finished meanwhile; and, of each, the part spent
in the kernel (system time: pipe and socket reads and writes, waking processes).

    python bench/bench_cpu.py                                 # this checkout, 5 rounds
    python bench/bench_cpu.py --tree /tmp/before --tree .     # two checkouts, alternating
    BENCH_ORBIT_LOG_LEVEL=default python bench/bench_cpu.py   # workers at INFO

Each tree runs its own code (its bench_worker.py, migrations and engine) with this venv,
in a process of its own per round; trees alternate round by round. PostgreSQL only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: Runs left out at each end of a drain: the workers starting, and the last claims.
EDGE = 1500
CLASSES = ("worker", "child", "postgres")


def _ticks(pid: str) -> tuple[int, int]:
    """User and system CPU of a process so far, in clock ticks ((0, 0) once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0, 0
    return int(fields[11]), int(fields[12])


def _cpu(pids: dict[str, set[str]]) -> dict[str, tuple[int, int]]:
    """Each class's user and system ticks so far."""
    totals = {}
    for name in CLASSES:
        ticks = [_ticks(p) for p in pids[name]]
        totals[name] = (sum(t[0] for t in ticks), sum(t[1] for t in ticks))
    return totals


def _processes(workers: set[str]) -> dict[str, set[str]]:
    """The pids of each class: the workers, their children, and PostgreSQL's processes."""
    found: dict[str, set[str]] = {"worker": set(workers), "child": set(), "postgres": set()}
    listing = subprocess.run(
        ["ps", "-e", "-o", "pid=,ppid=,comm="], capture_output=True, text=True, check=True
    ).stdout
    for line in listing.splitlines():
        pid, ppid, comm = line.split(None, 2)
        if ppid in workers:
            found["child"].add(pid)
        elif comm.startswith("postgres"):
            found["postgres"].add(pid)
    return found


def one_round(tree: Path, n: int, workers: int) -> dict[str, Any]:
    """One drain with `tree`'s code, in this process: CPU us per run by class, and the
    rate over the same window."""
    sys.path[:0] = [str(tree), str(tree / "bench")]
    os.chdir(tree)
    import bench_worker  # type: ignore[import-not-found]  # the tree's own

    bench_worker.ROOT = tree
    bench_worker.setup("postgres")
    bench_worker.django_ready("postgres")
    from runs.models import Run

    try:
        from runs import enqueue_many

        for _ in range(0, n, 1000):
            enqueue_many("bench-noop", [{}] * 1000)
    except ImportError:  # a tree from before enqueue_many
        from runs import enqueue

        for _ in range(n):
            enqueue("bench-noop")
    procs = bench_worker.start_workers("postgres", workers, 32)
    done = Run.objects.filter(status="succeeded")
    while done.count() < EDGE:
        time.sleep(0.01)
    pids = _processes({str(p.pid) for p in procs})
    first, started = done.count(), time.perf_counter()
    before = _cpu(pids)
    while done.count() < n - EDGE:
        time.sleep(0.05)
    after = _cpu(pids)
    finished, elapsed = done.count() - first, time.perf_counter() - started
    while done.count() < n:
        time.sleep(0.05)
    bench_worker.stop(procs)
    tick = os.sysconf("SC_CLK_TCK")

    def per_run(ticks: int) -> int:
        return round(ticks / tick / finished * 1e6)

    figures: dict[str, Any] = {}
    for c in CLASSES:
        user, system = (after[c][k] - before[c][k] for k in (0, 1))
        figures[c] = per_run(user + system)
        figures[f"{c}_system"] = per_run(system)
    figures["total"] = sum(figures[c] for c in CLASSES)
    figures["runs_per_s"] = round(finished / elapsed)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, action="append", help="a checkout (repeatable)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=16_000, help="runs per drain")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    trees = [t.resolve() for t in args.tree or [Path(__file__).resolve().parent.parent]]
    if args.one:
        print(json.dumps(one_round(trees[0], args.n, args.workers)))
        return
    results: dict[Path, list[dict[str, Any]]] = {t: [] for t in trees}
    for i in range(args.rounds):
        for tree in trees:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    "--tree",
                    str(tree),
                    "--n",
                    str(args.n),
                    "--workers",
                    str(args.workers),
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            figures = json.loads(out.strip().splitlines()[-1])
            results[tree].append(figures)
            print(f"round {i + 1} {tree}: {figures}", flush=True)
    print(
        f"\nCPU us per run, medians of {args.rounds} rounds ({args.workers} workers, "
        f"{args.n} runs a drain, log level {os.environ.get('BENCH_ORBIT_LOG_LEVEL', 'WARNING')})"
    )
    print("(in brackets: the part spent in the kernel, system time)")
    print(f"{'tree':<32} {'worker':>11} {'child':>11} {'postgres':>11} {'total':>6} {'runs/s':>7}")
    keys = (*CLASSES, *(f"{c}_system" for c in CLASSES), "total", "runs_per_s")
    for tree, rounds in results.items():
        med = {k: statistics.median(r[k] for r in rounds) for k in keys}
        cells = " ".join(f"{med[c]:>5.0f} ({med[c + '_system']:>3.0f})" for c in CLASSES)
        print(f"{tree!s:<32} {cells} {med['total']:>6.0f} {med['runs_per_s']:>7.0f}")


if __name__ == "__main__":
    main()
