"""Is throughput flat with history? Drain on an empty database, then beside 1,000,000 old runs.

    make bench-history
    python bench/bench_history.py [--history 1000000] [--n 2000] [--repeat 3]

PostgreSQL only (BENCH_DATABASE_URL, recreated). First 2 worker processes drain n no-op
runs on the empty database (median of --repeat drains, each from an empty runs table,
after one warm-up drain). Then --history finished runs are inserted as the worker leaves
them (a succeeded run, its succeeded step and one succeeded attempt, created over the past
30 days), the tables are VACUUM ANALYZEd, and the same drains run again beside them.
Each phase starts with a CHECKPOINT, so that the bulk insert's checkpoint does not land
in the measured drains. The target: within 10%. Writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_worker import ROOT, django_ready, drain, pickup, setup

CHUNK = 100_000
CONCURRENCY = 32  # slots per worker process, as in make bench
HISTORY_DAYS = 30

# One statement per chunk: each run, its one step, and that step's one attempt, exactly
# as a successful bench-noop run is left by the worker. Whole rows from the models'
# defaults (runs/store/rows.py), as the store writes them, so a column added to a model
# cannot break this insert.
_INSERT_HISTORY = """
WITH times AS (
    SELECT now() - make_interval(secs => %(span)s * (1 - g::float8 / %(total)s)) AS t
    FROM generate_series(%(first)s, %(last)s) AS g
),
runs AS (
    INSERT INTO {run}
    SELECT made.*
    FROM times
    CROSS JOIN LATERAL jsonb_populate_record(
        NULL::{run},
        %(run_defaults)s::jsonb || jsonb_build_object(
            -- Time-ordered ids, as orbit.core.ids.uuid7 makes them: 48 bits of
            -- milliseconds, version 7.
            'id', (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7'
                   || substr(md5(random()::text), 1, 3) || '8'
                   || substr(md5(random()::text), 1, 15))::uuid,
            'pipeline_id', %(pipeline)s::bigint, 'status', 'succeeded', 'fence', 1,
            'available_at', t, 'created_at', t, 'started_at', t + interval '3 ms',
            'finished_at', t + interval '5 ms', 'running_time', 0.002)
    ) AS made
    RETURNING {run}.id, {run}.started_at, {run}.finished_at
),
steps AS (
    INSERT INTO {step}
    SELECT made.*
    FROM runs
    CROSS JOIN LATERAL jsonb_populate_record(
        NULL::{step},
        %(step_defaults)s::jsonb || jsonb_build_object(
            'id', nextval(pg_get_serial_sequence('{step}', 'id')),
            'run_id', runs.id, 'name', 'noop', 'position', 0, 'status', 'succeeded',
            'attempts', 1, 'started_at', runs.started_at, 'finished_at', runs.finished_at,
            'duration', 0.002)
    ) AS made
    RETURNING {step}.id, {step}.run_id, {step}.started_at, {step}.finished_at
)
INSERT INTO {attempt}
SELECT made.*
FROM steps
CROSS JOIN LATERAL jsonb_populate_record(
    NULL::{attempt},
    %(attempt_defaults)s::jsonb || jsonb_build_object(
        'id', nextval(pg_get_serial_sequence('{attempt}', 'id')),
        'step_id', steps.id, 'run_id', steps.run_id, 'number', 1, 'outcome', 'succeeded',
        'started_at', steps.started_at, 'finished_at', steps.finished_at, 'duration', 0.002)
) AS made
"""


def insert_history(total: int) -> float:
    """Insert `total` finished bench-noop runs; returns the seconds it took."""
    from django.db import connection

    from pipelines.models import Pipeline
    from runs.models import Run, Step, StepAttempt
    from runs.store.rows import defaults_json

    sql = _INSERT_HISTORY.format(
        run=Run._meta.db_table, step=Step._meta.db_table, attempt=StepAttempt._meta.db_table
    )
    pipeline = Pipeline.objects.get(name="bench-noop").pk
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for first in range(1, total + 1, CHUNK):
            last = min(first + CHUNK - 1, total)
            cursor.execute(
                sql,
                {
                    "first": first,
                    "last": last,
                    "total": total,
                    "span": HISTORY_DAYS * 86400,
                    "pipeline": pipeline,
                    "run_defaults": defaults_json(Run),
                    "step_defaults": defaults_json(Step),
                    "attempt_defaults": defaults_json(StepAttempt),
                },
            )
            print(f"  history: {last:,} runs", flush=True)
        # Fresh statistics and visibility map, as autovacuum would leave them.
        cursor.execute(
            f"VACUUM ANALYZE {Run._meta.db_table}, {Step._meta.db_table}, "
            f"{StepAttempt._meta.db_table}"
        )
    return time.perf_counter() - started


def measure(n: int, repeat: int, lat_n: int, *, clear: bool) -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")
    drain("postgres", "bench-noop", n, 2, 1, CONCURRENCY, clear=clear)  # warm-up: caches, children
    drains = [
        drain("postgres", "bench-noop", n, 2, 1, CONCURRENCY, clear=clear)["runs_per_s"]
        for _ in range(repeat)
    ]
    print(
        f"  drains (2 processes, concurrency {CONCURRENCY}): {', '.join(f'{d:.0f}' for d in drains)} runs/s,"
        f" median {statistics.median(drains):.0f}",
        flush=True,
    )
    result: dict[str, Any] = {"drains": drains, "runs_per_s": statistics.median(drains)}
    if lat_n:
        result["pickup"] = pickup("postgres", lat_n)
        print(
            f"  pickup p50 {result['pickup']['p50_ms']:.1f} ms, "
            f"p95 {result['pickup']['p95_ms']:.1f} ms (database clock)"
        )
    return result


def table_sizes() -> dict[str, int]:
    from django.db import connection

    from runs.models import Run, Step, StepAttempt

    with connection.cursor() as cursor:
        sizes = {}
        for model in (Run, Step, StepAttempt):
            cursor.execute("SELECT pg_total_relation_size(%s)", [model._meta.db_table])
            sizes[model._meta.db_table] = cursor.fetchone()[0]
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--lat-n", type=int, default=30)
    args = parser.parse_args()

    setup("postgres")
    django_ready("postgres")
    from runs.models import Run

    print(f"empty database: {args.n} runs per drain", flush=True)
    empty = measure(args.n, args.repeat, args.lat_n, clear=True)
    Run.objects.all().delete()
    print(f"inserting {args.history:,} finished runs", flush=True)
    insert_seconds = insert_history(args.history)
    sizes = table_sizes()
    print(
        f"  {insert_seconds:.0f} s; runs/steps/attempts: "
        + ", ".join(f"{v / 2**20:.0f} MB" for v in sizes.values()),
        flush=True,
    )
    print(f"with {Run.objects.count():,} finished runs:", flush=True)
    full = measure(args.n, args.repeat, args.lat_n, clear=False)
    ratio = full["runs_per_s"] / empty["runs_per_s"]
    print(
        f"drain, 2 processes: empty {empty['runs_per_s']:.0f} runs/s, "
        f"with {args.history:,} finished runs {full['runs_per_s']:.0f} runs/s: "
        f"ratio {ratio:.2f} ({'within' if abs(1 - ratio) <= 0.10 else 'OUTSIDE'} 10%)"
    )
    out = ROOT / "bench" / "results" / f"bench_history-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "n": args.n,
                "history": args.history,
                "insert_seconds": insert_seconds,
                "table_bytes": sizes,
                "empty": empty,
                "with_history": full,
                "ratio": ratio,
            },
            indent=2,
        )
    )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
