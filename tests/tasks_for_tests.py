"""Task functions for the tests, written as a user writes them: the framework's public API
only. Workers import this module by the tasks' paths (tests/ is on their PYTHONPATH)."""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from pathlib import Path
from typing import Any

try:  # Django 6
    from django.tasks import task
except ImportError:  # Django 5.2: the backport
    from django_tasks import task

#: Whether `@task(...)` passes arguments of a backend's own to it (django-tasks 0.12+ and
#: Django 6.1+; Django 6.0's decorator takes only the framework's).
OWN_OPTIONS = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(task).parameters.values())


def own(**options: Any) -> dict[str, Any]:
    """Orbit's options for one task, where the decorator carries them."""
    return options if OWN_OPTIONS else {}


@task()
def add(x: int, y: int) -> int:
    """Adds two numbers."""
    return x + y


@task()
def stamp(journal: str, label: str) -> str:
    """Appends `label` to the journal: the order in which tasks ran."""
    with Path(journal).open("a") as f:
        f.write(f"{label} {time.time()!r}\n")
    return label


@task()
def waits_for(release: str, timeout: float = 60.0) -> str:
    """Runs until the file `release` exists: a test watches it running, then lets it end."""
    deadline = time.monotonic() + timeout
    while not Path(release).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} never appeared")
        time.sleep(0.02)
    return "released"


@task()
def fails(password: str) -> None:
    """Always fails, with a secret in its message (masked where it is stored)."""
    raise ValueError(f"could not log in with password={password}")


@task(takes_context=True, **own(max_retries=2, backoff=0.05))
def flaky(context: Any, fail_times: int) -> dict[str, int]:
    """Fails its first `fail_times` attempts, then succeeds; Orbit retries it twice."""
    if context.attempt <= fail_times:
        raise RuntimeError(f"flaky failure on attempt {context.attempt}")
    return {"attempt": context.attempt}


@task(takes_context=True)
def reports_context(context: Any, x: int) -> dict[str, Any]:
    """Returns what its TaskContext says."""
    return {"attempt": context.attempt, "id": context.task_result.id, "x": x}


@task()
async def adds_later(x: int, y: int) -> dict[str, Any]:
    """An async task: runs as a coroutine in the worker's child process."""
    await asyncio.sleep(0.01)
    return {"sum": x + y, "pid": os.getpid()}


@task(takes_context=True)
def survives_a_crash(context: Any, started: str) -> dict[str, int]:
    """Its first attempt announces itself and runs until its worker is killed."""
    if context.attempt == 1:
        Path(started).write_text(str(os.getpid()))
        time.sleep(120)
    return {"attempt": context.attempt}


@task()
def returns_a_set() -> Any:
    """Returns something that is not JSON."""
    return {1, 2, 3}


@task(**own(timeout=0.5))
def sleeps(seconds: float) -> None:
    """Runs past its own timeout."""
    time.sleep(seconds)


def _hidden() -> None:
    """A function decorated under another name: no worker can import it by its path."""


renamed = task()(_hidden)
