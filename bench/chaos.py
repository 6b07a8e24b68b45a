"""The soak (not a test): `make chaos`.

4 workers drain N three-step runs whose steps record each execution in a table, while a
random worker is SIGKILLed every 2 seconds and replaced. Reports runs completed, results
committed twice (must be 0), runs stuck (must be 0), executions per step, and the time
from each kill to its runs resuming.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
URL = os.environ.get("CHAOS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orbit_chaos")
LEASE = float(os.environ.get("CHAOS_LEASE_SECONDS", "5"))


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update(
        DATABASE_URL=URL,
        ORBIT_PIPELINE_MODULES="tests.pipelines_for_tests",
        PYTHONPATH=str(ROOT),
        ORBIT_LEASE_SECONDS=str(LEASE),
        ORBIT_LOG_LEVEL="WARNING",
    )
    return e


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kill-every", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    import psycopg

    name = URL.rsplit("/", 1)[1]
    with psycopg.connect(URL.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env(), check=True)
    os.environ.update(env())
    os.environ["DJANGO_SETTINGS_MODULE"] = "orbit.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection
    from django.db.models import Count

    from runs import enqueue
    from runs.models import Run, StepAttempt

    with connection.cursor() as c:
        c.execute(
            "CREATE TABLE orbit_test_effects (run_id varchar(64), step varchar(100), attempt integer, pid integer)"
        )
    for _ in range(args.runs):
        enqueue("t-recorded-three", metadata={"seconds": 0.05})

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "manage.py", "runworker", "--concurrency", "2", "--no-schedules"],
            cwd=ROOT,
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    procs = [spawn() for _ in range(args.workers)]
    kills: list[tuple[float, list[str]]] = []
    started = time.monotonic()
    next_kill = started + args.kill_every
    while time.monotonic() - started < args.timeout:
        if Run.objects.filter(status="succeeded").count() >= args.runs:
            break
        if time.monotonic() >= next_kill:
            victim = random.choice(procs)

            held = [
                str(r)
                for r in Run.objects.filter(worker__pid=victim.pid, status="running").values_list(
                    "id", flat=True
                )
            ]
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            kills.append((time.time(), held))
            procs[procs.index(victim)] = spawn()
            next_kill = time.monotonic() + args.kill_every
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(60)
    # resume delay: kill -> the interrupted attempt's run next started a step (claimed again)
    delays = []
    for killed_at, held in kills:
        for run_id in held:
            later = (
                StepAttempt.objects.filter(run_id=run_id, finished_at__gt=_dt(killed_at))
                .exclude(outcome="interrupted")
                .order_by("started_at")
                .values_list("started_at", flat=True)
                .first()
            )
            if later:
                delays.append(later.timestamp() - killed_at)
    doubles = (
        StepAttempt.objects.filter(outcome="succeeded")
        .values("step")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    with connection.cursor() as c:
        c.execute(
            "SELECT n, COUNT(*) FROM (SELECT COUNT(*) AS n FROM orbit_test_effects GROUP BY run_id, step) x GROUP BY n ORDER BY n"
        )
        executions = {int(n): int(k) for n, k in c.fetchall()}
    report = {
        "runs": args.runs,
        "completed": Run.objects.filter(status="succeeded").count(),
        "stuck": Run.objects.exclude(status="succeeded").count(),
        "double_commits": doubles,
        "kills": len(kills),
        "executions_per_step": executions,
        "resume_delay_p50_s": statistics.median(delays) if delays else None,
        "resume_delay_max_s": max(delays) if delays else None,
        "lease_s": LEASE,
        "elapsed_s": elapsed,
    }
    print(json.dumps(report, indent=2))
    out = ROOT / "bench" / "results" / f"chaos-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))


def _dt(ts: float):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC)


if __name__ == "__main__":
    main()
