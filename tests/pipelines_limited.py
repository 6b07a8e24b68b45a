"""Pipelines with flow limits, for tests/runs/test_limits.py only: its worker processes
load this module (ORBIT_PIPELINE_MODULES), and its `limited_pipelines` fixture registers
them for one test, so no other test's workers claim under a limit."""

from pipelines import Pipeline, step
from tests import steps

limited = Pipeline("t-limited", max_concurrency=3, steps=[step("span", steps.span, timeout=120)])
free = Pipeline("t-free", steps=[step("span", steps.span, timeout=120)])
rated = Pipeline("t-rated", rate_limit="5/2s", steps=[step("span", steps.span)])
shared_a = Pipeline("t-shared-a", rate_limit="t-shared", steps=[step("span", steps.span)])
shared_b = Pipeline("t-shared-b", rate_limit="t-shared", steps=[step("span", steps.span)])

ALL = (limited, free, rated, shared_a, shared_b)
