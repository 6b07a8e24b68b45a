"""Screenshots of every dashboard and admin page, into docs/images/ (`make screenshots`).

Starts Orbit the production way (gunicorn, DEBUG off, static files from whitenoise) on a
fresh SQLite database with a real worker, runs the demo pipelines in docs/demo_pipelines.py,
adds an hour of synthetic finished runs and one dead worker so the charts and the workers
page have something to show, and photographs each page with Debian's chromium through
Playwright: desktop in light and dark, and phone width.

    .venv/bin/python docs/screenshots.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
PASSWORD = "screenshots-" + secrets.token_hex(4)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"timed out after {timeout} s waiting for {what}")


def environment(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        {
            "ORBIT_SQLITE_PATH": str(tmp / "screenshots.sqlite3"),
            "ORBIT_PIPELINE_MODULES": "demo_pipelines",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "docs"), str(ROOT)]),
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "ORBIT_LOG_LEVEL": "WARNING",
            "ORBIT_LEASE_SECONDS": "10",
        }
    )
    return env


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT, check=True)


def seed_history() -> None:
    """An hour of finished runs (synthetic, for the charts) and a worker that died."""
    from django.utils import timezone

    from pipelines.models import Pipeline
    from runs.models import Run, Step, StepAttempt, Worker

    now = timezone.now()
    rng = random.Random(7)
    pipelines = {p.name: p for p in Pipeline.objects.all()}
    runs, steps, attempts = [], [], []
    for _ in range(420):
        name = rng.choice(["image-thumbnails", "image-thumbnails", "nightly-report"])
        finished = now - timedelta(seconds=rng.uniform(60, 3600))
        duration = rng.lognormvariate(0.2, 0.9)
        failed = rng.random() < (0.03 if name == "image-thumbnails" else 0.12)
        run = Run(
            id=uuid.uuid4(),
            pipeline=pipelines[name],
            status="failed" if failed else "succeeded",
            metadata={"source": f"upload-{rng.randint(1000, 9999)}.png"},
            created_at=finished - timedelta(seconds=duration + rng.uniform(0, 2)),
            started_at=finished - timedelta(seconds=duration),
            finished_at=finished,
            error="Step resize failed: cannot identify image file" if failed else "",
        )
        runs.append(run)
        definition = pipelines[name].code
        assert definition is not None
        for position, spec in enumerate(definition.steps):
            ok = not (failed and position == 0)
            step = Step(
                run=run,
                name=spec.name,
                position=position,
                status="succeeded" if ok else "failed",
                attempts=1,
                failures=0 if ok else 1,
                started_at=run.started_at,
                finished_at=finished,
                duration=duration / 2,
                result={"ok": True} if ok else None,
                error="" if ok else "cannot identify image file",
            )
            steps.append(step)
            attempts.append(
                StepAttempt(
                    step=step,
                    run=run,
                    number=1,
                    outcome="succeeded" if ok else "failed",
                    started_at=run.started_at,
                    finished_at=finished,
                    duration=duration / 2,
                    error="" if ok else "cannot identify image file",
                    error_type="" if ok else "PIL.UnidentifiedImageError",
                )
            )
            if not ok:
                break
    Run.objects.bulk_create(runs)
    Step.objects.bulk_create(steps)
    StepAttempt.objects.bulk_create(attempts)
    for run in runs:  # created_at has a database default: set the historical value after insert
        Run.objects.filter(id=run.id).update(created_at=run.created_at)
    Worker.objects.create(
        name="web-2:4121",
        hostname="web-2",
        pid=4121,
        concurrency=4,
        queues=["default"],
        state="running",
        last_heartbeat=now - timedelta(minutes=7),
        started_at=now - timedelta(hours=3),
        succeeded_count=812,
        failed_count=9,
    )


def seed_live() -> dict[str, str]:
    """Real runs for the worker: some flaky, one broken, one long enough to be running."""
    from runs import enqueue

    ids = {}
    for i in range(8):
        enqueue("image-thumbnails", metadata={"source": f"uploads/photo-{i}.jpg"})
    ids["flaky"] = str(enqueue("nightly-report", metadata={"date": "2026-11-27", "flaky": True}).id)
    ids["broken"] = str(
        enqueue("nightly-report", metadata={"date": "2026-11-26", "broken": True}).id
    )
    for day in (24, 25):
        enqueue("nightly-report", metadata={"date": f"2026-11-{day}"})
    ids["long"] = str(enqueue("ledger-export", metadata={"period": "2026-11"}).id)
    return ids


def shoot(base: str, out: Path, ids: dict[str, str]) -> list[Path]:
    from playwright.sync_api import sync_playwright

    pages = [
        ("overview", "/dashboard/"),
        ("runs", "/dashboard/runs/"),
        ("run-retried", f"/dashboard/runs/{ids['flaky']}/"),
        ("run-failed", f"/dashboard/runs/{ids['broken']}/"),
        ("run-running", f"/dashboard/runs/{ids['long']}/"),
        ("workers", "/dashboard/workers/"),
        ("pipelines", "/dashboard/pipelines/"),
        ("admin-index", "/admin/"),
        ("admin-runs", "/admin/runs/run/"),
        ("admin-run", f"/admin/runs/run/{ids['flaky']}/change/"),
        ("admin-pipelines", "/admin/pipelines/pipeline/"),
    ]
    variants = [
        ("", {"viewport": {"width": 1360, "height": 900}, "color_scheme": "light"}, None),
        (
            "-dark",
            {"viewport": {"width": 1360, "height": 900}, "color_scheme": "dark"},
            {"overview", "run-retried", "admin-index"},
        ),
        (
            "-phone",
            {
                "viewport": {"width": 390, "height": 844},
                "color_scheme": "light",
                "device_scale_factor": 2,
                "is_mobile": True,
                "has_touch": True,
            },
            {"overview", "runs", "run-retried", "pipelines"},
        ),
    ]
    saved = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for suffix, options, only in variants:
            context = browser.new_context(**options)  # type: ignore[arg-type]
            page = context.new_page()
            page.goto(base + "/admin/login/?next=/dashboard/")
            page.fill("#id_username", "admin")
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url("**/dashboard/")
            for name, path in pages:
                if only is not None and name not in only:
                    continue
                page.goto(base + path)
                page.wait_for_load_state("networkidle")
                target = out / f"{name}{suffix}.png"
                page.screenshot(path=str(target), full_page=True)
                saved.append(target)
            context.close()
        browser.close()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="orbit-shots-") as tmp:
        env = environment(Path(tmp))
        os.environ.update(env)
        sys.path[:0] = [str(ROOT / "docs"), str(ROOT)]
        manage(env, "migrate", "--noinput", "-v0")
        manage(env, "collectstatic", "--noinput", "-v0")
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orbit.settings")
        import django

        django.setup()
        from django.contrib.auth.models import User

        User.objects.create_superuser("admin", "admin@example.com", PASSWORD)
        seed_history()
        ids = seed_live()
        port = free_port()
        processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "orbit.wsgi",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    "2",
                    "--log-level",
                    "warning",
                ],
                env=env,
                cwd=ROOT,
            ),
            subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "manage.py"),
                    "runworker",
                    "--concurrency",
                    "3",
                    "--no-schedules",
                ],
                env=env,
                cwd=ROOT,
            ),
        ]
        try:
            from runs.models import Run

            wait_for(
                lambda: (
                    Run.objects.filter(id=ids["broken"], status="failed").exists()
                    and Run.objects.filter(id=ids["flaky"], status="succeeded").exists()
                    and not Run.objects.filter(status="pending").exists()
                ),
                120,
                "the demo runs to finish",
            )
            wait_for(
                lambda: Run.objects.filter(id=ids["long"], status="running").exists(),
                30,
                "the long run to start",
            )
            time.sleep(2)  # let the long run's timeline grow a little: purely cosmetic
            base = f"http://127.0.0.1:{port}"
            wait_for(lambda: _up(base), 30, "gunicorn")
            for path in shoot(base, args.out, ids):
                print(path.relative_to(ROOT))
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(30)


def _up(base: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(base + "/admin/login/", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


if __name__ == "__main__":
    main()
