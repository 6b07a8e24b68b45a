"""`make run`, the README's front door: one command serves the web and runs the worker.

It goes through the Makefile, honcho and the Procfile exactly as a new user's first
command does, against its own SQLite file, so a Procfile that cannot find gunicorn or a
worker that cannot start fails here rather than on someone's first day.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from contextlib import suppress
from pathlib import Path

import pytest
import requests

from tests.processes import ROOT, wait_until

pytestmark = pytest.mark.slow

PASSWORD = "front-door-password"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(url: str) -> int:
    try:
        return requests.get(url, timeout=2, allow_redirects=False).status_code
    except requests.RequestException:
        return 0


def _manage(env: dict[str, str], code: str) -> str:
    return (
        subprocess.run(
            [sys.executable, "manage.py", "shell", "-v", "0", "-c", code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        .stdout.strip()
        .splitlines()[-1]
    )


def test_make_run_serves_the_dashboard_and_runs_work(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        ORBIT_SQLITE_PATH=str(tmp_path / "orbit.sqlite3"),
        ORBIT_PIPELINE_MODULES="tests.pipelines_for_tests",
        PYTHONPATH=str(ROOT),
        DJANGO_SUPERUSER_PASSWORD=PASSWORD,
    )
    log = (tmp_path / "run.log").open("wb")
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"PORT={port}"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: _status(f"{base}/healthz") == 200 or process.poll() is not None,
            timeout=90,
            message="the web process to answer",
        )
        output = lambda: (tmp_path / "run.log").read_text(errors="replace")  # noqa: E731
        assert process.poll() is None, output()
        assert f"Log in at {base}/admin/ as admin / {PASSWORD}" in output()  # its own port
        assert "The command line: .venv/bin/orbit list" in output()

        # Staff log in through the real server and see the dashboard.
        session = requests.Session()
        login = session.get(f"{base}/admin/login/", timeout=5)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)
        assert token, login.text[:500]
        session.post(
            f"{base}/admin/login/?next=/dashboard/",
            data={"csrfmiddlewaretoken": token[1], "username": "admin", "password": PASSWORD},
            headers={"Referer": f"{base}/admin/login/"},
            timeout=5,
        )
        dashboard = session.get(f"{base}/dashboard/", timeout=5)
        assert dashboard.status_code == 200 and "Orbit" in dashboard.text
        assert _status(f"{base}/dashboard/") == 302  # and nobody else does

        # The worker started beside it executes a run created now.
        run_id = _manage(env, "from runs import enqueue; print(enqueue('t-single').id)")
        wait_until(
            lambda: (
                _manage(
                    env,
                    f"from runs.models import Run; print(Run.objects.get(id='{run_id}').status)",
                )
                == "succeeded"
            ),
            timeout=60,
            interval=0.5,
            message=f"the worker to run {run_id}",
        )
    finally:
        with suppress(ProcessLookupError):  # already gone when it failed to start
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        log.close()
