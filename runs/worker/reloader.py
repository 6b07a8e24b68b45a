"""`runworker --reload`: restart the worker when Python files change, gracefully, the way
a deploy would (SIGTERM, grace period, start again), so development sees real shutdowns."""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

from django.conf import settings

from orbit.core.conf import orbit_settings
from runs.child import die_with_parent

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
# Besides these, hidden directories (.venv, .git, caches) are not watched: walking a
# virtualenv every poll costs a quarter of a second.
SKIPPED_DIRECTORIES = {"node_modules", "__pycache__"}

Snapshot = dict[str, tuple[int, int]]


def watched_roots() -> list[Path]:
    """The project, plus where the ORBIT_PIPELINE_MODULES live when that is outside it."""
    roots = [Path(settings.BASE_DIR).resolve()]
    for module in orbit_settings.pipeline_modules:
        location = _location(module.partition(".")[0])
        if location is not None and not any(location.is_relative_to(r) for r in roots):
            roots.append(location)
    return roots


def _location(top_level: str) -> Path | None:
    """A top-level package's directory or a module's file, found without importing it."""
    try:
        spec = importlib.util.find_spec(top_level)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))).resolve()
    if spec.origin and spec.origin.endswith(".py"):
        return Path(spec.origin).resolve()
    return None


def _snapshot(roots: list[Path]) -> Snapshot:
    """Each watched .py file's modification time and size."""
    files: list[str] = []
    for root in roots:
        if root.is_file():
            files.append(str(root))
            continue
        for directory, subdirectories, names in os.walk(root):
            subdirectories[:] = [
                d for d in subdirectories if not d.startswith(".") and d not in SKIPPED_DIRECTORIES
            ]
            files += [os.path.join(directory, n) for n in names if n.endswith(".py")]
    found = {}
    for path in files:
        try:
            stat = os.stat(path)
        except OSError:
            continue
        found[path] = (stat.st_mtime_ns, stat.st_size)
    return found


def _changed(before: Snapshot, now: Snapshot) -> list[str]:
    return sorted(p for p in before.keys() | now.keys() if before.get(p) != now.get(p))


def run_with_reloader() -> int:
    """Run the worker in a child process and restart it whenever watched code changes."""
    roots = watched_roots()
    # Same options, without --reload, as `manage.py runworker` (whether we were started
    # as `orbit worker` or through manage.py, sys.argv holds "runworker" and its options).
    options = sys.argv[sys.argv.index("runworker") + 1 :] if "runworker" in sys.argv else []
    argv = [
        sys.executable,
        str(Path(settings.BASE_DIR) / "manage.py"),
        "runworker",
        *[a for a in options if a != "--reload"],
    ]
    received: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        received.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while True:
        before = _snapshot(roots)
        # Its own process group, so a Ctrl-C reaches the worker once, through us: the
        # first signal stops it gracefully, a second stops it now, as without --reload.
        # It stops (gracefully) if we are killed outright, instead of running on unwatched.
        child = subprocess.Popen(
            argv,
            env=os.environ.copy(),
            process_group=0,
            preexec_fn=partial(die_with_parent, os.getpid(), signal.SIGTERM),
        )
        changed: list[str] = []
        while child.poll() is None and not received and not changed:
            time.sleep(POLL_SECONDS)
            changed = _changed(before, _snapshot(roots))
        if received:
            return _wait_forwarding(child, received)
        if changed:
            logger.info(
                "Code changed (%s); restarting the worker gracefully",
                ", ".join(changed[:3]),
                extra={"event": "worker_reload"},
            )
            child.send_signal(signal.SIGTERM)
            status = _wait_forwarding(child, received)
            if received:  # stopped meanwhile (a second signal made that "now")
                return status
            continue
        if child.returncode == 0:  # --burst or --max-runs: done, as without --reload
            return 0
        # It died on its own, most likely at startup (a syntax error): wait for a fix.
        logger.error(
            "The worker exited with status %s; waiting for a code change to start it again",
            child.returncode,
            extra={"event": "worker_reload_failed"},
        )
        while not received and not changed:
            time.sleep(POLL_SECONDS)
            changed = _changed(before, _snapshot(roots))
        if received:
            return child.returncode
        logger.info(
            "Code changed (%s); starting the worker",
            ", ".join(changed[:3]),
            extra={"event": "worker_reload"},
        )


def _wait_forwarding(child: subprocess.Popen[bytes], received: list[int]) -> int:
    """Wait for the worker to exit, passing on each signal we get; return its status."""
    forwarded = 0
    while True:
        while forwarded < len(received):
            if child.poll() is None:
                child.send_signal(received[forwarded])
            forwarded += 1
        try:
            return child.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            continue
