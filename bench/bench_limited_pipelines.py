"""Pipelines under flow limits for bench/bench_limits.py only (the other benchmarks do not
load this module, so their workers claim as they always did)."""

import os
import time

from pipelines import Pipeline, step


def stamp(ctx):  # type: ignore[no-untyped-def]
    """Append when this step began, by the wall clock: the rate bench counts these."""
    started = time.time()
    with open(os.environ["ORBIT_BENCH_LAT_FILE"], "a") as f:
        f.write(f"{ctx.run_id} {started!r}\n")


def sleeps(ctx):  # type: ignore[no-untyped-def]
    time.sleep(ctx.metadata.get("seconds", 0.5))


bench_limited = Pipeline(
    "bench-limited", max_concurrency=3, steps=[step("sleeps", sleeps, timeout=60)]
)
bench_rated = Pipeline("bench-rated", rate_limit="bench-veryfi", steps=[step("stamp", stamp)])
#: No limit: in the bench's round without limits, three long runs of this hold three slots,
#: as the max_concurrency=3 pipeline's runs hold three in the round with limits.
bench_sleeps = Pipeline("bench-sleeps", steps=[step("sleeps", sleeps, timeout=3600)])
