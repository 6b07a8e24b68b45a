"""Real worker processes for tests: started against the test database, sent real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def database_env() -> dict[str, str]:
    """Environment that points a subprocess at the database this test uses."""
    settings = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ORBIT_SQLITE_PATH")}
    if connection.vendor == "postgresql":
        user = settings.get("USER") or "postgres"
        password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
        host = settings.get("HOST") or "127.0.0.1"
        port = settings.get("PORT") or 5432
        env["DATABASE_URL"] = f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"
    else:
        env["ORBIT_SQLITE_PATH"] = str(settings["NAME"])
    env["ORBIT_PIPELINE_MODULES"] = "tests.pipelines_for_tests"
    env["PYTHONPATH"] = str(ROOT)
    return env


def wait_until(
    predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, message: str = ""
) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message or predicate}")
        time.sleep(interval)


def stays_true(predicate: Callable[[], Any], seconds: float, message: str = "") -> None:
    """Check `predicate` throughout `seconds`: for what must *not* happen within a window."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not predicate():
            raise AssertionError(f"stopped being true within {seconds} s: {message or predicate}")
        time.sleep(0.05)


def stat_fields(pid: int) -> list[str]:
    """`/proc/<pid>/stat` after the command name (which may hold spaces and parentheses):
    [0] is the state letter, [11] and [12] the user and system CPU time in clock ticks."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """The process's CPU time so far, user and system."""
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class WorkerProcess:
    """`python manage.py runworker ...` as a child of the test, with its log kept."""

    def __init__(
        self,
        tmp_path: Path,
        *args: str,
        env: dict[str, str] | None = None,
        name: str = "worker",
        project: Path = ROOT,
        session: bool = False,
    ) -> None:
        """`project`: the project to run (a copy, for tests that break its code);
        `session`: its own session and process group, to signal it like a terminal's Ctrl-C."""
        self.log_path = tmp_path / f"{name}-{time.monotonic_ns()}.log"
        full_env = database_env()
        full_env.update(env or {})
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, str(project / "manage.py"), "runworker", *args],
            env=full_env,
            cwd=project,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=session,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self._log.close()
