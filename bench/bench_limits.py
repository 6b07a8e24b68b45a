"""Flow limits under load (not a test; docs/FLOW-CONTROL.md, "Measured").

    python bench/bench_limits.py drain [--n 3000] [--rounds 2]
    python bench/bench_limits.py rate [--minutes 5] [--per-minute 20]
    python bench/bench_limits.py held [--backlogs 0,5000,50000] [--claims 200]

`drain`: 4 `runworker` processes at concurrency 8 drain `n` runs of a no-op pipeline,
alternately with no flow limit anywhere ("none") and with limits configured on other
pipelines ("limited": a max_concurrency=3 pipeline with a backlog of slow runs, held
back throughout, and a rate-limited one with queued runs); the unlimited pipeline's
runs/s in each, same database, same run. Three slots are busy with slow runs in both
(the limited pipeline's three, or three long runs no limit holds), so the rounds differ
in the limits alone, not in the slots left for the no-op runs. `rate`: 4 workers and a named rate limit of
`per-minute` starts a minute (ORBIT_RATE_LIMITS=bench-veryfi=20/minute) over `minutes`;
the most step starts in any 60 s window, by the steps' own clock. Run `rate` once: it
takes its minutes. `held`: what a backlog held by a flow limit, queued ahead of the runs a
worker may take, costs its plain claim: the mean time of one claim of 8 runs (in this
process, each claim rolled back, so every one sees the same table) with each backlog. PostgreSQL at BENCH_DATABASE_URL (default orbit_bench_limits).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orbit_bench_limits")

from bench import bench_worker  # noqa: E402
from bench.bench_worker import LAT_FILE, django_ready, setup, stop  # noqa: E402

MODULES = "bench.bench_pipelines,bench.bench_limited_pipelines"
#: No-op runs drained before the measured ones, so every worker has forked its step
#: processes and warmed its connection when the clock starts.
WARM_UP = 200
#: Slots held throughout by slow runs in both rounds: the max_concurrency=3 pipeline's
#: with limits, three long runs of an unlimited pipeline without.
HELD_SLOTS = 3


def start(k: int, concurrency: int, extra: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    env = {**bench_worker.env_for("postgres"), "ORBIT_PIPELINE_MODULES": MODULES, **extra}
    return [
        subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "runworker",
                "--concurrency",
                str(concurrency),
                "--no-schedules",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        for _ in range(k)
    ]


def drain_once(n: int, limited: bool) -> float:
    """Runs/s of bench-noop with 4 workers at concurrency 8, in steady state: the workers
    first drain a warm-up batch queued at a higher priority (forking their step
    processes, opening their connections); the clock runs from the warm-up's last end
    to the last measured run's end, by the database's clock. The tables are analysed once
    every run is queued: a round must not be planned on the statistics of the round
    before, or of the empty table autovacuum happened to see (rounds differed by a third)."""
    from django.db import connection
    from django.db.models import Max

    from pipelines.models import Pipeline
    from runs import enqueue_many
    from runs.models import Run

    Run.objects.all().delete()
    Pipeline.objects.limited().update(enabled=limited)
    if limited:  # queued first: ahead of the no-op runs in the claim's order
        enqueue_many("bench-limited", [{"seconds": 0.5}] * 400)
        enqueue_many("bench-rated", [{}] * 200)
    else:  # the same three slots held, by runs no limit holds: only the limits differ
        enqueue_many("bench-sleeps", [{"seconds": 3600}] * HELD_SLOTS)
    for at in range(0, n, 1000):
        enqueue_many("bench-noop", [{}] * min(1000, n - at))
    enqueue_many("bench-noop", [{}] * WARM_UP, priority=1)
    with connection.cursor() as cursor:
        for table in ("runs_run", "runs_step", "runs_stepattempt"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    noop = Run.objects.filter(pipeline__name="bench-noop")
    procs = start(4, 8, {"ORBIT_RATE_LIMITS": "bench-veryfi=20/minute"})
    try:
        # Polled slowly: a count every 20 ms cost the database as much as a worker.
        while noop.filter(status="succeeded").count() < n + WARM_UP:
            time.sleep(0.25)
    finally:
        for proc in procs:  # twice: stop now, handing the long runs back
            proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        stop(procs)
    if limited:
        running = Run.objects.filter(pipeline__name="bench-limited", status="running").count()
        assert running <= HELD_SLOTS, running
    warm = noop.filter(priority=1).aggregate(last=Max("finished_at"))["last"]
    after = noop.filter(priority=0, finished_at__gt=warm)
    last = after.aggregate(last=Max("finished_at"))["last"]
    return after.count() / (last - warm).total_seconds()


def drain(args: argparse.Namespace) -> None:
    figures: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for limited in (False, True):
            figures[limited].append(drain_once(args.n, limited))
            print(f"{'limited' if limited else 'none':>8}: {figures[limited][-1]:7.1f} runs/s")
    # Each round's pair (none, then limited, a minute apart) also read on its own: on a
    # shared machine the speed drifts by more than the effect between pairs, less within.
    pairs = [100 * (b - a) / a for a, b in zip(figures[False], figures[True], strict=True)]
    print("pairs    " + ", ".join(f"{d:+.1f}%" for d in pairs))
    none, limited = statistics.median(figures[False]), statistics.median(figures[True])
    print(
        f"median   none {none:.1f} runs/s, limited {limited:.1f} runs/s: "
        f"{100 * (limited - none) / none:+.1f}% (median of the pairs "
        f"{statistics.median(pairs):+.1f}%)"
    )


def rate(args: argparse.Namespace) -> None:
    from pipelines.models import Pipeline
    from runs import enqueue_many
    from runs.models import Run

    Path(LAT_FILE).unlink(missing_ok=True)
    Run.objects.all().delete()
    Pipeline.objects.exclude(name="bench-rated").update(enabled=False)
    procs = start(4, 8, {"ORBIT_RATE_LIMITS": f"bench-veryfi={args.per_minute}/minute"})
    try:
        # Warm up: every slot gets its child process, so a step starts when it is claimed.
        Pipeline.objects.filter(name="bench-noop").update(enabled=True)
        enqueue_many("bench-noop", [{}] * 200)
        while Run.objects.exclude(status="succeeded").exists():
            time.sleep(0.1)
        Path(LAT_FILE).unlink(missing_ok=True)
        enqueue_many("bench-rated", [{}] * (args.per_minute * (args.minutes + 2)))
        time.sleep(args.minutes * 60)
    finally:
        stop(procs)
    steps = sorted(float(line.split()[1]) for line in Path(LAT_FILE).read_text().splitlines())
    claims = sorted(
        t.timestamp()
        for t in Run.objects.filter(
            pipeline__name="bench-rated", started_at__isnull=False
        ).values_list("started_at", flat=True)
    )
    for what, moments in (("step starts (host clock)", steps), ("claims (database)", claims)):
        t0 = moments[0]
        inside = [s for s in moments if s < t0 + args.minutes * 60]
        most = max(sum(1 for s in inside if t <= s < t + 60) for t in inside)
        per_minute = [
            sum(1 for s in inside if t0 + 60 * m <= s < t0 + 60 * (m + 1))
            for m in range(args.minutes)
        ]
        print(
            f"{what}: {len(inside)} in {args.minutes} min across 4 workers (limit "
            f"{args.per_minute}/minute); most in any 60 s window: {most}; "
            f"per minute from the first: {per_minute}"
        )


def held(args: argparse.Namespace) -> None:
    from django.db import connection, transaction

    from pipelines.definition import registry
    from pipelines.models import Pipeline
    from runs import enqueue_many
    from runs.models import Run
    from runs.store import store
    from runs.store.records import ClaimRequest

    Pipeline.objects.update(enabled=True)
    request = ClaimRequest(
        worker_id=None,
        limit=8,
        queues=("default",),
        lease_seconds=30,
        definitions=registry.step_names(),
        limited=False,
    )
    for backlog in (int(b) for b in args.backlogs.split(",")):
        Run.objects.all().delete()
        for at in range(0, backlog, 5000):  # queued first: ahead of the no-op runs
            enqueue_many("bench-limited", [{"seconds": 0.5}] * min(5000, backlog - at))
        enqueue_many("bench-noop", [{}] * 100)
        with connection.cursor() as cursor:
            for table in ("runs_run", "runs_step"):
                cursor.execute(f"VACUUM ANALYZE {table}")
        times = []
        for _ in range(args.claims):
            with transaction.atomic():
                began = time.perf_counter()
                claimed = store().claim(request)
                times.append(time.perf_counter() - began)
                assert len(claimed) == 8, len(claimed)
                transaction.set_rollback(True)
        times = times[len(times) // 10 :]  # the first claims plan the statement
        print(
            f"held backlog {backlog:>7,}: plain claim of 8 runs, mean "
            f"{1000 * statistics.mean(times):.2f} ms, p95 "
            f"{1000 * statistics.quantiles(times, n=20)[-1]:.2f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    d = sub.add_parser("drain")
    d.add_argument("--n", type=int, default=3000)
    d.add_argument("--rounds", type=int, default=2)
    r = sub.add_parser("rate")
    r.add_argument("--minutes", type=int, default=5)
    r.add_argument("--per-minute", type=int, default=20)
    h = sub.add_parser("held")
    h.add_argument("--backlogs", default="0,5000,50000")
    h.add_argument("--claims", type=int, default=200)
    args = parser.parse_args()
    setup("postgres")
    django_ready("postgres")
    import bench.bench_limited_pipelines  # noqa: F401  (registers them here too)
    from pipelines.sync import sync_pipelines

    sync_pipelines()
    {"drain": drain, "rate": rate, "held": held}[args.what](args)


if __name__ == "__main__":
    main()
