"""The code of a rolling deploy's new workers (tests/runs/test_rolling_deploy.py): t-deploy
with a new last step, and a pipeline the old code does not have."""

from pipelines import Pipeline, step
from tests import steps

deploy = Pipeline(
    "t-deploy",
    steps=[step("fetch", steps.noop), step("store", steps.noop), step("notify", steps.noop)],
)
new = Pipeline("t-deploy-new", steps=[step("only", steps.noop)])
