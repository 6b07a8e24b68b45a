"""Pruning a million finished runs while two workers drain new ones (PostgreSQL).

    make bench-prune
    python bench/bench_prune.py [--history 1000000] [--keep-days 3] [--n 2000] [--repeat 5]

BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/orbit_bench_prune) is
recreated. --history finished runs are inserted over the past 30 days as the worker leaves
them (bench/bench_history.py), and the dashboard's 30-day chart and the /metrics figures
are read as of that moment (T0). Then two long-lived `runworker --concurrency 32`
processes drain --n runs at a time (queued with one statement per 1,000, as enqueue_many
does), --repeat times with retention off: the baseline. Then two fresh workers run with
ORBIT_RETENTION_SUCCEEDED=<keep-days>d and ORBIT_RETENTION_SHARE=--share (default 0.05,
as the setting's), every other setting at its default, so one of them prunes the history down to the last <keep-days> days (100,000 runs of 1,000,000 for
3 days) by itself, in its paced batches, while both go on draining; drains repeat until
nothing is left to prune.

It reports: the drain rate (median) with and without pruning, and their ratio (target:
within 10%); how long pruning took and its rate; the longest lock wait seen, by sampling
pg_locks every 10 ms and by log_lock_waits with deadlock_timeout=100ms set on every
worker session (PGOPTIONS; target: none over 100 ms); and whether the 30-day chart and
the /metrics figures as of T0 read the same after pruning (rollups for the pruned days).
JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orbit_bench_prune")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_history import insert_history, table_sizes
from bench.bench_worker import PG_URL, ROOT, django_ready, env_for, setup, stop

CONCURRENCY = 32
KEEP_EVERYTHING = {
    f"ORBIT_RETENTION_{kind}": "never" for kind in ("SUCCEEDED", "FAILED", "CANCELLED", "AUDIT")
}
#: Every worker session logs a lock it waited on for longer than this.
LOCK_LOG = "-c log_lock_waits=on -c deadlock_timeout=100ms"
PG_LOG = Path(os.environ.get("BENCH_PG_LOG", "/var/log/postgresql/postgresql-15-main.log"))


def start_workers(k: int, retention: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    env = {**env_for("postgres"), **retention, "PGOPTIONS": LOCK_LOG}
    return [
        subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "runworker",
                "--concurrency",
                str(CONCURRENCY),
                "--no-schedules",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(k)
    ]


def queue(n: int) -> datetime:
    """Queue n bench-noop runs, 1,000 per statement; when the first was created."""
    from orbit.core.clock import db_now
    from orbit.core.ids import uuid7
    from pipelines.models import Pipeline
    from runs.store import store
    from runs.store.records import NewRun

    pipeline = Pipeline.objects.get(name="bench-noop").pk
    started = db_now()
    for first in range(0, n, 1000):
        store().insert_runs(
            [
                NewRun(
                    id=uuid7(),
                    pipeline_id=pipeline,
                    steps=("noop",),
                    current_step="noop",
                    metadata={},
                )
                for _ in range(min(1000, n - first))
            ]
        )
    return started


def drain_once(n: int) -> float:
    """Queue n runs for the running workers; runs per second from the first finished one
    seen to the last (queueing and start-up excluded)."""
    from runs.models import Run

    since = queue(n)
    counted = Run.objects.filter(status="succeeded", created_at__gte=since)
    first_seen = first_done = None
    while True:
        done = counted.count()
        now = time.perf_counter()
        if done and first_seen is None:
            first_seen, first_done = now, done
        if done >= n:
            break
        time.sleep(0.02)
    assert first_seen is not None and first_done is not None
    return (n - first_done) / (now - first_seen) if now > first_seen else float("nan")


class LockSampler(threading.Thread):
    """Every 10 ms, which sessions of the bench database wait for a lock; the longest
    wait seen (first to last sample of the same wait)."""

    def __init__(self, dbname: str) -> None:
        super().__init__(daemon=True)
        self.dbname = dbname
        self.stopping = threading.Event()
        self.longest = 0.0
        self.longest_what = ""
        self.samples = 0

    def run(self) -> None:
        import psycopg

        seen: dict[tuple[Any, ...], float] = {}
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            while not self.stopping.is_set():
                rows = conn.execute(
                    "SELECT a.pid, a.query_start, l.locktype, l.mode, "
                    "coalesce(l.relation::regclass::text, l.transactionid::text, ''), "
                    "left(a.query, 80) "
                    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE NOT l.granted AND a.datname = %s",
                    [self.dbname],
                ).fetchall()
                now = time.monotonic()
                waiting = set()
                for pid, query_start, locktype, mode, what, query in rows:
                    key = (pid, query_start, locktype, mode, what)
                    waiting.add(key)
                    first = seen.setdefault(key, now)
                    if now - first > self.longest:
                        self.longest = now - first
                        self.longest_what = f"{locktype} {mode} {what}: {query}"
                seen = {k: v for k, v in seen.items() if k in waiting}
                self.samples += 1
                time.sleep(0.01)


def log_size() -> int:
    try:
        return PG_LOG.stat().st_size
    except OSError:
        return -1


def lock_waits_logged(since: int, dbname: str) -> list[str]:
    """PostgreSQL's "still waiting for ... after 100 ms" lines for the bench database."""
    if since < 0:
        return [f"(cannot read {PG_LOG})"]
    with PG_LOG.open("rb") as f:
        f.seek(since)
        text = f.read().decode(errors="replace")
    return [
        line for line in text.splitlines() if "still waiting for" in line and f"@{dbname}" in line
    ]


def figures(at: datetime) -> dict[str, Any]:
    """The 30-day chart and the /metrics figures over the last 30 days, as of `at`."""
    from dataclasses import asdict

    from runs import metrics

    since = metrics.start_of_day(at) - timedelta(days=29)

    def histogram(h: metrics.Histogram) -> dict[str, Any]:
        # Sums to the microsecond: added in another order, floats differ in the last bits.
        return {**asdict(h), "sum": round(h.sum, 6)}

    return {
        "chart_30d": [asdict(b) for b in metrics.runs_per_day(30, at)],
        "finished": metrics.finished_counts(since, at),
        "attempts": metrics.attempt_counts(since, at),
        "run_durations": histogram(metrics.run_duration_histogram(since, at)),
        "step_durations": histogram(metrics.step_duration_histogram(since, at)),
    }


def prunable(cutoff: datetime) -> bool:
    from runs.models import Run

    return Run.objects.filter(status="succeeded", finished_at__lt=cutoff).exists()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--keep-days", type=int, default=3)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--share",
        default="0.05",
        help="ORBIT_RETENTION_SHARE for the pruning workers (the default: 0.05)",
    )
    args = parser.parse_args()

    load_at_start = os.getloadavg()
    setup("postgres")
    django_ready("postgres")
    from django.db import connection
    from django.db.models import Sum

    from orbit.core.clock import db_now
    from runs.models import Run, RunRollup

    dbname = PG_URL.rsplit("/", 1)[1]
    print(f"inserting {args.history:,} finished runs over 30 days", flush=True)
    insert_seconds = insert_history(args.history)
    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")
    sizes_before = table_sizes()
    t0 = db_now()
    started = time.perf_counter()
    before = figures(t0)
    read_before = time.perf_counter() - started
    print(f"  {insert_seconds:.0f} s; chart and metrics read as of {t0:%H:%M:%S}", flush=True)

    sampler = LockSampler(dbname)
    sampler.start()
    log_from = log_size()

    print(f"baseline: 2 workers, retention off, {args.repeat} drains of {args.n}", flush=True)
    procs = start_workers(2, KEEP_EVERYTHING)
    drain_once(args.n)  # warm-up: imports, children, caches
    baseline = [drain_once(args.n) for _ in range(args.repeat)]
    stop(procs)
    print(f"  {', '.join(f'{d:.0f}' for d in baseline)} runs/s", flush=True)

    keep = {
        **KEEP_EVERYTHING,
        "ORBIT_RETENTION_SUCCEEDED": f"{args.keep_days}d",
        "ORBIT_RETENTION_SHARE": args.share,
    }
    cutoff = db_now() - timedelta(days=args.keep_days)
    print(
        f"pruning to the last {args.keep_days} days while 2 workers drain "
        f"(ORBIT_RETENTION_SUCCEEDED={args.keep_days}d, ORBIT_RETENTION_SHARE={args.share}: "
        "the workers' own duty)",
        flush=True,
    )
    to_prune = Run.objects.filter(status="succeeded", finished_at__lt=cutoff).count()
    procs = start_workers(2, keep)
    prune_started = time.monotonic()
    during: list[float] = []
    while prunable(cutoff):
        rate = drain_once(args.n)
        pruned = RunRollup.objects.aggregate(n=Sum("succeeded"))["n"] or 0  # cheap: no count
        if pruned:  # pruning has begun (the first batch comes 30 to 60 s after start)
            during.append(rate)
            print(
                f"  drain {rate:.0f} runs/s; {to_prune - pruned:,} runs left to prune", flush=True
            )
    prune_seconds = time.monotonic() - prune_started
    stop(procs)
    sampler.stopping.set()
    sampler.join()
    logged = lock_waits_logged(log_from, dbname)

    started = time.perf_counter()
    after = figures(t0)
    read_after = time.perf_counter() - started
    kept_history = Run.objects.filter(finished_at__lte=t0).count()
    ratio = statistics.median(during) / statistics.median(baseline) if during else float("nan")
    same = after == before
    print(
        f"drain, 2 processes: {statistics.median(baseline):.0f} runs/s without pruning, "
        f"{statistics.median(during) if during else float('nan'):.0f} while pruning: ratio "
        f"{ratio:.2f} ({'within' if abs(1 - ratio) <= 0.10 else 'OUTSIDE'} 10%)"
    )
    print(
        f"pruned {args.history - kept_history:,} runs in {prune_seconds:.0f} s "
        f"({(args.history - kept_history) / prune_seconds:.0f} runs/s); {kept_history:,} kept; "
        f"{RunRollup.objects.count()} rollup rows"
    )
    print(
        f"longest lock wait sampled: {sampler.longest * 1000:.0f} ms "
        f"({sampler.samples} samples{'; ' + sampler.longest_what if sampler.longest else ''}); "
        f"log_lock_waits (100 ms) lines: {len(logged)}"
    )
    print(
        f"30-day chart and /metrics as of T0: {'unchanged' if same else 'CHANGED'} "
        f"(read in {read_before * 1000:.0f} ms before pruning, {read_after * 1000:.0f} ms after)"
    )
    out = ROOT / "bench" / "results" / f"bench_prune-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "history": args.history,
                "keep_days": args.keep_days,
                "share": args.share,
                "n": args.n,
                "load_average_at_start": load_at_start,
                "load_average_at_end": os.getloadavg(),
                "insert_seconds": insert_seconds,
                "table_bytes_before": sizes_before,
                "table_bytes_after": table_sizes(),
                "baseline_runs_per_s": baseline,
                "during_pruning_runs_per_s": during,
                "ratio": ratio,
                "prune_seconds": prune_seconds,
                "kept": kept_history,
                "rollup_rows": RunRollup.objects.count(),
                "longest_lock_wait_ms": sampler.longest * 1000,
                "longest_lock_wait": sampler.longest_what,
                "lock_wait_log_lines": logged,
                "figures_unchanged": same,
                "figures_read_ms": [read_before * 1000, read_after * 1000],
                "figures_before": before if not same else None,
                "figures_after": after if not same else None,
            },
            indent=2,
            default=str,
        )
    )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
