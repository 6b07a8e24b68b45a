"""Does a worker's memory stay flat? One worker drains 50,000 no-op runs; RSS sampled.

    make bench-memory
    python bench/bench_memory.py [--runs 50000] [--concurrency 16] [--every 5000]

PostgreSQL (BENCH_DATABASE_URL, recreated). The runs are queued before the worker starts,
by one INSERT ... SELECT for the runs and their step rows (the rows run_create lays out,
without its per-run round trips). One `manage.py runworker` process then drains them while
this script reads /proc: VmRSS of the worker parent and the sum over its step children
(plus PSS, which counts pages shared after fork once), at every --every runs done and at
the end. Growth is end against the first sample at or past --every runs (the baseline,
taken once imports and caches are warm). The target: under 10%. JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_worker import ROOT, django_ready, setup, start_workers, stop

_QUEUE_RUNS = """
WITH runs AS (
    INSERT INTO {run} (id, pipeline_id, status, metadata, priority, queue, fence,
                       current_step, interruptions, error, running_time, trace_context)
    SELECT gen_random_uuid(), %(pipeline)s, 'pending', '{{}}'::jsonb, 0, 'default', 0,
           'noop', 0, '', 0, '{{}}'::jsonb
    FROM generate_series(1, %(count)s)
    RETURNING id
)
INSERT INTO {step} (run_id, name, position, status, attempts, failures, error, error_type,
                    traceback)
SELECT id, 'noop', 0, 'pending', 0, 0, '', '', '' FROM runs
"""


def queue_runs(count: int) -> None:
    """Queue `count` bench-noop runs, each with its pending step, as run_create leaves them."""
    from django.db import connection

    from pipelines.models import Pipeline
    from runs.models import Run, Step

    sql = _QUEUE_RUNS.format(run=Run._meta.db_table, step=Step._meta.db_table)
    pipeline = Pipeline.objects.get(name="bench-noop").pk
    with connection.cursor() as cursor:
        cursor.execute(sql, {"pipeline": pipeline, "count": count})
        cursor.execute(f"VACUUM ANALYZE {Run._meta.db_table}, {Step._meta.db_table}")


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(f"{field} not in /proc/{pid}/status")


def pss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise LookupError(f"Pss not in /proc/{pid}/smaps_rollup")


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def sample(pid: int, done: int) -> dict[str, Any]:
    kids = children(pid)
    return {
        "done": done,
        "parent_rss_kb": status_kb(pid, "VmRSS"),
        "parent_pss_kb": pss_kb(pid),
        "children": len(kids),
        "children_pids": kids,
        "children_rss_kb": sum(status_kb(k, "VmRSS") for k in kids),
        "children_pss_kb": sum(pss_kb(k) for k in kids),
    }


def growth(first: dict[str, Any], last: dict[str, Any], key: str) -> float:
    return (last[key] - first[key]) / first[key] * 100


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--every", type=int, default=5000)
    args = parser.parse_args()

    setup("postgres")
    django_ready("postgres")
    from runs.models import Run

    print(f"queueing {args.runs:,} runs", flush=True)
    queue_runs(args.runs)
    (worker,) = start_workers("postgres", 1, args.concurrency)
    samples: list[dict[str, Any]] = []
    started = time.perf_counter()
    next_mark = args.every
    try:
        while True:
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited with {worker.returncode}")
            done = Run.objects.filter(status="succeeded").count()
            if done >= next_mark or done >= args.runs:
                samples.append(sample(worker.pid, done))
                s = samples[-1]
                print(
                    f"  {done:>6,} done: parent RSS {s['parent_rss_kb'] / 1024:6.1f} MB, "
                    f"{s['children']} children RSS {s['children_rss_kb'] / 1024:6.1f} MB "
                    f"(PSS {s['children_pss_kb'] / 1024:.1f} MB)",
                    flush=True,
                )
                while next_mark <= done:
                    next_mark += args.every
            if done >= args.runs:
                break
            time.sleep(0.2)
    finally:
        stop([worker])
    seconds = time.perf_counter() - started
    first, last = samples[0], samples[-1]
    result = {
        "runs": args.runs,
        "concurrency": args.concurrency,
        "seconds": seconds,
        "samples": samples,
        "children_replaced": first["children_pids"] != last["children_pids"],
        "growth_pct": {
            key: growth(first, last, key)
            for key in ("parent_rss_kb", "parent_pss_kb", "children_rss_kb", "children_pss_kb")
        },
    }
    g = result["growth_pct"]
    print(
        f"{args.runs:,} runs in {seconds:.0f} s; from {first['done']:,} to {last['done']:,} runs "
        f"done: parent RSS {g['parent_rss_kb']:+.1f}%, children RSS {g['children_rss_kb']:+.1f}% "
        f"(PSS {g['children_pss_kb']:+.1f}%)"
        + ("; the step children were replaced meanwhile" if result["children_replaced"] else "")
    )
    out = ROOT / "bench" / "results" / f"bench_memory-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
