"""Define pipelines: `from pipelines import Pipeline, step`."""

from orbit.exceptions import PermanentFailure
from pipelines.context import StepContext, StepResult
from pipelines.definition import Pipeline, step
from runs.retry import Backoff

__all__ = ["Backoff", "PermanentFailure", "Pipeline", "StepContext", "StepResult", "step"]
