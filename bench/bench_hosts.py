"""Many hosts, one database: 16 worker processes drain N runs, directly and through PgBouncer.

    make bench-hosts
    python bench/bench_hosts.py [--n 4000] [--workers 16] [--concurrency 4] [--pool 10]

Each worker is a separate `runworker` process with connections of its own, as a worker
on its own host would be (they share nothing but the database). First they connect to
PostgreSQL directly; then through a PgBouncer in transaction pooling (Debian's package,
started on a free port by tests/pgbouncer.py) with `default_pool_size` --pool, their
LISTEN connections going straight to PostgreSQL (ORBIT_LISTEN_DATABASE_URL). In each
mode N no-op runs are queued (1,000 per statement) once every worker is up, and timed
from the first finished run to the last. Checked: every run succeeded with exactly one
attempt. Counted while draining: the database's connections (pg_stat_activity), per
worker process (PGAPPNAME names each worker and its children) and in all, and in
PgBouncer mode its client and server connections. BENCH_DATABASE_URL (default
.../orbit_bench_hosts) is recreated. JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orbit_bench_hosts")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_prune import queue
from bench.bench_worker import PG_URL, ROOT, django_ready, env_for, setup, stop
from tests.pgbouncer import PgBouncer


def start(k: int, concurrency: int, database_url: str, listen_url: str) -> list[Any]:
    procs = []
    for i in range(k):
        env = {**env_for("postgres"), "DATABASE_URL": database_url, "PGAPPNAME": f"host-{i}"}
        if listen_url:
            env["ORBIT_LISTEN_DATABASE_URL"] = listen_url
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "runworker",
                    "--concurrency",
                    str(concurrency),
                    "--no-schedules",
                    "--no-prune",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    return procs


def connections(dbname: str) -> dict[str, Any]:
    """The bench database's connections now: per worker (application name) and in all."""
    import psycopg

    with psycopg.connect(PG_URL.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        rows = conn.execute(
            "SELECT application_name, query LIKE '%%LISTEN %%' FROM pg_stat_activity "
            "WHERE datname = %s",
            [dbname],
        ).fetchall()
    names = Counter(str(r[0]) for r in rows)
    per_worker = [n for name, n in names.items() if name.startswith("host-")]
    return {
        "total": len(rows),
        "listen": sum(1 for r in rows if r[1]),
        "per_worker": sorted(set(per_worker)),
    }


def drain(n: int, k: int, dbname: str, bouncer: PgBouncer | None) -> dict[str, Any]:
    from runs.models import Run, StepAttempt, Worker

    deadline = time.monotonic() + 120
    while Worker.objects.filter(state="running").count() < k:  # all up: start-up excluded
        if time.monotonic() > deadline:
            raise RuntimeError("the workers did not all start")
        time.sleep(0.1)
    Run.objects.all().delete()
    queue(n)
    done_runs = Run.objects.filter(status="succeeded")
    first_seen = first_done = None
    peak: dict[str, Any] = {"total": 0}
    pooled: dict[str, Any] = {}
    while True:
        done = done_runs.count()
        now = time.perf_counter()
        if done and first_seen is None:
            first_seen, first_done = now, done
            peak = connections(dbname)
            if bouncer is not None:
                servers = [s for s in bouncer.show("SERVERS") if s["database"] == dbname]
                clients = [c for c in bouncer.show("CLIENTS") if c["database"] == dbname]
                pooled = {"servers": len(servers), "clients": len(clients)}
        if done >= n:
            break
        time.sleep(0.02)
    assert first_seen is not None and first_done is not None
    attempts = Counter(StepAttempt.objects.values_list("run_id", flat=True))
    once = len(attempts) == n and set(attempts.values()) == {1}
    return {
        "runs_per_s": (n - first_done) / (now - first_seen),
        "every_run_once": once,
        "connections": peak,
        "pgbouncer": pooled,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--pool", type=int, default=10, help="PgBouncer's default_pool_size")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    setup("postgres")
    django_ready("postgres")
    dbname = PG_URL.rsplit("/", 1)[1]
    results: dict[str, Any] = {}
    for mode in ("direct", "pgbouncer"):
        bouncer = PgBouncer(pool_size=args.pool).__enter__() if mode == "pgbouncer" else None
        try:
            url = (
                bouncer.url(dbname, disable_server_side_cursors="true")
                if bouncer is not None
                else PG_URL
            )
            procs = start(args.workers, args.concurrency, url, PG_URL if bouncer else "")
            try:
                drain(min(args.n, 500), args.workers, dbname, bouncer)  # warm-up
                rows = [drain(args.n, args.workers, dbname, bouncer) for _ in range(args.repeat)]
            finally:
                stop(procs)
        finally:
            if bouncer is not None:
                bouncer.__exit__(None, None, None)
        from runs.models import Worker

        Worker.objects.all().delete()
        rates = [r["runs_per_s"] for r in rows]
        results[mode] = {"drains": rows, "runs_per_s": statistics.median(rates)}
        last = rows[-1]
        print(
            f"{mode:9}  {args.workers} workers x concurrency {args.concurrency}: "
            f"{', '.join(f'{r:.0f}' for r in rates)} runs/s, median {statistics.median(rates):.0f}; "
            f"every run once: {all(r['every_run_once'] for r in rows)}; "
            f"PostgreSQL connections {last['connections']['total']}, "
            f"{last['connections']['listen']} of them LISTEN"
            + (
                f"; PgBouncer clients {last['pgbouncer']['clients']}, "
                f"servers {last['pgbouncer']['servers']} (pool {args.pool})"
                if mode == "pgbouncer"
                else f" (per worker process {last['connections']['per_worker']})"
            ),
            flush=True,
        )
    out = ROOT / "bench" / "results" / f"bench_hosts-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"args": vars(args), "load_average": os.getloadavg(), **results}, indent=2)
    )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
