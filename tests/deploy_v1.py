"""The code of a rolling deploy's old workers (tests/runs/test_rolling_deploy.py): the
pipeline t-deploy before it gained its step "notify", and no t-deploy-new at all."""

from pipelines import Pipeline, step
from tests import steps

deploy = Pipeline("t-deploy", steps=[step("fetch", steps.noop), step("store", steps.noop)])
