"""Worker benchmark (not a test): enqueue rate, drain throughput, pickup latency.

    python bench/bench_worker.py --n 2000 --lat-n 50 --db postgres [--concurrency 32]
    make bench                      # this, for PostgreSQL and SQLite, beside the peers

Each figure runs against a fresh database with real `manage.py runworker` processes.
Prints a table and writes JSON to bench/results/ (or --out).

Pickup is timed two ways on the same samples: by the database clock, from the run's
INSERT to its first step's claim; and as the peer benchmarks time it, by the wall clock
from just before the enqueue call to the moment the step function starts in its child.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orbit_bench")
SQLITE = os.environ.get("BENCH_SQLITE_PATH", "/tmp/orbit-bench.sqlite3")
# Where the bench-stamp step writes when it started (pickup as the peers time it).
LAT_FILE = os.environ.get("BENCH_LAT_FILE", "/tmp/orbit-bench-pickup.txt")
# The workers' ORBIT_LOG_LEVEL; "default": Orbit's own (INFO). WARNING unless told, so the
# other benchmarks that start workers through here keep measuring what they measured.
LOG_LEVEL = os.environ.get("BENCH_ORBIT_LOG_LEVEL", "WARNING")
# Where each worker's output goes (a file per worker, to count its bytes and lines);
# "": nowhere.
LOG_DIR = os.environ.get("BENCH_ORBIT_LOG_DIR", "")


def env_for(db: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ORBIT_SQLITE_PATH")}
    env["ORBIT_PIPELINE_MODULES"] = "bench.bench_pipelines"
    env.pop("ORBIT_WORKER_CONCURRENCY", None)  # --concurrency 0 means runworker's own default
    if LOG_LEVEL.lower() == "default":
        env.pop("ORBIT_LOG_LEVEL", None)
    else:
        env["ORBIT_LOG_LEVEL"] = LOG_LEVEL
    env["DEBUG"] = "false"  # as in production: no per-query bookkeeping
    env.setdefault("SECRET_KEY", "bench-" + "x" * 40)
    env["PYTHONPATH"] = str(ROOT)
    env["ORBIT_BENCH_LAT_FILE"] = LAT_FILE
    if db == "postgres":
        env["DATABASE_URL"] = PG_URL
    else:
        env["ORBIT_SQLITE_PATH"] = SQLITE
    return env


def setup(db: str) -> None:
    os.environ.update(env_for(db))
    if db == "postgres":
        import psycopg

        name = PG_URL.rsplit("/", 1)[1]
        with psycopg.connect(PG_URL.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(SQLITE + suffix).unlink(missing_ok=True)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env_for(db), check=True
    )


def django_ready(db: str) -> None:
    os.environ.update(env_for(db))
    os.environ["DJANGO_SETTINGS_MODULE"] = "orbit.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def start_workers(db: str, k: int, concurrency: int) -> list[subprocess.Popen[bytes]]:
    """k `runworker` processes; concurrency 0: without --concurrency (the worker's default)."""
    sized = ["--concurrency", str(concurrency)] if concurrency else []
    procs = []
    for i in range(k):
        out: Any = subprocess.DEVNULL
        if LOG_DIR:
            Path(LOG_DIR).mkdir(parents=True, exist_ok=True)
            out = (Path(LOG_DIR) / f"worker-{time.monotonic_ns()}-{i}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [sys.executable, "manage.py", "runworker", *sized, "--no-schedules"],
                cwd=ROOT,
                env=env_for(db),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        )
        if out is not subprocess.DEVNULL:
            out.close()  # the worker has its own copy
    return procs


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


def drain(
    db: str,
    pipeline: str,
    n: int,
    k: int,
    steps: int,
    concurrency: int = 32,
    *,
    clear: bool = True,
    enqueue_one: Callable[[], Any] | None = None,
) -> dict[str, float]:
    """Enqueue n runs, then time k workers draining them (worker start-up excluded).

    With clear=False the runs already in the database stay (bench_history.py), and only
    runs created from now on are counted. `enqueue_one` queues one run another way than
    `enqueue(pipeline)` (a `@task`'s `enqueue`).
    """
    from runs import enqueue
    from runs.models import Run
    from runs.recovery import db_now

    counted = Run.objects.filter(status="succeeded")
    if clear:
        clear_runs()
    else:
        counted = counted.filter(created_at__gte=db_now())
    started = time.perf_counter()
    for _ in range(n):
        if enqueue_one is not None:
            enqueue_one()
        else:
            enqueue(pipeline)
    enqueue_rate = n / (time.perf_counter() - started)
    logs_before = set(Path(LOG_DIR).glob("worker-*.log")) if LOG_DIR else set()
    procs = start_workers(db, k, concurrency)
    first_seen = None
    while True:
        done = counted.count()
        now = time.perf_counter()
        if done and first_seen is None:
            first_seen, first_done = now, done
        if done >= n:
            break
        time.sleep(0.02)
    stop(procs)
    rate = (n - first_done) / (now - first_seen) if now > first_seen else float("nan")
    figures = {
        "enqueue_per_s": enqueue_rate,
        "runs_per_s": rate,
        "steps_per_s": rate * steps,
        "runs_per_s_whole": whole_drain_rate(counted),
    }
    if LOG_DIR:  # what the workers wrote, their start and stop lines included
        written = [p.read_bytes() for p in set(Path(LOG_DIR).glob("worker-*.log")) - logs_before]
        figures["log_bytes_per_run"] = sum(len(b) for b in written) / n
        figures["log_lines_per_run"] = sum(b.count(b"\n") for b in written) / n
    return figures


def clear_runs() -> None:
    """Every run gone, with its steps, attempts and log records, the way the peers'
    benchmark clears its jobs before each drain: TRUNCATE on PostgreSQL (CASCADE: a
    document's row refers to its run), Django's delete on SQLite. Until 5 December,
    20:57 UTC, PostgreSQL's were deleted too, and on a server that does not vacuum between
    drains (this machine's runs with autovacuum off) each drain read every earlier
    drain's dead rows in the tables and indexes it claims from and writes to
    (docs/PERFORMANCE.md, "Every drain on empty tables")."""
    from django.db import connection

    from runs.models import Run, Step, StepAttempt, StepLog

    if connection.vendor != "postgresql":
        Run.objects.all().delete()
        return
    tables = ", ".join(model._meta.db_table for model in (StepLog, StepAttempt, Step, Run))
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables} CASCADE")


def whole_drain_rate(finished: Any) -> float:
    """Runs per second over the whole drain by the database's clock: from the first step
    started to the last step finished, the workers' ramp (their first claims and commits)
    included.

    `runs_per_s` is timed as the peers' benchmark times its drains (from the first poll
    that sees a run finished, every 20 ms, to the last), so it stays comparable with
    theirs; but its window opens with the first run finished, so a worker that finishes
    its first runs sooner, while its other slots are still starting, gets a longer window
    for the same drain. This one does not depend on when the first run finishes."""
    from django.db.models import Max, Min

    from runs.models import Step

    span = Step.objects.filter(run__in=finished).aggregate(
        first=Min("started_at"), last=Max("finished_at")
    )
    if span["first"] is None or span["last"] is None or span["last"] <= span["first"]:
        return float("nan")
    return finished.count() / (span["last"] - span["first"]).total_seconds()


#: The batch sizes `enqueue_many` is timed at (bench_compare.py's enqueue table).
BATCHES = (1_000, 10_000)
#: The fewest batches of each size timed: each alone, the median reported.
MIN_BATCHES = 5


def enqueue_rates(n: int, batches: tuple[int, ...] = BATCHES) -> list[dict[str, Any]]:
    """Runs queued per second, no worker running: n `enqueue` calls one after another
    (each its own transaction, as the peers time their single enqueue), then `enqueue_many`
    in batches of each size into an emptied table, at least MIN_BATCHES of each (n runs
    when that is more), each batch timed alone: `runs_per_s` is their median, with the
    slowest and the fastest beside it. Until 5 December it was the rate of two batches
    timed together, so one batch slowed by the machine (this shared VM moves by a third
    from one minute to the next) set the figure (docs/PERFORMANCE.md, "enqueue_many
    timed batch by batch")."""
    from runs import enqueue, enqueue_many

    rows: list[dict[str, Any]] = []
    enqueue("bench-noop")  # the pipeline row is read (and cached) before the clock starts
    clear_runs()
    started = time.perf_counter()
    for _ in range(n):
        enqueue("bench-noop")
    rows.append({"batch": 1, "runs": n, "runs_per_s": n / (time.perf_counter() - started)})
    for batch in batches:
        clear_runs()
        rates = []
        for _ in range(max(MIN_BATCHES, n // batch)):
            metadatas = [{"i": i} for i in range(batch)]
            started = time.perf_counter()
            enqueue_many("bench-noop", metadatas)
            rates.append(batch / (time.perf_counter() - started))
        rows.append(
            {
                "batch": batch,
                "runs": batch * len(rates),
                "runs_per_s": statistics.median(rates),
                "slowest": min(rates),
                "fastest": max(rates),
            }
        )
    clear_runs()
    return rows


#: The longest random gap between two pickup samples on PostgreSQL, in seconds: the one
#: the peers' benchmark gives Procrastinate, the peer woken by NOTIFY as Orbit is. The gap
#: matters: on this VM a process idle for more than a few milliseconds wakes slower
#: (docs/PERFORMANCE.md, "What an idle machine adds to a pickup"), so shorter gaps give
#: more samples the quicker wake; until 5 December Orbit's was 0.1 s against 0.2.
PICKUP_GAP_POSTGRES = 0.2


def pickup(db: str, n: int) -> dict[str, float]:
    from bench.bench_pickup import percentile, take, warm_up
    from orbit.core.conf import orbit_settings

    # Random gaps, as the peers take them: a worker that polls (SQLite) is then caught at
    # every phase of its poll interval, not always just after its last poll.
    gap = PICKUP_GAP_POSTGRES if db == "postgres" else orbit_settings.poll_interval
    Path(LAT_FILE).write_text("")
    procs = start_workers(db, 1, 1)
    warm_up(Path(LAT_FILE))
    samples = take(n, gap, Path(LAT_FILE))
    stop(procs)
    # Both times from the database clock: the run's creation (its INSERT, inside the
    # enqueue transaction) to its first step's start (the worker's claim).
    latencies = [(s.claimed - s.created) * 1000 for s in samples]
    # As the peers time it: the enqueue call to the step function's first line.
    wall = [(s.stamped - s.called) * 1000 for s in samples]
    return {
        "p50_ms": statistics.median(latencies),
        "p95_ms": percentile(latencies, 0.95),
        "wall_p50_ms": statistics.median(wall),
        "wall_p95_ms": percentile(wall, 0.95),
        "n": n,
    }


def main() -> None:
    global LOG_LEVEL, LOG_DIR
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--lat-n", type=int, default=50)
    parser.add_argument("--db", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=32,
        help="slots per worker process; 0: runworker's default (no --concurrency)",
    )
    parser.add_argument(
        "--log-level",
        default=LOG_LEVEL,
        help="the workers' ORBIT_LOG_LEVEL; 'default': Orbit's own, INFO (default WARNING)",
    )
    parser.add_argument(
        "--log-dir", default=LOG_DIR, help="write each worker's output to a file in this folder"
    )
    parser.add_argument(
        "--noop-only", action="store_true", help="drain only the one-step no-op pipeline"
    )
    parser.add_argument(
        "--enqueue-only",
        action="store_true",
        help="only the enqueue rates: --n single enqueues, then enqueue_many in batches of "
        + " and ".join(f"{b:,}" for b in BATCHES),
    )
    parser.add_argument("--out", type=Path, help="JSON file to write (default: bench/results/)")
    parser.add_argument(
        "--tasks",
        action="store_true",
        help="only drain @task no-ops (bench/bench_tasks.py) through Orbit's Tasks backend",
    )
    args = parser.parse_args()
    LOG_LEVEL, LOG_DIR = args.log_level, args.log_dir
    os.environ["BENCH_ORBIT_LOG_LEVEL"], os.environ["BENCH_ORBIT_LOG_DIR"] = LOG_LEVEL, LOG_DIR
    if args.tasks:
        tasks_only(args)
        return
    dbs = ["postgres", "sqlite"] if args.db == "both" else [args.db]
    results = []
    for db in dbs:
        setup(db)
        if db == dbs[0]:
            django_ready(db)
        else:  # a second database in one process: re-run ourselves
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--n",
                    str(args.n),
                    "--lat-n",
                    str(args.lat_n),
                    "--db",
                    db,
                    "--concurrency",
                    str(args.concurrency),
                    "--log-level",
                    LOG_LEVEL,
                    *(["--noop-only"] if args.noop_only else []),
                    *(["--enqueue-only"] if args.enqueue_only else []),
                ],
                env=env_for(db),  # without the DATABASE_URL this process set for PostgreSQL
                check=True,
            )
            continue
        # The drains and pickup first, on the fresh database as the benchmark has always
        # measured them; the enqueue rates after, as their 24,000 runs inserted and
        # deleted leave dead rows in every table and index the drains read.
        if not args.enqueue_only:
            pipelines = [("bench-noop", 1)] + ([] if args.noop_only else [("bench-three", 3)])
            for pipeline, steps in pipelines:
                for k in (1, 2):
                    row = {
                        "db": db,
                        "pipeline": pipeline,
                        "workers": k,
                        "concurrency": args.concurrency,
                        "log_level": LOG_LEVEL,
                        "n": args.n,
                        **drain(db, pipeline, args.n, k, steps, args.concurrency),
                    }
                    results.append(row)
                    logged = (
                        f"  log {row['log_bytes_per_run']:.0f} B, {row['log_lines_per_run']:.2f} lines/run"
                        if "log_bytes_per_run" in row
                        else ""
                    )
                    print(
                        f"{db:8} {pipeline:12} workers={k}  enqueue {row['enqueue_per_s']:7.0f}/s  "
                        f"drain {row['runs_per_s']:7.0f} runs/s  {row['steps_per_s']:7.0f} steps/s"
                        f"  (whole drain, database clock: {row['runs_per_s_whole']:.0f} runs/s)"
                        + logged,
                        flush=True,
                    )
            if args.lat_n:
                lat = {"db": db, "pickup": pickup(db, args.lat_n)}
                results.append(lat)
                print(
                    f"{db:8} pickup p50 {lat['pickup']['p50_ms']:.1f} ms"
                    f"  p95 {lat['pickup']['p95_ms']:.1f} ms"
                    f"  (enqueue call to step start: p50 {lat['pickup']['wall_p50_ms']:.1f} ms"
                    f"  p95 {lat['pickup']['wall_p95_ms']:.1f} ms)",
                    flush=True,
                )
        if args.enqueue_only or not args.noop_only:
            for rate in enqueue_rates(args.n):
                results.append({"db": db, "enqueue": rate, "load_average": os.getloadavg()[0]})
                spread = (
                    f"  (median of {rate['runs'] // rate['batch']} batches: "
                    f"{rate['slowest']:.0f} to {rate['fastest']:.0f})"
                    if rate["batch"] > 1
                    else ""
                )
                print(
                    f"{db:8} enqueue {'one at a time' if rate['batch'] == 1 else 'enqueue_many':13} "
                    f"batch {rate['batch']:>6,}  {rate['runs_per_s']:8.0f} runs/s{spread}",
                    flush=True,
                )
    out = args.out or (
        ROOT / "bench" / "results" / f"bench_worker-{dbs[0]}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


def tasks_only(args: argparse.Namespace) -> None:
    """Drain n `@task` no-ops with 1 and 2 workers: `noop.enqueue()`, Django's Tasks API."""
    [db] = ["postgres"] if args.db == "both" else [args.db]
    setup(db)
    django_ready(db)
    from bench.bench_tasks import noop

    results = []
    for k in (1, 2):
        row = {
            "db": db,
            "pipeline": "bench.bench_tasks.noop",
            "workers": k,
            "concurrency": args.concurrency,
            "n": args.n,
            **drain(db, "", args.n, k, 1, args.concurrency, enqueue_one=noop.enqueue),
        }
        results.append(row)
        print(
            f"{db:8} @task noop   workers={k}  enqueue {row['enqueue_per_s']:7.0f}/s  "
            f"drain {row['runs_per_s']:7.0f} tasks/s",
            flush=True,
        )
    out = args.out or (
        ROOT / "bench" / "results" / f"bench_tasks-{db}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
