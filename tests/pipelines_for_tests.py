"""Pipelines used by the tests, discovered through ORBIT_PIPELINE_MODULES like a user's."""

from pipelines import Backoff, Pipeline, step
from tests import steps

FAST = Backoff(base=0.05, factor=2, cap=0.5)

single = Pipeline("t-single", steps=[step("noop", steps.noop)])
three = Pipeline(
    "t-three",
    steps=[step("one", steps.noop), step("two", steps.noop), step("three", steps.noop)],
)
dataflow = Pipeline(
    "t-dataflow", steps=[step("add", steps.add), step("double", steps.double_previous)]
)
flaky = Pipeline(
    "t-flaky",
    steps=[step("flaky", steps.flaky, max_retries=3, backoff=FAST), step("after", steps.noop)],
)
failing = Pipeline("t-failing", steps=[step("fails", steps.fails, max_retries=1, backoff=FAST)])
permanent = Pipeline(
    "t-permanent", steps=[step("permanent", steps.fails_permanently, max_retries=3, backoff=FAST)]
)
failed_result = Pipeline(
    "t-failed-result", steps=[step("says-no", steps.returns_failed_result, backoff=FAST)]
)
slow = Pipeline(
    "t-slow",
    steps=[
        step("sleeps", steps.sleeps, timeout=1, max_retries=1, backoff=FAST),
        step("after", steps.noop),
    ],
)
slow_once = Pipeline(
    "t-slow-once",
    steps=[step("sleeps-once", steps.sleeps_first_attempt, timeout=1, max_retries=1, backoff=FAST)],
)
long_step = Pipeline(
    "t-long",
    steps=[
        step("one", steps.noop),
        step("sleeps", steps.sleeps, timeout=120),
        step("three", steps.noop),
    ],
)
crash = Pipeline(
    "t-crash", steps=[step("crashes", steps.crashes_process, max_retries=1, backoff=FAST)]
)
poison = Pipeline("t-poison", steps=[step("kills-worker", steps.kills_worker)])
system_exit = Pipeline("t-system-exit", steps=[step("exits", steps.raises_system_exit)])
unserialisable = Pipeline("t-unserialisable", steps=[step("bad", steps.returns_unserialisable)])
oversized = Pipeline("t-oversized", steps=[step("big", steps.returns_oversized)])
logging_pipeline = Pipeline("t-logs", steps=[step("logs", steps.logs_things)])
# Live logs: a step that logs while it waits to be released (or cancelled, or timed out).
live_logs = Pipeline(
    "t-live-logs",
    steps=[step("waits", steps.logs_until_released, timeout=120), step("after", steps.noop)],
)
live_logs_timeout = Pipeline(
    "t-live-logs-timeout", steps=[step("waits", steps.logs_until_released, timeout=1)]
)
chatty = Pipeline("t-chatty", steps=[step("chatters", steps.logs_a_lot)])

# Steps that record each execution in the effects table (counted across processes).
recorded_one = Pipeline("t-recorded", steps=[step("only", steps.recorded)])
recorded_three = Pipeline(
    "t-recorded-three",
    steps=[
        step("one", steps.recorded),
        step("two", steps.recorded_sleep, timeout=120),
        step("three", steps.recorded),
    ],
)
# The same, with retries: its steps write to the database, so during a database restart
# they fail like any real step would, and are retried.
recorded_three_retrying = Pipeline(
    "t-recorded-three-retrying",
    steps=[
        step("one", steps.recorded, max_retries=5, backoff=Backoff(base=0.5, jitter=False)),
        step(
            "two",
            steps.recorded_sleep,
            timeout=120,
            max_retries=5,
            backoff=Backoff(base=0.5, jitter=False),
        ),
        step("three", steps.recorded, max_retries=5, backoff=Backoff(base=0.5, jitter=False)),
    ],
)
recorded_backoff = Pipeline(
    "t-recorded-backoff",
    steps=[
        step(
            "flaky",
            steps.recorded_flaky,
            max_retries=2,
            backoff=Backoff(base=4, factor=1, cap=4, jitter=False),
        )
    ],
)

# The dashboard's browser tests: a run that fails until the test fixes it, and one that
# echoes whatever it is given into its logs and result.
fails_until_fixed = Pipeline(
    "t-fails-until-fixed",
    steps=[step("fragile", steps.fails_until_fixed), step("after", steps.noop)],
)
echo = Pipeline("t-echo", steps=[step("echo", steps.logs_what_it_is_given)])

# Secret redaction (tests/core/test_redaction.py): a step that needs and leaks secrets.
secrets = Pipeline("t-secrets", steps=[step("connect", steps.uses_secrets)])
leaky_error = Pipeline("t-leaky-error", steps=[step("leaks", steps.fails_revealing_secrets)])

# Traces (tests/runs/test_tracing.py): a step that adds spans of its own, then another.
traced = Pipeline("t-traced", steps=[step("fetch", steps.traced), step("after", steps.noop)])
