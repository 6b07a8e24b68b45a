"""How fast the admin and dashboard pages are with a million runs (PostgreSQL).

    createdb orbit_bench_pages
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/orbit_bench_pages \\
        .venv/bin/python bench/bench_dashboard.py [--runs 1000000]

Fills `runs_run` with synthetic finished runs spread over 30 days (one INSERT ...
generate_series; steps are left out, lists do not read them), ANALYZEs, then requests
each page several times through Django's test client and prints the median time, the
number of queries and the slowest query.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orbit.settings")
os.environ.setdefault("DEBUG", "1")  # static files unhashed; pages render the same


def fill(n: int) -> None:
    from django.db import connection

    from pipelines.models import Pipeline
    from pipelines.sync import sync_pipelines
    from runs.models import Run

    sync_pipelines()
    have = Run.objects.count()
    if have >= n:
        return
    pipeline_ids = list(Pipeline.objects.values_list("id", flat=True))
    print(f"inserting {n - have:,} runs ...", flush=True)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO runs_run (id, pipeline_id, status, metadata, priority, queue, available_at,
                fence, current_step, interruptions, started_at, finished_at, error, created_at,
                running_time, trace_context)
            SELECT gen_random_uuid(), (%s::bigint[])[1 + (i %% array_length(%s::bigint[], 1))],
                CASE WHEN i %% 50 = 0 THEN 'failed' WHEN i %% 997 = 0 THEN 'cancelled' ELSE 'succeeded' END,
                jsonb_build_object('invoice', 'INV-' || i), 0, 'default', t, 1, '', 0,
                t, t + interval '2 seconds', '', t, 2.0, '{}'::jsonb
            FROM (SELECT i, now() - (i * interval '30 days' / %s) AS t
                  FROM generate_series(1, %s) AS i) AS g
            """,
            [pipeline_ids, pipeline_ids, n - have, n - have],
        )
        cursor.execute("ANALYZE runs_run")


def measure(urls: list[str], repeat: int) -> None:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    user = User.objects.filter(username="bench").first() or User.objects.create_superuser(
        "bench", "bench@example.com", "bench"
    )
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    print(f"{'page':58} {'median':>9} {'queries':>8}  slowest query")
    for url in urls:
        client.get(url)  # warm caches
        times = []
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                times.append(time.perf_counter() - started)
            assert response.status_code == 200, (url, response.status_code)
        slowest = max(queries.captured_queries, key=lambda q: float(q["time"]))
        print(
            f"{url:58} {statistics.median(times) * 1000:7.0f}ms {len(queries.captured_queries):8}"
            f"  {float(slowest['time']) * 1000:.0f}ms {slowest['sql'][:70]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    import django

    django.setup()
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("Set DATABASE_URL=postgres://... : this measures PostgreSQL.")
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    fill(args.runs)
    from runs.models import Run

    some = Run.objects.filter(status="failed").values_list("id", flat=True).first()
    measure(
        [
            "/admin/",
            "/admin/runs/run/",
            "/admin/runs/run/?status__exact=failed",
            "/admin/runs/run/?p=50",
            f"/admin/runs/run/?q={some}",
            "/admin/runs/run/?created_at__year=2026&created_at__month=11",
            f"/admin/runs/run/{some}/change/",
            "/dashboard/",
            "/dashboard/runs/",
            "/dashboard/runs/?status=failed",
            f"/dashboard/runs/?q={str(some)[-8:]}",  # the part lists show: a bounded scan
            f"/dashboard/runs/?q={str(some)[:13]}",  # the start: a primary-key range
            "/dashboard/runs/?meta=invoice%3DINV-5000",  # GIN containment
            "/dashboard/runs/?meta=invoice%3DINV-5000&status=failed",
            "/dashboard/runs/?created_after=2026-11-20&created_before=2026-11-21",
            "/admin/runs/run/?q=invoice%3DINV-77",
            f"/dashboard/runs/{some}/",
            "/dashboard/workers/",
            "/dashboard/pipelines/",
        ],
        args.repeat,
    )


if __name__ == "__main__":
    main()
