"""API latency with a large history: `make bench-api` (not a test).

Seeds BENCH_API_RUNS runs (default 1,000,000) with three steps and one attempt each into
a dedicated PostgreSQL database with INSERT ... SELECT generate_series (a few minutes;
kept between runs, `--reseed` starts over), then measures each endpoint through Django's
request handling in this process and prints p50/p95/max against its target. Results are
written to bench/results/bench_api-<time>.json.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/orbit_bench_api \\
        .venv/bin/python bench/bench_api.py [--runs N] [--requests N] [--reseed]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/orbit_bench_api"
METRICS_TOKEN = secrets.token_urlsafe(24)
PIPELINES = ("bench-ingest", "bench-report", "bench-sync", "bench-export")
DAYS = 60  # the history spans this many days, ending now


def configure(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["DEBUG"] = "False"  # no query log; production request handling
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(48))
    os.environ["ALLOWED_HOSTS"] = "testserver,localhost"
    os.environ["ORBIT_METRICS_TOKEN"] = METRICS_TOKEN
    os.environ["ORBIT_API_RATE_LIMIT"] = "off"  # measuring the endpoints, not the limiter
    os.environ.setdefault("ORBIT_PIPELINE_MODULES", "")
    os.environ["DJANGO_SETTINGS_MODULE"] = "orbit.settings"


def ensure_database(url: str) -> None:
    import psycopg

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")


SEED_SQL = """
INSERT INTO runs_run (id, pipeline_id, status, metadata, priority, queue, available_at,
                      fence, current_step, interruptions, started_at, finished_at, error,
                      created_at, running_time, trace_context)
SELECT gen_random_uuid(),
       (%(pipelines)s)[1 + (i %% array_length(%(pipelines)s, 1))],
       s.status,
       jsonb_build_object('order', i, 'source', 'bench'),
       0, 'default', s.created, 1, '', 0,
       CASE WHEN s.status <> 'pending' THEN s.created + interval '1 second' END,
       CASE WHEN s.status IN ('succeeded', 'failed', 'cancelled')
            THEN s.created + interval '1 second' + s.took END,
       CASE s.status WHEN 'failed' THEN 'step two failed: upstream said 502' ELSE '' END,
       s.created,
       CASE WHEN s.status IN ('succeeded', 'failed', 'cancelled')
            THEN extract(epoch FROM s.took) ELSE 0 END,
       '{}'::jsonb
FROM generate_series(1, %(runs)s) AS i
CROSS JOIN LATERAL (
    SELECT now() - (%(days)s * interval '1 day') * (i::float / %(runs)s) AS created,
           make_interval(secs => (0.2 + (hashint4(i::int) & 1023) / 8.0)::float8) AS took,
           CASE WHEN i <= %(pending)s THEN 'pending'
                WHEN i <= %(pending)s + %(running)s THEN 'running'
                WHEN (hashint4((i * 7)::int) & 127) < 9 THEN 'failed'
                WHEN (hashint4((i * 7)::int) & 127) < 11 THEN 'cancelled'
                ELSE 'succeeded' END AS status
) AS s
"""

STEPS_SQL = """
INSERT INTO runs_step (run_id, name, position, status, attempts, failures, result, error,
                       error_type, traceback, started_at, finished_at, duration)
SELECT r.id, n.name, n.position,
       CASE WHEN r.status = 'succeeded' THEN 'succeeded'
            WHEN r.status = 'failed' AND n.position = 0 THEN 'succeeded'
            WHEN r.status = 'failed' AND n.position = 1 THEN 'failed'
            ELSE 'pending' END,
       CASE WHEN r.status IN ('succeeded', 'failed') AND n.position <= 1 THEN 1
            WHEN r.status = 'succeeded' THEN 1 ELSE 0 END,
       CASE WHEN r.status = 'failed' AND n.position = 1 THEN 1 ELSE 0 END,
       CASE WHEN r.status = 'succeeded' THEN jsonb_build_object('rows', n.position * 10) END,
       CASE WHEN r.status = 'failed' AND n.position = 1 THEN 'upstream said 502' ELSE '' END,
       '', '',
       r.started_at, r.finished_at,
       CASE WHEN r.finished_at IS NOT NULL
            THEN extract(epoch FROM r.finished_at - r.started_at) / 3 END
FROM runs_run r
CROSS JOIN (VALUES ('extract', 0), ('transform', 1), ('load', 2)) AS n(name, position)
"""

LOGS_SQL = """
INSERT INTO runs_steplog (run_id, step_id, attempt, sequence, time, level, message, fields)
SELECT s.run_id, s.id, 1, 0, s.started_at, 'INFO', 'step ' || s.name, '{}'::jsonb
FROM runs_step s
WHERE s.started_at IS NOT NULL
"""

ATTEMPTS_SQL = """
INSERT INTO runs_stepattempt (step_id, run_id, number, outcome, error, error_type, traceback,
                              started_at, finished_at, duration)
SELECT s.id, s.run_id, 1,
       CASE s.status WHEN 'failed' THEN 'failed' ELSE 'succeeded' END,
       s.error, CASE WHEN s.error <> '' THEN 'requests.HTTPError' ELSE '' END, '',
       s.started_at, s.finished_at, s.duration
FROM runs_step s
WHERE s.attempts > 0 AND s.finished_at IS NOT NULL
"""


def seed(runs: int, reseed: bool) -> None:
    from django.core.management import call_command
    from django.db import connection

    from pipelines.models import Pipeline
    from runs.models import Run, Worker

    call_command("migrate", verbosity=0)
    existing = Run.objects.count() if not reseed else 0
    if existing >= runs:
        print(f"database already holds {existing:,} runs; --reseed to start over")
        return
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE runs_steplog, runs_stepattempt, runs_step, runs_run, runs_worker "
            "RESTART IDENTITY CASCADE"
        )
        cursor.execute("SET synchronous_commit = off")
    ids = [
        Pipeline.objects.update_or_create(name=name, defaults={"definition": name})[0].id
        for name in PIPELINES
    ]
    for i in range(4):
        Worker.objects.create(name=f"bench-{i}", hostname="bench", pid=1000 + i, state="running")
    steps = [
        (
            "runs",
            SEED_SQL,
            {"pipelines": ids, "runs": runs, "days": DAYS, "pending": 500, "running": 8},
        ),
        ("steps", STEPS_SQL, {}),
        ("log records", LOGS_SQL, {}),
        ("attempts", ATTEMPTS_SQL, {}),
    ]
    for label, sql, params in steps:
        t = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(sql, params or None)
            print(f"seeded {cursor.rowcount:,} {label} in {time.perf_counter() - t:.1f} s")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE runs_run SET worker_id = (SELECT min(id) FROM runs_worker), "
            "lease_expires_at = now() + interval '30 seconds' WHERE status = 'running'"
        )
    t = time.perf_counter()
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(f"vacuum analyze in {time.perf_counter() - t:.1f} s")
    print(f"seeded in {time.perf_counter() - started:.0f} s")


def measure(requests: int) -> list[dict[str, object]]:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    from orbit.api.pagination import _encode
    from orbit.core.tokens import create_token
    from pipelines.models import Pipeline
    from runs.models import Run

    user, _ = User.objects.get_or_create(
        username="bench", defaults={"is_superuser": True, "is_staff": True}
    )
    _, key = create_token(user, "bench")
    client = Client(headers={"Authorization": f"Bearer {key}"})
    total = Run.objects.count()
    depth = int(total * 0.9)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT created_at, id FROM runs_run ORDER BY created_at DESC, id DESC "
            "OFFSET %s LIMIT 1",
            [depth],
        )
        at, deep_id = cursor.fetchone()
        cursor.execute("SELECT id FROM runs_run TABLESAMPLE SYSTEM (1) LIMIT %s", [requests])
        sample = [str(row[0]) for row in cursor.fetchall()]
    deep_cursor = _encode([at.isoformat(), str(deep_id)])
    pipeline = Pipeline.objects.get(name=PIPELINES[0]).id
    metrics_headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}

    targets: list[tuple[str, float | None, object]] = [
        ("GET /api/runs (first page)", 50, lambda i: client.get("/api/runs")),
        (
            f"GET /api/runs (cursor at row {depth:,})",
            50,
            lambda i: client.get("/api/runs", {"cursor": deep_cursor}),
        ),
        ("GET /api/runs/{id}", 50, lambda i: client.get(f"/api/runs/{sample[i % len(sample)]}")),
        ("GET /api/worker/stats", 50, lambda i: client.get("/api/worker/stats")),
        ("GET /metrics", 200, lambda i: client.get("/metrics", headers=metrics_headers)),
        (
            "GET /api/runs?status=failed",
            None,
            lambda i: client.get("/api/runs", {"status": "failed"}),
        ),
        (
            "GET /api/pipelines/{id}/runs",
            None,
            lambda i: client.get(f"/api/pipelines/{pipeline}/runs"),
        ),
        ("GET /api/worker/metrics", None, lambda i: client.get("/api/worker/metrics")),
        ("GET /api/worker/health", None, lambda i: client.get("/api/worker/health")),
        ("GET /api/pipelines/{id}", None, lambda i: client.get(f"/api/pipelines/{pipeline}")),
    ]
    results = []
    for label, target, call in targets:
        for i in range(5):  # warm caches and the connection
            call(i)  # type: ignore[operator]
        timings = []
        for i in range(requests):
            t = time.perf_counter()
            response = call(i)  # type: ignore[operator]
            timings.append((time.perf_counter() - t) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{label}: HTTP {response.status_code} {response.content[:300]!r}")
        timings.sort()
        p95 = timings[max(0, round(0.95 * len(timings)) - 1)]
        results.append(
            {
                "endpoint": label,
                "requests": requests,
                "p50_ms": round(statistics.median(timings), 2),
                "p95_ms": round(p95, 2),
                "max_ms": round(timings[-1], 2),
                "target_p95_ms": target,
                "ok": None if target is None else p95 < target,
            }
        )
    return results


def report(results: list[dict[str, object]], runs: int) -> Path:
    width = max(len(str(r["endpoint"])) for r in results)
    print(f"\n{'endpoint':<{width}}  {'p50 ms':>8}  {'p95 ms':>8}  {'max ms':>8}  target")
    for r in results:
        target = r["target_p95_ms"]
        verdict = "" if target is None else f"< {target} ms  {'ok' if r['ok'] else 'MISSED'}"
        print(
            f"{r['endpoint']:<{width}}  {r['p50_ms']:>8}  {r['p95_ms']:>8}  {r['max_ms']:>8}  {verdict}"
        )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench_api-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(
        json.dumps(
            {
                "benchmark": "bench_api",
                "at": datetime.now(UTC).isoformat(),
                "runs": runs,
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                "results": results,
            },
            indent=2,
        )
    )
    print(f"\nwrote {path.relative_to(ROOT)}")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--runs", type=int, default=int(os.environ.get("BENCH_API_RUNS", 1_000_000))
    )
    parser.add_argument("--requests", type=int, default=100, help="timed requests per endpoint")
    parser.add_argument("--reseed", action="store_true", help="drop the seeded data and seed again")
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    if not url.startswith("postgres"):
        raise SystemExit("BENCH_DATABASE_URL must be a PostgreSQL URL")
    configure(url)
    ensure_database(url)
    import django

    django.setup()
    seed(args.runs, args.reseed)
    results = report(measure(args.requests), args.runs)
    return 0 if all(r["ok"] is not False for r in json.loads(results.read_text())["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
