"""No-op pipelines for the benchmarks."""

from pipelines import Pipeline, step


def noop(ctx):  # type: ignore[no-untyped-def]
    return None


bench_noop = Pipeline("bench-noop", steps=[step("noop", noop)])
bench_three = Pipeline("bench-three", steps=[step("a", noop), step("b", noop), step("c", noop)])
