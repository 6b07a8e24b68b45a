"""`runworker --reload`: restart the worker when Python files change, gracefully, the way
a deploy would (SIGTERM, grace period, start again), so development sees real shutdowns."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0


def _snapshot(root: Path) -> dict[Path, float]:
    mtimes = {}
    for path in root.rglob("*.py"):
        if ".venv" in path.parts or "node_modules" in path.parts:
            continue
        try:
            mtimes[path] = path.stat().st_mtime
        except OSError:
            continue
    return mtimes


def run_with_reloader() -> int:
    root = Path(settings.BASE_DIR)
    # Same options, without --reload, as `manage.py runworker` (whether we were started
    # as `orbit worker` or through manage.py, sys.argv holds "runworker" and its options).
    options = sys.argv[sys.argv.index("runworker") + 1 :] if "runworker" in sys.argv else []
    argv = [
        sys.executable,
        str(root / "manage.py"),
        "runworker",
        *[a for a in options if a != "--reload"],
    ]
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        child = subprocess.Popen(argv, env=os.environ.copy())
        before = _snapshot(root)
        while child.poll() is None and not stopping:
            time.sleep(POLL_SECONDS)
            now = _snapshot(root)
            if now != before:
                changed = sorted(
                    str(p.relative_to(root))
                    for p in set(now) ^ set(before) | {p for p in now if before.get(p) != now[p]}
                )
                logger.info(
                    "Code changed (%s); restarting the worker gracefully",
                    ", ".join(changed[:3]),
                    extra={"event": "worker_reload"},
                )
                child.send_signal(signal.SIGTERM)
                child.wait()
                break
        else:
            if stopping and child.poll() is None:
                child.send_signal(signal.SIGTERM)
                return child.wait()
            if not stopping:
                return child.returncode or 0
            return 0
