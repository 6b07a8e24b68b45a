"""Define pipelines: `from pipelines import Pipeline, step`."""

from orbit.core.exceptions import PermanentFailure
from pipelines.context import StepContext, StepResult
from pipelines.definition import Pipeline, step
from pipelines.retry import Backoff

__all__ = ["Backoff", "PermanentFailure", "Pipeline", "StepContext", "StepResult", "step"]
