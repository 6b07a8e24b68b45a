"""No-op pipelines for the benchmarks."""

import os
import time

from pipelines import Pipeline, step


def noop(ctx):  # type: ignore[no-untyped-def]
    return None


def stamp(ctx):  # type: ignore[no-untyped-def]
    """Append when this step began, by the wall clock: pickup as the peer benchmarks time it."""
    started = time.time()
    with open(os.environ["ORBIT_BENCH_LAT_FILE"], "a") as f:
        f.write(f"{ctx.metadata['i']} {started!r}\n")


bench_noop = Pipeline("bench-noop", steps=[step("noop", noop)])
bench_three = Pipeline("bench-three", steps=[step("a", noop), step("b", noop), step("c", noop)])
bench_stamp = Pipeline("bench-stamp", steps=[step("stamp", stamp)])
