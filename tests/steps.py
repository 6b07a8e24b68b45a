"""Step functions for tests. Side effects go to a table-free journal file, so tests can
count executions across processes (a step that runs twice shows up twice)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from pipelines import PermanentFailure, StepContext, StepResult


def journal(ctx: StepContext) -> None:
    """Append one line per execution to $ORBIT_TEST_JOURNAL (if set)."""
    path = os.environ.get("ORBIT_TEST_JOURNAL") or ctx.metadata.get("journal")
    if path:
        with Path(path).open("a") as f:
            f.write(f"{ctx.run_id} {ctx.step} {ctx.attempt} {os.getpid()}\n")


def effect(ctx: StepContext) -> None:
    """Insert one row per execution into orbit_test_effects (see the `effects` fixture)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO orbit_test_effects (run_id, step, attempt, pid) VALUES (%s, %s, %s, %s)",
            [ctx.run_id, ctx.step, ctx.attempt, os.getpid()],
        )


def recorded(ctx: StepContext) -> dict[str, Any]:
    """A no-op that records its execution in the effects table."""
    effect(ctx)
    return {"step": ctx.step}


def recorded_sleep(ctx: StepContext) -> dict[str, Any]:
    """Records its execution, then sleeps `metadata.seconds` (default 3)."""
    effect(ctx)
    time.sleep(ctx.metadata.get("seconds", 3))
    return {"step": ctx.step, "slept": True}


def recorded_flaky(ctx: StepContext) -> dict[str, Any]:
    effect(ctx)
    if ctx.attempt <= ctx.metadata.get("fail_times", 1):
        raise RuntimeError(f"flaky failure on attempt {ctx.attempt}")
    return {"attempt": ctx.attempt}


def noop(ctx: StepContext) -> dict[str, Any]:
    journal(ctx)
    return {"ok": True}


def add(ctx: StepContext) -> dict[str, Any]:
    journal(ctx)
    return {"value": ctx.metadata.get("x", 0) + ctx.metadata.get("y", 0)}


def double_previous(ctx: StepContext) -> dict[str, Any]:
    journal(ctx)
    return {"value": ctx.prev_results["add"]["value"] * 2}


def flaky(ctx: StepContext) -> dict[str, Any]:
    """Fails `metadata.fail_times` attempts (default 2), then succeeds."""
    journal(ctx)
    if ctx.attempt <= ctx.metadata.get("fail_times", 2):
        raise RuntimeError(f"flaky failure on attempt {ctx.attempt}")
    return {"attempt": ctx.attempt}


def fails(ctx: StepContext) -> None:
    journal(ctx)
    raise ValueError("this step always fails")


def fails_permanently(ctx: StepContext) -> None:
    journal(ctx)
    raise PermanentFailure("bad input: nothing to retry")


def returns_failed_result(ctx: StepContext) -> StepResult:
    journal(ctx)
    return StepResult(success=False, error="the service said no")


def sleeps(ctx: StepContext) -> dict[str, Any]:
    """Sleeps `metadata.seconds` (default 60), ignoring the deadline: only a kill stops it."""
    journal(ctx)
    ctx.log.info("sleeping %s s", ctx.metadata.get("seconds", 60))
    time.sleep(ctx.metadata.get("seconds", 60))
    return {"slept": ctx.metadata.get("seconds", 60)}


def sleeps_first_attempt(ctx: StepContext) -> dict[str, Any]:
    journal(ctx)
    if ctx.attempt == 1:
        time.sleep(ctx.metadata.get("seconds", 60))
    return {"attempt": ctx.attempt}


def crashes_process(ctx: StepContext) -> None:
    journal(ctx)
    os._exit(13)


def kills_worker(ctx: StepContext) -> None:
    """A poison step: SIGKILLs the worker process that supervises it."""
    journal(ctx)
    os.kill(os.getppid(), signal.SIGKILL)
    time.sleep(30)


def raises_system_exit(ctx: StepContext) -> None:
    journal(ctx)
    raise SystemExit(3)


def returns_unserialisable(ctx: StepContext) -> Any:
    journal(ctx)
    return {"when": object()}


def returns_oversized(ctx: StepContext) -> Any:
    journal(ctx)
    return {"blob": "x" * (2 * 1024 * 1024)}


def logs_things(ctx: StepContext) -> dict[str, Any]:
    journal(ctx)
    ctx.log.info("hello %s", "world", extra={"items": 3})
    ctx.log.warning("careful")
    return {"logged": 2}


def logs_until_released(ctx: StepContext) -> dict[str, Any]:
    """Logs "waiting", then one record every `metadata.every` s (default 0.2) until the file
    `metadata.release` exists (or `metadata.seconds`, default 60, pass): a step whose logs
    a test reads while it runs. Records its process id in the effects table if asked."""
    if ctx.metadata.get("record_pid"):
        effect(ctx)
    ctx.log.info("waiting", extra={"pid": os.getpid()})
    release = Path(ctx.metadata.get("release", "/nonexistent"))
    deadline = time.monotonic() + ctx.metadata.get("seconds", 60)
    ticks = 0
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(ctx.metadata.get("every", 0.2))
        ticks += 1
        ctx.log.info("tick %s", ticks)
    ctx.log.info("released")
    return {"ticks": ticks}


def logs_a_lot(ctx: StepContext) -> dict[str, Any]:
    """Logs `metadata.records` records (default 50)."""
    for i in range(ctx.metadata.get("records", 50)):
        ctx.log.info("record %s", i)
    return {"logged": ctx.metadata.get("records", 50)}


def fails_until_fixed(ctx: StepContext) -> dict[str, Any]:
    """Fails while the file named by `metadata.fixed_flag` does not exist: a test "fixes"
    the problem by creating it, then retries the run."""
    journal(ctx)
    if not Path(ctx.metadata["fixed_flag"]).exists():
        raise RuntimeError("the upstream service is down")
    return {"fixed": True, "attempt": ctx.attempt}


def logs_what_it_is_given(ctx: StepContext) -> dict[str, Any]:
    """Writes the run's metadata values into its logs and result verbatim (escaping tests)."""
    journal(ctx)
    for key, value in ctx.metadata.items():
        ctx.log.info("%s", value, extra={"key": key, "value": value})
    return dict(ctx.metadata)


def uses_secrets(ctx: StepContext) -> dict[str, Any]:
    """Reads secrets from nested metadata, logs them the careless ways, and returns them:
    the stored data keeps them, every output masks them (docs/SECURITY.md)."""
    db = ctx.metadata["db"]
    ctx.log.info("connecting as %s with password=%s", db["user"], db["password"])
    if "conn" in ctx.metadata:
        ctx.log.info("then to %s", ctx.metadata["conn"]["dsn"])
    ctx.log.info("headers %s", ctx.metadata["headers"], extra={"request": ctx.metadata["headers"]})
    return {"connected": True, "echo": ctx.metadata, "seen": [{"db_password": db["password"]}]}


def fails_revealing_secrets(ctx: StepContext) -> None:
    """Fails the careless way: the secret ends up in the exception's message."""
    dsn = ctx.metadata.get("dsn")
    via = f" connecting to {dsn}" if dsn else ""
    raise ValueError(f"login refused: password={ctx.metadata['password']} (Bearer abc.def){via}")


def traced(ctx: StepContext) -> dict[str, Any]:
    """Adds spans of its own the two documented ways (docs/TRACING.md), logging inside one:
    with tracing on they nest under the step's span; with it off they are no-ops."""
    from opentelemetry import trace

    from runs.tracing import step_span

    with trace.get_tracer("tests.steps").start_as_current_span("fetch") as span:
        span.set_attribute("fetched", 3)
        ctx.log.info("fetched")
    with step_span("store", rows=3):
        pass
    return {"fetched": 3}


def span(ctx: StepContext) -> dict[str, Any]:
    """Sleeps `metadata.seconds` (default 0.3), then records when it started and ended
    (the host's clock) in orbit_test_spans (the `spans` fixture): how many overlapped is
    measured outside Orbit."""
    from django.db import connection

    started = time.time()
    time.sleep(ctx.metadata.get("seconds", 0.3))
    ended = time.time()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO orbit_test_spans (run_id, pipeline, started, ended, pid) "
            "VALUES (%s, %s, %s, %s, %s)",
            [ctx.run_id, ctx.pipeline, started, ended, os.getpid()],
        )
    return {"started": started}
